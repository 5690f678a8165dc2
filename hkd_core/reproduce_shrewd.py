"""SHREWD's Table 1 ablation (../shared/papers/004_4a2e14ace94125e9.txt) on data built here.

    python -m hkd_core reproduce shrewd [--features gloss|poincare|cifar100] [--seeds 3] [--quick]

Rows (paper Table 1, 64-bit codes): L_sim only, L_cls only, L_sim + L_cls, L_KL + L_cls,
SHREWD (L_KL + L_sim), SHRED (L_KL + L_sim + L_cls). Columns: mAP and mAHP@250 of the Hamming
ranking of the test rows (ties averaged exactly), over seeds, with the split of
hkd_core.benchmark.protocol (fit on train rows, lambda_kl chosen for SHREWD on validation rows
among LAMBDA_KL_GRID and then used by every row with L_KL, reported on test rows).

Feature sets:
* ``gloss`` (default): the 1,182 synsets of the WordNet mammal closure, each described by the
  TF-IDF of its WordNet gloss and examples reduced to 64-d by truncated SVD (unit rows). Real
  text features that do not encode the hypernym tree directly. Labels = each synset's ancestor at
  depth 4 below mammal.n.01 (groups under 5 merged upward: 67 classes), hierarchy = the WordNet
  tree over them (height 5). Needs the WordNet database (design.md section 4).
* ``poincare``: the same rows and labels with their shipped 10-d Poincare embedding as features
  (no WordNet needed; the embedding was trained on the hierarchy itself, so retrieval is easy).
* ``cifar100``: CIFAR-100 features (hkd_core.datasets.cifar100, Barz & Denzler's hierarchy, the
  paper's data), only where the archive is present; a GPU is needed to train the backbone.
"""
from __future__ import annotations

import sys
import time

import numpy as np

ABLATIONS = {   # row name -> (lambda_sim, use L_KL, lambda_cls)
    "L_sim only": (1.0, False, 0.0),
    "L_cls only": (0.0, False, 1.0),
    "L_sim + L_cls": (1.0, False, 1.0),
    "L_KL + L_cls": (0.0, True, 1.0),
    "SHREWD (L_KL + L_sim)": (1.0, True, 0.0),
    "SHRED (L_KL + L_sim + L_cls)": (1.0, True, 1.0),
}
PAPER_TABLE1 = {   # CIFAR-100, 64 bits: (mAP, mAHP@250)
    "L_sim only": (0.2204, 0.7007),
    "L_cls only": (0.5647, 0.8124),
    "L_sim + L_cls": (0.5292, 0.8188),
    "L_KL + L_cls": (0.3010, 0.6215),
    "SHREWD (L_KL + L_sim)": (0.6514, 0.8690),
    "SHRED (L_KL + L_sim + L_cls)": (0.7049, 0.8802),
}
LAMBDA_KL_GRID = (0.01, 0.1, 1.0)
FEATURES = ("gloss", "poincare", "cifar100")
LABEL_DEPTH, LABEL_MIN_GROUP = 4, 5


def gloss_features(names, wn, dim: int = 64, seed: int = 0) -> np.ndarray:
    """TF-IDF of each synset's gloss and examples -> truncated SVD (dim) -> unit rows."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [wn.synset(n).definition() + " " + " ".join(wn.synset(n).examples()) for n in names]
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2).fit_transform(texts)
    Z = TruncatedSVD(min(dim, tfidf.shape[1] - 1), random_state=seed).fit_transform(tfidf)
    return (Z / (np.linalg.norm(Z, axis=1, keepdims=True) + 1e-12)).astype(np.float32)


def load_features(features: str, quick: bool = False, data_dir=None):
    """(Dataset with X = the features, labels, hierarchy; a one-line description)."""
    from hkd_core.datasets.base import Dataset
    from hkd_core.datasets.wordnet import load_mammals

    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    if features == "cifar100":
        from hkd_core.datasets import load_dataset

        ds = load_dataset("cifar100", **({"data_dir": data_dir} if data_dir else {}))
        return ds, "CIFAR-100 backbone features, Barz & Denzler hierarchy"
    ds = load_mammals(label_depth=LABEL_DEPTH, label_min_group=LABEL_MIN_GROUP)
    if features == "poincare":
        return ds, "WordNet mammals, shipped 10-d Poincare embedding as features"
    from hkd_core.datasets.wordnet import open_wordnet

    X = gloss_features(ds.names, open_wordnet())
    ds = Dataset(name="mammal-glosses", X=X, names=ds.names, labels=ds.labels,
                 hierarchy=ds.hierarchy, description="WordNet mammal glosses, TF-IDF + SVD 64-d")
    return ds, "WordNet mammals, gloss TF-IDF + SVD (64-d) as features"


def _fit_score(ds, split, params: dict, seed: int, parts) -> list[tuple[float, float]]:
    from hkd_core.metrics import mean_average_hierarchical_precision, mean_average_precision
    from hkd_core.models import make_model

    y = np.asarray(ds.labels)
    model = make_model("shrewd", **params, random_state=seed, device="auto")
    model.fit(ds.X[split.train], y[split.train], hierarchy=ds.hierarchy)
    out = []
    for rows in parts:
        bits = model.retrieval_codes(ds.X[rows])
        labels = y[rows].tolist()
        out.append((mean_average_precision(bits, labels),
                    mean_average_hierarchical_precision(bits, labels, ds.hierarchy, k=250)))
    return out


def run_ablation(features: str = "gloss", seeds=(0, 1, 2), epochs: int | None = None,
                 quick: bool = False, data_dir=None, log=None) -> dict:
    """The Table 1 rows on ``features``; returns {"rows": {name: {"map", "mahp250"} (mean, sd)},
    "lambda_kl": chosen value, "validation": {lambda_kl: SHREWD validation mAHP}, ...}."""
    from hkd_core.benchmark.protocol import make_split
    from hkd_core.presets import CODER_SETTINGS

    log = log or (lambda *_: None)
    ds, description = load_features(features, quick, data_dir)
    split = make_split(ds, seed=0)
    base = {k: v for k, v in CODER_SETTINGS["shrewd"].items()
            if k not in ("lambda_sim", "lambda_kl", "lambda_cls")}
    if epochs is not None:
        base["epochs"] = int(epochs)
    grid = LAMBDA_KL_GRID[:1] if quick else LAMBDA_KL_GRID
    validation = {}
    for lk in grid:     # lambda_kl for SHREWD, chosen on the validation rows (seed 0)
        (v,) = _fit_score(ds, split, {**base, "lambda_sim": 1.0, "lambda_kl": lk, "lambda_cls": 0.0},
                          0, [split.validation])
        validation[lk] = v[1]
        log(f"lambda_kl={lk}: SHREWD validation mAHP@250 {v[1]:.4f}")
    lambda_kl = max(validation, key=validation.get)
    rows = {}
    for name, (l_sim, use_kl, l_cls) in ABLATIONS.items():
        params = {**base, "lambda_sim": l_sim, "lambda_kl": lambda_kl if use_kl else 0.0,
                  "lambda_cls": l_cls}
        scores = []
        for seed in seeds:
            t = time.perf_counter()
            (s,) = _fit_score(ds, split, params, seed, [split.test])
            scores.append(s)
            log(f"{name} seed {seed}: mAP {s[0]:.4f} mAHP@250 {s[1]:.4f} ({time.perf_counter() - t:.1f} s)")
        arr = np.asarray(scores)
        rows[name] = {"map": [float(arr[:, 0].mean()), float(arr[:, 0].std())],
                      "mahp250": [float(arr[:, 1].mean()), float(arr[:, 1].std())]}
    return {"features": features, "description": description, "n": int(ds.n),
            "n_classes": int(len(set(ds.labels))), "split": {k: int(len(v)) for k, v in split.as_dict().items()},
            "seeds": list(seeds), "epochs": base["epochs"], "bits": 64, "lambda_kl": lambda_kl,
            "validation": {str(k): v for k, v in validation.items()}, "rows": rows}


def format_ablation(result: dict) -> str:
    lines = [f"SHREWD Table 1 ablation on {result['description']}: {result['n']} rows, "
             f"{result['n_classes']} classes, split {result['split']}, {result['bits']} bits, "
             f"{result['epochs']} epochs, lambda_kl={result['lambda_kl']} (chosen on validation: "
             + ", ".join(f"{k}: {v:.4f}" for k, v in result["validation"].items())
             + f"), mean±sd over seeds {result['seeds']}",
             f"{'method':<30}{'mAP':>16}{'mAHP@250':>16}   {'paper mAP':>10}{'paper mAHP':>11}"]
    for name, r in result["rows"].items():
        pm, ph = PAPER_TABLE1[name]
        lines.append(f"{name:<30}{r['map'][0]:>10.4f}±{r['map'][1]:.3f}{r['mahp250'][0]:>10.4f}"
                     f"±{r['mahp250'][1]:.3f}   {pm:>10.4f}{ph:>11.4f}")
    order = sorted(result["rows"], key=lambda n: -result["rows"][n]["mahp250"][0])
    paper = sorted(PAPER_TABLE1, key=lambda n: -PAPER_TABLE1[n][1])
    lines.append("mAHP order here:  " + " > ".join(order))
    lines.append("mAHP order paper: " + " > ".join(paper))
    return "\n".join(lines)


def main(features: str = "gloss", seeds: int = 3, epochs: int | None = None, quick: bool = False,
         json_path: str | None = None, data_dir=None) -> int:
    seed_list = (0,) if quick else tuple(range(seeds))
    if quick and epochs is None:
        epochs = 3
    result = run_ablation(features, seed_list, epochs, quick, data_dir,
                          log=lambda s: print(s, file=sys.stderr, flush=True))
    print(format_ablation(result))
    if json_path:
        import json

        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0
