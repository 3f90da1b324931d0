"""A pool of Ray actors, each holding one loaded encoder: the workers that the batch job and
the HTTP service hand their keyed parts to.

Each actor loads the model once, in its constructor, from a path every node can read (the
packaged model's name is resolved on each node) or from a copy of the folder shipped once
through Ray's object store. The pool keeps a fixed number of slots; a slot whose actor dies
gets a new actor (the old one is killed first), and every part submitted to the dead actor
fails with a Ray error its caller retries elsewhere. The pool itself is not thread-safe: one
driver thread (or one event loop) uses it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ..runtime.batching import positive_int
from ..runtime.encoder import PACKAGED_MODEL, PRECISIONS
from ._ray import import_ray

# Files of a model folder larger than this are not shipped through the object store.
MAX_SHIPPED_BYTES = 2 << 30
# Parts queued on one actor at once: the next one is there when the current one ends, and
# a killed actor takes at most this many parts with it.
IN_FLIGHT_PER_WORKER = 2


def load_model_here(model, precision: str = "f32", threads: int = 1):
    """The encoder an actor holds: ``model`` is a folder path (or the packaged model's name)
    read on this node, or a dict ``{relative path: bytes}`` of a shipped folder, written to a
    temporary folder here for the load."""
    from ..runtime import load_encoder

    if not isinstance(model, dict):
        return load_encoder(model, threads=threads, precision=precision)
    folder = tempfile.mkdtemp(prefix="lutmul-model-")
    try:
        for relative, data in model.items():
            path = os.path.join(folder, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as stream:
                stream.write(data)
        return load_encoder(folder, threads=threads, precision=precision)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # what the encoder keeps is in memory


def actor_name() -> str:
    """This actor's name in results and errors: node address:pid."""
    import ray

    return f"{ray.util.get_node_ip_address()}:{os.getpid()}"


class EmbedWorker:
    """The body of one Ray actor: one encoder, loaded once.

    ``model`` is a folder path (or the packaged model's name) read on the actor's node, or a
    dict ``{relative path: bytes}`` of a shipped folder, written to a temporary folder there.
    """

    def __init__(self, model, precision: str = "f32", threads: int = 1):
        self.encoder = load_model_here(model, precision, threads)
        self.name = actor_name()

    def embed(self, sentences: Sequence[str], batch_size: int = 64):
        """``(rows, worker name, CPU seconds)``: the float32 (n, H) embeddings of
        ``sentences``, and the CPU time this process spent on them (all its threads)."""
        began = time.process_time()
        rows = self.encoder.embed(sentences, batch_size=batch_size)
        return rows, self.name, time.process_time() - began

    def describe(self) -> Dict[str, object]:
        """Where this actor runs: its name (node address:pid), pid, and the model's folder."""
        return {"name": self.name, "pid": os.getpid(), "model": self.encoder.path,
                "hidden_size": self.encoder.hidden_size}


def read_model_folder(path) -> Dict[str, bytes]:
    """Every file of a model folder, ``{relative path: bytes}``, to ship to the workers."""
    from ..runtime.encoder import resolve_model_path

    folder = resolve_model_path(path)
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: no such model folder")
    files, total = {}, 0
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            full = os.path.join(root, name)
            total += os.path.getsize(full)
            if total > MAX_SHIPPED_BYTES:
                raise ValueError(f"{folder}: more than {MAX_SHIPPED_BYTES >> 20} MiB to ship; put the model on a "
                                 "path every node reads instead")
            with open(full, "rb") as stream:
                files[os.path.relpath(full, folder)] = stream.read()
    return files


def model_argument(model) -> str:
    """What each actor loads: the packaged model's name as is (each node finds its own
    install), an existing local path as an absolute one (an actor's working folder is not
    this process's), any other path as given (it may exist on the nodes only)."""
    if model is None:
        return PACKAGED_MODEL
    path = os.fspath(model)
    if path == PACKAGED_MODEL and not os.path.exists(path):
        return PACKAGED_MODEL
    return os.path.abspath(path) if os.path.exists(path) else path


@dataclass(eq=False)  # slots compare by identity
class Slot:
    """One place in the pool: its current actor, and the parts in flight on it."""

    index: int
    actor: object
    generation: int = 0  # how many actors this slot has had, minus one
    outstanding_rows: int = 0
    outstanding_parts: int = 0
    worker: Optional[str] = None  # the current actor's name (node address:pid), once known
    rows_done: Dict[str, int] = field(default_factory=dict)
    cpu_seconds_done: Dict[str, float] = field(default_factory=dict)


# How long actors may take to start and load the model.
START_TIMEOUT_SECONDS = 300.0


def wait_for_actors(ray, references, what: str, cpus_each: int, model) -> List[dict]:
    """What each actor's ``describe`` returned, once all answered; ``RuntimeError`` when some
    did not start within START_TIMEOUT_SECONDS (too few CPUs) or could not load the model.
    ``what``: the actors' name in the messages, plural ("workers")."""
    ready, _ = ray.wait(references, num_returns=len(references), timeout=START_TIMEOUT_SECONDS)
    if len(ready) < len(references):
        cpus = ray.cluster_resources().get("CPU", 0)
        raise RuntimeError(f"{len(references) - len(ready)} of {len(references)} {what} did not start within "
                           f"{START_TIMEOUT_SECONDS:.0f} s; the cluster has {cpus:g} CPUs and each takes {cpus_each}")
    try:
        return ray.get(references)
    except ray.exceptions.RayError as error:
        raise RuntimeError(f"one of the {what} could not load the model {model!r}: {error}") from None


class SlotPool:
    """What the batch job and the service need of a pool besides its actors: ``slots``, the
    parts each has in flight, and the rows and CPU time each actor returned."""

    slots: List[Slot]
    replacements: int = 0

    def __len__(self) -> int:
        return len(self.slots)

    def finished(self, slot: Slot, generation: int, rows: int, worker: Optional[str],
                 cpu_seconds: float = 0.0) -> None:
        """Books a part that came back (``worker`` None: it failed) from ``generation``."""
        if generation != slot.generation:
            return  # the actor it ran on was replaced; its counts went with it
        slot.outstanding_rows -= rows
        slot.outstanding_parts -= 1
        if worker is not None:
            slot.worker = worker
            slot.rows_done[worker] = slot.rows_done.get(worker, 0) + rows
            slot.cpu_seconds_done[worker] = slot.cpu_seconds_done.get(worker, 0.0) + cpu_seconds

    @staticmethod
    def restart(slot: Slot, actor) -> None:
        """``slot`` now runs on ``actor``; what was in flight on the old one is forgotten."""
        slot.actor = actor
        slot.generation += 1
        slot.outstanding_rows = 0
        slot.outstanding_parts = 0
        slot.worker = None

    def rows_per_worker(self) -> Dict[str, int]:
        """Rows embedded by each actor that ever ran (``node address:pid``; a pipeline's lanes
        name all their actors)."""
        return self._per_worker("rows_done")

    def cpu_seconds_per_worker(self) -> Dict[str, float]:
        """CPU seconds each actor spent on the parts it returned."""
        return self._per_worker("cpu_seconds_done")

    def _per_worker(self, tally: str) -> dict:
        merged: dict = {}
        for slot in self.slots:
            for name, value in getattr(slot, tally).items():
                merged[name] = merged.get(name, 0) + value
        return dict(sorted(merged.items()))


class WorkerPool(SlotPool):
    """``workers`` actors of :class:`EmbedWorker`, spread over the cluster's nodes, each
    with ``threads`` lutmul threads and as many Ray CPUs. Needs a Ray connection."""

    def __init__(self, model=None, workers: Optional[int] = None, precision: str = "f32", threads: int = 1,
                 ship_model: bool = False, batch_size: int = 64):
        ray = import_ray()
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.threads = positive_int(threads, "threads")
        self.batch_size = positive_int(batch_size, "batch_size")
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // self.threads))
        workers = positive_int(workers, "workers")
        self.precision = precision
        if ship_model:
            self._model = ray.put(read_model_folder(model))  # once; every actor reads this one copy
        else:
            self._model = model_argument(model)
        self._actor_class = ray.remote(EmbedWorker).options(
            num_cpus=self.threads, scheduling_strategy="SPREAD", max_restarts=0, max_task_retries=0)
        self.slots: List[Slot] = [Slot(i, self._start()) for i in range(workers)]
        self.in_flight_per_slot = IN_FLIGHT_PER_WORKER
        self.replacements = 0

    def _start(self):
        return self._actor_class.remote(self._model, self.precision, self.threads)

    def choose(self, avoid: Sequence[int] = ()) -> Slot:
        """The least loaded slot (fewest rows in flight), one not in ``avoid`` when any is left."""
        candidates = [slot for slot in self.slots if slot.index not in avoid] or self.slots
        return min(candidates, key=lambda slot: (slot.outstanding_rows, slot.index))

    def submit(self, slot: Slot, sentences: Sequence[str]):
        """The Ray reference of ``(rows, worker name)`` for ``sentences`` embedded on ``slot``."""
        slot.outstanding_rows += len(sentences)
        slot.outstanding_parts += 1
        return slot.actor.embed.remote(list(sentences), self.batch_size)

    def replace(self, slot: Slot, generation: int) -> bool:
        """A new actor for ``slot`` if its actor of ``generation`` is still there (False when
        it was already replaced)."""
        if generation != slot.generation:
            return False
        ray = import_ray()
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:  # already gone with its node
            pass
        self.restart(slot, self._start())
        self.replacements += 1
        return True

    def describe(self, timeout: float = 60.0) -> List[dict]:
        """Each slot's actor (waits for them to load): name, pid, model."""
        ray = import_ray()
        described = ray.get([slot.actor.describe.remote() for slot in self.slots], timeout=timeout)
        for slot, info in zip(self.slots, described):
            slot.worker = info["name"]
        return described

    def shutdown(self) -> None:
        """Kills every actor (their parts in flight fail)."""
        ray = import_ray()
        for slot in self.slots:
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:
                pass
