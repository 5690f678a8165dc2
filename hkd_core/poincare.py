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

import json
import os
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
                 n_threads: int | None = 1, snapshot_epochs: Sequence[int] = (),
                 checkpoint_dir=None, checkpoint_every: int = 5, resume: bool = False):
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
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.resume = resume

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
        check_int("checkpoint_every", self.checkpoint_every, 1)
        if self.checkpoint_dir is not None and self.optimizer != "rsgd":
            raise ValueError("checkpoint_dir needs optimizer='rsgd' (RiemannianAdam's moments are "
                             f"not checkpointed), got optimizer={self.optimizer!r}")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
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

    def _settings_key(self, n: int, pairs: np.ndarray) -> dict:
        """What a checkpoint must agree on to be resumed: every parameter that changes the run
        (``epochs`` may grow; checkpoint placement, threads and device do not change the
        arithmetic) and a digest of the edges."""
        import hashlib

        params = {k: v for k, v in self.get_params().items()
                  if k not in ("epochs", "checkpoint_dir", "checkpoint_every", "resume",
                               "n_threads", "snapshot_epochs", "device")}
        digest = hashlib.sha256(np.ascontiguousarray(pairs, dtype=np.int64).tobytes()).hexdigest()
        return {"params": params, "n": int(n), "edges_sha256": digest}

    def _train(self, nodes, pairs, device, progress):
        import time

        import geoopt
        import torch

        t_setup = time.perf_counter()
        n = len(nodes)
        rng = np.random.default_rng(self.seed)
        torch_gen = torch.Generator().manual_seed(self.seed)

        # sorted keys u*n+w of every pair that must not serve as a negative: closure pairs in
        # both directions and the node itself (np.unique sorts: membership is a binary search)
        forbidden = np.unique(np.concatenate([
            pairs[:, 0] * n + pairs[:, 1], pairs[:, 1] * n + pairs[:, 0], np.arange(n) * (n + 1)]))
        degree = np.bincount(pairs.ravel(), minlength=n).astype(np.float64)
        burn_cdf = np.cumsum(degree ** self.dampening)

        ball = geoopt.PoincareBall()
        init = (torch.rand(n, self.dim, generator=torch_gen, dtype=torch.float64) * 2 - 1) * self.init_scale
        key = json.loads(json.dumps(self._settings_key(n, pairs)))   # as a checkpoint holds it
        self.history_ = []
        self.snapshots_ = {}
        self.nodes_ = nodes
        first_epoch = 1
        ckpt = read_checkpoint(self.checkpoint_dir) if self.checkpoint_dir is not None and self.resume else None
        if ckpt is not None:
            meta, arrays = ckpt
            if meta["settings"] != key:
                raise ValueError(
                    f"checkpoint in {self.checkpoint_dir} was written for other settings or data "
                    f"({meta['settings']['params']}, n={meta['settings']['n']}); "
                    "delete it or start without resume")
            if meta["epoch"] > int(self.epochs):
                raise ValueError(f"checkpoint is at epoch {meta['epoch']}, beyond epochs={self.epochs}")
            init = torch.from_numpy(arrays["weight"])
            rng.bit_generator.state = meta["rng_state"]
            self.history_ = list(meta["history"])
            self.snapshots_ = {int(k[len("snapshot_"):]): arrays[k] for k in arrays if k.startswith("snapshot_")}
            first_epoch = int(meta["epoch"]) + 1
        self.start_epoch_ = first_epoch

        sparse = self.optimizer == "rsgd"
        if sparse:
            # Riemannian SGD on the rows a batch touches only. geoopt's RiemannianSGD on the
            # whole (n, dim) table does the same arithmetic (egrad2rgrad, then retr) on every
            # row, nearly all with a zero gradient: O(n) per step whatever the batch size
            weight = init.to(device).clone()
            opt = None
        else:
            weight = geoopt.ManifoldParameter(init.to(device), manifold=ball)
            opt = geoopt.optim.RiemannianAdam([weight], lr=self.lr, stabilize=None)

        n_neg = int(self.negatives)
        batch = int(self.batch_size)
        snapshot_at = {int(e) for e in self.snapshot_epochs}
        self.setup_seconds_ = time.perf_counter() - t_setup
        for epoch in range(first_epoch, int(self.epochs) + 1):
            t_epoch = time.perf_counter()
            in_burn_in = epoch <= self.burn_in
            lr = self._epoch_lr(epoch)
            order = rng.permutation(len(pairs))
            total, count, steps, redraws = 0.0, 0, 0, 0
            for start in range(0, len(order), batch):
                b = pairs[order[start:start + batch]]
                negs, valid, k = sample_negatives(b[:, 0], n, n_neg, forbidden,
                                                  burn_cdf if in_burn_in else None, rng)
                redraws += k
                targets = torch.from_numpy(np.concatenate([b[:, 1:2], negs], axis=1)).to(device)
                mask = torch.from_numpy(np.concatenate([np.ones((len(b), 1), bool), valid], axis=1)).to(device)
                u = torch.from_numpy(b[:, 0]).to(device)
                if sparse:
                    rows, inverse = torch.unique(torch.cat([u, targets.reshape(-1)]), return_inverse=True)
                    point = weight[rows].requires_grad_(True)
                    dist = poincare_distance_torch(point[inverse[:len(b)]].unsqueeze(1),
                                                   point[inverse[len(b):]].view(*targets.shape, -1))
                else:
                    dist = poincare_distance_torch(weight[u].unsqueeze(1), weight[targets])
                logits = (-dist).masked_fill(~mask, float("-inf"))
                loss_each = -torch.log_softmax(logits, dim=1)[:, 0]
                if sparse:
                    (grad,) = torch.autograd.grad(loss_each.sum(), point)
                    with torch.no_grad():
                        p = point.detach()
                        weight[rows] = ball.retr(p, -lr * ball.egrad2rgrad(p, grad))
                else:
                    for group in opt.param_groups:
                        group["lr"] = lr
                    opt.zero_grad()
                    loss_each.mean().backward()
                    opt.step()
                total += float(loss_each.detach().sum())
                count += len(b)
                steps += 1
            record = {"epoch": epoch, "n_epochs": int(self.epochs), "loss": total / count,
                      "lr": lr, "phase": "burn-in" if in_burn_in else "main",
                      "steps": steps, "edges": count, "redraws": int(redraws),
                      "seconds": time.perf_counter() - t_epoch}
            self.history_.append(record)
            if epoch in snapshot_at:
                self.snapshots_[epoch] = _inside_ball(weight.detach().cpu().numpy())
            if not np.isfinite(record["loss"]):
                raise FloatingPointError(f"loss became {record['loss']} at epoch {epoch}; lower lr (now {self.lr})")
            if self.checkpoint_dir is not None and (
                    epoch % int(self.checkpoint_every) == 0 or epoch == int(self.epochs)):
                write_checkpoint(self.checkpoint_dir, weight.detach().cpu().numpy(), {
                    "epoch": epoch, "settings": key, "rng_state": rng.bit_generator.state,
                    "history": self.history_}, self.snapshots_)
            if progress is not None:
                progress(dict(record))

        self.embedding_ = _inside_ball(weight.detach().cpu().numpy())

    def _epoch_lr(self, epoch: int) -> float:
        if epoch <= self.burn_in:
            return self.lr * self.burn_in_lr_factor
        if self.lr_schedule == "linear":
            n_main = int(self.epochs) - int(self.burn_in)
            done = (epoch - int(self.burn_in) - 1) / max(1, n_main - 1)
            return self.lr * (1.0 - 0.99 * done)
        return self.lr

    def transform(self, nodes: Sequence[str]) -> np.ndarray:
        """Rows of embedding_ for the given node names."""
        index = {name: i for i, name in enumerate(self.nodes_)}
        try:
            return self.embedding_[[index[str(x)] for x in nodes]]
        except KeyError as exc:
            raise KeyError(f"{exc.args[0]!r} was not in the fitted nodes") from None



def _is_forbidden(keys: np.ndarray, forbidden: np.ndarray) -> np.ndarray:
    """Membership of ``keys`` in the sorted array ``forbidden`` by binary search, O(len(keys)
    log len(forbidden)). np.isin sorts ``forbidden`` again on every call (1.6 M keys for the
    noun closure), so each redraw round cost about as much as a whole training step."""
    pos = np.searchsorted(forbidden, keys)
    return forbidden[np.minimum(pos, len(forbidden) - 1)] == keys


def sample_negatives(us, n, n_neg, forbidden, cdf, rng):
    """Negatives for each u: (B, n_neg) indices, a validity mask (False where even after
    ``_RESAMPLE_TRIES`` redraws the draw is still a neighbour of u, e.g. for a node related to
    almost all) and the number of entries redrawn. ``cdf`` None draws uniformly, else by inverse
    CDF (burn-in: cumulative degree ** dampening). Only the entries that hit a forbidden pair
    are checked again, so a redraw round costs in proportion to its hits, not to the batch."""
    if cdf is None:
        def draw(size):
            return rng.integers(0, n, size=size)
    else:
        def draw(size):  # inverse-CDF sampling: far cheaper than rng.choice(p=) per batch
            return np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right"), n - 1)
    negs = draw((len(us), n_neg))
    owner = np.repeat(np.asarray(us, dtype=np.int64), n_neg)
    flat = negs.reshape(-1)
    bad = np.flatnonzero(_is_forbidden(owner * n + flat, forbidden))
    redrawn = 0
    for _ in range(_RESAMPLE_TRIES):
        if len(bad) == 0:
            break
        redrawn += len(bad)
        flat[bad] = draw(len(bad))
        bad = bad[_is_forbidden(owner[bad] * n + flat[bad], forbidden)]
    valid = np.ones(flat.shape, dtype=bool)
    valid[bad] = False
    return flat.reshape(negs.shape), valid.reshape(negs.shape), redrawn


CHECKPOINT_FILE = "checkpoint.npz"
CHECKPOINT_SIDECAR = "checkpoint.json"


def _atomic_write(path: str, write) -> None:
    # temporary file in the same directory, flushed to disk, then renamed over the old file:
    # os.replace is atomic, so a crash leaves the old file or the new one, never half of one
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_checkpoint(directory, weight: np.ndarray, meta: dict, snapshots: dict | None = None) -> None:
    """Write ``checkpoint.npz`` atomically: arrays ``weight``, ``snapshot_<epoch>`` and ``meta``
    (a JSON string; epoch, settings, RNG state, history). ``checkpoint.json`` repeats the
    metadata for people to read; it is never loaded."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    arrays = {"weight": np.asarray(weight, dtype=np.float64), "meta": np.array(json.dumps(meta))}
    for epoch, emb in (snapshots or {}).items():
        arrays[f"snapshot_{int(epoch)}"] = np.asarray(emb, dtype=np.float64)
    _atomic_write(os.path.join(directory, CHECKPOINT_FILE), lambda fh: np.savez(fh, **arrays))
    readable = {k: v for k, v in meta.items() if k != "rng_state"}
    _atomic_write(os.path.join(directory, CHECKPOINT_SIDECAR),
                  lambda fh: fh.write(json.dumps(readable, indent=1).encode()))


def read_checkpoint(directory):
    """(meta, arrays) of ``directory``'s checkpoint.npz, or None when there is none. Loaded with
    allow_pickle=False: a checkpoint holds numeric arrays and one JSON string, nothing that
    executes code when read."""
    path = os.path.join(os.fspath(directory), CHECKPOINT_FILE)
    if not os.path.isfile(path):
        return None
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: np.array(npz[k]) for k in npz.files}
    meta = json.loads(str(arrays.pop("meta")))
    return meta, arrays


def reconstruction_scores(embedding: np.ndarray, nodes: Sequence[str], edges: Sequence[tuple[str, str]],
                          count_self: bool = False, symmetric: bool = False,
                          block_size: int = 512, sample: int | None = None, seed: int = 0,
                          max_block_bytes: int = 1 << 27) -> dict:
    """Nickel & Kiela's reconstruction: mean rank and mean average precision.

    For every node u with at least one neighbour, and each neighbour v (the ancestors of u in
    ``edges``; with ``symmetric=True`` its ancestors and descendants), the rank of v is
    1 + the number of u's non-neighbours strictly closer to u than v (Poincare distance).
    ``count_self`` decides whether u itself is one of those non-neighbours (it is at distance 0,
    so True adds exactly 1 to every rank); default False, node excluded.
    AP of u is the average, over its neighbours v, of the precision among all candidates at
    distance <= d(u, v) (the same step-function AP as sklearn.metrics.average_precision_score);
    MAP averages it over nodes with neighbours. Mean rank averages over all (u, v) pairs.

    Scale: each ranked node costs a distance row and a sort over all n nodes (O(n log n)), so
    all 82k nouns take hours; ``sample`` ranks that many nodes drawn uniformly (``seed``) among
    those with neighbours (each still against all n nodes), an unbiased estimate of MAP and of
    the per-node mean rank. Distance blocks hold at most ``max_block_bytes`` (rows shrink
    below ``block_size`` as n grows), so memory stays bounded.
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
    with_neighbours = len(ranked)
    if sample is not None and sample < len(ranked):
        ranked = sorted(np.random.default_rng(seed).choice(ranked, size=int(sample), replace=False).tolist())
    block_size = max(1, min(int(block_size), int(max_block_bytes) // (8 * n)))

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
        "n_nodes_with_neighbours": with_neighbours,
        "sampled": len(ranked) < with_neighbours,
        "count_self": bool(count_self),
        "symmetric": bool(symmetric),
    }
