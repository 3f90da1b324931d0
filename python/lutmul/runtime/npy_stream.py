"""A float32 .npy file written row block by row block, its row count unknown until the end.

The header is written first with room to spare, rows follow as they come, and the header is
rewritten in the same space once the count is known; the file is built under a temporary
name next to the target and renamed over it at the end (os.replace), so a failed run leaves
any old file as it was and a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

# Magic (6) + version (2) + header length (2) + the dict, padded with spaces; 128 bytes hold
# a shape of two 20-digit numbers and keep the data 64-byte aligned as the format asks.
HEADER_BYTES = 128


def _header(rows: int, columns: int) -> bytes:
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, columns)
    room = HEADER_BYTES - 10 - 1  # the dict ends with a newline
    if len(text) > room:
        raise ValueError(f"shape ({rows}, {columns}) does not fit a {HEADER_BYTES}-byte .npy header")
    body = (text + " " * (room - len(text)) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


class NpyRowWriter:
    """``with NpyRowWriter(path, columns) as out: out.write(rows)``: a (rows, columns) float32
    .npy at ``path`` once the block exits without an exception."""

    def __init__(self, path: str, columns: int):
        self.path = os.fspath(path)
        self.columns = int(columns)
        self.rows = 0
        self._file = None
        self._temporary = None

    def __enter__(self) -> "NpyRowWriter":
        folder = os.path.dirname(os.path.abspath(self.path))
        handle, self._temporary = tempfile.mkstemp(prefix=os.path.basename(self.path) + ".", suffix=".tmp", dir=folder)
        self._file = os.fdopen(handle, "wb")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._temporary, 0o666 & ~umask)  # mkstemp's 0600 would outlive the rename
        self._file.write(_header(0, self.columns))
        return self

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype="<f4")
        if rows.ndim != 2 or rows.shape[1] != self.columns:
            raise ValueError(f"rows must be (m, {self.columns}), got {rows.shape}")
        self._file.write(rows.tobytes())
        self.rows += rows.shape[0]

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                self._file.seek(0)
                self._file.write(_header(self.rows, self.columns))
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if kind is None:
                os.replace(self._temporary, self.path)
        finally:
            if os.path.exists(self._temporary):
                os.unlink(self._temporary)
