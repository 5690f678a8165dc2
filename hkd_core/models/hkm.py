"""Hierarchical k-means codes: a K-way k-means tree of depth D (the HCRL paper's HKM baseline).

Digit d of a point is the index of its child at depth d + 1 inside its depth-d node. Rules that make
the tree deterministic for a given seed:

* a node whose points hold more than K distinct rows is split by scikit-learn KMeans(K) (seeded,
  ``n_init`` restarts); points then go to their *nearest stored centroid* (the same rule
  ``transform`` uses, so ``transform(X_train) == codes_``); clusters left empty are dropped;
* a node with 2..K distinct rows gives each distinct row its own child (centroid = that row);
  duplicates follow their row;
* a node with a single distinct row (one point, or only duplicates) is a leaf;
* children are numbered by decreasing size, ties broken by their centroid's coordinates, so digit 0
  is the largest sub-cluster whatever order KMeans returned;
* below a leaf, and at depths a node does not have, digits are 0.

``transform`` descends from the root by nearest child centroid; ``inverse_transform`` follows the
code's digits down the tree as far as the nodes exist and returns that deepest node's centroid.

The tree is stored flat: ``centroids_`` (n_nodes, d), ``children_`` (n_nodes, K) holding the child
node index or -1, ``depth_`` (n_nodes,); node 0 is the root (centroid = mean of the data).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from hkd_core.models.base import CodeModel, ProgressCallback, check_choice, check_int
from hkd_core.models.dccl import MAX_D, MAX_K, check_features

METRICS = ("euclidean",)


def nearest_centroid(X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid per row (first one on ties). Computed from explicit
    differences, not the |a|^2 + |b|^2 - 2ab expansion, so that a row's answer never depends on
    which other rows are passed with it (fit and transform then agree exactly)."""
    C = centroids.astype(np.float64)
    chunk = max(1, 4_000_000 // max(1, C.size))
    out = np.empty(len(X), dtype=np.int64)
    for i in range(0, len(X), chunk):
        diff = X[i:i + chunk, None, :].astype(np.float64) - C[None, :, :]
        out[i:i + chunk] = np.einsum("nkd,nkd->nk", diff, diff).argmin(axis=1)
    return out


class HierarchicalKMeans(CodeModel):
    """K-way k-means tree of depth D.

    Parameters
    ----------
    K : branching factor (children per node) = code alphabet size.
    D : tree depth = code length.
    n_init, max_iter : scikit-learn KMeans settings per node.
    random_state : KMeans random_state (every node uses it; the tree is deterministic).
    metric : only 'euclidean' for now (k-means in the input space).
    """

    model_name = "hkm"

    def __init__(self, K: int = 16, D: int = 16, n_init: int = 3, max_iter: int = 100,
                 random_state: int = 0, metric: str = "euclidean"):
        self.K = K
        self.D = D
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.metric = metric

    def _validate_params(self) -> None:
        check_int("K", self.K, 2, MAX_K)
        check_int("D", self.D, 1, MAX_D)
        check_int("n_init", self.n_init, 1)
        check_int("max_iter", self.max_iter, 1)
        check_int("random_state", self.random_state, 0)
        check_choice("metric", self.metric, METRICS)

    def _child_centroids(self, X: np.ndarray) -> np.ndarray:
        """Candidate centroids for splitting the rows X of one node (before ordering)."""
        distinct = np.unique(X, axis=0)
        if len(distinct) <= self.K:
            return distinct
        km = KMeans(n_clusters=self.K, n_init=self.n_init, max_iter=self.max_iter,
                    random_state=self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            km.fit(X)
        self.n_iter_ = getattr(self, "n_iter_", 0) + int(km.n_iter_)
        return km.cluster_centers_.astype(np.float32)

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Children of one node: (centroids ordered by size then coordinates, child of each row)."""
        centroids = self._child_centroids(X)
        assign = nearest_centroid(X, centroids)
        sizes = np.bincount(assign, minlength=len(centroids))
        used = np.flatnonzero(sizes > 0)
        # np.lexsort sorts by its last key first: size descending, then coordinates.
        keys = [centroids[used, j] for j in range(centroids.shape[1] - 1, -1, -1)] + [-sizes[used]]
        order = used[np.lexsort(keys)]
        centroids = centroids[order]
        return centroids, nearest_centroid(X, centroids)

    def fit(self, X, y=None, progress: ProgressCallback | None = None) -> "HierarchicalKMeans":
        self._validate_params()
        X = self._validate_fit_X(X)
        n, d = X.shape
        self.n_features_in_ = d
        self.n_iter_ = 0          # k-means iterations summed over every split of the tree
        centroids = [X.astype(np.float64).mean(axis=0).astype(np.float32)]
        children = [np.full(self.K, -1, dtype=np.int64)]
        depth = [0]
        codes = np.zeros((n, self.D), dtype=np.int64)
        frontier = [(0, np.arange(n))]          # (node, rows) at the current depth
        # A row's reconstruction at the current depth: the centroid of its node (its own row once
        # it sits alone in a leaf). Its mean squared error is the per-level "loss".
        X_hat = np.repeat(centroids[0][None, :], n, axis=0)

        def grow_level(epoch: int) -> dict:
            nonlocal frontier
            level = epoch - 1
            next_frontier = []
            for node, rows in frontier:
                if len(rows) < 2 or np.all(X[rows] == X[rows[0]]):
                    continue                    # a leaf: one distinct row
                child_centroids, assign = self._split(X[rows])
                codes[rows, level] = assign
                for digit, centroid in enumerate(child_centroids):
                    child = len(centroids)
                    centroids.append(centroid)
                    children.append(np.full(self.K, -1, dtype=np.int64))
                    depth.append(level + 1)
                    children[node][digit] = child
                    next_frontier.append((child, rows[assign == digit]))
                    X_hat[rows[assign == digit]] = centroid
            frontier = next_frontier
            mse = float(((X_hat.astype(np.float64) - X) ** 2).sum(axis=1).mean())
            return {"loss": mse, "level": level + 1, "n_nodes": len(frontier)}

        self._run_epochs(self.D, grow_level, progress)       # one record per tree level
        self.centroids_ = np.asarray(centroids, dtype=np.float32).reshape(-1, d)
        self.children_ = np.stack(children)
        self.depth_ = np.asarray(depth, dtype=np.int64)
        self.codes_ = codes
        return self

    def transform(self, X) -> np.ndarray:
        X = check_features(self, X)
        codes = np.zeros((len(X), self.D), dtype=np.int64)
        node = np.zeros(len(X), dtype=np.int64)
        has_children = (self.children_ >= 0).any(axis=1)
        for level in range(self.D):
            rows = np.flatnonzero(has_children[node])   # rows at a leaf keep digit 0 from here on
            if len(rows) == 0:
                break
            rows = rows[np.argsort(node[rows], kind="stable")]
            groups, starts = np.unique(node[rows], return_index=True)
            for current, group in zip(groups, np.split(rows, starts[1:])):
                kids = self.children_[current]
                kids = kids[kids >= 0]
                digit = nearest_centroid(X[group], self.centroids_[kids])
                codes[group, level] = digit
                node[group] = kids[digit]
        return codes

    def deepest_nodes(self, codes) -> np.ndarray:
        """Node reached by following each code's digits for as long as the tree has that child."""
        check_is_fitted(self, "children_")
        codes = self._check_codes(codes)
        node = np.zeros(len(codes), dtype=np.int64)
        descending = np.ones(len(codes), dtype=bool)
        for level in range(self.D):
            child = self.children_[node, codes[:, level]]
            # Once a digit leaves the tree the deeper digits name no node: stop at the last one.
            descending &= child >= 0
            node = np.where(descending, child, node)
        return node

    def inverse_transform(self, codes) -> np.ndarray:
        return self.centroids_[self.deepest_nodes(codes)].astype(np.float32)

    def _get_state(self) -> dict:
        return {"centroids": self.centroids_, "children": self.children_, "depth": self.depth_}

    def _set_state(self, state: dict, n_features: int) -> None:
        self._validate_params()
        self.centroids_ = np.asarray(state["centroids"], dtype=np.float32).reshape(-1, n_features)
        self.children_ = np.asarray(state["children"], dtype=np.int64)
        self.depth_ = np.asarray(state["depth"], dtype=np.int64)
