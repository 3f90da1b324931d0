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


def exact_product_backend() -> dict:
    """The library that runs lutmul's exact float32 products and the instruction set it picked.

    ``{"library": "oneDNN", "version": "2.6.3", "isa": "avx512_core_bf16"}``: oneDNN reads the
    CPU's feature flags itself, so the widest kernels run with no environment variable set
    (unlike Debian's OpenBLAS, which needs ``OPENBLAS_CORETYPE`` on CPUs newer than it knows).
    """
    return dict(_core.exact_product_backend())
