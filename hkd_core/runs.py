"""One training run: dataset -> fit -> codes of the evaluated rows -> metrics -> files.

A run directory holds exactly what ``python -m hkd_core train`` promises:
  split.npz       row indices (into the whole dataset) of the benchmark split: arrays train,
                  validation, test (hkd_core.benchmark.protocol.make_split with the run's seed)
  embeddings.npy  float (n, d): the evaluated rows = the split's test rows
  codes.npy       int (n, D), same rows
  names.txt       one name per row;  labels.txt when the dataset has labels
  metrics.json    {"metric", "share": {"5": [N=1..]...}, "reduction": [...], "reconstruction_mse",
                  "split": "test", "split_sizes": {"train", "validation", "test"}, ...}

The model is fitted on the train rows only; the test rows are the queries and the database their
neighbours and prefix groups are taken from. The validation rows are left to whoever chooses
settings (the benchmark); a single run does not look at them.
  model/          the trained model (params.json + state.npz, see models/base.py)
  run.json        what was run: dataset, options, model, parameters, seconds
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass

import numpy as np

import hkd_core
from hkd_core.benchmark.protocol import Split, make_split
from hkd_core.datasets import Dataset, load_dataset
from hkd_core.metrics import (evaluate, hierarchical_f_score,
                              mean_average_hierarchical_precision, mean_average_precision)
from hkd_core.models import make_model
from hkd_core.models.base import label_fit_kwargs
from hkd_core.presets import HKD_FAMILY, default_params


def code_version() -> str:
    """Hash of the library's source, so cached runs are never reused across code changes."""
    h = hashlib.sha256(hkd_core.__version__.encode())
    root = os.path.dirname(hkd_core.__file__)
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    h.update(f.encode() + fh.read())
    return h.hexdigest()[:12]


def cache_root() -> str:
    return os.environ.get("HKD_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "hkd_explorer"))


@dataclass
class RunResult:
    dataset: Dataset          # the evaluated rows
    codes: np.ndarray
    metrics: dict
    model: object
    directory: str | None
    config: dict
    split: Split | None = None  # row indices into the whole dataset


def run_config(dataset: str, model: str, params: dict | None = None,
               dataset_options: dict | None = None, knn_metric: str | None = None) -> dict:
    merged = {**default_params(dataset, model), **(params or {})}
    if model in HKD_FAMILY and knn_metric and "metric" not in (params or {}):
        # the neighbourhoods the codes should keep (p_{j|i}, eq. 8) are the ones the user
        # evaluates: --knn-metric euclidean on Poincare data makes p Euclidean too
        merged["metric"] = knn_metric
    return {"dataset": dataset, "dataset_options": dict(dataset_options or {}), "model": model,
            "params": _jsonify(merged), "knn_metric": knn_metric, "version": code_version()}


def config_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def train_run(dataset: str, model: str, params: dict | None = None,
              dataset_options: dict | None = None, knn_metric: str | None = None,
              out: str | None = None, progress=None, data: Dataset | None = None) -> RunResult:
    """Fit ``model`` on the train rows of the benchmark split of ``dataset`` (protocol.make_split,
    seeded by the model's ``seed``, default 0) and evaluate it on the split's test rows, which are
    both the queries and the database. ``data`` skips loading (e.g. an uploaded Dataset)."""
    config = run_config(dataset, model, params, dataset_options, knn_metric)
    if data is not None:
        ds = data
    else:
        options = dict(config["dataset_options"])
        if progress is not None:
            options["progress"] = progress      # e.g. the CIFAR backbone's or Poincare epochs
        ds = load_dataset(dataset, **options)
    if model in HKD_FAMILY and "metric" not in config["params"]:
        # no preset (an uploaded or --data file): p_{j|i} in the data's own geometry
        config["params"]["metric"] = ds.metric
    split_seed = int(config["params"].get("random_state", 0))
    split = make_split(ds, seed=split_seed)
    estimator = make_model(model, **_model_params(config["params"], ds))
    start = time.perf_counter()
    fit_kwargs = {"progress": progress} if progress is not None else {}
    # shrewd/shred learn from the train rows' labels and the label hierarchy
    fit_kwargs.update(label_fit_kwargs(estimator, ds, split.train))
    estimator.fit(ds.X[split.train], **fit_kwargs)
    seconds = time.perf_counter() - start
    evaluated = ds.subset(split.test, ds.name + ":test")
    codes = estimator.transform(evaluated.X)
    metric = knn_metric or ds.metric
    metrics = evaluate(codes, evaluated.X, metric, estimator.inverse_transform(codes), K=estimator.K)
    if ds.hierarchy and evaluated.labels is not None:
        # hierarchical retrieval quality of the codes alone (SHREWD's mAHP@250, Barz & Denzler
        # similarity and trapezoidal AHP; Hamming ties count as ties, averaged exactly)
        # (hash coders compare their bits, ``retrieval_codes``, not the digits they group into)
        retrieval = (estimator.retrieval_codes(evaluated.X) if hasattr(estimator, "retrieval_codes")
                     else codes)
        metrics["mahp250"] = mean_average_hierarchical_precision(
            retrieval, evaluated.labels, ds.hierarchy, k=250)
        try:
            metrics["map"] = mean_average_precision(retrieval, evaluated.labels)
        except ValueError:          # no test label occurs twice: no query has a relevant item
            metrics["map"] = None
    if evaluated.labels is not None:
        # HCRL's Table 2 measure: the code tree against the labels (and their ancestors)
        metrics["hierarchical_f_score"] = hierarchical_f_score(codes, evaluated.labels,
                                                               ds.hierarchy)
    metrics.update({"dataset": dataset, "model": model, "fit_seconds": seconds, "split": "test",
                    "split_seed": split_seed,
                    "split_sizes": {part: int(len(rows)) for part, rows in split.as_dict().items()}})
    config["fit_seconds"] = seconds
    result = RunResult(evaluated, codes, metrics, estimator, out, config, split)
    if out:
        write_run(out, result)
    return result


def _model_params(params: dict, ds: Dataset) -> dict:
    params = dict(params)
    for key in ("hidden", "decoder_hidden", "perplexities", "kl_weights"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    return params


def write_run(out: str, result: RunResult) -> None:
    os.makedirs(out, exist_ok=True)
    ds = result.dataset
    if result.split is not None:
        result.split.save(os.path.join(out, "split.npz"))
    np.save(os.path.join(out, "embeddings.npy"), ds.X)
    np.save(os.path.join(out, "codes.npy"), result.codes.astype(np.int64))
    _write_lines(os.path.join(out, "names.txt"), ds.names)
    if ds.labels is not None:
        _write_lines(os.path.join(out, "labels.txt"), ds.labels)
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(_jsonify(result.metrics), fh, indent=2)
    with open(os.path.join(out, "run.json"), "w") as fh:
        json.dump(_jsonify(result.config), fh, indent=2)
    result.model.save(os.path.join(out, "model"))


def read_run(out: str) -> dict:
    """Arrays and metrics of a run directory (no code is executed: npy without pickle, json)."""
    def lines(name):
        path = os.path.join(out, name)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    with open(os.path.join(out, "metrics.json")) as fh:
        metrics = json.load(fh)
    return {"embeddings": np.load(os.path.join(out, "embeddings.npy"), allow_pickle=False),
            "codes": np.load(os.path.join(out, "codes.npy"), allow_pickle=False),
            "names": lines("names.txt"), "labels": lines("labels.txt"), "metrics": metrics}


def encode_all_rows(run_dir: str):
    """(names, X, codes) of every row of a run's dataset, encoded by the run's saved model; None
    when the dataset is not a registry one (e.g. a --data file) or the run holds no model."""
    from hkd_core.datasets import DATASETS
    from hkd_core.models import load_model

    with open(os.path.join(run_dir, "run.json")) as fh:
        config = json.load(fh)
    if config.get("dataset") not in DATASETS or not os.path.isdir(os.path.join(run_dir, "model")):
        return None
    ds = load_dataset(config["dataset"], **config.get("dataset_options", {}))
    return ds.names, ds.X, load_model(os.path.join(run_dir, "model")).transform(ds.X)


def cached_run(dataset: str, model: str, params: dict | None = None,
               dataset_options: dict | None = None, knn_metric: str | None = None,
               progress=None, log=None) -> tuple[RunResult | None, str]:
    """Train once per configuration; later calls read the run directory back.
    Returns (RunResult when freshly trained else None, run directory)."""
    config = run_config(dataset, model, params, dataset_options, knn_metric)
    out = os.path.join(cache_root(), "runs", f"{dataset}-{model}-{config_key(config)}")
    if os.path.exists(os.path.join(out, "metrics.json")):
        return None, out
    if log:
        log(f"training {model} on {dataset} (cached in {out}) ...")
    tmp = out + ".partial"
    result = train_run(dataset, model, params, dataset_options, knn_metric, out=tmp, progress=progress)
    os.replace(tmp, out) if not os.path.exists(out) else None
    result.directory = out
    return result, out


def _write_lines(path: str, items) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for s in items:
            fh.write(str(s).replace("\n", " ") + "\n")


def _jsonify(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonify(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonify(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
