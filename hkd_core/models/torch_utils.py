"""Torch helpers shared by the torch code models (HKD, DCCL, KD codes): device and thread
handling, seeded initialisation, batching, state_dict <-> numpy. The training loop that uses
them is CodeModel's (base.py: ``_torch_fit``, ``_train``)."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from sklearn.utils.validation import check_is_fitted

from hkd_core.models.base import CodeModel, check_int

def check_device(device) -> str:
    """'auto', 'cpu', 'cuda' or 'cuda:N'; a CUDA device must exist."""
    if not isinstance(device, str):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    try:
        torch.device("cpu" if device == "auto" else device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use 'auto' or 'cpu'")
    return device


def check_features(model: CodeModel, X) -> np.ndarray:
    """Validate X at transform time: fitted model, same number of columns as in fit."""
    from sklearn.utils.validation import validate_data

    check_is_fitted(model)
    return validate_data(model, X, reset=False, dtype=np.float32, ensure_all_finite=True)


def check_n_threads(n_threads) -> None:
    if n_threads is not None:
        check_int("n_threads", n_threads, 1)


@contextmanager
def torch_threads(n_threads: int | None):
    """Run a block with ``n_threads`` torch CPU threads (None: leave torch's setting), then restore.
    Small networks on batches of 64 rows gain nothing from intra-op threads; measured here, two
    threads made a DCCL fit 15x slower than one when the other core was busy."""
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def seeded_init(seed: int, build):
    """Build modules under a fixed torch seed without disturbing the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def epoch_batches(n: int, batch_size: int, generator: torch.Generator):
    """Shuffled mini-batch index tensors; the seeded generator makes the order repeatable."""
    order = torch.randperm(n, generator=generator)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def module_state(module: nn.Module, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_module_state(module: nn.Module, state: dict, prefix: str) -> None:
    p = prefix + "."
    sub = {k[len(p):]: torch.from_numpy(np.asarray(v)) for k, v in state.items() if k.startswith(p)}
    module.load_state_dict(sub, strict=True)


def predict_in_batches(fn, X: np.ndarray, device, batch_size: int = 4096) -> np.ndarray:
    """Apply fn (tensor -> tensor) to X in chunks, without gradients, returning numpy."""
    out = []
    with torch.no_grad():
        for i in range(0, len(X), batch_size):
            out.append(fn(torch.from_numpy(X[i:i + batch_size]).to(device)).cpu().numpy())
    return np.concatenate(out, axis=0)


# -- DCCL modules ---------------------------------------------------------------------------------
