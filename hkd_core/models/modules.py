"""Small torch modules of the HKD autoencoder (paper eq. 1-6, 11), one job each."""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


def mlp(sizes: list[int], activation: str, final_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class CodeEncoder(nn.Module):
    """Eq. 1-2: h = f(M e), split into D partitions of K logits. Returns logits (B, D, K)."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], K: int, D: int, activation: str):
        super().__init__()
        self.K, self.D = K, D
        self.net = mlp([n_features, *hidden, K * D], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1, self.D, self.K)


def tempered_softmax(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 4: the relaxed one-hot code softmax(h / tau)."""
    return F.softmax(logits / tau, dim=-1)


def straight_through_one_hot(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """KD codes (Chen et al.): the forward pass is the hard one-hot argmax, the backward pass
    is the gradient of softmax(h / tau)."""
    soft = F.softmax(logits / tau, dim=-1)
    hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()


def hard_one_hot(logits: torch.Tensor) -> torch.Tensor:
    """Eq. 3: inference codes."""
    return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)


RELAXATIONS = {"softmax": tempered_softmax, "straight-through": straight_through_one_hot}


def proj(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Eq. 6: x / (|x| + eps) when |x| >= 1, else x (keeps each code vector in the unit ball)."""
    norm = x.norm(dim=-1, keepdim=True)
    return torch.where(norm >= 1.0, x / (norm + eps), x)


def decay_weights(D: int, w0: float, decay: float) -> torch.Tensor:
    """Eq. 11: w_d = w0 * exp(-lambda * d) for d = 1..D."""
    d = torch.arange(1, D + 1, dtype=torch.float32)
    return w0 * torch.exp(-decay * d)


class CodeDecoder(nn.Module):
    """Eq. 5: e_hat = sum_d w_d g(Proj(A_d c_d)), with g shared by all partitions."""

    def __init__(self, K: int, D: int, code_dim: int, hidden: tuple[int, ...], n_features: int,
                 activation: str):
        super().__init__()
        self.codebooks = nn.Parameter(torch.randn(D, K, code_dim) / math.sqrt(code_dim))
        self.g = mlp([code_dim, *hidden, n_features], activation)

    def forward(self, codes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # codes (B, D, K) one-hot or relaxed; A_d c_d for every partition at once -> (B, D, code_dim)
        vectors = proj(torch.einsum("bdk,dkc->bdc", codes, self.codebooks))
        return torch.einsum("d,bdf->bf", weights, self.g(vectors))


class HKDAutoencoder(nn.Module):
    """Encoder + decoder; the relaxation and the training loop live in the estimator."""

    def __init__(self, n_features, K, D, hidden, code_dim, decoder_hidden, activation):
        super().__init__()
        self.encoder = CodeEncoder(n_features, hidden, K, D, activation)
        self.decoder = CodeDecoder(K, D, code_dim, decoder_hidden, n_features, activation)
