"""DCCL: compositional codes of Shu & Nakayama (ICLR 2018), the HKD paper's baseline.

Behaviour follows their reference implementation (design.md section 4), not a tidied variant:

* encoder: x -> tanh(Linear(d, D*K/2)) -> Linear(D*K/2, D*K) = a -> logits = log(softplus(a) + 1e-8),
  reshaped to D partitions of K;
* training: a *soft* Gumbel-softmax sample per partition at a fixed temperature tau = 1
  (no straight-through, no annealing);
* decoder: additive codebooks A (D, K, d): x_hat = sum_d onehot_d @ A_d (no bias);
* loss: 0.5 * ||x_hat - x||^2 summed over features, averaged over the batch;
* Adam (lr 1e-4), gradients clipped to a global norm of 0.001, batches of 64;
* exported codes: argmax of the logits (no noise).

"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from sklearn.utils.validation import check_is_fitted

from hkd_core.models.base import (
    CodeModel,
    ProgressCallback,
    check_float,
    check_int,
    choose_device,
)

from hkd_core.models.base import MAX_D, MAX_K  # noqa: E402,F401  (the shared limits; hkm, kd import them here)


from hkd_core.models.torch_utils import (  # noqa: F401  (hkm, random_codes import check_features here)
    check_device, check_features, check_n_threads, load_module_state, module_state, predict_in_batches, seeded_init)


class DCCLEncoder(nn.Module):
    """x (n, d) -> code logits (n, D, K) = log(softplus(a) + 1e-8)."""

    def __init__(self, n_features: int, D: int, K: int):
        super().__init__()
        self.D, self.K = D, K
        self.hidden = nn.Linear(n_features, max(1, D * K // 2))
        self.logits = nn.Linear(max(1, D * K // 2), D * K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.logits(torch.tanh(self.hidden(x)))
        # The reference squashes logits through log-softplus: logits are bounded below by log(1e-8).
        return torch.log(nn.functional.softplus(a) + 1e-8).view(-1, self.D, self.K)


class AdditiveCodebooks(nn.Module):
    """One codebook A_d (K, d) per partition; x_hat = sum_d onehot_d @ A_d."""

    def __init__(self, D: int, K: int, n_features: int):
        super().__init__()
        weight = torch.empty(D * K, n_features)
        # Glorot-uniform over the (D*K, d) matrix, as the reference's default TF initialiser.
        nn.init.xavier_uniform_(weight)
        self.weight = nn.Parameter(weight.view(D, K, n_features))

    def forward(self, onehots: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ndk,dkf->nf", onehots, self.weight)


def gumbel_softmax_sample(logits: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """Soft Gumbel-softmax sample over the last axis (noise drawn from ``generator``)."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log(-torch.log(u + 1e-20) + 1e-20)
    return torch.softmax((logits + gumbel) / tau, dim=-1)


# -- estimator -------------------------------------------------------------------------------------

class DCCL(CodeModel):
    """Shu & Nakayama's compositional code learning (the HKD paper's baseline).

    Parameters
    ----------
    K, D : codes have D digits in [0, K).
    epochs : passes over the data. Adam at lr 1e-4 moves a weight by about 1e-4 per step, so
        convergence takes tens of thousands of steps on data of scale ~10: on the synthetic
        training split (1,280 points, 20 batches an epoch) the loss is still 54 after 200 epochs,
        0.7 after 1,000 and 0.19 after 1,500. 1,000 is the default (20 s on one core here).
    batch_size, lr, tau, max_grad_norm : reference values 64, 1e-4, 1.0, 0.001.
    random_state : initialisation, shuffling and Gumbel noise; fixed seed -> repeatable fit on CPU.
    device : 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'.
    n_threads : torch CPU threads during fit (restored afterwards); None keeps torch's setting.
    """

    model_name = "dccl"

    def __init__(self, K: int = 16, D: int = 16, epochs: int = 1000, batch_size: int = 64,
                 lr: float = 1e-4, tau: float = 1.0, max_grad_norm: float = 0.001,
                 random_state: int = 0, device: str = "auto", n_threads: int | None = 1):
        self.K = K
        self.D = D
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.tau = tau
        self.max_grad_norm = max_grad_norm
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads

    def _validate_params(self) -> None:
        check_int("K", self.K, 2, MAX_K)
        check_int("D", self.D, 1, MAX_D)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_float("tau", self.tau, 0.0, low_open=True)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, low_open=True)
        check_int("random_state", self.random_state, 0)
        check_device(self.device)
        check_n_threads(self.n_threads)

    def _build(self, n_features: int) -> None:
        self._device = choose_device(self.device)
        encoder, codebooks = seeded_init(self.random_state, lambda: (
            DCCLEncoder(n_features, self.D, self.K), AdditiveCodebooks(self.D, self.K, n_features)))
        self.encoder_ = encoder.to(self._device)
        self.codebooks_ = codebooks.to(self._device)

    def _fit(self, X: np.ndarray, progress: ProgressCallback | None) -> "DCCL":
        self._build(X.shape[1])
        noise_gen = torch.Generator(device=self._device).manual_seed(self.random_state + 1)

        def batch_step(x, idx):
            logits = self.encoder_(x)
            x_hat = self.codebooks_(gumbel_softmax_sample(logits, self.tau, noise_gen))
            loss = 0.5 * ((x_hat - x) ** 2).sum(dim=1).mean()
            # The reference logs how peaked the code distributions are (near 1 = decided codes).
            max_prob = torch.softmax(logits.detach(), -1).max(-1).values.mean().item()
            return loss, {"loss": loss.item(), "max_prob": max_prob}

        self._train(torch.from_numpy(X).to(self._device),
                    [*self.encoder_.parameters(), *self.codebooks_.parameters()], batch_step,
                    progress, modules=[self.encoder_], max_grad_norm=self.max_grad_norm)
        self.codes_ = self.transform(X)
        return self

    def transform(self, X) -> np.ndarray:
        X = check_features(self, X)
        codes = predict_in_batches(lambda x: self.encoder_(x).argmax(-1), X, self._device)
        return codes.astype(np.int64)

    def inverse_transform(self, codes) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        codes = torch.from_numpy(self._check_codes(codes))
        onehots = nn.functional.one_hot(codes, self.K).float().to(self._device)
        with torch.no_grad():
            return self.codebooks_(onehots).cpu().numpy().astype(np.float32)

    def _get_state(self) -> dict:
        return {**module_state(self.encoder_, "encoder"), **module_state(self.codebooks_, "codebooks")}

    def _set_state(self, state: dict, n_features: int) -> None:
        self._validate_params()
        self._build(n_features)
        load_module_state(self.encoder_, state, "encoder")
        load_module_state(self.codebooks_, state, "codebooks")
        self.encoder_.eval()
