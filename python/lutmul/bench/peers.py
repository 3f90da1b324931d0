"""The engines the runtime benchmark compares: lutmul's runtime and its peers.

Each engine turns a list of sentences into unit-length embeddings (n, 384), in input order,
the tokenisation included. The peers run the ONNX graph of :mod:`.onnx_graph` and are
batched as well as they allow: sentences sorted by token count, each batch padded only to
its longest sentence. Thread counts are fixed when an engine is prepared for them (ONNX
Runtime and OpenVINO take them at session creation), so an engine keeps one session per
thread count.
"""

from __future__ import annotations

import abc
import collections
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

HIDDEN = 384  # all-MiniLM-L6-v2's embedding size
# Batch sizes tried for every engine that pads (the best one is used, see runtime_bench).
BATCH_SIZES = (1, 8, 32, 64, 128)
# ONNX Runtime's fused operators, as they appear in its optimised graph.
ORT_FUSED_OPS = ("Attention", "SkipLayerNormalization", "LayerNormalization", "BiasGelu", "Gelu", "FastGelu",
                 "EmbedLayerNormalization", "FusedMatMul", "FusedGemm", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
                 "QAttention", "DynamicQuantizeLinear", "MatMulInteger")


@dataclass
class Batch:
    rows: np.ndarray  # the batch's positions in the input list
    input_ids: np.ndarray  # (B, L) int64, right-padded with 0
    attention_mask: np.ndarray  # (B, L) int64


class Batcher:
    """Tokenises with the model's tokenizer.json (truncated at its max_seq_length) and cuts
    the sentences, sorted by token count, into batches padded to their own longest."""

    def __init__(self, model_path: Path):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self.tokenizer.no_padding()
        max_length = json.loads((model_path / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        self.tokenizer.enable_truncation(max_length=int(max_length))

    def token_counts(self, sentences: Sequence[str]) -> List[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(sentences))]

    def batches(self, sentences: Sequence[str], batch_size: int) -> Iterator[Batch]:
        encodings = self.tokenizer.encode_batch(list(sentences))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            rows = np.array(order[start:start + batch_size])
            length = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), length), dtype=np.int64)
            mask = np.zeros((len(rows), length), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            yield Batch(rows, ids, mask)


class Engine(abc.ABC):
    """An engine under test: ``prepare(threads)`` once per thread count, then ``embed``.
    ``batch_sizes`` are the sizes worth trying; ``(None,)`` when the engine batches on its own."""

    def __init__(self, key: str, title: str, batch_sizes: Tuple[Optional[int], ...] = BATCH_SIZES,
                 info: Optional[Dict[str, object]] = None):
        self.key, self.title, self.batch_sizes = key, title, batch_sizes
        self.info: Dict[str, object] = dict(info or {})

    @abc.abstractmethod
    def prepare(self, threads: int) -> None:
        """Makes the next ``embed`` calls run on ``threads`` threads."""

    @abc.abstractmethod
    def embed(self, sentences: Sequence[str], batch_size: Optional[int]) -> np.ndarray:
        """Unit-length embeddings (n, HIDDEN) float32 in the order of ``sentences``."""


class NumpyReference(Engine):
    """The harness's numpy MiniLM (groups of equal length, no padding); threads through BLAS."""

    def __init__(self):
        from .minilm import MiniLM

        super().__init__("numpy", "numpy reference", (None,))
        self.model = MiniLM.load()

    def prepare(self, threads: int) -> None:  # the caller's threadpool limits set the BLAS threads
        pass

    def embed(self, sentences, batch_size=None):
        return self.model.encode(sentences)


class LutmulRuntime(Engine):
    """lutmul's own runtime (``lutmul.runtime``) at a precision: exact f32 operators, or bfloat16
    ones (Bf16Linear); threads through lutmul."""

    def __init__(self, model_path: Path, precision: str = "f32", key: Optional[str] = None, title: Optional[str] = None):
        from lutmul.runtime import load_encoder

        import lutmul

        default_key, default_title = ("lutmul", "lutmul runtime (exact f32)") if precision == "f32" else \
            (f"lutmul-{precision}", f"lutmul runtime ({precision})")
        super().__init__(key or default_key, title or default_title,
                         info={"lutmul": lutmul.__version__, "isa": lutmul.isa(), "precision": precision,
                               "exact products": lutmul.exact_product_backend()})
        self.encoder = load_encoder(model_path, precision=precision)
        if self.encoder.compile_summary is not None:
            self.info["compiled"] = self.encoder.compile_summary

    def prepare(self, threads: int) -> None:  # the caller's lutmul.set_num_threads applies
        pass

    def embed(self, sentences, batch_size=64):
        return np.asarray(self.encoder.embed(list(sentences), batch_size=batch_size))


class OnnxRuntimeEngine(Engine):
    """ONNX Runtime's CPU provider: ORT_ENABLE_ALL, sequential, intra-op threads = threads."""

    def __init__(self, key: str, title: str, onnx_path: Path, batcher: Batcher):
        import onnxruntime

        super().__init__(key, title, info={"onnxruntime": onnxruntime.__version__, "model": onnx_path.name})
        self.path, self.batcher = onnx_path, batcher
        self.sessions: Dict[int, object] = {}
        self.session = None

    def prepare(self, threads: int) -> None:
        import onnxruntime as ort

        if threads not in self.sessions:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self.sessions[threads] = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.session = self.sessions[threads]

    def embed(self, sentences, batch_size=32):
        out = np.empty((len(sentences), HIDDEN), dtype=np.float32)
        for batch in self.batcher.batches(sentences, batch_size):
            out[batch.rows] = self.session.run(["sentence_embedding"], {"input_ids": batch.input_ids,
                                                                         "attention_mask": batch.attention_mask})[0]
        return out


class OpenVinoEngine(Engine):
    """OpenVINO's CPU plugin on the same ONNX graph, at f32 or at its default precision.

    The LATENCY hint runs one request at a time with every thread on it; THROUGHPUT runs
    several streams, so batches are queued asynchronously to keep them all busy.
    """

    HINTS = ("LATENCY", "THROUGHPUT")

    def __init__(self, key: str, title: str, onnx_path: Path, batcher: Batcher, precision: Optional[str]):
        import openvino

        super().__init__(key, title, info={"openvino": openvino.__version__, "requested_precision": precision or "default"})
        self.core = openvino.Core()
        self.model = self.core.read_model(str(onnx_path))
        self.batcher, self.precision = batcher, precision
        self.hint = "LATENCY"
        self.compiled: Dict[Tuple[int, str], object] = {}
        self.current = None
        self.threads = 1

    def set_hint(self, hint: str) -> None:
        if hint not in self.HINTS:
            raise ValueError(f"OpenVINO performance hint must be one of {self.HINTS}, got {hint!r}")
        self.hint = hint
        self.prepare(self.threads)

    def prepare(self, threads: int) -> None:
        self.threads = threads
        key = (threads, self.hint)
        if key not in self.compiled:
            config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": self.hint}
            if self.precision:
                config["INFERENCE_PRECISION_HINT"] = self.precision
            compiled = self.core.compile_model(self.model, "CPU", config)
            self.compiled[key] = compiled
            precision = compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino.Type: "f32", "bf16", ...
            self.info["precision_used"] = precision.to_string() if hasattr(precision, "to_string") else str(precision)
            self.info.setdefault("streams", {})[f"{threads}/{self.hint}"] = int(compiled.get_property("NUM_STREAMS"))
        self.current = self.compiled[key]

    def embed(self, sentences, batch_size=32):
        out = np.empty((len(sentences), HIDDEN), dtype=np.float32)
        if self.hint == "LATENCY":
            request = self.current.create_infer_request()
            for batch in self.batcher.batches(sentences, batch_size):
                request.infer({"input_ids": batch.input_ids, "attention_mask": batch.attention_mask})
                out[batch.rows] = request.get_output_tensor(0).data
            return out
        # THROUGHPUT: a ring of requests, each collected before it is reused. No Python callbacks:
        # OpenVINO's AsyncInferQueue callbacks need the GIL from its threads and deadlocked here.
        requests = [self.current.create_infer_request()
                    for _ in range(int(self.current.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))]
        pending: List[Optional[np.ndarray]] = [None] * len(requests)

        def collect(slot: int) -> None:
            if pending[slot] is not None:
                requests[slot].wait()
                out[pending[slot]] = requests[slot].get_output_tensor(0).data
                pending[slot] = None

        for i, batch in enumerate(self.batcher.batches(sentences, batch_size)):
            slot = i % len(requests)
            collect(slot)
            requests[slot].start_async({"input_ids": batch.input_ids, "attention_mask": batch.attention_mask})
            pending[slot] = batch.rows
        for slot in range(len(requests)):
            collect(slot)
        return out


# ---------------------------------------------------------------------------- models for the peers
@dataclass
class PeerModels:
    """The ONNX files the peers run, written into ``folder``."""

    folder: Path
    fp32: Path
    int8: Path

    @classmethod
    def build(cls, folder: Path, model_path: Optional[Path] = None) -> "PeerModels":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from .onnx_graph import write_minilm_onnx

        folder = Path(folder)
        fp32 = write_minilm_onnx(folder / "minilm_fp32.onnx", model_path)
        int8 = folder / "minilm_int8.onnx"
        # The "ONNX int8" recipe sentence-transformers documents: dynamic, per-channel int8 weights.
        quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8)
        return cls(folder, fp32, int8)


def ort_fusions(onnx_path: Path) -> Dict[str, int]:
    """The fused operators ONNX Runtime's ORT_ENABLE_ALL optimiser leaves in ``onnx_path``'s graph."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(folder) / "optimised.onnx")
        options.log_severity_level = 3  # its warning that the saved graph is for this machine only
        ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        counts = collections.Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)
    return {op: counts[op] for op in ORT_FUSED_OPS if counts[op]}


# The compiled engines: lutmul.runtime.compile at each budget (min cosine), compiled by the
# benchmark on calibration sentences it never measures (runtime_bench.compile_engines).
COMPILED_PREFIX = "lutmul-compiled-"
COMPILED_BUDGETS = ("0.99", "0.995", "0.999")
ENGINE_KEYS = ("numpy", "ort-fp32", "ort-int8", "openvino-f32", "openvino-default", "lutmul", "lutmul-bf16",
               *(COMPILED_PREFIX + budget for budget in COMPILED_BUDGETS))


def compiled_file(models: "PeerModels", key: str) -> Path:
    """Where the benchmark keeps the compiled encoder of a compiled engine."""
    return models.folder / f"{key}.lutmul"


def make_engine(key: str, models: PeerModels, model_path: Path, batcher: Batcher) -> Engine:
    """One engine by key; ImportError (with the reason) when its package is missing."""
    if key == "numpy":
        return NumpyReference()
    if key == "lutmul":
        return LutmulRuntime(model_path)
    if key == "lutmul-bf16":
        return LutmulRuntime(model_path, "bf16")
    if key.startswith(COMPILED_PREFIX) and key in ENGINE_KEYS:
        budget = key[len(COMPILED_PREFIX):]
        return LutmulRuntime(compiled_file(models, key), key=key, title=f"lutmul compiled (min cosine {budget})")
    if key == "ort-fp32":
        return OnnxRuntimeEngine(key, "ONNX Runtime fp32", models.fp32, batcher)
    if key == "ort-int8":
        return OnnxRuntimeEngine(key, "ONNX Runtime int8 (dynamic, per-channel)", models.int8, batcher)
    if key == "openvino-f32":
        return OpenVinoEngine(key, "OpenVINO f32", models.fp32, batcher, "f32")
    if key == "openvino-default":
        return OpenVinoEngine(key, "OpenVINO default precision", models.fp32, batcher, None)
    raise ValueError(f"unknown engine {key!r}; engines: {', '.join(ENGINE_KEYS)}")
