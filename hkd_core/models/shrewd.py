"""SHREWD and SHRED: hash codes whose distances follow a label hierarchy
(``../shared/papers/004_4a2e14ace94125e9.txt``, "Semantic hierarchy based relational embeddings
for weakly-supervised deep hashing").

A network f maps a feature vector x to z = f(x) in [0, 1]^B; the hash code is the B bits
[z > 0.5]. Training minimises, over mini-batches of B_t rows (paper eq. 1)

    L = lambda_sim L_sim + lambda_kl L_KL + lambda_cls L_cls

* L_sim (eq. 2): normalised Manhattan distances between the z's should equal normalised
  semantic distances between the labels, more so for semantically close pairs:
      L_sim = 1/B_t^2 sum_{b,b'} w_bb' (|z_b - z_b'|_1 / tau_z - d(y_b, y_b') / tau_y)^2
      w_bb' = gamma^rho / (gamma + d(y_b, y_b'))^rho,    gamma = 0.1, rho = 2 (paper)
  tau_z and tau_y are "normalising scale factors estimated from the current batch": here the
  mean of the off-diagonal pairwise distances of the batch (gradients flow through tau_z).
  d(y, y') = height(lca(y, y')) / height(root), the semantic distance of Barz & Denzler that
  SHREWD's hierarchy comes from (1 - the similarity mAHP uses); any (C, C) label distance matrix
  can be given instead (the weakly supervised setting: no class membership is needed).
* L_KL (eq. 3): the Kozachenko-Leonenko estimate of KL(z || Beta(0.1, 0.1)^B) on the batch,
      L_KL = 1/B_t sum_b [log nu(z_b; u) - log nu(z_b; z)]
  nu(z_b; u) = Euclidean distance of z_b to its nearest vector of a fresh sample u of B_t
  vectors drawn from Beta(0.1, 0.1)^B, nu(z_b; z) = distance to its nearest other z in the
  batch. It pushes z towards (near-)binary, uniformly used values.
* L_cls: cross-entropy of a linear softmax classifier on the non-binarised z (SHRED only;
  SHREWD is lambda_cls = 0, "weakly supervised").

Ablations of the paper's Table 1 are parameter settings: "L_sim only" = lambda_kl = lambda_cls
= 0; "L_KL + L_cls" = lambda_sim = 0; SHREWD = lambda_cls = 0; SHRED = all three.

Codes for prefix views. SHREWD's bits are exchangeable (the loss does not order them), so after
training the bits are ordered greedily (``bit_order="hierarchy"``): bit 1 is the one whose
agreement between two training rows correlates best with their labels' semantic similarity;
bit t + 1 the one that, added to bits 1..t, makes "the first t + 1 bits agree" correlate best
(Pearson, over ``n_order_pairs`` random training pairs). Hamming distance, hence mAHP and mAP,
does not depend on the order; only prefix views do. ``bit_order="trained"`` keeps the network's
order. The ordered bits are then grouped into digits of b = log2(K) bits each,
    digit d = sum_{j<b} bit_{d*b + j} * 2^(b - 1 - j)          (big-endian, d = 0..D-1)
so the code has D digits in [0, K) and B = D * log2(K) bits: K = 16, D = 16 is 64 bits (the
paper's main setting); a prefix of N digits is a prefix of N * log2(K) bits. K must be a power
of two. ``transform_bits`` / ``bits_`` give the ordered bits (n, B) in {0, 1}, what the
Hamming-distance metrics (``retrieval_codes``) use.

Differences from the paper (stated, not hidden):
* the paper trains the whole image network (ResNet-110w on CIFAR-100, ResNet-50 on ImageNet)
  end to end with its top layer replaced by a B-unit hashing layer; here f is an MLP over given
  feature vectors (``hidden`` widths, ReLU) with a sigmoid B-unit output (the paper does not say
  how z is squashed; sigmoid keeps it in the Beta target's support [0, 1]);
* eq. 2 as printed has no exponent on the bracket, which would make the loss linear and
  unbounded below; the bracket is squared here;
* lambda_1 (lambda_kl), lambda_2 (lambda_cls), the optimiser, learning rate, batch size and
  epochs are not given in the paper: ours, see ``hkd_core.presets.SHREWD_SETTINGS``;
* the KL estimate keeps the paper's form, without the dimension factor and the log(m/(n-1))
  constant of the full Kozachenko-Leonenko divergence estimator.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from sklearn.utils.validation import check_is_fitted

from hkd_core.models.base import (
    CodeModel,
    ProgressCallback,
    check_choice,
    check_float,
    check_int,
    choose_device,
)
from hkd_core.models.modules import mlp
from hkd_core.models.rq import check_power_of_two_K
from hkd_core.models.torch_utils import (
    check_device,
    check_features,
    check_n_threads,
    load_module_state,
    module_state,
    predict_in_batches,
    seeded_init,
)

BIT_ORDERS = ("hierarchy", "trained")
MAX_BITS = 1024
EPS = 1e-8


# -- the losses (pure functions of a batch) --------------------------------------------------

def pair_weights(label_dist: torch.Tensor, gamma: float = 0.1, rho: float = 2.0) -> torch.Tensor:
    """w_bb' = gamma^rho / (gamma + d(y_b, y_b'))^rho: 1 for the same label, small for far ones."""
    return gamma ** rho / (gamma + label_dist) ** rho


def _off_diagonal_mean(dist: torch.Tensor) -> torch.Tensor:
    n = dist.shape[0]
    if n < 2:
        return dist.new_tensor(1.0)
    return dist.sum() / (n * (n - 1))


def similarity_loss(z: torch.Tensor, label_dist: torch.Tensor, gamma: float = 0.1,
                    rho: float = 2.0) -> torch.Tensor:
    """Eq. 2 (bracket squared): z (B_t, bits), label_dist (B_t, B_t) semantic distances."""
    dz = torch.cdist(z, z, p=1)
    tau_z = _off_diagonal_mean(dz).clamp_min(EPS)
    tau_y = _off_diagonal_mean(label_dist).clamp_min(EPS)
    residual = dz / tau_z - label_dist / tau_y
    return (pair_weights(label_dist, gamma, rho) * residual ** 2).mean()


def kl_to_target_loss(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 3: mean over b of log nu(z_b; u) - log nu(z_b; z) (nearest-neighbour distances)."""
    to_target = torch.cdist(z, target).min(dim=1).values
    self_dist = torch.cdist(z, z)
    self_dist = self_dist + torch.diag(torch.full((len(z),), float("inf"), device=z.device))
    to_batch = self_dist.min(dim=1).values
    return (torch.log(to_target + EPS) - torch.log(to_batch + EPS)).mean()


def label_distance_matrix(classes, hierarchy: dict) -> np.ndarray:
    """(C, C) distances height(lca) / height(root) between ``classes`` in the child -> parent
    ``hierarchy`` (1 - the class similarity of mAHP)."""
    from hkd_core.hierarchical_retrieval import class_similarity_from_hierarchy

    nodes, sim = class_similarity_from_hierarchy(hierarchy)
    position = {name: i for i, name in enumerate(nodes)}
    missing = [c for c in classes if c not in position]
    if missing:
        raise ValueError(f"labels not in the hierarchy: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    idx = np.array([position[c] for c in classes])
    return 1.0 - sim[np.ix_(idx, idx)]


def greedy_bit_order(bits: np.ndarray, pair_i: np.ndarray, pair_j: np.ndarray,
                     similarity: np.ndarray) -> np.ndarray:
    """Order of the bits (module docstring): each step adds the bit whose 'prefix agrees'
    indicator over the pairs (i, j) correlates best with ``similarity``."""
    n_bits = bits.shape[1]
    agree_bit = bits[pair_i] == bits[pair_j]                 # (m, n_bits)
    s = similarity - similarity.mean()
    s_norm = np.sqrt((s ** 2).sum()) + EPS
    prefix = np.ones(len(pair_i), dtype=bool)
    order, left = [], list(range(n_bits))
    for _ in range(n_bits):
        cand = prefix[:, None] & agree_bit[:, left]          # (m, remaining)
        a = cand - cand.mean(0)
        corr = (a * s[:, None]).sum(0) / (np.sqrt((a ** 2).sum(0)) * s_norm + EPS)
        best = int(np.argmax(corr))
        order.append(left.pop(best))
        prefix = cand[:, best]
    return np.asarray(order, dtype=np.int64)


def bits_to_digits(bits: np.ndarray, bits_per_digit: int) -> np.ndarray:
    """(n, D * b) bits -> (n, D) digits, each b consecutive bits read big-endian."""
    n, B = bits.shape
    grouped = bits.reshape(n, B // bits_per_digit, bits_per_digit).astype(np.int64)
    powers = 2 ** np.arange(bits_per_digit - 1, -1, -1, dtype=np.int64)
    return grouped @ powers


def digits_to_bits(codes: np.ndarray, bits_per_digit: int) -> np.ndarray:
    shifts = np.arange(bits_per_digit - 1, -1, -1)
    return ((codes[:, :, None] >> shifts) & 1).reshape(len(codes), -1).astype(np.uint8)


class HashNet(nn.Module):
    """x -> z = sigmoid(MLP(x)) in [0, 1]^bits, plus the linear classifier of L_cls on z."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], n_bits: int, n_classes: int):
        super().__init__()
        self.hash = mlp([n_features, *hidden, n_bits], "relu")
        self.classifier = nn.Linear(n_bits, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.hash(x))


# -- estimator ---------------------------------------------------------------------------------

class SHREWD(CodeModel):
    """SHREWD / SHRED hash coder (lambda_cls = 0 / > 0) over features with a label hierarchy.

    ``fit(X, y, hierarchy=child->parent)`` or ``fit(X, y, label_distance=(C, C) matrix,
    classes=[...])``; y is one label per row.

    Parameters
    ----------
    K : digit alphabet, a power of two; D : digits. Bits B = D * log2(K) (default 64).
    hidden : MLP widths before the B-unit sigmoid layer.
    lambda_sim, lambda_kl, lambda_cls : loss weights (paper eq. 1 has lambda_sim = 1).
    gamma, rho : pair weights of L_sim (paper: 0.1, 2). beta_a : Beta(a, a) target (paper 0.1).
    epochs, batch_size, lr : Adam training. bit_order : 'hierarchy' or 'trained' (module doc).
    n_order_pairs : training pairs used to order the bits.
    random_state, device ('auto' = CUDA when available), n_threads : as the other torch coders.
    """

    model_name = "shrewd"
    needs_labels = True          # the benchmark and ``train`` pass y and the hierarchy to fit

    def __init__(self, K: int = 16, D: int = 16, hidden: tuple = (256,), lambda_sim: float = 1.0,
                 lambda_kl: float = 0.1, lambda_cls: float = 0.0, gamma: float = 0.1,
                 rho: float = 2.0, beta_a: float = 0.1, epochs: int = 100, batch_size: int = 128,
                 lr: float = 1e-3, bit_order: str = "hierarchy", n_order_pairs: int = 20000,
                 random_state: int = 0, device: str = "auto", n_threads: int | None = 1):
        self.K = K
        self.D = D
        self.hidden = hidden
        self.lambda_sim = lambda_sim
        self.lambda_kl = lambda_kl
        self.lambda_cls = lambda_cls
        self.gamma = gamma
        self.rho = rho
        self.beta_a = beta_a
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.bit_order = bit_order
        self.n_order_pairs = n_order_pairs
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads

    @property
    def bits_per_digit(self) -> int:
        return check_power_of_two_K(self.K)

    @property
    def n_bits(self) -> int:
        return int(self.D) * self.bits_per_digit

    def _validate_params(self) -> None:
        check_power_of_two_K(self.K)
        check_int("D", self.D, 1)
        if self.n_bits > MAX_BITS:
            raise ValueError(f"D * log2(K) (the number of bits) must be <= {MAX_BITS}, got {self.n_bits}")
        if not isinstance(self.hidden, (tuple, list)):
            raise ValueError(f"hidden must be a tuple of layer widths, got {self.hidden!r}")
        for width in self.hidden:
            check_int("hidden width", width, 1)
        for name in ("lambda_sim", "lambda_kl", "lambda_cls"):
            check_float(name, getattr(self, name), 0.0)
        if self.lambda_sim == 0 and self.lambda_kl == 0 and self.lambda_cls == 0:
            raise ValueError("at least one of lambda_sim, lambda_kl, lambda_cls must be > 0")
        check_float("gamma", self.gamma, 0.0, low_open=True)
        check_float("rho", self.rho, 0.0)
        check_float("beta_a", self.beta_a, 0.0, low_open=True)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 2)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_choice("bit_order", self.bit_order, BIT_ORDERS)
        check_int("n_order_pairs", self.n_order_pairs, 1)
        check_int("random_state", self.random_state, 0)
        check_device(self.device)
        check_n_threads(self.n_threads)

    def _build(self, n_features: int, n_classes: int) -> None:
        self._device = choose_device(self.device)
        net = seeded_init(self.random_state, lambda: HashNet(n_features, tuple(int(h) for h in self.hidden),
                                                      self.n_bits, max(1, n_classes)))
        self.net_ = net.to(self._device)

    def _label_setup(self, y, hierarchy, label_distance, classes):
        if y is None:
            raise ValueError("shrewd/shred need one label per training row: fit(X, y, hierarchy=...)")
        y = np.asarray([str(v) for v in y])
        if label_distance is not None:
            if classes is None:
                raise ValueError("label_distance needs classes= (the label of each of its rows)")
            classes = [str(c) for c in classes]
            dist = np.asarray(label_distance, dtype=np.float64)
            if dist.shape != (len(classes), len(classes)):
                raise ValueError(f"label_distance must be ({len(classes)}, {len(classes)}), got {dist.shape}")
            if np.any(dist < 0) or not np.allclose(dist, dist.T) or np.any(np.diag(dist) != 0):
                raise ValueError("label_distance must be symmetric, non-negative, 0 on the diagonal")
            unknown = sorted(set(y) - set(classes))
            if unknown:
                raise ValueError(f"labels without a row in label_distance: {unknown[:5]}")
        elif hierarchy:
            classes = sorted(set(y))
            dist = label_distance_matrix(classes, hierarchy)
        else:
            raise ValueError("shrewd/shred need a label hierarchy (fit(X, y, hierarchy={child: parent})) "
                             "or a label_distance matrix; this data has labels but no hierarchy")
        position = {c: i for i, c in enumerate(classes)}
        return np.array([position[v] for v in y]), list(classes), dist

    def fit(self, X, y=None, hierarchy: dict | None = None, label_distance=None, classes=None,
            progress: ProgressCallback | None = None) -> "SHREWD":
        self._validate_params()
        X = self._validate_fit_X(X)
        if y is not None and len(y) != len(X):
            raise ValueError(f"y has {len(y)} labels for {len(X)} rows")
        item_class, classes, dist = self._label_setup(y, hierarchy, label_distance, classes)
        with self._torch_fit():              # torch's RNG draws the Beta target samples
            return self._fit(X, item_class, classes, dist, progress)

    def _fit(self, X, item_class, classes, dist, progress) -> "SHREWD":
        self.classes_ = np.asarray(classes)
        self.label_distance_ = dist.astype(np.float32)
        self._build(X.shape[1], len(classes))
        device = self._device
        cls_t = torch.from_numpy(item_class).to(device)
        dist_t = torch.from_numpy(self.label_distance_).to(device)
        target = torch.distributions.Beta(torch.tensor(float(self.beta_a)), torch.tensor(float(self.beta_a)))
        weights = {"sim": self.lambda_sim, "kl": self.lambda_kl, "cls": self.lambda_cls}

        def batch_step(x, idx):
            z = self.net_(x)
            c = cls_t[idx]
            terms = {}
            if self.lambda_sim > 0:
                terms["sim"] = similarity_loss(z, dist_t[c][:, c], self.gamma, self.rho)
            if self.lambda_kl > 0:
                terms["kl"] = kl_to_target_loss(z, target.sample(z.shape).to(device))
            if self.lambda_cls > 0:
                terms["cls"] = nn.functional.cross_entropy(self.net_.classifier(z), c)
            loss = sum(weights[k] * v for k, v in terms.items())
            return loss, {"loss": loss.item(),
                          **{k: terms[k].item() if k in terms else 0.0 for k in weights}}

        self._train(torch.from_numpy(X).to(device), self.net_.parameters(), batch_step, progress,
                    modules=[self.net_], min_batch_rows=2)          # pairs need two rows
        raw_bits = self._raw_bits(X)
        self.bit_order_ = self._order_bits(raw_bits, item_class)
        self.bits_ = raw_bits[:, self.bit_order_]
        self.codes_ = bits_to_digits(self.bits_, self.bits_per_digit)
        # inverse_transform: the mean training row of each full code (as random_codes does)
        table, inverse = np.unique(self.codes_, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        self.code_table_ = table
        self.code_means_ = (np.stack([np.bincount(inverse, weights=X[:, f], minlength=len(table))
                                      for f in range(X.shape[1])], axis=1)
                            / np.bincount(inverse)[:, None]).astype(np.float32)
        self.global_mean_ = X.astype(np.float64).mean(0).astype(np.float32)
        return self

    def _order_bits(self, bits: np.ndarray, item_class: np.ndarray) -> np.ndarray:
        if self.bit_order == "trained" or len(bits) < 2:
            return np.arange(self.n_bits)
        rng = np.random.default_rng(self.random_state)
        m = int(self.n_order_pairs)
        i = rng.integers(0, len(bits), size=m)
        j = rng.integers(0, len(bits) - 1, size=m)
        j = j + (j >= i)
        similarity = 1.0 - self.label_distance_[item_class[i], item_class[j]].astype(np.float64)
        return greedy_bit_order(bits, i, j, similarity)

    def _raw_bits(self, X: np.ndarray) -> np.ndarray:
        return (predict_in_batches(self.net_, X, self._device) > 0.5).astype(np.uint8)

    def embed(self, X) -> np.ndarray:
        """The relaxed codes z in [0, 1]^B (network order, before binarisation)."""
        X = check_features(self, X)
        check_is_fitted(self, "net_")
        return predict_in_batches(self.net_, X, self._device)

    def transform_bits(self, X) -> np.ndarray:
        """Hash bits (n, B) in {0, 1}, in the fitted bit order."""
        X = check_features(self, X)
        check_is_fitted(self, "bit_order_")
        return self._raw_bits(X)[:, self.bit_order_]

    def retrieval_codes(self, X) -> np.ndarray:
        """What Hamming-distance retrieval (mAHP, mAP) compares: the bits, as int64."""
        return self.transform_bits(X).astype(np.int64)

    def transform(self, X) -> np.ndarray:
        return bits_to_digits(self.transform_bits(X), self.bits_per_digit)

    def predict(self, X) -> np.ndarray:
        """SHRED's classifier on z (meaningful only when lambda_cls > 0)."""
        X = check_features(self, X)
        logits = predict_in_batches(lambda x: self.net_.classifier(self.net_(x)), X, self._device)
        return self.classes_[logits.argmax(1)]

    def inverse_transform(self, codes) -> np.ndarray:
        return self._code_mean_reconstruction(codes)

    def _get_state(self) -> dict:
        return {**module_state(self.net_, "net"), "bit_order": self.bit_order_,
                "classes": self.classes_.astype(str), "label_distance": self.label_distance_,
                "code_table": self.code_table_, "code_means": self.code_means_,
                "global_mean": self.global_mean_}

    def _set_state(self, state: dict, n_features: int) -> None:
        self._validate_params()
        self.classes_ = np.asarray(state["classes"]).astype(str)
        self._build(n_features, len(self.classes_))
        load_module_state(self.net_, state, "net")
        self.net_.eval()
        self.bit_order_ = np.asarray(state["bit_order"], dtype=np.int64)
        self.label_distance_ = np.asarray(state["label_distance"], dtype=np.float32)
        self.code_table_ = np.asarray(state["code_table"], dtype=np.int64)
        self.code_means_ = np.asarray(state["code_means"], dtype=np.float32)
        self.global_mean_ = np.asarray(state["global_mean"], dtype=np.float32)
        self.bits_ = digits_to_bits(np.asarray(self.codes_), self.bits_per_digit)
