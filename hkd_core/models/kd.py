"""KD codes: Chen, Min & Sun, "Learning K-way D-dimensional discrete codes" (papers 003 and 001),
in their autoencoder form for given embeddings.

* encoder: MLP x -> D partitions of K code logits;
* code relaxation: tempering softmax zeta = softmax(logits / T) with the straight-through estimator
  of their Algorithm 1: the forward pass uses one_hot(argmax logits), the backward pass the gradient
  of zeta (o = stop_gradient(one_hot - zeta) + zeta). ``straight_through=False`` trains on zeta itself
  (their "CR" variant);
* temperature schedule T_t = max(tau_min, tau0 / (1 + tau_decay * t)), t = iteration (their §3 uses
  T0 = 1, decay 1 per iteration);
* code embeddings W^j (K, d') per digit, turned into an embedding by a composition function:
  ``"linear"``: v = (sum_j W^j_{c_j}) H;  ``"lstm"``: an LSTM over the D code embeddings,
  v = (sum_j h_j) H (paper 003 §2.2: "summing over LSTM outputs at all code bits");
* loss: mean squared reconstruction error; Adam.
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
from hkd_core.models.dccl import MAX_D, MAX_K
from hkd_core.models.torch_utils import (
    check_device,
    check_features,
    check_n_threads,
    load_module_state,
    module_state,
    predict_in_batches,
    seeded_init,
)

COMPOSITIONS = ("linear", "lstm")


class CodeLogitEncoder(nn.Module):
    """MLP x (n, d) -> code logits (n, D, K)."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], D: int, K: int):
        super().__init__()
        self.D, self.K = D, K
        layers, width = [], n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, D * K))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1, self.D, self.K)


def straight_through_softmax(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Forward: one_hot(argmax logits). Backward: gradient of softmax(logits / tau)."""
    soft = torch.softmax(logits / tau, dim=-1)
    hard = nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return (hard - soft).detach() + soft


class CodeEmbeddings(nn.Module):
    """W^j (K, d') per digit j: one-hot (or relaxed) codes (n, D, K) -> (n, D, d')."""

    def __init__(self, D: int, K: int, code_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(D, K, code_dim) * code_dim ** -0.5)

    def forward(self, onehots: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ndk,dke->nde", onehots, self.weight)


class LinearComposition(nn.Module):
    """v = (sum_j e_j) H."""

    def __init__(self, code_dim: int, n_features: int):
        super().__init__()
        self.out = nn.Linear(code_dim, n_features, bias=False)

    def forward(self, code_embeddings: torch.Tensor) -> torch.Tensor:
        return self.out(code_embeddings.sum(dim=1))


class LSTMComposition(nn.Module):
    """LSTM over the D code embeddings (hidden size d'); v = (sum_j h_j) H."""

    def __init__(self, code_dim: int, n_features: int):
        super().__init__()
        self.lstm = nn.LSTM(code_dim, code_dim, batch_first=True)
        self.out = nn.Linear(code_dim, n_features, bias=False)

    def forward(self, code_embeddings: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(code_embeddings)
        return self.out(h.sum(dim=1))


class KDCodes(CodeModel):
    """KD codes of Chen, Min & Sun with straight-through tempering softmax.

    Parameters
    ----------
    K, D : codes have D digits in [0, K).
    hidden : widths of the encoder's tanh hidden layers (may be empty).
    code_dim : d', the width of the code embeddings W^j (and of the LSTM).
    composition : 'linear' or 'lstm'.
    straight_through : one-hot forward pass with softmax gradients (True) or plain tempering
        softmax in both passes (False).
    tau0, tau_decay, tau_min : temperature schedule T_t = max(tau_min, tau0 / (1 + tau_decay * t)).
    epochs, batch_size, lr : Adam training.
    random_state, device : as for every torch model (repeatable on CPU with a fixed random_state).
    n_threads : torch CPU threads during fit (restored afterwards); None keeps torch's setting.
    """

    model_name = "kd"

    def __init__(self, K: int = 16, D: int = 16, hidden: tuple = (64,), code_dim: int = 32,
                 composition: str = "linear", straight_through: bool = True,
                 tau0: float = 1.0, tau_decay: float = 1e-3, tau_min: float = 0.1,
                 epochs: int = 100, batch_size: int = 64, lr: float = 1e-3,
                 random_state: int = 0, device: str = "auto", n_threads: int | None = 1):
        self.K = K
        self.D = D
        self.hidden = hidden
        self.code_dim = code_dim
        self.composition = composition
        self.straight_through = straight_through
        self.tau0 = tau0
        self.tau_decay = tau_decay
        self.tau_min = tau_min
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads

    def _validate_params(self) -> tuple[int, ...]:
        check_int("K", self.K, 2, MAX_K)
        check_int("D", self.D, 1, MAX_D)
        if isinstance(self.hidden, (str, bytes)) or not hasattr(self.hidden, "__iter__"):
            raise ValueError(f"hidden must be a sequence of layer widths >= 1, got {self.hidden!r}")
        hidden = tuple(check_int("hidden", h, 1) for h in self.hidden)
        check_int("code_dim", self.code_dim, 1)
        check_choice("composition", self.composition, COMPOSITIONS)
        if not isinstance(self.straight_through, (bool, np.bool_)):
            raise ValueError(f"straight_through must be True or False, got {self.straight_through!r}")
        check_float("tau0", self.tau0, 0.0, low_open=True)
        check_float("tau_decay", self.tau_decay, 0.0)
        check_float("tau_min", self.tau_min, 0.0)
        if self.tau_min > self.tau0:
            raise ValueError(f"tau_min must be <= tau0={self.tau0}, got {self.tau_min}")
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_int("random_state", self.random_state, 0)
        check_device(self.device)
        check_n_threads(self.n_threads)
        return hidden

    def temperature(self, iteration: int) -> float:
        """Backward-pass temperature at a given training iteration."""
        return max(self.tau_min, self.tau0 / (1.0 + self.tau_decay * iteration))

    def _build(self, n_features: int) -> None:
        hidden = self._validate_params()
        self._device = choose_device(self.device)
        composition_cls = LinearComposition if self.composition == "linear" else LSTMComposition

        def build():
            return (CodeLogitEncoder(n_features, hidden, self.D, self.K),
                    CodeEmbeddings(self.D, self.K, self.code_dim),
                    composition_cls(self.code_dim, n_features))

        encoder, embeddings, composition = seeded_init(self.random_state, build)
        self.encoder_ = encoder.to(self._device)
        self.code_embeddings_ = embeddings.to(self._device)
        self.composition_ = composition.to(self._device)

    def _modules(self):
        return {"encoder": self.encoder_, "code_embeddings": self.code_embeddings_,
                "composition": self.composition_}

    def _decode(self, onehots: torch.Tensor) -> torch.Tensor:
        return self.composition_(self.code_embeddings_(onehots))

    def _relax(self, logits: torch.Tensor, tau: float) -> torch.Tensor:
        if self.straight_through:
            return straight_through_softmax(logits, tau)
        return torch.softmax(logits / tau, dim=-1)

    def _fit(self, X: np.ndarray, progress: ProgressCallback | None) -> "KDCodes":
        self._build(X.shape[1])
        iteration, tau = 0, self.temperature(0)

        def batch_step(x, idx):
            nonlocal iteration, tau
            tau = self.temperature(iteration)
            iteration += 1
            loss = nn.functional.mse_loss(self._decode(self._relax(self.encoder_(x), tau)), x)
            return loss, {"loss": loss.item()}

        modules = list(self._modules().values())
        self._train(torch.from_numpy(X).to(self._device), [p for m in modules for p in m.parameters()],
                    batch_step, progress, modules=modules,
                    epoch_record=lambda epoch, means: {**means, "tau": tau})
        self.codes_ = self.transform(X)
        return self

    def transform(self, X) -> np.ndarray:
        X = check_features(self, X)
        return predict_in_batches(lambda x: self.encoder_(x).argmax(-1), X, self._device).astype(np.int64)

    def inverse_transform(self, codes) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        codes = torch.from_numpy(self._check_codes(codes))
        onehots = nn.functional.one_hot(codes, self.K).float().to(self._device)
        with torch.no_grad():
            return self._decode(onehots).cpu().numpy().astype(np.float32)

    def _get_state(self) -> dict:
        state = {}
        for name, module in self._modules().items():
            state.update(module_state(module, name))
        return state

    def _set_state(self, state: dict, n_features: int) -> None:
        self._build(n_features)
        for name, module in self._modules().items():
            load_module_state(module, state, name)
