"""The one neighbour engine: k nearest neighbours for metrics, exemplars, projections and the app.

    nb = kneighbors(X, 5, "poincare")       # each row's 5 nearest other rows
    nb.indices, nb.distances                # (n, 5), nearest first
    nb.approximate, nb.recall               # False, 1.0 for exact search

    index = NeighbourIndex(metric="euclidean").fit(X)
    dist, idx = index.kneighbors(Q, 10)     # scikit-learn's return order

Metrics: "euclidean" (distances are Euclidean), "sqeuclidean" (squared, eq. 8 of HKD), "cosine"
(1 - cosine similarity) and "poincare" (the Poincare-ball distance of distances.poincare).

Exact search (the default up to ``approximate_above`` indexed rows): faiss ``IndexFlatL2`` /
``IndexFlatIP`` in float32 proposes ``k + margin`` candidates per query, on centred rows
(Euclidean), unit rows (cosine) or, for Poincare, an exact L2 form of the hyperboloid model (see
``NeighbourIndex._faiss_space``). The candidates are re-ranked in float64 and each row is
*certified*: its k-th exact distance must lie below the worst candidate's faiss distance by more
than float32's error bound, so no row outside the candidates can be nearer. Rows that fail
(near-ties at the boundary, duplicates, Poincare rows near the rim) are searched again by a
blocked float64 search (at most ``memory_mb`` per block of queries; ``np.argpartition``, not a
full sort). The answer is therefore the float64 brute-force answer.

Approximate search (above ``approximate_above`` rows, or ``algorithm="approximate"``): faiss
``IndexIVFFlat`` over the same float32 rows (k-means lists trained on a seeded sample, so results
are deterministic) proposes the candidates, re-ranked in float64 without the certificate. The
number of probed lists starts at ``n_probe`` and doubles until the recall measured on
``recall_sample`` seeded queries reaches ``target_recall`` (or every list is probed); that recall
is returned with the neighbours. Recall@k here = mean over sampled queries of the fraction of the
returned neighbours whose exact distance is at most the exact k-th distance (ties count as hits).
The sampled queries themselves get their exact answer.

Self-exclusion: searching the indexed rows themselves (``X=None``) never returns a row as its own
neighbour (by index: an exact duplicate of the row is still a neighbour at distance 0), as
scikit-learn's ``kneighbors()`` without X. Ties are broken by the smaller index everywhere, so
results are deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator

METRICS = ("euclidean", "sqeuclidean", "cosine", "poincare")
ALGORITHMS = ("auto", "exact", "approximate")
DEFAULT_APPROXIMATE_ABOVE = 200_000
_EPS_BALL = 1e-7                     # the clip of distances.poincare
_U32 = 2.0 ** -24                    # float32 unit roundoff


@dataclass(frozen=True)
class Neighbours:
    """The answer of a search: what was found and how far it can be trusted."""
    indices: np.ndarray              # (m, k) int64, nearest first
    distances: np.ndarray            # (m, k) float64, in the metric's own unit
    metric: str
    approximate: bool
    recall: float                    # 1.0 for exact search; measured on a sample otherwise
    recall_sample: int               # queries the recall was measured on (0 for exact search)
    method: str                      # e.g. "faiss IndexFlatL2 + float64 re-rank"

    def summary(self) -> dict:
        """The JSON-able description that metrics results carry."""
        return {"method": self.method, "approximate": self.approximate, "recall": self.recall,
                "recall_sample": self.recall_sample, "k": int(self.indices.shape[1])}


def kneighbors(X, k: int, metric: str = "euclidean", **options) -> Neighbours:
    """Each row's k nearest *other* rows of X (self excluded), nearest first.
    ``options`` go to ``NeighbourIndex`` (algorithm, approximate_above, target_recall, ...)."""
    return NeighbourIndex(metric=metric, **options).fit(X).search(None, k)


class NeighbourIndex(BaseEstimator):
    """Exact or approximate k-nearest-neighbour search over the rows given to ``fit``.

    Parameters
    ----------
    metric : "euclidean", "sqeuclidean", "cosine" or "poincare".
    algorithm : "auto" (exact up to ``approximate_above`` rows, approximate above), "exact" or
        "approximate".
    approximate_above : row count above which "auto" searches approximately.
    n_lists : IVF lists (None: 4 sqrt(n), at least 1 and at most n / 39).
    n_probe : lists probed at first; doubled until ``target_recall`` is reached on the sample.
    target_recall : recall@k the approximate search is tuned to on the sample, in (0, 1].
    recall_sample : queries on which the approximate recall is measured (exactly).
    memory_mb : working-memory budget of one block of the exact blocked search and re-ranking.
    seed : the IVF training sample and the recall sample.
    """

    def __init__(self, metric="euclidean", algorithm="auto", approximate_above=DEFAULT_APPROXIMATE_ABOVE,
                 n_lists=None, n_probe=8, target_recall=0.95, recall_sample=1000, memory_mb=256, seed=0):
        self.metric = metric
        self.algorithm = algorithm
        self.approximate_above = approximate_above
        self.n_lists = n_lists
        self.n_probe = n_probe
        self.target_recall = target_recall
        self.recall_sample = recall_sample
        self.memory_mb = memory_mb
        self.seed = seed

    # -- fit --------------------------------------------------------------------------------------
    def fit(self, X, y=None):
        from hkd_core.models.base import check_choice, check_float, check_int

        check_choice("metric", self.metric, METRICS)
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        check_int("approximate_above", self.approximate_above, 1)
        check_int("n_probe", self.n_probe, 1)
        check_float("target_recall", self.target_recall, 0.0, 1.0, low_open=True)
        check_int("recall_sample", self.recall_sample, 1)
        check_float("memory_mb", self.memory_mb, 1.0)
        check_int("seed", self.seed, 0)
        X = _as_matrix(X, "X")
        for cached in ("_centre_", "_m2_"):           # derived from an earlier fit's rows
            self.__dict__.pop(cached, None)
        self._sq_norm = np.concatenate([np.einsum("ij,ij->i", c, c, dtype=np.float64)
                                        for c in np.array_split(X, max(1, len(X) // 65536))])
        if self.metric == "poincare" and np.any(self._sq_norm >= 1.0):
            raise ValueError("metric='poincare' needs every row inside the unit ball (norm < 1)")
        n = len(X)
        self._X = X                                   # no copy: re-ranking reads rows from here
        self.n_samples_fit_ = n
        self.n_features_in_ = X.shape[1]
        self.approximate_ = self.algorithm == "approximate" or (
            self.algorithm == "auto" and n > self.approximate_above)
        self._flat = None
        self._ivf = None
        if self.approximate_:
            if self.n_lists is not None:
                check_int("n_lists", self.n_lists, 1, n)
            self._build_ivf()
        else:
            self._flat = self._faiss_flat()
        return self

    def _faiss_space(self, A: np.ndarray, query: bool = True) -> np.ndarray:
        """Rows as faiss sees them, float32: centred (Euclidean), unit (cosine), or for Poincare
        an L2 form of the hyperboloid: with s = 2x / (1 - |x|^2) and x0 = sqrt(1 + |s|^2),
        cosh d(a, b) = x0_a x0_b - s_a . s_b, so rows (s, x0, sqrt(M^2 - |s|^2 - x0^2)) and
        queries (s, -x0, 0) are at squared L2 distance |q|^2 + M^2 + 2 cosh d: the nearest in L2
        are the nearest on the ball (exactly; float32 blurs rows near the boundary, which the
        re-rank and the certificate take care of)."""
        A = np.asarray(A, dtype=np.float64)
        if self.metric in ("euclidean", "sqeuclidean"):
            A = A - self._centre
        elif self.metric == "cosine":
            A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-300)
        else:
            s = 2.0 * A / np.clip(1.0 - (A * A).sum(1, keepdims=True), _EPS_BALL, None)
            x0 = np.sqrt(1.0 + (s * s).sum(1, keepdims=True))
            if query:
                A = np.hstack([s, -x0, np.zeros_like(x0)])
            else:
                A = np.hstack([s, x0, np.sqrt(np.clip(self._lorentz_m2 - 2 * x0 ** 2 + 1, 0, None))])
        return np.ascontiguousarray(A, dtype=np.float32)

    @property
    def _lorentz_m2(self):
        """M^2 = max over rows of |s|^2 + x0^2 = 2 x0^2 - 1 (Poincare's L2 form)."""
        if not hasattr(self, "_m2_"):
            s2 = 4.0 * self._sq_norm / np.clip(1.0 - self._sq_norm, _EPS_BALL, None) ** 2
            self._m2_ = float((2.0 * s2 + 1.0).max())
        return self._m2_

    @property
    def _space_dim(self):
        return self._X.shape[1] + (2 if self.metric == "poincare" else 0)

    @property
    def _centre(self):
        if not hasattr(self, "_centre_"):
            self._centre_ = self._X.mean(0, dtype=np.float64)
        return self._centre_

    def _faiss_flat(self):
        import faiss

        d = self._space_dim
        index = faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)
        self._db_sq_max = 0.0                         # largest |x|^2 faiss holds (its error bound)
        for s in range(0, len(self._X), 65536):
            chunk = self._faiss_space(self._X[s:s + 65536], query=False)
            self._db_sq_max = max(self._db_sq_max, float((chunk.astype(np.float64) ** 2).sum(1).max()))
            index.add(chunk)
        return index

    def _build_ivf(self):
        import faiss

        n, d = len(self._X), self._space_dim
        n_lists = self.n_lists or int(np.clip(4 * np.sqrt(n), 1, max(1, n // 39)))
        cosine = self.metric == "cosine"
        quantizer = faiss.IndexFlatIP(d) if cosine else faiss.IndexFlatL2(d)
        ivf = faiss.IndexIVFFlat(quantizer, d, n_lists,
                                 faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2)
        ivf.cp.seed = int(self.seed)
        rng = np.random.default_rng(self.seed)
        train_rows = np.sort(rng.choice(n, size=min(n, 64 * n_lists), replace=False))
        ivf.train(self._faiss_space(self._X[train_rows], query=False))
        for s in range(0, n, 65536):
            ivf.add(self._faiss_space(self._X[s:s + 65536], query=False))
        self._ivf = ivf
        self._ivf_quantizer = quantizer               # keep the quantizer alive beside the index
        self.n_lists_ = n_lists

    # -- search -----------------------------------------------------------------------------------
    def kneighbors(self, X=None, n_neighbors=5, return_distance=True):
        """scikit-learn's form: (distances, indices), or indices alone."""
        nb = self.search(X, n_neighbors)
        return (nb.distances, nb.indices) if return_distance else nb.indices

    def search(self, X=None, k: int = 5) -> Neighbours:
        """The k nearest indexed rows of each row of X; X=None searches the indexed rows
        themselves, each excluding itself."""
        from hkd_core.models.base import check_int

        if not hasattr(self, "n_samples_fit_"):
            raise RuntimeError("this NeighbourIndex is not fitted yet: call fit(X) first")
        n = self.n_samples_fit_
        self_search = X is None
        limit = n - 1 if self_search else n
        k = check_int("k", k, 1, limit)
        Q = self._X if self_search else _as_matrix(X, "X")
        if Q.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {Q.shape[1]} features, the index holds {self.n_features_in_}")
        if self.metric == "poincare" and not self_search and np.any((Q.astype(np.float64) ** 2).sum(1) >= 1):
            raise ValueError("metric='poincare' needs every query inside the unit ball (norm < 1)")
        rows = np.arange(len(Q)) if self_search else None
        if not self.approximate_:
            idx, dist, method = self._exact(Q, rows, k)
            return Neighbours(idx, dist, self.metric, False, 1.0, 0, method)
        return self._approximate(Q, rows, k)

    # exact ---------------------------------------------------------------------------------------
    def _exact(self, Q, rows, k):
        idx, dist, fallback = self._faiss_then_rerank(self._flat, Q, rows, k, margin=max(8, k // 2),
                                                      certify=True)
        name = {"cosine": "IndexFlatIP", "poincare": "IndexFlatL2 (hyperboloid L2 form)"}.get(
            self.metric, "IndexFlatL2")
        return idx, dist, f"faiss {name} + float64 re-rank ({fallback} rows re-searched exactly)"

    def _blocked(self, Q, rows, k):
        """Exact float64 search of the rows of Q against all indexed rows, block by block."""
        X = self._X
        n = len(X)
        m = len(Q)
        idx = np.empty((m, k), dtype=np.int64)
        dist = np.empty((m, k), dtype=np.float64)
        block = int(max(1, min(m, self.memory_mb * 2 ** 20 // (8 * 4 * max(n, 1)))))
        X64 = None
        for s in range(0, m, block):
            e = min(s + block, m)
            q = np.asarray(Q[s:e], dtype=np.float64)
            if X64 is None or X64.shape[0] != n:
                X64 = np.asarray(X, dtype=np.float64)
            key = self._rank_key(q, X64)
            if rows is not None:
                key[np.arange(e - s), rows[s:e]] = np.inf
            top = smallest_k(key, k)
            idx[s:e] = top
            dist[s:e] = self._exact_distances(q, top)
        return idx, dist

    def _rank_key(self, q, X64):
        """A (b, n) float64 matrix ordered per row like the distances (monotone in them)."""
        from hkd_core.distances import sq_euclidean

        if self.metric == "cosine":
            qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
            xn = X64 / np.maximum(np.linalg.norm(X64, axis=1, keepdims=True), 1e-300)
            return 1.0 - qn @ xn.T
        sq = sq_euclidean(q, X64)
        if self.metric == "poincare":
            # arcosh(1 + 2 sq / (na nb)) with na fixed per query row: ranking by sq / nb is enough
            sq /= np.clip(1.0 - self._sq_norm, _EPS_BALL, None)[None, :]
        return sq

    def _exact_distances(self, q64, cand):
        """float64 distances from each query row to its candidate rows (b, c), directly."""
        Xc = np.asarray(self._X[cand.reshape(-1)], dtype=np.float64).reshape(*cand.shape, -1)
        if self.metric == "cosine":
            qn = q64 / np.maximum(np.linalg.norm(q64, axis=1, keepdims=True), 1e-300)
            xn = Xc / np.maximum(np.linalg.norm(Xc, axis=2, keepdims=True), 1e-300)
            return 1.0 - np.einsum("bd,bcd->bc", qn, xn)
        diff = Xc - q64[:, None, :]
        sq = np.einsum("bcd,bcd->bc", diff, diff)
        if self.metric == "euclidean":
            return np.sqrt(sq)
        if self.metric == "sqeuclidean":
            return sq
        na = np.clip(1.0 - (q64 * q64).sum(1), _EPS_BALL, None)
        nb = np.clip(1.0 - (Xc * Xc).sum(2), _EPS_BALL, None)
        # the formula of distances.poincare, per (query, candidate) pair
        return np.arccosh(np.maximum(1.0 + 2.0 * sq / (na[:, None] * nb), 1.0))

    def _faiss_then_rerank(self, index, Q, rows, k, margin, certify):
        """faiss proposes k + margin (+1 for self) candidates, float64 ranks them; with ``certify``
        rows whose k-th distance is not safely below the worst candidate are searched again exactly.
        Returns (indices, distances, number of re-searched rows)."""
        n, d = len(self._X), self._space_dim
        m = len(Q)
        c = min(n, k + margin + (rows is not None))
        idx = np.empty((m, k), dtype=np.int64)
        dist = np.empty((m, k), dtype=np.float64)
        redo = []
        block = int(max(1, min(m, 16384, self.memory_mb * 2 ** 20 // (8 * 3 * c * max(d, 1)))))
        gamma = 4.0 * (d + 4) * _U32                  # float32 dot-product error, with input rounding
        for s in range(0, m, block):
            e = min(s + block, m)
            q64 = np.asarray(Q[s:e], dtype=np.float64)
            qf = self._faiss_space(q64)
            fd, fi = index.search(qf, c)
            fi = fi.astype(np.int64)
            missing = fi < 0                          # IVF lists may hold fewer than c rows
            if rows is not None:
                missing |= fi == rows[s:e, None]
            safe_i = np.where(fi < 0, 0, fi)
            exact = self._exact_distances(q64, safe_i)
            exact[missing] = np.inf
            # sort by (distance, index): lexsort's last key is the primary one
            order = np.lexsort((safe_i, exact), axis=1)[:, :k]
            idx[s:e] = np.take_along_axis(safe_i, order, 1)
            dist[s:e] = np.take_along_axis(exact, order, 1)
            if certify and c < n:
                # faiss "distance" of the last candidate vs the k-th exact one, in faiss units
                if self.metric == "cosine":
                    worst = 1.0 - fd[:, -1].astype(np.float64)
                    kth = dist[s:e, -1]
                    tol = 2.0 * gamma
                else:
                    worst = fd[:, -1].astype(np.float64)
                    kth = dist[s:e, -1]
                    if self.metric == "euclidean":
                        kth = kth ** 2
                    elif self.metric == "poincare":
                        kth = (qf.astype(np.float64) ** 2).sum(1) + self._lorentz_m2 + 2 * np.cosh(kth)
                    tol = 2.0 * gamma * ((qf.astype(np.float64) ** 2).sum(1) + self._db_sq_max)
                bad = ~(kth < worst - tol) | ~np.isfinite(dist[s:e, -1])
                redo.extend((s + np.flatnonzero(bad)).tolist())
        if redo:
            redo = np.asarray(redo, dtype=np.int64)
            ri, rd = self._blocked(Q[redo], None if rows is None else rows[redo], k)
            idx[redo], dist[redo] = ri, rd
        return idx, dist, len(redo)

    # approximate ---------------------------------------------------------------------------------
    def _approximate(self, Q, rows, k) -> Neighbours:
        n_lists = self.n_lists_
        margin = max(8, k // 2)
        rng = np.random.default_rng(self.seed + 1)
        m = len(Q)
        sample = np.sort(rng.choice(m, size=min(m, self.recall_sample), replace=False))
        s_rows = None if rows is None else rows[sample]
        truth_idx, truth_dist = self._truth(Q[sample], s_rows, k)
        n_probe = min(self.n_probe, n_lists)
        while True:
            self._ivf.nprobe = n_probe
            a_idx, a_dist, _ = self._faiss_then_rerank(self._ivf, Q[sample], s_rows, k, margin, False)
            recall = recall_at_k(a_dist, truth_dist)
            if recall >= self.target_recall or n_probe >= n_lists:
                break
            n_probe = min(2 * n_probe, n_lists)
        self.n_probe_ = n_probe
        idx, dist, _ = self._faiss_then_rerank(self._ivf, Q, rows, k, margin, False)
        # the sampled queries get their exact answer (it was computed anyway)
        idx[sample], dist[sample] = truth_idx, truth_dist
        space = " (hyperboloid L2 form)" if self.metric == "poincare" else ""
        method = (f"faiss IndexIVFFlat{space} n_lists={n_lists} n_probe={n_probe} + float64 re-rank, "
                  f"recall@{k} {recall:.3f} on {len(sample)} sampled queries")
        return Neighbours(idx, dist, self.metric, True, float(recall), int(len(sample)), method)

    def _truth(self, Q, rows, k):
        """Exact neighbours of a few queries (for the recall of the approximate search)."""
        if self._flat is None:
            self._flat = self._faiss_flat()
        idx, dist, _ = self._faiss_then_rerank(self._flat, Q, rows, k, max(8, k // 2), True)
        return idx, dist


def smallest_k(key: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column indices of the k smallest entries, sorted by (value, index): ties go
    to the smaller index, as a stable full sort would decide, at argpartition's cost."""
    b, n = key.shape
    part = np.argpartition(key, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(key, part, 1)
    kth = vals.max(1)
    # argpartition picks arbitrarily among entries equal to the k-th value: redo those rows
    n_tied = (key == kth[:, None]).sum(1)
    n_tied_in = (vals == kth[:, None]).sum(1)
    ambiguous = np.flatnonzero(n_tied > n_tied_in)
    if len(ambiguous):
        part[ambiguous] = np.argsort(key[ambiguous], axis=1, kind="stable")[:, :k]
        vals[ambiguous] = np.take_along_axis(key[ambiguous], part[ambiguous], 1)
    order = np.lexsort((part, vals), axis=1)
    return np.take_along_axis(part, order, 1).astype(np.int64)


def recall_at_k(found_dist: np.ndarray, exact_dist: np.ndarray) -> float:
    """Mean fraction of the found neighbours whose exact distance is within each query's exact
    k-th distance (a found neighbour tied with the k-th counts as a hit)."""
    found_dist = np.asarray(found_dist, dtype=np.float64)
    kth = np.asarray(exact_dist, dtype=np.float64)[:, -1:]
    tol = 1e-12 * np.maximum(np.abs(kth), 1.0)
    return float(np.mean(found_dist <= kth + tol)) if found_dist.size else 1.0


def _as_matrix(X, name: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or len(X) == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-d array (rows x features), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return X
