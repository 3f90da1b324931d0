"""lutmul.distributed.compile_job on a real Ray cluster of three nodes (separate processes):
the same plan and the same compiled model as a local compile for the same seed, also when a
compile worker is killed in the middle of its fits."""

import numpy as np
import pytest

pytest.importorskip("ray", reason="lutmul.distributed needs Ray: pip install '.[distributed]'")
pytest.importorskip("tokenizers", reason="the runtime needs tokenizers: pip install '.[runtime]'")

from lutmul.bench.products import english_sentences  # noqa: E402
from lutmul.distributed import compile_job  # noqa: E402
from lutmul.runtime import Candidate, compile, load_encoder  # noqa: E402

from conftest import int8_has_dot_products  # noqa: E402

# As tests/python/test_compile.py: cheap families and few rows keep each compile to seconds.
CANDIDATES = ["bf16", "int8", Candidate("maddness", (("ncodebooks", 16),))]
TIMINGS = {}  # shared: the timings are measurements, the same ones give the same plan
QUICK = dict(progress=False, timings=TIMINGS, max_fit_rows=2048, screen_sentences=48, candidates=CANDIDATES)


@pytest.fixture(scope="module")
def calibration(packaged_model):
    return english_sentences()[:240]


@pytest.fixture(scope="module")
def local(calibration):
    return compile(load_encoder(None), calibration, min_cosine=0.99, **QUICK)


def _same_plan(got, expected):
    """Every row the same; the loss measured alone (stage 1, the workers' part) up to the last
    bits of a float (the workers run one thread, this process more)."""
    for row, want in zip(got.plan, expected.plan):
        assert {k: v for k, v in row.items() if k != "alone_loss"} == {k: v for k, v in want.items()
                                                                      if k != "alone_loss"}
        assert row["alone_loss"] == pytest.approx(want["alone_loss"], rel=1e-4, abs=1e-7)
    assert len(got.plan) == len(expected.plan)


def test_the_plan_is_the_local_plan(ray_cluster, calibration, local):
    compiled = compile_job(None, calibration, min_cosine=0.99, workers=2, **QUICK)
    # Where int8 has no VNNI or AMX, no candidate may be faster than exact and both plans can be
    # all dense (conftest.int8_has_dot_products): the plan comparison then checks less, the
    # stage-1 checks after it as much.
    if int8_has_dot_products():
        assert any(row["kind"] != "dense" for row in local.plan), "the budget replaced no layer: nothing is compared"
    _same_plan(compiled, local)
    sentences = english_sentences()[-64:]
    assert np.array_equal(compiled.embed(sentences), local.embed(sentences))  # the chosen fits run here
    stage1 = compiled.compile_summary["stage1"]
    assert stage1["where"] == "ray" and len(stage1["workers"]) == 2
    # 36 layers fitted, and a loss run for each layer with a candidate on its front, over both
    assert sum(stage1["tasks_per_worker"].values()) >= 36 and min(stage1["tasks_per_worker"].values()) > 0
    assert local.compile_summary["stage1"]["where"] == "this process"


def test_a_killed_compile_worker_is_replaced_and_the_plan_holds(ray_cluster, calibration, local):
    # loaded the model, tapped its rows and fitting after 4 CPU-seconds
    compiled = ray_cluster.kill_while_running(
        "ray::CompileWorker", 4.0, lambda: compile_job(None, calibration, min_cosine=0.99, workers=2, **QUICK))
    _same_plan(compiled, local)
    assert len(compiled.compile_summary["stage1"]["workers"]) == 3  # the victim's slot got a new actor


def test_bad_arguments_are_clear_errors(calibration):
    with pytest.raises(ValueError, match="max_retries"):
        compile_job(None, calibration, max_retries=-1)
    with pytest.raises(TypeError, match="screening"):
        compile_job(None, calibration, screening=None)
    with pytest.raises(ValueError, match="workers"):
        compile_job(None, calibration, workers=0)
    with pytest.raises(TypeError):
        compile_job(None, ["a sentence", 3])


def test_the_command_line_compiles_on_the_cluster(ray_cluster, calibration, tmp_path, capsys):
    from lutmul.runtime import load
    from lutmul.runtime.cli import main

    sentences_file = tmp_path / "calibration.txt"
    sentences_file.write_text("\n".join(calibration[:80]) + "\n", encoding="utf-8")
    out = tmp_path / "cli.lutmul"
    assert main(["compile", "--model", "all-MiniLM-L6-v2", "--calibration", str(sentences_file), "--min-cosine",
                 "0.99", "--out", str(out), "--candidates", "int8", "--no-progress", "--workers", "2"]) == 0
    assert "held-out mean cosine" in capsys.readouterr().out
    summary = load(out).compile_summary
    assert summary["stage1"]["where"] == "ray" and len(summary["stage1"]["workers"]) == 2
