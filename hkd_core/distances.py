"""Distances between embeddings: squared Euclidean and Poincare (numpy and torch)."""
from __future__ import annotations

import numpy as np

_EPS = 1e-7


def sq_euclidean(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances (len(A), len(B))."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.maximum(d, 0.0)


def poincare(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pairwise Poincare-ball distances arcosh(1 + 2|a-b|^2 / ((1-|a|^2)(1-|b|^2)))."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    na = np.clip(1.0 - (A * A).sum(1), _EPS, None)
    nb = np.clip(1.0 - (B * B).sum(1), _EPS, None)
    x = 1.0 + 2.0 * sq_euclidean(A, B) / (na[:, None] * nb[None, :])
    return np.arccosh(np.maximum(x, 1.0))


def pairwise(A: np.ndarray, B: np.ndarray, metric: str) -> np.ndarray:
    """Distances used to rank neighbours: Euclidean (not squared) or Poincare."""
    if metric == "euclidean":
        return np.sqrt(sq_euclidean(A, B))
    if metric == "sqeuclidean":
        return sq_euclidean(A, B)
    if metric == "poincare":
        return poincare(A, B)
    raise ValueError(f"metric must be 'euclidean', 'sqeuclidean' or 'poincare', got {metric!r}")
