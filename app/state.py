"""Server-side workspace: data sets, model results and projections behind string keys.

Browser state holds only small keys (dataset key, result key); everything large lives here,
memoised in memory and persisted in the ArtefactStore so background processes and the next start
find it. Dataset keys: a registry name ("mammals", "synthetic", "cifar100") or
"upload:<fingerprint>".
"""
from __future__ import annotations

import inspect
import os
import threading
import time
from collections import OrderedDict

import numpy as np

from hkd_core.projection import PROJECTION_VERSION
from hkd_core.store import ArtefactStore, dataset_fingerprint, model_key, projection_key

DEFAULT_CACHE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".hkd_cache")

# Controls shown in the page (control name -> HKD parameter). Their start values are the
# defaults of `python -m hkd_core train`: for a built-in data set its preset (hkd_core/presets.py:
# the paper's settings plus the measured training choices), for an upload exactly HKD()'s own
# defaults, read from HKD().get_params() (BASE_CONTROLS) rather than restated here.
CONTROL_PARAMS = (("K", "K"), ("D", "D"), ("alpha", "alpha"), ("beta", "beta"),
                  ("kmeans_exemplars", "n_kmeans_exemplars"),
                  ("random_exemplars", "n_random_exemplars"), ("epochs", "epochs"))


def base_controls() -> dict:
    """Start values of the controls for data without a preset: HKD()'s defaults."""
    from hkd_core.presets import RECOMMENDED_MODEL, hkd_defaults

    defaults = hkd_defaults()
    controls = {"model": RECOMMENDED_MODEL}
    controls.update({control: defaults[param] for control, param in CONTROL_PARAMS})
    controls["perplexity"] = float(max(defaults["perplexities"]))
    return controls


def __getattr__(name):
    # BASE_CONTROLS reads HKD's defaults, which imports torch: computed on first use only
    if name == "BASE_CONTROLS":
        return base_controls()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DATASET_LABELS = {"synthetic": "Synthetic hierarchy (2-d)", "mammals": "WordNet mammals (Poincaré 10-d)",
                  "cifar100": "CIFAR-100 features", "digits": "Handwritten digits (8x8 images, 64-d)",
                  "cifar100-fig4": "CIFAR-100: two superclasses (paper Fig. 4)",
                  "wordnet-nouns": "WordNet nouns, all 82k (Poincaré 10-d)"}
PREVIEW_MODEL = "hkm"
# Above this many rows nothing slow runs in a request: t-SNE / UMAP maps are computed by a
# background job (PCA is drawn meanwhile), and no preview model is fitted before the first map.
INSTANT_ROWS = 5_000
PREVIEW_MAX_ROWS = 20_000
INSTANT_METHODS = ("pca", "disk")


def controls_for(dataset_key: str) -> dict:
    from hkd_core.presets import default_params

    from hkd_core.presets import RECOMMENDED_MODEL

    p = default_params(dataset_key.split(":")[0], "hkd")
    controls = {"model": RECOMMENDED_MODEL}
    for control, param in CONTROL_PARAMS:
        if param in p:
            controls[control] = p[param]
    if "perplexities" in p:
        controls["perplexity"] = max(p["perplexities"])
    if len(controls) < len(CONTROL_PARAMS) + 2:
        # no full preset (an upload): HKD()'s defaults. Only then, because reading them imports
        # torch, which the server's start-up otherwise never needs.
        controls = {**base_controls(), **controls}
    return controls


def model_params(model: str, dataset_key: str, dataset, controls: dict) -> dict:
    """Model parameters from the page's controls, kept to what the model class accepts (the
    baselines take fewer parameters than HKD)."""
    from hkd_core.models import MODEL_SPECS, model_class

    from hkd_core.presets import default_params

    accepted = set(model_class(model)().get_params()) - set(MODEL_SPECS[model][2])
    perplexity = float(controls.get("perplexity", 10.0))
    preset = default_params(dataset_key.split(":")[0], model)
    params = {
        **preset,
        "K": int(controls["K"]), "D": int(controls["D"]),
        "alpha": float(controls["alpha"]), "beta": float(controls["beta"]),
        "perplexities": [perplexity],
        "n_kmeans_exemplars": int(controls["kmeans_exemplars"]),
        "n_random_exemplars": int(controls["random_exemplars"]),
        "epochs": int(controls["epochs"]),
        "metric": dataset.metric, "random_state": 0,
    }
    if dataset.metric == "poincare" and not model.startswith("hkd"):
        # Only HKD implements the Poincare distance; the baselines that take a metric cluster
        # the ball coordinates with the Euclidean one.
        params["metric"] = "euclidean"
    if len(preset.get("perplexities", ())) > 1:
        # The synthetic setting's two KL terms: the control sets the larger perplexity.
        others = [p for p in preset["perplexities"] if p < max(preset["perplexities"])]
        params["perplexities"] = sorted({*others, perplexity})
        params["kl_weights"] = [1.0] * len(params["perplexities"])
    if "device" in accepted:
        # Training runs in a forked process: the parent never initialises CUDA, and on the
        # machines this ships for there is none, so pin the CPU for a stable cache key.
        params["device"] = "cpu"
    return {k: v for k, v in params.items() if k in accepted}


class Memo:
    """The one in-memory cache of the workspace: the ``maxsize`` most recently used values,
    thread-safe; ``build`` runs outside the lock and a None it returns is not kept."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.RLock()

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def get_or_build(self, key, build):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()
        if value is not None:
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
        return value


class Workspace:
    def __init__(self, cache_dir: str | None = None, dataset_options: dict | None = None,
                 control_overrides: dict | None = None, projection: str | None = None):
        self.cache_dir = os.path.abspath(cache_dir or DEFAULT_CACHE_DIR)
        self.control_overrides = dict(control_overrides or {})
        self.projection_override = projection
        self.store = ArtefactStore(os.path.join(self.cache_dir, "artefacts"))
        self.dataset_options = dataset_options or {}  # key -> loader kwargs (tests use small data)
        self._datasets: dict[str, object] = {}
        self._fingerprints: dict[str, str] = {}
        self._results = Memo(8)            # result key -> {codes, metrics, meta}
        self._derived = Memo(32)           # (result key, what) -> prefix index, colours, payloads...
        self._lock = threading.RLock()
        self._computing: dict[str, threading.Lock] = {}   # key -> lock of the one request computing it
        self.job_probe = None              # Celery mode: hkd_core.jobs.CeleryJobProbe (create_app)

    # A Workspace crosses to a background job process as its configuration: the job opens the
    # same store afresh (locks, SQLite handles and memos never cross a process boundary).
    def __getstate__(self):
        return {"cache_dir": self.cache_dir, "dataset_options": self.dataset_options,
                "control_overrides": self.control_overrides, "projection": self.projection_override}

    def __setstate__(self, state):
        self.__init__(**state)

    def controls_for(self, dataset_key: str) -> dict:
        """Start values of the controls for a data set (paper settings + overrides)."""
        return dict(controls_for(dataset_key), **self.control_overrides)

    def default_projection(self, n_features: int) -> str:
        from hkd_core.projection import available_methods, default_method

        if self.projection_override in available_methods(n_features):
            return self.projection_override
        return default_method(n_features)

    # -- data sets ----------------------------------------------------------------------------
    def builtin_available(self) -> dict[str, tuple[bool, str]]:
        from hkd_core.datasets import DATASETS

        out = {}
        for name, spec in DATASETS.items():
            try:
                if spec.required_options() and name not in self.dataset_options:
                    continue   # e.g. a WordNet subtree: needs a root the page does not ask for
                out[name] = spec.availability(**self.dataset_options.get(name, {}))
            except Exception as exc:  # a broken optional loader must not take the app down
                out[name] = (False, f"{type(exc).__name__}: {exc}")
        return out

    def dataset_choices(self) -> list[dict]:
        """Options for the dataset dropdown: available built-ins, then uploads."""
        opts = []
        for name, (ok, msg) in self.builtin_available().items():
            label = DATASET_LABELS.get(name, name)
            opts.append({"label": label if ok else f"{label} (unavailable)", "value": name,
                         "disabled": not ok, "title": msg})
        for fp, info in self.store.uploads().items():
            opts.append({"label": f"Upload: {info['filename']}", "value": "upload:" + fp})
        return opts

    def display_name(self, key: str) -> str:
        """What the page calls a data set: its label, or an upload's file name (never a key)."""
        if key.startswith("upload:"):
            info = self.store.uploads().get(key.split(":", 1)[1])
            return f"upload {info['filename']}" if info else "an upload no longer in the cache"
        return DATASET_LABELS.get(key, key)

    def usable_datasets(self) -> list[str]:
        """Keys of the data sets the page may open now (built-ins available here, uploads)."""
        return [o["value"] for o in self.dataset_choices() if not o.get("disabled")]

    def dataset(self, key: str):
        with self._lock:
            if key not in self._datasets:
                if key.startswith("upload:"):
                    ds = self.store.get_dataset(key.split(":", 1)[1])
                    if ds is None:
                        raise KeyError(f"uploaded data set {key!r} is no longer in the cache")
                else:
                    from hkd_core.datasets import load_dataset

                    options = dict(self.dataset_options.get(key, {}))
                    if key.startswith("cifar100"):
                        # features must come from the cache: training a wide ResNet inside a
                        # page request would hold it for hours
                        options.setdefault("train_backbone", False)
                    ds = load_dataset(key, **options)
                self._datasets[key] = ds
            return self._datasets[key]

    def fingerprint(self, key: str) -> str:
        with self._lock:
            if key not in self._fingerprints:
                self._fingerprints[key] = (key.split(":", 1)[1] if key.startswith("upload:")
                                           else dataset_fingerprint(self.dataset(key)))
            return self._fingerprints[key]

    def add_upload(self, dataset, filename: str) -> str:
        fp = self.store.add_upload(dataset, filename)      # stored and listed in one transaction
        key = "upload:" + fp
        self._datasets[key] = dataset
        self._fingerprints[key] = fp
        return key

    # -- model results ------------------------------------------------------------------------
    def result_key(self, dataset_key: str, model: str, params: dict) -> str:
        return model_key(self.fingerprint(dataset_key), model, params)

    def result(self, key: str) -> dict | None:
        """A stored result (None when it is not in the store; a miss is not memoised)."""
        return self._results.get_or_build(key, lambda: self.store.get_result(key))

    def has_result(self, key: str) -> bool:
        return key in self._results or key in self.store

    def cached_results(self, dataset_key: str) -> dict[str, dict]:
        return self.store.results_for(self.fingerprint(dataset_key))

    def train(self, dataset_key: str, model: str, params: dict, progress=None) -> str:
        """Fit, evaluate and store; returns the result key. Used both in the server (fast
        models) and inside Dash's background process (HKD and the neural baselines)."""
        from hkd_core.metrics import evaluate
        from hkd_core.models import make_model

        ds = self.dataset(dataset_key)
        key = self.result_key(dataset_key, model, params)
        est = make_model(model, **params)
        from hkd_core.jobs import current_celery_job, this_host

        # who trains it: this process on this machine (and, in a Celery worker, which task)
        self.store.put_json("training:" + key, {"pid": os.getpid(), "host": this_host(), "started": time.time(),
                                                **current_celery_job()})

        def report(info):
            # Shared through the store so a second request for the same model can follow along.
            self.store.put_json("progress:" + key, {k: v for k, v in info.items()
                                                    if isinstance(v, (int, float, str)) or v is None})
            if progress is not None:
                progress(info)

        from hkd_core.models.base import label_fit_kwargs

        supervision = label_fit_kwargs(est, ds)      # shrewd/shred: labels + hierarchy
        try:
            if "progress" in inspect.signature(est.fit).parameters:
                est.fit(ds.X, progress=report, **supervision)
            else:
                est.fit(ds.X, **supervision)
        except BaseException:
            self.store.cache.delete("training:" + key + ":json")   # failed or cancelled: not training
            raise
        codes = np.asarray(est.codes_, dtype=np.int64)
        try:
            X_hat = est.inverse_transform(codes)
        except (NotImplementedError, AttributeError):
            X_hat = None
        if progress is not None:
            progress({"stage": "evaluating"})
        metrics = evaluate(codes, ds.X, ds.metric, X_hat=X_hat, K=int(params.get("K", codes.max() + 1)))
        history = getattr(est, "history_", None) or []
        meta = {"model": model, "params": params, "fingerprint": self.fingerprint(dataset_key),
                "dataset": dataset_key, "K": int(getattr(est, "K", codes.max() + 1)),
                "D": int(codes.shape[1]), "final_loss": (history[-1].get("loss") if history else None)}
        self.store.put_result(key, codes, metrics, meta)
        self.store.cache.delete("training:" + key + ":json")
        return key

    def training_elsewhere(self, key: str) -> bool:
        """True while another live process is training this exact model (same key)."""
        from hkd_core.jobs import this_host

        info = self.store.get_json("training:" + key)
        if not info or (info.get("pid") == os.getpid() and info.get("host", this_host()) == this_host()):
            return False
        return self.training_alive(key)

    def training_alive(self, key: str) -> bool:
        """True while some live process (this one included) is training this model. A marker
        left by a killed process is deleted here: its model is not being trained.

        A process on this machine is checked by its pid. A Celery job (its marker names the task)
        on another machine is asked about through ``job_probe`` (hkd_core.jobs.CeleryJobProbe, set
        in Celery mode); a process on another machine that cannot be asked counts as alive."""
        from hkd_core.jobs import this_host

        info = self.store.get_json("training:" + key)
        if not info:
            return False
        if info.get("host", this_host()) == this_host():
            try:
                os.kill(int(info["pid"]), 0)
                alive = True
            except (OSError, ValueError, KeyError, TypeError):
                alive = False
        elif info.get("task") and self.job_probe is not None:
            alive = self.job_probe.task_alive(info["task"], info.get("worker"))
        else:
            alive = True
        if not alive:
            self.store.cache.delete("training:" + key + ":json")
        return alive

    def progress_of(self, key: str) -> dict:
        return self.store.get_json("progress:" + key) or {}

    # -- projections and other derived data -------------------------------------------------------
    def _projection_key(self, dataset_key: str, method: str) -> str:
        ds = self.dataset(dataset_key)
        return projection_key(self.fingerprint(dataset_key), method,
                              {"seed": 0, "perplexity": 30.0, "metric": ds.metric, "version": PROJECTION_VERSION})

    def has_projection(self, dataset_key: str, method: str) -> bool:
        return self._projection_key(dataset_key, method) in self.store

    def projection_now(self, dataset_key: str, method: str) -> tuple[str, np.ndarray]:
        """(method drawn, coordinates) without a slow computation in the request: the asked
        method when it is cached, instant (PCA, raw 2-d) or the data are small, else PCA (the
        page then asks a background job for the asked one)."""
        if not self.projection_is_slow(dataset_key, method):
            return method, self.projection(dataset_key, method)
        return "pca", self.projection(dataset_key, "pca")

    def projection_is_slow(self, dataset_key: str, method: str) -> bool:
        """True when the map is neither cached nor quick to compute (a job for the background)."""
        return not (method in INSTANT_METHODS or self.dataset(dataset_key).n <= INSTANT_ROWS
                    or self.has_projection(dataset_key, method))

    def projection(self, dataset_key: str, method: str) -> np.ndarray:
        from hkd_core.projection import project

        ds = self.dataset(dataset_key)
        key = self._projection_key(dataset_key, method)
        xy = self.store.get_projection(key)
        if xy is None:
            # one computation per map: a second request for it (the preview's render and the
            # trained model's render of a first visit) waits for the first instead of
            # computing the same t-SNE beside it on the same cores
            with self._computing_lock(key):
                xy = self.store.get_projection(key)
                if xy is None:
                    xy = project(ds.X, method=method, metric=ds.metric, seed=0, perplexity=30.0)
                    self.store.put_projection(key, xy)
        return xy

    def _computing_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._computing.setdefault(key, threading.Lock())

    def derived(self, key: tuple, build):
        """Small in-memory memo for per-result derived data (prefix index, code strings...)."""
        return self._derived.get_or_build(key, build)
