"""``Embedder``: the runtime's encoder as a callable class for Ray Data's ``map_batches``.

    import ray, lutmul.distributed
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ds = ray.data.from_items([{"text": s} for s in sentences])      # or read_text, read_parquet
    ds = ds.map_batches(lutmul.distributed.Embedder, fn_constructor_kwargs={"model": "all-MiniLM-L6-v2"},
                        concurrency=2, num_cpus=1, batch_size=256)
    rows = np.concatenate([b["embedding"] for b in ds.iter_batches(batch_size=None, batch_format="numpy")])

Ray Data builds one ``Embedder`` per actor of the pool (``concurrency`` of them), so each
loads the model once. Order: Ray Data yields blocks as they finish unless the context's
``execution_options.preserve_order`` is True; with it, the output is in input order.
Failures: Ray Data retries a failed task (an actor that died) and gives no exactly-once
guarantee: a batch may be embedded twice, and a write to an external sink may see it twice.
Embedding is deterministic (a sentence's row does not depend on its batch), so a retried
batch gives the same rows; a consumer that needs every row once keys rows by their input
(or use :func:`~lutmul.distributed.embed_job`, which writes each shard once).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from ..runtime.batching import check_sentences, positive_int


class Embedder:
    """``Embedder(model=None, column="text", output_column="embedding", precision="f32",
    threads=1, batch_size=64)``; called with a batch (a dict of columns, or a pandas
    DataFrame), returns it with ``output_column`` added: a float32 (n, H) tensor column, row
    i for the batch's row i."""

    def __init__(self, model=None, column: str = "text", output_column: str = "embedding", precision: str = "f32",
                 threads: int = 1, batch_size: int = 64):
        from ..runtime import load_encoder

        if not isinstance(column, str) or not isinstance(output_column, str):
            raise TypeError("column and output_column must be str")
        self.column = column
        self.output_column = output_column
        self.batch_size = positive_int(batch_size, "batch_size")
        self.encoder = load_encoder(model, threads=threads, precision=precision)

    def __repr__(self) -> str:
        return (f"Embedder(model={self.encoder.path!r}, column={self.column!r}, "
                f"output_column={self.output_column!r}, batch_size={self.batch_size})")

    def __call__(self, batch):
        try:
            texts = batch[self.column]
        except KeyError:
            columns = list(batch.keys()) if hasattr(batch, "keys") else list(getattr(batch, "columns", []))
            raise KeyError(f"the batch has no column {self.column!r} (it has {columns}); pass "
                           f"fn_constructor_kwargs={{'column': ...}}") from None
        sentences = check_sentences(texts.tolist() if hasattr(texts, "tolist") else list(texts))
        rows = self.encoder.embed(sentences, batch_size=self.batch_size)
        if isinstance(batch, dict):
            out: Dict[str, np.ndarray] = dict(batch)
            out[self.output_column] = rows
            return out
        batch = batch.copy()  # a pandas DataFrame: one array per row
        batch[self.output_column] = list(rows)
        return batch
