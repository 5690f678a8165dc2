"""Dataset registry. Each entry names a loader ``load(**options) -> Dataset`` and an
``availability(**options) -> (bool, message)`` probe, imported lazily so that listing datasets
never loads torch, nltk or an archive."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from hkd_core.datasets.base import Dataset  # noqa: F401


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    module: str
    loader: str
    description: str

    def _module(self):
        return importlib.import_module(self.module)

    def load(self, **options) -> Dataset:
        return getattr(self._module(), self.loader)(**options)

    def availability(self, **options) -> tuple[bool, str]:
        mod = self._module()
        probe = getattr(mod, "availability", None)
        return (True, "generated on demand") if probe is None else probe(**options)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("synthetic", "hkd_core.datasets.synthetic", "load_synthetic",
                    "16 Gaussian clusters in 2-d, hierarchy 2 > 4 > 8 > 16 (paper Fig. 2a)"),
        DatasetSpec("mammals", "hkd_core.datasets.wordnet", "load_mammals",
                    "WordNet 3.0 mammal.n.01 closure, 10-d Poincare embedding (paper Tables 3-4)"),
        DatasetSpec("cifar100", "hkd_core.datasets.cifar100", "load_cifar100",
                    "CIFAR-100 wide-ResNet features, 20 superclasses x 5 classes (paper Fig. 4)"),
    ]
}

DATASET_NAMES = tuple(DATASETS)


def get_dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASET_NAMES}, got {name!r}")
    return DATASETS[name]


def load_dataset(name: str, **options) -> Dataset:
    return get_dataset_spec(name).load(**options)
