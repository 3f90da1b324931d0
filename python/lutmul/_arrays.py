"""Array conversion for the whole package: one rule for matrices, one for bias vectors.

float32 arrays in C or Fortran order (or with a unit stride along one axis) pass through
untouched, to be read in place by the C++ core; other real dtypes and strides are converted
once (a copy). Complex, object, boolean and string arrays raise ``TypeError``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def as_matrix(x, name: str) -> np.ndarray:
    """A 2-D float32 array usable in place, converting once when it must."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    s0, s1 = x.strides
    row_major_ok = (s1 == 4 or x.shape[1] <= 1) and s0 % 4 == 0 and s0 // 4 >= x.shape[1]
    col_major_ok = (s0 == 4 or x.shape[0] <= 1) and s1 % 4 == 0 and s1 // 4 >= x.shape[0]
    if not (row_major_ok or col_major_ok):
        x = np.ascontiguousarray(x)
    return x


def optional_matrix(x, name: str) -> Optional[np.ndarray]:
    """:func:`as_matrix`, or None for None."""
    return None if x is None else as_matrix(x, name)


def check_finite(x: np.ndarray, name: str) -> None:
    """``ValueError`` naming the first NaN or infinite entry, if any."""
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{name} of shape {x.shape} has a non-finite value at {tuple(int(i) for i in bad)}")


def as_bias(bias, m: int) -> Optional[np.ndarray]:
    """A contiguous float32 (m,) vector with finite values, or None."""
    if bias is None:
        return None
    bias = np.ascontiguousarray(np.asarray(bias, dtype=np.float32))
    if bias.shape != (m,):
        raise ValueError(f"bias must have shape ({m},), got {bias.shape}")
    check_finite(bias[None, :], "bias")
    return bias
