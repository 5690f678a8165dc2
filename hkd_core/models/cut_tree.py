"""HKD cut tree: hierarchical codes whose every digit is a normalised cut of HKD's affinity graph.

    HKDCutTree().fit(X_train).codes_       # (n, D) ints in [0, K); transform(X_new) for new rows

HKD (Liang et al., IJCAI 2019) trains an autoencoder so that the code distances, weighted by the
decaying digit weights w_d, reproduce the input-space neighbourhoods p_{j|i} of eq. 8. The KNN share
of a first-N prefix is exactly the neighbour mass that stays inside the prefix groups, so this coder
optimises that quantity directly, digit by digit, coarse to fine (the strongest decay limit of
eq. 11: digit d is fixed before digit d + 1 is looked at):

1. the affinities: each training row's ``3 * perplexity`` nearest rows, p_{j|i} calibrated to the
   perplexity by eq. 8 (``exemplars.calibrate_affinities``, Poincare or squared Euclidean
   distances), symmetrised W = (P + P^T) / 2;
2. digit d: every node of depth d - 1 is split into ``branching`` children by a normalised cut of W
   restricted to the node - spectral relaxation (leading eigenvectors of D^-1/2 W D^-1/2, a
   threshold sweep for two children, k-means on the normalised spectral rows for more), then
   greedy single-row moves that lower the node's Ncut (``refine``);
3. new rows descend the tree: inside each node a row takes the child that holds most of its
   p_{j|i} mass over its nearest training rows of that node (eq. 8 calibrated on those rows), or
   (``descent="centroid"``) the child with the nearest centroid, as hkm does. A row
   equal to a training row gets that row's stored code, so ``transform(X_train) == codes_``.

``perplexity="auto"`` / ``branching="auto"`` / ``graph_metric="auto"`` / ``split="auto"`` (graph
cut or plain k-means split in step 2, the tree and the descent unchanged) are chosen inside ``fit`` on the training rows only:
each candidate is fitted on 75 % of them and scored on the other 25 % (their codes from
``transform``, their neighbours among themselves) by the area under the share-vs-reduction frontier
(``frontier_auc``); the winner is refitted on all training rows.

Ablations (``split="kmeans"``: always k-means splits; ``split="spectral"``: always graph cuts;
``refine=False``: graph cuts without the Ncut moves) are registered as models of their own.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from hkd_core.metrics import evaluate, frontier_auc
from hkd_core.models.base import (CodeModel, ProgressCallback, check_choice, check_float,
                                  check_int)
from hkd_core.models.exemplars import EQ8_METRICS, calibrate_affinities, input_distances
from hkd_core.models.torch_utils import check_features
from hkd_core.neighbours import kneighbors

METRICS = ("euclidean", "poincare")
SPLITS = ("auto", "spectral", "kmeans")
DESCENTS = ("auto", "vote", "centroid")
AUTO_PERPLEXITIES = (5.0, 10.0)
AUTO_BRANCHINGS = (2, 4)
from hkd_core.models.base import MAX_D, MAX_K  # noqa: E402  (the shared limits)


# -- graph pieces ------------------------------------------------------------------------------

def affinity_graph(X: np.ndarray, perplexity: float, metric: str) -> sparse.csr_matrix:
    """Symmetrised eq. 8 affinities over each row's 3 * perplexity nearest rows."""
    n = len(X)
    k = int(min(n - 1, max(3 * perplexity, perplexity + 2)))
    perp = min(perplexity, k - 1.0)
    nb = kneighbors(X.astype(np.float64), k, EQ8_METRICS[metric])
    idx, dist = nb.indices, nb.distances
    P, _ = calibrate_affinities(dist, max(perp, 1.01))
    rows = np.repeat(np.arange(n), k)
    W = sparse.csr_matrix((P.reshape(-1).astype(np.float64), (rows, idx.reshape(-1))), shape=(n, n))
    W = (W + W.T) * 0.5
    W.setdiag(0.0)
    W.eliminate_zeros()
    return W.tocsr()


def _spectral_rows(W: sparse.csr_matrix, n_vec: int, seed: int) -> np.ndarray:
    """Rows of the n_vec leading non-trivial eigenvectors of the random-walk matrix D^-1 W.
    A small uniform regularisation (tau / n on every pair) keeps disconnected nodes solvable."""
    n = W.shape[0]
    deg = np.asarray(W.sum(1)).ravel()
    tau = max(deg.mean(), 1e-12) * 1e-2
    if n <= 2500:
        A = W.toarray() + tau / n
        d = A.sum(1)
        s = 1.0 / np.sqrt(d)
        M = A * s[:, None] * s[None, :]
        from scipy.linalg import eigh
        lo = max(0, n - n_vec - 1)
        vals, vecs = eigh(M, subset_by_index=[lo, n - 1])
        vecs = vecs[:, ::-1][:, 1:n_vec + 1]
    else:
        from scipy.sparse.linalg import LinearOperator, eigsh
        d = deg + tau
        s = 1.0 / np.sqrt(d)
        S = sparse.diags(s) @ W @ sparse.diags(s)

        def mv(v):
            v = v.reshape(-1)
            return S @ v + s * (tau / n) * (s @ v)

        op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
        v0 = np.random.default_rng(seed).standard_normal(n)
        vals, vecs = eigsh(op, k=n_vec + 1, which="LA", v0=v0, tol=1e-6, maxiter=5000)
        vecs = vecs[:, np.argsort(-vals)][:, 1:n_vec + 1]
    U = vecs * s[:, None]
    # a deterministic sign per vector (largest-magnitude entry positive)
    flip = np.sign(U[np.abs(U).argmax(0), np.arange(U.shape[1])])
    return U * np.where(flip == 0, 1.0, flip)[None, :]


def _ncut(assoc: np.ndarray, vol: np.ndarray) -> float:
    ok = vol > 0
    return float(len(vol) - (assoc[ok] / vol[ok]).sum())


def _sweep_bisection(W: sparse.csr_matrix, u: np.ndarray, min_size: int) -> np.ndarray:
    """Threshold of the Fiedler vector u with the smallest Ncut (both sides >= min_size)."""
    n = len(u)
    order = np.argsort(u, kind="stable")
    Wo = W[order][:, order].tocsr()
    deg = np.asarray(Wo.sum(1)).ravel()
    total = deg.sum()
    # cut(first t rows | rest) for every t: cut_t = vol_t - 2 * assoc_within_first_t / 2 ...
    # assoc_within(first t) = sum_{i,j < t} W_ij = cumulative sum of each row's mass to earlier rows * 2
    lower = sparse.tril(Wo, k=-1).tocsr()
    to_earlier = np.asarray(lower.sum(1)).ravel()
    within = 2.0 * np.cumsum(to_earlier)                 # assoc of the first t+1 rows
    vol = np.cumsum(deg)
    cut = vol - within
    t = np.arange(1, n + 1)
    volB = total - vol
    with np.errstate(divide="ignore", invalid="ignore"):
        ncut = cut / np.maximum(vol, 1e-300) + cut / np.maximum(volB, 1e-300)
    ok = (t >= min_size) & (n - t >= min_size)
    if not ok.any():
        ok = (t >= 1) & (t <= n - 1)
    ncut = np.where(ok, ncut, np.inf)
    best = int(np.argmin(ncut))                          # first t+1 rows on side 0
    labels = np.ones(n, dtype=np.int64)
    labels[order[:best + 1]] = 0
    return labels


def _refine(W: sparse.csr_matrix, labels: np.ndarray, b: int, min_size: int,
            n_passes: int = 5) -> np.ndarray:
    """Greedy single-row moves that lower Ncut = b - sum_g assoc_g / vol_g."""
    labels = labels.copy()
    deg = np.asarray(W.sum(1)).ravel()
    indptr, indices, data = W.indptr, W.indices, W.data
    M = np.zeros((len(labels), b))                        # mass of each row to each part
    onehot = np.eye(b)[labels]
    M = W @ onehot
    assoc = np.array([M[labels == g, g].sum() for g in range(b)])
    vol = np.array([deg[labels == g].sum() for g in range(b)])
    size = np.bincount(labels, minlength=b).astype(np.int64)
    for _ in range(n_passes):
        moved = 0
        gain_rows = M.max(1) - M[np.arange(len(labels)), labels]
        # only rows with more affinity mass in another part can lower the cut enough to matter
        cand = np.flatnonzero(gain_rows > 0)
        for i in cand[np.argsort(-gain_rows[cand], kind="stable")]:
            a = labels[i]
            if size[a] <= min_size:
                continue
            cur = _ncut(assoc, vol)
            best_g, best_val = a, cur
            for g in range(b):
                if g == a:
                    continue
                assoc2, vol2 = assoc.copy(), vol.copy()
                assoc2[a] -= 2.0 * M[i, a]
                vol2[a] -= deg[i]
                assoc2[g] += 2.0 * M[i, g]
                vol2[g] += deg[i]
                val = _ncut(assoc2, vol2)
                if val < best_val - 1e-12:
                    best_g, best_val = g, val
            if best_g != a:
                g = best_g
                assoc[a] -= 2.0 * M[i, a]
                vol[a] -= deg[i]
                assoc[g] += 2.0 * M[i, g]
                vol[g] += deg[i]
                size[a] -= 1
                size[g] += 1
                labels[i] = g
                nb = indices[indptr[i]:indptr[i + 1]]
                w = data[indptr[i]:indptr[i + 1]]
                M[nb, a] -= w
                M[nb, g] += w
                moved += 1
        if moved == 0:
            break
    return labels


# -- the estimator -----------------------------------------------------------------------------

class HKDCutTree(CodeModel):
    """Coarse-to-fine tree of normalised cuts of HKD's p_{j|i} affinity graph.

    Parameters
    ----------
    K : code alphabet (digit values in [0, K)); every node has at most min(K, branching) children.
    D : code length = tree depth.
    branching : children per node, an int in [2, K], or "auto" (chosen in fit from 2, 4 <= K).
    perplexity : of the eq. 8 affinities, > 1, or "auto" (chosen in fit from 5, 10).
    metric : geometry of the rows (neighbours of the descent and of the "auto" scores):
        "euclidean" or "poincare".
    graph_metric : distance of the eq. 8 affinities that are cut: "euclidean", "poincare" (only
        with metric="poincare") or "auto" (for Poincare rows both are tried in fit).
    split : "spectral" (normalised cuts), "kmeans" (k-means splits, same tree and descent) or
        "auto" (both tried in fit, chosen on the held-out training rows like branching).
    refine : greedy Ncut moves after the spectral split (ablation: False).
    balance : smallest child of a two-way split as a fraction of its node (2 * balance / b for b
        children); cuts that peel off a tiny well-separated group save neighbours but barely
        reduce the search, so the depth budget D would run out.
    min_size : a node with fewer rows is a leaf.
    descent : how new rows find their child: "vote" (p_{j|i} mass of the nearest training rows
        of the node), "centroid" (nearest child centroid, as hkm) or "auto" (scored in fit).
    n_vote : nearest training rows of a node whose p_{j|i} mass votes a new row's child.
    holdout : fraction of the training rows that scores the "auto" candidates.
    random_state : k-means / eigen-solver / holdout seed.
    """

    @property
    def model_name(self) -> str:
        if self.split == "kmeans":
            return "hkd-cuttree-kmeans"
        if self.split == "spectral":
            return "hkd-cuttree-spectral" if self.refine else "hkd-cuttree-no-refine"
        return "hkd-cuttree"

    def __init__(self, K: int = 16, D: int = 16, branching="auto", perplexity="auto",
                 metric: str = "euclidean", graph_metric="auto", split: str = "auto",
                 refine: bool = True, descent: str = "auto",
                 balance: float = 0.3, min_size: int = 4, n_vote: int = 10,
                 holdout: float = 0.25, random_state: int = 0):
        self.K = K
        self.D = D
        self.branching = branching
        self.perplexity = perplexity
        self.metric = metric
        self.graph_metric = graph_metric
        self.split = split
        self.refine = refine
        self.descent = descent
        self.balance = balance
        self.min_size = min_size
        self.n_vote = n_vote
        self.holdout = holdout
        self.random_state = random_state

    # -- parameters ---------------------------------------------------------------------------
    def _validate_params(self) -> None:
        check_int("K", self.K, 2, MAX_K)
        check_int("D", self.D, 1, MAX_D)
        if self.branching != "auto":
            check_int("branching", self.branching, 2, self.K)
        if self.perplexity != "auto":
            p = check_float("perplexity", self.perplexity, 1.0, low_open=True)
            if p > 1000:
                raise ValueError(f"perplexity must be <= 1000, got {p}")
        check_choice("metric", self.metric, METRICS)
        check_choice("graph_metric", self.graph_metric, ("auto",) + METRICS)
        if self.graph_metric == "poincare" and self.metric != "poincare":
            raise ValueError("graph_metric='poincare' needs metric='poincare'")
        check_choice("split", self.split, SPLITS)
        if not isinstance(self.refine, (bool, np.bool_)):
            raise ValueError(f"refine must be True or False, got {self.refine!r}")
        check_float("balance", self.balance, 0.0, 0.5)
        check_choice("descent", self.descent, DESCENTS)
        check_int("min_size", self.min_size, 2)
        check_int("n_vote", self.n_vote, 1)
        check_float("holdout", self.holdout, 0.05, 0.5)
        check_int("random_state", self.random_state, 0)

    def _candidates(self) -> list[tuple]:
        bs = [b for b in AUTO_BRANCHINGS if b <= self.K] if self.branching == "auto" \
            else [int(self.branching)]
        ps = list(AUTO_PERPLEXITIES) if self.perplexity == "auto" else [float(self.perplexity)]
        if self.graph_metric != "auto":
            gs = [self.graph_metric]
        else:
            gs = ["poincare", "euclidean"] if self.metric == "poincare" else ["euclidean"]
        splits = ["spectral", "kmeans"] if self.split == "auto" else [self.split]
        out = []
        for sp in splits:
            # k-means splits use the affinities only for the descent: one perplexity, one graph
            for b in bs:
                for p in (ps if sp == "spectral" else ps[-1:]):
                    for g in (gs if sp == "spectral" else gs[-1:]):
                        out.append((b, p, g, sp))
        return out

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, X, y=None, progress: ProgressCallback | None = None) -> "HKDCutTree":
        # small per-node eigenproblems and k-means runs: extra BLAS / OpenMP threads only contend
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1):
            return self._fit(X, progress)

    def _fit(self, X, progress) -> "HKDCutTree":
        self._validate_params()
        X = self._validate_fit_X(X)
        if self.metric == "poincare" and np.any(np.linalg.norm(X, axis=1) >= 1.0):
            raise ValueError("metric='poincare' needs every row inside the unit ball (norm < 1)")
        cands = self._candidates()
        self.selection_ = []
        n = len(X)
        n_hold = int(round(self.holdout * n))
        if len(cands) > 1 and n_hold >= 20 and n - n_hold >= 20:
            rng = np.random.default_rng(self.random_state)
            perm = rng.permutation(n)
            hold, inner = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
            descents = ["vote", "centroid"] if self.descent == "auto" else [self.descent]
            for b, p, g, sp in cands:
                self.split_ = sp
                self._grow(X[inner], b, p, g)
                for de in descents:          # the descent needs no refit: score both
                    self.descent_ = de
                    codes = self._transform(X[hold])
                    scored = evaluate(codes, X[hold], self.metric, ks=(5,), max_depth=8)
                    self.selection_.append({"branching": b, "perplexity": p, "graph_metric": g,
                                            "split": sp, "descent": de,
                                            "holdout_auc": frontier_auc(scored)})
            best = max(self.selection_, key=lambda c: c["holdout_auc"])
            b, p, g, sp, de = (best["branching"], best["perplexity"], best["graph_metric"],
                               best["split"], best["descent"])
        else:
            b, p, g, sp = cands[0]
            de = "vote" if self.descent == "auto" else self.descent
        self.split_, self.descent_ = sp, de
        self.branching_, self.perplexity_, self.graph_metric_ = int(b), float(p), g
        self._grow(X, self.branching_, self.perplexity_, g, progress)
        return self

    def _split_node(self, X: np.ndarray, W: sparse.csr_matrix, b: int) -> np.ndarray:
        n = len(X)
        if self.split_ == "kmeans":
            km = KMeans(n_clusters=b, n_init=3, random_state=self.random_state)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return km.fit_predict(X).astype(np.int64)
        # every child keeps at least balance / (b / 2) of the node's rows
        min_size = max(1, int(np.floor(2.0 * self.balance / b * n)))
        U = _spectral_rows(W, b - 1, self.random_state)
        if b == 2:
            labels = _sweep_bisection(W, U[:, 0], min_size)
        else:
            V = U / np.maximum(np.linalg.norm(U, axis=1, keepdims=True), 1e-300)
            km = KMeans(n_clusters=b, n_init=5, random_state=self.random_state)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                labels = km.fit_predict(V).astype(np.int64)
        if self.refine:
            labels = _refine(W, labels, b, min_size)
        return labels

    def _grow(self, X: np.ndarray, b: int, perplexity: float, graph_metric: str,
              progress: ProgressCallback | None = None) -> None:
        n, d = X.shape
        b = min(b, self.K)
        self.n_features_in_ = d
        W = affinity_graph(X, perplexity, graph_metric) if n > 2 else sparse.csr_matrix((n, n))
        self.perplexity_used_ = float(perplexity)
        centroids = [X.astype(np.float64).mean(0)]
        children = [np.full(self.K, -1, dtype=np.int64)]
        codes = np.zeros((n, self.D), dtype=np.int64)
        frontier = [(0, np.arange(n))]
        total = W.sum()

        def grow_level(epoch: int) -> dict:
            nonlocal frontier
            level = epoch - 1
            nxt = []
            for node, rows in frontier:
                if len(rows) < max(self.min_size, 2) or np.all(X[rows] == X[rows[0]]):
                    continue
                if len(np.unique(X[rows], axis=0)) <= b:
                    _, lab = np.unique(X[rows], axis=0, return_inverse=True)
                    lab = lab.reshape(-1).astype(np.int64)
                else:
                    lab = self._split_node(X[rows], W[rows][:, rows].tocsr(), b)
                # children numbered by decreasing size (ties: smaller first row index)
                sizes = np.bincount(lab, minlength=b)
                used = [g for g in range(b) if sizes[g] > 0]
                used.sort(key=lambda g: (-sizes[g], int(np.flatnonzero(lab == g)[0])))
                remap = np.full(b, -1)
                remap[used] = np.arange(len(used))
                lab = remap[lab]
                codes[rows, level] = lab
                for digit in range(len(used)):
                    part = rows[lab == digit]
                    child = len(centroids)
                    centroids.append(X[part].astype(np.float64).mean(0))
                    children.append(np.full(self.K, -1, dtype=np.int64))
                    children[node][digit] = child
                    nxt.append((child, part))
            frontier = nxt
            # loss: affinity mass cut by the first level+1 digits (1 - weighted share)
            from hkd_core.metrics import _prefix_ids
            ids = _prefix_ids(codes, level + 1)
            Wc = W.tocoo()
            kept = Wc.data[ids[Wc.row] == ids[Wc.col]].sum()
            loss = float(1.0 - kept / total) if total > 0 else 0.0
            return {"loss": loss, "level": level + 1, "n_nodes": len(frontier)}

        self._run_epochs(self.D, grow_level, progress)       # one record per tree level
        self.X_train_ = X.astype(np.float32)
        self.codes_ = codes
        self.centroids_ = np.asarray(centroids, dtype=np.float32).reshape(-1, d)
        self.children_ = np.stack(children)
        self._index_training_rows()

    def _index_training_rows(self) -> None:
        """node_of_[l, i]: node of training row i at depth l (0 = root); lookup of exact rows."""
        n = len(self.codes_)
        node = np.zeros(n, dtype=np.int64)
        nodes = [node.copy()]
        for level in range(self.D):
            child = self.children_[node, self.codes_[:, level]]
            node = np.where(child >= 0, child, node)
            nodes.append(node.copy())
        self.node_of_ = np.stack(nodes)
        self._row_lookup = {self.X_train_[i].tobytes(): i for i in range(n)}

    # -- coding new rows ----------------------------------------------------------------------
    def transform(self, X) -> np.ndarray:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1):
            return self._transform(X)

    def _transform(self, X) -> np.ndarray:
        X = check_features(self, X)
        if self.metric == "poincare" and np.any(np.linalg.norm(X, axis=1) >= 1.0):
            raise ValueError("metric='poincare' needs every row inside the unit ball (norm < 1)")
        X = X.astype(np.float32)
        m = len(X)
        codes = np.zeros((m, self.D), dtype=np.int64)
        exact = np.array([self._row_lookup.get(x.tobytes(), -1) for x in X], dtype=np.int64)
        new = np.flatnonzero(exact < 0)
        codes[exact >= 0] = self.codes_[exact[exact >= 0]]
        perp = self.perplexity_used_
        if self.descent_ == "centroid":
            codes[new] = self._centroid_descent(X[new])
            return codes
        for s in range(0, len(new), 1024):
            rows = new[s:s + 1024]
            dist = input_distances(X[rows].astype(np.float64), self.X_train_.astype(np.float64),
                                   self.metric)
            node = np.zeros(len(rows), dtype=np.int64)
            for level in range(self.D):
                has = (self.children_[node] >= 0).any(1)
                for cur in np.unique(node[has]):
                    grp = np.flatnonzero((node == cur) & has)
                    members = np.flatnonzero(self.node_of_[level] == cur)
                    digit_of = self.codes_[members, level]
                    k = min(self.n_vote, len(members))
                    dsub = dist[np.ix_(grp, members)]
                    near = np.argpartition(dsub, k - 1, axis=1)[:, :k]
                    dnear = np.take_along_axis(dsub, near, 1)
                    if k >= 3:
                        w, _ = calibrate_affinities(dnear, min(perp, k - 1.5))
                    else:
                        w = np.ones_like(dnear)
                    votes = np.zeros((len(grp), self.K))
                    np.add.at(votes, (np.repeat(np.arange(len(grp)), k), digit_of[near].ravel()),
                              w.ravel())
                    digit = votes.argmax(1)
                    codes[rows[grp], level] = digit
                    node[grp] = self.children_[cur, digit]
        return codes

    def _centroid_descent(self, X: np.ndarray) -> np.ndarray:
        """hkm's rule: the child with the nearest (Euclidean) centroid, level by level."""
        from hkd_core.models.hkm import nearest_centroid
        codes = np.zeros((len(X), self.D), dtype=np.int64)
        node = np.zeros(len(X), dtype=np.int64)
        for level in range(self.D):
            for cur in np.unique(node):
                kids = self.children_[cur]
                kids = kids[kids >= 0]
                if len(kids) == 0:
                    continue
                grp = np.flatnonzero(node == cur)
                digit = nearest_centroid(X[grp], self.centroids_[kids])
                codes[grp, level] = digit
                node[grp] = kids[digit]
        return codes

    def inverse_transform(self, codes) -> np.ndarray:
        check_is_fitted(self, "children_")
        codes = self._check_codes(codes)
        node = np.zeros(len(codes), dtype=np.int64)
        go = np.ones(len(codes), dtype=bool)
        for level in range(self.D):
            child = self.children_[node, codes[:, level]]
            go &= child >= 0
            node = np.where(go, child, node)
        return self.centroids_[node].astype(np.float32)

    def _get_state(self) -> dict:
        return {"X_train": self.X_train_, "centroids": self.centroids_, "children": self.children_,
                "perplexity_used": np.asarray(self.perplexity_used_),
                "branching_used": np.asarray(self.branching_),
                "graph_metric_used": np.asarray(self.graph_metric_),
                "split_used": np.asarray(self.split_),
                "descent_used": np.asarray(self.descent_)}

    def _set_state(self, state: dict, n_features: int) -> None:
        self._validate_params()
        self.X_train_ = np.asarray(state["X_train"], dtype=np.float32).reshape(-1, n_features)
        self.centroids_ = np.asarray(state["centroids"], dtype=np.float32).reshape(-1, n_features)
        self.children_ = np.asarray(state["children"], dtype=np.int64)
        self.perplexity_used_ = self.perplexity_ = float(state["perplexity_used"])
        self.branching_ = int(state["branching_used"])
        self.graph_metric_ = str(state["graph_metric_used"])
        self.split_ = str(state["split_used"])
        self.descent_ = str(state["descent_used"])
        self.codes_ = np.asarray(self.codes_, dtype=np.int64)
        self._index_training_rows()
