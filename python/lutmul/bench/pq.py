"""Plain product quantisation, the MADDNESS paper's PQ baseline, in numpy.

Jégou, Douze and Schmid (2011): the columns of X are cut into C contiguous blocks; each
block gets 16 k-means centroids (scikit-learn's KMeans) learned on training rows, and a
table of ``centroid · W_block`` for every centroid and output. A row is encoded by the
nearest centroid of each block, and its output is the sum of C table rows. This is the same
code size as MADDNESS (C 4-bit codes a row) with a costlier encoder (a distance to every
centroid instead of four comparisons) and float tables. It is a numpy implementation, not
a SIMD kernel: its times show what the algorithm costs in numpy, not what it could reach.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np


class ProductQuantizer:
    """``X @ W + bias`` approximated by product quantisation with ``ncodebooks`` blocks."""

    def __init__(self, ncodebooks: int, *, centroids: int = 16, n_init: int = 3, seed: int = 0):
        if ncodebooks < 1 or centroids < 1:
            raise ValueError(f"ncodebooks and centroids must be at least 1, got {ncodebooks} and {centroids}")
        self.ncodebooks = int(ncodebooks)
        self.centroids = int(centroids)
        self.n_init = int(n_init)
        self.seed = int(seed)
        self.bounds: Optional[np.ndarray] = None
        self.codebooks: list = []  # per block: (centroids, block width) float32
        self.tables: Optional[np.ndarray] = None  # (C, centroids, M) float32
        self.bias: Optional[np.ndarray] = None

    def fit(self, X_train, W, bias=None) -> "ProductQuantizer":
        """Learns the centroids from ``X_train`` (n, D) and builds the tables for ``W`` (D, M)."""
        from sklearn.cluster import KMeans

        X_train = np.asarray(X_train, dtype=np.float32)
        W = np.asarray(W, dtype=np.float32)
        if X_train.ndim != 2 or W.ndim != 2 or X_train.shape[1] != W.shape[0]:
            raise ValueError(f"X_train (n, D) and W (D, M) must agree, got {X_train.shape} and {W.shape}")
        if not 1 <= self.ncodebooks <= X_train.shape[1]:
            raise ValueError(f"ncodebooks must be in 1..D = {X_train.shape[1]}, got {self.ncodebooks}")
        if X_train.shape[0] < self.centroids:
            raise ValueError(f"need at least {self.centroids} training rows, got {X_train.shape[0]}")
        self.bounds = np.linspace(0, X_train.shape[1], self.ncodebooks + 1).round().astype(int)
        self.codebooks, tables = [], []
        for lo, hi in zip(self.bounds[:-1], self.bounds[1:]):
            with warnings.catch_warnings():  # blocks with fewer distinct points than centroids
                warnings.simplefilter("ignore")
                km = KMeans(n_clusters=self.centroids, n_init=self.n_init, random_state=self.seed).fit(X_train[:, lo:hi])
            centres = km.cluster_centers_.astype(np.float32)
            self.codebooks.append(centres)
            tables.append(centres @ W[lo:hi])
        self.tables = np.stack(tables).astype(np.float32)
        self.bias = np.zeros(W.shape[1], np.float32) if bias is None else np.asarray(bias, dtype=np.float32).copy()
        return self

    def encode(self, X) -> np.ndarray:
        """The nearest centroid of every block: uint8 (N, C)."""
        if self.bounds is None:
            raise ValueError("the quantizer is not fitted")
        X = np.asarray(X, dtype=np.float32)
        codes = np.empty((X.shape[0], self.ncodebooks), dtype=np.uint8)
        for c, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
            centres = self.codebooks[c]
            # ||x - c||² = ||x||² - 2 x·c + ||c||²; the first term is the same for every centroid.
            distances = (centres * centres).sum(axis=1) - 2.0 * (X[:, lo:hi] @ centres.T)
            codes[:, c] = distances.argmin(axis=1)
        return codes

    def forward(self, X, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The approximate product: float32 (N, M)."""
        codes = self.encode(X)
        assert self.tables is not None and self.bias is not None
        if out is None:
            out = np.empty((codes.shape[0], self.tables.shape[2]), dtype=np.float32)
        out[...] = self.bias
        for c in range(self.ncodebooks):
            out += self.tables[c][codes[:, c]]
        return out

    __call__ = forward

    @property
    def bytes(self) -> int:
        """Bytes kept for inference: the centroids, the float tables and the bias."""
        if self.tables is None or self.bias is None:
            return 0
        return int(sum(c.nbytes for c in self.codebooks) + self.tables.nbytes + self.bias.nbytes)
