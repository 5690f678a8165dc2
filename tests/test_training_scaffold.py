"""The one training scaffold in CodeModel (base.py): every coder's history_ and progress records
come from _run_epochs, the torch coders' mini-batch loop from _train, their fit context from
_torch_fit; a model loaded from a saved state has an empty history_."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hkd_core.models import load_model, make_model

LABELS = [c for c in ("a1", "a2", "b1", "b2") for _ in range(20)]
HIERARCHY = {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}

# registry name -> small settings; TORCH: the coders trained by CodeModel._train
TORCH = {
    "hkd": dict(K=4, D=3, epochs=3, batch_size=32, n_kmeans_exemplars=10, n_random_exemplars=10),
    "dccl": dict(K=4, D=3, epochs=3, lr=1e-3),
    "kd": dict(K=4, D=3, epochs=3),
    "rqvae": dict(K=4, D=3, epochs=3, hidden=(8,), latent_dim=4),
    "shrewd": dict(K=4, D=3, epochs=3, hidden=(8,)),
    "hcrl": dict(K=2, D=3, levels=3, epochs=3, pretrain_epochs=2, hidden=(8,), latent_dim=3),
}
PER_LEVEL = {"hkm": dict(K=4, D=3), "rq": dict(K=4, D=3), "hkd-cuttree": dict(K=4, D=3),
             "random": dict(K=4, D=3)}


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    centres = np.repeat(np.array([[0, 0], [2, 0], [10, 10], [12, 10]], float), 20, axis=0)
    return np.concatenate([centres + 0.3 * rng.standard_normal((80, 2)),
                           rng.standard_normal((80, 4))], axis=1).astype(np.float32)


def fit_kwargs(name: str) -> dict:
    return {"y": LABELS, "hierarchy": HIERARCHY} if name == "shrewd" else {}


def build(name: str):
    params = {**TORCH, **PER_LEVEL}[name]
    extra = {"device": "cpu", "n_threads": 1} if name in TORCH else {}
    return make_model(name, random_state=1, **params, **extra)


@pytest.mark.parametrize("name", [*TORCH, *PER_LEVEL])
def test_records_and_progress_come_from_the_one_epoch_loop(name, X):
    seen = []

    def progress(record):
        seen.append(dict(record))
        record["loss"] = "changed by the callback"      # a copy: history_ keeps its own

    model = build(name).fit(X, progress=progress, **fit_kwargs(name))
    history = model.history_
    n = history[0]["n_epochs"]
    assert [r["epoch"] for r in history] == list(range(1, n + 1))
    assert all(r["n_epochs"] == n and isinstance(r["loss"], float) for r in history)
    assert seen == history
    if name in TORCH:
        assert n == model.epochs and model.n_iter_ == model.epochs


@pytest.mark.parametrize("name", list(TORCH))
def test_torch_fit_neither_depends_on_nor_disturbs_the_global_rng(name, X):
    torch.manual_seed(123)
    a = build(name).fit(X, **fit_kwargs(name))
    after_fit = torch.rand(3)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(999)
    b = build(name).fit(X, **fit_kwargs(name))
    assert torch.equal(after_fit, expected)
    np.testing.assert_array_equal(a.codes_, b.codes_)
    assert [r["loss"] for r in a.history_] == [r["loss"] for r in b.history_]


@pytest.mark.parametrize("name", ["hkd", "dccl", "hkm", "rq"])
def test_a_loaded_model_has_an_empty_history(name, X, tmp_path):
    build(name).fit(X, **fit_kwargs(name)).save(str(tmp_path / name))
    assert load_model(str(tmp_path / name)).history_ == []


def test_hcrl_pretraining_epochs_leave_no_record(X):
    model = build("hcrl").fit(X)
    assert len(model.history_) == model.epochs and model.n_iter_ == model.epochs
