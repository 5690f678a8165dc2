"""pt-SEE exemplars and their input-space neighbourhoods p_{j|i} (paper §2.2, eq. 8)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans

from hkd_core.distances import poincare, sq_euclidean

MAX_BALL_NORM = 1 - 1e-5
# eq. 8's distance for each input metric, as the neighbour engine names it
EQ8_METRICS = {"euclidean": "sqeuclidean", "poincare": "poincare"}


def input_distances(A: np.ndarray, B: np.ndarray, metric: str) -> np.ndarray:
    """d(e_i, e_j) of eq. 8: squared Euclidean, or Poincare distance on the ball."""
    if metric == "euclidean":
        return sq_euclidean(A, B)
    if metric == "poincare":
        return poincare(A, B)
    raise ValueError(f"metric must be 'euclidean' or 'poincare', got {metric!r}")


def rim_distance(X: np.ndarray) -> np.ndarray:
    """1 - |x|^2 per row, in float64 then float32 (the Poincare distance's conformal factor; in
    float32 from float32 coordinates it would lose 3 digits near the rim), clipped as
    distances.poincare clips it."""
    X = np.asarray(X, dtype=np.float64)
    return np.clip(1.0 - (X * X).sum(1), 1e-7, None).astype(np.float32)


def exemplar_distances(x: torch.Tensor, ex: torch.Tensor, metric: str,
                       x_rim: torch.Tensor | None = None, ex_rim: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Eq. 8's d(e_i, e_j) between rows x (B, d) and exemplars ex (Z, d) in torch, float32:
    squared Euclidean, or Poincare from the rims 1 - |.|^2 (``rim_distance``). The calibration and
    the training steps both use this function, so p_{j|i} at a step is the calibrated one."""
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b after moving both to the exemplars' centre (distances do
    # not change; float32 keeps its digits for them): memory (B, Z), not the (B, Z, d) of a - b
    centre = ex.mean(0, keepdim=True)
    a, b = x - centre, ex - centre
    sq = ((a * a).sum(1, keepdim=True) + (b * b).sum(1).unsqueeze(0) - 2.0 * a @ b.T).clamp_min(0.0)
    if metric == "euclidean":
        return sq
    if metric == "poincare":
        u = 2.0 * sq / (x_rim.unsqueeze(1) * ex_rim.unsqueeze(0))
        return torch.log1p(u + torch.sqrt(u * (u + 2.0)))         # arcosh(1 + u), stable near 0
    raise ValueError(f"metric must be 'euclidean' or 'poincare', got {metric!r}")


def exemplar_betas(X: np.ndarray, exemplars: np.ndarray, exemplar_rows: np.ndarray,
                   neighbour_distances: np.ndarray | None, perplexities, metric: str,
                   chunk: int = 16384) -> np.ndarray:
    """beta_i of eq. 8 for every row and perplexity (n, len(perplexities)), float32, chunk by
    chunk: the (n, z) distances and affinities are never held whole. A training step rebuilds its
    batch's p_{j|i} from these betas (``exemplar_affinities``)."""
    n = len(X)
    betas = np.empty((n, len(perplexities)), dtype=np.float32)
    ex_t = torch.as_tensor(np.asarray(exemplars, dtype=np.float32))
    ex_rim = torch.as_tensor(rim_distance(exemplars)) if metric == "poincare" else None
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        x = torch.as_tensor(np.asarray(X[s:e], dtype=np.float32))
        x_rim = torch.as_tensor(rim_distance(X[s:e])) if metric == "poincare" else None
        with torch.no_grad():
            d = exemplar_distances(x, ex_t, metric, x_rim, ex_rim).numpy()
        mask = exemplar_rows[None, :] == np.arange(s, e)[:, None]     # a point is not its own exemplar
        if neighbour_distances is not None:
            d = np.concatenate([d, neighbour_distances[s:e]], 1)
            mask = np.concatenate([mask, np.zeros(neighbour_distances[s:e].shape, dtype=bool)], 1)
        for j, perp in enumerate(perplexities):
            betas[s:e, j] = calibrate_affinities(d, perp, mask)[1]
    return betas


def exemplar_affinities(dist: torch.Tensor, beta: torch.Tensor, invalid: torch.Tensor) -> torch.Tensor:
    """Eq. 8 from calibrated betas: p_{j|i} = softmax_j(-beta_i d_ij) over i's exemplars."""
    return torch.softmax((-beta.unsqueeze(1) * dist).masked_fill(invalid, float("-inf")), 1)


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


def calibrate_affinities(dist: np.ndarray, perplexity: float, mask: np.ndarray | None = None,
                         tol: float = 1e-5, max_iter: int = 100, chunk: int = 16384
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 8: p_{j|i} proportional to exp(-d_ij * beta_i), beta_i = 1 / (2 sigma_i^2) found by
    bisection so that the perplexity exp(H(p_i)) equals ``perplexity`` for every row.

    dist (n, z) distances; mask (n, z) True where j is not an exemplar of i (e.g. i itself).
    Returns (P (n, z) float32 rows summing to 1, beta (n,) float64).

    Float32 and ``chunk`` rows at a time (the working set is a few (chunk, z) arrays, not (n, z)
    float64 ones); a row leaves the bisection as soon as its entropy is within ``tol``, and the
    entropy comes from one exp per step: with p = exp(-beta d) / S, H = log S + beta <p, d>."""
    dist = np.asarray(dist)
    n = len(dist)
    valid_counts = dist.shape[1] - (0 if mask is None else np.asarray(mask).sum(1))
    if n and np.any(perplexity >= valid_counts):
        raise ValueError(f"perplexity ({perplexity}) must be smaller than the number of exemplars "
                         f"per point ({int(np.min(valid_counts))})")
    P = np.empty(dist.shape, dtype=np.float32)
    beta = np.empty(n, dtype=np.float64)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        P[s:e], beta[s:e] = _calibrate_rows(dist[s:e], None if mask is None else mask[s:e],
                                            perplexity, tol, max_iter)
    return P, beta


def _calibrate_rows(dist, mask, perplexity, tol, max_iter):
    """The bisection of ``calibrate_affinities`` on one chunk of rows (float32)."""
    d = np.asarray(dist, dtype=np.float32)
    valid = np.ones(d.shape, dtype=bool) if mask is None else ~np.asarray(mask, dtype=bool)
    # shift distances per row so exp() never underflows for the nearest exemplar; masked entries
    # get distance 0 and weight 0
    d = np.where(valid, d, np.float32(np.inf))
    d -= d.min(1, keepdims=True)
    d[~valid] = 0.0
    w = valid.astype(np.float32)
    target = np.float32(np.log(perplexity))
    m = len(d)
    lo = np.zeros(m, dtype=np.float32)
    hi = np.full(m, np.inf, dtype=np.float32)
    finite = d[valid]
    beta = np.full(m, 1.0 / max(float(np.median(finite)) if finite.size else 1.0, 1e-12),
                   dtype=np.float32)
    active = np.arange(m)
    for _ in range(max_iter):
        da, b = d[active], beta[active]
        E = np.exp(-da * b[:, None]) * w[active]
        S = E.sum(1)
        H = np.log(S) + b * (E * da).sum(1) / S
        diff = H - target
        done = np.abs(diff) < tol
        # entropy too high -> distribution too flat -> increase beta
        up = diff > 0
        lo_a = np.where(up, b, lo[active])
        hi_a = np.where(up, hi[active], b)
        new_b = np.where(np.isinf(hi_a), b * 2.0, (lo_a + hi_a) / 2.0)
        keep = ~done
        lo[active], hi[active] = lo_a, hi_a
        beta[active[keep]] = new_b[keep]
        active = active[keep]
        if not len(active):
            break
    E = np.exp(-d * beta[:, None]) * w
    P = E / E.sum(1, keepdims=True)
    return P.astype(np.float32), beta.astype(np.float64)
