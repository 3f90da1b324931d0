"""``compile_job``: the model compiler with its first stage spread over a pool of Ray actors.

Stage 1 (every candidate fitted on every linear layer alone, docs/compile.md) is most of a
compile's time, and its layers are independent: each actor loads the model once, taps the
rows each layer reads for the calibration sentences itself, and fits a whole layer's
candidates at a time. What depends on this machine stays on the driver: every operator is
timed here at the layer's real shape, after all fits are back (so the actors' work does not
slow the timings down), and the search, the sequential calibration (each layer fitted on the
rows the compressed layers before it produce: one after the other by nature) and the
verification run here too. The driver then sends each layer's fastest-and-most-accurate
candidates back to the actors for their model loss.

Same model, calibration, seed and timings: the same plan as :func:`lutmul.runtime.compile`
(the fits and losses do not depend on where they run).
"""

from __future__ import annotations

import collections
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..runtime.batching import check_sentences, positive_int
from ..runtime.compile import (Layer, Option, Screening, TappedRows, compile, fit_candidates, screening_loss,
                               speed_error_front, time_candidate, exact_weights, time_exact)
from ..runtime.encoder import load_encoder
from ._ray import connected, import_ray
from .pool import actor_name, load_model_here, model_argument, read_model_folder, wait_for_actors


class CompileWorker:
    """The body of one Ray actor: the exact encoder and the rows each layer reads for the
    fitting and the screening sentences (tapped here, once per block)."""

    def __init__(self, model, fit_sentences: List[str], screen_sentences: List[str], threads: int = 1):
        self.encoder = load_model_here(model, "f32", threads)
        self.fit = TappedRows(self.encoder, fit_sentences)
        self.screen = TappedRows(self.encoder, screen_sentences)
        self.screen_reference = self.screen.embed_from(self.encoder, 0)
        self.name = actor_name()

    def _layer(self, block: int, name: str) -> Layer:
        return Layer(block, name, *exact_weights(self.encoder, block, name), 0.0, 0, [])

    def fit_layer(self, block: int, name: str, candidates, seed: int):
        """``(candidate index, operator, layer error)`` per candidate this layer can take."""
        layer = self._layer(block, name)
        return fit_candidates(layer, candidates, self.fit.of(block, name), self.screen.of(block, name), seed)

    def losses(self, block: int, name: str, ops) -> List[Optional[float]]:
        """Each operator's model loss with only this layer replaced (None: it overflowed)."""
        layer = self._layer(block, name)
        return [screening_loss(self.encoder, layer, op, self.screen, self.screen_reference) for op in ops]

    def describe(self) -> Dict[str, object]:
        return {"name": self.name, "model": self.encoder.path}


class RayScreening(Screening):
    """Stage 1 on ``workers`` actors of :class:`CompileWorker` (the cluster's CPUs divided by
    ``threads`` by default); a layer whose actor dies is given to a new one, up to
    ``max_retries`` times. Needs a Ray connection."""

    def __init__(self, model, workers: Optional[int] = None, threads: int = 1, ship_model: bool = False,
                 max_retries: int = 3):
        self.model = model
        self.workers = workers
        self.threads = threads
        self.ship_model = ship_model
        self.max_retries = max_retries
        self.worker_names: List[str] = []  # every actor that ran, in order of start
        self.tasks_per_worker: Dict[str, int] = {}  # fits and loss runs each actor returned

    def summary(self) -> dict:
        return {"where": "ray", "workers": list(self.worker_names), "tasks_per_worker": dict(self.tasks_per_worker)}

    def run(self, layers, candidates, fit, screen_sentences, rows_per_call, threads, seed, timings, bar) -> None:
        ray = import_ray()
        workers = self.workers
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // self.threads))
        model = ray.put(read_model_folder(self.model)) if self.ship_model else model_argument(self.model)
        actor_class = ray.remote(CompileWorker).options(num_cpus=self.threads, scheduling_strategy="SPREAD",
                                                        max_restarts=0, max_task_retries=0)
        fit_sentences, screen = ray.put(fit.sentences), ray.put(list(screen_sentences))
        pool = _ActorPool(ray, lambda: actor_class.remote(model, fit_sentences, screen, self.threads), workers,
                          self.max_retries, self.model)
        try:
            bar.start(f"alone: fits on {workers} workers", len(layers))
            fitted = pool.run([(index, "fit_layer", (layer.block, layer.name, candidates, seed))
                               for index, layer in enumerate(layers)], bar, layers)
            bar.start("alone: timings", len(layers))
            fronts = {}
            for index, layer in enumerate(layers):
                bar.layer(layer)
                X_time = fit.of(layer.block, layer.name)[:rows_per_call]
                time_exact(layer, fit.encoder, X_time, threads, timings)
                ops = {c: op for c, op, _ in fitted[index]}
                timed = [(time_candidate(layer, candidates[c], op, X_time, threads, timings), error, c)
                         for c, op, error in fitted[index]]
                fronts[index] = [(us, error, c, ops[c]) for us, error, c in speed_error_front(layer, timed)]
                bar.advance()
            del fitted
            bar.start(f"alone: losses on {workers} workers", len(layers))
            losses = pool.run([(index, "losses", (layers[index].block, layers[index].name, [f[3] for f in front]))
                               for index, front in fronts.items() if front], bar, layers)
            for index, front in fronts.items():
                for (us, error, c, op), loss in zip(front, losses.get(index, [])):
                    if loss is not None:
                        layers[index].options.append(Option(candidates[c], us, loss, error, op.bytes))
        finally:
            self.worker_names = pool.names
            self.tasks_per_worker = dict(pool.tasks_per_worker)
            pool.shutdown()


class _ActorPool:
    """A fixed number of actors, one task in flight on each; a task whose actor dies goes to a
    new actor (up to ``max_retries`` further runs), a task that raises fails the compile."""

    def __init__(self, ray, start, size: int, max_retries: int, model):
        self.ray, self._start, self.max_retries = ray, start, max_retries
        self.actors = [start() for _ in range(size)]
        self.names: List[str] = []
        self.tasks_per_worker: Dict[str, int] = collections.Counter()
        self._named = [None] * size
        try:
            described = wait_for_actors(ray, [actor.describe.remote() for actor in self.actors], "compile workers", 1,
                                        model)
        except RuntimeError:
            self.shutdown()
            raise
        for slot, info in enumerate(described):
            self._named[slot] = info["name"]
            self.names.append(info["name"])

    def run(self, tasks, bar, layers) -> Dict[int, object]:
        """``{key: result}`` of ``(key, method, args)`` tasks."""
        ray = self.ray
        pending = collections.deque(tasks)
        runs: Dict[int, int] = collections.Counter()
        in_flight = {}  # reference -> (task, actor slot)
        idle = list(range(len(self.actors)))
        results = {}
        while pending or in_flight:
            while pending and idle:
                task, slot = pending.popleft(), idle.pop(0)
                key, method, args = task
                runs[key] += 1
                bar.layer(layers[key])
                in_flight[getattr(self.actors[slot], method).remote(*args)] = (task, slot)
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            task, slot = in_flight.pop(ready[0])
            key, method, _ = task
            layer = layers[key]
            try:
                results[key] = ray.get(ready[0])
            except ray.exceptions.RayTaskError as error:  # deterministic: another run would raise too
                raise RuntimeError(f"compiling block {layer.block} {layer.name} raised on a worker: "
                                   f"{_last_line(error)}") from None
            except ray.exceptions.RayError as error:  # the actor or its node is gone
                if runs[key] > self.max_retries:
                    raise RuntimeError(f"block {layer.block} {layer.name} lost its worker {runs[key]} times, giving "
                                       f"up: {_last_line(error)}") from None
                self._replace(slot)
                pending.appendleft(task)
            else:
                self._count(slot)
                bar.advance()
            idle.append(slot)
        return results

    def _count(self, slot: int) -> None:
        if self._named[slot] is None:
            self._named[slot] = self.ray.get(self.actors[slot].describe.remote())["name"]
            self.names.append(self._named[slot])
        self.tasks_per_worker[self._named[slot]] += 1

    def _replace(self, slot: int) -> None:
        try:
            self.ray.kill(self.actors[slot], no_restart=True)
        except Exception:  # already gone with its node
            pass
        self.actors[slot] = self._start()
        self._named[slot] = None

    def shutdown(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:
                pass


def _last_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def compile_job(model, calibration: Sequence[str], min_cosine: float = 0.995, address: Optional[str] = None,
                workers: Optional[int] = None, threads: int = 1, ship_model: bool = False, max_retries: int = 3,
                **options):
    """:func:`lutmul.runtime.compile` of the model at ``model`` (a folder, or None / the
    packaged model's name), its first stage on a Ray cluster: ``address`` None starts a local
    one, ``"auto"``, ``"host:port"`` or ``"ray://host:10001"`` joins one (an existing
    ``ray.init`` connection is used as is). ``workers``: actors (the cluster's CPUs by
    default), each on one CPU; ``ship_model``: send the folder through the object store
    instead of loading it from a path every node reads. ``threads``: the thread count the
    compiled model is timed for, as in compile. ``options``: compile's other keywords
    (``candidates``, ``seed``, ``progress``, ``timings``, ...).

    Returns the compiled :class:`lutmul.runtime.Encoder`; its ``compile_summary["stage1"]``
    names the workers and the tasks each returned. ``RuntimeError`` when a layer's fit raises or loses its actor
    more than ``max_retries`` times; the errors of compile for bad arguments.
    """
    if "screening" in options:
        raise TypeError("compile_job sets screening itself")
    if isinstance(max_retries, bool) or not isinstance(max_retries, (int, np.integer)) or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
    if workers is not None:
        workers = positive_int(workers, "workers")
    sentences = check_sentences(calibration)
    encoder = load_encoder(model)
    import_ray()
    with connected(address):
        screening = RayScreening(model, workers, threads=1, ship_model=ship_model, max_retries=max_retries)
        return compile(encoder, sentences, min_cosine=min_cosine, threads=threads, screening=screening, **options)
