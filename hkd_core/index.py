"""A prefix index over codes: nearest-neighbour search that probes the most promising branches of
the code tree first and re-ranks the rows of the probed branches exactly.

Codes are (n, D) small integers from any coder (HKD, hkm, rq, hkd-cuttree ...). Rows sorted
lexicographically by code make every prefix a contiguous range (``CodeTree``), so the code tree
is a nested partition of the rows: depth 1 splits them by the first digit, depth 2 by the first
two, and so on. The index cuts that tree into *leaves*: a branch stops being split once it holds at
most ``leaf_size`` rows (or the codes run out of digits). The leaves are the index's inverted
lists, exactly like the lists of faiss ``IndexIVFFlat`` - but their boundaries come from the codes,
and there can be many more of them than IVF's ~sqrt(n) lists, because routing a query to its best
leaves goes through the tree instead of comparing it with every list centre.

Search, per query:

1. **Route** (multi-probe). Every branch is summarised by the centroid (mean) of its member
   embeddings. ``routing="flat"`` scores every leaf by the query's distance to its centroid (one
   matrix product, exact best-first order); ``routing="tree"`` first ranks the branches of a
   coarser cut of the same code tree (about sqrt(n_leaves) of them), keeps the ``beam`` best
   (at least n_probe), and ranks only the leaves inside them, so its cost grows with
   sqrt(n_leaves) + beam * leaves per branch instead of with the number of leaves (both steps are
   faiss inverted-list scans: the router's lists hold leaf centroids). ``"auto"`` is flat up to
   ``FLAT_ROUTING_MAX_LEAVES`` leaves and tree above.
2. **Scan** the ``n_probe`` best leaves, best first, stopping early once ``max_candidates`` rows
   were scanned, and re-rank their rows by their exact distance to the query (faiss's inverted-list
   scanner does this loop: the partition and the routing are ours, the inner loop is the library's).

``last_fraction_scanned_`` is the mean fraction of the database whose exact distance was computed
per query, counted by faiss itself, so it is measured exactly as for faiss IVF.

Distances: ``metric="euclidean"`` (returned as distances, not squares) and ``metric="poincare"``
(the Poincare ball). For a fixed query x the Poincare distance is increasing in
f(x, y) = |x - y|^2 / (1 - |y|^2) = -<u(x), v(y)> with u(x) = [|x|^2, 1, x] and
v(y) = [-1/(1-|y|^2), -|y|^2/(1-|y|^2), 2 y/(1-|y|^2)], so the same inverted lists scan it as a
maximum inner product; the returned distances are recomputed in float64 from the embeddings.

Saved indexes are one ``.npz`` file (embeddings, codes and a JSON header of the parameters, loaded
with ``allow_pickle=False``); the tree is rebuilt from the codes on load, so nothing is executed.
"""
from __future__ import annotations

import json

import numpy as np

FORMAT = "hkd-prefix-index"
FORMAT_VERSION = 1
FLAT_ROUTING_MAX_LEAVES = 4096
METRICS = ("euclidean", "poincare")
ROUTINGS = ("auto", "flat", "tree")


def check_codes(codes) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be a 2-d (n, D) integer array, got shape {codes.shape}")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
    if codes.size and codes.min() < 0:
        raise ValueError("codes must be non-negative")
    return codes.astype(np.int64, copy=False)


def _check_int(name, value, low, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return int(value)


class CodeTree:
    """Rows sorted lexicographically by code: all rows with a given prefix are one contiguous
    range of ``order``, found digit by digit with binary search (O(len(prefix) log n)).

    This is the one prefix structure of the library: the sunburst and the app's branch lookups
    use it directly, the search index (``PrefixIndex``) builds its leaves on it."""

    def __init__(self, codes):
        self.codes = check_codes(codes)
        self.order = (np.lexsort(self.codes[:, ::-1].T) if len(self.codes) and self.codes.shape[1]
                      else np.arange(len(self.codes), dtype=np.int64))
        self.sorted_codes = self.codes[self.order]

    def _range(self, prefix) -> tuple[int, int]:
        prefix = [int(p) for p in prefix]
        if len(prefix) > self.codes.shape[1]:
            raise ValueError(f"prefix has {len(prefix)} digits but codes have D={self.codes.shape[1]}")
        lo, hi = 0, len(self.sorted_codes)
        for d, v in enumerate(prefix):
            col = self.sorted_codes[lo:hi, d]
            lo, hi = lo + int(np.searchsorted(col, v, "left")), lo + int(np.searchsorted(col, v, "right"))
            if lo >= hi:
                break
        return lo, hi

    def count(self, prefix) -> int:
        lo, hi = self._range(prefix)
        return max(0, hi - lo)

    def members(self, prefix) -> np.ndarray:
        """Row indices (ascending) whose code starts with ``prefix``."""
        lo, hi = self._range(prefix)
        return np.sort(self.order[lo:hi]) if hi > lo else np.zeros(0, dtype=np.int64)

    def candidates(self, row: int, N: int) -> np.ndarray:
        """Rows sharing the first N digits with ``row``: the pruned search space of the paper."""
        return self.members(self.codes[row, :N])

    def branches(self, leaf_size: int) -> dict:
        """The tree cut into leaves of at most ``leaf_size`` rows (fewer digits cannot split a
        group of identical codes: such a leaf may be larger). Nodes are numbered level by level in
        code order, so the children of a node are a contiguous block of node ids.

        Returns arrays over nodes: start, stop (range into ``order``), level, parent, leaf (leaf
        number or -1), child_begin, child_end; and leaf_nodes (node id of each leaf, in code
        order: their ranges partition the rows)."""
        leaf_size = _check_int("leaf_size", leaf_size, 1)
        n, D = self.sorted_codes.shape
        starts, stops = [np.array([0])], [np.array([n])]
        levels, parents = [np.array([0])], [np.array([-1])]
        leaf_flags = [np.array([n <= leaf_size or D == 0])]
        new_prefix = np.zeros(max(n - 1, 0), dtype=bool)   # row i + 1 starts a new prefix
        open_ids = np.flatnonzero(~leaf_flags[0])          # internal nodes of the last level
        n_nodes = 1
        for d in range(D):
            if not len(open_ids):
                break
            new_prefix |= self.sorted_codes[1:, d] != self.sorted_codes[:-1, d]
            cuts = np.concatenate([[0], np.flatnonzero(new_prefix) + 1])
            cut_stops = np.concatenate([cuts[1:], [n]])
            all_starts, all_stops = np.concatenate(starts), np.concatenate(stops)
            p_start, p_stop = all_starts[open_ids], all_stops[open_ids]   # sorted, disjoint
            owner = np.searchsorted(p_start, cuts, side="right") - 1
            inside = (owner >= 0) & (cuts < p_stop[np.maximum(owner, 0)])
            c_start, c_stop = cuts[inside], cut_stops[inside]
            c_leaf = (c_stop - c_start <= leaf_size) | (d + 1 == D)
            starts.append(c_start)
            stops.append(c_stop)
            levels.append(np.full(len(c_start), d + 1))
            parents.append(open_ids[owner[inside]])
            leaf_flags.append(c_leaf)
            open_ids = n_nodes + np.flatnonzero(~c_leaf)
            n_nodes += len(c_start)
        starts = np.concatenate(starts).astype(np.int64)
        stops = np.concatenate(stops).astype(np.int64)
        levels = np.concatenate(levels).astype(np.int64)
        parents = np.concatenate(parents).astype(np.int64)
        is_leaf = np.concatenate(leaf_flags).astype(bool)
        n_nodes = len(starts)
        child_begin = np.full(n_nodes, 0, np.int64)
        child_end = np.full(n_nodes, 0, np.int64)
        has_parent = np.flatnonzero(parents >= 0)
        # children of a parent are consecutive ids (appended together): first and last + 1
        np.maximum.at(child_end, parents[has_parent], has_parent + 1)
        child_begin[:] = child_end
        np.minimum.at(child_begin, parents[has_parent], has_parent)
        leaf_nodes = np.flatnonzero(is_leaf)
        leaf_nodes = leaf_nodes[np.argsort(starts[leaf_nodes], kind="stable")]
        leaf = np.full(n_nodes, -1, np.int64)
        leaf[leaf_nodes] = np.arange(len(leaf_nodes))
        return {"start": starts, "stop": stops, "level": levels, "parent": parents, "leaf": leaf,
                "child_begin": child_begin, "child_end": child_end, "leaf_nodes": leaf_nodes}


class PrefixIndex:
    """Nearest-neighbour index over codes (see the module docstring).

    >>> index = PrefixIndex(leaf_size=32, n_probe=8).fit(X, codes)
    >>> dist, idx = index.search(Q, k=10)            # (nq, k) each, nearest first
    >>> index.last_fraction_scanned_                 # mean share of rows re-ranked per query
    >>> index.save("mammals.npz"); PrefixIndex.load("mammals.npz")

    Parameters
    ----------
    leaf_size : rows at which a branch stops being split (None: 2 sqrt(n), at least 8; the K-way
        splits make the mean leaf several times smaller).
    n_probe : leaves scanned per query, best first (default; ``search`` may override it).
    max_candidates : stop scanning once this many rows were re-ranked (None: no cap).
    routing : "flat" (score every leaf), "tree" (coarse branches first), "auto" (flat up to
        FLAT_ROUTING_MAX_LEAVES leaves).
    beam : coarse branches kept by tree routing (at least n_probe are kept).
    metric : "euclidean" or "poincare".
    """

    def __init__(self, leaf_size: int | None = None, n_probe: int = 8,
                 max_candidates: int | None = None, routing: str = "auto", beam: int = 32,
                 metric: str = "euclidean"):
        self.leaf_size = leaf_size
        self.n_probe = n_probe
        self.max_candidates = max_candidates
        self.routing = routing
        self.beam = beam
        self.metric = metric

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("leaf_size", "n_probe", "max_candidates", "routing",
                                              "beam", "metric")}

    # ----------------------------------------------------------------- fit
    def fit(self, X, codes) -> "PrefixIndex":
        import faiss

        _check_int("leaf_size", self.leaf_size, 1, allow_none=True)
        _check_int("n_probe", self.n_probe, 1)
        _check_int("max_candidates", self.max_candidates, 1, allow_none=True)
        _check_int("beam", self.beam, 1)
        if self.routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {ROUTINGS}, got {self.routing!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"X must be a non-empty 2-d (n, d) array, got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X must be finite")
        codes = check_codes(codes)
        if len(codes) != len(X):
            raise ValueError(f"codes has {len(codes)} rows for {len(X)} rows of X")
        if self.metric == "poincare" and np.einsum("ij,ij->i", X, X).max() >= 1:
            raise ValueError("metric='poincare' needs every row inside the unit ball (|x| < 1)")
        n = len(X)
        self.X_ = np.ascontiguousarray(X)
        self.codes_ = codes
        self.leaf_size_ = (self.leaf_size if self.leaf_size is not None
                           else max(8, int(round(2 * np.sqrt(n)))))
        self.tree_ = CodeTree(codes)
        b = self.tree_.branches(self.leaf_size_)
        self.branches_ = b
        order = self.tree_.order
        V = self._database_vectors(self.X_)[order]          # rows in code order
        # centroid of every node: mean of its members (in the scanned space, so that routing and
        # scanning rank by the same distance)
        csum = np.concatenate([np.zeros((1, V.shape[1])), np.cumsum(V, axis=0, dtype=np.float64)])
        sums = csum[b["stop"]] - csum[b["start"]]
        self.centroids_ = (sums / (b["stop"] - b["start"])[:, None]).astype(np.float32)
        self.centroid_sqnorms_ = np.einsum("ij,ij->i", self.centroids_, self.centroids_)
        leaf_nodes = b["leaf_nodes"]
        self.n_leaves_ = len(leaf_nodes)
        self.leaf_sizes_ = b["stop"][leaf_nodes] - b["start"][leaf_nodes]
        self.routing_ = (self.routing if self.routing != "auto" else
                         ("flat" if self.n_leaves_ <= FLAT_ROUTING_MAX_LEAVES else "tree"))
        # the leaves are the inverted lists; the flat quantizer holds the leaf centroids
        dim = V.shape[1]
        faiss_metric = faiss.METRIC_L2 if self.metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        quantizer = (faiss.IndexFlatL2(dim) if self.metric == "euclidean" else faiss.IndexFlatIP(dim))
        quantizer.add(self.centroids_[leaf_nodes])
        ivf = faiss.IndexIVFFlat(quantizer, dim, self.n_leaves_, faiss_metric)
        ivf.is_trained = True
        leaf_of_sorted_row = np.repeat(np.arange(self.n_leaves_), self.leaf_sizes_).astype(np.int64)
        ivf.add_core(n, faiss.swig_ptr(np.ascontiguousarray(V, dtype=np.float32)),
                     faiss.swig_ptr(np.ascontiguousarray(order, dtype=np.int64)),
                     faiss.swig_ptr(leaf_of_sorted_row))
        self._quantizer = quantizer     # the IVF index does not own it: keep it alive
        self.ivf_ = ivf
        self._fit_router(V, faiss_metric)
        self.last_fraction_scanned_ = None
        self.last_routing_distances_ = None
        return self

    def _fit_router(self, V, faiss_metric):
        """Coarse branches for tree routing: the code tree cut at about sqrt(n_leaves) branches
        (a coarser cut of the same tree, so every leaf lies inside one coarse branch)."""
        import faiss

        n = len(V)
        coarse_size = max(self.leaf_size_ + 1, int(np.ceil(n / max(1.0, np.sqrt(self.n_leaves_)))))
        coarse = self.tree_.branches(coarse_size)
        c_nodes = coarse["leaf_nodes"]
        c_start, c_stop = coarse["start"][c_nodes], coarse["stop"][c_nodes]
        csum = np.concatenate([np.zeros((1, V.shape[1])), np.cumsum(V, axis=0, dtype=np.float64)])
        c_centroids = ((csum[c_stop] - csum[c_start]) / (c_stop - c_start)[:, None]).astype(np.float32)
        leaf_start = self.branches_["start"][self.branches_["leaf_nodes"]]
        owner = (np.searchsorted(c_start, leaf_start, side="right") - 1).astype(np.int64)
        dim = V.shape[1]
        quantizer = faiss.IndexFlatL2(dim) if self.metric == "euclidean" else faiss.IndexFlatIP(dim)
        quantizer.add(c_centroids)
        router = faiss.IndexIVFFlat(quantizer, dim, len(c_nodes), faiss_metric)
        router.is_trained = True
        leaf_centroids = np.ascontiguousarray(self.centroids_[self.branches_["leaf_nodes"]])
        router.add_core(self.n_leaves_, faiss.swig_ptr(leaf_centroids),
                        faiss.swig_ptr(np.arange(self.n_leaves_, dtype=np.int64)), faiss.swig_ptr(owner))
        self._router_quantizer, self.router_, self.n_coarse_ = quantizer, router, len(c_nodes)

    def _database_vectors(self, X):
        if self.metric == "euclidean":
            return np.ascontiguousarray(X, dtype=np.float32)
        X = X.astype(np.float64)
        sq = np.einsum("ij,ij->i", X, X)
        a = 1.0 / (1.0 - sq)
        return np.ascontiguousarray(np.column_stack([-a, -sq * a, 2.0 * a[:, None] * X]), dtype=np.float32)

    def _query_vectors(self, Q):
        if self.metric == "euclidean":
            return np.ascontiguousarray(Q, dtype=np.float32)
        Q = Q.astype(np.float64)
        sq = np.einsum("ij,ij->i", Q, Q)
        return np.ascontiguousarray(np.column_stack([sq, np.ones(len(Q)), Q]), dtype=np.float32)

    # ----------------------------------------------------------------- search
    def _check_fitted(self):
        if not hasattr(self, "ivf_"):
            raise RuntimeError("this PrefixIndex is not fitted yet: call fit(X, codes) or load(path)")

    def route(self, Q, n_probe: int | None = None):
        """The ``n_probe`` best leaves of each query, best first: (leaf ids (nq, n_probe) with -1
        where fewer leaves were reached, their routing scores: squared distance to the leaf
        centroid, or minus the inner product for poincare). Sets last_routing_distances_ (mean
        number of centroids compared per query)."""
        self._check_fitted()
        Qv = self._query_vectors(self._check_queries(Q))
        n_probe = min(_check_int("n_probe", self.n_probe if n_probe is None else n_probe, 1),
                      self.n_leaves_)
        return self._route(Qv, n_probe)

    def _route(self, Qv, n_probe):
        import faiss

        if self.routing_ == "flat":
            scores, leaves = self._quantizer.search(Qv, n_probe)
            self.last_routing_distances_ = float(self.n_leaves_)
            return leaves.astype(np.int64), scores
        # tree: the best `beam` coarse branches by their centroid, then the best leaves inside
        # them by theirs (the router's inverted lists hold leaf centroids)
        beam = min(max(self.beam, n_probe), self.n_coarse_)
        faiss.cvar.indexIVF_stats.reset()
        scores, leaves = self.router_.search(Qv, n_probe, params=faiss.SearchParametersIVF(nprobe=beam))
        self.last_routing_distances_ = (self.n_coarse_ + faiss.cvar.indexIVF_stats.ndis
                                        / max(1, len(Qv)))
        return leaves.astype(np.int64), scores

    def _check_queries(self, Q):
        Q = np.asarray(Q, dtype=np.float32)
        if Q.ndim == 1:
            Q = Q[None, :]
        if Q.ndim != 2 or Q.shape[1] != self.X_.shape[1]:
            raise ValueError(f"queries must be (nq, {self.X_.shape[1]}), got shape {Q.shape}")
        if self.metric == "poincare" and len(Q) and np.einsum("ij,ij->i", Q, Q).max() >= 1:
            raise ValueError("metric='poincare' needs every query inside the unit ball (|q| < 1)")
        return Q

    def search(self, Q, k: int = 10, n_probe: int | None = None,
               max_candidates: int | None = None):
        """The k nearest rows of each query among the probed leaves, nearest first.

        Returns (dist, idx), both (nq, k): distances in the index's metric and row indices into
        the fitted X (-1 and inf where fewer than k rows were scanned). ``n_probe`` and
        ``max_candidates`` override the index's own for this call. Sets last_fraction_scanned_
        (mean rows re-ranked per query / n) and last_routing_distances_."""
        import faiss

        self._check_fitted()
        Q = self._check_queries(Q)
        k = _check_int("k", k, 1)
        n_probe = min(_check_int("n_probe", self.n_probe if n_probe is None else n_probe, 1),
                      self.n_leaves_)
        max_candidates = _check_int("max_candidates", self.max_candidates if max_candidates is None
                                    else max_candidates, 1, allow_none=True)
        n = len(self.X_)
        # poincare: the float32 inner products order the candidates; a few extra are re-ranked in
        # float64 so that rounding cannot drop a true k-th neighbour
        k_scan = min(n, k if self.metric == "euclidean" else k + max(8, k))
        Qv = self._query_vectors(Q)
        params = faiss.SearchParametersIVF(nprobe=n_probe, max_codes=max_candidates or 0)
        faiss.cvar.indexIVF_stats.reset()
        if len(Q) == 0:
            D, I = np.zeros((0, k_scan), np.float32), np.zeros((0, k_scan), np.int64)
        elif self.routing_ == "flat":
            D, I = self.ivf_.search(Qv, k_scan, params=params)
            self.last_routing_distances_ = float(self.n_leaves_)
        else:
            leaves, scores = self._route(Qv, n_probe)
            faiss.cvar.indexIVF_stats.reset()
            # search_preassigned takes no per-call parameters: set them on the index
            self.ivf_.nprobe, self.ivf_.max_codes = n_probe, max_candidates or 0
            D, I = self.ivf_.search_preassigned(Qv, k_scan, leaves, scores)
        self.last_fraction_scanned_ = float(faiss.cvar.indexIVF_stats.ndis) / max(1, len(Q) * n)
        return self._finish(Q, D, I, k)

    def _finish(self, Q, D, I, k):
        I = I.astype(np.int64)
        if self.metric == "euclidean":
            dist = np.sqrt(np.maximum(D, 0)).astype(np.float64)
        else:
            dist = self._poincare(Q, I)
            order = np.argsort(dist, axis=1, kind="stable")
            dist = np.take_along_axis(dist, order, 1)
            I = np.take_along_axis(I, order, 1)
        dist = np.where(I >= 0, dist, np.inf)[:, :k]
        I = I[:, :k]
        if I.shape[1] < k:       # k > n: pad
            pad = k - I.shape[1]
            I = np.pad(I, ((0, 0), (0, pad)), constant_values=-1)
            dist = np.pad(dist, ((0, 0), (0, pad)), constant_values=np.inf)
        return dist, I

    def _poincare(self, Q, I):
        Y = self.X_[np.maximum(I, 0)].astype(np.float64)
        Qd = Q.astype(np.float64)
        sq_diff = ((Y - Qd[:, None, :]) ** 2).sum(-1)
        denom = (1 - (Qd ** 2).sum(-1))[:, None] * (1 - (Y ** 2).sum(-1))
        dist = np.arccosh(1 + 2 * sq_diff / np.maximum(denom, 1e-15))
        return np.where(I >= 0, dist, np.inf)

    def brute_force(self, Q, k: int = 10):
        """Exact k nearest rows by scanning every row (the anchor the index is measured against)."""
        self._check_fitted()
        return self._exact(self._check_queries(Q), _check_int("k", k, 1))

    def _exact(self, Q, k):
        import faiss

        n = len(self.X_)
        flat = faiss.IndexFlatL2(self.ivf_.d) if self.metric == "euclidean" else faiss.IndexFlatIP(self.ivf_.d)
        flat.add(self._database_vectors(self.X_))
        k_scan = min(n, k if self.metric == "euclidean" else k + max(8, k))
        D, I = flat.search(self._query_vectors(Q), k_scan)
        return self._finish(Q, D, I, k)

    # ----------------------------------------------------------------- members (code prefixes)
    def members(self, prefix) -> np.ndarray:
        self._check_fitted()
        return self.tree_.members(prefix)

    # ----------------------------------------------------------------- save / load
    def save(self, path: str, names=None) -> str:
        """Write the index to one ``.npz`` (embeddings, codes, optional row names and a JSON
        header); returns the path written."""
        self._check_fitted()
        header = {"format": FORMAT, "version": FORMAT_VERSION, "params": self.get_params(),
                  "leaf_size_": int(self.leaf_size_), "n": int(len(self.X_)),
                  "d": int(self.X_.shape[1]), "D": int(self.codes_.shape[1])}
        arrays = {"X": self.X_, "codes": self.codes_,
                  "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        if names is not None:
            if len(names) != len(self.X_):
                raise ValueError(f"names has {len(names)} entries for {len(self.X_)} rows")
            arrays["names"] = np.asarray([str(s) for s in names], dtype=str)
        if not str(path).endswith(".npz"):
            path = str(path) + ".npz"
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
        return str(path)

    @classmethod
    def load(cls, path: str) -> "PrefixIndex":
        """An index written by ``save``; its row names (if saved) in ``names_``."""
        with np.load(path, allow_pickle=False) as npz:
            if "header" not in npz.files:
                raise ValueError(f"{path!r} is not a saved PrefixIndex (no header)")
            header = json.loads(bytes(npz["header"]).decode())
            if header.get("format") != FORMAT:
                raise ValueError(f"{path!r} is not a saved PrefixIndex (format {header.get('format')!r})")
            if header.get("version") != FORMAT_VERSION:
                raise ValueError(f"{path!r} has index format version {header.get('version')}, "
                                 f"this library reads version {FORMAT_VERSION}")
            X, codes = npz["X"], npz["codes"]
            names = npz["names"].tolist() if "names" in npz.files else None
        index = cls(**header["params"]).fit(X, codes)
        index.names_ = names
        return index


# --------------------------------------------------------------------- the CLI's search command
def index_for_run(run_dir: str, metric: str | None = None, **index_params):
    """A PrefixIndex over every row of a run's dataset, coded by the run's saved model (or over
    the run's evaluated rows when the dataset cannot be reloaded); returns (index, names).
    ``metric`` defaults to the run's neighbour metric."""
    from hkd_core.runs import encode_all_rows, read_run

    run = read_run(run_dir)
    metric = metric or run["metrics"].get("metric", "euclidean")
    everything = encode_all_rows(run_dir)
    names, X, codes = everything if everything is not None else (run["names"], run["embeddings"],
                                                                 run["codes"])
    return PrefixIndex(metric=metric, **index_params).fit(X, codes), list(names)


def read_query_file(path: str) -> np.ndarray:
    """Query vectors from ``.npy`` (no pickle) or a text file of one comma/space/tab-separated
    vector per line."""
    if str(path).endswith(".npy"):
        Q = np.load(path, allow_pickle=False)
    else:
        with open(path, encoding="utf-8") as fh:
            rows = [line.replace(",", " ").split() for line in fh if line.strip()]
        try:
            Q = np.asarray([[float(v) for v in row] for row in rows])
        except ValueError as exc:
            raise ValueError(f"{path}: every line must hold numbers only ({exc})") from None
    return np.atleast_2d(np.asarray(Q, dtype=np.float32))


def resolve_queries(index: PrefixIndex, names, entities=(), rows=(), query_file=None):
    """(vectors, labels, database row of each query or -1) for queries given by entity name,
    row id (into the index's rows) or a file of vectors."""
    names = list(names) if names is not None else [str(i) for i in range(len(index.X_))]
    position = {name: i for i, name in enumerate(names)}
    picked = []
    for entity in entities:
        if entity not in position:
            close = [n for n in names if entity.split(".")[0] in n][:5]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"{entity!r} is not a row of the index{hint}")
        picked.append(position[entity])
    for row in rows:
        if not 0 <= int(row) < len(index.X_):
            raise ValueError(f"row {row} is out of range: the index holds rows 0..{len(index.X_) - 1}")
        picked.append(int(row))
    vectors = [index.X_[picked]] if picked else []
    labels = [f"{names[r]} (row {r})" for r in picked]
    own = list(picked)
    if query_file is not None:
        Q = read_query_file(query_file)
        vectors.append(Q)
        labels += [f"{query_file} line {i + 1}" for i in range(len(Q))]
        own += [-1] * len(Q)
    if not labels:
        raise ValueError("no query: give entity names, --rows or --query-file")
    return np.concatenate(vectors).astype(np.float32), labels, np.asarray(own, dtype=np.int64)


def search_report(index: PrefixIndex, names, Q, labels, own_rows, k: int = 10,
                  n_probe: int | None = None, max_candidates: int | None = None) -> str:
    """The k nearest rows of each query (a query row itself left out) as text tables."""
    names = list(names) if names is not None else [str(i) for i in range(len(index.X_))]
    dist, idx = index.search(Q, k + 1, n_probe=n_probe, max_candidates=max_candidates)
    scanned = index.last_fraction_scanned_
    lines = []
    for q, label in enumerate(labels):
        keep = [(j, d) for j, d in zip(idx[q], dist[q]) if j >= 0 and j != own_rows[q]][:k]
        lines.append(f"query {label}")
        width = max([len(names[j]) for j, _ in keep] + [6]) + 2
        lines.append(f"  {'rank':>4}  {'entity':<{width}}{'row':>8}  {index.metric + ' dist':>16}")
        for rank, (j, d) in enumerate(keep, 1):
            lines.append(f"  {rank:>4}  {names[j]:<{width}}{j:>8}  {d:>16.4f}")
    lines.append(f"({len(labels)} quer{'y' if len(labels) == 1 else 'ies'}: {100 * scanned:.2f} % of "
                 f"{len(index.X_)} rows scanned per query, {index.n_leaves_} leaves of at most "
                 f"{index.leaf_size_} rows, {index.routing_} routing)")
    return "\n".join(lines)
