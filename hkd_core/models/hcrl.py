"""HCRL codes: a VAE whose latent prior is a hierarchical Gaussian mixture over a tree
(Shin, Song & Moon, "Hierarchically Clustered Representation Learning", ../shared/papers/
002_7640aec6028f4d6e.txt; the model is their HCRL2, data-specific level proportions).

Generative process (paper sec. 3.1), for a tree of ``levels`` = L levels (root = level 1):

    zeta ~ nested stick-breaking over the tree     v_i ~ Beta(1, gamma) per node
    eta  ~ Dirichlet(alpha)                        level proportion (one per data point;
                                                   alpha = ``level_concentration``)
    l    ~ Multinomial(eta)                        level on the path
    z    ~ N(mu_{zeta_l}, diag sigma^2_{zeta_l})   every node, internal or leaf, emits z
    x    ~ N(mu_x(z), diag sigma_x^2(z))           decoder f_theta

Variational posterior (eq. 4): q(v_i) = Beta(a_i, b_i) per node; q(z|x) = N from the encoder
g_phi_z; q(eta|x) = logistic normal from the encoder g_phi_eta, mapped to a Dirichlet(alpha~)
by the Laplace approximation; q(l|x) = Multinomial(omega) and q(zeta|x) = S over the paths, both
in the closed form of sec. 3.1 (omega_l and S_zeta each maximise the ELBO given the other; we
alternate ``n_inner`` times, then hold them fixed for the gradient step). The loss is -ELBO of
eq. 5 per row: reconstruction (one reparameterised z), E[log p(zeta|v)] + H[q(zeta)],
sum_zeta S sum_l omega_l E_q[log N(z | node)], E[log p(l|eta)] + H[q(l)], -KL(q(eta)||p(eta))
(Dirichlets, digamma/lgamma closed form), H[q(z)], and (1/N) sum_i -KL(Beta(a_i,b_i) ||
Beta(1,gamma)). Node means, variances and Beta parameters are learnt by gradient with the
networks (Algorithm 1, lines 5-7).

**A point's code** is its most probable path argmax_zeta S_zeta: digit d (d = 0..L-2) is the
index of the child taken at level d+2 (in stick-breaking order, so child 0 carries the largest
prior stick). The tree has L-1 digits; **the code is padded with zeros up to D** (digits L-1 ..
D-1 are always 0, so prefixes longer than L-1 add nothing).

What differs from the paper (simplified, stated on purpose):

* **Fixed tree, no GROW / PRUNE / MERGE.** The paper starts from one path and grows / prunes /
  merges the tree under a nested CRP (Algorithm 1, supplement sec. 3). Here the tree is the full
  K-ary tree of depth L, a *truncated* nested stick-breaking prior (the last child of a node takes
  the rest of its stick, v = 1): branches the data do not need get little q(zeta) mass and simply
  stay unused, which plays PRUNE's role, but no branch is ever added beyond K per node.
* **Initialisation**: a deterministic autoencoder (the encoder mean and the decoder mean, MSE) is
  pretrained for ``pretrain_epochs``, then the node means / variances start from a K-way k-means
  tree of the latent means (like VaDE's GMM initialisation); the paper initialises one path and
  grows it.
* **Laplace map of q(eta)**: alpha~_l = (1/s_l^2)(1 - 2/L + e^{m_l}/L^2 sum_l' e^{-m_l'})
  (Hennig et al. 2012, the inverse of MacKay's map). The paper prints e^{-m_l} in the first
  factor, which would make a larger logit give a *smaller* concentration; we read it as a typo.
* Inputs are standardised per feature (mean / sd of the training rows) before the Gaussian
  decoder; its log-variance is clipped to [-6, 6]. MNIST in the paper uses a Bernoulli decoder.
* The level proportion is data-specific (HCRL2); HCRL1 (one global eta) is not built.

Training: Adam; one ``history_`` record per epoch with ``loss`` (= -ELBO per row, pretraining
epochs excluded), ``elbo``, ``reconstruction`` (E log p(x|z) per row) and ``paths_used`` (distinct
argmax paths over the training rows). CUDA when available (``device='auto'``). Everything random
(initialisation, k-means, z samples, shuffling) runs under ``random_state``, so a CPU fit is repeatable.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from hkd_core.models.base import (
    CodeModel,
    ProgressCallback,
    check_float,
    check_int,
    choose_device,
)
from hkd_core.models.modules import mlp
from hkd_core.models.torch_utils import (
    check_device,
    check_features,
    check_n_threads,
    load_module_state,
    module_state,
    predict_in_batches,
)

MAX_K = 64
MAX_D = 64
MAX_PATHS = 4096
LOGVAR_MIN, LOGVAR_MAX = -6.0, 6.0


# -- the tree ------------------------------------------------------------------------------------

def full_tree(K: int, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full K-ary tree with ``levels`` levels, nodes numbered breadth-first (root = 0).
    Returns parent (n_nodes,) (-1 for the root), child_index (n_nodes,) (position among its
    siblings, 0 for the root) and paths (n_paths, levels): the node at each level of every
    root-to-leaf path, leaves in lexicographic order of their digits."""
    parent, child_index = [-1], [0]
    frontier = [0]
    for _ in range(levels - 1):
        nxt = []
        for node in frontier:
            for c in range(K):
                parent.append(node)
                child_index.append(c)
                nxt.append(len(parent) - 1)
        frontier = nxt
    parent, child_index = np.asarray(parent), np.asarray(child_index)
    paths = np.empty((len(frontier), levels), dtype=np.int64)
    for p, leaf in enumerate(frontier):
        node = leaf
        for lvl in range(levels - 1, -1, -1):
            paths[p, lvl] = node
            node = parent[node]
    return parent, child_index, paths


class HierarchicalGaussianPrior(nn.Module):
    """The tree's parameters: a Gaussian (mean, log-variance) per node and the variational Beta
    q(v_i) = Beta(a_i, b_i) of each non-root node's stick. Computes the expected log path prior
    E_q[log p(zeta|v)] and the expected Gaussian log-densities of q(z|x) under every node."""

    def __init__(self, K: int, levels: int, latent_dim: int, gamma: float):
        super().__init__()
        parent, child_index, paths = full_tree(K, levels)
        n_nodes = len(parent)
        self.K, self.levels, self.gamma = K, levels, gamma
        self.register_buffer("paths", torch.from_numpy(paths))
        self.register_buffer("child_index", torch.from_numpy(child_index))
        self.register_buffer("parent", torch.from_numpy(parent))
        self.mu = nn.Parameter(torch.zeros(n_nodes, latent_dim))
        self.logvar = nn.Parameter(torch.zeros(n_nodes, latent_dim))
        # softplus^-1 of the prior's (1, gamma): q(v) starts at the prior
        self.a_raw = nn.Parameter(torch.full((n_nodes,), _softplus_inv(1.0)))
        self.b_raw = nn.Parameter(torch.full((n_nodes,), _softplus_inv(gamma)))
        # the last child of every node takes the rest of its parent's stick (truncation: v = 1)
        self.register_buffer("is_last", torch.from_numpy(child_index == K - 1))

    @property
    def n_nodes(self) -> int:
        return self.mu.shape[0]

    def beta_params(self):
        return nn.functional.softplus(self.a_raw) + 1e-4, nn.functional.softplus(self.b_raw) + 1e-4

    def log_path_prior(self) -> torch.Tensor:
        """E_q[log p(zeta | v)] per path (n_paths,): the sum over the path's non-root nodes of
        E log v_node + sum over its elder siblings s of E log (1 - v_s)."""
        a, b = self.beta_params()
        dg = torch.digamma(a + b)
        e_log_v = torch.where(self.is_last, torch.zeros_like(a), torch.digamma(a) - dg)
        e_log_1mv = torch.where(self.is_last, torch.zeros_like(a), torch.digamma(b) - dg)
        # elder siblings share a parent and precede in breadth-first order: node - child_index .. node - 1
        n = self.n_nodes
        cum = torch.cumsum(torch.cat([e_log_1mv.new_zeros(1), e_log_1mv]), dim=0)
        idx = torch.arange(n, device=a.device)
        first = idx - self.child_index
        elder = cum[idx] - cum[first]
        e_log_pi = e_log_v + elder
        e_log_pi = torch.where(self.parent < 0, torch.zeros_like(e_log_pi), e_log_pi)
        return e_log_pi[self.paths[:, 1:]].sum(dim=1)

    def expected_log_normal(self, mu_z: torch.Tensor, logvar_z: torch.Tensor) -> torch.Tensor:
        """E_{q(z|x)}[log N(z | mu_i, sigma_i^2)] per row and node (B, n_nodes)."""
        logvar = self.logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        inv = torch.exp(-logvar)                                     # (n_nodes, J)
        diff2 = (mu_z[:, None, :] - self.mu[None]) ** 2              # (B, n_nodes, J)
        quad = ((diff2 + torch.exp(logvar_z)[:, None, :]) * inv[None]).sum(-1)
        return -0.5 * (quad + logvar.sum(-1)[None] + mu_z.shape[1] * math.log(2 * math.pi))

    def kl_sticks(self) -> torch.Tensor:
        """sum over non-root, non-last nodes of KL(Beta(a_i, b_i) || Beta(1, gamma))."""
        a, b = self.beta_params()
        q = torch.distributions.Beta(a, b)
        p = torch.distributions.Beta(torch.ones_like(a), torch.full_like(b, self.gamma))
        kl = torch.distributions.kl_divergence(q, p)
        keep = (self.parent >= 0) & ~self.is_last
        return kl[keep].sum()


def _softplus_inv(y: float) -> float:
    return float(math.log(math.expm1(y)))


class GaussianEncoder(nn.Module):
    """x -> (mean, log-variance) of a diagonal Gaussian (g_phi_z, g_phi_eta, and f_theta)."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.body = mlp(sizes[:-1], "relu", final_activation=True)
        self.mean = nn.Linear(sizes[-2], sizes[-1])
        self.logvar = nn.Linear(sizes[-2], sizes[-1])

    def forward(self, x: torch.Tensor):
        h = self.body(x)
        return self.mean(h), self.logvar(h).clamp(LOGVAR_MIN, LOGVAR_MAX)


class HCRLNet(nn.Module):
    """The two encoders (z and eta), the decoder and the tree prior."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], latent_dim: int, K: int,
                 levels: int, gamma: float):
        super().__init__()
        self.encoder_z = GaussianEncoder([n_features, *hidden, latent_dim])
        self.encoder_eta = GaussianEncoder([n_features, *hidden, levels])
        self.decoder = GaussianEncoder([latent_dim, *reversed(hidden), n_features])
        self.prior = HierarchicalGaussianPrior(K, levels, latent_dim, gamma)


def laplace_dirichlet(mu_eta: torch.Tensor, logvar_eta: torch.Tensor) -> torch.Tensor:
    """The Dirichlet alpha~ (B, L) matching a logistic normal (MacKay 1998; Hennig et al. 2012)."""
    L = mu_eta.shape[1]
    s = torch.exp(-mu_eta).sum(dim=1, keepdim=True)
    return torch.exp(-logvar_eta) * (1.0 - 2.0 / L + torch.exp(mu_eta) * s / L ** 2)


def dirichlet_kl(alpha_q: torch.Tensor, alpha_p: torch.Tensor) -> torch.Tensor:
    """KL(Dir(alpha_q) || Dir(alpha_p)) per row."""
    q0 = alpha_q.sum(1)
    p0 = alpha_p.sum(-1)
    return (torch.lgamma(q0) - torch.lgamma(alpha_q).sum(1) - torch.lgamma(p0)
            + torch.lgamma(alpha_p).sum(-1)
            + ((alpha_q - alpha_p) * (torch.digamma(alpha_q) - torch.digamma(q0)[:, None])).sum(1))


def path_and_level_posteriors(log_prior: torch.Tensor, node_ll: torch.Tensor, paths: torch.Tensor,
                              e_log_eta: torch.Tensor, n_inner: int):
    """Closed-form q(zeta|x) = S (B, P) and q(l|x) = omega (B, L) of sec. 3.1, each the
    maximiser of the ELBO given the other, alternated ``n_inner`` times from omega = E[eta].
    Also returns G (B, P, L): E log N(z | node at level l of path p)."""
    G = node_ll[:, paths]                                   # (B, P, L)
    omega = torch.softmax(e_log_eta, dim=1)
    for _ in range(n_inner):
        S = torch.softmax(log_prior[None] + (G * omega[:, None, :]).sum(-1), dim=1)
        omega = torch.softmax((S[:, :, None] * G).sum(1) + e_log_eta, dim=1)
    S = torch.softmax(log_prior[None] + (G * omega[:, None, :]).sum(-1), dim=1)
    return S, omega, G


def gaussian_log_lik(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (((x - mean) ** 2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(1)


class HCRL(CodeModel):
    """HCRL coder (HCRL2 with a fixed K-ary tree of ``levels`` levels; see the module docstring).

    Parameters
    ----------
    K : children per node = digit alphabet, in [2, 64]; K ** (levels - 1) <= 4096 paths.
    D : code length, >= levels - 1; digits levels-1 .. D-1 are padding (always 0).
    levels : tree levels including the root (the paper's L: "HCRL2-L3", "-L4"), >= 2.
    latent_dim : J, the embedding width. hidden : encoder widths (decoder mirrored).
    gamma : stick-breaking concentration of the nested prior, Beta(1, gamma).
    level_concentration : the paper's alpha, the Dirichlet concentration of the level
        proportion's prior (the same for every level; named apart from HKD's ``alpha``, which
        the app's controls pass to every coder).
    n_inner : alternations of the closed-form q(zeta|x), q(l|x) updates per step.
    pretrain_epochs : epochs of the deterministic autoencoder before the tree is initialised.
    epochs, batch_size, lr : Adam training of the ELBO.
    random_state : everything random in the fit. device : 'auto' (CUDA when available), 'cpu', 'cuda[:N]'.
    n_threads : torch CPU threads during fit (None: torch's setting).
    """

    model_name = "hcrl"

    def __init__(self, K: int = 4, D: int = 16, levels: int = 3, latent_dim: int = 10,
                 hidden: tuple = (128,), gamma: float = 1.0, level_concentration: float = 1.0,
                 n_inner: int = 3,
                 pretrain_epochs: int = 20, epochs: int = 100, batch_size: int = 128,
                 lr: float = 1e-3, random_state: int = 0, device: str = "auto",
                 n_threads: int | None = 1):
        self.K = K
        self.D = D
        self.levels = levels
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.gamma = gamma
        self.level_concentration = level_concentration
        self.n_inner = n_inner
        self.pretrain_epochs = pretrain_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads

    def _validate_params(self) -> None:
        check_int("K", self.K, 2, MAX_K)
        check_int("D", self.D, 1, MAX_D)
        check_int("levels", self.levels, 2)
        if self.levels - 1 > self.D:
            raise ValueError(f"levels must be <= D + 1 = {self.D + 1} (a path has levels - 1 "
                             f"digits), got levels={self.levels}")
        if self.K ** (self.levels - 1) > MAX_PATHS:
            raise ValueError(f"K ** (levels - 1) must be <= {MAX_PATHS} paths, got "
                             f"K={self.K}, levels={self.levels}: {self.K ** (self.levels - 1)}")
        check_int("latent_dim", self.latent_dim, 1)
        if not isinstance(self.hidden, (tuple, list)) or not self.hidden:
            raise ValueError(f"hidden must be a non-empty tuple of layer widths, got {self.hidden!r}")
        for width in self.hidden:
            check_int("hidden width", width, 1)
        check_float("gamma", self.gamma, 0.0, low_open=True)
        check_float("level_concentration", self.level_concentration, 0.0, low_open=True)
        check_int("n_inner", self.n_inner, 1)
        check_int("pretrain_epochs", self.pretrain_epochs, 0)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_int("random_state", self.random_state, 0)
        check_device(self.device)
        check_n_threads(self.n_threads)

    def _build(self, n_features: int) -> None:
        self._device = choose_device(self.device)
        self.net_ = HCRLNet(n_features, tuple(int(h) for h in self.hidden), int(self.latent_dim),
                            int(self.K), int(self.levels), float(self.gamma)).to(self._device)

    # -- fit -----------------------------------------------------------------------------------
    def _check_fit_rows(self, X: np.ndarray) -> None:
        if len(X) < self.K:
            raise ValueError(f"hcrl needs at least K={self.K} training rows, got {len(X)}")

    def _fit(self, X: np.ndarray, progress: ProgressCallback | None) -> "HCRL":
        self.mean_ = X.mean(axis=0).astype(np.float32)
        self.scale_ = (X.std(axis=0) + 1e-6).astype(np.float32)
        Xs = (X - self.mean_) / self.scale_
        self._build(X.shape[1])
        device, net = self._device, self.net_
        X_t = torch.from_numpy(Xs).to(device)
        shuffle_gen = self._shuffle_generator()
        # 1. deterministic autoencoder (encoder mean -> decoder mean), no history_ records
        ae_params = list(net.encoder_z.parameters()) + list(net.decoder.parameters())
        def pretrain_step(x, idx):
            return ((net.decoder(net.encoder_z(x)[0])[0] - x) ** 2).sum(1).mean(), {}

        self._train(X_t, ae_params, pretrain_step, None, modules=[net], generator=shuffle_gen,
                    n_epochs=self.pretrain_epochs, record=False)
        # 2. the tree's Gaussians from a k-means tree of the latent means
        Z = predict_in_batches(lambda x: net.encoder_z(x)[0], Xs, device)
        self._init_tree(Z)
        # q(z|x) starts narrow (1 % of the latent variance): an untrained variance head (~1)
        # wider than the leaves' Gaussians would make every row prefer the root's level
        with torch.no_grad():
            net.encoder_z.logvar.weight.zero_()
            net.encoder_z.logvar.bias.copy_(torch.from_numpy(np.log(0.01 * Z.var(axis=0) + 1e-6)))
        # 3. the ELBO
        n = len(X)

        def batch_step(x, idx):
            terms = self._elbo_terms(x, n)          # per row: the epoch sums them
            return -terms["elbo"].mean(), {"elbo": terms["elbo"], "reconstruction": terms["reconstruction"]}

        def epoch_record(epoch, means):
            record = {"loss": -means["elbo"], **means}
            if epoch == 1 or epoch == self.epochs or epoch % max(1, self.epochs // 10) == 0:
                record["paths_used"] = int(len(np.unique(self._paths(Xs))))
            return record

        self._train(X_t, net.parameters(), batch_step, progress, modules=[net],
                    generator=shuffle_gen, epoch_record=epoch_record)
        self.codes_ = self.transform(X)
        return self

    def _init_tree(self, Z: np.ndarray) -> None:
        prior = self.net_.prior
        parent, _, _ = full_tree(self.K, self.levels)
        n_nodes = len(parent)
        mu = np.zeros((n_nodes, Z.shape[1]), dtype=np.float32)
        var = np.ones((n_nodes, Z.shape[1]), dtype=np.float32)
        rows = {0: np.arange(len(Z))}
        rng = np.random.default_rng(self.random_state)
        global_var = Z.var(axis=0) + 1e-3
        mu[0], var[0] = Z.mean(axis=0), global_var
        children = [[] for _ in range(n_nodes)]
        for node in range(1, n_nodes):
            children[parent[node]].append(node)
        for node in range(n_nodes):          # breadth-first: parents before children
            kids = children[node]
            if not kids:
                continue
            r = rows.get(node, np.arange(0))
            if len(np.unique(Z[r], axis=0)) >= self.K:
                km = KMeans(self.K, n_init=3, random_state=self.random_state)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    assign = km.fit_predict(Z[r])
                order = np.argsort(-np.bincount(assign, minlength=self.K), kind="stable")
                for c, kid in enumerate(kids):   # child 0 = largest cluster, first stick
                    sub = r[assign == order[c]]
                    rows[kid] = sub
                    mu[kid] = Z[sub].mean(axis=0)
                    var[kid] = (Z[sub].var(axis=0) if len(sub) > 1 else var[node] / self.K) + 1e-3
            else:                              # too few rows: children jitter around the parent
                for kid in kids:
                    rows[kid] = np.arange(0)
                    mu[kid] = mu[node] + 0.1 * np.sqrt(var[node]) * rng.standard_normal(Z.shape[1])
                    var[kid] = var[node] / self.K
        with torch.no_grad():
            prior.mu.copy_(torch.from_numpy(mu))
            prior.logvar.copy_(torch.from_numpy(np.log(var)).clamp(LOGVAR_MIN, LOGVAR_MAX))

    def _posteriors(self, x: torch.Tensor):
        net = self.net_
        mu_z, logvar_z = net.encoder_z(x)
        mu_eta, logvar_eta = net.encoder_eta(x)
        alpha_q = laplace_dirichlet(mu_eta, logvar_eta)
        e_log_eta = torch.digamma(alpha_q) - torch.digamma(alpha_q.sum(1, keepdim=True))
        log_prior = net.prior.log_path_prior()
        node_ll = net.prior.expected_log_normal(mu_z, logvar_z)
        with torch.no_grad():
            S, omega, _ = path_and_level_posteriors(log_prior, node_ll, net.prior.paths,
                                                    e_log_eta, self.n_inner)
        return mu_z, logvar_z, alpha_q, e_log_eta, log_prior, node_ll, S, omega

    def _elbo_terms(self, x: torch.Tensor, n_total: int) -> dict:
        """Eq. 5 per row of the batch (the Beta terms spread over the N training rows)."""
        net = self.net_
        mu_z, logvar_z, alpha_q, e_log_eta, log_prior, node_ll, S, omega = self._posteriors(x)
        z = mu_z + torch.exp(0.5 * logvar_z) * torch.randn_like(mu_z)
        mean_x, logvar_x = net.decoder(z)
        recon = gaussian_log_lik(x, mean_x, logvar_x)
        G = node_ll[:, net.prior.paths]
        eps = 1e-12
        path_terms = (S * log_prior[None]).sum(1) - (S * torch.log(S + eps)).sum(1)
        emission = (S[:, :, None] * omega[:, None, :] * G).sum((1, 2))
        level_terms = (omega * e_log_eta).sum(1) - (omega * torch.log(omega + eps)).sum(1)
        alpha_p = torch.full((self.levels,), float(self.level_concentration), device=x.device)
        kl_eta = dirichlet_kl(alpha_q, alpha_p)
        entropy_z = 0.5 * (logvar_z + math.log(2 * math.pi * math.e)).sum(1)
        kl_v = net.prior.kl_sticks() / n_total
        elbo = recon + path_terms + emission + level_terms - kl_eta + entropy_z - kl_v
        return {"elbo": elbo, "reconstruction": recon}

    # -- codes -----------------------------------------------------------------------------------
    def _paths(self, Xs: np.ndarray) -> np.ndarray:
        """Index of the most probable path per (standardised) row."""
        self.net_.eval()
        return predict_in_batches(lambda x: self._posteriors(x)[6].argmax(dim=1), Xs,
                                  self._device).astype(np.int64)

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean_) / self.scale_).astype(np.float32)

    def path_digits(self) -> np.ndarray:
        """(n_paths, levels - 1): the digits of every path of the tree."""
        _, child_index, paths = full_tree(self.K, self.levels)
        return child_index[paths[:, 1:]]

    def transform(self, X) -> np.ndarray:
        X = check_features(self, X)
        check_is_fitted(self, "net_")
        paths = self._paths(self._standardise(X))
        codes = np.zeros((len(X), self.D), dtype=np.int64)
        codes[:, : self.levels - 1] = self.path_digits()[paths]
        return codes

    def posteriors(self, X) -> dict:
        """q(zeta|x) (n, n_paths), q(l|x) (n, levels) and the latent means (n, latent_dim)."""
        X = check_features(self, X)
        check_is_fitted(self, "net_")
        self.net_.eval()
        Xt = torch.from_numpy(self._standardise(X)).to(self._device)
        with torch.no_grad():
            out = self._posteriors(Xt)
        return {"paths": out[6].cpu().numpy(), "levels": out[7].cpu().numpy(),
                "latent": out[0].cpu().numpy()}

    def inverse_transform(self, codes) -> np.ndarray:
        """Decoded mean of the Gaussian of each code's leaf node (the paper's generation from a
        mixture component)."""
        check_is_fitted(self, "net_")
        codes = self._check_codes(codes)[:, : self.levels - 1]
        index = np.zeros(len(codes), dtype=np.int64)
        for d in range(self.levels - 1):
            index = index * self.K + codes[:, d]
        _, _, paths = full_tree(self.K, self.levels)
        leaves = torch.from_numpy(paths[index, -1]).to(self._device)
        self.net_.eval()
        with torch.no_grad():
            mean = self.net_.decoder(self.net_.prior.mu[leaves])[0].cpu().numpy()
        return (mean * self.scale_ + self.mean_).astype(np.float32)

    # -- persistence -----------------------------------------------------------------------------
    def _get_state(self) -> dict:
        state = module_state(self.net_, "net")
        state["mean_"], state["scale_"] = self.mean_, self.scale_
        return state

    def _set_state(self, state: dict, n_features: int) -> None:
        self._validate_params()
        self.mean_ = np.asarray(state.pop("mean_"), dtype=np.float32)
        self.scale_ = np.asarray(state.pop("scale_"), dtype=np.float32)
        self._build(n_features)
        load_module_state(self.net_, state, "net")
        self.net_.eval()
