"""Pipeline stages: the encoder's transformer blocks split into groups, each group on actors
of its own, the hidden states passed from stage to stage through Ray's object store.

``embed_job(..., stages=[3, 3])`` runs blocks 0–2 (after the embeddings) on one actor and
blocks 3–5 (then the pooling) on another; ``stages=[(2, 1), (4, 2)]`` gives the second stage
two replicas. A shard goes through one replica of every stage: the driver chains the calls
(the second takes the first's result by reference, so the hidden states go from actor to
actor, not through the driver). The pool offers the job the same slots as
:class:`~.pool.WorkerPool`: a slot is a *lane*, lane i using replica i mod r of a stage of r
replicas, so there are as many lanes as the most replicated stage has replicas and shards
spread evenly over every stage's replicas. A lost actor is found by asking each actor of the
failed lane, and replaced; the job retries the shard as for a plain pool.

Every stage batches its shard as ``Encoder.embed`` does (sorted by length, at most
``batch_size`` sentences a batch), so the rows are the same as the plain pool's. When it
pays is in docs/distributed.md; in short, where each actor must hold less than the whole
model: a stage's actors hold only its blocks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..runtime.batching import DEFAULT_MAX_BATCH_TOKENS, pack, plan_batches, positive_int
from ..runtime.encoder import PRECISIONS
from ._ray import import_ray
from .pool import Slot, SlotPool, actor_name, load_model_here, model_argument, read_model_folder

# Shards in flight on a lane per stage: one being computed by each stage, one waiting.
IN_FLIGHT_PER_STAGE = 2
# How long a lost actor's neighbours may take to answer whether they live.
PING_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Stage:
    """``blocks`` consecutive transformer blocks on ``replicas`` actors."""

    blocks: int
    replicas: int = 1


def check_stages(stages) -> List[Stage]:
    """``stages``: a list of block counts, of ``(blocks, replicas)`` pairs, or of :class:`Stage`."""
    if isinstance(stages, (str, bytes)) or not hasattr(stages, "__iter__"):
        raise TypeError(f"stages must be a list of block counts or (blocks, replicas) pairs, got "
                        f"{type(stages).__name__}")
    out = []
    for item in stages:
        if isinstance(item, Stage):
            stage = item
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            stage = Stage(positive_int(item[0], "a stage's blocks"), positive_int(item[1], "a stage's replicas"))
        else:
            stage = Stage(positive_int(item, "a stage's blocks"))
        positive_int(stage.blocks, "a stage's blocks")
        positive_int(stage.replicas, "a stage's replicas")
        out.append(stage)
    if len(out) < 2:
        raise ValueError(f"a pipeline needs at least 2 stages, got {len(out)} (one stage is the plain pool: "
                         "leave stages=None)")
    return out


class StageWorker:
    """The body of one stage actor, running blocks ``first`` to ``last`` − 1 and holding only
    those (and the embedding tables in the first stage: ``Encoder.keep_blocks``). It loads the
    whole model first (the runtime loads a model whole) and drops the rest at once.

    The first stage takes sentences, tokenizes them and cuts the batches; the others take the
    previous stage's batches of hidden states; the last one pools them into rows."""

    def __init__(self, model, first: int, last: int, precision: str = "f32", threads: int = 1,
                 batch_size: int = 64, max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS):
        whole = load_model_here(model, precision, threads)
        self.blocks, self.whole_bytes = whole.num_layers, whole.bytes
        # Stages that do not cover the model are refused by the driver (check_blocks), not here.
        self.encoder = whole.keep_blocks(first, last) if 0 <= first < last <= whole.num_layers else whole
        del whole
        self.first, self.last = first, last
        self.batch_size, self.max_batch_tokens = batch_size, max_batch_tokens
        self.name = actor_name()

    def describe(self) -> Dict[str, object]:
        return {"name": self.name, "blocks": self.blocks, "hidden_size": self.encoder.hidden_size,
                "model": self.encoder.path, "first": self.first, "last": self.last, "bytes": self.encoder.bytes,
                "whole_model_bytes": self.whole_bytes}

    def run(self, work):
        """Sentences (first stage) or ``((count, batches), names, CPU seconds)`` from the stage
        before: the same for the next stage, or, from the last stage, ``(rows, names, CPU
        seconds)`` as :meth:`~.pool.EmbedWorker.embed` returns (names and CPU of all stages)."""
        began = time.process_time()
        core = self.encoder._core
        blocks = self.encoder.num_layers
        if self.first == 0:  # the token embeddings (the rows block 0 reads), then the blocks
            token_ids = self.encoder.tokenize(work)
            lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
            batches = []
            for members in plan_batches(lengths, self.batch_size, self.max_batch_tokens):
                ids, batch_lengths = pack(token_ids, members)
                batches.append((members, core.layer_inputs_ids(ids, batch_lengths, 0, "query"), batch_lengths))
            count, names, cpu = len(work), [], 0.0
        else:
            (count, batches), names, cpu = work
        if self.last < blocks:  # the first stage or a middle one
            batches = [(members, core.hidden_through_blocks(self.first, self.last, hidden, lengths), lengths)
                       for members, hidden, lengths in batches]
        names = names + [self.name]
        if self.last < blocks:
            return (count, batches), names, cpu + time.process_time() - began
        rows = np.empty((count, self.encoder.hidden_size), dtype=np.float32)
        for members, hidden, lengths in batches:
            rows[members] = core.embed_from_block(self.first, hidden, lengths)
        return rows, " > ".join(names), cpu + time.process_time() - began


class PipelinePool(SlotPool):
    """The stages' actors, offered to :func:`~.job.embed_job` as lanes (see the module text).
    Each actor takes ``threads`` Ray CPUs. Needs a Ray connection."""

    def __init__(self, model, stages, precision: str = "f32", threads: int = 1, ship_model: bool = False,
                 batch_size: int = 64):
        ray = import_ray()
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.stages = check_stages(stages)
        self.threads = positive_int(threads, "threads")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.precision = precision
        self._model = ray.put(read_model_folder(model)) if ship_model else model_argument(model)
        self._actor_class = ray.remote(StageWorker).options(
            num_cpus=self.threads, scheduling_strategy="SPREAD", max_restarts=0, max_task_retries=0)
        self.bounds: List[Tuple[int, int]] = []
        first = 0
        for stage in self.stages:
            self.bounds.append((first, first + stage.blocks))
            first += stage.blocks
        self.replicas: List[List[object]] = [[self._start(s) for _ in range(stage.replicas)]
                                             for s, stage in enumerate(self.stages)]
        lanes = max(stage.replicas for stage in self.stages)
        self.slots: List[Slot] = [Slot(i, self._lane_head(i)) for i in range(lanes)]
        self.in_flight_per_slot = IN_FLIGHT_PER_STAGE * len(self.stages)
        self.replacements = 0

    def _start(self, stage: int):
        first, last = self.bounds[stage]
        return self._actor_class.remote(self._model, first, last, self.precision, self.threads, self.batch_size)

    def _lane(self, lane: int) -> List[object]:
        return [actors[lane % len(actors)] for actors in self.replicas]

    def _lane_head(self, lane: int):
        return self._lane(lane)[-1]  # describe() of the last stage: the hidden size and block count

    def check_blocks(self, timeout: float) -> None:
        """``ValueError`` unless the stages cover the model's blocks exactly (waits for every actor)."""
        ray = import_ray()
        actors = [actor for stage in self.replicas for actor in stage]
        described = ray.get([actor.describe.remote() for actor in actors], timeout=timeout)
        blocks = described[0]["blocks"]
        if self.bounds[-1][1] != blocks:
            raise ValueError(f"the stages hold {self.bounds[-1][1]} blocks ({[s.blocks for s in self.stages]}) but "
                             f"the model has {blocks}")

    def submit(self, slot: Slot, sentences: Sequence[str]):
        slot.outstanding_rows += len(sentences)
        slot.outstanding_parts += 1
        reference = list(sentences)
        for actor in self._lane(slot.index):
            reference = actor.run.remote(reference)  # a reference argument: actor to actor
        return reference

    def replace(self, slot: Slot, generation: int) -> bool:
        """New actors for those of the lane that are gone (asked, not guessed: another lane's
        failure may have replaced them already); the lane's counts start afresh."""
        if generation != slot.generation:
            return False
        ray = import_ray()
        replaced = False
        for s, actors in enumerate(self.replicas):
            r = slot.index % len(actors)
            try:
                ray.get(actors[r].describe.remote(), timeout=PING_TIMEOUT_SECONDS)
            except ray.exceptions.GetTimeoutError:
                continue  # busy or still loading, not gone
            except ray.exceptions.RayError:
                try:
                    ray.kill(actors[r], no_restart=True)
                except Exception:
                    pass
                actors[r] = self._start(s)
                self.replacements += 1
                replaced = True
        self.restart(slot, self._lane_head(slot.index))
        return replaced

    def shutdown(self) -> None:
        ray = import_ray()
        for actors in self.replicas:
            for actor in actors:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:
                    pass
