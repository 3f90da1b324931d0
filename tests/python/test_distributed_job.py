"""lutmul.distributed.embed_job on a real Ray cluster of three nodes (separate processes):
input order and every row once, on a clean run, with a worker killed mid-job, with a shard
that always fails, and with the driver interrupted."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("ray", reason="lutmul.distributed needs Ray: pip install '.[distributed]'")
pytest.importorskip("tokenizers", reason="the runtime needs tokenizers: pip install '.[runtime]'")

from lutmul.bench.products import english_sentences  # noqa: E402
from lutmul.distributed import ShardFailedError, embed_job, read_parquet_embeddings  # noqa: E402
from lutmul.distributed.pool import IN_FLIGHT_PER_WORKER  # noqa: E402

JOB_SENTENCES = 5000


@pytest.fixture(scope="module")
def sentences(packaged_model):
    """5,000 real sentences: the installed Python documentation's, repeated from the start
    where it has fewer (a repeated sentence must get the same row)."""
    unique = english_sentences()
    return [unique[i % len(unique)] for i in range(JOB_SENTENCES)]


@pytest.fixture(scope="module")
def reference(sentences):
    """The single-process embeddings, row i for sentence i (each distinct sentence once)."""
    from lutmul.runtime import load_encoder

    distinct = sorted(set(sentences))
    rows = load_encoder(None, threads=2).embed(distinct)
    where = {sentence: i for i, sentence in enumerate(distinct)}
    return rows[[where[sentence] for sentence in sentences]]


def test_job_equals_single_process_row_for_row(ray_cluster, sentences, reference, tmp_path):
    output = tmp_path / "out.npy"
    result = embed_job(None, sentences, output, workers=2, shard_size=200, progress=False)
    got = np.load(output)
    assert got.shape == (JOB_SENTENCES, 384) and got.dtype == np.float32
    assert np.array_equal(got, reference)  # bit for bit: shards of 50+ sentences run the reference's products
    assert result.rows == JOB_SENTENCES and result.shards == 25 and result.shard_runs == 25
    assert result.recomputed_shards == [] and result.failures == []
    assert sum(result.rows_per_worker.values()) == JOB_SENTENCES
    assert len(result.rows_per_worker) == 2 and min(result.rows_per_worker.values()) > 0  # both worked
    assert result.cpu_seconds_per_worker.keys() == result.rows_per_worker.keys()
    assert min(result.cpu_seconds_per_worker.values()) > 0
    assert result.rows_per_second > 0
    assert sorted(os.listdir(tmp_path)) == ["out.npy"]  # no temporary left


def test_job_writes_parquet_and_reads_a_text_file(ray_cluster, sentences, reference, tmp_path):
    pytest.importorskip("pyarrow")
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(sentences[:700]) + "\n", encoding="utf-8")
    output = tmp_path / "out.parquet"
    result = embed_job("all-MiniLM-L6-v2", inputs, output, workers=2, shard_size=64, progress=False)
    assert result.rows == 700
    assert np.array_equal(read_parquet_embeddings(output), reference[:700])


def test_job_ships_the_model_through_the_object_store(ray_cluster, packaged_model, sentences, reference):
    result = embed_job(packaged_model, sentences[:300], None, workers=2, shard_size=50,
                       progress=False, ship_model=True)
    assert np.array_equal(result.embeddings, reference[:300])


def test_killed_worker_recomputes_only_its_shards(ray_cluster, sentences, reference):
    """SIGKILL of one actor's process mid-job: every row once and in order, and only the
    shards queued on that actor run again."""
    # loaded the model (well under a second) and embedding after 3 CPU-seconds
    result = ray_cluster.kill_while_running(
        "ray::EmbedWorker", 3.0,
        lambda: embed_job(None, sentences[:3000], None, workers=2, shard_size=100, progress=False), 300)
    assert np.array_equal(result.embeddings, reference[:3000])
    assert result.worker_replacements == 1
    assert 1 <= len(result.recomputed_shards) <= IN_FLIGHT_PER_WORKER
    assert result.shard_runs == result.shards + len(result.recomputed_shards)
    assert sum(result.rows_per_worker.values()) == 3000
    assert all("lost its worker" in line for line in result.failures)


def test_a_shard_that_always_fails_ends_the_job_naming_it(ray_cluster, sentences, tmp_path):
    # A lone surrogate is a str Python holds but the tokenizer cannot take: the worker raises
    # on every run of shard 3, wherever it runs.
    inputs = list(sentences[:500])
    inputs[3 * 50 + 7] = "broken \ud800 sentence"
    output = tmp_path / "out.npy"
    with pytest.raises(ShardFailedError, match=r"shard 3 \(rows 150:200\) failed 3 times") as caught:
        embed_job(None, inputs, output, workers=2, shard_size=50, max_retries=2, progress=False)
    assert caught.value.shard == 3 and len(caught.value.errors) == 3
    # each retry ran on another worker than the run before it
    slots = [line.split("worker slot ")[1].split(":")[0] for line in caught.value.errors]
    assert slots[0] != slots[1] and slots[1] != slots[2], caught.value.errors
    assert os.listdir(tmp_path) == []  # no output, no temporary


def test_interrupted_driver_leaves_no_output(ray_cluster, sentences, tmp_path):
    """SIGINT to a driver process mid-job: it exits with no output file and no temporary."""
    inputs = tmp_path / "in.txt"
    # Far more work than the test waits for: the interrupt lands early in a long job.
    inputs.write_text("\n".join((list(sentences) * 8)[:20000]) + "\n", encoding="utf-8")
    folder = tmp_path / "out"
    folder.mkdir()
    code = ("import sys\nfrom lutmul.distributed import embed_job\n"
            f"embed_job(None, sys.argv[1], sys.argv[2], address={ray_cluster.address!r}, workers=2, "
            "shard_size=100, progress=False)\n")
    # A child inherits an ignored SIGINT, and Python then installs no KeyboardInterrupt handler:
    # in full runs something earlier left this process ignoring SIGINT, and the driver ran to
    # the end and exited 0. A user's shell starts it with the default, as here.
    driver = subprocess.Popen([sys.executable, "-c", code, str(inputs), str(folder / "out.npy")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        # The temporary file appears once the workers are up, and grows as shards come in.
        while time.monotonic() < deadline and driver.poll() is None:
            sizes = [entry.stat().st_size for entry in folder.iterdir()]
            if sizes and max(sizes) > 128 + 100 * 384 * 4:
                break
            time.sleep(0.05)
        assert driver.poll() is None, driver.communicate()
        driver.send_signal(signal.SIGINT)
        _, stderr = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode != 0, f"this process's SIGINT handler: {signal.getsignal(signal.SIGINT)}"
    assert b"KeyboardInterrupt" in stderr, stderr[-2000:]
    assert list(folder.iterdir()) == []


def test_a_driver_joins_through_ray_client(ray_cluster, sentences, reference, tmp_path):
    """address="ray://..." from a process of its own (this one is already connected)."""
    code = ("import sys\nfrom lutmul.distributed import embed_job\n"
            f"result = embed_job(None, sys.argv[1:], 'out.npy', address={ray_cluster.client_address!r}, workers=2, "
            "shard_size=64, progress=False)\nprint(result.summary())\n")
    done = subprocess.run([sys.executable, "-c", code] + sentences[:300], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:] + "\n" + ray_cluster.ray_logs("ray_client_server_2*")
    assert "300 rows -> out.npy" in done.stdout
    assert np.array_equal(np.load(tmp_path / "out.npy"), reference[:300])


class _FlakyClientRay:
    """Stands in for the ``ray`` module where a real cluster cannot fail on demand: Ray
    Client's proxy losing its new server at start (ray-project/ray#63202) is a race."""

    def __init__(self, failures, message):
        self.failures, self.message, self.inits, self.shutdowns = failures, message, 0, 0

    def init(self, address, **options):
        self.inits += 1
        if self.inits <= self.failures:
            raise ConnectionAbortedError(self.message)

    def shutdown(self):
        self.shutdowns += 1


def test_a_client_connection_retries_only_ray_clients_transient_start_failures(monkeypatch):
    from lutmul.distributed import _ray

    monkeypatch.setattr(_ray.time, "sleep", lambda seconds: None)
    zombie = "Initialization failure from server:\npsutil.ZombieProcess: PID still exists but it's a zombie"
    ray = _FlakyClientRay(2, zombie)
    _ray._join(ray, "ray://127.0.0.1:10001", {})
    assert (ray.inits, ray.shutdowns) == (3, 2)
    ray = _FlakyClientRay(_ray.CLIENT_CONNECT_ATTEMPTS, zombie)  # every attempt fails: the error
    with pytest.raises(ConnectionAbortedError, match="Initialization failure"):
        _ray._join(ray, "ray://127.0.0.1:10001", {})
    assert ray.inits == _ray.CLIENT_CONNECT_ATTEMPTS
    ray = _FlakyClientRay(1, "Connection refused")  # not a transient start failure: at once
    with pytest.raises(ConnectionAbortedError):
        _ray._join(ray, "ray://127.0.0.1:10001", {})
    assert ray.inits == 1
    ray = _FlakyClientRay(1, zombie)  # not Ray Client: at once
    with pytest.raises(ConnectionAbortedError):
        _ray._join(ray, "127.0.0.1:6379", {})
    assert ray.inits == 1


def test_bad_arguments_fail_before_any_work(tmp_path):
    with pytest.raises(TypeError, match=r"sentences\[1\] must be str"):
        embed_job(None, ["a", 3], None)
    with pytest.raises(ValueError, match="must end in .npy or .parquet"):
        embed_job(None, ["a"], tmp_path / "out.csv")
    with pytest.raises(ValueError, match="output folder"):
        embed_job(None, ["a"], tmp_path / "missing" / "out.npy")
    with pytest.raises(ValueError, match="inputs file"):
        embed_job(None, str(tmp_path / "missing.txt"), None)
    with pytest.raises(ValueError, match="shard_size must be an int >= 1"):
        embed_job(None, ["a"], None, shard_size=0)
    with pytest.raises(ValueError, match="max_retries must be an int >= 0"):
        embed_job(None, ["a"], None, max_retries=-1)
    with pytest.raises(ValueError, match="address must be"):
        embed_job(None, ["a"], None, address="nowhere")


def test_pipeline_stages_give_the_single_process_rows(ray_cluster, sentences, reference):
    """Blocks 0–2 on one actor, 3–5 on another, hidden states passed through the object store:
    the rows of the plain pool, bit for bit (each stage batches as Encoder.embed does)."""
    result = embed_job(None, sentences[:1000], None, stages=[3, 3], shard_size=100, progress=False)
    assert np.array_equal(result.embeddings, reference[:1000])
    assert result.workers == 1 and result.shard_runs == 10 and result.failures == []
    (lane, rows), = result.rows_per_worker.items()
    assert rows == 1000 and len(lane.split(" > ")) == 2  # both stages' actors, first stage first
    assert result.cpu_seconds_per_worker[lane] > 0


def test_a_stage_with_replicas_spreads_its_shards(ray_cluster, sentences, reference):
    """Two blocks on one actor, four on two replicas (the heavier stage scaled out): two lanes
    sharing the first stage's actor, every row once and in order."""
    result = embed_job(None, sentences[:600], None, stages=[(2, 1), (4, 2)], shard_size=50, progress=False)
    assert np.array_equal(result.embeddings, reference[:600])
    assert result.workers == 2 and len(result.rows_per_worker) == 2
    firsts = {lane.split(" > ")[0] for lane in result.rows_per_worker}
    seconds = {lane.split(" > ")[1] for lane in result.rows_per_worker}
    assert len(firsts) == 1 and len(seconds) == 2 and min(result.rows_per_worker.values()) > 0


def test_bad_stages_are_clear_errors(ray_cluster, sentences):
    with pytest.raises(ValueError, match=r"the stages hold 5 blocks \(\[3, 2\]\) but the model has 6"):
        embed_job(None, sentences[:10], None, stages=[3, 2], progress=False)
    with pytest.raises(ValueError, match="at least 2 stages"):
        embed_job(None, sentences[:10], None, stages=[6], progress=False)
    with pytest.raises(ValueError, match="a stage's blocks"):
        embed_job(None, sentences[:10], None, stages=[0, 6], progress=False)
    with pytest.raises(ValueError, match="workers or stages, not both"):
        embed_job(None, sentences[:10], None, stages=[3, 3], workers=2, progress=False)
    with pytest.raises(TypeError, match="stages must be a list"):
        embed_job(None, sentences[:10], None, stages="3,3", progress=False)


def test_a_killed_stage_actor_is_replaced_and_every_row_comes_once(ray_cluster, sentences, reference):
    result = ray_cluster.kill_while_running(
        "ray::StageWorker", 3.0,
        lambda: embed_job(None, sentences[:3000], None, stages=[3, 3], shard_size=100, progress=False), 300)
    assert np.array_equal(result.embeddings, reference[:3000])
    assert result.worker_replacements == 1  # only the killed stage's actor, found by asking
    assert 1 <= len(result.recomputed_shards) <= 4  # at most the lane's shards in flight: two per stage
    assert all("lost its worker" in line for line in result.failures)
