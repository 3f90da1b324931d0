"""Where a job's rows go: a .npy file, a Parquet file, or memory; written in input order,
atomically.

Shards come back in any order; :class:`OrderedOutput` holds each until every shard before it
has been written, then writes the run that became contiguous. Files are built under a
temporary name next to the target and renamed over it (``os.replace``) only when every row
is in: a failed or interrupted job leaves no partial file, and any old file stays as it was.
"""

from __future__ import annotations

import os
import tempfile
from typing import Dict, List, Optional

import numpy as np

from ..runtime.npy_stream import NpyRowWriter

OUTPUT_SUFFIXES = (".npy", ".parquet")
PARQUET_COLUMN = "embedding"


def check_output(output) -> Optional[str]:
    """``output`` as a str path (None: keep the rows in memory); ``ValueError`` for another
    suffix, a missing folder, or a folder where the file should be."""
    if output is None:
        return None
    if not isinstance(output, (str, os.PathLike)):
        raise TypeError(f"output must be a path ending in .npy or .parquet, or None, got {type(output).__name__}")
    path = os.fspath(output)
    if not path.endswith(OUTPUT_SUFFIXES):
        raise ValueError(f"output {path!r} must end in .npy or .parquet")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"output folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"output {path!r} is a folder")
    return path


class _MemoryWriter:
    def __init__(self, rows: int, columns: int):
        self.array = np.empty((rows, columns), dtype=np.float32)
        self.rows = 0

    def __enter__(self):
        return self

    def write(self, block: np.ndarray) -> None:
        self.array[self.rows:self.rows + len(block)] = block
        self.rows += len(block)

    def __exit__(self, *exc) -> None:
        pass


class _ParquetWriter:
    """One column ``embedding`` of fixed-size float32 lists, a row group per write."""

    def __init__(self, path: str, columns: int):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as error:
            raise ImportError("Parquet output needs pyarrow: pip install 'lutmul[distributed]'") from error
        self._pa, self._pq = pa, pq
        self.path, self.columns, self.rows = path, columns, 0
        self._schema = pa.schema([(PARQUET_COLUMN, pa.list_(pa.float32(), columns))])
        self._writer = None
        self._temporary = None

    def __enter__(self):
        folder = os.path.dirname(os.path.abspath(self.path))
        handle, self._temporary = tempfile.mkstemp(prefix=os.path.basename(self.path) + ".", suffix=".tmp",
                                                   dir=folder)
        os.close(handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._temporary, 0o666 & ~umask)
        self._writer = self._pq.ParquetWriter(self._temporary, self._schema)
        return self

    def write(self, block: np.ndarray) -> None:
        pa = self._pa
        values = pa.array(np.ascontiguousarray(block, dtype=np.float32).reshape(-1), type=pa.float32())
        lists = pa.FixedSizeListArray.from_arrays(values, self.columns)
        self._writer.write_table(pa.Table.from_arrays([lists], schema=self._schema))
        self.rows += len(block)

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None and self.rows == 0:
                self._writer.write_table(self._schema.empty_table())
            self._writer.close()
            if kind is None:
                with open(self._temporary, "rb") as stream:
                    os.fsync(stream.fileno())
                os.replace(self._temporary, self.path)
        finally:
            if os.path.exists(self._temporary):
                os.unlink(self._temporary)


def read_parquet_embeddings(path) -> np.ndarray:
    """The (n, H) float32 rows of a Parquet file written by a job."""
    import pyarrow.parquet as pq

    column = pq.read_table(path, columns=[PARQUET_COLUMN]).column(PARQUET_COLUMN).combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, width)


class OrderedOutput:
    """``with OrderedOutput(path_or_None, shard_starts, rows, columns) as out:
    out.put(shard, block)``: rows written in input order whatever order shards arrive in;
    a shard put twice is kept once (``duplicates`` counts the others)."""

    def __init__(self, path: Optional[str], shard_starts: List[int], rows: int, columns: int):
        self.path = path
        self._starts = shard_starts
        self._rows = rows
        if path is None:
            self._writer = _MemoryWriter(rows, columns)
        elif path.endswith(".parquet"):
            self._writer = _ParquetWriter(path, columns)
        else:
            self._writer = NpyRowWriter(path, columns)
        self._waiting: Dict[int, np.ndarray] = {}
        self._next = 0  # the first shard not yet written
        self._done = set()
        self.duplicates = 0

    def __enter__(self) -> "OrderedOutput":
        self._writer.__enter__()
        return self

    def has(self, shard: int) -> bool:
        return shard in self._done

    def put(self, shard: int, block: np.ndarray) -> None:
        if shard in self._done:
            self.duplicates += 1
            return
        end = self._starts[shard + 1] if shard + 1 < len(self._starts) else self._rows
        expected = end - self._starts[shard]
        if block.ndim != 2 or len(block) != expected:
            raise RuntimeError(f"shard {shard} came back with shape {block.shape}, expected {expected} rows")
        self._done.add(shard)
        self._waiting[shard] = block
        while self._next in self._waiting:
            self._writer.write(self._waiting.pop(self._next))
            self._next += 1

    @property
    def held_rows(self) -> int:
        """Rows kept in memory waiting for an earlier shard."""
        return sum(len(block) for block in self._waiting.values())

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None and self._next != len(self._starts):
            missing = sorted(set(range(len(self._starts))) - self._done)
            kind, value = RuntimeError, RuntimeError(f"shards {missing[:10]} never came back")
            try:
                self._writer.__exit__(kind, value, None)
            finally:
                raise value
        self._writer.__exit__(kind, value, traceback)

    @property
    def array(self) -> Optional[np.ndarray]:
        """The rows, when kept in memory."""
        return self._writer.array if isinstance(self._writer, _MemoryWriter) else None
