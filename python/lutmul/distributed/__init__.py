"""Scale-out inference on Ray: the runtime's encoder in a pool of Ray actors.

    from lutmul.distributed import embed_job
    result = embed_job("all-MiniLM-L6-v2", sentences, "out.npy", workers=2)   # local Ray cluster
    result = embed_job(path, "sentences.txt", "out.parquet", address="auto")   # a running one
    print(result.summary())

- :func:`embed_job` (:mod:`.job`): keyed shards, retried on another actor when one dies or
  raises, written in input order, atomically (.npy, .parquet or memory);
- :class:`Embedder` (:mod:`.data`): a callable class for Ray Data's ``map_batches``;
- :func:`create_app` (:mod:`.service`) and ``lutmul serve``: an HTTP service whose requests
  are split into keyed parts over the pool and answered in input order;
- :func:`compile_job` (:mod:`.compile`): the model compiler with its per-layer candidate
  fits spread over the cluster (the same plan as a local compile for the same seed).

Needs the ``distributed`` extra (``pip install 'lutmul[distributed]'``: Ray, pyarrow,
FastAPI, uvicorn, httpx). Ray is imported when first used, not by this import. See
docs/distributed.md.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "embed_job": ".job", "JobResult": ".job", "ShardFailedError": ".job", "read_inputs": ".job",
    "WorkerPool": ".pool", "EmbedWorker": ".pool",
    "read_parquet_embeddings": ".output",
    "Embedder": ".data",
    "create_app": ".service", "ServiceLimits": ".service",
    "compile_job": ".compile", "CompileWorker": ".compile",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lutmul.distributed' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
