"""pt-SEE exemplars and their input-space neighbourhoods p_{j|i} (paper §2.2, eq. 8)."""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from hkd_core.distances import poincare, sq_euclidean

MAX_BALL_NORM = 1 - 1e-5


def input_distances(A: np.ndarray, B: np.ndarray, metric: str) -> np.ndarray:
    """d(e_i, e_j) of eq. 8: squared Euclidean, or Poincare distance on the ball."""
    if metric == "euclidean":
        return sq_euclidean(A, B)
    if metric == "poincare":
        return poincare(A, B)
    raise ValueError(f"metric must be 'euclidean' or 'poincare', got {metric!r}")


def select_exemplars(X: np.ndarray, n_kmeans: int, n_random: int, metric: str, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Shared exemplars: k-means centres (a few iterations, as pt-SEE) then random rows.

    Returns (exemplars (z, d), row index in X of each exemplar or -1 for a centre)."""
    rng = np.random.default_rng(seed)
    n = len(X)
    parts, rows = [], []
    if n_kmeans > 0:
        k = min(n_kmeans, n)
        km = KMeans(n_clusters=k, n_init=1, max_iter=50, random_state=seed).fit(X)
        centres = km.cluster_centers_
        if metric == "poincare":
            # a mean of ball points lies in the ball; clip only against rounding
            norms = np.linalg.norm(centres, axis=1, keepdims=True)
            centres = np.where(norms > MAX_BALL_NORM, centres / norms * MAX_BALL_NORM, centres)
        parts.append(centres)
        rows.append(np.full(k, -1))
    if n_random > 0:
        idx = rng.choice(n, size=min(n_random, n), replace=False)
        parts.append(X[idx])
        rows.append(idx)
    if not parts:
        raise ValueError("at least one exemplar is needed: n_kmeans_exemplars + n_random_exemplars > 0 "
                         "or n_neighbour_exemplars > 0")
    return np.concatenate(parts).astype(np.float32), np.concatenate(rows)


def neighbour_exemplars(X: np.ndarray, k: int, metric: str, block: int = 2048
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows (the per-point exemplars of §3.1), nearest first:
    (indices (n, k), their eq. 8 distances d(e_i, e_j) (n, k))."""
    n = len(X)
    idx = np.empty((n, k), dtype=np.int64)
    dist = np.empty((n, k), dtype=np.float64)
    for s in range(0, n, block):
        e = min(s + block, n)
        d = input_distances(X[s:e], X, metric)
        d[np.arange(e - s), np.arange(s, e)] = np.inf
        part = np.argpartition(d, k, axis=1)[:, :k]
        part_d = np.take_along_axis(d, part, 1)
        order = part_d.argsort(1, kind="stable")
        idx[s:e] = np.take_along_axis(part, order, 1)
        dist[s:e] = np.take_along_axis(part_d, order, 1)
    return idx, dist


def calibrate_affinities(dist: np.ndarray, perplexity: float, mask: np.ndarray | None = None,
                         tol: float = 1e-5, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 8: p_{j|i} proportional to exp(-d_ij * beta_i), beta_i = 1 / (2 sigma_i^2) found by
    bisection so that the perplexity exp(H(p_i)) equals ``perplexity`` for every row at once.

    dist (n, z) distances; mask (n, z) True where j is not an exemplar of i (e.g. i itself).
    Returns (P (n, z) rows summing to 1, beta (n,))."""
    dist = np.asarray(dist, dtype=np.float64)
    valid = np.ones_like(dist, dtype=bool) if mask is None else ~mask
    n_valid = valid.sum(1)
    if np.any(perplexity >= n_valid):
        raise ValueError(f"perplexity ({perplexity}) must be smaller than the number of exemplars "
                         f"per point ({int(n_valid.min())})")
    target = np.log(perplexity)
    # shift distances per row so exp() never underflows for the nearest exemplar
    d = np.where(valid, dist, np.inf)
    d = d - d.min(1, keepdims=True)
    lo = np.zeros(len(d))
    hi = np.full(len(d), np.inf)
    beta = np.ones(len(d)) / max(np.median(d[np.isfinite(d)]), 1e-12)
    for _ in range(max_iter):
        P = np.exp(-d * beta[:, None])
        s = P.sum(1, keepdims=True)
        P /= s
        H = -(np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)).sum(1)
        diff = H - target
        if np.all(np.abs(diff) < tol):
            break
        # entropy too high -> distribution too flat -> increase beta
        up = diff > 0
        lo = np.where(up, beta, lo)
        hi = np.where(up, hi, beta)
        beta = np.where(np.isinf(hi), beta * 2.0, (lo + hi) / 2.0)
    return P.astype(np.float32), beta
