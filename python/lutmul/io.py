"""Files: :func:`load`, the one loader of lutmul's own files (MADDNESS models and operators),
and the readers of files other tools write (safetensors, PEFT adapter directories).
"""

from __future__ import annotations

import os
from typing import Dict, Tuple, Union

import numpy as np

from . import _core
from ._deprecation import deprecated
from .maddness import Maddness, load_maddness
from .operator import Operator, wrap

PathLike = Union[str, "os.PathLike[str]"]

# The first 8 bytes of lutmul's files (the container's magic).
MADDNESS_MAGIC = b"LUTMULMD"
OPERATOR_MAGIC = b"LUTMULOP"


def _magic(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError:
        return b""  # the C++ reader names the problem (missing file, a directory...)


def load(path: PathLike) -> Union[Maddness, Operator]:
    """Reads any file lutmul writes: a model saved by :meth:`Maddness.save` comes back as a
    :class:`Maddness`, an operator saved by ``op.save`` as an operator of its kind
    (:class:`DenseLinear`, :class:`Int8Linear`, ...).

    Raises ``ValueError`` for a missing, truncated, corrupt or foreign file.
    """
    path = os.fspath(path)
    # Since 0.3 a saved Maddness is an operator file of kind "maddness" too; the file says
    # whether a Maddness or a MaddnessLinear wrote it, and that is what comes back.
    if _magic(path) == MADDNESS_MAGIC or (_magic(path) == OPERATOR_MAGIC and _core.Maddness.is_saved_model(path)):
        return load_maddness(path)
    return wrap(_core.load_operator(path))


def load_operator(path: PathLike) -> Operator:
    """Deprecated alias of :func:`load` for operator files (``DeprecationWarning``)."""
    deprecated("lutmul.load_operator(path)", "lutmul.load(path)")
    return wrap(_core.load_operator(os.fspath(path)))


def read_safetensors(path: PathLike) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file: every tensor as float32 (F32, F16, BF16
    and F64 convert; other dtypes, and malformed files, raise ``ValueError``)."""
    tensors, metadata = _core.read_safetensors(os.fspath(path))
    return dict(tensors), dict(metadata)


def peft_modules(directory: PathLike) -> list:
    """The layers with a LoRA pair in a PEFT adapter directory."""
    return list(_core.peft_modules(os.fspath(directory)))
