"""The HTTP service: ``POST /embed`` with a list of sentences, answered in input order by a
pool of Ray actors; the process serving HTTP runs no inference itself.

A request is checked, admitted if the queue has room, split into keyed parts (parts of at
most ``part_rows`` sentences, and at least one per worker when the request is large enough
to be worth it), each part sent to the least loaded actor, and the rows put back by key. A
part whose actor dies or raises goes to another actor, up to ``part_retries`` times.

Statuses (the body of every error is ``{"detail": message}``):

- 200 ``{"embeddings": [[...], ...], "rows": n, "dimensions": H}``, row i for sentence i;
- 413 the body is longer than ``max_body_bytes``, or has more than ``max_sentences`` sentences;
- 422 the body is not JSON, not a list of sentences (a JSON list, or an object whose
  ``"sentences"`` is one), an empty list, an item that is not a string, a sentence longer
  than ``max_sentence_chars`` characters or not valid Unicode (a lone surrogate escape);
- 503 the queue holds ``max_queued_rows`` sentences already (``Retry-After: 1``), or no
  worker is up;
- 504 the request took longer than ``timeout_seconds``;
- 500 a part failed on ``part_retries + 1`` actors.

``GET /healthz``: 200 ``{"status": "ok", ...}`` with the workers and the queue. ``GET
/metrics``: Prometheus text (requests by status, rows, part retries, worker replacements,
queued rows, a latency histogram).
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request)
# at run time, and they name classes imported inside create_app.
import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import List

import numpy as np

from ._ray import import_ray
from .metrics import CONTENT_TYPE, Metrics
from .pool import WorkerPool


@dataclass
class ServiceLimits:
    """What one request may ask, and how much the service holds at once."""

    max_sentences: int = 1024  # per request; more: 413
    max_body_bytes: int = 8 << 20  # more: 413
    max_sentence_chars: int = 20_000  # per sentence; more: 422 (the model reads 256 tokens at most anyway)
    max_queued_rows: int = 16_384  # sentences admitted and not answered yet; a request past it: 503
    timeout_seconds: float = 60.0  # per request; past it: 504
    part_rows: int = 64  # sentences per part at most
    min_part_rows: int = 16  # a request is split over the workers only into parts at least this big
    part_retries: int = 2  # further runs of a failed part, each on another actor

    def __post_init__(self):
        for name in ("max_sentences", "max_body_bytes", "max_sentence_chars", "max_queued_rows", "part_rows",
                     "min_part_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.part_retries, bool) or not isinstance(self.part_retries, int) or self.part_retries < 0:
            raise ValueError(f"part_retries must be an int >= 0, got {self.part_retries!r}")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds!r}")


class RequestError(Exception):
    """A request the service refuses: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_sentences(body: bytes, limits: ServiceLimits) -> List[str]:
    """The sentences of a request body, or ``RequestError`` with the status to answer."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, f"body of {len(body)} bytes, at most {limits.max_body_bytes}")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError(422, f"body is not valid JSON: {error}") from None
    except RecursionError:  # "[[[[…": json nests one Python frame per level
        raise RequestError(422, "body nests JSON deeper than the parser's recursion limit") from None
    if isinstance(document, dict) and "sentences" in document:
        document = document["sentences"]
    if not isinstance(document, list):
        raise RequestError(422, 'body must be a JSON list of strings, or {"sentences": [...]}; got '
                                f"{_json_kind(document)}")
    if not document:
        raise RequestError(422, "the list of sentences is empty")
    if len(document) > limits.max_sentences:
        raise RequestError(413, f"{len(document)} sentences, at most {limits.max_sentences} per request")
    for index, sentence in enumerate(document):
        if not isinstance(sentence, str):
            raise RequestError(422, f"sentences[{index}] must be a string, got {_json_kind(sentence)}")
        if len(sentence) > limits.max_sentence_chars:
            raise RequestError(422, f"sentences[{index}] has {len(sentence)} characters, at most "
                                    f"{limits.max_sentence_chars}")
        try:
            sentence.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(422, f"sentences[{index}] is not valid Unicode (a lone surrogate escape)") from None
    return document


def _json_kind(value) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def split_rows(count: int, workers: int, limits: ServiceLimits) -> List[int]:
    """Where each part starts: ``ceil(count / part_rows)`` parts, or one per worker when the
    request has ``min_part_rows`` sentences for each; sizes differ by one at most."""
    parts = max(math.ceil(count / limits.part_rows), min(workers, count // limits.min_part_rows), 1)
    return [count * part // parts for part in range(parts)] + [count]


class EmbedService:
    """The request path (one event loop uses it): admission, splitting, parts, metrics."""

    def __init__(self, pool: WorkerPool, limits: ServiceLimits):
        self.pool = pool
        self.limits = limits
        self.queued_rows = 0
        self.ray = import_ray()
        self.metrics = Metrics()
        self.metrics.counter("requests_total", "Requests answered, by HTTP status.")
        self.metrics.counter("rows_total", "Sentences embedded and answered.")
        self.metrics.counter("part_retries_total", "Parts run again after their actor died or raised.")
        self.metrics.gauge("queued_rows", "Sentences admitted and not answered yet.", lambda: self.queued_rows)
        self.metrics.gauge("workers", "Actors in the pool.", lambda: len(self.pool))
        self.metrics.gauge("worker_replacements", "Actors started to replace one that died.",
                           lambda: self.pool.replacements)

    async def embed(self, sentences: List[str]) -> np.ndarray:
        count = len(sentences)
        if self.queued_rows + count > self.limits.max_queued_rows:
            raise RequestError(503, f"the queue is full ({self.queued_rows} sentences waiting, at most "
                                    f"{self.limits.max_queued_rows}); retry later")
        self.queued_rows += count
        try:
            starts = split_rows(count, len(self.pool), self.limits)
            parts = [self._run_part(sentences[starts[key]:starts[key + 1]]) for key in range(len(starts) - 1)]
            tasks = [asyncio.ensure_future(part) for part in parts]
            try:
                blocks = await asyncio.wait_for(asyncio.gather(*tasks), self.limits.timeout_seconds)
            except asyncio.TimeoutError:
                raise RequestError(504, f"no answer within {self.limits.timeout_seconds:g} s") from None
            finally:
                for task in tasks:
                    task.cancel()
            out = np.empty((count, blocks[0].shape[1]), dtype=np.float32)
            for key, block in enumerate(blocks):  # part `key` holds rows starts[key]:starts[key + 1]
                out[starts[key]:starts[key + 1]] = block
            return out
        finally:
            self.queued_rows -= count

    async def _run_part(self, sentences: List[str]) -> np.ndarray:
        ray = self.ray
        errors = []
        avoid = set()
        while True:
            slot = self.pool.choose(avoid)
            generation = slot.generation
            reference = self.pool.submit(slot, sentences)
            try:
                block, worker, cpu_seconds = await reference
            except asyncio.CancelledError:
                self.pool.finished(slot, generation, len(sentences), None)
                ray.cancel(reference)
                raise
            except ray.exceptions.RayTaskError as error:  # the actor raised; it lives on
                self.pool.finished(slot, generation, len(sentences), None)
                avoid = {slot.index}
                errors.append(f"raised on worker slot {slot.index}: {_last_line(error)}")
            except ray.exceptions.RayError as error:  # the actor or its node is gone
                self.pool.finished(slot, generation, len(sentences), None)
                self.pool.replace(slot, generation)
                avoid = {slot.index}
                errors.append(f"lost worker slot {slot.index}: {_last_line(error)}")
            else:
                self.pool.finished(slot, generation, len(sentences), worker, cpu_seconds)
                return block
            if len(errors) > self.limits.part_retries:
                raise RequestError(500, f"a part of {len(sentences)} sentences failed {len(errors)} times: "
                                        + "; ".join(errors))
            self.metrics.add("part_retries_total")


def _last_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def create_app(pool: WorkerPool, limits: ServiceLimits = None, model_name: str = ""):
    """The FastAPI application serving ``pool`` (whose actors are up) under ``limits``."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, Response
    except ImportError as error:
        raise ImportError("the service needs FastAPI and uvicorn: pip install 'lutmul[distributed]'") from error
    service = EmbedService(pool, limits or ServiceLimits())
    app = FastAPI(title="lutmul embeddings", description="Sentence embeddings from lutmul's runtime on Ray actors.")
    app.state.service = service

    @app.post("/embed")
    async def embed(request: Request):
        began = time.perf_counter()
        status, headers = 200, {}
        try:
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > service.limits.max_body_bytes:
                raise RequestError(413, f"body of {declared} bytes, at most {service.limits.max_body_bytes}")
            sentences = parse_sentences(await request.body(), service.limits)
            rows = await service.embed(sentences)
            content = {"embeddings": rows.tolist(), "rows": len(rows), "dimensions": int(rows.shape[1]),
                       "model": model_name}
            service.metrics.add("rows_total", len(rows))
        except RequestError as error:
            status, content = error.status, {"detail": error.message}
            if status == 503:
                headers["Retry-After"] = "1"
        service.metrics.add("requests_total", code=str(status))
        service.metrics.observe_latency(time.perf_counter() - began)
        return JSONResponse(content, status_code=status, headers=headers)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "model": model_name, "workers": [slot.worker or "starting" for slot in pool.slots],
                "worker_replacements": pool.replacements, "queued_rows": service.queued_rows,
                "max_queued_rows": service.limits.max_queued_rows}

    @app.get("/metrics")
    async def metrics():
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    return app
