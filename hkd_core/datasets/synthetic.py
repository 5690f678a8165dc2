"""The paper's synthetic data (Fig. 2a / Fig. 3): 16 two-dimensional Gaussian clusters arranged
as a hierarchy 2 -> 4 -> 8 -> 16.

Cluster centres are sums of level offsets that halve at each level and alternate between the x
and y axes, so the first split is the widest: at level 1 the two super-clusters sit at
x = -/+ 16, level 2 splits each along y by -/+ 8, level 3 along x by -/+ 4, level 4 along y by
-/+ 2. With the default spread (0.4) every split is clean, and every cluster's nearest
neighbours lie inside it.
"""
from __future__ import annotations

import numpy as np

from hkd_core.datasets.base import Dataset

LEVEL_OFFSETS = ((16.0, 0.0), (0.0, 8.0), (4.0, 0.0), (0.0, 2.0))


def cluster_path(c: int) -> tuple[int, ...]:
    """Binary path of leaf cluster c (0..15) from the root: (level1, level2, level3, level4)."""
    return tuple((c >> (3 - level)) & 1 for level in range(4))


def cluster_centres() -> np.ndarray:
    centres = np.zeros((16, 2))
    for c in range(16):
        for bit, offset in zip(cluster_path(c), LEVEL_OFFSETS):
            centres[c] += (2 * bit - 1) * np.asarray(offset)
    return centres


def _group_name(path: tuple[int, ...]) -> str:
    return "g" + "".join(map(str, path)) if path else "root"


def load_synthetic(n_per_cluster: int = 100, spread: float = 0.4, test_fraction: float = 0.2,
                   seed: int = 0) -> Dataset:
    """16 clusters x ``n_per_cluster`` points; a stratified train/test split by ``seed``."""
    if not isinstance(n_per_cluster, (int, np.integer)) or n_per_cluster < 2:
        raise ValueError(f"n_per_cluster must be an integer >= 2, got {n_per_cluster!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not spread > 0:
        raise ValueError(f"spread must be > 0, got {spread}")
    rng = np.random.default_rng(seed)
    centres = cluster_centres()
    X = np.concatenate([c + spread * rng.standard_normal((n_per_cluster, 2)) for c in centres])
    cluster = np.repeat(np.arange(16), n_per_cluster)
    labels = [_group_name(cluster_path(c)) for c in cluster]
    # hierarchy: every group's parent is its path minus the last step
    hierarchy = {}
    for c in range(16):
        path = cluster_path(c)
        for depth in range(1, 5):
            hierarchy[_group_name(path[:depth])] = _group_name(path[:depth - 1])
    n_test = max(1, int(round(test_fraction * n_per_cluster)))
    test_idx = np.concatenate([c * n_per_cluster + rng.permutation(n_per_cluster)[:n_test]
                               for c in range(16)])
    test_idx.sort()
    train_idx = np.setdiff1d(np.arange(len(X)), test_idx)
    return Dataset(
        name="synthetic",
        X=X.astype(np.float32),
        names=[f"p{i:05d}" for i in range(len(X))],
        labels=labels,
        metric="euclidean",
        train_idx=train_idx,
        test_idx=test_idx,
        hierarchy=hierarchy,
        description=__doc__.strip().splitlines()[0],
        extra={"cluster": cluster},
    )
