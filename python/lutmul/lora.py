"""LoRA: named adapters ``(A, B, alpha)`` on any lutmul operator; one batch may mix adapters,
one per row. Same numpy conventions as the other operators.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import numpy as np

from . import _core
from ._arrays import as_matrix
from .operator import Operator, build_kind

PathLike = Union[str, "os.PathLike[str]"]


class LoraLinear(Operator, kind="lora"):
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

    @classmethod
    def from_dense(cls, W, bias=None, *, base: str = "dense", calibration=None, **base_params) -> "LoraLinear":
        """A LoRA operator, without adapters yet, on a base built from ``W`` (K, M) and ``bias``:
        ``base`` names its kind ("dense", "int8", "low_rank", ...) and ``base_params`` are that
        kind's ``from_dense`` settings (as for :func:`lutmul.build`)."""
        if base == "lora":
            raise ValueError("the base of a LoRA operator cannot be another LoRA operator")
        return cls(build_kind(base, W, bias, calibration, **base_params))

    def add_adapter(self, name: str, A, B, alpha: float) -> "LoraLinear":
        """Adds adapter ``name`` with ``A`` (K, r), ``B`` (r, M) and scale ``alpha / r``. Returns self."""
        A, B = as_matrix(A, "A"), as_matrix(B, "B")
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
        X = as_matrix(X, "X")
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


