"""HCRL coder (VAE with a hierarchical Gaussian mixture prior over a tree) and the hierarchical
clustering F-score of the HCRL paper's Table 2."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hkd_core.metrics import hierarchical_f_score
from hkd_core.models import MODEL_SPECS, load_model, make_model
from hkd_core.models.hcrl import HCRL, HierarchicalGaussianPrior, full_tree


@pytest.fixture(scope="module")
def X_y():
    # two super-clusters, each of two sub-clusters, in 6-d
    rng = np.random.default_rng(0)
    top = np.array([[8.0] * 6, [-8.0] * 6])
    sub = 3.0 * rng.standard_normal((2, 2, 6))
    leaf = rng.integers(0, 4, 240)
    X = top[leaf // 2] + sub[leaf // 2, leaf % 2] + 0.5 * rng.standard_normal((240, 6))
    return X.astype(np.float32), leaf


def small(**kw):
    params = dict(K=2, D=4, levels=3, latent_dim=4, hidden=(32,), pretrain_epochs=10,
                  epochs=15, batch_size=64, random_state=0, device="cpu")
    params.update(kw)
    return HCRL(**params)


@pytest.fixture(scope="module")
def fitted(X_y):
    return small().fit(X_y[0])


def test_registered():
    assert MODEL_SPECS["hcrl"][1] == "HCRL"
    model = make_model("hcrl", K=3, D=5, levels=4)
    assert model.model_name == "hcrl" and (model.K, model.D, model.levels) == (3, 5, 4)


def test_full_tree_and_path_prior_is_a_distribution():
    parent, child, paths = full_tree(3, 3)
    assert len(parent) == 1 + 3 + 9 and paths.shape == (9, 3)
    assert all(parent[paths[p, 2]] == paths[p, 1] for p in range(9))
    prior = HierarchicalGaussianPrior(3, 3, 2, gamma=1.0)
    # with q(v) = prior Beta(1, 1), exp E[log p(zeta|v)] sums to < 1 (Jensen) and is largest
    # for the path of first children (the first stick)
    w = torch.exp(prior.log_path_prior()).detach().numpy()
    assert w.sum() <= 1.0 + 1e-6 and w.argmax() == 0


def test_codes_have_shape_range_and_padding(fitted, X_y):
    X, _ = X_y
    codes = fitted.codes_
    assert codes.shape == (len(X), 4) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 2
    assert np.all(codes[:, 2:] == 0)             # levels - 1 = 2 digits, padded to D = 4
    np.testing.assert_array_equal(fitted.transform(X), codes)
    post = fitted.posteriors(X[:5])
    np.testing.assert_allclose(post["paths"].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(post["levels"].sum(1), 1.0, atol=1e-5)


def test_elbo_improves_and_tree_recovers_the_top_split(fitted, X_y):
    X, leaf = X_y
    elbo = [h["elbo"] for h in fitted.history_]
    assert elbo[-1] > elbo[0]
    assert all(np.isfinite(elbo))
    # the first digit separates the two super-clusters
    top = leaf // 2
    agree = np.mean(fitted.codes_[:, 0] == top)
    assert max(agree, 1 - agree) > 0.95
    assert hierarchical_f_score(fitted.codes_, leaf.astype(str)) > 0.6
    X_hat = fitted.inverse_transform(fitted.codes_)
    assert X_hat.shape == X.shape


def test_same_seed_same_codes_and_save_load(fitted, X_y, tmp_path):
    X, _ = X_y
    np.testing.assert_array_equal(small().fit(X).codes_, fitted.codes_)
    fitted.save(str(tmp_path / "m"))
    loaded = load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.transform(X), fitted.codes_)


@pytest.mark.parametrize("bad", [dict(K=1), dict(levels=1), dict(levels=6, D=4),
                                 dict(K=64, levels=4), dict(gamma=0.0), dict(hidden=5)])
def test_bad_parameters_are_named(bad, X_y):
    name = "levels" if "levels" in bad else "K" if "K" in bad and "levels" not in bad else next(iter(bad))
    with pytest.raises(ValueError, match=name):
        HCRL(**bad).fit(X_y[0])


def test_hierarchical_f_score_hand_computed():
    # tree: root {0..4}; level 1 {0,1,2} {3,4}; level 2 {0,1} {2} {3,4}
    codes = np.array([[0, 0], [0, 0], [0, 1], [1, 0], [1, 0]])
    labels = ["a", "a", "b", "b", "c"]
    # flat: a={0,1} -> {0,1}: F 1; b={2,3} -> {2}: 2*1/(2+1)=2/3; c={4} -> {3,4}: 2/3
    # weights 2/5, 2/5, 1/5 -> (2 + 4/3 + 2/3) / 5 = 0.8
    assert hierarchical_f_score(codes, labels) == pytest.approx(0.8)
    # with a -> X, b -> X, c -> Y: X={0,1,2,3} -> root: 2*4/(4+5) = 8/9; Y={4}: 2/3
    # (2*1 + 2*2/3 + 1*2/3 + 4*8/9 + 1*2/3) / 10 = 74/90
    hierarchy = {"a": "X", "b": "X", "c": "Y"}
    assert hierarchical_f_score(codes, labels, hierarchy) == pytest.approx(74 / 90)
    # only the first level of the tree: b -> {0,1,2}: 2/5 or root 4/7 -> 4/7; a -> {0,1,2}: 4/5
    # c -> {3,4}: 2/3  -> (2*4/5 + 2*4/7 + 2/3) / 5
    assert hierarchical_f_score(codes, labels, depth=1) == pytest.approx(
        (2 * 4 / 5 + 2 * 4 / 7 + 2 / 3) / 5)
    # a perfect tree scores 1
    assert hierarchical_f_score(codes[:4], ["a", "a", "b", "c"]) == pytest.approx(1.0)


def test_benchmark_lists_hcrl_and_reports_its_f_score():
    from hkd_core.benchmark.run import CoderSpec, default_coders, run_benchmark

    assert "hcrl" in [c.label for c in default_coders()]
    coders = [CoderSpec("hcrl", "hcrl", {"pretrain_epochs": 2}), CoderSpec("hkm K=4", "hkm", {"K": 4})]
    result = run_benchmark(["digits"], coders=coders, seeds=(0,), quick=True)
    rows = result["datasets"]["digits"]["by_metric"]["euclidean"]
    for label in ("hcrl", "hkm K=4"):
        assert 0.0 < rows[label]["hf_score"]["mean"] <= 1.0
