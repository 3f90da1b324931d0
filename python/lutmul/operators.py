"""Compressed linear operators behind one contract: ``Y = X @ W + bias``.

Every operator has ``forward(X)`` (also ``op(X)``), ``bytes``, ``multiply_adds_per_row`` and
``relative_error(X, W, bias)``, with the same numpy conventions as :class:`lutmul.Maddness`
(float32 in either memory order used in place, other dtypes converted once, bad shapes and
non-finite values raise ``ValueError``; the GIL is released).
"""

from __future__ import annotations

from typing import Optional

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
    """Unstructured pruning: the lowest-scoring weights set to zero, the rest stored sparse.

    Build with :meth:`from_dense`. Weights are scored by ``|W|``, or by ``|W| * ||X_k||``
    (Wanda) when ``calibration`` rows are given.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("use SparseLinear.from_dense(W, bias, sparsity=...)")

    @classmethod
    def from_dense(cls, W, bias=None, *, sparsity: float = 0.9, calibration=None) -> "SparseLinear":
        W = _matrix(W, "W")
        calibration = _matrix(calibration, "calibration") if calibration is not None else None
        op = cls.__new__(cls)
        op._core = _core.SparseLinear(W, _bias(bias, W.shape[1]), float(sparsity), calibration)
        return op

    @property
    def nonzeros(self) -> int:
        """Weights kept."""
        return self._core.nonzeros


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
