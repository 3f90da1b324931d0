"""lutmul.distributed's bars, measured: ``python -m lutmul.bench.distributed_bench --out results/``.

1. Scaling: ``embed_job`` on N real sentences (the installed documentation's, repeated from
   the start to reach N) with 1 and with 2 single-threaded actors, Ray's overhead included
   (the actors start and load the model before the clock starts; the job's own time is
   ``JobResult.seconds``), next to the same sentences through the runtime in this process
   at one thread.
2. A kill mid-job: 2 actors, one actor process SIGKILLed once it has embedded for a while;
   the rows must equal the single-process ones, and the recomputed shards are counted.
3. The HTTP service: ``lutmul serve`` (2 actors) under 1, 8 and 64 concurrent clients
   (httpx), each request 16 sentences; p50/p99 latency and sentences/s, next to the same
   requests given to the runtime in this process by as many client threads.
4. Pipeline stages: the job on two-stage pipelines (blocks 3+3, 2+4, 4+2, one actor each)
   next to 1 and 2 data-parallel actors, in the same run.
5. Distributed compile: the model compiler (default candidates, budget 0.995) on 1,000
   calibration sentences in this process and with stage 1 on 2 actors.

The cluster is a local one of this machine's cores on 127.0.0.2 (a loopback address), its
dashboard off. Writes ``distributed_results.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List

import numpy as np

NODE_IP = "127.0.0.2"


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def real_sentences(count: int) -> List[str]:
    from .products import english_sentences

    unique = english_sentences()
    return [unique[i % len(unique)] for i in range(count)]


def _descendants_named(name: str) -> List[int]:
    """Pids of this process's descendants whose command line starts with ``name``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stream:
                    parents[int(entry)] = int(stream.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    found = []
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != os.getpid():
            ancestor = parents.get(ancestor)
        if ancestor == os.getpid():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as stream:
                    if stream.read().startswith(name.encode()):
                        found.append(pid)
            except OSError:
                pass
    return found


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_job(label: str, sentences: List[str], reference: np.ndarray, **settings) -> Dict:
    """One embed_job, its rows checked against the runtime's; throughput and the actors' CPU."""
    from ..distributed import embed_job

    result = embed_job(None, sentences, None, shard_size=256, progress=False, **settings)
    assert np.array_equal(result.embeddings, reference), "the job's rows differ from the runtime's"
    cpu = sum(result.cpu_seconds_per_worker.values())
    # cores_busy: the CPU time the actors got, over the job's wall time; on a machine
    # shared with other work it says how much of the cores the actors had.
    print(f"  {label}: {result.rows_per_second:.1f} sentences/s ({result.seconds:.1f} s); actors "
          f"busy {cpu / result.seconds:.2f} cores, {result.rows / cpu:.1f} sentences per actor CPU-second",
          flush=True)
    return {"seconds": result.seconds, "rows_per_second": result.rows_per_second,
            "start_seconds": result.start_seconds, "rows_per_worker": result.rows_per_worker,
            "actor_cpu_seconds": cpu, "cores_busy": cpu / result.seconds, "rows_per_actor_cpu_second": result.rows / cpu}


def scaling(sentences: List[str], reference: np.ndarray) -> Dict:
    out = {f"{workers}_workers": _timed_job(f"{workers} worker(s)", sentences, reference, workers=workers)
           for workers in (1, 2)}
    out["speedup"] = out["2_workers"]["rows_per_second"] / out["1_workers"]["rows_per_second"]
    return out


def compile_part(sentences: List[str]) -> Dict:
    """The model compiler on these calibration sentences (default candidates), in this process
    and with stage 1 on 2 actors, each timing afresh; the seconds of each stage and whether
    the plans agree (they may not where two candidates' timings are close: they are measured
    twice)."""
    import warnings

    from ..distributed import compile_job
    from ..runtime import compile, load_encoder

    out = {"calibration_sentences": len(sentences)}
    plans = {}
    for label in ("local", "2_actors"):
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if label == "local":
                compiled = compile(load_encoder(None), sentences, min_cosine=0.995, progress=False, timings={})
            else:
                compiled = compile_job(None, sentences, min_cosine=0.995, workers=2, progress=False, timings={})
        seconds = time.perf_counter() - began
        summary = compiled.compile_summary
        plans[label] = [(row["kind"], row["params"]) for row in compiled.plan]
        out[label] = {"seconds": seconds, "stage1_seconds": summary["stage1"]["seconds"],
                      "heldout_cosine": summary["heldout_cosine"], "layers_replaced": summary["layers_replaced"],
                      "linear_speedup": summary["exact_linear_us"] / summary["linear_us"]}
        print(f"  {label}: {seconds:.0f} s (stage 1 {summary['stage1']['seconds']:.0f} s), "
              f"{summary['layers_replaced']} layers replaced, held-out cosine {summary['heldout_cosine']:.4f}",
              flush=True)
    out["same_plan"] = plans["local"] == plans["2_actors"]
    out["stage1_speedup"] = out["local"]["stage1_seconds"] / out["2_actors"]["stage1_seconds"]
    out["speedup"] = out["local"]["seconds"] / out["2_actors"]["seconds"]
    return out


# Pipelines of two single-replica stages on this machine's two cores, by blocks per stage.
PIPELINES = ([3, 3], [2, 4], [4, 2])


def pipeline(sentences: List[str], reference: np.ndarray) -> Dict:
    """Two data-parallel actors against two-stage pipelines on as many actors, same run."""
    out = {"1_worker": _timed_job("1 worker", sentences, reference, workers=1),
           "2_workers": _timed_job("2 workers", sentences, reference, workers=2)}
    for stages in PIPELINES:
        label = "stages " + "+".join(map(str, stages))
        out[label] = _timed_job(label, sentences, reference, stages=stages)
        out[label]["against_2_workers"] = out[label]["rows_per_second"] / out["2_workers"]["rows_per_second"]
    return out


def kill_mid_job(sentences: List[str], reference: np.ndarray) -> Dict:
    from ..distributed import embed_job
    from ..distributed.pool import IN_FLIGHT_PER_WORKER

    outcome = {}

    def run():
        outcome["result"] = embed_job(None, sentences, None, workers=2, shard_size=256, progress=False)

    earlier = set(_descendants_named("ray::EmbedWorker"))  # the scaling jobs' actors, maybe still exiting
    job = threading.Thread(target=run)
    job.start()
    victim = None
    while victim is None and job.is_alive():
        for pid in set(_descendants_named("ray::EmbedWorker")) - earlier:
            if _cpu_seconds(pid) > 5.0:
                victim = pid
        time.sleep(0.1)
    killed_at = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    job.join()
    result = outcome["result"]
    assert np.array_equal(result.embeddings, reference), "rows differ after the kill"
    print(f"  killed {victim}: {len(result.recomputed_shards)} shards recomputed "
          f"(bound {IN_FLIGHT_PER_WORKER}), {result.rows_per_second:.1f} sentences/s", flush=True)
    return {"rows": result.rows, "shards": result.shards, "recomputed_shards": result.recomputed_shards,
            "bound": IN_FLIGHT_PER_WORKER, "worker_replacements": result.worker_replacements,
            "seconds": result.seconds, "rows_per_second": result.rows_per_second, "all_rows_in_order": True,
            "killed_after_job_start_seconds": killed_at}


def _percentiles(latencies: List[float]) -> Dict:
    values = np.asarray(latencies) * 1000
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}


async def _http_load(url: str, bodies: List[List[str]], clients: int) -> Dict:
    import httpx

    latencies: List[float] = []
    queue = list(range(len(bodies)))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        async def one_client():
            while queue:
                body = bodies[queue.pop()]
                began = time.perf_counter()
                response = await client.post("/embed", json=body)
                latencies.append(time.perf_counter() - began)
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        seconds = time.perf_counter() - began
    return {"requests": len(bodies), "sentences_per_second": sum(map(len, bodies)) / seconds, **_percentiles(latencies)}


def _direct_load(encoder, bodies: List[List[str]], clients: int) -> Dict:
    latencies: List[float] = []

    def one(body):
        began = time.perf_counter()
        encoder.embed(body)
        latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, bodies))
    seconds = time.perf_counter() - began
    return {"requests": len(bodies), "sentences_per_second": sum(map(len, bodies)) / seconds, **_percentiles(latencies)}


def service(address: str, sentences: List[str], encoder, requests_per_level: Dict[int, int],
            sentences_per_request: int) -> Dict:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "lutmul", "serve", "--model", "all-MiniLM-L6-v2", "--address", address,
               "--workers", "2", "--port", str(port), "--max-queued-rows", "100000"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    import httpx

    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lutmul serve did not start: {server.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        rng = np.random.default_rng(0)
        out = {}
        for clients, count in requests_per_level.items():
            bodies = [[sentences[i] for i in rng.integers(0, len(sentences), sentences_per_request)]
                      for _ in range(count)]
            asyncio.run(_http_load(url, bodies[:max(2, clients)], clients))  # warm the connections
            http = asyncio.run(_http_load(url, bodies, clients))
            direct = _direct_load(encoder, bodies, clients)
            out[str(clients)] = {"service": http, "direct": direct}
            print(f"  {clients} clients: service p50 {http['p50_ms']:.0f} ms p99 {http['p99_ms']:.0f} ms "
                  f"{http['sentences_per_second']:.0f}/s; direct p50 {direct['p50_ms']:.0f} ms p99 "
                  f"{direct['p99_ms']:.0f} ms {direct['sentences_per_second']:.0f}/s", flush=True)
        return out
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=20_000, help="sentences of the scaling job (20,000)")
    parser.add_argument("--kill-sentences", type=int, default=6_000, help="sentences of the kill job (6,000)")
    parser.add_argument("--quick", action="store_true", help="2,000 and 1,500 sentences, fewer requests")
    parser.add_argument("--parts", default="scaling,kill,service,pipeline,compile",
                        help="which measurements, comma-separated (scaling,kill,service,pipeline,compile)")
    parser.add_argument("--compile-sentences", type=int, default=1_000,
                        help="calibration sentences of the compile part (1,000)")
    parser.add_argument("--out", default="results", help="folder for distributed_results.json")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts or parts - {"scaling", "kill", "service", "pipeline", "compile"}:
        parser.error(f"--parts takes scaling, kill, service, pipeline and compile, got {args.parts!r}")
    if args.quick:
        args.sentences, args.kill_sentences = 2000, 1500
    # The cluster, this driver and `lutmul serve` share a token of this run's (read by Ray when
    # it is imported).
    import secrets

    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    import ray

    from ..runtime import load_encoder

    os.makedirs(args.out, exist_ok=True)
    load_before = os.getloadavg()
    sentences = real_sentences(args.sentences)
    encoder = load_encoder(None, threads=1)
    began = time.perf_counter()
    reference = encoder.embed(sentences)
    direct_rate = len(sentences) / (time.perf_counter() - began)
    print(f"runtime in this process, 1 thread: {direct_rate:.1f} sentences/s", flush=True)
    # One local cluster for every part, on a loopback address.
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address=NODE_IP,
             logging_level="WARNING")
    try:
        address = ray.get_runtime_context().gcs_address
        results = {"cpu": cpu_name(), "cores": os.cpu_count(), "sentences": len(sentences),
                   "direct_1_thread_rows_per_second": direct_rate}
        if "scaling" in parts:
            print("scaling:", flush=True)
            results["scaling"] = scaling(sentences, reference)
        if "kill" in parts:
            print("kill mid-job:", flush=True)
            results["kill"] = kill_mid_job(sentences[:args.kill_sentences], reference[:args.kill_sentences])
        if "pipeline" in parts:
            print("pipeline stages against data parallelism:", flush=True)
            results["pipeline"] = pipeline(sentences, reference)
        if "compile" in parts:
            print("compile, local against stage 1 on 2 actors:", flush=True)
            results["compile"] = compile_part(list(dict.fromkeys(sentences))[:args.compile_sentences])
        if "service" in parts:
            print("service:", flush=True)
            levels = {1: 20, 8: 80, 64: 192} if args.quick else {1: 60, 8: 200, 64: 448}
            results["service"] = service(address, sentences[:4000], encoder, levels, sentences_per_request=16)
    finally:
        ray.shutdown()
    results["load_average_before"] = load_before
    results["load_average_after"] = os.getloadavg()
    with open(os.path.join(args.out, "distributed_results.json"), "w") as stream:
        json.dump(results, stream, indent=1)
    print(json.dumps({k: results[k] for k in ("cpu", "load_average_before", "load_average_after")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
