"""all-MiniLM-L6-v2 as an ONNX graph, built from the packaged safetensors with ``onnx.helper``.

The peers of lutmul's runtime (ONNX Runtime, OpenVINO) run this graph. It is written in
the form a PyTorch export of BERT has, because that is what the peers' graph optimisers
recognise and fuse:

- LayerNorm decomposed (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add), which
  ONNX Runtime fuses into LayerNormalization and then SkipLayerNormalization;
- attention as MatMul+Add per projection, Reshape to [0, 0, heads, head_dim], Transpose,
  MatMul, Div by √head_dim, Add of the mask ``(1 − mask) · −10000``, Softmax(axis 3),
  MatMul, Transpose, Reshape [0, 0, hidden]: ONNX Runtime's AttentionFusion turns each block
  into one ``Attention`` node, but only for the opset-11/12 versions of these operators;
- erf GELU as Div(√2), Erf, Add(1), Mul(x), Mul(0.5), fused into (Bias)Gelu;
- every intermediate shape recorded (ONNX shape inference), as an export records them.

ONNX Runtime 1.2x at ORT_ENABLE_ALL then runs 6 Attention, 12 SkipLayerNormalization and
6 BiasGelu nodes (see :func:`lutmul.bench.peers.ort_fusions`).

Opset 12 is the default for that reason; ``opset=17`` writes LayerNormalization nodes and
the opset-13 forms instead (ONNX Runtime then fuses LayerNorm and GELU but not attention).
Inputs ``input_ids`` and ``attention_mask`` (int64, [batch, seq], right-padded); output
``sentence_embedding`` [batch, 384]: masked mean of the last hidden states, L2-normalised.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

DEFAULT_OPSET = 12
# BERT's additive mask value in the exported form ONNX Runtime's AttentionFusion requires.
MASK_VALUE = -10000.0


class _GraphBuilder:
    """Collects nodes and initialisers; every value gets a unique, readable name."""

    def __init__(self, opset: int):
        from onnx import helper

        self.helper = helper
        self.opset = opset
        self.nodes: List = []
        self.initializers: List = []
        self._counts: Dict[str, int] = {}

    def _name(self, stem: str) -> str:
        count = self._counts.get(stem, 0)
        self._counts[stem] = count + 1
        return stem if count == 0 else f"{stem}_{count}"

    def constant(self, stem: str, value) -> str:
        from onnx import numpy_helper

        name = self._name(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: List[str], stem: Optional[str] = None, **attributes) -> str:
        output = self._name(stem or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [output], name=output + "_node", **attributes))
        return output

    # Operators whose axes moved from an attribute to an input in opset 13.
    def unsqueeze(self, x: str, axes: List[int], stem: str) -> str:
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, self.constant(stem + "_axes", np.array(axes, np.int64))], stem)
        return self.op("Unsqueeze", [x], stem, axes=axes)

    def reduce_sum(self, x: str, axes: List[int], stem: str, keepdims: int = 0) -> str:
        if self.opset >= 13:
            return self.op("ReduceSum", [x, self.constant(stem + "_axes", np.array(axes, np.int64))], stem,
                           keepdims=keepdims)
        return self.op("ReduceSum", [x], stem, axes=axes, keepdims=keepdims)

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, stem: str) -> str:
        """x·Wᵀ + b with W stored (out, in) as torch keeps it: MatMul then Add, as exported."""
        w = self.constant(stem + ".weight", np.ascontiguousarray(weight.T, dtype=np.float32))
        b = self.constant(stem + ".bias", bias.astype(np.float32))
        return self.op("Add", [self.op("MatMul", [x, w], stem + "_matmul"), b], stem + "_add")

    def layer_norm(self, x: str, gamma: np.ndarray, beta: np.ndarray, eps: float, stem: str) -> str:
        g = self.constant(stem + ".weight", gamma.astype(np.float32))
        b = self.constant(stem + ".bias", beta.astype(np.float32))
        if self.opset >= 17:
            return self.op("LayerNormalization", [x, g, b], stem, axis=-1, epsilon=eps)
        mean = self.op("ReduceMean", [x], stem + "_mean", axes=[-1], keepdims=1)
        centred = self.op("Sub", [x, mean], stem + "_centred")
        square = self.op("Pow", [centred, self.constant(stem + "_two", np.float32(2.0))], stem + "_square")
        variance = self.op("ReduceMean", [square], stem + "_variance", axes=[-1], keepdims=1)
        std = self.op("Sqrt", [self.op("Add", [variance, self.constant(stem + "_eps", np.float32(eps))], stem + "_veps")],
                      stem + "_std")
        normalised = self.op("Div", [centred, std], stem + "_normalised")
        return self.op("Add", [self.op("Mul", [normalised, g], stem + "_scaled"), b], stem)

    def gelu(self, x: str, stem: str) -> str:
        scaled = self.op("Div", [x, self.constant(stem + "_sqrt2", np.float32(math.sqrt(2.0)))], stem + "_div")
        erf = self.op("Erf", [scaled], stem + "_erf")
        one_plus = self.op("Add", [erf, self.constant(stem + "_one", np.float32(1.0))], stem + "_add")
        return self.op("Mul", [self.op("Mul", [x, one_plus], stem + "_mul"), self.constant(stem + "_half", np.float32(0.5))],
                       stem)


def build_minilm_graph(weights: Dict[str, np.ndarray], config: dict, opset: int = DEFAULT_OPSET):
    """The onnx.ModelProto of the encoder + mean pooling + normalisation for ``weights``
    (the safetensors tensors by name) and ``config`` (config.json)."""
    from onnx import TensorProto, checker, helper, shape_inference

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])
    g = _GraphBuilder(opset)
    w = weights

    # Embeddings: word[ids] + position[0..S) + token_type[0], then LayerNorm.
    words = g.op("Gather", [g.constant("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]),
                            "input_ids"], "word_embeddings", axis=0)
    seq = g.op("Gather", [g.op("Shape", ["input_ids"], "ids_shape"), g.constant("one_index", np.int64(1))], "seq_len",
               axis=0)
    seq_1d = g.unsqueeze(seq, [0], "seq_len_1d")
    positions = g.op("Slice", [g.constant("embeddings.position_embeddings.weight",
                                          w["embeddings.position_embeddings.weight"]),
                               g.constant("slice_start", np.array([0], np.int64)), seq_1d,
                               g.constant("slice_axis", np.array([0], np.int64))], "position_embeddings")
    summed = g.op("Add", [g.op("Add", [words, positions], "word_plus_position"),
                          g.constant("token_type_zero", w["embeddings.token_type_embeddings.weight"][0])], "embedded")
    h = g.layer_norm(summed, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps, "embeddings.LayerNorm")

    # (1 − mask) · −10000 broadcast over heads and queries: [B, 1, 1, S], shared by every block.
    mask4 = g.unsqueeze(g.unsqueeze("attention_mask", [1], "mask_unsqueeze_1"), [2], "mask_unsqueeze_2")
    inverted = g.op("Sub", [g.constant("mask_one", np.float32(1.0)),
                            g.op("Cast", [mask4], "mask_float", to=TensorProto.FLOAT)], "mask_inverted")
    additive_mask = g.op("Mul", [inverted, g.constant("mask_value", np.float32(MASK_VALUE))], "additive_mask")

    split_shape = g.constant("split_heads_shape", np.array([0, 0, heads, head_dim], np.int64))
    merge_shape = g.constant("merge_heads_shape", np.array([0, 0, hidden], np.int64))
    scale = g.constant("sqrt_head_dim", np.float32(math.sqrt(head_dim)))
    for block in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{block}."

        def lin(name: str, x: str) -> str:
            return g.linear(x, w[p + name + ".weight"], w[p + name + ".bias"], p + name)

        q = g.op("Transpose", [g.op("Reshape", [lin("attention.self.query", h), split_shape], p + "q_heads")],
                 p + "q", perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [lin("attention.self.key", h), split_shape], p + "k_heads")],
                 p + "k_t", perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [lin("attention.self.value", h), split_shape], p + "v_heads")],
                 p + "v", perm=[0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k], p + "qk"), scale], p + "scores")
        probabilities = g.op("Softmax", [g.op("Add", [scores, additive_mask], p + "masked_scores")], p + "probs",
                             axis=3)
        context = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probabilities, v], p + "context_heads")],
                                        p + "context_t", perm=[0, 2, 1, 3]), merge_shape], p + "context")
        attended = g.layer_norm(g.op("Add", [lin("attention.output.dense", context), h], p + "attn_residual"),
                                w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                                eps, p + "attention.output.LayerNorm")
        inner = g.gelu(lin("intermediate.dense", attended), p + "gelu")
        h = g.layer_norm(g.op("Add", [lin("output.dense", inner), attended], p + "ffn_residual"),
                         w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps, p + "output.LayerNorm")

    # Masked mean over tokens (sentence-transformers clamps the count at 1e-9), then unit length.
    mask_float = g.op("Cast", ["attention_mask"], "pool_mask", to=TensorProto.FLOAT)
    masked = g.op("Mul", [h, g.unsqueeze(mask_float, [2], "pool_mask_3d")], "masked_states")
    summed_states = g.reduce_sum(masked, [1], "summed_states")
    counts = g.op("Max", [g.reduce_sum(mask_float, [1], "token_counts", keepdims=1),
                          g.constant("count_floor", np.float32(1e-9))], "token_counts_clamped")
    mean = g.op("Div", [summed_states, counts], "mean_pooled")
    norm = g.op("Max", [g.op("ReduceL2", [mean], "norm", axes=[1], keepdims=1), g.constant("norm_floor", np.float32(1e-12))],
                "norm_clamped")
    g.nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"], name="normalise"))

    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
              for name in ("input_ids", "attention_mask")]
    output = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])
    graph = helper.make_graph(g.nodes, "all-MiniLM-L6-v2", inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="lutmul.bench")
    model.ir_version = 8  # readable by every onnxruntime and openvino release of the last years
    checker.check_model(model)
    # Shapes of the intermediate values, as an export records them: ONNX Runtime's
    # SkipLayerNormFusion needs the hidden size of both residual inputs to be known.
    return shape_inference.infer_shapes(model, strict_mode=True)


def write_minilm_onnx(path: Path, model_path: Optional[Path] = None, opset: int = DEFAULT_OPSET) -> Path:
    """Builds the graph from the packaged model (or ``model_path``) and writes it to ``path``."""
    import json

    import onnx
    from safetensors.numpy import load_file

    from .minilm import EXPECTED_CONFIG, model_dir

    folder = Path(model_path) if model_path is not None else model_dir()
    config = json.loads((folder / "config.json").read_text())
    for key, expected in EXPECTED_CONFIG.items():
        if config.get(key) != expected:
            raise ValueError(f"{folder}/config.json: {key} is {config.get(key)!r}, the graph is built for {expected!r}")
    model = build_minilm_graph(load_file(str(folder / "model.safetensors")), config, opset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
