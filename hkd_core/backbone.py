"""Wide residual networks (Zagoruyko & Komodakis, BMVC 2016) as image feature extractors.

The paper's CIFAR-100 experiment (HKD §3.4, Fig. 4) trains a wide ResNet on the fine class labels
and learns HKD codes of each image's penultimate-layer embedding. This module holds the network
(small modules, one job each), its training loop (outside the modules) and the feature extractor:

    model, history = train_backbone(images_uint8_nhwc, fine_labels, BackboneConfig("wrn-16-2"))
    feats = extract_features(model, images_uint8_nhwc)      # (n, 64 * width) float32

Weights are saved as a plain ``state_dict`` (``save_backbone``) and loaded with
``torch.load(weights_only=True)`` (``load_backbone``): nothing in a weights file is executed.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from hkd_core.models.base import check_choice, check_float, check_int, choose_device

ProgressCallback = Callable[[dict], None]

_ARCH_PATTERN = re.compile(r"^wrn-(\d+)-(\d+)$")


def parse_backbone(name: str) -> tuple[int, int]:
    """``"wrn-28-10"`` -> (depth 28, width 10). Depth must be 6n+4 (n >= 1 blocks per group)."""
    if not isinstance(name, str):
        raise ValueError(f"backbone must be a string like 'wrn-28-10', got {name!r}")
    match = _ARCH_PATTERN.match(name.strip().lower())
    if match is None:
        raise ValueError(f"backbone must look like 'wrn-DEPTH-WIDTH' (e.g. 'wrn-28-10', 'wrn-16-2'), got {name!r}")
    depth, width = int(match.group(1)), int(match.group(2))
    if depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(f"backbone depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth} in {name!r}")
    if not 1 <= width <= 32:
        raise ValueError(f"backbone width must be in [1, 32], got {width} in {name!r}")
    return depth, width


# --- modules -----------------------------------------------------------------------------------

class ChannelNormalization(nn.Module):
    """Maps uint8-range images to per-channel standardised values. The training-set statistics
    live in buffers so that a saved state_dict carries them to feature extraction."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view_as(self.mean))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-3).view_as(self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class WideBasicBlock(nn.Module):
    """Pre-activation block BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3 with an identity or 1x1
    projection shortcut (the WRN paper's B(3,3) block)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        # The projection sees the pre-activated input, as in the reference WRN.
        residual = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + residual


class WideResNet(nn.Module):
    """WRN-depth-width for 32x32 images: stem conv(16) -> 3 groups of (depth-4)/6 blocks with
    16w, 32w, 64w channels (strides 1, 2, 2) -> BN-ReLU -> global average pool -> linear.

    ``features(x)`` returns the pooled 64w-dimensional penultimate embedding; ``forward`` the
    class logits. Input: float images in [0, 255], shape (B, 3, 32, 32)."""

    def __init__(self, depth: int = 28, width: int = 10, num_classes: int = 100, dropout: float = 0.0):
        super().__init__()
        check_int("depth", depth, 10)
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be 6n+4 (10, 16, 22, 28, ...), got {depth}")
        check_int("width", width, 1, 32)
        check_int("num_classes", num_classes, 2)
        check_float("dropout", dropout, 0.0, 0.9)
        blocks_per_group = (depth - 4) // 6
        channels = [16, 16 * width, 32 * width, 64 * width]
        self.depth, self.width, self.num_classes, self.dropout = depth, width, num_classes, dropout
        self.feature_dim = channels[-1]
        self.normalize = ChannelNormalization(3)
        self.stem = nn.Conv2d(3, channels[0], 3, padding=1, bias=False)
        groups = []
        for g, stride in enumerate((1, 2, 2)):
            blocks = [WideBasicBlock(channels[g] if b == 0 else channels[g + 1], channels[g + 1],
                                     stride if b == 0 else 1, dropout)
                      for b in range(blocks_per_group)]
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.Sequential(*groups)
        self.bn = nn.BatchNorm2d(channels[-1])
        self.classifier = nn.Linear(channels[-1], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.groups(self.stem(self.normalize(x)))
        out = F.relu(self.bn(out))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# --- configuration -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BackboneConfig:
    """Everything that determines a trained backbone (its hash is part of the feature cache key).

    Defaults follow the WRN paper's CIFAR recipe: SGD momentum 0.9 (Nesterov), lr 0.1, weight
    decay 5e-4, batch 128, 200 epochs, step schedule x0.2 at 30/60/80 % of training (or cosine).
    ``amp`` = mixed precision, used only on CUDA ("auto")."""

    arch: str = "wrn-28-10"
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    schedule: str = "step"
    dropout: float = 0.3
    seed: int = 0
    amp: str = "auto"

    def validate(self) -> "BackboneConfig":
        parse_backbone(self.arch)
        check_int("backbone_epochs", self.epochs, 0, 10_000)
        check_int("batch_size", self.batch_size, 2, 8192)
        check_float("lr", self.lr, 0.0, 10.0, low_open=True)
        check_float("momentum", self.momentum, 0.0, 0.999)
        check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        check_choice("schedule", self.schedule, ("step", "cosine"))
        check_float("dropout", self.dropout, 0.0, 0.9)
        check_int("seed", self.seed, 0)
        check_choice("amp", self.amp, ("auto", "on", "off"))
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def build_backbone(config: BackboneConfig, num_classes: int) -> WideResNet:
    depth, width = parse_backbone(config.arch)
    return WideResNet(depth, width, num_classes, config.dropout)


def learning_rate_at(config: BackboneConfig, epoch_fraction: float) -> float:
    """Learning rate at a (fractional) epoch: cosine to zero, or the WRN step schedule."""
    progress = min(max(epoch_fraction / max(config.epochs, 1), 0.0), 1.0)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    drops = sum(progress >= m for m in (0.3, 0.6, 0.8))
    return config.lr * (0.2 ** drops)


# --- data on the device ------------------------------------------------------------------------

def _as_nchw_tensor(images: np.ndarray) -> torch.Tensor:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 of shape (n, 32, 32, 3), got {images.dtype} {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def random_crop_flip(batch: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation on a whole batch at once: zero-pad by ``pad``, crop a random
    32x32 window per image, flip half of the images horizontally."""
    n, c, h, w = batch.shape
    padded = F.pad(batch, (pad, pad, pad, pad))
    dev = batch.device
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev)[None, :])            # (n, h)
    cols = (ox[:, None] + torch.arange(w, device=dev)[None, :])            # (n, w)
    idx_n = torch.arange(n, device=dev)[:, None, None]
    # Advanced indexing puts the indexed dims first: (n, h, w, c) -> back to (n, c, h, w).
    cropped = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = (torch.rand(n, generator=generator) < 0.5).to(dev)
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped)


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 NHWC images (in the 0..255 range)."""
    flat = np.asarray(images).reshape(-1, 3)
    mean = np.zeros(3)
    sq = np.zeros(3)
    # Chunked so 50k x 32 x 32 images never become a float64 copy all at once.
    for start in range(0, len(flat), 1 << 22):
        part = flat[start:start + (1 << 22)].astype(np.float64)
        mean += part.sum(0)
        sq += (part * part).sum(0)
    mean /= len(flat)
    std = np.sqrt(np.maximum(sq / len(flat) - mean * mean, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


# --- training and extraction -------------------------------------------------------------------

def _use_amp(config: BackboneConfig, device: torch.device) -> bool:
    if config.amp == "auto":
        return device.type == "cuda"
    return config.amp == "on" and device.type == "cuda"


def train_backbone(images: np.ndarray, labels, config: BackboneConfig | None = None,
                   progress: ProgressCallback | None = None, device: str = "auto",
                   num_classes: int | None = None) -> tuple[WideResNet, list[dict]]:
    """Train a wide ResNet on uint8 NHWC ``images`` and integer ``labels``.

    Returns (model in eval mode on the CPU, history). ``progress`` receives
    {"stage": "backbone", "epoch", "n_epochs", "loss", "accuracy", "lr", "seconds"} after every
    epoch; an exception raised inside it stops training. CUDA is used when available."""
    config = (config or BackboneConfig()).validate()
    x_all = _as_nchw_tensor(images)
    y_all = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if y_all.ndim != 1 or len(y_all) != len(x_all):
        raise ValueError(f"labels must be a 1-d array with one label per image ({len(x_all)}), got shape {tuple(y_all.shape)}")
    if len(y_all) < 2:
        raise ValueError("train_backbone needs at least 2 images")
    num_classes = int(num_classes if num_classes is not None else int(y_all.max()) + 1)
    if y_all.min() < 0 or y_all.max() >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}), got [{int(y_all.min())}, {int(y_all.max())}]")

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    dev = choose_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed 32x32 input: let cuDNN pick the fastest kernels
    model = build_backbone(config, num_classes)
    model.normalize.set_statistics(*channel_statistics(images))
    model.to(dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov and config.momentum > 0)
    amp = _use_amp(config, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    # The uint8 images go to the device once (150 MB for all of CIFAR); batches become float there.
    x_dev, y_dev = x_all.to(dev), y_all.to(dev)
    n = len(x_all)
    batch_size = min(config.batch_size, n)
    steps_per_epoch = max(n // batch_size, 1)  # drop the ragged last batch (BatchNorm on 1 image fails)
    history: list[dict] = []
    for epoch in range(config.epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(dev)
        loss_sum, correct, seen = 0.0, 0, 0
        for step in range(steps_per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(config, epoch + step / steps_per_epoch)
            idx = order[step * batch_size:(step + 1) * batch_size]
            xb = random_crop_flip(x_dev[idx].float(), generator)
            yb = y_dev[idx]
            with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=amp):
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.detach().argmax(1) == yb).sum())
            seen += len(idx)
        record = {"stage": "backbone", "epoch": epoch + 1, "n_epochs": config.epochs,
                  "loss": loss_sum / seen, "accuracy": correct / seen,
                  "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - start}
        history.append(record)
        if progress is not None:
            progress(dict(record))
    model.eval()
    return model.cpu(), history


@torch.no_grad()
def extract_features(model: WideResNet, images: np.ndarray, batch_size: int = 500,
                     device: str = "auto", return_logits: bool = False):
    """Penultimate-layer embeddings (after global average pooling) of uint8 NHWC images, as a
    float32 array (n, model.feature_dim); with ``return_logits`` also the class logits."""
    check_int("batch_size", batch_size, 1)
    x_all = _as_nchw_tensor(images)
    dev = choose_device(device)
    was_training = model.training
    model.eval().to(dev)
    feats, logits = [], []
    for start in range(0, len(x_all), batch_size):
        f = model.features(x_all[start:start + batch_size].to(dev).float())
        feats.append(f.float().cpu())
        if return_logits:
            logits.append(model.classifier(f).float().cpu())
    model.train(was_training)
    model.cpu()
    out = torch.cat(feats).numpy().astype(np.float32) if feats else np.zeros((0, model.feature_dim), np.float32)
    if return_logits:
        lg = torch.cat(logits).numpy() if logits else np.zeros((0, model.num_classes), np.float32)
        return out, lg
    return out


def save_backbone(model: WideResNet, path: str) -> None:
    """Plain state_dict of tensors (loadable with ``weights_only=True``)."""
    torch.save(model.state_dict(), path)


def load_backbone(path: str, config: BackboneConfig, num_classes: int) -> WideResNet:
    """Rebuild the network from ``config`` and load weights without executing anything."""
    model = build_backbone(config, num_classes)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
