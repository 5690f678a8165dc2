"""2-d maps of embeddings for the explorer: t-SNE (openTSNE), UMAP, PCA and the raw 2-d view.

    xy = project(X, method="tsne", metric="poincare", seed=0)      # (n, 2) float32

t-SNE runs on the dataset's own metric: the k nearest neighbours come from the neighbour engine
(hkd_core.neighbours: exact up to its size threshold, Poincare distance for Poincare data) and are
handed to openTSNE as precomputed neighbours, so the map shows hyperbolic neighbourhoods rather
than Euclidean ones of the ball coordinates.
UMAP is imported lazily: its first fit in a process spends ~1 min compiling (numba), so it must
never be on the app's start-up path.
"""
from __future__ import annotations

import numpy as np

from hkd_core.neighbours import kneighbors

PROJECTION_METHODS = ("tsne", "umap", "pca", "disk")
# part of every stored map's key: bumped when a method's algorithm changes, so maps cached by an
# older version are computed again. 2: t-SNE's repulsion by openTSNE's "auto" choice (Barnes-Hut
# below 10,000 points, FFT interpolation above), 3x faster than FFT on the 1,182 mammals
PROJECTION_VERSION = 2
PROJECTION_LABELS = {
    "tsne": "t-SNE (openTSNE)",
    "umap": "UMAP (slow first run)",
    "pca": "PCA",
    "disk": "raw 2-d coordinates",
}


def _check(X, method, metric, perplexity):
    from hkd_core.models.base import check_X

    X = check_X(X, "X")
    if method not in PROJECTION_METHODS:
        raise ValueError(f"method must be one of {PROJECTION_METHODS}, got {method!r}")
    if metric not in ("euclidean", "poincare"):
        raise ValueError(f"metric must be 'euclidean' or 'poincare', got {metric!r}")
    if not (isinstance(perplexity, (int, float)) and 1 <= perplexity <= 500):
        raise ValueError(f"perplexity must be a number in [1, 500], got {perplexity!r}")
    if method == "disk" and X.shape[1] != 2:
        raise ValueError(f"method 'disk' shows raw coordinates and needs 2-d data, got {X.shape[1]} columns")
    return X


def available_methods(n_features: int) -> tuple[str, ...]:
    """The methods that make sense for data with ``n_features`` columns."""
    return PROJECTION_METHODS if n_features == 2 else tuple(m for m in PROJECTION_METHODS if m != "disk")


def default_method(n_features: int) -> str:
    """Raw coordinates for 2-d data (what the user's data *is*), t-SNE otherwise."""
    return "disk" if n_features == 2 else "tsne"


def _tsne(X, metric, seed, perplexity):
    import openTSNE
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    n = len(X)
    # openTSNE needs 3 * perplexity neighbours; tiny data sets get a smaller perplexity.
    perplexity = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    k = int(min(n - 1, 3 * perplexity))
    tsne = openTSNE.TSNE(n_components=2, random_state=seed, n_jobs=2, verbose=False,
                         negative_gradient_method="auto")
    nb = kneighbors(X, k, metric)        # the engine: exact (faiss) up to its size threshold
    aff = PerplexityBasedNN(knn_index=PrecomputedNeighbors(nb.indices, nb.distances),
                            perplexity=perplexity, random_state=seed, n_jobs=2)
    if n > 5000:
        # spectral initialisation gets slow on large graphs; openTSNE's PCA start is what its
        # own neighbour search used at this size
        from openTSNE.initialization import pca

        init = pca(X.astype(np.float64), random_state=seed)
    else:
        init = "spectral" if n > 3 else "random"
    emb = tsne.fit(affinities=aff, initialization=init)
    return np.asarray(emb, dtype=np.float32)


def _umap(X, metric, seed):
    import umap  # lazy: importing and the first fit JIT-compile for a long time

    if metric == "poincare":
        nb = kneighbors(X, min(15, len(X) - 1), metric)
        nbrs, dists = nb.indices, nb.distances
        # UMAP accepts a precomputed kNN graph; the data are then only used for initialisation.
        reducer = umap.UMAP(n_components=2, random_state=seed, precomputed_knn=(nbrs, dists, None),
                            n_neighbors=nbrs.shape[1])
    else:
        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(X) - 1))
    return reducer.fit_transform(X).astype(np.float32)


def _pca(X):
    Xc = X.astype(np.float64) - X.mean(0)
    # Deterministic signs: make the largest-magnitude loading of each component positive.
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    vt = vt[:2]
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])
    out = Xc @ (vt * signs[:, None]).T
    if out.shape[1] < 2:
        out = np.column_stack([out, np.zeros(len(out))])
    return out.astype(np.float32)


def project(X, method: str = "tsne", metric: str = "euclidean", seed: int = 0,
            perplexity: float = 30.0) -> np.ndarray:
    """2-d coordinates (n, 2) of the rows of X.

    method      "tsne" (openTSNE on the dataset metric), "umap", "pca" or "disk" (raw 2-d data).
    metric      "euclidean" or "poincare": the geometry of X, used for neighbourhoods.
    perplexity  t-SNE perplexity (lowered automatically for tiny data).
    """
    X = _check(X, method, metric, perplexity)
    if method == "disk":
        return X.astype(np.float32).copy()
    if method == "pca":
        return _pca(X)
    if method == "umap":
        return _umap(X, metric, seed)
    return _tsne(X, metric, seed, perplexity)
