"""scikit-learn's handwritten digits: a small real image-feature set that ships inside
scikit-learn (no download): 1,797 images of 8 x 8 pixels (grey levels 0-16), flattened to 64-d,
labels 0-9. Source: UCI ML "Optical Recognition of Handwritten Digits" (Alpaydin & Kaynak, 1998),
CC BY 4.0, as bundled by scikit-learn (BSD-3-Clause).

The benchmark uses it as real data the coders were never developed on; neighbours are Euclidean
in pixel space. No split of its own: the benchmark protocol splits it 60 / 20 / 20.
"""
from __future__ import annotations

import numpy as np

from hkd_core.datasets.base import Dataset


def load_digits(limit: int | None = None, seed: int = 0) -> Dataset:
    """The 1,797 digits (or a seeded random ``limit`` of them, for quick runs)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    X, y = bunch.data.astype(np.float32), bunch.target
    rows = np.arange(len(X))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 10 <= limit:
            raise ValueError(f"limit must be an integer >= 10, got {limit!r}")
        rows = np.sort(np.random.default_rng(seed).permutation(len(X))[:limit])
    return Dataset(
        name="digits",
        X=X[rows],
        names=[f"digit{i:04d}" for i in rows],
        labels=[str(int(v)) for v in y[rows]],
        metric="euclidean",
        description=(f"scikit-learn handwritten digits: {len(rows)} images of 8x8 pixels as 64-d "
                     "vectors, labels 0-9 (UCI, CC BY 4.0)"),
        extra={"images": bunch.images[rows]},
    )
