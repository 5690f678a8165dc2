"""The HKD objective J = alpha * E + beta * KL (paper eq. 7, 9, 10, 12, 13).

The KL is pt-SEE's exemplar-centred KL between the input-space neighbourhoods p_{j|i} (eq. 8,
precomputed by exemplars.calibrate_affinities) and Student-t neighbourhoods q over the decay-
weighted distances between code probabilities (eq. 9-10). Eq. 9 normalises q jointly over all
(point, exemplar) pairs of the batch, with p_{j|i}/n on the p side; t-SNE's per-row form
("conditional") is offered too.
"""
from __future__ import annotations

import torch

Q_NORMALIZATIONS = ("joint", "conditional")
_TINY = 1e-12


def weighted_code_distances(p_points: torch.Tensor, p_exemplars: torch.Tensor,
                            weights: torch.Tensor) -> torch.Tensor:
    """Eq. 10: d_ij = || w o (p_i - p_j) ||^2, w repeating w_d over the K entries of partition d.

    p_points (B, D, K); p_exemplars (Z, D, K) shared by the batch or (B, Z, D, K) per point.
    Returns (B, Z)."""
    w = weights.view(1, -1, 1)
    a = (p_points * w).flatten(1)                               # (B, DK)
    if p_exemplars.dim() == 3:
        b = (p_exemplars * w).flatten(1)                        # (Z, DK)
        d = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    else:
        b = (p_exemplars * w.unsqueeze(0)).flatten(2)           # (B, Z, DK)
        d = ((a.unsqueeze(1) - b) ** 2).sum(-1)
    return d.clamp_min(0.0)


def student_t_affinities(dist: torch.Tensor, valid: torch.Tensor | None,
                         normalization: str = "joint") -> torch.Tensor:
    """Eq. 9: q proportional to (1 + d_ij)^-1, normalised over all pairs ("joint") or per row."""
    kernel = 1.0 / (1.0 + dist)
    if valid is not None:
        kernel = kernel * valid
    if normalization == "joint":
        return kernel / kernel.sum().clamp_min(_TINY)
    if normalization == "conditional":
        return kernel / kernel.sum(1, keepdim=True).clamp_min(_TINY)
    raise ValueError(f"q_normalization must be one of {Q_NORMALIZATIONS}, got {normalization!r}")


def exemplar_kl(P: torch.Tensor, Q: torch.Tensor, normalization: str = "joint") -> torch.Tensor:
    """Eq. 12 on a batch: sum_i sum_j p log(p / q), with p = p_{j|i}/B under joint normalisation
    (eq. 8's p_{j|i}/n restricted to the batch), or averaged over rows for the conditional form."""
    B = P.shape[0]
    if normalization == "joint":
        P = P / B
    logs = torch.log(P.clamp_min(_TINY)) - torch.log(Q.clamp_min(_TINY))
    kl = (P * logs).sum()
    return kl if normalization == "joint" else kl / B


def reconstruction_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 7: mean over the batch of ||e_hat - e||^2."""
    return ((x_hat - x) ** 2).sum(1).mean()
