"""HKD cut tree (hkd_core/models/cut_tree.py): normalised cuts of HKD's p_{j|i} graph per digit."""
from __future__ import annotations

import numpy as np
import pytest

from hkd_core.models import load_model, make_model
from hkd_core.models.cut_tree import (HKDCutTree, _ncut, _refine, _spectral_rows,
                                      _sweep_bisection, affinity_graph)

FIXED = dict(K=4, D=4, branching=2, perplexity=5.0, split="spectral")


def two_level(n_per: int = 40, seed: int = 0):
    """Two super-groups far apart (x = -10 / +10), each of two clusters (y = -2 / +2)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-10.0, -2.0], [-10.0, 2.0], [10.0, -2.0], [10.0, 2.0]])
    X = np.concatenate([c + 0.3 * rng.standard_normal((n_per, 2)) for c in centres])
    return X.astype(np.float32), np.repeat(np.arange(4), n_per)


@pytest.fixture(scope="module")
def fitted():
    X, y = two_level()
    return HKDCutTree(**FIXED).fit(X), X, y


def test_codes_shape_range_and_history(fitted):
    model, X, _ = fitted
    assert model.codes_.shape == (len(X), 4)
    assert model.codes_.dtype == np.int64
    assert model.codes_.min() >= 0 and model.codes_.max() < 2     # branching 2 <= K
    assert [h["epoch"] for h in model.history_] == [1, 2, 3, 4]
    assert all(h["n_epochs"] == 4 and 0 <= h["loss"] <= 1 for h in model.history_)


def test_first_digit_separates_top_groups_second_the_clusters(fitted):
    model, _, y = fitted
    top = y // 2
    d0 = model.codes_[:, 0]
    assert all(len(np.unique(d0[top == g])) == 1 for g in (0, 1))
    assert d0[top == 0][0] != d0[top == 1][0]
    prefix2 = model.codes_[:, 0] * 2 + model.codes_[:, 1]
    assert len(np.unique(prefix2)) == 4
    assert all(len(np.unique(prefix2[y == c])) == 1 for c in range(4))


def test_transform_training_rows_reproduces_codes(fitted):
    model, X, _ = fitted
    np.testing.assert_array_equal(model.transform(X), model.codes_)


@pytest.mark.parametrize("descent", ["vote", "centroid"])
def test_new_rows_descend_to_their_cluster(descent):
    X, y = two_level()
    model = HKDCutTree(**FIXED, descent=descent).fit(X)
    assert model.descent_ == descent
    np.testing.assert_array_equal(model.transform(X), model.codes_)
    Xn, yn = two_level(n_per=5, seed=7)
    codes = model.transform(Xn)
    for c in range(4):
        ref = model.codes_[y == c][0, :2]
        assert np.all(codes[yn == c, :2] == ref)


def test_refine_lowers_the_normalised_cut():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.standard_normal((60, 3)), rng.standard_normal((60, 3)) + 2.5])
    W = affinity_graph(X.astype(np.float32), 8.0, "euclidean")
    bad = rng.integers(0, 2, len(X))                  # a random split
    deg = np.asarray(W.sum(1)).ravel()

    def ncut(lab):
        M = W @ np.eye(2)[lab]
        assoc = np.array([M[lab == g, g].sum() for g in range(2)])
        vol = np.array([deg[lab == g].sum() for g in range(2)])
        return _ncut(assoc, vol)

    better = _refine(W, bad, 2, min_size=10)
    assert ncut(better) < ncut(bad) - 0.1
    spectral = _sweep_bisection(W, _spectral_rows(W, 1, 0)[:, 0], 10)
    assert ncut(_refine(W, spectral, 2, 10)) <= ncut(spectral) + 1e-9
    # the spectral cut finds the two blobs
    truth = np.repeat([0, 1], 60)
    assert max(np.mean(spectral == truth), np.mean(spectral != truth)) > 0.9


def test_save_load_round_trip(fitted, tmp_path):
    model, X, _ = fitted
    model.save(str(tmp_path / "m"))
    again = load_model(str(tmp_path / "m"))
    assert isinstance(again, HKDCutTree)
    np.testing.assert_array_equal(again.codes_, model.codes_)
    Xn, _ = two_level(n_per=5, seed=3)
    np.testing.assert_array_equal(again.transform(Xn), model.transform(Xn))
    np.testing.assert_allclose(again.inverse_transform(model.codes_),
                               model.inverse_transform(model.codes_))


def test_auto_choice_happens_inside_fit_and_poincare():
    X, _ = two_level(n_per=30)
    Xb = (X / 25.0).astype(np.float32)                 # inside the unit ball
    model = make_model("hkd-cuttree", K=4, D=3, metric="poincare").fit(Xb)
    assert {c["graph_metric"] for c in model.selection_} == {"poincare", "euclidean"}
    # graph cuts: 2 branchings x 2 perplexities x 2 graph metrics; k-means splits: 2 branchings
    assert {c["split"] for c in model.selection_} == {"spectral", "kmeans"}
    assert len(model.selection_) == 2 * (2 * 2 * 2 + 2)           # x 2 descents, no refit
    assert model.descent_ in ("vote", "centroid")
    assert model.branching_ in (2, 4) and model.perplexity_ in (5.0, 10.0)
    np.testing.assert_array_equal(model.transform(Xb), model.codes_)


def test_ablations_are_registered():
    X, _ = two_level(n_per=20)
    fixed = {k: v for k, v in FIXED.items() if k != "split"}
    km = make_model("hkd-cuttree-kmeans", **fixed).fit(X)
    nr = make_model("hkd-cuttree-no-refine", **fixed).fit(X)
    sp = make_model("hkd-cuttree-spectral", **fixed).fit(X)
    assert sp.model_name == "hkd-cuttree-spectral" and sp.split_ == "spectral"
    assert km.model_name == "hkd-cuttree-kmeans" and km.split == "kmeans"
    assert nr.model_name == "hkd-cuttree-no-refine" and nr.refine is False
    assert km.codes_.shape == nr.codes_.shape == (80, 4)


@pytest.mark.parametrize("param, value", [
    ("K", 1), ("D", 0), ("branching", 1), ("branching", 8), ("perplexity", 1.0),
    ("perplexity", "high"), ("metric", "cosine"), ("split", "metis"), ("refine", "yes"),
    ("balance", 0.7), ("min_size", 1), ("n_vote", 0), ("holdout", 0.9), ("random_state", -1),
    ("graph_metric", "poincare"), ("descent", "walk"),
])
def test_bad_parameters_raise_naming_them(param, value):
    X, _ = two_level(n_per=5)
    with pytest.raises(ValueError, match=param):
        HKDCutTree(**{**FIXED, param: value}).fit(X)


def test_poincare_rows_outside_ball_raise():
    X, _ = two_level(n_per=5)
    with pytest.raises(ValueError, match="unit ball"):
        HKDCutTree(**FIXED, metric="poincare").fit(X)
