"""Pruning of single weights: unstructured (:class:`SparseLinear`, :func:`prune_globally`) and
2:4 semi-structured (:class:`Sparse24Linear`).

Weights are scored by ``|W|``, or by ``|W| * ||X_k||`` (Wanda) when ``calibration`` rows are
given.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from . import _core
from ._arrays import as_bias, as_matrix, optional_matrix
from ._deprecation import deprecated
from .operator import Operator


class SparseLinear(Operator, kind="sparse"):
    """Unstructured pruning: the lowest-scoring weights set to zero, the rest stored compressed.

    Build with :meth:`from_dense`: it keeps the best ``1 - sparsity`` share of all weights
    (compressed sparse columns, a kernel vectorised across the batch).
    :func:`lutmul.prune_globally` prunes several layers by one ranking; 2:4 pruning is
    :class:`Sparse24Linear`.
    """

    @classmethod
    def from_dense(cls, W, bias=None, *, sparsity: Optional[float] = None, calibration=None,
                   pattern: str = "unstructured"):
        """``sparsity`` (default 0.9) of the weights of ``W`` (K, M) set to zero.

        ``pattern="2:4"`` is deprecated: it returns a :class:`Sparse24Linear` (a
        ``DeprecationWarning`` says so); call :meth:`Sparse24Linear.from_dense` instead.
        """
        if pattern == "2:4":
            deprecated("SparseLinear.from_dense(..., pattern='2:4'), which returns a Sparse24Linear,",
                       "Sparse24Linear.from_dense(W, bias, calibration=...)")
            if sparsity is not None and sparsity != 0.5:
                raise ValueError(f"2:4 pruning has sparsity 0.5, got sparsity={sparsity}")
            return Sparse24Linear.from_dense(W, bias, calibration=calibration)
        if pattern != "unstructured":
            raise ValueError(f"pattern must be 'unstructured' (or '2:4': use Sparse24Linear), got {pattern!r}")
        W = as_matrix(W, "W")
        config = _core.SparseConfig(sparsity=0.9 if sparsity is None else float(sparsity))
        calibration = optional_matrix(calibration, "calibration")
        return cls._from_core(_core.SparseLinear(W, as_bias(bias, W.shape[1]), config, calibration))

    @property
    def pattern(self) -> str:
        return "unstructured"

    @property
    def nonzeros(self) -> int:
        """Weights kept."""
        return self._core.nonzeros

    def pruned_dense(self) -> np.ndarray:
        """The pruned weight as a dense (K, M) float32 array, zeros where pruned."""
        return self._core.pruned_dense()


class Sparse24Linear(Operator, kind="sparse24"):
    """2:4 pruning: the best two of every four consecutive inputs of each output are kept
    (values plus 2-bit positions, its own kernel; K must be divisible by 4).

    Build with :meth:`from_dense`.
    """

    @classmethod
    def from_dense(cls, W, bias=None, *, calibration=None) -> "Sparse24Linear":
        """Half of the weights of ``W`` (K, M), two in every group of four inputs, set to zero."""
        W = as_matrix(W, "W")
        calibration = optional_matrix(calibration, "calibration")
        return cls._from_core(_core.Sparse24Linear(W, as_bias(bias, W.shape[1]), calibration))

    @property
    def pattern(self) -> str:
        return "2:4"

    @property
    def nonzeros(self) -> int:
        """Weights kept: half of them."""
        return self.input_dim // 2 * self.output_dim

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
    mats = [as_matrix(w, "W") for w in weights]
    if not mats:
        raise ValueError("prune_globally: no layers given")
    bs = [] if biases is None else [as_bias(b, w.shape[1]) for b, w in zip(biases, mats)]
    if biases is not None and len(biases) != len(mats):
        raise ValueError(f"prune_globally: {len(biases)} biases for {len(mats)} layers")
    cs = [] if calibrations is None else [optional_matrix(c, "calibration") for c in calibrations]
    if calibrations is not None and len(calibrations) != len(mats):
        raise ValueError(f"prune_globally: {len(calibrations)} calibration arrays for {len(mats)} layers")
    return [SparseLinear._from_core(core) for core in _core.prune_globally(mats, float(sparsity), bs, cs)]
