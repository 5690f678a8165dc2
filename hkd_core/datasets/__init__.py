"""Dataset registry. Each entry names a loader ``load(**options) -> Dataset`` and an
``availability(**options) -> (bool, message)`` probe, imported lazily so that listing datasets
never loads torch, nltk or an archive."""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

from hkd_core.datasets.base import Dataset  # noqa: F401


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    module: str
    loader: str
    description: str
    probe: str = "availability"   # the module's ``(**options) -> (bool, message)`` function

    def _module(self):
        return importlib.import_module(self.module)

    def required_options(self) -> tuple[str, ...]:
        """Loader options without a default (e.g. the WordNet subtree's ``root``): such a
        dataset cannot be opened by its name alone."""
        params = inspect.signature(getattr(self._module(), self.loader)).parameters.values()
        return tuple(p.name for p in params if p.default is p.empty
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    def load(self, **options) -> Dataset:
        loader = getattr(self._module(), self.loader)
        missing = [k for k in self.required_options() if k not in options]
        if missing:
            hint = " (command line: train --wordnet-root SYNSET)" if self.name == "wordnet" else ""
            raise ValueError(f"dataset {self.name!r} needs option(s) {missing}{hint}")
        accepted = inspect.signature(loader).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
        unknown = [k for k in options if k not in accepted]
        if unknown and not takes_any:
            if set(unknown) == {"progress"}:
                options = {k: v for k, v in options.items() if k != "progress"}
            else:
                raise ValueError(f"dataset {self.name!r} does not take option(s) "
                                 f"{sorted(set(unknown) - {'progress'})}; it takes "
                                 f"{sorted(k for k in accepted if k != 'progress')}")
        return loader(**options)

    def availability(self, **options) -> tuple[bool, str]:
        mod = self._module()
        probe = getattr(mod, self.probe, None)
        return (True, "generated on demand") if probe is None else probe(**options)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("synthetic", "hkd_core.datasets.synthetic", "load_synthetic",
                    "16 Gaussian clusters in 2-d, hierarchy 2 > 4 > 8 > 16 (paper Fig. 2a)"),
        DatasetSpec("mammals", "hkd_core.datasets.wordnet", "load_mammals",
                    "WordNet 3.0 mammal.n.01 closure, 10-d Poincare embedding (paper Tables 3-4)"),
        DatasetSpec("wordnet", "hkd_core.datasets.wordnet", "load_wordnet_subtree",
                    "any WordNet noun subtree (option root=SYNSET), 10-d Poincare embedding "
                    "trained once and cached", probe="subtree_availability"),
        DatasetSpec("wordnet-nouns", "hkd_core.datasets.wordnet_nouns", "load_wordnet_nouns",
                    "the whole WordNet 3.0 noun closure (82,115 synsets), Poincare embedding and "
                    "hkm codes built by: python -m hkd_core wordnet-nouns"),
        DatasetSpec("cifar100", "hkd_core.datasets.cifar100", "load_cifar100",
                    "CIFAR-100 wide-ResNet features, 20 superclasses x 5 classes (paper Fig. 4); "
                    "mAHP over Barz & Denzler's WordNet class tree"),
        DatasetSpec("cifar100-fig4", "hkd_core.datasets.cifar100", "load_cifar100_superclasses",
                    "CIFAR-100 features of two superclasses, 10 classes (the paper's Fig. 4 view)"),
        DatasetSpec("digits", "hkd_core.datasets.digits", "load_digits",
                    "scikit-learn handwritten digits, 1,797 x 64 pixels, labels 0-9 (real image features)"),
    ]
}

DATASET_NAMES = tuple(DATASETS)


def get_dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASET_NAMES}, got {name!r}")
    return DATASETS[name]


def load_dataset(name: str, **options) -> Dataset:
    return get_dataset_spec(name).load(**options)
