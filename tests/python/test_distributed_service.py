"""The HTTP service under a real client: `lutmul serve` started as its own process against
the three-node Ray cluster, and servers of other limits run in this process on uvicorn."""

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("ray", reason="lutmul.distributed needs Ray: pip install '.[distributed]'")
httpx = pytest.importorskip("httpx", reason="the service's tests need httpx: pip install '.[distributed]'")
uvicorn = pytest.importorskip("uvicorn", reason="the service needs uvicorn: pip install '.[distributed]'")
pytest.importorskip("fastapi", reason="the service needs FastAPI: pip install '.[distributed]'")
pytest.importorskip("tokenizers", reason="the runtime needs tokenizers: pip install '.[runtime]'")

from lutmul.bench.products import english_sentences  # noqa: E402
from lutmul.distributed import ServiceLimits, WorkerPool, create_app  # noqa: E402
from ray_cluster import free_port  # noqa: E402

POOL = 600  # distinct real sentences the requests draw from


@pytest.fixture(scope="module")
def pool_sentences(packaged_model):
    everything = english_sentences()
    picked = np.random.default_rng(5).choice(len(everything), POOL, replace=False)
    return [everything[i] for i in picked]


@pytest.fixture(scope="module")
def reference(pool_sentences):
    from lutmul.runtime import load_encoder

    return load_encoder(None, threads=2).embed(pool_sentences)


@contextlib.contextmanager
def serving(ray_cluster, address, workers, *options, log_name="serve.log"):
    """`lutmul serve` in a process of its own (a Ray driver of the cluster at ``address``),
    answering /healthz; stopped with SIGINT (uvicorn's graceful stop, then the actors are
    killed) at the end."""
    port = free_port()
    command = [sys.executable, "-m", "lutmul", "serve", "--model", "all-MiniLM-L6-v2", "--address", address,
               "--workers", str(workers), "--port", str(port), *options]
    log = open(os.path.join(ray_cluster.temp_dir, log_name), "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"lutmul serve exited with {process.returncode}: {_tail(log)}\n"
                                   + ray_cluster.ray_logs("ray_client_server_2*"))
            if time.monotonic() > deadline:
                raise RuntimeError(f"lutmul serve did not answer /healthz within 180 s: {_tail(log)}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


@pytest.fixture(scope="module")
def server(ray_cluster, pool_sentences):
    """The service on two workers of the cluster, joined by its GCS address."""
    # The tests here check answers, not latency: on a loaded 2-core machine the 40 requests
    # after a worker is killed waited past the 60 s default (504s).
    with serving(ray_cluster, ray_cluster.address, 2, "--max-sentences", "256", "--max-sentence-chars", "2000",
                 "--max-queued-rows", "20000", "--timeout", "600") as url:
        yield url


def _tail(log) -> str:
    log.flush()
    with open(log.name, "rb") as stream:
        return stream.read()[-3000:].decode(errors="replace")


async def _post_all(url, bodies, connections):
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        return await asyncio.gather(*(client.post("/embed", json=body) for body in bodies))


def _requests(count, low, high, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, POOL, size=int(rng.integers(low, high + 1))) for _ in range(count)]


def _check_answers(responses, picks, pool_sentences, reference):
    for response, pick in zip(responses, picks):
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["rows"] == len(pick) and answer["dimensions"] == 384
        got = np.asarray(answer["embeddings"], dtype=np.float32)
        # In input order; equal to the reference up to the last bits: a part of 32 tokens or
        # fewer runs DenseLinear's small-batch product, whose sums round in another order than
        # the sgemm of the reference's batches (distinct sentences differ by far more).
        np.testing.assert_allclose(got, reference[pick], rtol=0, atol=2e-6)


def test_200_concurrent_requests_answered_in_order(server, pool_sentences, reference):
    picks = _requests(200, 1, 64, seed=11)
    bodies = [[pool_sentences[i] for i in pick] for pick in picks]
    responses = asyncio.run(_post_all(server, bodies, connections=200))
    _check_answers(responses, picks, pool_sentences, reference)
    health = httpx.get(server + "/healthz").json()
    assert health["status"] == "ok" and len(health["workers"]) == 2 and health["queued_rows"] == 0


@pytest.mark.parametrize("body, status, message", [
    (b"[" + b'"a",' * 256 + b'"a"]', 413, "257 sentences, at most 256 per request"),
    (b'{"text": ["a"]}', 422, 'body must be a JSON list of strings, or {"sentences": \\[...\\]}; got an object'),
    (b'"just one sentence"', 422, "must be a JSON list of strings.*got a string"),
    (b"42", 422, "got a number"),
    (b'["fine", 3, "fine"]', 422, r"sentences\[1\] must be a string, got a number"),
    (b'["fine", null]', 422, r"sentences\[1\] must be a string, got null"),
    (b"[]", 422, "the list of sentences is empty"),
    (b'{"sentences": []}', 422, "the list of sentences is empty"),
    (b"[\"unclosed\"", 422, "body is not valid JSON"),
    (b"", 422, "body is not valid JSON"),
    (json.dumps(["ok", "x" * 2001]).encode(), 422, r"sentences\[1\] has 2001 characters, at most 2000"),
    (b'["ok", "half a pair \\ud800"]', 422, r"sentences\[1\] is not valid Unicode"),
    (b"[" * 100000, 422, "nests JSON deeper"),  # 100 kB, far under the size limit
    (b'["' + b"a" * (9 << 20) + b'"]', 413, "at most 8388608"),  # over the 8 MiB body limit
    (b'["\xff\xfe"]', 422, "body is not valid JSON"),  # not UTF-8
    (b'{"sentences": "abc"}', 422, "got a string"),
    (b'{"sentences": {"a": 1}}', 422, "got an object"),
    (b'["ok", NaN]', 422, r"sentences\[1\] must be a string, got a number"),
    (b"[" + b"1" * 5000 + b"]", 422, "body is not valid JSON"),  # past Python's 4,300-digit limit
])
def test_bad_requests_get_their_status_and_message(server, body, status, message):
    response = httpx.post(server + "/embed", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert re.search(message, response.json()["detail"]), response.json()["detail"]


def test_other_methods_and_paths_get_fastapis_answers(server):
    assert httpx.get(server + "/embed").status_code == 405
    assert httpx.post(server + "/nowhere", json=["a"]).status_code == 404


def test_a_text_plain_body_is_read_as_json(server, pool_sentences, reference):
    response = httpx.post(server + "/embed", content=json.dumps(pool_sentences[:2]).encode(),
                          headers={"content-type": "text/plain"})
    assert response.status_code == 200, response.text
    assert np.array_equal(np.asarray(response.json()["embeddings"], dtype=np.float32), reference[:2])


def test_serve_with_a_model_the_workers_cannot_load_exits_1(ray_cluster, tmp_path):
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    command = [sys.executable, "-m", "lutmul", "serve", "--model", str(empty), "--address", ray_cluster.address,
               "--workers", "1", "--port", str(free_port())]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert completed.returncode == 1, completed.stderr[-2000:]
    assert "could not load the model" in completed.stderr, completed.stderr[-2000:]


def test_serve_usage_errors_exit_2():
    from lutmul.runtime.cli import main

    for bad in (["--workers", "0"], ["--timeout", "0"], ["--max-sentences", "-1"], ["--port", "abc"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", "--model", "all-MiniLM-L6-v2", *bad])
        assert exit_info.value.code == 2, bad


def test_the_sentences_object_form_and_the_metrics(server, pool_sentences, reference):
    response = httpx.post(server + "/embed", json={"sentences": pool_sentences[:3]})
    assert response.status_code == 200
    assert np.array_equal(np.asarray(response.json()["embeddings"], dtype=np.float32), reference[:3])
    metrics = httpx.get(server + "/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {}
    for line in metrics.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values['lutmul_requests_total{code="200"}'] >= 201
    assert values['lutmul_requests_total{code="422"}'] >= 1
    assert values["lutmul_rows_total"] >= 200
    assert values["lutmul_request_seconds_count"] == sum(v for k, v in values.items()
                                                         if k.startswith("lutmul_requests_total"))
    assert values['lutmul_request_seconds_bucket{le="+Inf"}'] == values["lutmul_request_seconds_count"]
    assert values["lutmul_workers"] == 2 and values["lutmul_queued_rows"] == 0


def test_service_keeps_serving_after_a_worker_is_killed(server, pool_sentences, reference):
    victim = int(httpx.get(server + "/healthz").json()["workers"][0].rsplit(":", 1)[1])
    picks = _requests(40, 32, 64, seed=12)
    bodies = [[pool_sentences[i] for i in pick] for pick in picks]

    def kill_soon():
        time.sleep(1.0)  # the requests' parts are queued on both workers by now
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_soon)
    killer.start()
    responses = asyncio.run(_post_all(server, bodies, connections=40))
    killer.join()
    _check_answers(responses, picks, pool_sentences, reference)
    health = httpx.get(server + "/healthz").json()
    assert health["worker_replacements"] >= 1
    after = httpx.post(server + "/embed", json=pool_sentences[:70])  # split over both slots again
    assert after.status_code == 200
    assert np.array_equal(np.asarray(after.json()["embeddings"], dtype=np.float32), reference[:70])
    assert str(victim) not in " ".join(httpx.get(server + "/healthz").json()["workers"])


@contextlib.contextmanager
def in_process_server(pool, limits):
    """The service on uvicorn in a thread of this process (a driver of the cluster)."""
    port = free_port()
    config = uvicorn.Config(create_app(pool, limits), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _one_worker_pool(model):
    """One actor on the CPU the server's two leave free (one test at a time holds it)."""
    pool = WorkerPool(model, 1)
    pool.describe()
    return pool


@pytest.fixture
def one_worker_pool(ray_cluster, server):
    pool = _one_worker_pool(None)
    yield pool
    pool.shutdown()


@pytest.fixture
def overflowing_model(tmp_path, packaged_model):
    """An encoder file whose last feed-forward layer's outputs pass float's range on every
    sentence: each embed raises, wherever it runs (a real failure of the worker, not a mock)."""
    import lutmul
    from lutmul.runtime import load_encoder

    encoder = load_encoder(None)
    exact = encoder.linear(encoder.num_layers - 1, "ffn_out")
    huge = lutmul.DenseLinear.from_dense(np.full_like(exact.weights, 3e38), exact.bias)
    path = tmp_path / "overflowing.lutmul"
    encoder.with_linear(encoder.num_layers - 1, "ffn_out", huge).save(path)
    return path


def test_a_part_that_fails_every_time_answers_500_naming_the_failures(ray_cluster, server, overflowing_model,
                                                                      pool_sentences):
    pool = _one_worker_pool(overflowing_model)
    try:
        with in_process_server(pool, ServiceLimits()) as url:
            response = httpx.post(url + "/embed", json=pool_sentences[:10], timeout=300)
            assert response.status_code == 500
            detail = response.json()["detail"]
            assert detail.startswith("a part of 10 sentences failed 3 times: raised on worker slot 0: "), detail
            assert detail.count("the forward overflowed") == 3, detail
            metrics = httpx.get(url + "/metrics").text
            assert 'lutmul_requests_total{code="500"} 1' in metrics
            assert "lutmul_part_retries_total 2" in metrics
            assert httpx.get(url + "/healthz").status_code == 200  # the service itself is fine
    finally:
        pool.shutdown()


def test_a_full_queue_answers_503(one_worker_pool, pool_sentences, reference):
    limits = ServiceLimits(max_queued_rows=64)
    picks = _requests(8, 64, 64, seed=13)
    bodies = [[pool_sentences[i] for i in pick] for pick in picks]
    with in_process_server(one_worker_pool, limits) as url:
        responses = asyncio.run(_post_all(url, bodies, connections=8))
        refused = [r for r in responses if r.status_code == 503]
        answered = [(r, p) for r, p in zip(responses, picks) if r.status_code != 503]
        assert refused and answered
        assert all(r.headers["retry-after"] == "1" and "the queue is full" in r.json()["detail"] for r in refused)
        _check_answers([r for r, _ in answered], [p for _, p in answered], pool_sentences, reference)
        metrics = httpx.get(url + "/metrics").text
        assert f'lutmul_requests_total{{code="503"}} {len(refused)}' in metrics


def test_a_slow_request_answers_504(one_worker_pool, pool_sentences):
    with in_process_server(one_worker_pool, ServiceLimits(timeout_seconds=0.001)) as url:
        response = httpx.post(url + "/embed", json=pool_sentences[:64])
        assert response.status_code == 504
        assert response.json()["detail"] == "no answer within 0.001 s"


def test_the_service_joins_through_ray_client(ray_cluster, server, pool_sentences, reference):
    """`lutmul serve --address ray://...`: a service whose driver is a Ray Client, its one
    actor on the CPU the module's server leaves free, answers as the other one does."""
    with serving(ray_cluster, ray_cluster.client_address, 1, log_name="serve-client.log") as url:
        health = httpx.get(url + "/healthz", timeout=10).json()
        assert health["status"] == "ok" and len(health["workers"]) == 1
        picks = _requests(6, 1, 64, seed=17)
        responses = asyncio.run(_post_all(url, [[pool_sentences[i] for i in pick] for pick in picks], connections=3))
        _check_answers(responses, picks, pool_sentences, reference)
