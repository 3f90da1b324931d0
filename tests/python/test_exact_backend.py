"""The exact float32 products run the widest kernels this CPU has, in a plain ``import lutmul``
with no environment variable set: a check of what runs, read from the backend, not a timing."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lutmul


def cpu_flags() -> set:
    """The CPU's flags as Linux reports them, read independently of lutmul."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def expected_isa(flags: set) -> str:
    avx512_core = {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags
    if avx512_core and {"amx_tile", "amx_int8", "amx_bf16"} <= flags:
        return "avx512_core_amx"
    if avx512_core and "avx512_bf16" in flags:
        return "avx512_core_bf16"
    if avx512_core and "avx512_vnni" in flags:
        return "avx512_core_vnni"
    if avx512_core:
        return "avx512_core"
    if "avx2" in flags:
        return "avx2_vnni" if "avx_vnni" in flags else "avx2"
    return ""


@pytest.mark.skipif(platform.machine() != "x86_64" or not Path("/proc/cpuinfo").exists(),
                    reason="reads x86-64 flags from Linux's /proc/cpuinfo")
def test_a_plain_import_runs_the_widest_kernels_without_environment_variables():
    expected = expected_isa(cpu_flags())
    if not expected:
        pytest.skip("this CPU has no AVX2")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "LUTMUL_ISA")}
    code = "import json, lutmul; print(json.dumps(lutmul.exact_product_backend()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    backend = json.loads(out.stdout)
    print(f"exact products: {backend}")
    assert backend["library"] == "oneDNN"
    assert backend["isa"] == expected


def test_dense_products_match_float64_in_both_layouts_and_thread_counts():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((67, 45)).astype(np.float32)
    b = rng.standard_normal(45).astype(np.float32)
    x = rng.standard_normal((129, 67)).astype(np.float32)
    exact = x.astype(np.float64) @ w + b
    op = lutmul.DenseLinear.from_dense(w, b)
    before = lutmul.num_threads()
    try:
        for threads in (1, 2):
            lutmul.set_num_threads(threads)
            for layout in (x, np.asfortranarray(x)):
                np.testing.assert_allclose(op.forward(layout), exact, rtol=1e-4, atol=1e-4)
    finally:
        lutmul.set_num_threads(before)


def bfloat16(a: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 (to nearest even), as float64."""
    bits = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32).astype(np.float64)


def test_bf16_linear_is_the_product_of_bfloat16_values(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((129, 65)).astype(np.float32)
    b = rng.standard_normal(65).astype(np.float32)
    x = rng.standard_normal((70, 129)).astype(np.float32)
    op = lutmul.Bf16Linear.from_dense(w, b)
    print(f"Bf16Linear path: {op.path}")
    assert op.kind == "bf16" and op.bytes == 129 * 65 * 2 + 65 * 4
    same_values = bfloat16(x) @ bfloat16(w) + b
    magnitude = np.abs(x) @ np.abs(w)
    y = op.forward(x)
    assert np.all(np.abs(y - same_values) <= 1e-5 * magnitude + 1e-6)
    assert np.all(np.abs(y - (x.astype(np.float64) @ w + b)) <= magnitude / 128)
    np.testing.assert_array_equal(op.forward(np.asfortranarray(x)), y)
    op.save(tmp_path / "layer.lutmul")
    back = lutmul.load(tmp_path / "layer.lutmul")
    assert isinstance(back, lutmul.Bf16Linear)
    np.testing.assert_array_equal(back.forward(x), y)
    x[3, 5] = np.nan
    with pytest.raises(ValueError):
        op.forward(x)
