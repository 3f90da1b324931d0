"""How close one encoder's embeddings are to another's: mean cosine, and the overlap of each
sentence's nearest neighbours (what a search over the embeddings would return)."""

from __future__ import annotations

import numpy as np


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of cos(a_i, b_i), in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (n, H) arrays of one shape, got {a.shape} and {b.shape}")
    dots = np.einsum("ij,ij->i", a, b)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(dots / np.maximum(norms, 1e-30)))


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean over sentences of |top-k neighbours under a ∩ under b| / k, neighbours by cosine
    among the other sentences of the set (needs more than k sentences)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] <= k:
        raise ValueError(f"expected two (n, H) arrays of one shape with n > k = {k}, got {a.shape} and {b.shape}")

    def neighbours(x: np.ndarray) -> np.ndarray:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        similarity = x @ x.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argpartition(-similarity, k, axis=1)[:, :k]

    na, nb = neighbours(a), neighbours(b)
    return float(np.mean([len(np.intersect1d(na[i], nb[i])) / k for i in range(len(na))]))
