"""Low-rank factorisation: ``W ≈ U @ V`` by a truncated SVD (LAPACK), optionally whitened by
calibration activations so that the error is smallest on ``X @ W``. Same numpy conventions as
the other operators: float32 in C or Fortran order used in place, other dtypes converted once,
bad shapes and non-finite values raise ``ValueError``, the GIL is released in heavy calls.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from . import _core
from ._arrays import as_bias, as_matrix
from . import io as _io
from . import lora as _lora
from .operator import Operator

_RULES = {"rank": _core.RankRule.fixed, "energy": _core.RankRule.energy, "max_error": _core.RankRule.max_error}


class LowRankLinear(Operator, kind="low_rank"):
    """``X @ (U @ V) + bias``: two products of r·(K + M) multiply-adds per row instead of K·M.

    Build with :meth:`from_dense` (or :meth:`from_factors` for factors you already have).
    """

    @classmethod
    def from_dense(cls, W, bias=None, *, rank: Optional[int] = None, energy: Optional[float] = None,
                   max_error: Optional[float] = None, calibration=None, calib=None, data_aware: bool = False,
                   damping: float = 1e-3) -> "LowRankLinear":
        """Truncated SVD of ``W`` (K, M), the rank chosen by exactly one rule:

        - ``rank``: that rank, ``1 <= rank <= min(K, M)``;
        - ``energy``: the smallest rank keeping this share of the squared singular values;
        - ``max_error``: the smallest rank whose relative error
          ``||X@W + b − forward(X)|| / ||X@W + b||`` on the ``calibration`` rows is at most this.

        ``data_aware=True`` whitens by the calibration rows' second moment first, so the error
        is judged on ``X @ W`` rather than on ``W``; ``damping`` (relative to the moment's mean
        eigenvalue) keeps it safe when the moment is singular. ``calib`` is an alias of
        ``calibration``.
        """
        rules = {name: value for name, value in (("rank", rank), ("energy", energy), ("max_error", max_error))
                 if value is not None}
        if len(rules) != 1:
            raise ValueError(f"give exactly one of rank, energy, max_error; got {sorted(rules) or 'none'}")
        if calib is not None:
            if calibration is not None:
                raise ValueError("give calibration or calib, not both")
            calibration = calib
        (rule, value), = rules.items()
        if rule == "rank" and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise TypeError(f"rank must be an int, got {type(value).__name__}")
        W = as_matrix(W, "W")
        if calibration is not None:
            calibration = as_matrix(calibration, "calibration")
            if calibration.shape[1] != W.shape[0]:
                raise ValueError(f"calibration must have K = {W.shape[0]} columns, got shape {calibration.shape}")
        config = _core.LowRankConfig(rule=_RULES[rule], data_aware=bool(data_aware), damping=float(damping))
        setattr(config, rule, int(value) if rule == "rank" else float(value))
        return cls._from_core(_core.LowRankLinear(W, as_bias(bias, W.shape[1]), config, calibration))

    @classmethod
    def from_factors(cls, U, V, bias=None) -> "LowRankLinear":
        """The operator ``X @ U @ V + bias`` for ``U`` (K, r) and ``V`` (r, M)."""
        U, V = as_matrix(U, "U"), as_matrix(V, "V")
        return cls._from_core(_core.LowRankLinear.from_factors(U, V, as_bias(bias, V.shape[1])))

    @property
    def rank(self) -> int:
        return self._core.rank

    @property
    def U(self) -> np.ndarray:
        """float32 (K, r), singular values folded in (a copy)."""
        return self._core.u()

    @property
    def V(self) -> np.ndarray:
        """float32 (r, M) (a copy); orthonormal rows unless data-aware."""
        return self._core.v()

    @property
    def bias(self) -> np.ndarray:
        return self._core.bias()

    @property
    def singular_values(self) -> np.ndarray:
        """All min(K, M) singular values the rank was chosen from (of W, or of the whitened W)."""
        return np.asarray(self._core.singular_values)

    @property
    def calibration_errors(self) -> np.ndarray:
        """With calibration rows: the relative error on them at every rank 0..min(K, M)."""
        return np.asarray(self._core.calibration_errors)

    def __repr__(self) -> str:
        return f"lutmul.LowRankLinear(K={self.input_dim}, M={self.output_dim}, rank={self.rank})"


# 0.2 imported these from here; they live in lutmul.lora and lutmul.io now.
_MOVED = {"LoraLinear": _lora, "read_safetensors": _io, "peft_modules": _io}


def __getattr__(name: str):
    if name in _MOVED:
        module = _MOVED[name]
        warnings.warn(f"lutmul.lowrank.{name} is deprecated and will be removed in the next release; use "
                      f"lutmul.{name} (defined in {module.__name__})", DeprecationWarning, stacklevel=2)
        return getattr(module, name)
    raise AttributeError(f"module 'lutmul.lowrank' has no attribute {name!r}")
