"""The operator contract shared by every family: ``Y = X @ W + bias``.

Every operator has ``forward(X)`` (also ``op(X)``), ``bytes``, ``multiply_adds_per_row`` and
``relative_error(X, W, bias)``, with the same numpy conventions as :class:`lutmul.Maddness`
(float32 in either memory order used in place, other dtypes converted once, bad shapes and
non-finite values raise ``ValueError``; the GIL is released). Every kind is built the same
way, ``Kind.from_dense(W, bias, ...)``, or by name with :func:`lutmul.build`.

Each family's class names its kind when it subclasses :class:`Operator`
(``class Int8Linear(Operator, kind="int8")``); the registry here maps the C++ ``kind()``
strings back to those classes for files, pickles and the builder, so that this module never
needs to import a family.
"""

from __future__ import annotations

import inspect
import os
from typing import Dict, Optional, Tuple, Type

import numpy as np

from . import _core
from ._arrays import as_matrix
from ._delegate import core_property

_CLASSES: Dict[str, Type["Operator"]] = {}


class Operator:
    """Base of every operator class; build one with ``Kind.from_dense`` or :func:`lutmul.build`."""

    _core: _core.LinearOperator

    def __init_subclass__(cls, kind: Optional[str] = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            if kind in _CLASSES:
                raise RuntimeError(f"two operator classes for kind {kind!r}: {_CLASSES[kind].__name__}, {cls.__name__}")
            _CLASSES[kind] = cls

    def __init__(self, *args, **kwargs):
        raise TypeError(f"use {type(self).__name__}.from_dense(W, bias, ...) or lutmul.build(kind, W, bias, ...)")

    @classmethod
    def _from_core(cls, core) -> "Operator":
        op = cls.__new__(cls)
        op._core = core
        return op

    kind = core_property("kind", 'The kind name ("dense", "int8", "maddness", ...).')
    input_dim = core_property("input_dim", "K.")
    output_dim = core_property("output_dim", "M.")
    bytes = core_property("bytes", "Bytes kept for the weights (packed weights, scales, bias).")
    multiply_adds_per_row = core_property("multiply_adds_per_row", "Multiply-adds per row of X (K·M for exact).")
    fuses_epilogue = core_property("fuses_epilogue", "True where forward applies activation and accumulate as it "
                                   "stores the output (MADDNESS), not in a pass of their own.")

    def forward(self, X, out: Optional[np.ndarray] = None, *, activation: Optional[str] = None,
                accumulate: bool = False) -> np.ndarray:
        """``X @ W + bias`` for X of shape (N, K): float32 (N, M).

        ``activation="gelu"`` applies exact (erf) GELU to the result; ``accumulate=True`` adds
        the result to ``out`` (a residual already there) instead of overwriting it. MADDNESS
        applies both as it stores its output (``fuses_epilogue``); other kinds make one more
        pass."""
        X = as_matrix(X, "X")
        if X.shape[1] != self.input_dim:
            raise ValueError(f"X must have K = {self.input_dim} columns, got shape {X.shape}")
        if activation not in (None, "gelu"):
            raise ValueError(f"activation must be None or 'gelu', got {activation!r}")
        if accumulate and out is None:
            raise ValueError("accumulate=True adds to out: pass the array to add to as out")
        if out is None:
            out = np.empty((X.shape[0], self.output_dim), dtype=np.float32)
        self._core.forward_into(X, out, gelu=activation == "gelu", accumulate=bool(accumulate))
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
        failed save leaves any old file as it was). Read it back with :func:`lutmul.load`."""
        self._core.save(os.fspath(path))

    def serialize(self) -> bytes:
        """The operator file's bytes."""
        return self._core.serialize()

    def __reduce__(self):
        return (from_bytes, (self.serialize(),))

    def __repr__(self) -> str:
        return f"lutmul.{type(self).__name__}(K={self.input_dim}, M={self.output_dim})"


def kinds() -> Tuple[str, ...]:
    """The operator kinds this lutmul has, as the C++ ``kind()`` strings."""
    return tuple(sorted(_CLASSES))


def operator_class(kind: str) -> Type[Operator]:
    """The class of operators of ``kind``; ``ValueError`` naming the known kinds otherwise."""
    cls = _CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown operator kind {kind!r}; the kinds are {', '.join(map(repr, _CLASSES))}")
    return cls


def wrap(core: _core.LinearOperator) -> Operator:
    """The Python operator of the class registered for ``core.kind``."""
    return operator_class(core.kind)._from_core(core)


def from_bytes(data: bytes) -> Operator:
    """The operator whose file bytes :meth:`Operator.serialize` returned (pickle uses this)."""
    return wrap(_core.deserialize_operator(data))


def build_kind(kind: str, W, b=None, calibration=None, **params) -> Operator:
    """``operator_class(kind).from_dense(W, b, ...)`` with its settings checked first (the body
    of :func:`lutmul.build`): ``TypeError`` naming settings the kind does not take."""
    cls = operator_class(kind)
    signature = inspect.signature(cls.from_dense)
    accepted = [name for name, p in signature.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return cls.from_dense(W, b, calibration=calibration, **params)  # it checks what it passes on
    unknown = sorted(name for name in params if name not in accepted)
    if unknown:
        settings = ", ".join(repr(n) for n in accepted if n != "calibration") or "none"
        raise TypeError(f"operator kind {kind!r} takes no setting {', '.join(map(repr, unknown))}; "
                        f"its settings are {settings}")
    if calibration is not None:
        if "calibration" not in accepted:
            raise TypeError(f"operator kind {kind!r} takes no calibration rows")
        params["calibration"] = calibration
    return cls.from_dense(W, b, **params)
