"""Compressed linear operators behind one contract: ``Y = X @ W + bias``.

Every operator has ``forward(X)`` (also ``op(X)``), ``bytes``, ``multiply_adds_per_row`` and
``relative_error(X, W, bias)``, with the same numpy conventions as :class:`lutmul.Maddness`
(float32 in either memory order used in place, other dtypes converted once, bad shapes and
non-finite values raise ``ValueError``; the GIL is released).
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence

import numpy as np

from . import _core


def _matrix(x, name: str) -> np.ndarray:
    from . import _as_matrix  # one conversion rule for the whole package

    return _as_matrix(x, name)


def _bias(bias, m: int) -> Optional[np.ndarray]:
    from . import _as_bias

    return _as_bias(bias, m)


class _Operator:
    _core: _core.LinearOperator

    @property
    def kind(self) -> str:
        return self._core.kind

    @property
    def input_dim(self) -> int:
        return self._core.input_dim

    @property
    def output_dim(self) -> int:
        return self._core.output_dim

    @property
    def bytes(self) -> int:
        """Bytes kept for the weights (packed weights, scales, bias)."""
        return self._core.bytes

    @property
    def multiply_adds_per_row(self) -> float:
        return self._core.multiply_adds_per_row

    def forward(self, X, out: Optional[np.ndarray] = None) -> np.ndarray:
        """``X @ W + bias`` for X of shape (N, K): float32 (N, M)."""
        X = _matrix(X, "X")
        if X.shape[1] != self.input_dim:
            raise ValueError(f"X must have K = {self.input_dim} columns, got shape {X.shape}")
        if out is None:
            out = np.empty((X.shape[0], self.output_dim), dtype=np.float32)
        self._core.forward_into(X, out)
        return out

    __call__ = forward

    def relative_error(self, X, W, bias=None) -> float:
        """``||X@W + b − forward(X)|| / ||X@W + b||`` (Frobenius norms), exact side in float64."""
        exact = np.asarray(X, dtype=np.float64) @ np.asarray(W, dtype=np.float64)
        if bias is not None:
            exact = exact + np.asarray(bias, dtype=np.float64)
        return float(np.linalg.norm(exact - self.forward(X)) / np.linalg.norm(exact))

    def save(self, path) -> None:
        """Write the operator to ``path`` in lutmul's versioned file format (atomically: a
        failed save leaves any old file as it was). Read it back with :func:`lutmul.load_operator`."""
        self._core.save(os.fspath(path))

    def serialize(self) -> bytes:
        """The operator file's bytes."""
        return self._core.serialize()

    def __reduce__(self):
        return (_from_bytes, (self.serialize(),))

    def __repr__(self) -> str:
        return f"lutmul.{type(self).__name__}(K={self.input_dim}, M={self.output_dim})"


class DenseLinear(_Operator):
    """The exact baseline: ``X @ W + bias`` through BLAS."""

    def __init__(self, W, bias=None):
        W = _matrix(W, "W")
        self._core = _core.DenseLinear(W, _bias(bias, W.shape[1]))


class Int8Linear(_Operator):
    """int8 weights (symmetric, per output channel) and int8 activations.

    Build with :meth:`from_dense`. Activations are quantized per row on the fly by default;
    ``activations="static"`` uses one scale from ``calibration`` rows (the ``percentile`` of
    ``|x|`` maps to 127; larger values saturate).
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("use Int8Linear.from_dense(W, bias, ...)")

    @classmethod
    def from_dense(cls, W, bias=None, *, activations: str = "dynamic", calibration=None,
                   percentile: float = 100.0) -> "Int8Linear":
        if activations not in ("dynamic", "static"):
            raise ValueError(f"activations must be 'dynamic' or 'static', got {activations!r}")
        W = _matrix(W, "W")
        if activations == "static" and calibration is None:
            raise ValueError("static activation scaling needs calibration rows")
        calibration = _matrix(calibration, "calibration") if calibration is not None else None
        op = cls.__new__(cls)
        op._core = _core.Int8Linear(W, _bias(bias, W.shape[1]), activations == "static", float(percentile), calibration)
        return op


class SparseLinear(_Operator):
    """Pruning: the lowest-scoring weights set to zero, the rest stored compressed.

    Build with :meth:`from_dense`. ``pattern="unstructured"`` keeps the best ``1 - sparsity``
    share of all weights (compressed sparse columns, a kernel vectorised across the batch);
    ``pattern="2:4"`` keeps the best two of every four consecutive inputs of each output
    (values plus 2-bit positions, its own kernel; K must be divisible by 4). Weights are
    scored by ``|W|``, or by ``|W| * ||X_k||`` (Wanda) when ``calibration`` rows are given.
    :func:`lutmul.prune_globally` prunes several layers by one ranking.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("use SparseLinear.from_dense(W, bias, sparsity=...) or pattern='2:4'")

    @classmethod
    def from_dense(cls, W, bias=None, *, sparsity: Optional[float] = None, pattern: str = "unstructured",
                   calibration=None) -> "SparseLinear":
        W = _matrix(W, "W")
        calibration = _matrix(calibration, "calibration") if calibration is not None else None
        op = cls.__new__(cls)
        if pattern == "2:4":
            if sparsity is not None and sparsity != 0.5:
                raise ValueError(f"2:4 pruning has sparsity 0.5, got sparsity={sparsity}")
            op._core = _core.Sparse24Linear(W, _bias(bias, W.shape[1]), calibration)
        elif pattern == "unstructured":
            op._core = _core.SparseLinear(W, _bias(bias, W.shape[1]), 0.9 if sparsity is None else float(sparsity),
                                          calibration)
        else:
            raise ValueError(f"pattern must be 'unstructured' or '2:4', got {pattern!r}")
        return op

    @property
    def pattern(self) -> str:
        return "2:4" if self._core.kind == "sparse24" else "unstructured"

    @property
    def nonzeros(self) -> int:
        """Weights kept."""
        if self.pattern == "2:4":
            return self.input_dim // 2 * self.output_dim
        return self._core.nonzeros

    def pruned_dense(self) -> np.ndarray:
        """The pruned weight as a dense (K, M) float32 array, zeros where pruned."""
        return self._core.pruned_dense()


def prune_globally(weights: Sequence, sparsity: float, *, biases: Optional[Sequence] = None,
                   calibrations: Optional[Sequence] = None) -> List[SparseLinear]:
    """Unstructured pruning of several layers by one ranking of all their weights.

    The lowest ``sparsity`` share of every weight of every layer (scored by ``|W|``, or
    ``|W| * ||X_k||`` for layers given calibration rows) is set to zero, so layers whose
    weights matter less lose more. ``biases`` and ``calibrations``: one entry (or None) per layer.
    """
    mats = [_matrix(w, "W") for w in weights]
    if not mats:
        raise ValueError("prune_globally: no layers given")
    bs = [] if biases is None else [_bias(b, w.shape[1]) for b, w in zip(biases, mats)]
    if biases is not None and len(biases) != len(mats):
        raise ValueError(f"prune_globally: {len(biases)} biases for {len(mats)} layers")
    cs = [] if calibrations is None else [None if c is None else _matrix(c, "calibration") for c in calibrations]
    if calibrations is not None and len(calibrations) != len(mats):
        raise ValueError(f"prune_globally: {len(calibrations)} calibration arrays for {len(mats)} layers")
    return [_wrap(core) for core in _core.prune_globally(mats, float(sparsity), bs, cs)]


class MaddnessLinear(_Operator):
    """MADDNESS behind the operator contract: trained on ``calibration`` rows for a known W.

    For the full MADDNESS API (codes, tables, set_weights) use :class:`lutmul.Maddness`.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("use MaddnessLinear.from_dense(W, bias, calibration=X, ncodebooks=...)")

    @classmethod
    def from_dense(cls, W, bias=None, *, calibration, ncodebooks: int = 16) -> "MaddnessLinear":
        W = _matrix(W, "W")
        calibration = _matrix(calibration, "calibration")
        op = cls.__new__(cls)
        op._core = _core.MaddnessLinear(W, _bias(bias, W.shape[1]), calibration, int(ncodebooks))
        return op

    @property
    def ncodebooks(self) -> int:
        return self._core.ncodebooks


class ChannelPrunedLinear(_Operator):
    """Structured pruning: whole output (or input) channels with the smallest L2 norms removed,
    leaving a smaller dense product. Pruned outputs are their bias alone.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("use ChannelPrunedLinear.from_dense(W, bias, fraction=...)")

    @classmethod
    def from_dense(cls, W, bias=None, *, fraction: float = 0.5, channels: str = "outputs") -> "ChannelPrunedLinear":
        if channels not in ("outputs", "inputs"):
            raise ValueError(f"channels must be 'outputs' or 'inputs', got {channels!r}")
        W = _matrix(W, "W")
        op = cls.__new__(cls)
        op._core = _core.ChannelPrunedLinear(W, _bias(bias, W.shape[1]), float(fraction), channels == "inputs")
        return op

    @property
    def kept_inputs(self) -> list:
        return list(self._core.kept_inputs)

    @property
    def kept_outputs(self) -> list:
        return list(self._core.kept_outputs)


_CLASSES = {
    "dense": DenseLinear,
    "int8": Int8Linear,
    "sparse": SparseLinear,
    "sparse24": SparseLinear,
    "channel_pruned": ChannelPrunedLinear,
    "maddness": MaddnessLinear,
}


def _wrap(core) -> _Operator:
    from .lowrank import LoraLinear, LowRankLinear  # lowrank imports this module

    cls = {**_CLASSES, "low_rank": LowRankLinear, "lora": LoraLinear}.get(core.kind)
    if cls is None:
        raise ValueError(f"no Python class for operators of kind {core.kind!r}")
    op = cls.__new__(cls)
    op._core = core
    return op


def _from_bytes(data: bytes) -> _Operator:
    return _wrap(_core.deserialize_operator(data))


def load_operator(path) -> _Operator:
    """Read an operator written by ``op.save(path)``, whatever its kind.

    Raises ``ValueError`` for a missing, truncated, corrupt or foreign file.
    """
    return _wrap(_core.load_operator(os.fspath(path)))
