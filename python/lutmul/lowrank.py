"""Low-rank and LoRA operators, and the safetensors reader behind PEFT adapters.

:class:`LowRankLinear` factors ``W ≈ U @ V`` by a truncated SVD (LAPACK), optionally
whitened by calibration activations so that the error is smallest on ``X @ W``.
:class:`LoraLinear` puts named adapters ``(A, B, alpha)`` on any lutmul operator; one batch
may mix adapters, one per row. Same numpy conventions as the other operators: float32 in C
or Fortran order used in place, other dtypes converted once, bad shapes and non-finite
values raise ``ValueError``, the GIL is released in heavy calls.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from .operators import _bias, _matrix, _Operator

PathLike = Union[str, "os.PathLike[str]"]


class LowRankLinear(_Operator):
    """``X @ (U @ V) + bias``: two products of r·(K + M) multiply-adds per row instead of K·M.

    Build with :meth:`from_dense` (or :meth:`from_factors` for factors you already have).
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("use LowRankLinear.from_dense(W, bias, rank=... | energy=... | max_error=...)")

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
        W = _matrix(W, "W")
        if calibration is not None:
            calibration = _matrix(calibration, "calibration")
            if calibration.shape[1] != W.shape[0]:
                raise ValueError(f"calibration must have K = {W.shape[0]} columns, got shape {calibration.shape}")
        op = cls.__new__(cls)
        settings = {"rank": 1, "energy": 0.9, "max_error": 0.05}  # the unused rules' values are never read
        settings[rule] = value
        op._core = _core.LowRankLinear(W, _bias(bias, W.shape[1]), rule, int(settings["rank"]), float(settings["energy"]),
                                       float(settings["max_error"]), bool(data_aware), float(damping), calibration)
        return op

    @classmethod
    def from_factors(cls, U, V, bias=None) -> "LowRankLinear":
        """The operator ``X @ U @ V + bias`` for ``U`` (K, r) and ``V`` (r, M)."""
        U, V = _matrix(U, "U"), _matrix(V, "V")
        op = cls.__new__(cls)
        op._core = _core.LowRankLinear.from_factors(U, V, _bias(bias, V.shape[1]))
        return op

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


class LoraLinear(_Operator):
    """A base operator plus named LoRA adapters: a row naming adapter ``i`` gets
    ``base(x) + (alpha_i / r_i) * (x @ A_i) @ B_i``.

    ``base`` is any lutmul operator (dense, int8, pruned, low-rank...). Adapters may be added
    and removed while other threads run :meth:`forward`. :meth:`merge` folds an adapter into a
    dense base (the caller's base object is not modified).
    """

    def __init__(self, base):
        core = getattr(base, "_core", None)
        if not isinstance(core, _core.LinearOperator):
            raise TypeError(f"base must be a lutmul operator (DenseLinear, Int8Linear, ...), got {type(base).__name__}")
        self._base = base
        self._core = _core.LoraLinear(core)

    def add_adapter(self, name: str, A, B, alpha: float) -> "LoraLinear":
        """Adds adapter ``name`` with ``A`` (K, r), ``B`` (r, M) and scale ``alpha / r``. Returns self."""
        A, B = _matrix(A, "A"), _matrix(B, "B")
        self._core.add_adapter(str(name), A, B, float(alpha))
        return self

    def remove_adapter(self, name: str) -> "LoraLinear":
        self._core.remove_adapter(str(name))
        return self

    def load_peft(self, directory: PathLike, name: Optional[str] = None, module: Optional[str] = None) -> "LoraLinear":
        """Adds the adapter saved by PEFT in ``directory`` (``adapter_config.json`` and
        ``adapter_model.safetensors``) under ``name`` (default: the directory's name).
        ``module`` picks one layer (e.g. ``"q_proj"`` or ``"layers.0.self_attn.q_proj"``)
        when the file adapts several. Returns self."""
        directory = os.fspath(directory)
        if name is None:
            name = os.path.basename(os.path.normpath(directory))
        self._core.load_peft(directory, str(name), module or "")
        return self

    def adapter_id(self, name: str) -> int:
        return self._core.adapter_id(str(name))

    @property
    def adapter_names(self) -> list:
        return list(self._core.adapter_names())

    def adapter(self, name: str) -> Tuple[np.ndarray, np.ndarray, float]:
        """``(A, B, alpha)`` of an adapter (copies)."""
        a, b, alpha, _ = self._core.adapter(str(name))
        return a, b, alpha

    def merge(self, name: str) -> "LoraLinear":
        """Folds ``W += (alpha/r) A @ B`` into the (dense) base: every row then gets the adapter."""
        self._core.merge(str(name))
        return self

    def unmerge(self, name: str) -> "LoraLinear":
        self._core.unmerge(str(name))
        return self

    def merged(self, name: str) -> bool:
        return self._core.merged(str(name))

    @property
    def base_kind(self) -> str:
        return self._core.base_kind

    @property
    def base_weights(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(W, bias)`` of a dense base as it is now (merged adapters included); copies."""
        return self._core.base_dense_weights()

    def forward(self, X, adapter_ids=None, out: Optional[np.ndarray] = None) -> np.ndarray:
        """``base(X)`` plus each row's adapter term, float32 (N, M).

        ``adapter_ids`` has one entry per row: an adapter name, ``None`` for the base alone,
        or an integer id from :meth:`adapter_id` (``-1``: none); or an integer array of ids.
        """
        X = _matrix(X, "X")
        if X.shape[1] != self.input_dim:
            raise ValueError(f"X must have K = {self.input_dim} columns, got shape {X.shape}")
        ids = self._ids(adapter_ids, X.shape[0])
        if out is None:
            out = np.empty((X.shape[0], self.output_dim), dtype=np.float32)
        self._core.forward_ids_into(X, ids, out)
        return out

    __call__ = forward

    def _ids(self, adapter_ids, rows: int) -> Optional[np.ndarray]:
        if adapter_ids is None:
            return None
        if isinstance(adapter_ids, np.ndarray) and adapter_ids.dtype.kind in "iu":
            ids = adapter_ids
        else:
            ids = [(-1 if a is None else self.adapter_id(a) if isinstance(a, str) else a) for a in adapter_ids]
            for a in ids:
                if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
                    raise TypeError(f"adapter ids must be names, None or ints, got {type(a).__name__}")
            ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or ids.shape[0] != rows:
            raise ValueError(f"adapter_ids must have one entry per row of X ({rows}), got shape {ids.shape}")
        if ids.size and (ids.min() < -1 or ids.max() > np.iinfo(np.int32).max):
            raise ValueError(f"adapter ids must be -1 or loaded ids, got values in [{ids.min()}, {ids.max()}]")
        return np.ascontiguousarray(ids, dtype=np.int32)

    def __repr__(self) -> str:
        return f"lutmul.LoraLinear(base={self.base_kind}, K={self.input_dim}, M={self.output_dim}, adapters={self.adapter_names})"


def read_safetensors(path: PathLike) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file: every tensor as float32 (F32, F16, BF16
    and F64 convert; other dtypes, and malformed files, raise ``ValueError``)."""
    tensors, metadata = _core.read_safetensors(os.fspath(path))
    return dict(tensors), dict(metadata)


def peft_modules(directory: PathLike) -> list:
    """The layers with a LoRA pair in a PEFT adapter directory."""
    return list(_core.peft_modules(os.fspath(directory)))


__all__: Sequence[str] = ["LowRankLinear", "LoraLinear", "read_safetensors", "peft_modules"]
