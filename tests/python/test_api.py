"""The Python API: numpy conventions, round trips, errors, threads."""
import pickle
import threading

import numpy as np
import pytest

import lutmul


@pytest.fixture(scope="module")
def model(data):
    train, _, b, bias = data
    return lutmul.Maddness(ncodebooks=12).fit(train, b, bias)


def relative_error(exact, approx):
    return float(np.linalg.norm(exact - approx) / np.linalg.norm(exact))


def test_fit_and_matmul_approximate_the_product(model, data):
    _, test, b, bias = data
    y = model.matmul(test)
    assert y.dtype == np.float32 and y.shape == (test.shape[0], 7)
    assert relative_error(test @ b + bias, y) < 0.35
    np.testing.assert_array_equal(y, model(test))


def test_layouts_and_dtypes_agree(model, data):
    _, test, _, _ = data
    y = model(test)
    np.testing.assert_array_equal(y, model(np.asfortranarray(test)))
    np.testing.assert_array_equal(y, model(test.astype(np.float64)))  # converted once
    padded = np.zeros((test.shape[0], 60), dtype=np.float32)
    padded[:, :48] = test
    np.testing.assert_array_equal(y, model(padded[:, :48]))  # strided rows, read in place
    np.testing.assert_array_equal(y[::2], model(test[::2]))  # every other row: converted
    out = np.full((test.shape[0], 7), np.nan, dtype=np.float32)
    assert model.matmul(test, out=out) is out
    np.testing.assert_array_equal(y, out)


def test_encode_scan_and_views(model, data):
    _, test, _, _ = data
    codes = model.encode(test)
    assert codes.dtype == np.uint8 and codes.shape == (test.shape[0], 12) and codes.max() <= 15
    np.testing.assert_array_equal(model(test), model.scan(codes))
    dims = model.split_dims
    assert dims.shape == (12, 4)
    q = model.quantized_tables
    assert q.shape == (7, 6, 32) and q.dtype == np.uint8 and not q.flags.writeable
    with pytest.raises(ValueError):
        q[0, 0, 0] = 1
    assert model.prototypes.shape == (12, 16, 48) and not model.prototypes.flags.writeable
    assert model.tables.shape == (7, 12, 16)
    # Each output's sum of table entries, at its own scale and offset, is its output.
    scales, offsets = model.table_scales, model.table_offsets
    assert scales.shape == (7,) and offsets.shape == (7,) and len(set(scales.tolist())) > 1
    pair = np.arange(12) // 2 * 32 + np.arange(12) % 2 * 16
    sums = np.stack([q.reshape(7, -1)[:, pair + codes[i]].sum(axis=1) for i in range(codes.shape[0])]).astype(np.float64)
    bias = data[3]
    np.testing.assert_allclose(model(test), sums / scales + offsets + bias, rtol=1e-5, atol=1e-4)
    # Views stay valid after the Python name of the model is gone.
    view = lutmul.Maddness(4).fit(test, np.ones((48, 2), np.float32)).quantized_tables
    assert view.sum() >= 0


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns, rounded to nearest even (x finite)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


@pytest.mark.parametrize("leaves", [16, 64])
def test_narrow_outputs(data, leaves):
    """bfloat16 Y is the float Y rounded; the integer sums give the float Y through their scale
    and offset, float32 arithmetic in two roundings, in both accumulation modes."""
    train, test, b, bias = data
    model = lutmul.Maddness(ncodebooks=12, leaves=leaves).fit(train, b, bias)
    for accumulation in ["exact", "averaged"] if leaves == 16 else ["exact"]:
        model.accumulation = accumulation
        y = model(test)
        narrow = model.matmul_bf16(test)
        assert narrow.dtype == np.uint16 and narrow.shape == y.shape
        np.testing.assert_array_equal(bf16_bits(y), narrow)
        values = (narrow.astype(np.uint32) << 16).view(np.float32)
        assert np.max(np.abs(values - y)) <= np.max(np.abs(y)) * 2.0**-8
        sums = model.scan_sums(model.encode(test))
        assert sums.dtype == np.uint16 and sums.shape == y.shape
        scales, offsets = model.sum_scales, model.sum_offsets
        assert scales.dtype == np.float32 and offsets.shape == (7,)
        np.testing.assert_array_equal(y, sums.astype(np.float32) * scales + offsets)
    with pytest.raises(ValueError, match="codes must have shape"):
        model.scan_sums(np.zeros((3, 5), np.uint8))
    assert model.matmul_bf16(np.zeros((0, 48), np.float32)).shape == (0, 7)
    model.float_tables_mode = True
    with pytest.raises(ValueError, match="float tables"):
        model.scan_sums(model.encode(test))
    np.testing.assert_array_equal(bf16_bits(model(test)), model.matmul_bf16(test))


def test_sixty_four_leaf_trees(model, data, tmp_path):
    """K = 64: 6-level trees, codes 0..63, 64-byte tables; the same contract as 16 leaves."""
    train, test, b, bias = data
    wide = lutmul.Maddness(ncodebooks=12, leaves=64).fit(train, b, bias)
    assert wide.leaves == 64 and model.leaves == 16
    codes = wide.encode(test)
    assert codes.shape == (test.shape[0], 12) and codes.max() <= 63 and codes.max() > 15
    y = wide(test)
    np.testing.assert_array_equal(y, wide.scan(codes))
    np.testing.assert_array_equal(y, wide(np.asfortranarray(test)))
    assert wide.split_dims.shape == (12, 6)
    assert wide.prototypes.shape == (12, 64, 48) and wide.tables.shape == (7, 12, 64)
    q = wide.quantized_tables
    assert q.shape == (7, 12, 64) and q.dtype == np.uint8
    sums = np.stack([q[:, np.arange(12), codes[i]].sum(axis=1) for i in range(codes.shape[0])]).astype(np.float64)
    np.testing.assert_allclose(y, sums / wide.table_scales + wide.table_offsets + bias, rtol=1e-5, atol=1e-4)
    # More leaves, lower error at the same C on these rows.
    exact = test @ b + bias
    assert relative_error(exact, y) < relative_error(exact, model(test))
    np.testing.assert_array_equal(y, pickle.loads(pickle.dumps(wide))(test))
    wide.save(tmp_path / "wide.lutmul")
    loaded = lutmul.load(tmp_path / "wide.lutmul")
    assert loaded.leaves == 64
    np.testing.assert_array_equal(y, loaded(test))
    op = lutmul.MaddnessLinear.from_dense(b, bias, calibration=train, ncodebooks=12, leaves=64)
    assert op.leaves == 64
    np.testing.assert_array_equal(y, op(test))
    with pytest.raises(ValueError, match="codes must be in 0..63"):
        wide.scan(np.full((2, 12), 64, np.uint8))
    with pytest.raises(ValueError, match="averaged accumulation needs 16-leaf trees"):
        lutmul.Maddness(12, leaves=64, accumulation="averaged")
    with pytest.raises(ValueError, match="leaves must be 16 or 64, got 32"):
        lutmul.Maddness(12, leaves=32)
    with pytest.raises(ValueError, match="at least 64 rows for 64-leaf trees"):
        lutmul.Maddness(4, leaves=64).fit(train[:63], b)


def test_set_weights_and_modes(data):
    train, test, b, bias = data
    m = lutmul.Maddness(8).fit_encoder(train)
    m.set_weights(b, bias)
    exact = test @ b + bias
    err = relative_error(exact, m(test))
    m.accumulation = "averaged"
    assert m.accumulation == "averaged"
    assert relative_error(exact, m(test)) < err * 1.3 + 0.01
    m.accumulation = "exact"
    m.float_tables_mode = True
    assert abs(relative_error(exact, m(test)) - err) < 0.02
    m.float_tables_mode = False
    m.set_weights(b[:, :3])
    assert m(test).shape == (test.shape[0], 3)


def test_pickle_save_load_round_trip(model, data, tmp_path):
    _, test, _, _ = data
    y = model(test)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(y, clone(test))
    path = tmp_path / "m.lutmul"
    model.save(path)
    loaded = lutmul.load(path)
    np.testing.assert_array_equal(y, loaded(test))
    unfitted = pickle.loads(pickle.dumps(lutmul.Maddness(5)))
    assert unfitted.ncodebooks == 5


def test_damaged_files_are_rejected(model, tmp_path):
    path = tmp_path / "m.lutmul"
    model.save(path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt"):
        lutmul.load(path)
    path.write_bytes(bytes(raw[:100]))
    with pytest.raises(ValueError):
        lutmul.load(path)
    with pytest.raises(ValueError):
        lutmul.load(tmp_path / "missing.lutmul")


def test_bad_inputs(model, data):
    train, test, b, _ = data
    with pytest.raises(ValueError, match=r"D = 48 columns, got shape \(5, 47\)"):
        model(np.zeros((5, 47), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        model(np.zeros(48, np.float32))
    with pytest.raises(TypeError, match="real numbers"):
        model(np.zeros((3, 48), dtype=complex))
    with pytest.raises(TypeError):
        model(np.array([["a"] * 48]))
    bad = test.copy()
    bad[3, model.split_dims[0, 0]] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model(bad)
    nan_train = train.copy()
    nan_train[10, 4] = np.inf
    with pytest.raises(ValueError, match=r"non-finite value at \(10, 4\)"):
        lutmul.Maddness(4).fit(nan_train, b)
    with pytest.raises(ValueError, match="empty"):
        lutmul.Maddness(4).fit(np.zeros((0, 48), np.float32), b)
    with pytest.raises(ValueError, match="as many rows"):
        lutmul.Maddness(4).fit(train, b[:40])
    with pytest.raises(ValueError, match="larger than the number of columns"):
        lutmul.Maddness(49).fit(train, b)
    with pytest.raises(ValueError, match="at least 16 rows"):
        lutmul.Maddness(4).fit(train[:10], b)
    with pytest.raises(ValueError, match="no weights"):
        lutmul.Maddness(4).fit_encoder(train)(test)
    with pytest.raises(ValueError, match="bias must have shape"):
        lutmul.Maddness(4).fit(train, b, bias=np.zeros(3))
    with pytest.raises(ValueError, match="out must be"):
        model.matmul(test, out=np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError):
        lutmul.Maddness(4, accumulation="fast")
    with pytest.raises(ValueError):
        lutmul.set_num_threads(0)
    with pytest.raises(ValueError):
        lutmul.set_isa("sse9")
    assert model(np.zeros((0, 48), np.float32)).shape == (0, 7)


def test_threads_give_the_same_results(model, data):
    _, test, _, _ = data
    big = np.tile(test, (20, 1))
    expected = model(big)
    results = [None] * 6

    def work(i):
        for _ in range(5):
            results[i] = model(big)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(expected, r)
    lutmul.set_num_threads(1)
    try:
        np.testing.assert_array_equal(expected, model(big))
    finally:
        lutmul.set_num_threads(2)


def test_progress_callback_sees_every_stage(data):
    train, _, b, _ = data
    seen = []
    lutmul.Maddness(4).fit(train, b, progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert ("trees", 4, 4) in seen
    assert any(stage == "ridge" for stage, _, _ in seen)
    lutmul.Maddness(4).fit(train, b, progress=True)  # tqdm bar, must not fail


def test_isa_queries():
    assert lutmul.isa() in lutmul.supported_isas()
    assert "scalar" in lutmul.supported_isas()
    assert lutmul.num_threads() >= 1
