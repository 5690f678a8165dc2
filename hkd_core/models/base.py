"""What every code model shares: the estimator API, device choice, saving without pickle.

A code model maps embeddings X (n, d) to integer codes (n, D) with values in [0, K):

    model = make_model("hkd", K=16, D=16).fit(X)       # or HKD(K=16, D=16).fit(X)
    model.codes_                 # codes of the training rows
    model.transform(X_new)       # codes of new rows
    model.inverse_transform(c)   # reconstructions from codes
    model.history_               # one dict per epoch: {"epoch": e, "n_epochs": n, "loss": ..., <terms>}
    model.save(dir); load_model(dir)

The training scaffold lives here, in ``CodeModel``, once for every coder:

* ``_run_epochs`` is the one epoch loop: it owns ``history_`` (empty at the start of a fit),
  builds each epoch's record ``{"epoch", "n_epochs", **terms}`` and hands a copy of it to the
  ``progress`` callback (what the app's training job and the CLI read);
* ``_train`` is the one mini-batch loop of the torch coders, on top of it: it builds the optimizer,
  shuffles with the seeded generator (``_shuffle_generator``), steps (with optional gradient
  clipping), averages each batch term over the epoch's rows, switches the modules between train
  and eval mode and sets ``n_iter_``;
* ``_torch_fit`` is the context of a torch fit (``n_threads`` torch threads; torch's global RNG
  seeded by ``random_state`` in a fork, so the caller's RNG is left as it was), and
  ``CodeModel.fit`` the fit of the torch coders that learn from X alone (check parameters and
  X, then ``_fit`` in that context);
* ``load_model`` gives a model fitted from a saved state its empty ``history_``.

A coder supplies only its own parts: its modules, its loss per batch, its extra record terms
(dccl.py, kd.py, hkd.py, rqvae.py, shrewd.py, hcrl.py); the per-level records of hkm.py, rq.py
and cut_tree.py and random_codes.py's single record go through ``_run_epochs`` too.

Saved models are ``params.json`` + ``state.npz`` (numpy arrays, loaded with allow_pickle=False):
nothing in a saved model is executed on load.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

ProgressCallback = Callable[[dict], None]



# The one set of size limits every coder checks (HKD, the baselines, the cut tree): wide enough
# for any real use, small enough that a request cannot ask for gigabytes of weights.
MAX_K = 1024
MAX_D = 256
MAX_HIDDEN = 4096          # width of one hidden layer
MAX_HIDDEN_LAYERS = 8

def choose_device(device: str = "auto"):
    """'auto' -> CUDA when available, else CPU."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {rng}, got {value}")
    return int(value)


def check_float(name: str, value, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_X(X, name: str = "X", min_rows: int = 2) -> np.ndarray:
    """X as a float32 (n, d) array, for code that has no estimator at hand; estimators use
    ``CodeModel._validate_fit_X`` / ``check_features`` (scikit-learn's validate_data)."""
    from sklearn.utils import check_array

    return check_array(X, dtype=np.float32, ensure_min_samples=min_rows, ensure_all_finite=True,
                       input_name=name)


def label_fit_kwargs(model, dataset, rows=None) -> dict:
    """Extra ``fit`` arguments of a coder that learns from labels and a label hierarchy
    (``needs_labels = True``, e.g. shrewd/shred): ``y`` (the labels of ``rows``, default all)
    and ``hierarchy``. {} for every other coder; a clear ValueError when the data lack them."""
    if not getattr(model, "needs_labels", False):
        return {}
    name = getattr(model, "model_name", type(model).__name__)
    if dataset.labels is None or not dataset.hierarchy:
        missing = "labels" if dataset.labels is None else "label hierarchy (child -> parent)"
        raise ValueError(f"{name} needs labels and a label hierarchy; dataset {dataset.name!r} has "
                         f"no {missing}")
    labels = dataset.labels if rows is None else [dataset.labels[i] for i in rows]
    return {"y": labels, "hierarchy": dataset.hierarchy}


class CodeModel(TransformerMixin, BaseEstimator):
    """Base of all code models. Subclasses implement ``_fit`` (torch coders; the training
    scaffold below runs it) or their own fit, transform, inverse_transform and
    ``_get_state() -> dict[str, np.ndarray]`` / ``_set_state(state, n_features)`` for saving.

    Input is checked the scikit-learn way: ``_validate_fit_X`` in fit and ``check_features``
    (torch_utils) in transform call ``validate_data``, so wrong shapes, complex or sparse
    input, NaN and feature-count mismatches get scikit-learn's own messages, and an unfitted
    model raises ``NotFittedError`` (``check_is_fitted``)."""

    model_name: str = "base"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = []       # float embeddings in, integer codes out
        return tags

    def _validate_fit_X(self, X, min_rows: int = 2) -> np.ndarray:
        from sklearn.utils.validation import validate_data

        return validate_data(self, X, reset=True, dtype=np.float32, ensure_min_samples=min_rows,
                             ensure_all_finite=True)

    def _check_codes(self, codes) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.D:
            raise ValueError(f"codes must have shape (n, D={self.D}), got {codes.shape}")
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.K):
            raise ValueError(f"code values must be in [0, K={self.K}), got [{codes.min()}, {codes.max()}]")
        return codes.astype(np.int64)

    def _code_mean_reconstruction(self, codes) -> np.ndarray:
        """Reconstruction by code table: each code's training mean (``code_table_`` /
        ``code_means_``), the global mean for a code never seen in training. For coders
        without a decoder (random codes, hash codes)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "code_table_")
        codes = self._check_codes(codes)
        lookup = {row.tobytes(): i for i, row in enumerate(self.code_table_)}
        out = np.repeat(self.global_mean_[None, :], len(codes), axis=0)
        for i, row in enumerate(codes):
            j = lookup.get(row.tobytes())
            if j is not None:
                out[i] = self.code_means_[j]
        return out.astype(np.float32)

    # -- the training scaffold (one for every coder; see the module docstring) -----------------
    def fit(self, X, y=None, progress: ProgressCallback | None = None) -> "CodeModel":
        """Learn codes for the rows of X (n, d); ``progress`` gets a copy of each epoch's record.
        The fit of the torch coders that learn from X alone: parameters checked
        (``_validate_params``), X checked (``_validate_fit_X``, then ``_check_fit_rows``), then
        ``_fit(X, progress)`` inside ``_torch_fit``. Coders with other inputs (labels, HKD's
        data-dependent checks) or without torch define their own fit."""
        self._validate_params()
        X = self._validate_fit_X(X)
        self._check_fit_rows(X)
        with self._torch_fit():
            return self._fit(X, progress)

    def _check_fit_rows(self, X: np.ndarray) -> None:
        """Refuse training data the coder cannot learn from (e.g. fewer rows than K)."""

    def _run_epochs(self, n_epochs: int, step_epoch: Callable[[int], dict],
                    progress: ProgressCallback | None) -> None:
        """The one epoch loop: ``history_`` starts empty; for epoch = 1 .. n_epochs,
        ``step_epoch(epoch)`` runs the epoch (or tree level) and returns its terms, the record
        ``{"epoch": epoch, "n_epochs": n_epochs, **terms}`` goes to ``history_`` and a copy of it
        to ``progress`` (the app's training job and the CLI read "epoch", "n_epochs", "loss")."""
        self.history_ = []
        n_epochs = int(n_epochs)
        for epoch in range(1, n_epochs + 1):
            record = {"epoch": epoch, "n_epochs": n_epochs, **step_epoch(epoch)}
            self.history_.append(record)
            if progress is not None:
                progress(dict(record))

    @contextmanager
    def _torch_fit(self):
        """The context of a torch coder's training: ``n_threads`` torch CPU threads (None:
        torch's setting) and torch's global RNG seeded with ``random_state`` (module
        initialisation, sampling, the libraries' own draws), both restored afterwards, so a
        fit neither depends on nor disturbs the caller's RNG."""
        import torch

        from hkd_core.models.torch_utils import torch_threads

        with torch_threads(getattr(self, "n_threads", None)), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            yield

    def _shuffle_generator(self):
        """The seeded generator of the mini-batch order (``random_state``)."""
        import torch

        return torch.Generator().manual_seed(self.random_state)

    def _train(self, X_t, params, batch_step, progress: ProgressCallback | None, *,
               modules=(), optimizer=None, n_epochs: int | None = None, generator=None,
               start_epoch=None, epoch_record=None, max_grad_norm: float | None = None,
               min_batch_rows: int = 1, record: bool = True) -> None:
        """The one mini-batch training loop of the torch coders.

        The optimizer (``optimizer``, default Adam, at ``self.lr``) trains ``params`` for
        ``n_epochs`` (default ``self.epochs``) epochs. Each epoch: ``modules`` in training mode,
        ``start_epoch(epoch)`` if given, then the rows of ``X_t`` in shuffled batches of
        ``self.batch_size`` (``generator``, default ``_shuffle_generator()``; batches of fewer
        than ``min_batch_rows`` rows are skipped); per batch ``loss, terms = batch_step(x, idx)``
        (x = X_t[idx], idx on X_t's device), then zero_grad, backward, gradient clipping to
        ``max_grad_norm`` if given, step. ``terms`` maps a name to a batch mean (a number, or a
        0-d tensor, summed on its device without a per-step synchronisation) or to per-row
        values (a 1-d tensor, summed); the epoch's terms are their means over the rows seen,
        passed through ``epoch_record(epoch, means)`` if given (which may use ``modules`` in
        eval mode). The records go through ``_run_epochs`` (history_, progress); ``n_iter_`` is
        the number of epochs. Afterwards ``modules`` are in eval mode. ``record=False``: epochs
        that leave no record (pretraining)."""
        import torch

        from hkd_core.models.torch_utils import epoch_batches

        params = list(params)
        optimizer = (optimizer or torch.optim.Adam)(params, lr=self.lr)
        n_epochs = self.epochs if n_epochs is None else int(n_epochs)
        if generator is None:
            generator = self._shuffle_generator()

        def run_epoch(epoch: int) -> dict:
            for module in modules:
                module.train()
            if start_epoch is not None:
                start_epoch(epoch)
            sums, n_seen = {}, 0
            for idx in epoch_batches(len(X_t), self.batch_size, generator):
                if len(idx) < min_batch_rows:
                    continue
                idx = idx.to(X_t.device)
                loss, terms = batch_step(X_t[idx], idx)
                optimizer.zero_grad()
                loss.backward()
                if max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
                optimizer.step()
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + _batch_sum(value, len(idx))
                n_seen += len(idx)
            means = {name: _as_float(total / max(1, n_seen)) for name, total in sums.items()}
            return means if epoch_record is None else epoch_record(epoch, means)

        if record:
            self._run_epochs(n_epochs, run_epoch, progress)
            self.n_iter_ = n_epochs
        else:
            for epoch in range(1, n_epochs + 1):
                run_epoch(epoch)
        for module in modules:
            module.eval()

    def fit_transform(self, X, y=None, **fit_kwargs) -> np.ndarray:
        return self.fit(X, **fit_kwargs).codes_

    # -- persistence: json + npz, never pickle ------------------------------------------
    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        params = {k: v for k, v in self.get_params().items() if _jsonable(v)}
        meta = {"model": self.model_name, "params": params, "n_features": int(self.n_features_in_)}
        with open(os.path.join(directory, "params.json"), "w") as fh:
            json.dump(meta, fh, indent=2)
        state = dict(self._get_state())
        state["codes_"] = np.asarray(self.codes_, dtype=np.int64)
        np.savez(os.path.join(directory, "state.npz"), **state)

    def _get_state(self) -> dict:
        raise NotImplementedError

    def _set_state(self, state: dict, n_features: int) -> None:
        raise NotImplementedError


def _batch_sum(value, rows: int):
    """A batch's share of an epoch total: a batch mean times its rows, per-row values summed."""
    if hasattr(value, "detach"):
        value = value.detach()
        if value.ndim == 1:
            return float(value.sum())
    return value * rows


def _as_float(value) -> float:
    return float(value.item()) if hasattr(value, "item") else float(value)


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except TypeError:
        return False


def load_model(directory: str) -> CodeModel:
    """Load a model saved by ``CodeModel.save`` (json + npz; nothing is unpickled)."""
    from hkd_core.models import make_model

    with open(os.path.join(directory, "params.json")) as fh:
        meta = json.load(fh)
    params = dict(meta["params"])
    if "seed" in params:                  # saved before the parameter took scikit-learn's name
        params["random_state"] = params.pop("seed")
    model = make_model(meta["model"], **params)
    with np.load(os.path.join(directory, "state.npz"), allow_pickle=False) as npz:
        state = {k: npz[k] for k in npz.files}
    model.codes_ = state.pop("codes_")
    model.n_features_in_ = meta["n_features"]
    model._set_state(state, meta["n_features"])
    model.history_ = []                   # fitted from a saved state: no training epochs
    return model
