"""The model compiler: an encoder and a quality budget in, the fastest encoder found that keeps
the budget out, choosing per linear layer among every operator lutmul has, measured here.

Stages (docs/compile.md):

1. **Alone**: for every layer and candidate, the operator is fitted on the rows the exact
   model feeds that layer, timed at the layer's real shape and thread count, and the model's
   embeddings are measured with only that layer replaced (screening sentences, held out).
2. **Search**: a greedy choice by µs saved per unit of embedding cosine lost, treating the
   losses of different layers as adding up, within 80 % of the budget (the rest is margin for
   what does not add up).
3. **Sequential calibration**: the chosen operators are fitted again in forward order, each on
   the rows the already-compressed layers before it produce.
4. **Verification** on every held-out sentence: while the mean cosine misses the budget, the
   choice that saved least per unit of loss goes back to exact. If nothing is left, the exact
   model comes back with a warning.

The plan is deterministic for a seed and a calibration set, given the same timings: the first
compile in a process measures each (layer shape, candidate) once and later compiles reuse it
(pass ``timings={}`` to measure afresh, or a dict of your own to keep them).
"""

from __future__ import annotations

import abc
import platform
import time
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..cpu import isa, num_threads, set_num_threads
from ..dense import DenseLinear
from .._progress import progress_bar
from .batching import check_sentences
from .candidates import EXACT, Candidate, as_candidates
from .encoder import Encoder
from .quality import mean_cosine

# Measured µs per (K, M, rows, threads, ISA, candidate label) in this process.
_TIMINGS: Dict[tuple, float] = {}
# The greedy search spends this share of the budget; verification keeps the rest as margin.
SEARCH_SHARE = 0.8
# compile()'s min_saving: 1 % of the exact linear time per 0.001 of cosine (docs/compile.md).
DEFAULT_MIN_SAVING = 0.01
# Sentences per embed call in the runtime (Encoder.embed's batch_size): the rows a layer sees
# per call are this many sentences' tokens.
RUNTIME_BATCH_SENTENCES = 64


@dataclass
class Option:
    candidate: Candidate
    us: float
    loss: float          # 1 − mean cosine with only this layer replaced (screening sentences)
    layer_error: float   # relative error on the screening sentences' rows for this layer
    bytes: int


@dataclass
class Layer:
    block: int
    name: str
    W: np.ndarray
    bias: np.ndarray
    exact_us: float
    exact_bytes: int
    options: List[Option]


def compile(encoder: Encoder, calibration: Sequence[str], min_cosine: float = 0.995, threads: int = 1,
            candidates: Optional[Sequence] = None, progress: bool = True, seed: int = 0,
            heldout_fraction: float = 0.25, max_fit_rows: int = 8192, screen_sentences: int = 128,
            timings: Optional[Dict[tuple, float]] = None, screening: Optional["Screening"] = None,
            min_saving: float = DEFAULT_MIN_SAVING) -> Encoder:
    """The fastest encoder this compiler finds whose embeddings keep a mean cosine of at least
    ``min_cosine`` to ``encoder``'s on held-out calibration sentences.

    ``encoder``: an exact encoder (``load_encoder(path)``, every linear layer dense).
    ``calibration``: sentences; a seeded ``heldout_fraction`` of them is never used to fit.
    ``threads``: the thread count the layers are timed at (the one the compiled model is for);
    the compiler itself fits and evaluates on lutmul's thread count (:func:`lutmul.num_threads`).
    ``candidates``: :class:`lutmul.runtime.Candidate` objects or kind names; None for
    :func:`lutmul.runtime.candidates.default_candidates`. ``screening``: where stage 1's fits
    and losses run; None for this process (:func:`lutmul.distributed.compile_job` passes one
    that spreads them over a Ray cluster; the timings stay here).
    ``min_saving``: the least share of the exact model's linear-layer time that a change must
    save for each 0.001 of mean cosine it is expected to cost (0.01: 1 %). Changes that buy
    little speed for much accuracy are left out even where the budget has room for them, and a
    chosen layer moves to a slower, more accurate operator where that costs less time than the
    same rate; 0 spends the whole budget on speed (docs/compile.md).

    Returns an :class:`Encoder` with ``plan``, ``plan_table()``, ``compile_summary`` and
    ``save(path)``. ``ValueError`` for an empty calibration set, a budget outside (0, 1], a
    ``min_saving`` outside [0, 1) or an encoder whose layers are not exact; ``TypeError`` for
    non-string sentences.
    """
    settings = _check_settings(encoder, min_cosine, threads, seed, heldout_fraction, max_fit_rows, screen_sentences,
                               min_saving)
    sentences = check_sentences(calibration)
    if len(sentences) < 2:
        raise ValueError(f"calibration needs at least 2 sentences (some fit the operators, the others are held "
                         f"out to check them), got {len(sentences)}")
    options = as_candidates(candidates)
    timings = _TIMINGS if timings is None else timings
    fit, heldout = _split(sentences, heldout_fraction, seed)
    screen = heldout[:screen_sentences]

    # Fitting and evaluating use every thread; only the timings run at ``threads``.
    bar = CompileProgress(progress)
    try:
        reference = encoder.embed(heldout)
        layers = [Layer(block, name, *exact_weights(encoder, block, name), 0.0, 0, [])
                  for block, name in encoder.linear_layers()]
        summary = dict(settings, calibration_sentences=len(sentences), fit_sentences=len(fit),
                       heldout_sentences=len(heldout), screen_sentences=len(screen), cpu=_cpu_name(), isa=isa(),
                       candidates=[c.label for c in options])
        fit_rows = _sentences_for_rows(encoder, fit, max_fit_rows)
        rows_per_call = _rows_per_call(encoder, sentences)
        chosen: Dict[int, Option] = {}
        ops: Dict[int, object] = {}
        # Screening fits every candidate on every layer: half the rows keep it affordable (a
        # MADDNESS fit costs about linearly in them); the chosen ones are refitted on all.
        fit_taps = TappedRows(encoder, _sentences_for_rows(encoder, fit, max_fit_rows // 2))
        if min_cosine >= 1.0:  # only the exact model keeps a cosine of exactly 1: time it for the plan
            bar.start("exact", len(layers))
            for layer in layers:
                bar.layer(layer)
                time_exact(layer, encoder, fit_taps.of(layer.block, layer.name)[:rows_per_call], threads, timings)
                bar.advance()
        else:
            screening = screening or LocalScreening()
            began = time.perf_counter()
            screening.run(layers, options, fit_taps, screen, rows_per_call, threads, seed, timings, bar)
            summary["stage1"] = dict(screening.summary(), seconds=time.perf_counter() - began)
            del fit_taps
            # µs per unit of loss: min_saving of the exact linear time per 0.001 of cosine.
            rate = min_saving * sum(layer.exact_us for layer in layers) / 0.001
            chosen = _search(layers, SEARCH_SHARE * (1.0 - min_cosine), rate)
            bar.start("sequential", len(chosen))
            ops = _refit_in_order(encoder, layers, chosen, fit_rows, seed, bar)
            bar.start("verify", 1)
            chosen = _verify(encoder, layers, chosen, ops, heldout, reference, min_cosine, bar)
        compiled = _apply(encoder, layers, chosen, ops)
        bar.start("report", len(layers))
        rows = _plan_rows(encoder, layers, chosen, ops, screen, reference[:len(screen)], bar)
        heldout_cosine = mean_cosine(compiled.embed(heldout), reference)
        summary["screened"] = [dict(block=layer.block, layer=layer.name, candidate=o.candidate.label, us=o.us,
                                    layer_error=o.layer_error, alone_loss=o.loss)
                               for layer in layers for o in layer.options]
        summary.update(heldout_cosine=heldout_cosine, met=heldout_cosine >= min_cosine,
                       linear_us=sum(r["us"] for r in rows), exact_linear_us=sum(r["exact_us"] for r in rows),
                       layers_replaced=len(chosen))
        if not chosen and min_cosine < 1.0:
            warnings.warn(f"lutmul.runtime.compile: no plan keeps a mean cosine of {min_cosine} on the held-out "
                          f"sentences; returning the exact model", RuntimeWarning, stacklevel=2)
    finally:
        bar.close()
    return Encoder._from_parts(compiled._core, compiled.tokenizer, {"layers": rows, "summary": summary})


# ----------------------------------------------------------------------------- arguments
def _check_settings(encoder, min_cosine, threads, seed, heldout_fraction, max_fit_rows, screen_sentences,
                    min_saving) -> dict:
    if not isinstance(encoder, Encoder):
        raise TypeError(f"encoder must be a lutmul.runtime.Encoder (load_encoder(path)), got {type(encoder).__name__}")
    if isinstance(min_cosine, bool) or not isinstance(min_cosine, (int, float)):
        raise TypeError(f"min_cosine must be a number in (0, 1], got {type(min_cosine).__name__}")
    if not 0.0 < float(min_cosine) <= 1.0:
        raise ValueError(f"min_cosine must be in (0, 1], got {min_cosine}")
    for name, value in (("threads", threads), ("seed", seed), ("max_fit_rows", max_fit_rows),
                        ("screen_sentences", screen_sentences)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if threads < 1 or max_fit_rows < 32 or screen_sentences < 1 or seed < 0:
        raise ValueError(f"threads and screen_sentences must be at least 1, max_fit_rows at least 32 and seed "
                         f"non-negative; got {threads}, {screen_sentences}, {max_fit_rows}, {seed}")
    if not 0.0 < float(heldout_fraction) < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    if isinstance(min_saving, bool) or not isinstance(min_saving, (int, float)):
        raise TypeError(f"min_saving must be a number, got {type(min_saving).__name__}")
    if not 0.0 <= float(min_saving) < 1.0:
        raise ValueError(f"min_saving must be in [0, 1), got {min_saving}")
    return dict(min_cosine=float(min_cosine), threads=int(threads), seed=int(seed),
                heldout_fraction=float(heldout_fraction), max_fit_rows=int(max_fit_rows),
                min_saving=float(min_saving))


def exact_weights(encoder: Encoder, block: int, name: str) -> Tuple[np.ndarray, np.ndarray]:
    op = encoder.linear(block, name)
    if not isinstance(op, DenseLinear):
        raise ValueError(f"compile needs an exact encoder (load_encoder(path) at precision 'f32'): block {block} "
                         f"{name} is {op.kind}")
    return op.weights, op.bias


def _split(sentences: List[str], heldout_fraction: float, seed: int) -> Tuple[List[str], List[str]]:
    """(fit, held out): a seeded shuffle, then the held-out share (at least one sentence)."""
    order = np.random.default_rng(seed).permutation(len(sentences))
    held = max(1, min(len(sentences) - 1, int(round(heldout_fraction * len(sentences)))))
    return [sentences[i] for i in order[held:]], [sentences[i] for i in order[:held]]


def _sentences_for_rows(encoder: Encoder, sentences: List[str], rows: int) -> List[str]:
    """The first sentences whose tokens reach ``rows`` (each layer is fitted on their rows)."""
    lengths = np.cumsum([len(ids) for ids in encoder.tokenize(sentences)])
    return sentences[:int(np.searchsorted(lengths, rows)) + 1]


def _rows_per_call(encoder: Encoder, sentences: List[str]) -> int:
    mean_tokens = np.mean([len(ids) for ids in encoder.tokenize(sentences)])
    return max(1, int(round(RUNTIME_BATCH_SENTENCES * mean_tokens)))


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ----------------------------------------------------------------------------- measuring
def _time_us(op, X: np.ndarray, key: tuple, timings: Dict[tuple, float], threads: int) -> float:
    """Median µs of op.forward(X) on ``threads`` threads, measured once per key (later calls
    reuse it)."""
    if key not in timings:
        everything = num_threads()
        set_num_threads(threads)
        try:
            out = np.empty((X.shape[0], op.output_dim), dtype=np.float32)
            op.forward(X, out)  # warm: packing, first-touch
            samples, spent = [], 0.0
            while len(samples) < 7 or (spent < 0.05 and len(samples) < 200):
                start = time.perf_counter()
                op.forward(X, out)
                samples.append(time.perf_counter() - start)
                spent += samples[-1]
        finally:
            set_num_threads(everything)
        timings[key] = float(np.median(samples)) * 1e6
    return timings[key]


def _timing_key(layer: Layer, rows: int, threads: int, candidate: Candidate) -> tuple:
    return (layer.W.shape[0], layer.W.shape[1], rows, threads, isa(), candidate.label)


class TappedRows:
    """The rows each layer of the exact model reads for a set of sentences, tapped once per
    distinct input (query, key and value share theirs)."""

    def __init__(self, encoder: Encoder, sentences: List[str]):
        self.encoder = encoder
        self.sentences = sentences
        token_ids = encoder.tokenize(sentences)
        self.lengths = np.array([len(ids) for ids in token_ids], dtype=np.int64)
        self.ids = np.concatenate(token_ids).astype(np.int32) if token_ids else np.empty(0, np.int32)
        self._cache: Dict[Tuple[int, str], np.ndarray] = {}

    def of(self, block: int, name: str) -> np.ndarray:
        key = (block, "query" if name in ("query", "key", "value") else name)
        if key not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k[0] == block}  # earlier blocks are done
            self._cache[key] = self.encoder._core.layer_inputs_ids(self.ids, self.lengths, *key)
        return self._cache[key]

    def embed_from(self, encoder: Encoder, block: int) -> np.ndarray:
        """``encoder``'s embeddings of these sentences, its blocks from ``block`` on fed the exact
        model's hidden states entering that block (the blocks before it are exact anyway)."""
        return encoder._core.embed_from_block(block, self.of(block, "query"), self.lengths)


def time_exact(layer: Layer, encoder: Encoder, X_time: np.ndarray, threads: int, timings: Dict[tuple, float]) -> None:
    exact = encoder.linear(layer.block, layer.name)
    layer.exact_us = _time_us(exact, X_time, _timing_key(layer, len(X_time), threads, EXACT), timings, threads)
    layer.exact_bytes = exact.bytes


def time_candidate(layer: Layer, candidate: Candidate, op, X_time: np.ndarray, threads: int,
                   timings: Dict[tuple, float]) -> float:
    return _time_us(op, X_time, _timing_key(layer, len(X_time), threads, candidate), timings, threads)


def fit_candidates(layer: Layer, candidates: List[Candidate], X_fit: np.ndarray, X_screen: np.ndarray, seed: int,
                   on_candidate=None) -> List[Tuple[int, object, float]]:
    """``(candidate index, operator, layer error)`` for each candidate this layer's shape can
    take, fitted on ``X_fit``; the error is relative, on the screening rows ``X_screen``."""
    fitted = []
    for index, candidate in enumerate(candidates):
        if on_candidate is not None:
            on_candidate(candidate)
        try:
            op = candidate.build(layer.W, layer.bias, X_fit, seed)
        except ValueError:  # settings this layer's shape cannot take (more codebooks than inputs, ...)
            continue
        fitted.append((index, op, op.relative_error(X_screen, layer.W, layer.bias)))
    return fitted


def speed_error_front(layer: Layer, timed: List[Tuple[float, float, int]]) -> List[Tuple[float, float, int]]:
    """Of ``(µs, layer error, candidate index)``, those faster than the exact layer that no
    other beats on both speed and error, fastest first: one both slower and less accurate
    than another would lose to it in the search anyway, so only these get a model loss."""
    front, best_error = [], np.inf
    for us, error, index in sorted(m for m in timed if m[0] < layer.exact_us):
        if error < best_error:
            best_error = error
            front.append((us, error, index))
    return front


def screening_loss(encoder: Encoder, layer: Layer, op, screen: "TappedRows", screen_reference: np.ndarray) -> Optional[float]:
    """1 − the screening sentences' mean cosine with only this layer replaced by ``op`` (the
    forward resumes at its block); None when the outputs pass float's range on real rows
    (never a choice)."""
    replaced = encoder.with_linear(layer.block, layer.name, op)
    cosine = _cosine_unless_overflow(lambda: screen.embed_from(replaced, layer.block), screen_reference)
    return None if cosine == -np.inf else 1.0 - cosine


class Screening(abc.ABC):
    """Stage 1, every candidate on every layer alone: fills each layer's ``exact_us``,
    ``exact_bytes`` and ``options``. The timings always run in this process (the compiled
    model is for this machine); each implementation decides where the fits and losses run
    (:class:`LocalScreening` here, ``lutmul.distributed.compile.RayScreening`` on Ray)."""

    @abc.abstractmethod
    def run(self, layers: List[Layer], candidates: List[Candidate], fit: "TappedRows", screen_sentences: List[str],
            rows_per_call: int, threads: int, seed: int, timings: Dict[tuple, float], bar: "CompileProgress") -> None:
        """Fills the layers' stage-1 measurements (abstract: an interface, not a stub)."""

    def summary(self) -> dict:
        """Where stage 1 ran, for the compile summary."""
        return {"where": "this process"}


class LocalScreening(Screening):
    """Stage 1 in this process, one layer at a time (the fitted operators of one layer held at once)."""

    def run(self, layers, candidates, fit, screen_sentences, rows_per_call, threads, seed, timings, bar) -> None:
        screen = TappedRows(fit.encoder, screen_sentences)
        screen_reference = screen.embed_from(fit.encoder, 0)
        bar.start("alone", len(layers) * (1 + len(candidates)))
        for layer in layers:
            bar.layer(layer)
            X_fit = fit.of(layer.block, layer.name)
            time_exact(layer, fit.encoder, X_fit[:rows_per_call], threads, timings)
            bar.advance()

            def on_candidate(candidate):
                bar.candidate(candidate)
                bar.advance()

            fitted = fit_candidates(layer, candidates, X_fit, screen.of(layer.block, layer.name), seed, on_candidate)
            ops = {index: op for index, op, _ in fitted}
            timed = [(time_candidate(layer, candidates[index], op, X_fit[:rows_per_call], threads, timings), error, index)
                     for index, op, error in fitted]
            for us, error, index in speed_error_front(layer, timed):
                loss = screening_loss(fit.encoder, layer, ops[index], screen, screen_reference)
                if loss is not None:
                    layer.options.append(Option(candidates[index], us, loss, error, ops[index].bytes))


def _cosine_unless_overflow(embed, reference, *args) -> float:
    """Mean cosine of ``embed(*args)`` to ``reference``; minus infinity when the forward
    overflowed (an operator's outputs passed float's range and the encoder refused its NaNs)."""
    try:
        return mean_cosine(embed(*args), reference)
    except ValueError as error:
        if "overflowed" in str(error) or "non-finite" in str(error):
            return -np.inf
        raise


# ----------------------------------------------------------------------------- choosing
def _search(layers: List[Layer], loss_budget: float, rate: float = 0.0) -> Dict[int, Option]:
    """Greedy multiple-choice: repeatedly take the layer change with the most µs saved per unit
    of loss added (losses of different layers assumed to add up) while the total stays within
    ``loss_budget`` and the change saves at least ``rate`` µs per unit of loss. Then, while a
    chosen layer has an option whose µs + rate·loss is lower (a slower, more accurate one that
    costs less than the rate, or a faster one worth its loss), it moves there, within the
    budget: every move lowers µs + rate·loss, so this ends. Ties go to the earlier layer and
    candidate, so the result is deterministic."""
    chosen: Dict[int, Option] = {}
    total = 0.0
    while True:
        best, best_key = None, None
        for index, layer in enumerate(layers):
            current = chosen.get(index)
            current_us = layer.exact_us if current is None else current.us
            current_loss = 0.0 if current is None else current.loss
            for option in layer.options:
                gain, added = current_us - option.us, option.loss - current_loss
                if gain <= 0 or total + added > loss_budget or gain < rate * added:
                    continue
                key = gain / max(added, 1e-12)
                if best_key is None or key > best_key:
                    best, best_key = (index, option, added), key
        if best is None:
            break
        index, option, added = best
        chosen[index] = option
        total += added
    if rate <= 0:
        return chosen

    def cost(option: Option) -> float:
        return option.us + rate * option.loss

    moved = True
    while moved:
        moved = False
        for index in sorted(chosen):
            current = chosen[index]
            better = [o for o in layers[index].options
                      if cost(o) < cost(current) and total - current.loss + o.loss <= loss_budget]
            if better:
                move = min(better, key=cost)  # min keeps the first of equal costs
                total += move.loss - current.loss
                chosen[index] = move
                moved = True
    return chosen


def _apply(encoder: Encoder, layers: List[Layer], chosen: Dict[int, Option], ops: Dict[int, object]) -> Encoder:
    """``encoder`` with each chosen layer computed by its fitted operator in ``ops``."""
    out = encoder
    for index in sorted(chosen):
        out = out.with_linear(layers[index].block, layers[index].name, ops[index])
    return out


def _refit_in_order(encoder, layers, chosen, fit_sentences, seed, bar) -> Dict[int, object]:
    """Sequential calibration: each chosen operator fitted again, in forward order, on the rows
    the compressed layers before it produce. Returns the fitted operators by layer index."""
    compiled, ops = encoder, {}
    for index in sorted(chosen):
        layer = layers[index]
        bar.layer(layer)
        X = compiled.layer_inputs(fit_sentences, layer.block, layer.name)
        ops[index] = chosen[index].candidate.build(layer.W, layer.bias, X, seed)
        compiled = compiled.with_linear(layer.block, layer.name, ops[index])
        bar.advance()
    return ops


def _verify(encoder, layers, chosen, ops, heldout, reference, min_cosine, bar) -> Dict[int, Option]:
    """While the held-out mean cosine misses the budget, the choice with the least µs saved per
    unit of loss goes back to exact (the others keep their fit)."""
    chosen = dict(chosen)
    while chosen and _cosine_unless_overflow(_apply(encoder, layers, chosen, ops).embed, reference, heldout) < min_cosine:
        worst = min(chosen, key=lambda i: ((layers[i].exact_us - chosen[i].us) / max(chosen[i].loss, 1e-12), i))
        del chosen[worst]
    bar.advance()
    return chosen


def _plan_rows(encoder, layers, chosen, ops, screen, screen_reference, bar) -> List[dict]:
    """One row per layer of the final choice; the model cosine after a layer has every chosen
    operator up to and including it (screening sentences)."""
    rows, partial, cosine = [], encoder, 1.0
    for index, layer in enumerate(layers):
        bar.layer(layer)
        option = chosen.get(index)
        row = dict(block=layer.block, layer=layer.name, kind="dense", params={}, bytes=layer.exact_bytes,
                   us=layer.exact_us, exact_us=layer.exact_us, layer_error=0.0, alone_loss=0.0)
        if option is not None:
            X = partial.layer_inputs(screen, layer.block, layer.name)
            partial = partial.with_linear(layer.block, layer.name, ops[index])
            cosine = mean_cosine(partial.embed(screen), screen_reference)
            settings = option.candidate.settings(*layer.W.shape)
            row.update(kind=option.candidate.kind, params={k: _plain(v) for k, v in settings.items()},
                       bytes=int(ops[index].bytes), us=option.us, alone_loss=option.loss,
                       layer_error=ops[index].relative_error(X, layer.W, layer.bias))
        row["model_cosine"] = cosine
        rows.append(row)
        bar.advance()
    return rows


def _plain(value):
    """A setting as JSON holds it."""
    return value.item() if isinstance(value, np.generic) else value


class CompileProgress:
    """A tqdm bar naming the stage and the current layer (and candidate), or nothing."""

    def __init__(self, enabled: bool):
        self._bar = progress_bar(enabled, 0, "lutmul compile", "step")
        self._stage = ""
        self._where = ""

    def start(self, stage: str, total: int) -> None:
        self._stage = stage
        if self._bar is not None:
            self._bar.reset(total=total)
            self._bar.set_description(f"lutmul compile: {stage}", refresh=True)

    def layer(self, layer: Layer) -> None:
        self._where = f"block {layer.block} {layer.name}"
        if self._bar is not None:
            self._bar.set_postfix_str(self._where, refresh=True)

    def candidate(self, candidate: Candidate) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self._where}: {candidate.label}", refresh=True)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
