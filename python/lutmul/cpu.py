"""Which SIMD kernels run and on how many threads."""

from __future__ import annotations

import numpy as np

from . import _core


def isa() -> str:
    """The SIMD kernel level in use ("scalar", "avx2", "avx512", "avx512vbmi" or "neon").

    Chosen from the CPU at first use; the environment variable ``LUTMUL_ISA`` forces one.
    """
    return _core.isa()


def supported_isas() -> list:
    """Every kernel level this CPU and build can run, best last."""
    return list(_core.supported_isas())


def set_isa(name: str) -> None:
    """Forces a kernel level for this process; ``ValueError`` if the CPU lacks it."""
    _core.set_isa(name)


def set_num_threads(n: int) -> None:
    """Sets how many threads lutmul's own loops use (``n >= 1``)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    _core.set_num_threads(int(n))


def num_threads() -> int:
    """The thread count lutmul uses."""
    return _core.num_threads()
