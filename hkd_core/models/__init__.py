"""Model registry: every code model behind one name, one interface (see base.py)."""
from __future__ import annotations

import importlib

from hkd_core.models.base import CodeModel, load_model  # noqa: F401

# name -> (module, class, fixed keyword arguments). The ablations of the paper's Table 2 are the
# HKD estimator with one term switched off.
MODEL_SPECS: dict[str, tuple[str, str, dict]] = {
    "hkd": ("hkd_core.models.hkd", "HKD", {}),
    "hkd-no-recon": ("hkd_core.models.hkd", "HKD", {"ablation": "no-recon"}),
    "hkd-no-kl": ("hkd_core.models.hkd", "HKD", {"ablation": "no-kl"}),
    "hkd-no-decay": ("hkd_core.models.hkd", "HKD", {"ablation": "no-decay"}),
    "dccl": ("hkd_core.models.dccl", "DCCL", {}),
    "kd": ("hkd_core.models.kd", "KDCodes", {}),
    "hkm": ("hkd_core.models.hkm", "HierarchicalKMeans", {}),
    "rq": ("hkd_core.models.rq", "ResidualQuantization", {}),
    # an autoencoder with vector_quantize_pytorch's ResidualVQ in its bottleneck (rqvae.py)
    "rqvae": ("hkd_core.models.rqvae", "RQVAE", {}),
    # hash codes from a label hierarchy (shrewd.py): SHREWD (weakly supervised: label distances
    # only) and SHRED (plus a classification loss); fit needs labels and a hierarchy
    "shrewd": ("hkd_core.models.shrewd", "SHREWD", {}),
    "shred": ("hkd_core.models.shrewd", "SHREWD", {"lambda_cls": 1.0}),
    # a VAE whose prior is a hierarchical Gaussian mixture over a fixed K-ary tree (hcrl.py, the
    # HCRL paper's HCRL2 without GROW/PRUNE); code = the most probable path, zero-padded to D
    "hcrl": ("hkd_core.models.hcrl", "HCRL", {}),
    "random": ("hkd_core.models.random_codes", "RandomCodes", {}),
    # a tree of normalised cuts of HKD's p_{j|i} graph or k-means splits (chosen in fit), digit
    # by digit, new rows coded by p_{j|i} votes (cut_tree.py), and its ablations: always
    # k-means splits / always graph cuts / graph cuts without the Ncut refinement moves
    "hkd-cuttree": ("hkd_core.models.cut_tree", "HKDCutTree", {}),
    "hkd-cuttree-kmeans": ("hkd_core.models.cut_tree", "HKDCutTree", {"split": "kmeans"}),
    "hkd-cuttree-spectral": ("hkd_core.models.cut_tree", "HKDCutTree", {"split": "spectral"}),
    "hkd-cuttree-no-refine": ("hkd_core.models.cut_tree", "HKDCutTree",
                              {"split": "spectral", "refine": False}),
}

MODEL_NAMES = tuple(MODEL_SPECS)


def model_class(name: str):
    if name not in MODEL_SPECS:
        raise ValueError(f"model must be one of {MODEL_NAMES}, got {name!r}")
    module, cls, _ = MODEL_SPECS[name]
    return getattr(importlib.import_module(module), cls)


def make_model(name: str, **params) -> CodeModel:
    """Build a model by registry name. Unknown parameters are dropped only if the class does
    not take them *and* they are generic (K, D, random_state...) - otherwise they raise."""
    cls = model_class(name)
    fixed = dict(MODEL_SPECS[name][2])
    for k, v in fixed.items():
        params.setdefault(k, v)
    accepted = set(cls().get_params())
    unknown = set(params) - accepted
    if unknown:
        raise ValueError(f"model {name!r} does not take parameter(s) {sorted(unknown)}; "
                         f"it takes {sorted(accepted)}")
    return cls(**params)
