"""``embed_job``: sentences embedded by a pool of Ray actors, shard by shard, written in
input order.

The driver cuts the input into shards of ``shard_size`` sentences, keyed by position (shard
k holds sentences ``k*shard_size`` up to the next shard's start), keeps at most
``IN_FLIGHT_PER_WORKER`` shards queued on each actor (on each lane of a pipeline, two per
stage: :mod:`.pipeline`), and writes each shard's rows once
every shard before it is written (:class:`~.output.OrderedOutput`). A shard whose actor
dies (its process killed, its node lost) or raises is given to another actor, up to
``max_retries`` times; then the job raises :class:`ShardFailedError` naming it. A shard
that comes back twice is written once.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .._progress import progress_bar
from ..runtime.batching import check_sentences, positive_int
from ._ray import connected, import_ray
from .output import OrderedOutput, check_output
from .pipeline import PipelinePool
from .pool import START_TIMEOUT_SECONDS, WorkerPool, wait_for_actors

DEFAULT_SHARD_SIZE = 256


class ShardFailedError(RuntimeError):
    """A shard failed on every attempt: ``shard``, its rows ``start:end``, ``errors`` (one
    line per attempt)."""

    def __init__(self, shard: int, start: int, end: int, errors: List[str]):
        self.shard, self.start, self.end, self.errors = shard, start, end, list(errors)
        super().__init__(f"shard {shard} (rows {start}:{end}) failed {len(errors)} times, giving up: "
                         + "; ".join(errors))


@dataclass
class JobResult:
    """What a job did. ``seconds`` runs from the first shard submitted to the last row
    written (the actors' start and model load are ``start_seconds``)."""

    rows: int
    seconds: float
    start_seconds: float
    workers: int
    shards: int
    shard_size: int
    shard_runs: int  # shards submitted, retries included
    recomputed_shards: List[int]  # shards that ran more than once
    failures: List[str]  # one line per failed run
    rows_per_worker: Dict[str, int]  # node address:pid -> rows of its shards that were kept
    cpu_seconds_per_worker: Dict[str, float]  # node address:pid -> CPU time it spent on the shards it returned
    worker_replacements: int
    output: Optional[str]
    embeddings: Optional[np.ndarray] = field(default=None, repr=False)  # when output is None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        where = self.output if self.output is not None else "memory"
        workers = ", ".join(f"{name}: {rows}" for name, rows in self.rows_per_worker.items())
        return (f"{self.rows} rows -> {where} in {self.seconds:.2f} s ({self.rows_per_second:.1f} rows/s) on "
                f"{self.workers} workers [{workers}]; {self.shards} shards of {self.shard_size}, "
                f"{len(self.recomputed_shards)} recomputed, {self.worker_replacements} workers replaced")


def read_inputs(inputs) -> List[str]:
    """A list of str, or the lines of a UTF-8 text file named by a str or PathLike (line i
    is row i; an empty line is the empty sentence)."""
    if isinstance(inputs, (str, os.PathLike)):
        path = os.fspath(inputs)
        if not os.path.isfile(path):
            raise ValueError(f"inputs file {path!r} does not exist (pass a list of sentences, or a text file "
                             "with one per line)")
        with open(path, encoding="utf-8") as stream:
            return [line.rstrip("\r\n") for line in stream]
    return check_sentences(inputs)


def embed_job(model, inputs, output=None, address: Optional[str] = None, workers: Optional[int] = None,
              shard_size: int = DEFAULT_SHARD_SIZE, max_retries: int = 3, progress: bool = True,
              precision: str = "f32", threads: int = 1, batch_size: int = 64, ship_model: bool = False,
              stages=None) -> JobResult:
    """Embeds ``inputs`` on a pool of Ray actors and writes the rows in input order.

    ``model``: a model folder every node can read, or None / ``"all-MiniLM-L6-v2"`` for the
    packaged model (found on each node); ``ship_model=True`` reads the folder here and ships
    it once through the object store instead. ``inputs``: a sequence of str, or a text file
    with one sentence per line. ``output``: a ``.npy`` or ``.parquet`` path (written
    atomically: complete, or not at all), or None to get the rows in ``result.embeddings``.
    ``address``: None starts a local Ray cluster for the job (all of this machine's CPUs);
    ``"auto"``, ``"host:port"`` or ``"ray://host:10001"`` joins a running one; when this
    process is already connected (``ray.init``), that connection is used. ``workers``:
    actors, by default the cluster's CPUs divided by ``threads`` (each actor's lutmul
    threads and Ray CPUs). ``max_retries``: further runs of a shard whose actor died or
    raised, each on another actor where there is one. ``stages``: None for a pool of whole
    models; else pipeline stages (:mod:`.pipeline`), a list of block counts or ``(blocks,
    replicas)`` pairs covering the model's blocks, e.g. ``[3, 3]`` or ``[(2, 1), (4, 2)]``
    (``workers`` must then be None: the actors are the stages' replicas).

    ``ShardFailedError`` when a shard failed ``max_retries + 1`` times; ``RuntimeError`` when
    the actors cannot start or load the model; ``TypeError``/``ValueError`` for bad
    arguments. On any failure or interrupt the actors are killed and no output is left.
    """
    sentences = read_inputs(inputs)
    output = check_output(output)
    shard_size = positive_int(shard_size, "shard_size")
    batch_size = positive_int(batch_size, "batch_size")
    if isinstance(max_retries, bool) or not isinstance(max_retries, (int, np.integer)) or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
    if workers is not None:
        workers = positive_int(workers, "workers")
        if stages is not None:
            raise ValueError("give workers or stages, not both: a pipeline's actors are its stages' replicas")
    ray = import_ray()
    with connected(address):
        started = time.perf_counter()
        if stages is None:
            pool = WorkerPool(model, workers, precision=precision, threads=threads, ship_model=ship_model,
                              batch_size=batch_size)
        else:
            pool = PipelinePool(model, stages, precision=precision, threads=threads, ship_model=ship_model,
                                batch_size=batch_size)
        try:
            hidden_size = _wait_for_workers(ray, pool, model)
            if stages is not None:
                pool.check_blocks(START_TIMEOUT_SECONDS)
            start_seconds = time.perf_counter() - started
            return _run(ray, pool, sentences, output, shard_size, max_retries, progress, hidden_size, start_seconds)
        finally:
            pool.shutdown()


def _wait_for_workers(ray, pool, model) -> int:
    described = wait_for_actors(ray, [slot.actor.describe.remote() for slot in pool.slots], "workers", pool.threads,
                                model)
    return int(described[0]["hidden_size"])


def _run(ray, pool, sentences: List[str], output: Optional[str], shard_size: int, max_retries: int,
         progress: bool, hidden_size: int, start_seconds: float) -> JobResult:
    count = len(sentences)
    starts = list(range(0, count, shard_size))

    def bounds(shard: int):
        return starts[shard], min(starts[shard] + shard_size, count)

    pending = collections.deque(range(len(starts)))
    in_flight = {}  # reference -> (shard, slot, generation)
    runs = collections.Counter()
    errors: Dict[int, List[str]] = collections.defaultdict(list)
    avoid: Dict[int, set] = collections.defaultdict(set)  # (slot, generation) a shard failed on
    last_failed: Dict[int, tuple] = {}
    failures: List[str] = []
    bar = progress_bar(progress and count > 0, count, "lutmul embed_job", "sentence")
    began = time.perf_counter()
    try:
        with OrderedOutput(output, starts, count, hidden_size) as out:
            while pending or in_flight:
                _submit(pool, pending, in_flight, runs, avoid, last_failed, sentences, bounds)
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
                for reference in ready:
                    shard, slot, generation = in_flight.pop(reference)
                    start, end = bounds(shard)
                    try:
                        block, worker, cpu_seconds = ray.get(reference)
                    except ray.exceptions.RayError as error:
                        pool.finished(slot, generation, end - start, None)
                        if _lost_an_actor(ray, error):  # the actor or its node is gone
                            pool.replace(slot, generation)
                            line = f"run {runs[shard]} lost its worker (slot {slot.index}): {_first_line(error)}"
                        else:  # the actor raised; it lives on
                            avoid[shard].add((slot.index, generation))
                            last_failed[shard] = (slot.index, generation)
                            line = f"run {runs[shard]} raised on worker slot {slot.index}: {_first_line(error)}"
                    else:
                        pool.finished(slot, generation, end - start, worker, cpu_seconds)
                        if not out.has(shard):
                            out.put(shard, block)
                            if bar is not None:
                                bar.update(end - start)
                        continue
                    if out.has(shard):
                        continue  # an earlier run of it came back
                    failures.append(f"shard {shard}: {line}")
                    errors[shard].append(line)
                    if len(errors[shard]) > max_retries:
                        raise ShardFailedError(shard, start, end, errors[shard])
                    pending.appendleft(shard)
            seconds = time.perf_counter() - began
            kept = out.array
    finally:
        if bar is not None:
            bar.close()
    return JobResult(rows=count, seconds=seconds, start_seconds=start_seconds, workers=len(pool), shards=len(starts),
                     shard_size=shard_size, shard_runs=sum(runs.values()),
                     recomputed_shards=sorted(shard for shard, n in runs.items() if n > 1), failures=failures,
                     rows_per_worker=pool.rows_per_worker(), cpu_seconds_per_worker=pool.cpu_seconds_per_worker(),
                     worker_replacements=pool.replacements, output=output,
                     embeddings=kept)


def _submit(pool, pending, in_flight, runs, avoid, last_failed, sentences, bounds) -> None:
    """Gives pending shards, first first, to actors with room: never to one a shard failed on
    while the pool has one it has not, and never to the one it last failed on while the pool
    has another."""
    skipped = []
    while pending:
        shard = pending.popleft()
        free = [slot for slot in pool.slots if slot.outstanding_parts < pool.in_flight_per_slot]
        if not free:
            pending.appendleft(shard)
            break
        fresh = [slot for slot in pool.slots if (slot.index, slot.generation) not in avoid[shard]]
        if not fresh and len(pool.slots) > 1:  # failed on every actor: any but the last one
            fresh = [slot for slot in pool.slots if (slot.index, slot.generation) != last_failed.get(shard)]
        if fresh:
            free = [slot for slot in free if slot in fresh]
            if not free:
                skipped.append(shard)  # waits for an actor it has not failed on
                continue
        slot = min(free, key=lambda slot: (slot.outstanding_rows, slot.index))
        start, end = bounds(shard)
        runs[shard] += 1
        in_flight[pool.submit(slot, sentences[start:end])] = (shard, slot, slot.generation)
    pending.extendleft(reversed(skipped))


def _lost_an_actor(ray, error) -> bool:
    """Whether a failed part lost an actor rather than raised in one. A pipeline stage whose
    input came from a dead actor raises a task error caused by that death."""
    if not isinstance(error, ray.exceptions.RayTaskError):
        return True
    return isinstance(error, ray.exceptions.RayActorError) or \
        isinstance(getattr(error, "cause", None), ray.exceptions.RayActorError)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # A RayTaskError's text is a traceback; its last line is the exception itself.
    return lines[-1] if lines else type(error).__name__
