"""The exact baseline operator."""

from __future__ import annotations

import numpy as np

from . import _core
from ._arrays import as_bias, as_matrix
from ._deprecation import deprecated
from .operator import Operator


class DenseLinear(Operator, kind="dense"):
    """The exact baseline: ``X @ W + bias`` through BLAS. Build with :meth:`from_dense`."""

    def __init__(self, W, bias=None):
        deprecated("DenseLinear(W, bias)", "DenseLinear.from_dense(W, bias)")
        self._core = _build(W, bias)

    @classmethod
    def from_dense(cls, W, bias=None) -> "DenseLinear":
        """The operator ``X @ W + bias`` for ``W`` (K, M) and ``bias`` (M,) or None."""
        return cls._from_core(_build(W, bias))

    @property
    def weights(self) -> np.ndarray:
        """W, float32 (K, M): a copy."""
        return self._core.weights

    @property
    def bias(self) -> np.ndarray:
        """The bias, float32 (M,), zeros when none was given: a copy."""
        return self._core.bias


def _build(W, bias) -> _core.DenseLinear:
    W = as_matrix(W, "W")
    return _core.DenseLinear(W, as_bias(bias, W.shape[1]))
