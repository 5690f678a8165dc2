"""The benchmark protocol: which rows fit, which rows choose, which rows are reported.

Every dataset gets three disjoint row sets, fixed by a seed:

    train       the coder is fitted on these rows only;
    validation  every hyperparameter (a coder's settings, the benchmark's choice among a coder's
                candidate settings) is chosen by scores on these rows;
    test        the reported figures: the test rows are the queries *and* the database they
                search (their neighbours and prefix groups are taken among the test rows), for
                every coder alike.

A dataset that ships its own split (the synthetic set, CIFAR-100) keeps its test rows; the
validation rows are carved out of its training rows. A dataset without one (WordNet mammals, a
user's file) is split 60 / 20 / 20. Splits are stratified by label when every label has enough
rows, so small classes appear in all three sets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VAL_FRACTION = 0.2
TEST_FRACTION = 0.2
DATABASE = "test rows"   # what the reported queries search; the same for every coder


@dataclass(frozen=True)
class Split:
    """Row indices (sorted, disjoint) of the train, validation and test rows of a dataset."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def __post_init__(self):
        parts = [np.asarray(p, dtype=np.int64) for p in (self.train, self.validation, self.test)]
        allrows = np.concatenate(parts)
        if len(np.unique(allrows)) != len(allrows):
            raise ValueError("train, validation and test rows must be disjoint")
        if min(len(p) for p in parts) < 2:
            raise ValueError(f"every part of a split needs at least 2 rows, got "
                             f"{[len(p) for p in parts]}")

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def save(self, path: str) -> None:
        """``split.npz``: arrays ``train``, ``validation``, ``test`` of row indices."""
        np.savez(path, **self.as_dict())

    @classmethod
    def load(cls, path: str) -> "Split":
        with np.load(path, allow_pickle=False) as npz:
            return cls(npz["train"], npz["validation"], npz["test"])


def _draw(rows: np.ndarray, fraction: float, labels, rng: np.random.Generator) -> np.ndarray:
    """A ``fraction`` of ``rows``, stratified by ``labels`` (per-row labels of ``rows``) when every
    label has at least 3 rows there; a plain random draw otherwise."""
    n_take = max(2, int(round(fraction * len(rows))))
    if labels is not None:
        labels = np.asarray(labels)
        values, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 3 and len(values) < n_take:
            taken = []
            for value in values:
                members = rows[labels == value]
                k = max(1, int(round(fraction * len(members))))
                taken.append(rng.choice(members, size=k, replace=False))
            return np.sort(np.concatenate(taken))
    return np.sort(rng.choice(rows, size=n_take, replace=False))


def make_split(dataset, seed: int = 0, val_fraction: float = VAL_FRACTION,
               test_fraction: float = TEST_FRACTION) -> Split:
    """The protocol's split of ``dataset`` (a hkd_core Dataset): see the module docstring."""
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, "
                         f"got {val_fraction} and {test_fraction}")
    n = dataset.n
    if n < 10:
        raise ValueError(f"a benchmark split needs at least 10 rows, the dataset has {n}")
    rng = np.random.default_rng(seed)
    labels = None if dataset.labels is None else np.asarray(dataset.labels)
    if dataset.has_split:
        test = np.sort(np.asarray(dataset.test_idx, dtype=np.int64))
        pool = np.sort(np.asarray(dataset.train_idx, dtype=np.int64))
        fraction = val_fraction * n / len(pool) if len(pool) else 0.0
        fraction = min(fraction, 0.5)
    else:
        pool = np.arange(n)
        test = _draw(pool, test_fraction, None if labels is None else labels[pool], rng)
        pool = np.setdiff1d(pool, test)
        fraction = val_fraction / (1 - test_fraction)
    validation = _draw(pool, fraction, None if labels is None else labels[pool], rng)
    train = np.setdiff1d(pool, validation)
    return Split(train, validation, test)
