"""Timing: thread counts, interleaved repeats, medians, and the machine they ran on.

Each timed sample calls an operator enough times to last a few milliseconds; the figure
kept is the median sample divided by its call count. Everything that is not timed runs on
one thread: on a shared machine, spinning thread pools of numpy's BLAS, the system BLAS
and OpenMP that wait for a core someone else holds turn a 0.3 s forward pass into 20 s.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from typing import Callable, Dict, Iterator, List, Sequence

import numpy as np

import lutmul

# Debian's OpenBLAS 0.3.21 may take this CPU for an old one and use a slow kernel unless
# OPENBLAS_CORETYPE names one; it must be set before the library loads (see __main__).
CORETYPE_VARIABLE = "OPENBLAS_CORETYPE"


def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_core_for_this_cpu() -> str:
    """The OpenBLAS kernel to ask for ("" when the CPU has neither AVX-512 nor AVX2)."""
    flags = cpu_flags()
    return "SkylakeX" if "avx512f" in flags else "Haswell" if "avx2" in flags else ""


def all_threads() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_thread_pools() -> None:
    """Loads every library with a thread pool the harness uses (scikit-learn's OpenMP, scipy's
    BLAS), so that :func:`threads` limits them too: threadpoolctl sees loaded libraries only."""
    import scipy.special  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import sklearn.linear_model  # noqa: F401


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Runs lutmul's loops, its BLAS and numpy's BLAS on ``n`` threads."""
    from threadpoolctl import threadpool_limits

    previous = lutmul.num_threads()
    lutmul.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        lutmul.set_num_threads(previous)


def timed_samples(fns: Dict[str, Callable[[], object]], repeats: int, sample_seconds: float,
                  settle_seconds: float, passes: int = 1, seed: int = 0) -> Dict[str, List[float]]:
    """Seconds per call of each function, ``repeats`` samples each.

    Each function is timed in a block: it first runs alone for ``settle_seconds`` (caches
    warm, and the worker threads of a thread pool used just before, which spin for up to
    about 0.1 s after their last job, asleep again), then gives its samples. The blocks
    run in a random order; a second pass runs them in the reverse order, and the samples
    of the passes are pooled, so a slow drift of a shared machine spreads over all of them.
    """
    order = [list(fns)[i] for i in np.random.default_rng(seed).permutation(len(fns))]
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    per_pass = [repeats // passes + (1 if p < repeats % passes else 0) for p in range(passes)]
    for p in range(passes):
        for name in order if p % 2 == 0 else order[::-1]:
            fn = fns[name]
            deadline = time.perf_counter() + settle_seconds
            once = float("inf")
            while True:
                start = time.perf_counter()
                fn()
                once = min(once, time.perf_counter() - start)
                if start >= deadline:
                    break
            count = max(1, int(round(sample_seconds / max(once, 1e-7))))
            for _ in range(per_pass[p]):
                start = time.perf_counter()
                for _ in range(count):
                    fn()
                samples[name].append((time.perf_counter() - start) / count)
    return samples


def median(values: Sequence[float]) -> float:
    return float(np.median(values))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> Dict[str, object]:
    """What the numbers were measured on: CPU, threads, kernels, BLAS libraries and versions."""
    from threadpoolctl import threadpool_info

    import sklearn

    blas = [{key: info.get(key) for key in ("internal_api", "filepath", "version", "architecture", "threading_layer",
                                            "num_threads")} for info in threadpool_info()]
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    flags = cpu_flags()
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "threads_available": all_threads(),
        "memory_bytes": memory,
        "isa_flags": sorted(f for f in flags if f.startswith(("avx", "fma", "f16c"))),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "lutmul": lutmul.__version__,
        "lutmul_isa": lutmul.isa(),
        "openblas_coretype": os.environ.get(CORETYPE_VARIABLE),
        "blas_libraries": blas,
    }
