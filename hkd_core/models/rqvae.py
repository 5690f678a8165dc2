"""RQ-VAE codes: an autoencoder with a residual vector quantiser in its bottleneck, the
coarse-to-fine "semantic IDs" of generative retrieval / recommendation (TIGER, Rajput et al.,
NeurIPS 2023; RQ-VAE of Lee et al., CVPR 2022).

    z = encoder(x)                                   MLP, d -> hidden... -> latent_dim
    r_0 = z;  c_d = argmin_k |r_{d-1} - C_d[k]|;  r_d = r_{d-1} - C_d[c_d]      d = 1..D
    z_q = sum_d C_d[c_d]  (straight-through to the encoder)
    x_hat = decoder(z_q)                             MLP, latent_dim -> ... -> d
    loss = |x_hat - x|^2 (mean over rows of the sum over features)
           + commitment * sum_d |r_{d-1} - sg(C_d[c_d])|^2 (mean over rows and latent dims)

Digit d of a point is c_d in [0, K): the first digits name coarse regions of the latent space,
later ones refine the residual (as in ``rq``, but the space is learned jointly with the
decoder). Codes are (n, D) int64.

The quantiser is ``vector_quantize_pytorch.ResidualVQ`` (lucidrains, MIT), not a hand-written
one. Its codebooks are updated by exponential moving averages of the assigned residuals
(``ema_decay``), not by gradients, so the loss the optimiser sees is reconstruction +
commitment (the codebook term of VQ-VAE is replaced by the EMA update, as in the library's
default and in SoundStream/TIGER practice). Against dead codes:

* ``kmeans_init``: each level's codebook starts as k-means (``kmeans_iters`` iterations) of the
  residuals of one initialisation pass over up to ``init_rows`` training rows (the library runs
  k-means on the first batch it sees; that batch is this pass, not a 128-row mini-batch);
* ``dead_code_threshold``: a codeword whose EMA cluster size falls below this many rows per
  batch is replaced by a random residual of the current batch (the library's
  ``threshold_ema_dead_code``); 0 switches resets off.

Training: Adam, mini-batches, ``epochs`` passes; one ``history_`` record per epoch with the
loss, its reconstruction and commitment parts and the number of distinct codewords used per
level (``codewords_used``, a list of D ints over the training rows). CUDA when available
(``device='auto'``). Everything random (initialisation, k-means, dead-code resets, shuffling)
runs under ``random_state``, so a CPU fit is repeatable.
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
from hkd_core.models.modules import mlp
from hkd_core.models.torch_utils import (
    check_device,
    check_features,
    check_n_threads,
    load_module_state,
    module_state,
    predict_in_batches,
)

from hkd_core.models.base import MAX_D, MAX_K  # noqa: E402  (the shared limits)


def _residual_vq(latent_dim: int, K: int, D: int, kmeans_init: bool, kmeans_iters: int,
                 dead_code_threshold: float, ema_decay: float):
    from vector_quantize_pytorch import ResidualVQ

    return ResidualVQ(dim=latent_dim, num_quantizers=D, codebook_size=K, decay=ema_decay,
                      kmeans_init=kmeans_init, kmeans_iters=kmeans_iters,
                      threshold_ema_dead_code=dead_code_threshold, commitment_weight=1.0)


class RQVAENet(nn.Module):
    """Encoder MLP -> ResidualVQ -> decoder MLP; returns (x_hat, indices (n, D), commit (D,))."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], latent_dim: int, K: int, D: int,
                 kmeans_init: bool, kmeans_iters: int, dead_code_threshold: float,
                 ema_decay: float):
        super().__init__()
        self.encoder = mlp([n_features, *hidden, latent_dim], "relu")
        self.quantizer = _residual_vq(latent_dim, K, D, kmeans_init, kmeans_iters,
                                      dead_code_threshold, ema_decay)
        self.decoder = mlp([latent_dim, *reversed(hidden), n_features], "relu")

    def forward(self, x: torch.Tensor):
        z_q, indices, commit = self.quantizer(self.encoder(x))
        return self.decoder(z_q), indices, commit

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer(self.encoder(x))[1]

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.get_output_from_indices(indices))


class RQVAE(CodeModel):
    """RQ-VAE coder: encoder, D residual quantisers of K codewords, decoder.

    Parameters
    ----------
    K : codewords per level (digit alphabet), in [2, 1024].
    D : quantiser levels = code length, in [1, 64].
    hidden : encoder widths (the decoder mirrors them); latent_dim : width of the quantised space.
    commitment : weight of the commitment term (VQ-VAE's beta; TIGER uses 0.25).
    kmeans_init, kmeans_iters, init_rows : k-means initialisation of the codebooks (see module).
    dead_code_threshold : EMA cluster size below which a codeword is reset (0 = never).
    ema_decay : decay of the codebooks' moving averages, in (0, 1).
    epochs, batch_size, lr : Adam training.
    random_state : everything random in the fit. device : 'auto' (CUDA when available), 'cpu', 'cuda[:N]'.
    n_threads : torch CPU threads during fit (None: torch's setting).
    """

    model_name = "rqvae"

    def __init__(self, K: int = 16, D: int = 16, hidden: tuple = (128,), latent_dim: int = 32,
                 commitment: float = 0.25, kmeans_init: bool = True, kmeans_iters: int = 10,
                 init_rows: int = 4096, dead_code_threshold: float = 2.0, ema_decay: float = 0.8,
                 epochs: int = 100, batch_size: int = 128, lr: float = 1e-3, random_state: int = 0,
                 device: str = "auto", n_threads: int | None = 1):
        self.K = K
        self.D = D
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.commitment = commitment
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.init_rows = init_rows
        self.dead_code_threshold = dead_code_threshold
        self.ema_decay = ema_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads

    def _validate_params(self) -> None:
        check_int("K", self.K, 2, MAX_K)
        check_int("D", self.D, 1, MAX_D)
        if not isinstance(self.hidden, (tuple, list)):
            raise ValueError(f"hidden must be a tuple of layer widths, got {self.hidden!r}")
        for width in self.hidden:
            check_int("hidden width", width, 1)
        check_int("latent_dim", self.latent_dim, 1)
        check_float("commitment", self.commitment, 0.0)
        if not isinstance(self.kmeans_init, (bool, np.bool_)):
            raise ValueError(f"kmeans_init must be True or False, got {self.kmeans_init!r}")
        check_int("kmeans_iters", self.kmeans_iters, 1)
        check_int("init_rows", self.init_rows, 1)
        check_float("dead_code_threshold", self.dead_code_threshold, 0.0)
        check_float("ema_decay", self.ema_decay, 0.0, 1.0, low_open=True)
        if self.ema_decay >= 1.0:
            raise ValueError(f"ema_decay must be < 1, got {self.ema_decay}")
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_int("random_state", self.random_state, 0)
        check_device(self.device)
        check_n_threads(self.n_threads)

    def _build(self, n_features: int) -> None:
        self._device = choose_device(self.device)
        self.net_ = RQVAENet(n_features, tuple(int(h) for h in self.hidden), int(self.latent_dim),
                             int(self.K), int(self.D), bool(self.kmeans_init),
                             int(self.kmeans_iters), float(self.dead_code_threshold),
                             float(self.ema_decay)).to(self._device)

    def _check_fit_rows(self, X: np.ndarray) -> None:
        # (the library draws k-means seeds and dead-code replacements from torch's global RNG,
        # which the fit seeds with random_state: CodeModel._torch_fit)
        if len(X) < self.K and self.kmeans_init:
            raise ValueError(f"rqvae with kmeans_init needs at least K={self.K} training rows, "
                             f"got {len(X)}; lower K or set kmeans_init=False")

    def _fit(self, X: np.ndarray, progress: ProgressCallback | None) -> "RQVAE":
        self._build(X.shape[1])
        device, net = self._device, self.net_
        X_t = torch.from_numpy(X).to(device)
        shuffle_gen = self._shuffle_generator()
        net.train()
        # One pass over a sample starts the codebooks (k-means of its residuals when kmeans_init).
        init = torch.randperm(len(X), generator=shuffle_gen)[: self.init_rows]
        with torch.no_grad():
            net(X_t[init.to(device)])

        def batch_step(x, idx):
            x_hat, _, commit = net(x)
            recon = ((x_hat - x) ** 2).sum(dim=1).mean()
            commit = commit.sum()
            loss = recon + self.commitment * commit
            return loss, {"loss": loss.item(), "reconstruction": recon.item(),
                          "commitment": commit.item()}

        def epoch_record(epoch, means):
            if epoch == self.epochs or epoch == 1 or epoch % max(1, self.epochs // 10) == 0:
                net.eval()
                codes = predict_in_batches(net.encode, X, device)
                means["codewords_used"] = [int(len(np.unique(codes[:, d]))) for d in range(self.D)]
            return means

        self._train(X_t, net.parameters(), batch_step, progress, modules=[net],
                    generator=shuffle_gen, epoch_record=epoch_record)
        self.codes_ = self.transform(X)
        return self

    def transform(self, X) -> np.ndarray:
        X = check_features(self, X)
        check_is_fitted(self, "net_")
        self.net_.eval()
        return predict_in_batches(self.net_.encode, X, self._device).astype(np.int64)

    def inverse_transform(self, codes) -> np.ndarray:
        check_is_fitted(self, "net_")
        codes = torch.from_numpy(self._check_codes(codes)).to(self._device)
        self.net_.eval()
        with torch.no_grad():
            return self.net_.decode(codes).cpu().numpy().astype(np.float32)

    def _get_state(self) -> dict:
        return module_state(self.net_, "net")

    def _set_state(self, state: dict, n_features: int) -> None:
        self._validate_params()
        self._build(n_features)
        load_module_state(self.net_, state, "net")
        self.net_.eval()
