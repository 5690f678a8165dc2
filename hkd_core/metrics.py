"""The paper's metrics (§3.1-3.2) and code statistics.

share(N, k)     mean over points i and their k nearest input-space neighbours j of
                [code_i[:N] == code_j[:N]]                       (Tables 1-3, rows "KNN=k")
reduction(N)    1 - mean_i |{j : code_j[:N] == code_i[:N]}| / n  (Tables 1, 3, last row)

The count in ``reduction`` includes i itself (a point always shares its own prefix), as the
paper's definition "the number of entities that have the same first N codes" reads.
"""
from __future__ import annotations

import numpy as np

from hkd_core.neighbours import DEFAULT_APPROXIMATE_ABOVE, Neighbours, kneighbors
from hkd_core.hierarchical_retrieval import (  # noqa: F401  (mAHP lives with its helpers)
    class_similarity_from_hierarchy, mean_average_hierarchical_precision,
    mean_average_precision)

DEFAULT_KS = (5, 10, 15, 20)


def _prefix_ids(codes: np.ndarray, N: int) -> np.ndarray:
    """One integer id per row identifying its first-N code prefix."""
    if N == 0:
        return np.zeros(len(codes), dtype=np.int64)
    _, ids = np.unique(np.ascontiguousarray(codes[:, :N]), axis=0, return_inverse=True)
    return ids.reshape(-1)


def prefix_share(codes: np.ndarray, knn_idx: np.ndarray, N: int) -> float:
    """Share of (point, neighbour) pairs whose first N codes agree."""
    codes = np.asarray(codes)
    ids = _prefix_ids(codes, N)
    return float(np.mean(ids[knn_idx] == ids[:, None]))


def search_reduction(codes: np.ndarray, N: int) -> float:
    """1 - mean over points of the fraction of points sharing their first-N prefix."""
    codes = np.asarray(codes)
    ids = _prefix_ids(codes, N)
    sizes = np.bincount(ids)
    return float(1.0 - np.mean(sizes[ids]) / len(codes))


def shared_prefix_length(codes: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Number of leading digits each row of ``codes`` shares with ``code``."""
    codes = np.atleast_2d(np.asarray(codes))
    code = np.asarray(code).reshape(1, -1)
    differs = codes != code
    first_diff = np.where(differs.any(1), differs.argmax(1), codes.shape[1])
    return first_diff.astype(np.int64)


def reconstruction_mse(X: np.ndarray, X_hat: np.ndarray) -> float:
    """Eq. 7: mean over rows of the squared reconstruction error ||x_hat - x||^2."""
    X = np.asarray(X, dtype=np.float64)
    X_hat = np.asarray(X_hat, dtype=np.float64)
    if X.shape != X_hat.shape:
        raise ValueError(f"X and X_hat shapes differ: {X.shape} vs {X_hat.shape}")
    return float(np.mean(np.sum((X - X_hat) ** 2, axis=1)))


def code_statistics(codes: np.ndarray, K: int | None = None) -> list[dict]:
    """Per depth N = 1..D: distinct prefixes, largest group, entropy of the prefix
    distribution (bits), and the entropy of digit N alone (how much of the K-way capacity
    each position uses)."""
    codes = np.asarray(codes)
    n, D = codes.shape
    rows = []
    for N in range(1, D + 1):
        ids = _prefix_ids(codes, N)
        p = np.bincount(ids) / n
        digit_p = np.bincount(codes[:, N - 1], minlength=K or 0) / n
        digit_p = digit_p[digit_p > 0]
        rows.append({
            "depth": N,
            "distinct_prefixes": int(len(p)),
            "unused_digit_values": None if K is None else int(K - len(digit_p)),
            "largest_group": int(round(p.max() * n)),
            "prefix_entropy_bits": float(-(p * np.log2(p)).sum()),
            "digit_entropy_bits": float(-(digit_p * np.log2(digit_p)).sum()),
            "distinct_digits": int(len(digit_p)),
        })
    return rows


def full_code_collisions(codes: np.ndarray) -> int:
    """Rows whose whole code is also another row's: n - number of distinct full codes."""
    codes = np.asarray(codes)
    return int(len(codes) - len(np.unique(codes, axis=0)))


def input_neighbours(X: np.ndarray, metric: str = "euclidean", ks=DEFAULT_KS,
                     approximate_above: int = DEFAULT_APPROXIMATE_ABOVE) -> Neighbours | None:
    """The input-space neighbours the share table needs (max(ks) per row), exact up to
    ``approximate_above`` rows; None when no k fits the data."""
    ks = [k for k in ks if k < len(X)]
    if not ks:
        return None
    return kneighbors(X, max(ks), metric, approximate_above=approximate_above)


def share_table(codes: np.ndarray, X: np.ndarray, metric: str = "euclidean",
                ks=DEFAULT_KS, max_depth: int = 8, neighbours: Neighbours | None = None) -> dict[str, list[float]]:
    codes = np.asarray(codes)
    depth = min(max_depth, codes.shape[1])
    ks = [k for k in ks if k < len(X)]
    if not ks:
        return {}
    if neighbours is None:
        neighbours = input_neighbours(X, metric, ks)
    _check_neighbours(neighbours, len(X), max(ks), metric)
    knn = neighbours.indices
    ids = [_prefix_ids(codes, N) for N in range(1, depth + 1)]
    return {str(k): [float(np.mean(g[knn[:, :k]] == g[:, None])) for g in ids] for k in ks}


def _check_neighbours(neighbours: Neighbours, n: int, k: int, metric: str) -> None:
    if neighbours.indices.shape[0] != n or neighbours.indices.shape[1] < k:
        raise ValueError(f"neighbours hold {neighbours.indices.shape} indices; the share table needs "
                         f"({n}, >= {k})")
    if neighbours.metric != metric:
        raise ValueError(f"neighbours were found by {neighbours.metric!r} distance, not {metric!r}")


def evaluate(codes: np.ndarray, X: np.ndarray, metric: str = "euclidean", X_hat=None,
             ks=DEFAULT_KS, max_depth: int = 8, K: int | None = None,
             neighbours: Neighbours | None = None,
             approximate_above: int = DEFAULT_APPROXIMATE_ABOVE) -> dict:
    """Everything ``metrics.json`` holds for one model on one set of points.

    ``neighbours`` (from ``input_neighbours``) lets several coders of the same points share one
    search. ``neighbour_recall`` is 1.0 for exact neighbours, and the recall@k of the approximate
    search (measured on sampled queries, see hkd_core.neighbours) when X has more than
    ``approximate_above`` rows: every share then rests on neighbours of that recall."""
    codes = np.asarray(codes)
    X = np.asarray(X)
    if len(codes) != len(X):
        raise ValueError(f"{len(codes)} codes for {len(X)} points")
    depth = min(max_depth, codes.shape[1])
    if neighbours is None:
        neighbours = input_neighbours(X, metric, ks, approximate_above)
    return {
        "metric": metric,
        "n": int(len(X)),
        "share": share_table(codes, X, metric, ks, max_depth, neighbours),
        "neighbour_recall": 1.0 if neighbours is None else neighbours.recall,
        "neighbour_search": None if neighbours is None else neighbours.summary(),
        "reduction": [search_reduction(codes, N) for N in range(1, depth + 1)],
        "reconstruction_mse": None if X_hat is None else reconstruction_mse(X, X_hat),
        "code_statistics": code_statistics(codes, K),
        "full_code_collisions": full_code_collisions(codes),
    }


def best_share_at_reduction(result: dict, level: float, k: int = 5) -> float | None:
    """Best KNN=k share over the depths N whose search reduction is at least ``level``
    (the trade-off comparison of issue 3); None when no depth reaches the level."""
    shares = result["share"][str(k)]
    ok = [s for s, r in zip(shares, result["reduction"]) if r >= level]
    return max(ok) if ok else None


def reduction_frontier(result: dict, levels, k: int = 5) -> list[float]:
    """``best_share_at_reduction`` at each level, 0.0 where no depth reaches it."""
    return [best_share_at_reduction(result, level, k) or 0.0 for level in levels]


def frontier_auc(result: dict, k: int = 5) -> float:
    """Area under the share-vs-reduction frontier: the integral over r in [0, 1] of the best
    KNN=k share among the depths whose search reduction is >= r (0 where none reaches r).

    The frontier is a step function that changes only at the depths' reductions, so the integral
    is exact: sum over the sorted reductions r_1 <= r_2 <= ... of (r_i - r_{i-1}) times the best
    share among depths with reduction >= r_i. A coder scores high only by keeping neighbours over
    the whole range of reductions, not by placing one depth just above a threshold."""
    shares = np.asarray(result["share"][str(k)], dtype=np.float64)
    reductions = np.asarray(result["reduction"], dtype=np.float64)
    order = np.argsort(reductions)
    r, s = reductions[order], shares[order]
    best_above = np.maximum.accumulate(s[::-1])[::-1]   # best share among depths at >= r_i
    widths = np.diff(np.concatenate([[0.0], r]))
    return float(np.sum(widths * best_above))


def hierarchy_agreement(codes: np.ndarray, lca_depth, n_pairs: int = 20000, seed: int = 0) -> float | None:
    """Spearman correlation, over random pairs of rows, between the number of leading code digits
    two rows share and the depth of their lowest common ancestor in a known tree.

    ``lca_depth(i, j)`` gives that depth for rows i, j (vectorised over index arrays). None when
    either quantity is constant over the drawn pairs (the correlation is undefined)."""
    from scipy.stats import spearmanr

    codes = np.asarray(codes)
    n = len(codes)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=n_pairs)
    j = rng.integers(0, n - 1, size=n_pairs)
    j = j + (j >= i)                                        # i != j
    differs = codes[i] != codes[j]
    shared = np.where(differs.any(1), differs.argmax(1), codes.shape[1])
    depth = np.asarray(lca_depth(i, j), dtype=np.float64)
    if np.ptp(shared) == 0 or np.ptp(depth) == 0:
        return None
    return float(spearmanr(shared, depth).statistic)


# -- hierarchical clustering F-score (HCRL paper, Table 2) ----------------------------------------

def hierarchical_f_score(codes, labels, hierarchy: dict | None = None,
                         depth: int | None = None) -> float:
    """Micro-averaged F-score of a code tree against (hierarchical) class labels, the measure of
    HCRL's Table 2 ("micro-averaged F-scores ... following Xie et al."). The paper prints no
    formula; this is the standard F-measure of a hierarchical clustering (Larsen & Aone 1999,
    Zhao & Karypis 2002):

        F = sum_c (n_c / sum_c' n_c') * max_{v in tree} 2 P(c,v) R(c,v) / (P(c,v) + R(c,v))
        P(c, v) = |c & v| / |v|,   R(c, v) = |c & v| / |c|

    Clusters v: every node of the code tree, i.e. every distinct prefix codes[:, :N] for
    N = 0..depth (N = 0 is the root, all rows; default depth = code length). Classes c: every
    label, and, with ``hierarchy`` (child -> parent), every ancestor of a label, except a class
    holding every row (it would match the root trivially). Each class is weighted by its size
    (micro-average), so with a hierarchy a row counts once per level it belongs to."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or len(codes) != len(labels):
        raise ValueError(f"codes must be (n, D) with one label per row, got {codes.shape} and "
                         f"{len(labels)} labels")
    n = len(codes)
    if n == 0:
        raise ValueError("hierarchical_f_score needs at least one row")
    depth = codes.shape[1] if depth is None else int(depth)
    if not 0 <= depth <= codes.shape[1]:
        raise ValueError(f"depth must be in [0, {codes.shape[1]}], got {depth}")
    labels = [str(v) for v in labels]
    hierarchy = {str(k): str(v) for k, v in (hierarchy or {}).items()}
    members: dict[str, set] = {}
    for i, lab in enumerate(labels):
        node, seen = lab, set()
        while node is not None and node not in seen:
            seen.add(node)
            members.setdefault(node, set()).add(i)
            node = hierarchy.get(node)
    classes = [np.fromiter(rows, dtype=np.int64) for rows in members.values() if len(rows) < n]
    if not classes:          # one label only: the class is everyone
        classes = [np.arange(n)]
    clusters = []
    for N in range(depth + 1):
        ids = _prefix_ids(codes, N)
        clusters.append((ids, np.bincount(ids)))
    total = sum(len(c) for c in classes)
    score = 0.0
    for rows in classes:
        best = 0.0
        for ids, sizes in clusters:
            inter = np.bincount(ids[rows], minlength=len(sizes))
            f = 2.0 * inter / (sizes + len(rows))       # = 2PR / (P + R)
            best = max(best, float(f.max()))
        score += len(rows) / total * best
    return float(score)
