"""The runtime benchmark: ``python -m lutmul.bench --runtime``.

all-MiniLM-L6-v2 end to end (sentences in, unit-length embeddings out, tokenisation
included) in every engine of :mod:`.peers`, on real English sentences of natural lengths:

- each engine's batch size (and OpenVINO's performance hint) chosen by a short trial on a
  subset, per thread count;
- sentences/s at 1 thread and at all threads: the median of ``repeats`` passes over all
  the sentences, the engines in a new random order on every repetition;
- batch-1 latency of a 16-token sentence (median over many calls), each engine alone in a
  fresh process: in the measuring process the other engines' thread pools (ONNX Runtime's
  spin) take the second core from whichever engine is timed;
- peak resident memory while embedding, each engine alone in a fresh process (1 thread);
- each engine's embedding cosine (mean, min) and top-10 neighbour overlap against the
  numpy reference.

It writes ``runtime_results.json``, ``runtime_report.md`` and ``runtime_speed.png``.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .timing import all_threads, cpu_flags, machine, threads

FORMAT_VERSION = 1
LATENCY_TOKENS = 16  # [CLS] + 14 word pieces + [SEP]


@dataclass
class RuntimeConfig:
    out: Path = Path("lutmul-bench")
    markdown: Optional[Path] = None  # where runtime_report.md goes (default: inside `out`)
    sentences: int = 2000
    repeats: int = 3
    sweep_sentences: int = 128  # the batch-size trial runs on this many of the sentences
    latency_seconds: float = 1.0  # per engine and thread count, at least 20 calls
    memory: bool = True
    engines: Optional[Sequence[str]] = None  # keys of peers.ENGINE_KEYS; None: all
    thread_counts: Optional[Sequence[int]] = None  # None: 1 and all threads
    seed: int = 0
    calibration: int = 2000  # sentences the compiled engines are compiled on (never measured)
    compile_options: Dict[str, object] = field(default_factory=dict)  # more arguments of lutmul.runtime.compile
    progress: bool = True
    command: List[str] = field(default_factory=lambda: list(sys.argv))


def _log(config: RuntimeConfig, message: str) -> None:
    if config.progress:
        print(f"[runtime {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sample_sentences(count: int, seed: int = 0) -> List[str]:
    """``count`` distinct real sentences in a seeded random order (their natural lengths)."""
    from .products import english_sentences

    sentences = english_sentences()
    if count > len(sentences):
        raise ValueError(f"{count} sentences asked for, the installed documentation has {len(sentences)}")
    return [sentences[i] for i in np.random.default_rng(seed).choice(len(sentences), count, replace=False)]


def latency_sentence(batcher, seed: int = 0) -> str:
    """A real sentence of exactly LATENCY_TOKENS tokens."""
    from .products import english_sentences

    sentences = english_sentences()
    order = np.random.default_rng(seed + 1).permutation(len(sentences))
    candidates = [sentences[i] for i in order[:2000]]
    for sentence, count in zip(candidates, batcher.token_counts(candidates)):
        if count == LATENCY_TOKENS:
            return sentence
    raise ValueError(f"no sentence of {LATENCY_TOKENS} tokens among 2000 tried")


def calibration_sentences(measured: Sequence[str], count: int, seed: int = 0) -> List[str]:
    """``count`` real sentences that are not among ``measured``, in a seeded order."""
    from .products import english_sentences

    taken = set(measured)
    rest = [s for s in english_sentences() if s not in taken]
    if count > len(rest):
        raise ValueError(f"{count} calibration sentences asked for, {len(rest)} remain beside the measured ones")
    return [rest[i] for i in np.random.default_rng(seed + 2).choice(len(rest), count, replace=False)]


def _compiler_digest() -> str:
    """Eight hex digits that change with lutmul's version, the default candidates and the default
    saving rate, so that a kept compiled file is reused only by the compiler that made it."""
    import hashlib

    import lutmul
    from lutmul.runtime import default_candidates
    from lutmul.runtime.compile import DEFAULT_MIN_SAVING

    text = f"{lutmul.__version__}|{DEFAULT_MIN_SAVING}|" + "|".join(c.label for c in default_candidates())
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def compile_engines(config: "RuntimeConfig", keys: Sequence[str], models, model_path: Path,
                    sentences: Sequence[str]) -> Dict[str, dict]:
    """Compiles the model for every compiled engine among ``keys`` (1 thread, seed, calibration
    sentences disjoint from the measured ones) into the scratch folder, reusing a file from an
    earlier run with the same settings kept in ``config.out``. Returns each one's plan and summary."""
    import shutil

    from lutmul.runtime import compile as compile_encoder
    from lutmul.runtime import load, load_encoder

    from .peers import COMPILED_PREFIX, compiled_file

    compiled = {}
    calibration = None
    for key in keys:
        if not key.startswith(COMPILED_PREFIX):
            continue
        budget = float(key[len(COMPILED_PREFIX):])
        options = re.sub(r"[^A-Za-z0-9.,_-]", "", "".join(f"-{k}{v}" for k, v in sorted(config.compile_options.items())))
        kept = (config.out / "compiled" /
                f"{key}-seed{config.seed}-calibration{config.calibration}{options}-{_compiler_digest()}.lutmul")
        started = time.perf_counter()
        reused = kept.is_file()
        if reused:
            _log(config, f"{key}: reusing {kept}")
            encoder = load(kept)
        else:
            if calibration is None:
                calibration = calibration_sentences(sentences, config.calibration, config.seed)
            _log(config, f"{key}: compiling on {len(calibration)} calibration sentences (1 thread)")
            with threads(all_threads()):
                encoder = compile_encoder(load_encoder(model_path), calibration, min_cosine=budget, threads=1,
                                          progress=config.progress, seed=config.seed, **config.compile_options)
            kept.parent.mkdir(parents=True, exist_ok=True)
            encoder.save(kept)
        shutil.copyfile(kept, compiled_file(models, key))
        compiled[key] = {"plan": encoder.plan, "summary": encoder.compile_summary, "file": str(kept),
                         "options": {k: str(v) for k, v in config.compile_options.items()},
                         "compile_seconds": time.perf_counter() - started, "reused": reused}
    return compiled


# ---------------------------------------------------------------------------- accuracy
def agreement(embeddings: np.ndarray, reference: np.ndarray, k: int = 10) -> Dict[str, float]:
    """Cosine of each embedding with its reference (mean, min) and the mean share of each
    sentence's k nearest neighbours (by cosine, itself excluded) that the reference shares."""
    from lutmul.runtime.quality import neighbour_overlap

    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    r = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    cosines = np.sum(e * r, axis=1)
    return {"cosine_mean": float(cosines.mean()), "cosine_min": float(cosines.min()),
            "top10_overlap": neighbour_overlap(embeddings, reference, k)}


# ---------------------------------------------------------------------------- speed
def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def choose_batching(engine, sentences: Sequence[str]) -> dict:
    """Tries each batch size once on ``sentences`` (OpenVINO: each hint at batch 32 first) and
    keeps the fastest; returns what was tried, in sentences/s."""
    from .peers import OpenVinoEngine

    engine.embed(sentences[:8], engine.batch_sizes[0])  # first-call costs out of the trial
    chosen: dict = {}
    if isinstance(engine, OpenVinoEngine):
        trial = {}
        for hint in engine.HINTS:
            engine.set_hint(hint)
            engine.embed(sentences[:8], 8)
            trial[hint] = len(sentences) / _seconds(lambda: engine.embed(sentences, 32))
        engine.set_hint(max(trial, key=trial.get))
        chosen.update(hint=engine.hint, hint_trial=trial)
    sweep = {str(b): len(sentences) / _seconds(lambda b=b: engine.embed(sentences, b)) for b in engine.batch_sizes}
    best = max(sweep, key=sweep.get)
    chosen.update(batch_size=None if best == "None" else int(best), sweep=sweep)
    return chosen


def batch1_latency(engine, sentence: str, seconds: float) -> float:
    """Median seconds of one ``embed([sentence])`` call."""
    batch = 1 if engine.batch_sizes[0] is not None else None
    for _ in range(3):
        engine.embed([sentence], batch)
    samples: List[float] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < 20 or (time.perf_counter() < deadline and len(samples) < 2000):
        samples.append(_seconds(lambda: engine.embed([sentence], batch)))
    return float(np.median(samples))


# ---------------------------------------------------------------------------- memory (own process)
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """The process's peak resident set (VmHWM) since start or since the last reset."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> bool:
    try:  # Linux ≥ 4.0: "5" resets VmHWM to the current resident set
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _probe_engine(request: dict):
    """The engine a probe's request names, prepared for its thread count (inside threads())."""
    from .minilm import model_dir
    from .peers import Batcher, PeerModels, make_engine

    model_path = Path(request["model_path"]) if request.get("model_path") else model_dir()
    models = PeerModels(Path(request["folder"]), Path(request["fp32"]), Path(request["int8"]))
    engine = make_engine(request["engine"], models, model_path, Batcher(model_path))
    engine.prepare(request["threads"])
    if request.get("hint"):
        engine.set_hint(request["hint"])
    return engine


def memory_probe(request: dict) -> dict:
    """Runs in a fresh process: loads one engine, embeds one sentence (lazy set-up), then all
    the sentences; reports the resident set after loading and its peak while embedding."""
    sentences = json.loads(Path(request["sentences_file"]).read_text())
    start = _rss_bytes()
    with threads(request["threads"]):
        engine = _probe_engine(request)
        engine.embed(sentences[:1], request["batch_size"])
        loaded = _rss_bytes()
        reset = _reset_peak_rss()
        engine.embed(sentences, request["batch_size"])
    peak = _peak_rss_bytes()
    return {"rss_start": start, "rss_loaded": loaded, "rss_peak": peak, "growth": max(0, peak - loaded),
            "peak_reset": reset}


def latency_probe(request: dict) -> dict:
    """Runs in a fresh process: one engine's batch-1 latency on the request's sentence."""
    with threads(request["threads"]):
        engine = _probe_engine(request)
        return {"seconds": batch1_latency(engine, request["text"], request["seconds"])}


PROBES = {"memory": memory_probe, "latency": latency_probe}


def _run_probe(request: dict, folder: Path) -> dict:
    """Runs PROBES[request["probe"]] in a fresh Python process and returns its result."""
    path = folder / f"probe_{request['probe']}_{request['engine']}_{request['threads']}.json"
    path.write_text(json.dumps(request))
    completed = subprocess.run([sys.executable, "-m", "lutmul.bench.runtime_bench", "--probe", str(path)],
                               capture_output=True, text=True, timeout=1800)
    if completed.returncode != 0:
        raise RuntimeError(f"{request['probe']} probe of {request['engine']} failed: {completed.stderr.strip()[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- the run
def _versions() -> Dict[str, Optional[str]]:
    versions = {}
    for name in ("onnx", "onnxruntime", "openvino", "tokenizers"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return versions


def _load_average() -> Optional[float]:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def run_runtime(config: RuntimeConfig) -> dict:
    """Measures every engine and writes the JSON, the Markdown report and the plot."""
    from . import runtime_report
    from .minilm import model_dir
    from .peers import ENGINE_KEYS, Batcher, PeerModels, make_engine, ort_fusions

    started = time.time()
    model_path = model_dir()
    batcher = Batcher(model_path)
    sentences = sample_sentences(config.sentences, config.seed)
    counts = batcher.token_counts(sentences)
    latency_text = latency_sentence(batcher, config.seed)
    thread_counts = sorted(set(config.thread_counts or (1, all_threads())))
    keys = [k for k in ENGINE_KEYS if config.engines is None or k in config.engines]
    load_before = _load_average()

    with tempfile.TemporaryDirectory(prefix="lutmul-runtime-") as scratch:
        scratch = Path(scratch)
        _log(config, "building the ONNX graph and its int8 version")
        models = PeerModels.build(scratch, model_path)
        fusions = {"fp32": ort_fusions(models.fp32), "int8": ort_fusions(models.int8)}
        compiled = compile_engines(config, keys, models, model_path, sentences)
        engines, skipped = [], []
        with threads(1):
            for key in keys:
                try:
                    engines.append(make_engine(key, models, model_path, batcher))
                except ImportError as error:  # a package this engine needs is missing
                    skipped.append({"key": key, "reason": f"{type(error).__name__}: {error}"})
                    _log(config, f"skipping {key}: {error}")
        records = {e.key: {"key": e.key, "title": e.title, "batching": {}, "throughput": {}, "latency_seconds": {},
                           "embeddings": None} for e in engines}

        probe_base = {"model_path": str(model_path), "folder": str(scratch), "fp32": str(models.fp32),
                      "int8": str(models.int8)}
        rng = np.random.default_rng(config.seed)
        sweep = sentences[:config.sweep_sentences]
        parallelism = os.environ.get("TOKENIZERS_PARALLELISM")
        for n in thread_counts:
            # tokenizers parallelises batches over every CPU unless told not to
            os.environ["TOKENIZERS_PARALLELISM"] = "false" if n == 1 else "true"
            with threads(n):
                for engine in engines:
                    engine.prepare(n)
                    _log(config, f"{n} thread(s): choosing the batching of {engine.key}")
                    records[engine.key]["batching"][str(n)] = choose_batching(engine, sweep)
                for rep in range(config.repeats):
                    for i in rng.permutation(len(engines)):
                        engine = engines[i]
                        batching = records[engine.key]["batching"][str(n)]
                        if "hint" in batching:
                            engine.set_hint(batching["hint"])
                        engine.embed(sentences[:16], batching["batch_size"])  # settle: caches, pools
                        start = time.perf_counter()
                        embeddings = engine.embed(sentences, batching["batch_size"])
                        seconds = time.perf_counter() - start
                        records[engine.key]["throughput"].setdefault(str(n), []).append(len(sentences) / seconds)
                        if records[engine.key]["embeddings"] is None:
                            records[engine.key]["embeddings"] = embeddings
                        _log(config, f"{n} thread(s), pass {rep + 1}/{config.repeats}: {engine.key} "
                                     f"{len(sentences) / seconds:.1f} sentences/s")
                for engine in engines:
                    _log(config, f"{n} thread(s): batch-1 latency of {engine.key} in its own process")
                    request = dict(probe_base, probe="latency", engine=engine.key, threads=n, text=latency_text,
                                   seconds=config.latency_seconds,
                                   # OpenVINO's setting for one request at a time
                                   hint="LATENCY" if hasattr(engine, "set_hint") else None)
                    records[engine.key]["latency_seconds"][str(n)] = _run_probe(request, scratch)["seconds"]

        if parallelism is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = parallelism

        reference = records["numpy"]["embeddings"] if "numpy" in records else None
        if reference is None:
            from .minilm import MiniLM

            with threads(all_threads()):
                reference = MiniLM.load().encode(sentences)
        for record in records.values():
            record["accuracy"] = agreement(record.pop("embeddings"), reference)

        if config.memory:
            n = thread_counts[0]  # one thread: what memory needs barely depends on it, and it runs alone sooner
            sentences_file = scratch / "sentences.json"
            sentences_file.write_text(json.dumps(sentences))
            for engine in engines:
                _log(config, f"peak memory of {engine.key} in its own process")
                batching = records[engine.key]["batching"][str(n)]
                request = dict(probe_base, probe="memory", engine=engine.key, threads=n,
                               batch_size=batching["batch_size"], hint=batching.get("hint"),
                               sentences_file=str(sentences_file))
                try:
                    records[engine.key]["memory"] = dict(_run_probe(request, scratch), threads=n)
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    records[engine.key]["memory"] = {"error": str(error)}
        model_bytes = {"fp32": models.fp32.stat().st_size, "int8": models.int8.stat().st_size}

    for engine in engines:
        records[engine.key]["info"] = engine.info
        if engine.key in compiled:
            records[engine.key]["compiled"] = compiled[engine.key]
        records[engine.key]["sentences_per_second"] = {n: float(np.median(v))
                                                       for n, v in records[engine.key]["throughput"].items()}
    result = {
        "format": FORMAT_VERSION,
        "command": " ".join(config.command),
        "started": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "elapsed_seconds": time.time() - started,
        "machine": dict(machine(), versions=_versions(), cpu_flags=sorted(cpu_flags())),
        "thread_counts": thread_counts,
        "repeats": config.repeats,
        "sentences": {"count": len(sentences), "source": "lutmul.bench.products.english_sentences(), seeded sample",
                      "seed": config.seed, "tokens_mean": float(np.mean(counts)),
                      "tokens_median": float(np.median(counts)), "tokens_max": int(max(counts)),
                      "sweep_sentences": len(sweep)},
        "latency_sentence": {"text": latency_text, "tokens": LATENCY_TOKENS},
        "onnx": {"bytes": model_bytes, "ort_fusions": fusions},
        "engines": [records[e.key] for e in engines],
        "skipped_engines": skipped,
        "load_average": {"before": load_before, "after": _load_average()},
    }
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "runtime_results.json").write_text(json.dumps(result, indent=1))
    result["report"] = str(runtime_report.write(result, config.out, config.markdown))
    return result


if __name__ == "__main__":  # a probe's child process
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        probe_request = json.loads(Path(sys.argv[2]).read_text())
        print(json.dumps(PROBES[probe_request["probe"]](probe_request)))
    else:
        sys.exit("usage: python -m lutmul.bench.runtime_bench --probe REQUEST_JSON (used by --runtime)")
