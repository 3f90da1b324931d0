"""The operators' Python side: dense and int8 on real activations (scikit-learn digits
through a small trained network), numpy conventions and errors."""
import warnings

import numpy as np
import pytest

import lutmul

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402


@pytest.fixture(scope="module")
def network():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier(hidden_layer_sizes=(128,), max_iter=300, random_state=0).fit(x[:1400], y[:1400])
    w1, w2 = (w.astype(np.float32) for w in mlp.coefs_)
    b1, b2 = (b.astype(np.float32) for b in mlp.intercepts_)
    hidden = np.maximum(x[1400:] @ w1 + b1, 0).astype(np.float32)
    return x[1400:], hidden, (w1, b1), (w2, b2), y[1400:], mlp


def test_int8_error_on_real_activations(network):
    x, hidden, (w1, b1), (w2, b2), labels, mlp = network
    for inputs, (w, b) in ((x, (w1, b1)), (hidden, (w2, b2))):
        op = lutmul.Int8Linear.from_dense(w, b)
        err = op.relative_error(inputs, w, b)
        print(f"int8 layer {w.shape}: relative error {err:.4f}")
        assert err < 0.02
        static = lutmul.Int8Linear.from_dense(w, b, activations="static", calibration=inputs, percentile=99.9)
        assert static.relative_error(inputs, w, b) < 0.05
    # The whole network with both layers in int8 keeps its accuracy.
    l1 = lutmul.Int8Linear.from_dense(w1, b1)
    l2 = lutmul.Int8Linear.from_dense(w2, b2)
    logits = l2(np.maximum(l1(x), 0))
    exact_accuracy = np.mean(mlp.predict(x) == labels)
    assert np.mean(logits.argmax(1) == labels) >= exact_accuracy - 0.01


def test_dense_is_exact_and_layouts_agree(network):
    x, _, (w1, b1), _, _, _ = network
    dense = lutmul.DenseLinear.from_dense(w1, b1)
    assert dense.relative_error(x, w1, b1) < 1e-6
    np.testing.assert_array_equal(dense(x), dense(np.asfortranarray(x)))
    op = lutmul.Int8Linear.from_dense(w1, b1)
    np.testing.assert_array_equal(op(x), op(np.asfortranarray(x)))
    np.testing.assert_array_equal(op(x[:1]), op(x)[:1])  # one row (a GEMV) equals the batch
    assert op.bytes < dense.bytes / 3
    assert op.kind == "int8" and dense.kind == "dense"


def test_int8_backends_give_the_same_bits_and_name_their_path(network):
    x, hidden, (w1, b1), (w2, b2), _, _ = network
    rows = np.concatenate([hidden] * 2)[:300]  # a block of 256, one of 32 and a rest of 12
    own = lutmul.Int8Linear.from_dense(w2, b2, backend="own")
    assert own.path.startswith("the ") and "own_kernels was asked for" in own.path
    automatic = lutmul.Int8Linear.from_dense(w2, b2)
    np.testing.assert_array_equal(automatic(rows), own(rows))
    print("int8 automatic path:", automatic.path)
    try:
        forced = lutmul.Int8Linear.from_dense(w2, b2, backend=lutmul.Int8Backend.onednn)
    except ValueError as error:
        assert "Int8Backend::onednn cannot run here" in str(error)
        # Where lutmul's int8 kernels use VNNI ("the avx512-vnni kernels (...)") and oneDNN's
        # level has it too, the backend must build: a failure, not a skip.
        expected = "vnni" in own.path.split("(")[0] and lutmul.exact_product_backend()["isa"] in (
            "avx512_core_vnni", "avx512_core_bf16", "avx512_core_amx")
        assert not expected, f"this CPU has VNNI for lutmul and oneDNN, yet: {error}"
        pytest.skip(f"oneDNN has no exact int8 product on this CPU: {error}")
    assert forced.path.startswith("oneDNN ") and "blocks of 64 and 32 rows" in forced.path
    np.testing.assert_array_equal(forced(rows), own(rows))
    np.testing.assert_array_equal(forced(np.asfortranarray(rows)), own(rows))
    with pytest.raises(ValueError, match="backend must be 'auto', 'own' or 'onednn'"):
        lutmul.Int8Linear.from_dense(w2, b2, backend="amx")


def test_forward_with_gelu_and_accumulation(network):
    """activation="gelu" is exact (erf) GELU of the product; accumulate=True adds it to out. MADDNESS
    fuses both into its scan, bf16 into oneDNN's AMX blocks where they run; dense makes a pass of
    its own; all against numpy in float64."""
    from math import erf, sqrt

    x, _, (w1, b1), _, _, _ = network
    gelu = np.vectorize(lambda v: v * 0.5 * (1.0 + erf(v / sqrt(2.0))))
    for op in (lutmul.DenseLinear.from_dense(w1, b1), lutmul.MaddnessLinear.from_dense(w1, b1, calibration=x, ncodebooks=8),
               lutmul.Bf16Linear.from_dense(w1, b1)):
        plain = op(x).astype(np.float64)
        activated = op(x, activation="gelu")
        np.testing.assert_allclose(activated, gelu(plain), rtol=1e-6, atol=1e-6)
        residual = np.linspace(-1, 1, plain.size, dtype=np.float32).reshape(plain.shape)
        out = residual.copy()
        assert op(x, out=out, accumulate=True) is out
        np.testing.assert_array_equal(out, residual + op(x))  # the same float additions
        out = residual.copy()
        op(x, out=out, activation="gelu", accumulate=True)
        np.testing.assert_allclose(out, residual + gelu(plain), rtol=1e-6, atol=1e-6)
        amx_blocks = op.kind == "bf16" and "blocks of" in op.path
        assert op.fuses_epilogue == (op.kind == "maddness" or amx_blocks), op.kind
        with pytest.raises(ValueError, match="activation must be None or 'gelu'"):
            op(x, activation="relu")
        with pytest.raises(ValueError, match="accumulate=True adds to out"):
            op(x, accumulate=True)


def test_operator_errors(network):
    x, _, (w1, b1), _, _, _ = network
    op = lutmul.Int8Linear.from_dense(w1, b1)
    with pytest.raises(ValueError, match="K = 64 columns"):
        op(x[:, :10])
    bad = x.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        op(bad)
    bad_w = w1.copy()
    bad_w[0, 0] = np.inf
    with pytest.raises(ValueError):
        lutmul.Int8Linear.from_dense(bad_w)
    with pytest.raises(ValueError, match="calibration"):
        lutmul.Int8Linear.from_dense(w1, activations="static")
    with pytest.raises(ValueError, match="bias must have shape"):
        lutmul.DenseLinear.from_dense(w1, np.zeros(3))
    with pytest.raises(TypeError):
        lutmul.Int8Linear(w1)
    assert op(np.zeros((0, 64), np.float32)).shape == (0, 128)


def test_sparse_equals_the_pruned_product(network):
    x, hidden, (w1, b1), (w2, b2), labels, mlp = network
    op = lutmul.SparseLinear.from_dense(w1, b1, sparsity=0.5)
    assert op.nonzeros == round(0.5 * w1.size)
    kept = np.zeros_like(w1)
    order = np.lexsort((np.arange(w1.size), -np.abs(w1).ravel()))[: op.nonzeros]
    kept.ravel()[order] = w1.ravel()[order]
    np.testing.assert_allclose(op(x), x @ kept + b1, rtol=1e-4, atol=1e-4)
    aware = lutmul.SparseLinear.from_dense(w1, b1, sparsity=0.5, calibration=x)
    assert aware.relative_error(x, w1, b1) <= op.relative_error(x, w1, b1)
    with pytest.raises(ValueError, match="sparsity"):
        lutmul.SparseLinear.from_dense(w1, sparsity=1.0)


def test_channel_pruning_gives_a_smaller_exact_product(network):
    x, hidden, (w1, b1), (w2, b2), labels, mlp = network
    op = lutmul.ChannelPrunedLinear.from_dense(w2, b2, fraction=0.25, channels="inputs")
    kept = op.kept_inputs
    assert len(kept) == 96
    np.testing.assert_allclose(op(hidden), hidden[:, kept] @ w2[kept] + b2, rtol=1e-4, atol=1e-4)
    assert op.multiply_adds_per_row == 96 * 10
    out = lutmul.ChannelPrunedLinear.from_dense(w1, b1, fraction=0.5)
    y = out(x)
    dropped = sorted(set(range(128)) - set(out.kept_outputs))
    np.testing.assert_allclose(y[:, dropped], np.broadcast_to(b1[dropped], (x.shape[0], len(dropped))))
    with pytest.raises(ValueError):
        lutmul.ChannelPrunedLinear.from_dense(w1, channels="rows")


def test_two_of_four_pruning(network):
    x, hidden, (w1, b1), (w2, b2), labels, mlp = network
    op = lutmul.Sparse24Linear.from_dense(w1, b1)
    assert op.pattern == "2:4" and op.kind == "sparse24"
    pruned = op.pruned_dense()
    # Two kept per group of four inputs, the two largest |w|, the others zero.
    groups = np.abs(w1).reshape(16, 4, 128)
    kept = pruned.reshape(16, 4, 128) != 0
    assert (kept.sum(axis=1) == 2).all()
    expected = np.argsort(-groups, axis=1, kind="stable")[:, :2, :]
    assert (np.take_along_axis(kept, expected, axis=1)).all()
    np.testing.assert_allclose(op(x), x @ pruned + b1, rtol=1e-4, atol=1e-4)
    assert op.nonzeros == 64 // 2 * 128 and op.multiply_adds_per_row == op.nonzeros
    aware = lutmul.Sparse24Linear.from_dense(w1, b1, calibration=x)
    assert aware.relative_error(x, w1, b1) <= op.relative_error(x, w1, b1)
    with pytest.raises(ValueError, match="divisible by 4"):
        lutmul.Sparse24Linear.from_dense(w1[:62])
    with pytest.raises(ValueError, match="pattern"):
        lutmul.SparseLinear.from_dense(w1, pattern="4:8")


def test_global_pruning_takes_more_from_the_layer_that_matters_less(network):
    x, hidden, (w1, b1), (w2, b2), labels, mlp = network
    layers = lutmul.prune_globally([w1, w2 * 10], 0.8, biases=[b1, b2])
    total = w1.size + w2.size
    assert sum(layer.nonzeros for layer in layers) == round(0.2 * total)
    assert layers[1].nonzeros / w2.size > 2 * layers[0].nonzeros / w1.size
    threshold = min(np.abs(layers[0].pruned_dense()[layers[0].pruned_dense() != 0]).min(),
                    np.abs(layers[1].pruned_dense()[layers[1].pruned_dense() != 0]).min())
    dropped = np.concatenate([np.abs(w1)[layers[0].pruned_dense() == 0], np.abs(w2 * 10)[layers[1].pruned_dense() == 0]])
    assert dropped.max() <= threshold
    with pytest.raises(ValueError):
        lutmul.prune_globally([w1, w2], 0.5, biases=[b1])
    with pytest.raises(ValueError):
        lutmul.prune_globally([], 0.5)


def test_every_operator_saves_loads_and_pickles(network, tmp_path):
    import pickle

    x, hidden, (w1, b1), (w2, b2), labels, mlp = network
    ops = [
        lutmul.DenseLinear.from_dense(w1, b1),
        lutmul.Int8Linear.from_dense(w1, b1),
        lutmul.SparseLinear.from_dense(w1, b1, sparsity=0.7),
        lutmul.Sparse24Linear.from_dense(w1, b1),
        lutmul.ChannelPrunedLinear.from_dense(w1, b1, fraction=0.25),
        lutmul.LowRankLinear.from_dense(w1, b1, rank=8),
        lutmul.MaddnessLinear.from_dense(w1, b1, calibration=x, ncodebooks=8),
    ]
    for i, op in enumerate(ops):
        path = tmp_path / f"op{i}.lutmul"
        op.save(path)
        back = lutmul.load(path)
        assert type(back) is type(op) and back.kind == op.kind
        np.testing.assert_array_equal(back(x), op(x))
        again = pickle.loads(pickle.dumps(op))
        np.testing.assert_array_equal(again(x), op(x))
    lora = lutmul.LoraLinear(lutmul.Int8Linear.from_dense(w1, b1))
    rng = np.random.default_rng(0)
    lora.add_adapter("style", rng.standard_normal((64, 4)).astype(np.float32),
                     rng.standard_normal((4, 128)).astype(np.float32), 2.0)
    lora.save(tmp_path / "lora.lutmul")
    back = lutmul.load(tmp_path / "lora.lutmul")
    assert isinstance(back, lutmul.LoraLinear) and back.adapter_names == ["style"]
    ids = ["style" if i % 2 else None for i in range(x.shape[0])]
    np.testing.assert_array_equal(back.forward(x, ids), lora.forward(x, ids))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lora)).forward(x, ids), lora.forward(x, ids))
    maddness = ops[-1]
    assert maddness.relative_error(x, w1, b1) < 0.3
    (tmp_path / "junk.lutmul").write_bytes(b"not an operator" * 10)
    with pytest.raises(ValueError, match="not a lutmul operator file"):
        lutmul.load(tmp_path / "junk.lutmul")
    data = ops[1].serialize()
    (tmp_path / "cut.lutmul").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        lutmul.load(tmp_path / "cut.lutmul")
