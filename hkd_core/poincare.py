"""Poincare embeddings of a hierarchy (Nickel & Kiela, NIPS 2017) and their reconstruction scores.

    model = PoincareEmbedding(dim=10, epochs=200, seed=0).fit(nodes, edges)
    model.embedding_                       # (n, dim) points strictly inside the unit ball
    reconstruction_scores(model.embedding_, nodes, edges)   # {"mean_rank", "map", ...}

Objective (N&K eq. 6): for every closure pair (u, v), a softmax over negative distances
    -log exp(-d(u, v)) / sum_{v' in {v} + Neg(u)} exp(-d(u, v'))
where Neg(u) are ``negatives`` nodes sampled among those with no closure pair with u (either
direction) and d is the Poincare distance. Optimised with geoopt's Riemannian SGD (or Riemannian
Adam) on a ``ManifoldParameter`` of the Poincare ball: geoopt ships the ball's Riemannian gradient,
retraction and projection, is already a project dependency (torch-based, CUDA when available) and
needs no extra install; gensim's PoincareModel would add a second heavy dependency that is not
installed here, is CPU-only and exposes less of the training loop (no per-epoch progress hook).

Burn-in (N&K §3): the first ``burn_in`` epochs use lr * ``burn_in_lr_factor`` and draw negatives in
proportion to degree ** ``dampening``, which places the frequent (high) nodes near the centre
before the main phase spreads the rest; afterwards negatives are drawn uniformly.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from hkd_core.distances import poincare as poincare_distances
from hkd_core.models.base import check_choice, check_float, check_int, choose_device

OPTIMIZERS = ("rsgd", "radam")
LR_SCHEDULES = ("constant", "linear")
_ACOSH_EPS = 1e-12


def poincare_distance_torch(a, b):
    """arcosh(1 + 2|a-b|^2 / ((1-|a|^2)(1-|b|^2))), broadcasting over leading dims.

    The closed form rather than geoopt's Mobius-addition route: same value on the c=1 ball,
    about 6x cheaper in forward+backward here, and the clamp keeps arcosh's gradient finite."""
    import torch

    sq = ((a - b) ** 2).sum(-1)
    alpha = (1 - (a * a).sum(-1)).clamp_min(_ACOSH_EPS)
    beta = (1 - (b * b).sum(-1)).clamp_min(_ACOSH_EPS)
    return torch.acosh((1 + 2 * sq / (alpha * beta)).clamp_min(1 + _ACOSH_EPS))
# how often a negative that hits a neighbour is redrawn before it is masked out of the softmax
_RESAMPLE_TRIES = 10


def _index_edges(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> np.ndarray:
    index = {name: i for i, name in enumerate(nodes)}
    if len(index) != len(nodes):
        raise ValueError("nodes must be unique")
    try:
        pairs = np.array([(index[u], index[v]) for u, v in edges], dtype=np.int64).reshape(-1, 2)
    except KeyError as exc:
        raise ValueError(f"edges name a node that is not in nodes: {exc.args[0]!r}") from None
    return pairs


def _inside_ball(emb: np.ndarray) -> np.ndarray:
    # projx keeps points at norm <= 1 - eps; renormalise the rare float round-off at the edge
    emb = np.array(emb, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return np.where(norms >= 1 - 1e-9, emb / np.maximum(norms, 1e-300) * (1 - 1e-6), emb)


class PoincareEmbedding(BaseEstimator):
    """Poincare-ball embedding of a transitive closure (hyponym, ancestor pairs).

    Parameters
    ----------
    dim : int >= 1, embedding dimension (the paper's mammals input is 10).
    epochs : int >= 1, passes over the edges, burn-in included.
    negatives : int >= 1, negatives per edge.
    lr : float > 0, learning rate of the main phase. With 'rsgd' the loss is summed over the
        batch, so lr is per edge, as in N&K's one-edge-at-a-time SGD.
    burn_in : int >= 0, epochs of burn-in (reduced lr, degree-weighted negatives).
    burn_in_lr_factor : float in (0, 1], lr multiplier during burn-in (N&K: 1/10).
    dampening : float >= 0, exponent of the degree in the burn-in negative distribution.
    batch_size : int >= 1, edges per step.
    optimizer : 'rsgd' (geoopt.optim.RiemannianSGD) or 'radam' (RiemannianAdam, loss averaged).
    lr_schedule : 'constant' or 'linear' (main-phase lr decays linearly to lr/100 at the last
        epoch: constant-lr SGD keeps jittering around the optimum, decay lets it settle).
    init_scale : float > 0, initial coordinates uniform in [-init_scale, init_scale].
    seed : int, seeds initialisation, shuffling and negative sampling.
    device : 'auto' (CUDA when available), 'cpu' or 'cuda'.
    n_threads : torch CPU threads during fit (restored afterwards), or None to leave torch's
        setting. Default 1: batches are small, and on a busy 2-core machine two spinning
        threads made each step ~30x slower than one.
    snapshot_epochs : epochs after which to keep a copy of the embedding in ``snapshots_``
        (the same run stopped early, e.g. 30 = the HKD paper's training length), at no extra cost.

    Attributes
    ----------
    embedding_ : (n, dim) float64 array, norms < 1.
    nodes_ : list of node names in row order.
    snapshots_ : {epoch: (n, dim) array} for each of ``snapshot_epochs``.
    history_ : one dict per epoch {"epoch", "n_epochs", "loss" (mean per edge), "lr", "phase"}.
    """

    def __init__(self, dim: int = 10, epochs: int = 200, negatives: int = 50, lr: float = 0.1,
                 burn_in: int = 10, burn_in_lr_factor: float = 0.1, dampening: float = 0.75,
                 batch_size: int = 64, optimizer: str = "rsgd", init_scale: float = 1e-3,
                 lr_schedule: str = "linear", seed: int = 0, device: str = "auto",
                 n_threads: int | None = 1, snapshot_epochs: Sequence[int] = ()):
        self.dim = dim
        self.epochs = epochs
        self.negatives = negatives
        self.lr = lr
        self.burn_in = burn_in
        self.burn_in_lr_factor = burn_in_lr_factor
        self.dampening = dampening
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.init_scale = init_scale
        self.lr_schedule = lr_schedule
        self.seed = seed
        self.device = device
        self.n_threads = n_threads
        self.snapshot_epochs = snapshot_epochs

    def _validate(self):
        check_int("dim", self.dim, 1)
        check_int("epochs", self.epochs, 1)
        check_int("negatives", self.negatives, 1)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_int("burn_in", self.burn_in, 0, self.epochs)
        check_float("burn_in_lr_factor", self.burn_in_lr_factor, 0.0, 1.0, low_open=True)
        check_float("dampening", self.dampening, 0.0)
        check_int("batch_size", self.batch_size, 1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_float("init_scale", self.init_scale, 0.0, 0.5, low_open=True)
        check_int("seed", self.seed, 0)
        if self.n_threads is not None:
            check_int("n_threads", self.n_threads, 1)
        for e in self.snapshot_epochs:
            check_int("snapshot_epochs entry", e, 1, self.epochs)
        if not (self.device in ("auto", "cpu") or str(self.device).startswith("cuda")):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {self.device!r}")

    def fit(self, nodes: Sequence[str], edges: Sequence[tuple[str, str]],
            progress: Callable[[dict], None] | None = None) -> "PoincareEmbedding":
        """Train on (hyponym, ancestor) name pairs. ``progress`` gets each epoch's history dict;
        an exception raised inside it stops training."""
        import torch

        self._validate()
        nodes = [str(n) for n in nodes]
        n = len(nodes)
        if n < 2:
            raise ValueError(f"nodes needs at least 2 entries, got {n}")
        pairs = _index_edges(nodes, edges)
        if len(pairs) == 0:
            raise ValueError("edges must not be empty")
        if np.any(pairs[:, 0] == pairs[:, 1]):
            raise ValueError("edges must not contain reflexive pairs (u, u)")

        device = choose_device(self.device)
        previous_threads = torch.get_num_threads()
        if self.n_threads is not None:
            torch.set_num_threads(int(self.n_threads))
        try:
            self._train(nodes, pairs, device, progress)
        finally:
            torch.set_num_threads(previous_threads)
        return self

    def _train(self, nodes, pairs, device, progress):
        import geoopt
        import torch

        n = len(nodes)
        rng = np.random.default_rng(self.seed)
        torch_gen = torch.Generator().manual_seed(self.seed)

        # keys u*n+w of every pair that must not serve as a negative: closure pairs in both
        # directions and the node itself
        forbidden = np.unique(np.concatenate([
            pairs[:, 0] * n + pairs[:, 1], pairs[:, 1] * n + pairs[:, 0], np.arange(n) * (n + 1)]))
        degree = np.bincount(pairs.ravel(), minlength=n).astype(np.float64)
        burn_p = degree ** self.dampening
        burn_p /= burn_p.sum()

        ball = geoopt.PoincareBall()
        init = (torch.rand(n, self.dim, generator=torch_gen, dtype=torch.float64) * 2 - 1) * self.init_scale
        weight = geoopt.ManifoldParameter(init.to(device), manifold=ball)
        if self.optimizer == "rsgd":
            opt = geoopt.optim.RiemannianSGD([weight], lr=self.lr, stabilize=None)
        else:
            opt = geoopt.optim.RiemannianAdam([weight], lr=self.lr, stabilize=None)

        n_neg = int(self.negatives)
        self.history_ = []
        self.snapshots_ = {}
        self.nodes_ = nodes
        snapshot_at = {int(e) for e in self.snapshot_epochs}
        for epoch in range(1, int(self.epochs) + 1):
            in_burn_in = epoch <= self.burn_in
            if in_burn_in:
                lr = self.lr * self.burn_in_lr_factor
            elif self.lr_schedule == "linear":
                n_main = int(self.epochs) - int(self.burn_in)
                done = (epoch - int(self.burn_in) - 1) / max(1, n_main - 1)
                lr = self.lr * (1.0 - 0.99 * done)
            else:
                lr = self.lr
            for group in opt.param_groups:
                group["lr"] = lr
            order = rng.permutation(len(pairs))
            total, count = 0.0, 0
            for start in range(0, len(order), int(self.batch_size)):
                batch = pairs[order[start:start + int(self.batch_size)]]
                negs, valid = self._sample_negatives(batch[:, 0], n, n_neg, forbidden,
                                                     burn_p if in_burn_in else None, rng)
                targets = torch.from_numpy(np.concatenate([batch[:, 1:2], negs], axis=1)).to(device)
                mask = torch.from_numpy(np.concatenate([np.ones((len(batch), 1), bool), valid], axis=1)).to(device)
                u = torch.from_numpy(batch[:, 0]).to(device)
                dist = poincare_distance_torch(weight[u].unsqueeze(1), weight[targets])  # (B, 1 + n_neg)
                logits = (-dist).masked_fill(~mask, float("-inf"))
                loss_each = -torch.log_softmax(logits, dim=1)[:, 0]
                loss = loss_each.sum() if self.optimizer == "rsgd" else loss_each.mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss_each.detach().sum())
                count += len(batch)
            record = {"epoch": epoch, "n_epochs": int(self.epochs), "loss": total / count,
                      "lr": lr, "phase": "burn-in" if in_burn_in else "main"}
            self.history_.append(record)
            if epoch in snapshot_at:
                self.snapshots_[epoch] = _inside_ball(weight.detach().cpu().numpy())
            if not np.isfinite(record["loss"]):
                raise FloatingPointError(f"loss became {record['loss']} at epoch {epoch}; lower lr (now {self.lr})")
            if progress is not None:
                progress(dict(record))

        self.embedding_ = _inside_ball(weight.detach().cpu().numpy())

    @staticmethod
    def _sample_negatives(us, n, n_neg, forbidden, p, rng):
        """Negatives for each u: (B, n_neg) indices and a validity mask (False where even after
        redrawing the draw is still a neighbour of u, e.g. for a node related to almost all)."""
        if p is None:
            def draw(size):
                return rng.integers(0, n, size=size)
        else:
            cdf = np.cumsum(p)

            def draw(size):  # inverse-CDF sampling: far cheaper than rng.choice(p=) per batch
                return np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right"), n - 1)
        negs = draw((len(us), n_neg))
        bad = np.isin(us[:, None] * n + negs, forbidden)
        for _ in range(_RESAMPLE_TRIES):
            k = int(bad.sum())
            if k == 0:
                break
            negs[bad] = draw(k)
            bad = np.isin(us[:, None] * n + negs, forbidden)
        return negs, ~bad

    def transform(self, nodes: Sequence[str]) -> np.ndarray:
        """Rows of embedding_ for the given node names."""
        index = {name: i for i, name in enumerate(self.nodes_)}
        try:
            return self.embedding_[[index[str(x)] for x in nodes]]
        except KeyError as exc:
            raise KeyError(f"{exc.args[0]!r} was not in the fitted nodes") from None


def reconstruction_scores(embedding: np.ndarray, nodes: Sequence[str], edges: Sequence[tuple[str, str]],
                          count_self: bool = False, symmetric: bool = False,
                          block_size: int = 512) -> dict:
    """Nickel & Kiela's reconstruction: mean rank and mean average precision.

    For every node u with at least one neighbour, and each neighbour v (the ancestors of u in
    ``edges``; with ``symmetric=True`` its ancestors and descendants), the rank of v is
    1 + the number of u's non-neighbours strictly closer to u than v (Poincare distance).
    ``count_self`` decides whether u itself is one of those non-neighbours (it is at distance 0,
    so True adds exactly 1 to every rank); default False, node excluded.
    AP of u is the average, over its neighbours v, of the precision among all candidates at
    distance <= d(u, v) (the same step-function AP as sklearn.metrics.average_precision_score);
    MAP averages it over nodes with neighbours. Mean rank averages over all (u, v) pairs.
    """
    X = np.asarray(embedding, dtype=np.float64)
    nodes = list(nodes)
    if X.ndim != 2 or len(X) != len(nodes):
        raise ValueError(f"embedding must be (len(nodes), dim) = ({len(nodes)}, d), got {X.shape}")
    pairs = _index_edges(nodes, edges)
    if symmetric:
        pairs = np.concatenate([pairs, pairs[:, ::-1]])
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
    if len(pairs) == 0:
        raise ValueError("edges must contain at least one non-reflexive pair")
    n = len(nodes)
    neighbours = [[] for _ in range(n)]
    for u, v in pairs:
        neighbours[u].append(v)
    ranked = [u for u in range(n) if neighbours[u]]

    ranks_sum, n_ranks, ap_sum = 0.0, 0, 0.0
    for start in range(0, len(ranked), block_size):
        block = ranked[start:start + block_size]
        D = poincare_distances(X[block], X)
        for row, u in enumerate(block):
            d = D[row]
            pos = np.asarray(neighbours[u])
            is_neg = np.ones(n, dtype=bool)
            is_neg[pos] = False
            if not count_self:
                is_neg[u] = False
            else:
                d = d.copy()
                d[u] = 0.0  # exactly, whatever round-off the distance formula leaves
            neg_sorted = np.sort(d[is_neg])
            pos_d = d[pos]
            pos_sorted = np.sort(pos_d)
            ranks = 1 + np.searchsorted(neg_sorted, pos_d, side="left")
            neg_le = np.searchsorted(neg_sorted, pos_d, side="right")
            pos_le = np.searchsorted(pos_sorted, pos_d, side="right")
            ranks_sum += float(ranks.sum())
            n_ranks += len(pos)
            ap_sum += float(np.mean(pos_le / (pos_le + neg_le)))
    return {
        "mean_rank": ranks_sum / n_ranks,
        "map": ap_sum / len(ranked),
        "n_pairs": int(n_ranks),
        "n_nodes_ranked": len(ranked),
        "count_self": bool(count_self),
        "symmetric": bool(symmetric),
    }
