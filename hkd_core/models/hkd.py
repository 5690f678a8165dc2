"""The HKD estimator: hierarchical K-way D-dimensional codes (Liang, Min, Guo, Wang, IJCAI 2019).

    HKD(K=16, D=16).fit(X).codes_          # integer codes (n, D), values in [0, K)

Pieces: modules.py (encoder, relaxation, Proj, decoder, decay weights), exemplars.py (exemplar
selection and perplexity calibration, eq. 8), loss.py (eq. 7, 9, 10, 12). This file holds the
parameters, their validation and the training loop.

At scale: fit keeps only X, the calibrated betas (n x perplexities) and, with neighbour
exemplars, their indices and distances; p_{j|i} of a batch is rebuilt at each step from the
betas (exemplars.exemplar_affinities), so memory grows with n * d, not n * exemplars. Each step
encodes the batch, the shared exemplars and the batch's neighbour rows in one encoder pass. It runs
on CUDA whenever torch sees a GPU (device="auto").
"""
from __future__ import annotations

import time

import numpy as np
import torch

from hkd_core.models.base import (MAX_D, MAX_HIDDEN, MAX_HIDDEN_LAYERS, MAX_K, CodeModel, check_choice,
                                  check_float, check_int, choose_device)
from hkd_core.models.exemplars import (EQ8_METRICS, exemplar_affinities, exemplar_betas,
                                       exemplar_distances, rim_distance, select_exemplars)
from hkd_core.models.loss import (Q_NORMALIZATIONS, exemplar_kl, reconstruction_error,
                                  student_t_affinities, weighted_code_distances)
from hkd_core.models.modules import ACTIVATIONS, RELAXATIONS, HKDAutoencoder, decay_weights
from hkd_core.models.torch_utils import check_features, check_n_threads
from sklearn.utils.validation import check_is_fitted
from hkd_core.neighbours import kneighbors

OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
ABLATIONS = (None, "no-recon", "no-kl", "no-decay")


class HKD(CodeModel):
    """Hierarchical K-way D-dimensional codes learnt by a pt-SEE-regularised autoencoder.

    Parameters
    ----------
    K, D : code cardinality and length.
    hidden : encoder hidden layer widths (eq. 1's f); the paper uses 20 (synthetic), 100 (CIFAR).
    code_dim, decoder_hidden : width of A_d c_d and hidden layers of the shared decoder g (eq. 5).
    activation : nonlinearity of encoder and g.
    w0, decay : decay weights w_d = w0 exp(-decay * d) (eq. 11), used in eq. 5 and eq. 10.
    alpha, beta : weights of reconstruction and KL in J = alpha E + beta KL (eq. 13).
    perplexities, kl_weights : one KL term per perplexity (the synthetic setting uses 5 and 11).
    q_normalization : "joint" (eq. 9, over all pairs of the batch) or "conditional" (per row).
    n_kmeans_exemplars, n_random_exemplars : shared exemplars (§2.2); n_neighbour_exemplars :
        each point's own nearest neighbours added to its exemplars (§3.1, CIFAR setting).
    metric : input-space distance of eq. 8: "euclidean" (squared) or "poincare".
    relaxation : "softmax" (eq. 4, tempered) or "straight-through" (KD codes, one-hot forward).
    tau_start, tau_end : temperature annealed geometrically over the epochs.
    epochs, batch_size, lr, optimizer : training. The paper: RMSprop, lr 1e-4, batch 128; the
        defaults here are lr 1e-3 and 200 epochs (ours: 1e-3 reaches in 200 epochs what 1e-4
        needs ~10x more for on both shipped data sets), with decay 0.2 between the synthetic
        (0.1) and mammals (0.3) presets. These defaults are what a user's own file gets, in
        the CLI (presets.GENERIC_TRAINING) and in the app (app.state.BASE_CONTROLS).
    random_state : makes a run repeatable on the same device.
    device : "auto" (CUDA when available, else CPU), "cpu", "cuda", ...
    n_threads : torch CPU threads during fit (None: leave torch's setting). Small networks gain
        nothing from intra-op threads and lose much when the other core is busy.
    ablation : None, "no-recon" (alpha=0), "no-kl" (beta=0), "no-decay" (decay=0) - Table 2.

    Attributes: codes_, history_, exemplars_, neighbour_recall_ (recall of the neighbour
    exemplars' search: 1.0 exact, below 1 when hkd_core.neighbours searched approximately;
    None without neighbour exemplars).
    """

    def __init__(self, K=16, D=16, hidden=(64,), code_dim=32, decoder_hidden=(64,),
                 activation="tanh", w0=1.0, decay=0.2, alpha=1.0, beta=1.0,
                 perplexities=(10.0,), kl_weights=None, q_normalization="joint",
                 n_kmeans_exemplars=200, n_random_exemplars=100, n_neighbour_exemplars=0,
                 metric="euclidean", relaxation="softmax", tau_start=1.0, tau_end=0.1,
                 epochs=200, batch_size=128, lr=1e-3, optimizer="rmsprop", random_state=0,
                 device="auto", ablation=None, n_threads=1):
        self.K = K
        self.D = D
        self.hidden = hidden
        self.code_dim = code_dim
        self.decoder_hidden = decoder_hidden
        self.activation = activation
        self.w0 = w0
        self.decay = decay
        self.alpha = alpha
        self.beta = beta
        self.perplexities = perplexities
        self.kl_weights = kl_weights
        self.q_normalization = q_normalization
        self.n_kmeans_exemplars = n_kmeans_exemplars
        self.n_random_exemplars = n_random_exemplars
        self.n_neighbour_exemplars = n_neighbour_exemplars
        self.metric = metric
        self.relaxation = relaxation
        self.tau_start = tau_start
        self.tau_end = tau_end
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.random_state = random_state
        self.device = device
        self.ablation = ablation
        self.n_threads = n_threads

    @property
    def model_name(self) -> str:
        return "hkd" if self.ablation is None else f"hkd-{self.ablation}"

    # -- validation ---------------------------------------------------------------------
    def _validate(self, X: np.ndarray) -> dict:
        n = len(X)
        check_int("K", self.K, 2, MAX_K)
        check_int("D", self.D, 1, MAX_D)
        hidden = _int_tuple("hidden", self.hidden)
        decoder_hidden = _int_tuple("decoder_hidden", self.decoder_hidden)
        check_int("code_dim", self.code_dim, 1)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_float("w0", self.w0, 0.0, low_open=True)
        check_float("decay", self.decay, 0.0)
        check_float("alpha", self.alpha, 0.0)
        check_float("beta", self.beta, 0.0)
        perplexities = _float_tuple("perplexities", self.perplexities)
        if any(p <= 1.0 for p in perplexities):
            raise ValueError(f"perplexities must all be > 1, got {perplexities}")
        kl_weights = (1.0,) * len(perplexities) if self.kl_weights is None else \
            _float_tuple("kl_weights", self.kl_weights)
        if len(kl_weights) != len(perplexities) or any(w < 0 for w in kl_weights):
            raise ValueError(f"kl_weights must be {len(perplexities)} non-negative numbers (one per "
                             f"perplexity), got {self.kl_weights!r}")
        check_choice("q_normalization", self.q_normalization, Q_NORMALIZATIONS)
        check_int("n_kmeans_exemplars", self.n_kmeans_exemplars, 0)
        check_int("n_random_exemplars", self.n_random_exemplars, 0)
        check_int("n_neighbour_exemplars", self.n_neighbour_exemplars, 0, n - 1)
        n_exemplars = (min(self.n_kmeans_exemplars, n) + min(self.n_random_exemplars, n)
                       + self.n_neighbour_exemplars)
        if n_exemplars < 2:
            raise ValueError("need at least 2 exemplars per point: raise n_kmeans_exemplars, "
                             "n_random_exemplars or n_neighbour_exemplars")
        if max(perplexities) >= n_exemplars - 1:
            raise ValueError(f"perplexities must be below the number of exemplars per point "
                             f"({n_exemplars}) minus one, got {max(perplexities)}")
        check_choice("metric", self.metric, ("euclidean", "poincare"))
        if self.metric == "poincare" and np.any(np.linalg.norm(X, axis=1) >= 1.0):
            raise ValueError("metric='poincare' needs every row inside the unit ball (norm < 1)")
        check_choice("relaxation", self.relaxation, RELAXATIONS)
        check_float("tau_start", self.tau_start, 0.0, low_open=True)
        check_float("tau_end", self.tau_end, 0.0, low_open=True)
        check_int("epochs", self.epochs, 1, 1_000_000)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_int("random_state", self.random_state, 0)
        check_choice("ablation", self.ablation, ABLATIONS)
        check_n_threads(self.n_threads)
        alpha, beta, decay = float(self.alpha), float(self.beta), float(self.decay)
        if self.ablation == "no-recon":
            alpha = 0.0
        elif self.ablation == "no-kl":
            beta = 0.0
        elif self.ablation == "no-decay":
            decay = 0.0
        if alpha == 0.0 and beta == 0.0:
            raise ValueError("alpha and beta are both 0: nothing to learn")
        try:
            device = choose_device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device {self.device!r} is not usable: {exc}") from None
        return dict(hidden=hidden, decoder_hidden=decoder_hidden, perplexities=perplexities,
                    kl_weights=kl_weights, alpha=alpha, beta=beta, decay=decay, device=device)

    # -- training -----------------------------------------------------------------------
    def _build(self, n_features: int, cfg: dict) -> None:
        self.device_ = cfg["device"]
        self.module_ = HKDAutoencoder(n_features, self.K, self.D, cfg["hidden"], self.code_dim,
                                      cfg["decoder_hidden"], self.activation).to(self.device_)
        self.weights_ = decay_weights(self.D, self.w0, cfg["decay"]).to(self.device_)

    def fit(self, X, y=None, progress=None):
        X = self._validate_fit_X(X)
        cfg = self._validate(X)
        with self._torch_fit():              # seeds the module initialisation (random_state)
            return self._fit(X, cfg, progress)

    def _fit(self, X, cfg, progress):
        n, n_features = X.shape
        self._build(n_features, cfg)
        dev = self.device_
        poincare = self.metric == "poincare"

        # exemplars and the input-space neighbourhoods (eq. 8): betas calibrated once, chunk by
        # chunk; each step rebuilds its batch's p_{j|i} from them (no (n, z) array is kept)
        exemplars, exemplar_rows = select_exemplars(
            X, self.n_kmeans_exemplars, self.n_random_exemplars, self.metric, self.random_state)
        use_kl = cfg["beta"] > 0
        nb = None
        if self.n_neighbour_exemplars and use_kl:
            nb = kneighbors(X, self.n_neighbour_exemplars, EQ8_METRICS[self.metric])
        # 1.0 when exact; the measured recall when n is past the engine's approximate threshold
        self.neighbour_recall_ = None if nb is None else nb.recall
        betas = (exemplar_betas(X, exemplars, exemplar_rows,
                                None if nb is None else nb.distances.astype(np.float32),
                                cfg["perplexities"], self.metric) if use_kl else None)
        self.exemplars_ = exemplars

        X_t = torch.as_tensor(X, device=dev)
        ex_t = torch.as_tensor(exemplars, device=dev)
        if use_kl:
            betas_t = torch.as_tensor(betas, device=dev)
            ex_rows_t = torch.as_tensor(exemplar_rows, device=dev)
            rim_t = torch.as_tensor(rim_distance(X), device=dev) if poincare else None
            ex_rim_t = torch.as_tensor(rim_distance(exemplars), device=dev) if poincare else None
            nbrs_t = None if nb is None else torch.as_tensor(nb.indices, device=dev)
            nb_dist_t = None if nb is None else torch.as_tensor(nb.distances, dtype=torch.float32, device=dev)
        relax = RELAXATIONS[self.relaxation]
        tau = self.tau_start
        start = time.perf_counter()

        def start_epoch(epoch):
            nonlocal tau
            tau = _annealed(self.tau_start, self.tau_end, epoch - 1, self.epochs)

        def batch_step(x, batch):
            B = len(batch)
            kl_value = torch.zeros((), device=dev)
            if use_kl:
                # One encoder pass for the batch, the shared exemplars and the batch's own
                # neighbour exemplars (each distinct row once): the encoder works row by row,
                # so this is the same computation as separate passes, in one call. The
                # exemplars must be re-encoded at every step: their codes depend on the
                # weights the previous step changed, and the KL's gradient flows through them.
                if nbrs_t is not None:
                    nbr = nbrs_t[batch]
                    rows, inverse = torch.unique(torch.cat([batch, nbr.reshape(-1)]), return_inverse=True)
                    logits_all = self.module_.encoder(torch.cat([X_t[rows], ex_t]))
                    logits_rows, logits_ex = logits_all[:len(rows)], logits_all[len(rows):]
                    logits = logits_rows[inverse[:B]]
                else:
                    logits_all = self.module_.encoder(torch.cat([x, ex_t]))
                    logits, logits_ex = logits_all[:B], logits_all[B:]
                p_points = torch.softmax(logits, -1)
                d = weighted_code_distances(p_points, torch.softmax(logits_ex, -1), self.weights_)
                d_in = exemplar_distances(x, ex_t, self.metric,
                                          rim_t[batch] if poincare else None, ex_rim_t)
                invalid = ex_rows_t.unsqueeze(0) == batch.unsqueeze(1)    # not its own exemplar
                if nbrs_t is not None:
                    p_nb = torch.softmax(logits_rows, -1)[inverse[B:]].view(B, nbr.shape[1], self.D, self.K)
                    d = torch.cat([d, weighted_code_distances(p_points, p_nb, self.weights_)], 1)
                    d_in = torch.cat([d_in, nb_dist_t[batch]], 1)
                    invalid = torch.cat([invalid, torch.zeros_like(nbr, dtype=torch.bool)], 1)
                Q = student_t_affinities(d, (~invalid).float(), self.q_normalization)
                for j, w in enumerate(cfg["kl_weights"]):
                    P = exemplar_affinities(d_in, betas_t[batch, j], invalid)
                    kl_value = kl_value + w * exemplar_kl(P, Q, self.q_normalization)
            else:
                logits = self.module_.encoder(x)
            x_hat = self.module_.decoder(relax(logits, tau), self.weights_)
            rec = reconstruction_error(x_hat, x)
            loss = cfg["alpha"] * rec + cfg["beta"] * kl_value
            # summed on the device, read once per epoch (no per-step synchronisation on a GPU)
            return loss, {"loss": loss.detach().double(), "reconstruction": rec.detach().double(),
                          "kl": kl_value.detach().double()}

        self._train(X_t, self.module_.parameters(), batch_step, progress, modules=[self.module_],
                    optimizer=OPTIMIZERS[self.optimizer], start_epoch=start_epoch,
                    epoch_record=lambda epoch, means: {"tau": tau, "seconds": time.perf_counter() - start,
                                                       **means})
        self.codes_ = self.transform(X)
        return self

    # -- inference ----------------------------------------------------------------------
    def _check_fitted(self):
        check_is_fitted(self, "module_")

    def code_probabilities(self, X) -> np.ndarray:
        """Eq. 2: softmax code probabilities (n, D, K)."""
        X = check_features(self, X)
        with torch.no_grad():
            logits = self.module_.encoder(torch.as_tensor(X, device=self.device_))
            return torch.softmax(logits, -1).cpu().numpy()

    def transform(self, X) -> np.ndarray:
        """Eq. 3: hard codes (n, D) = argmax of each partition's logits."""
        X = check_features(self, X)
        out = []
        with torch.no_grad():
            for chunk in torch.as_tensor(X).split(8192):
                out.append(self.module_.encoder(chunk.to(self.device_)).argmax(-1).cpu())
        return torch.cat(out).numpy().astype(np.int64)

    def inverse_transform(self, codes) -> np.ndarray:
        """Eq. 5 with one-hot codes: reconstructions (n, d)."""
        self._check_fitted()
        codes = self._check_codes(codes)
        with torch.no_grad():
            one_hot = torch.nn.functional.one_hot(torch.as_tensor(codes, device=self.device_), self.K)
            return self.module_.decoder(one_hot.float(), self.weights_).cpu().numpy()

    # -- persistence --------------------------------------------------------------------
    def _get_state(self) -> dict:
        self._check_fitted()
        state = {"module." + k: v.detach().cpu().numpy() for k, v in self.module_.state_dict().items()}
        state["weights_"] = self.weights_.cpu().numpy()
        state["exemplars_"] = self.exemplars_
        return state

    def _set_state(self, state: dict, n_features: int) -> None:
        cfg = {"hidden": _int_tuple("hidden", self.hidden),
               "decoder_hidden": _int_tuple("decoder_hidden", self.decoder_hidden),
               "decay": self.decay, "device": choose_device(self.device)}
        self._build(n_features, cfg)
        module_state = {k[len("module."):]: torch.as_tensor(v) for k, v in state.items()
                        if k.startswith("module.")}
        self.module_.load_state_dict(module_state)
        self.module_.eval()
        self.weights_ = torch.as_tensor(state["weights_"], device=self.device_)
        self.exemplars_ = state["exemplars_"]


def _annealed(start: float, end: float, epoch: int, epochs: int) -> float:
    """Geometric schedule from ``start`` (first epoch) to ``end`` (last epoch)."""
    if epochs <= 1:
        return float(end)
    return float(start * (end / start) ** (epoch / (epochs - 1)))


def _int_tuple(name: str, value) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of positive integers, got {value!r}") from None
    if any(v < 1 for v in out) or any(isinstance(v, bool) for v in value):
        raise ValueError(f"{name} must be a sequence of positive integers, got {value!r}")
    if len(out) > MAX_HIDDEN_LAYERS or any(v > MAX_HIDDEN for v in out):
        raise ValueError(f"{name} may have at most {MAX_HIDDEN_LAYERS} layers of at most {MAX_HIDDEN} units, "
                         f"got {value!r}")
    return out


def _float_tuple(name: str, value) -> tuple[float, ...]:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        value = (value,)
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a sequence of numbers, got {value!r}") from None
    if not out or not all(np.isfinite(out)):
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {value!r}")
    return out
