"""The Dataset record every loader returns and every model, metric and view consumes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METRICS = ("euclidean", "poincare")


@dataclass
class Dataset:
    """Embeddings with their names, optional labels, split and hierarchy.

    X        float32 array (n, d): the embeddings (all rows, train and test).
    names    one name per row (synset name, file name, ``p123``).
    labels   one label per row, or None.
    metric   geometry of X: "euclidean" or "poincare" (distance used for p_{j|i} and neighbours).
    train_idx / test_idx  row indices of the split, or None when there is no split.
    hierarchy  optional mapping child label -> parent label (e.g. CIFAR class -> superclass).
    extra    anything else. Two keys have a fixed meaning: ``extra["columns"]``, metadata columns
             (name -> one value per row: a list of strings or a float array, NaN = missing) that
             the page can colour by, and ``extra["images"]``, one image per row (a pixel array
             or a list of PNG thumbnails, see hkd_core/images.py).
    """

    name: str
    X: np.ndarray
    names: list[str]
    labels: list[str] | None = None
    metric: str = "euclidean"
    train_idx: np.ndarray | None = None
    test_idx: np.ndarray | None = None
    hierarchy: dict[str, str] | None = None
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        X = np.asarray(self.X)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
            raise ValueError(f"Dataset {self.name!r}: X must be a 2-d array with at least 2 rows, got shape {X.shape}")
        if not np.issubdtype(X.dtype, np.number):
            raise ValueError(f"Dataset {self.name!r}: X must be numeric, got dtype {X.dtype}")
        if not np.all(np.isfinite(X)):
            raise ValueError(f"Dataset {self.name!r}: X contains NaN or Inf")
        self.X = X.astype(np.float32, copy=False)
        if len(self.names) != len(X):
            raise ValueError(f"Dataset {self.name!r}: {len(self.names)} names for {len(X)} rows")
        self.names = [str(s) for s in self.names]
        if self.labels is not None:
            if len(self.labels) != len(X):
                raise ValueError(f"Dataset {self.name!r}: {len(self.labels)} labels for {len(X)} rows")
            self.labels = [str(s) for s in self.labels]
        for key, values in (self.extra.get("columns") or {}).items():
            if len(values) != len(X):
                raise ValueError(f"Dataset {self.name!r}: metadata column {key!r} has {len(values)} values for {len(X)} rows")
        if self.extra.get("images") is not None and len(self.extra["images"]) != len(X):
            raise ValueError(f"Dataset {self.name!r}: {len(self.extra['images'])} images for {len(X)} rows")
        if self.metric not in METRICS:
            raise ValueError(f"Dataset {self.name!r}: metric must be one of {METRICS}, got {self.metric!r}")

    @property
    def n(self) -> int:
        return len(self.X)

    @property
    def has_split(self) -> bool:
        return self.train_idx is not None and self.test_idx is not None

    def metadata_columns(self) -> dict:
        """Metadata columns (name -> values per row) to colour by: text as lists of strings,
        numbers as float arrays."""
        return dict(self.extra.get("columns") or {}) if self.extra else {}

    def subset(self, idx: np.ndarray, name: str | None = None) -> "Dataset":
        """Rows ``idx`` as a Dataset of their own (no split); metadata columns and images follow."""
        idx = np.asarray(idx)
        extra = {}
        if self.metadata_columns():
            extra["columns"] = {k: (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx])
                                for k, v in self.metadata_columns().items()}
        images = self.extra.get("images") if self.extra else None
        if images is not None:
            extra["images"] = images[idx] if isinstance(images, np.ndarray) else [images[i] for i in idx]
        return Dataset(
            name=name or self.name,
            X=self.X[idx],
            names=[self.names[i] for i in idx],
            labels=None if self.labels is None else [self.labels[i] for i in idx],
            metric=self.metric,
            hierarchy=self.hierarchy,
            description=self.description,
            extra=extra,
        )

    def train(self) -> "Dataset":
        return self.subset(self.train_idx, self.name + ":train") if self.has_split else self

    def test(self) -> "Dataset":
        return self.subset(self.test_idx, self.name + ":test") if self.has_split else self

    def item_ancestors(self) -> list[dict] | None:
        """Per row: {ancestor node: depth below the root}, the row's own node included, from the
        WordNet closure (extra["edges"]) or from the label hierarchy (labels + hierarchy); None
        when the dataset has no known tree. Depth 0 is the root; where several top nodes have
        no parent they hang under an implicit root and sit at depth 1."""
        edges = self.extra.get("edges") if self.extra else None
        if edges:
            from hkd_core.datasets.wordnet import closure_structure

            structure = closure_structure(self.names, edges, self.extra.get("root"))
            depth, ancestors = structure["depth"], structure["ancestors"]
            return [{a: depth[a] for a in (ancestors[n] | {n})} for n in self.names]
        if not self.hierarchy or self.labels is None:
            return None
        chains = {}
        for label in set(self.labels):
            chain, seen = [label], {label}
            while chain[-1] in self.hierarchy and self.hierarchy[chain[-1]] not in seen:
                chain.append(self.hierarchy[chain[-1]])
                seen.add(chain[-1])
            chains[label] = chain
        offset = 0 if len({chain[-1] for chain in chains.values()}) == 1 else 1
        depths = {label: {node: len(chain) - 1 - i + offset for i, node in enumerate(chain)}
                  for label, chain in chains.items()}
        return [depths[label] for label in self.labels]

    def index_of(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{name!r} is not in dataset {self.name!r}") from None
