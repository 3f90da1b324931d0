"""Low-rank and LoRA from Python: the truncated SVD against numpy, the rank rules, the
data-aware variant on real activations (scikit-learn digits, whose pixel second moment is
singular), mixed-adapter batches against a per-row numpy reference, merge and unmerge, PEFT
adapters written here and read back, and malformed safetensors files."""
import json
import struct
import threading

import numpy as np
import pytest

import lutmul

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    x, _ = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32)


def numpy_truncation(W, r):
    u, s, vt = np.linalg.svd(W.astype(np.float64), full_matrices=False)
    return (u[:, :r] * s[:r]) @ vt[:r], s


def relative_error(X, W, approx, bias=0.0):
    exact = X.astype(np.float64) @ W.astype(np.float64) + bias
    return np.linalg.norm(exact - approx) / np.linalg.norm(exact)


# ---- low-rank ----

def test_factors_are_numpys_truncated_svd():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((64, 48)).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)
    X = rng.standard_normal((30, 64)).astype(np.float32)
    for r in (1, 7, 48):
        op = lutmul.LowRankLinear.from_dense(W, b, rank=r)
        W_r, s = numpy_truncation(W, r)
        assert op.rank == r and op.U.shape == (64, r) and op.V.shape == (r, 48)
        np.testing.assert_allclose(op.singular_values, s, rtol=1e-9)
        np.testing.assert_allclose(op.U.astype(np.float64) @ op.V, W_r, atol=2e-5)
        np.testing.assert_allclose(op(X), X @ W_r + b, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(op(X), op(np.asfortranarray(X)), rtol=1e-5, atol=1e-5)  # BLAS may round each layout differently
        assert op.multiply_adds_per_row == r * (64 + 48)
    same = lutmul.LowRankLinear.from_factors(op.U, op.V, op.bias)
    np.testing.assert_array_equal(same(X), op(X))


def test_error_falls_with_the_rank_on_real_activations(digits):
    W = np.random.default_rng(1).standard_normal((64, 40)).astype(np.float32)
    errors = []
    for r in range(1, 41):
        op = lutmul.LowRankLinear.from_dense(W, rank=r, calibration=digits)
        errors.append(op.relative_error(digits, W))
        assert errors[-1] == pytest.approx(op.calibration_errors[r], abs=1e-5)
    assert all(later <= earlier + 1e-6 for earlier, later in zip(errors, errors[1:])), errors
    assert errors[0] > 0.5 and errors[-1] < 1e-5


def test_rank_rules(digits):
    W = np.random.default_rng(2).standard_normal((64, 40)).astype(np.float32)
    op = lutmul.LowRankLinear.from_dense(W, energy=0.8)
    share = np.cumsum(op.singular_values ** 2) / np.sum(op.singular_values ** 2)
    assert op.rank == int(np.argmax(share >= 0.8)) + 1
    for data_aware in (False, True):
        op = lutmul.LowRankLinear.from_dense(W, max_error=0.1, calib=digits, data_aware=data_aware)
        assert op.relative_error(digits, W) <= 0.1 + 1e-5
        smaller = lutmul.LowRankLinear.from_dense(W, rank=op.rank - 1, calibration=digits, data_aware=data_aware)
        assert smaller.relative_error(digits, W) > 0.1
    with pytest.raises(ValueError, match="exactly one"):
        lutmul.LowRankLinear.from_dense(W, rank=3, energy=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        lutmul.LowRankLinear.from_dense(W)
    with pytest.raises(ValueError, match="calibration"):
        lutmul.LowRankLinear.from_dense(W, max_error=0.1)
    with pytest.raises(ValueError, match="rank"):
        lutmul.LowRankLinear.from_dense(W, rank=41)
    with pytest.raises(TypeError):
        lutmul.LowRankLinear(W)


def test_data_aware_beats_plain_svd_on_digits(digits):
    # Pixels differ widely in variance and three never vary: the second moment is singular.
    assert np.sum(digits.std(axis=0) == 0) > 0
    W = np.random.default_rng(3).standard_normal((64, 40)).astype(np.float32)
    calibration, held_out = digits[:1200], digits[1200:]
    for r in (4, 8, 16):
        plain = lutmul.LowRankLinear.from_dense(W, rank=r)
        aware = lutmul.LowRankLinear.from_dense(W, rank=r, calibration=calibration, data_aware=True)
        assert np.isfinite(aware.U).all()
        plain_err, aware_err = plain.relative_error(held_out, W), aware.relative_error(held_out, W)
        print(f"rank {r}: plain SVD {plain_err:.3f}, data-aware {aware_err:.3f} on held-out digits")
        assert aware_err < 0.6 * plain_err  # measured: about 0.3-0.4 of it


def test_low_rank_bad_input():
    W = np.ones((8, 6), np.float32)
    op = lutmul.LowRankLinear.from_dense(W, rank=1)
    bad = np.zeros((2, 8), np.float32)
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        op(bad)
    with pytest.raises(ValueError, match="K = 8"):
        op(np.zeros((2, 7), np.float32))
    with pytest.raises(ValueError):
        lutmul.LowRankLinear.from_dense(W, energy=0.0)
    with pytest.raises(ValueError):
        lutmul.LowRankLinear.from_dense(np.full((3, 3), np.inf, np.float32), rank=1)
    assert op(np.zeros((0, 8), np.float32)).shape == (0, 6)


# ---- LoRA ----

def make_adapters(k, m, ranks, seed):
    rng = np.random.default_rng(seed)
    return {f"task{i}": (rng.standard_normal((k, r)).astype(np.float32) * 0.3,
                         rng.standard_normal((r, m)).astype(np.float32) * 0.3, float(2 * r))
            for i, r in enumerate(ranks)}


def test_mixed_batches_equal_the_per_row_reference(digits):
    rng = np.random.default_rng(4)
    W = rng.standard_normal((64, 32)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    adapters = make_adapters(64, 32, (1, 4, 16, 5), 5)
    X = digits[:300]
    for base in (lutmul.DenseLinear.from_dense(W, b), lutmul.Int8Linear.from_dense(W, b),
                 lutmul.LowRankLinear.from_dense(W, b, rank=12), lutmul.SparseLinear.from_dense(W, b, sparsity=0.5)):
        op = lutmul.LoraLinear(base)
        for name, (A, B, alpha) in adapters.items():
            op.add_adapter(name, A, B, alpha)
        names = [None] + list(adapters)
        rows = [names[i] for i in rng.integers(0, len(names), size=len(X))]
        got = op(X, rows)
        expected = base(X).astype(np.float64)
        for i, name in enumerate(rows):
            if name is not None:
                A, B, alpha = adapters[name]
                expected[i] += alpha / A.shape[1] * (X[i].astype(np.float64) @ A @ B)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        # The same batch by integer ids, and the base alone without ids.
        ids = np.array([-1 if n is None else op.adapter_id(n) for n in rows], dtype=np.int32)
        np.testing.assert_array_equal(op(X, ids), got)
        np.testing.assert_array_equal(op(X), base(X))
        assert op.base_kind == base.kind


def test_merge_and_unmerge_round_trip():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((48, 24)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    base = lutmul.DenseLinear.from_dense(W, b)
    op = lutmul.LoraLinear(base)
    for name, (A, B, alpha) in make_adapters(48, 24, (8, 3), 7).items():
        op.add_adapter(name, A, B, alpha)
    A, B, alpha = op.adapter("task0")
    X = rng.standard_normal((10, 48)).astype(np.float32)
    before = op(X, ["task0"] * 10)
    base_before = base(X)
    op.merge("task0")
    assert op.merged("task0") and not op.merged("task1")
    merged_w, merged_b = op.base_weights
    np.testing.assert_allclose(merged_w, W + alpha / A.shape[1] * (A.astype(np.float64) @ B), atol=1e-5)
    np.testing.assert_array_equal(merged_b, b)
    np.testing.assert_allclose(op(X), before, rtol=1e-5, atol=1e-4)           # every row gets it now
    np.testing.assert_allclose(op(X, ["task0"] * 10), before, rtol=1e-5, atol=1e-4)  # but only once
    op.merge("task1").unmerge("task0").unmerge("task1")
    restored, _ = op.base_weights
    np.testing.assert_allclose(restored, W, rtol=0, atol=4e-6)
    np.testing.assert_array_equal(base(X), base_before)  # the caller's base is untouched
    with pytest.raises(ValueError, match="not merged"):
        op.unmerge("task0")
    quantized = lutmul.LoraLinear(lutmul.Int8Linear.from_dense(W)).add_adapter("a", A, B, alpha)
    with pytest.raises(ValueError, match="dense base"):
        quantized.merge("a")


def test_adapters_come_and_go_while_python_threads_forward():
    rng = np.random.default_rng(8)
    W = rng.standard_normal((96, 64)).astype(np.float32)
    op = lutmul.LoraLinear(lutmul.DenseLinear.from_dense(W))
    A, B, alpha = make_adapters(96, 64, (8,), 9)["task0"]
    op.add_adapter("stable", A, B, alpha)
    X = rng.standard_normal((40, 96)).astype(np.float32)
    rows = ["stable", None] * 20
    expected = op(X, rows)
    failures, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            if not np.array_equal(op(X, rows), expected):
                failures.append("changed")

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    for i in range(200):
        op.add_adapter(f"tmp{i}", A, B, 1.0)
        op.remove_adapter(f"tmp{i}")
    stop.set()
    for t in readers:
        t.join()
    assert not failures and op.adapter_names == ["stable"]


def test_lora_bad_input():
    W = np.ones((8, 4), np.float32)
    op = lutmul.LoraLinear(lutmul.DenseLinear.from_dense(W)).add_adapter("a", np.ones((8, 2), np.float32), np.ones((2, 4), np.float32), 1.0)
    X = np.ones((3, 8), np.float32)
    with pytest.raises(ValueError, match="one entry per row"):
        op(X, ["a", None])
    with pytest.raises(ValueError, match="no adapter called"):
        op(X, ["a", "b", None])
    with pytest.raises(ValueError, match="not loaded"):
        op(X, np.array([0, 5, -1]))
    with pytest.raises(ValueError, match="already loaded"):
        op.add_adapter("a", np.ones((8, 2), np.float32), np.ones((2, 4), np.float32), 1.0)
    with pytest.raises(ValueError):
        op.add_adapter("b", np.ones((7, 2), np.float32), np.ones((2, 4), np.float32), 1.0)
    bad = X.copy()
    bad[0, 1] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        op(bad, ["a", None, None])
    with pytest.raises(TypeError):
        lutmul.LoraLinear(W)


# ---- PEFT and safetensors ----

def safetensors_bytes(tensors, metadata=None):
    """A safetensors file: {name: (dtype, shape, raw bytes)} laid out back to back."""
    header, offset, blobs = {}, 0, []
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    return header_and_data(json.dumps(header), b"".join(blobs))


def header_and_data(header_text, data):
    text = header_text.encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def bf16(values):
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4") >> 16
    return bits.astype("<u2").tobytes()


def write_peft(directory, modules, r, alpha, dtype="F32", **config):
    """An adapter as PEFT saves it: lora_A.weight (r, K) and lora_B.weight (M, r) per module."""
    tensors = {}
    for module, (A, B) in modules.items():
        for key, torch_weight in ((f"{module}.lora_A.weight", A.T), (f"{module}.lora_B.weight", B.T)):
            raw = {"F32": lambda v: np.ascontiguousarray(v, "<f4").tobytes(),
                   "F16": lambda v: np.ascontiguousarray(v, "<f2").tobytes(),
                   "BF16": bf16}[dtype](torch_weight)
            tensors[key] = (dtype, torch_weight.shape, raw)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adapter_model.safetensors").write_bytes(safetensors_bytes(tensors, {"format": "pt"}))
    cfg = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": ["q_proj", "v_proj"],
           "bias": "none", "fan_in_fan_out": False, "task_type": "CAUSAL_LM"}
    cfg.update(config)
    (directory / "adapter_config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_peft_adapters_load_back_exactly(tmp_path, dtype):
    rng = np.random.default_rng(10)
    k, m, r = 40, 24, 4
    # A 1/32 grid in [-1, 1]: exact in float32, float16 and bfloat16 alike.
    grid = lambda shape: (np.round(rng.uniform(-1, 1, shape) * 32) / 32).astype(np.float32)  # noqa: E731
    q = (grid((k, r)), grid((r, m)))
    v = (grid((k, r)), grid((r, m)))
    prefix = "base_model.model.model.layers.3.self_attn"
    write_peft(tmp_path / "tuned", {f"{prefix}.q_proj": q, f"{prefix}.v_proj": v}, r, 16, dtype)
    assert lutmul.peft_modules(tmp_path / "tuned") == [f"{prefix}.q_proj", f"{prefix}.v_proj"]
    tensors, metadata = lutmul.read_safetensors(tmp_path / "tuned" / "adapter_model.safetensors")
    assert metadata == {"format": "pt"}
    np.testing.assert_array_equal(tensors[f"{prefix}.q_proj.lora_A.weight"], q[0].T)

    W = rng.standard_normal((k, m)).astype(np.float32)
    op = lutmul.LoraLinear(lutmul.DenseLinear.from_dense(W)).load_peft(tmp_path / "tuned", module="q_proj")
    op.load_peft(tmp_path / "tuned", name="v", module="layers.3.self_attn.v_proj")
    assert op.adapter_names == ["tuned", "v"]
    for name, (A, B) in (("tuned", q), ("v", v)):
        got_a, got_b, alpha = op.adapter(name)
        np.testing.assert_array_equal(got_a, A)
        np.testing.assert_array_equal(got_b, B)
        assert alpha == 16
    X = rng.standard_normal((5, k)).astype(np.float32)
    np.testing.assert_allclose(op(X, ["tuned"] * 5), X @ W + 16 / r * (X @ q[0] @ q[1]), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="several"):
        op.load_peft(tmp_path / "tuned", name="which")


def test_peft_config_variants_and_errors(tmp_path):
    rng = np.random.default_rng(11)
    A, B = rng.standard_normal((6, 2)).astype(np.float32), rng.standard_normal((2, 5)).astype(np.float32)
    write_peft(tmp_path / "rs", {"q_proj": (A, B)}, 2, 4, use_rslora=True)
    op = lutmul.LoraLinear(lutmul.DenseLinear.from_dense(np.zeros((6, 5), np.float32))).load_peft(tmp_path / "rs")
    assert op.adapter("rs")[2] / 2 == pytest.approx(4 / np.sqrt(2))  # rsLoRA scales by alpha/√r
    write_peft(tmp_path / "dora", {"q_proj": (A, B)}, 2, 4, use_dora=True)
    with pytest.raises(ValueError, match="DoRA"):
        op.load_peft(tmp_path / "dora")
    write_peft(tmp_path / "rank", {"q_proj": (A, B)}, 3, 4)
    with pytest.raises(ValueError, match="says r = 3"):
        op.load_peft(tmp_path / "rank")
    write_peft(tmp_path / "target", {"o_proj": (A, B)}, 2, 4)
    with pytest.raises(ValueError, match="target_modules"):
        op.load_peft(tmp_path / "target")
    with pytest.raises(ValueError, match="adapter_config.json|not a directory"):
        op.load_peft(tmp_path / "missing")
    write_peft(tmp_path / "shape", {"q_proj": (A[:5], B)}, 2, 4)
    with pytest.raises(ValueError, match="layer"):
        op.load_peft(tmp_path / "shape")


def test_malformed_safetensors_are_rejected(tmp_path):
    good = {"w": ("F32", (2, 2), np.arange(4, dtype="<f4").tobytes())}
    data = np.arange(8, dtype="<f4").tobytes()
    cases = {
        "truncated": safetensors_bytes(good)[:-3],
        "offsets past the end": header_and_data(
            json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}}), data[:16]),
        "shape x dtype != bytes": header_and_data(
            json.dumps({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}), data[:16]),
        "overlapping": header_and_data(json.dumps({
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}), data[:24]),
        "absurd header length": struct.pack("<Q", 2 ** 62) + b"{}" + data,
        "header past the end": struct.pack("<Q", 1000) + b'{"w": {}}',
        "not JSON": header_and_data('{"w": ', data),
        "unknown dtype": header_and_data(
            json.dumps({"w": {"dtype": "F33", "shape": [4], "data_offsets": [0, 16]}}), data[:16]),
    }
    expected = {"truncated": "past the end", "offsets past the end": "past the end",
                "shape x dtype != bytes": "needs 3 x 4 bytes", "overlapping": "overlaps",
                "absurd header length": "larger than", "header past the end": "past the end",
                "not JSON": "not valid JSON", "unknown dtype": "unknown dtype"}
    for name, raw in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.safetensors"
        path.write_bytes(raw)
        with pytest.raises(ValueError, match=expected[name]):
            lutmul.read_safetensors(path)
    # And through the PEFT loader: a lying adapter file is an error, never a crash.
    write_peft(tmp_path / "lying", {"q_proj": (np.ones((6, 2), np.float32), np.ones((2, 5), np.float32))}, 2, 4)
    (tmp_path / "lying" / "adapter_model.safetensors").write_bytes(cases["overlapping"])
    with pytest.raises(ValueError, match="overlaps"):
        lutmul.LoraLinear(lutmul.DenseLinear.from_dense(np.zeros((6, 5), np.float32))).load_peft(tmp_path / "lying")
