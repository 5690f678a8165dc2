"""``python -m hkd_core benchmark``: datasets x coders under one protocol (protocol.py).

For every dataset: one seeded train / validation / test split. For every coder: each candidate
setting is fitted on the training rows once per model seed; the codes of the validation rows
choose the setting (per neighbour metric), the codes of the test rows are reported, as mean and
spread over the seeds. Fits are cached on disk by (data, split, coder, setting, seed, code
version), so a second run only re-prints.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from hkd_core.benchmark.protocol import DATABASE, Split, make_split
from hkd_core.metrics import (best_share_at_reduction, evaluate, frontier_auc,
                              hierarchical_f_score, hierarchy_agreement, input_neighbours)

LEVELS = (0.8, 0.9, 0.95)
KS = (5, 10)
MAX_DEPTH = 8
QUICK_EPOCHS = 3


# -- datasets --------------------------------------------------------------------------------

@dataclass
class BenchmarkDataset:
    """A dataset as the benchmark sees it: its rows, the neighbour metrics it is scored under,
    the preset name for the paper's per-dataset settings, and its known tree (or None)."""

    key: str
    dataset: object
    metrics: tuple[str, ...]
    preset: str
    lca_depth: object = None          # (i, j) index arrays of rows -> LCA depths, or None

    @property
    def has_tree(self) -> bool:
        return self.lca_depth is not None


def lca_depth_function(ds):
    """Vectorised (i, j) -> depth of the lowest common ancestor of rows i and j (0 = only the
    root in common), or None when the dataset has no tree."""
    anc = ds.item_ancestors()
    if anc is None:
        return None

    def lca_depth(i, j):
        return np.array([max((anc[a][n] for n in anc[a].keys() & anc[b].keys()), default=0)
                         for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist())])
    return lca_depth


def load_benchmark_dataset(key: str, quick: bool = False) -> BenchmarkDataset:
    """``synthetic``, ``mammals``, ``digits``, ``wordnet:<synset>`` (closure + Poincare embedding,
    built and cached) or ``file:<path>`` (any upload format)."""
    from hkd_core.datasets import load_dataset

    if key.startswith("file:"):
        from hkd_core.uploads import read_embedding_file

        ds = read_embedding_file(key[5:])          # with FILE.parent-child.txt beside it, if any
        preset = "upload"
    elif key.startswith("wordnet:"):
        ds = load_dataset("wordnet", root=key[8:])
        preset = "wordnet"
    else:
        options = {}
        if quick and key == "synthetic":
            options = {"n_per_cluster": 30}
        elif quick and key == "digits":
            options = {"limit": 400}
        ds = load_dataset(key, **options)
        preset = key
    metrics = ("poincare", "euclidean") if ds.metric == "poincare" else ("euclidean",)
    return BenchmarkDataset(key, ds, metrics, preset, lca_depth_function(ds))


# -- coders ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CoderSpec:
    """One row of the benchmark: a registry model, fixed parameters, and the candidate settings
    among which validation rows choose (one candidate = nothing to choose)."""

    label: str
    model: str
    params: dict = field(default_factory=dict)
    candidates: tuple = ({},)
    baseline: bool = False        # a baseline the recommended coder must match or beat

    def settings(self, bds: BenchmarkDataset, metric: str, quick: bool) -> list[dict]:
        from hkd_core.presets import HKD_FAMILY, default_params

        base = {**default_params(bds.preset, self.model), **self.params}
        if self.model in HKD_FAMILY or self.model.startswith("hkd"):
            # the neighbourhoods HKD keeps (p_{j|i}, eq. 8) are the ones being scored
            base["metric"] = metric
        accepted = _accepted(self.model)
        if quick and "epochs" in accepted:
            base["epochs"] = QUICK_EPOCHS
        out = []
        for candidate in (self.candidates[:1] if quick else self.candidates):
            setting = {k: v for k, v in {**base, **candidate}.items() if k in accepted}
            out.append(setting)
        return out


def _accepted(model: str) -> set:
    from hkd_core.models import model_class

    return set(model_class(model)().get_params())


def default_coders() -> list[CoderSpec]:
    from hkd_core.models import MODEL_SPECS

    coders = [
        CoderSpec("hkd", "hkd", candidates=({"decay": 0.1}, {"decay": 0.3})),
        CoderSpec("hkd-no-recon", "hkd-no-recon"),
        CoderSpec("hkd-no-kl", "hkd-no-kl"),
        CoderSpec("hkd-no-decay", "hkd-no-decay"),
        # the recommended coder (models/cut_tree.py) and what each of its changes buys
        CoderSpec("hkd-cuttree", "hkd-cuttree"),
        CoderSpec("hkd-cuttree-kmeans", "hkd-cuttree-kmeans"),
        CoderSpec("hkd-cuttree-spectral", "hkd-cuttree-spectral"),
        CoderSpec("hkd-cuttree-no-refine", "hkd-cuttree-no-refine"),
    ]
    for K in (2, 4, 16):
        coders.append(CoderSpec(f"hkm K={K}", "hkm", {"K": K}, baseline=True))
    if "rq" in MODEL_SPECS:
        for K in (2, 4, 16):
            coders.append(CoderSpec(f"rq K={K}", "rq", {"K": K}, baseline=True))
    coders += [CoderSpec("dccl", "dccl", baseline=True), CoderSpec("kd", "kd", baseline=True),
               CoderSpec("random", "random", baseline=True)]
    # coders of the other systems (issue 12): RQ-VAE semantic IDs; SHREWD / SHRED hash codes,
    # which learn from labels + a label hierarchy and are skipped on data without them
    # HCRL (hcrl.py): a VAE with a hierarchical Gaussian mixture prior, code = tree path
    for name in ("rqvae", "shrewd", "shred", "hcrl"):
        if name in MODEL_SPECS:
            coders.append(CoderSpec(name, name))
    return coders


def needs_labels(model: str) -> bool:
    from hkd_core.models import model_class

    return bool(getattr(model_class(model), "needs_labels", False))


def has_label_tree(ds) -> bool:
    return ds.labels is not None and bool(ds.hierarchy)


# -- fitting, cached -------------------------------------------------------------------------

def module_source_hash(module: str) -> str:
    """Hash of a hkd_core module's source and of every hkd_core module it imports, transitively:
    a cached fit is reused only while the code that produced it is unchanged, and stays valid
    when unrelated parts of the library change (e.g. a new coder in the registry)."""
    import importlib.util
    import re

    seen, todo, h = set(), [module], hashlib.sha256()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or spec.origin.endswith("__init__.py"):
            continue      # packages' __init__ are registries; the registry entry is in the key
        with open(spec.origin, "rb") as fh:
            source = fh.read()
        h.update(name.encode() + source)
        todo += re.findall(rb"(?:from|import)\s+(hkd_core(?:\.\w+)*)", source)
        todo = [t.decode() if isinstance(t, bytes) else t for t in todo]
    return h.hexdigest()[:12]


def _fit_key(bds: BenchmarkDataset, split: Split, model: str, setting: dict, seed: int) -> str:
    from hkd_core.models import MODEL_SPECS
    from hkd_core.store import dataset_fingerprint

    h = hashlib.sha256()
    h.update(dataset_fingerprint(bds.dataset).encode())
    for part in (split.train, split.validation, split.test):
        h.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
    version = module_source_hash(MODEL_SPECS[model][0])
    h.update(json.dumps([model, MODEL_SPECS[model][2], setting, seed, version], sort_keys=True,
                        default=str).encode())
    return h.hexdigest()[:20]


def fit_codes(bds: BenchmarkDataset, split: Split, model: str, setting: dict, seed: int,
              cache_dir: str | None) -> dict:
    """Fit on the training rows; codes of the validation and test rows, CPU and wall seconds."""
    from hkd_core.models import make_model

    path = None
    if cache_dir:
        path = os.path.join(cache_dir, _fit_key(bds, split, model, setting, seed) + ".npz")
        if os.path.exists(path):
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
    params = dict(setting)
    if "random_state" in _accepted(model):
        params["random_state"] = seed
    for key in ("hidden", "decoder_hidden", "perplexities", "kl_weights"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    from hkd_core.models.base import label_fit_kwargs

    X = bds.dataset.X
    est = make_model(model, **params)
    cpu, wall = time.process_time(), time.perf_counter()
    est.fit(X[split.train], **label_fit_kwargs(est, bds.dataset, split.train))
    out = {"cpu_seconds": np.float64(time.process_time() - cpu),
           "wall_seconds": np.float64(time.perf_counter() - wall),
           "validation": np.asarray(est.transform(X[split.validation]), dtype=np.int64),
           "test": np.asarray(est.transform(X[split.test]), dtype=np.int64),
           "K": np.int64(getattr(est, "K", 0))}
    # what Hamming retrieval compares (hash coders: their bits; the others: their digits)
    out["test_retrieval"] = (np.asarray(est.retrieval_codes(X[split.test]), dtype=np.int64)
                             if hasattr(est, "retrieval_codes") else out["test"])
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **out)
        os.replace(tmp, path)     # a kill mid-write never leaves a half-written entry
    return out


# -- scoring ---------------------------------------------------------------------------------

def score(codes: np.ndarray, X: np.ndarray, metric: str, K: int, neighbours=None) -> dict:
    """``neighbours``: the rows' input neighbours (metrics.input_neighbours), shared by every coder
    scored on the same rows."""
    m = evaluate(codes, X, metric, ks=KS, max_depth=MAX_DEPTH, K=K or None, neighbours=neighbours)
    m["best_share"] = {f"{lvl:.2f}": best_share_at_reduction(m, lvl) for lvl in LEVELS}
    m["auc"] = frontier_auc(m)
    return m


def validation_score(m: dict) -> tuple:
    """What validation rows choose by: the mean of the best KNN=5 shares at >= 80 and 90 %
    reduction (0 where a level is not reached), then the frontier AUC."""
    best = [m["best_share"][f"{lvl:.2f}"] or 0.0 for lvl in (0.8, 0.9)]
    return (float(np.mean(best)), m["auc"])


def mean_spread(values) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "sd": None, "n": 0, "values": list(values)}
    return {"mean": float(np.mean(vals)), "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
            "n": len(vals), "values": [None if v is None else float(v) for v in values]}


def summarise(test_runs: list[dict]) -> dict:
    """Mean and spread over seeds of every figure the report prints."""
    first = test_runs[0]
    out = {
        "share": {k: [float(np.mean([r["share"][k][N] for r in test_runs])) for N in range(len(first["share"][k]))]
                  for k in first["share"]},
        "reduction": [float(np.mean([r["reduction"][N] for r in test_runs])) for N in range(len(first["reduction"]))],
        "best_share": {lvl: mean_spread([r["best_share"][lvl] for r in test_runs]) for lvl in first["best_share"]},
        "auc": mean_spread([r["auc"] for r in test_runs]),
        "agreement": mean_spread([r.get("agreement") for r in test_runs]),
        "groups": [float(np.mean([r["code_statistics"][N]["distinct_prefixes"] for r in test_runs]))
                   for N in range(len(first["code_statistics"]))],
        "unused_digit_values": [r["code_statistics"][0].get("unused_digit_values") for r in test_runs],
        "full_code_collisions": mean_spread([r["full_code_collisions"] for r in test_runs]),
        "cpu_seconds": mean_spread([r["cpu_seconds"] for r in test_runs]),
        "neighbour_recall": min(r.get("neighbour_recall", 1.0) for r in test_runs),
        "neighbour_search": first.get("neighbour_search"),
    }
    if "hf_score" in first:
        out["hf_score"] = mean_spread([r["hf_score"] for r in test_runs])
    if "mahp250" in first:
        out["mahp250"] = mean_spread([r["mahp250"] for r in test_runs])
        out["map"] = mean_spread([r["map"] for r in test_runs])
    return out


def hierarchical_retrieval(fit: dict, test_labels, hierarchy) -> dict:
    """SHREWD's retrieval figures on the test rows: mAHP@250 and mAP of the Hamming ranking of
    each coder's retrieval codes (hash bits for shrewd/shred, code digits for the others), Hamming
    ties averaged exactly (hierarchical_retrieval.py)."""
    from hkd_core.metrics import mean_average_hierarchical_precision, mean_average_precision

    codes = fit.get("test_retrieval", fit["test"])
    out = {}
    for name, score_fn in (("mahp250", lambda: mean_average_hierarchical_precision(
            codes, test_labels, hierarchy, k=250)), ("map", lambda: mean_average_precision(codes, test_labels))):
        try:
            out[name] = score_fn()
        except ValueError:       # no query with a relevant / similar item among the test rows
            out[name] = None
    return out


def run_benchmark(dataset_keys, coders: list[CoderSpec] | None = None, seeds=(0, 1, 2),
                  quick: bool = False, cache_dir: str | None = None, split_seed: int = 0,
                  log=None) -> dict:
    """Run every coder on every dataset; returns the JSON-able results (see report.py)."""
    coders = coders or default_coders()
    log = log or (lambda *_: None)
    results = {"protocol": {"seeds": list(seeds), "split_seed": split_seed, "quick": quick,
                            "queries": "test rows", "database": DATABASE,
                            "chosen_on": "validation rows (mean best KNN=5 share at >= 80/90 %, then AUC)"},
               "datasets": {}}
    for key in dataset_keys:
        bds = load_benchmark_dataset(key, quick)
        ds = bds.dataset
        split = make_split(ds, seed=split_seed)
        X_val, X_test = ds.X[split.validation], ds.X[split.test]
        lca_test = None
        if bds.has_tree:
            rows = split.test
            lca_test = lambda i, j, rows=rows: bds.lca_depth(rows[i], rows[j])  # noqa: E731
        entry = {"name": ds.name, "n": int(ds.n), "d": int(ds.X.shape[1]), "data_metric": ds.metric,
                 "split": {k: int(len(v)) for k, v in split.as_dict().items()},
                 "has_tree": bds.has_tree, "by_metric": {}}
        label_tree = has_label_tree(ds)
        test_labels = [ds.labels[i] for i in split.test] if label_tree else None
        skipped = {}
        for coder in coders:
            if needs_labels(coder.model) and not label_tree:
                what = "labels" if ds.labels is None else "label hierarchy"
                skipped[coder.label] = f"needs labels and a label hierarchy; {key} has no {what}"
                log(f"{key}: skipping {coder.label} ({skipped[coder.label]})")
        if skipped:
            entry["skipped"] = skipped
        for metric in bds.metrics:
            rows_out = {}
            # one neighbour search per (rows, metric), shared by every coder, setting and seed
            nb_val = input_neighbours(X_val, metric, KS)
            nb_test = input_neighbours(X_test, metric, KS)
            for coder in coders:
                if coder.label in skipped:
                    continue
                candidates = []
                for setting in coder.settings(bds, metric, quick):
                    val_runs, test_runs = [], []
                    for seed in seeds:
                        log(f"{key} [{metric}] {coder.label} {_short(setting, coder)} seed {seed}")
                        fit = fit_codes(bds, split, coder.model, setting, seed, cache_dir)
                        K = int(fit["K"])
                        val_runs.append(score(fit["validation"], X_val, metric, K, nb_val))
                        t = score(fit["test"], X_test, metric, K, nb_test)
                        t["cpu_seconds"] = float(fit["cpu_seconds"])
                        if lca_test is not None:
                            t["agreement"] = hierarchy_agreement(fit["test"], lca_test, seed=seed)
                        if label_tree:
                            t.update(hierarchical_retrieval(fit, test_labels, ds.hierarchy))
                        if ds.labels is not None:
                            # HCRL's Table 2: the code tree against labels (+ their ancestors)
                            t["hf_score"] = hierarchical_f_score(
                                fit["test"], [ds.labels[i] for i in split.test], ds.hierarchy)
                        test_runs.append(t)
                    val = np.mean([validation_score(v) for v in val_runs], axis=0)
                    candidates.append({"setting": setting, "validation_score": val.tolist(),
                                       "test": summarise(test_runs)})
                best = max(candidates, key=lambda c: tuple(c["validation_score"]))
                rows_out[coder.label] = {"model": coder.model, "baseline": coder.baseline,
                                         "chosen": _short(best["setting"], coder),
                                         "candidates_tried": len(candidates),
                                         "validation_score": best["validation_score"], **best["test"]}
            entry["by_metric"][metric] = rows_out
        results["datasets"][key] = entry
    return results


def _short(setting: dict, coder: CoderSpec) -> str:
    """The parameters that differ between the coder's candidates (what validation chose)."""
    keys = sorted({k for c in coder.candidates for k in c})
    return ", ".join(f"{k}={setting[k]}" for k in keys if k in setting) or "-"
