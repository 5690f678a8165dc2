"""The HKD estimator's pieces against their equations, and its training behaviour."""
import math

import numpy as np
import pytest
import torch

from hkd_core.datasets.synthetic import cluster_centres, load_synthetic
from hkd_core.models import load_model, make_model
from hkd_core.models.exemplars import calibrate_affinities, select_exemplars
from hkd_core.neighbours import kneighbors
from hkd_core.models.hkd import HKD
from hkd_core.models.loss import exemplar_kl, student_t_affinities, weighted_code_distances
from hkd_core.models.modules import (decay_weights, proj, straight_through_one_hot,
                                     tempered_softmax)

SMALL = dict(K=4, D=3, hidden=(16,), code_dim=8, decoder_hidden=(16,), perplexities=(4.0,),
             n_kmeans_exemplars=10, n_random_exemplars=10, epochs=15, batch_size=32, lr=1e-2)


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [8, 0], [0, 8], [8, 8]], dtype=float)
    return (centres[rng.integers(0, 4, n)] + 0.5 * rng.standard_normal((n, 2))).astype(np.float32)


def test_perplexity_calibration_hits_target_entropy():
    rng = np.random.default_rng(1)
    dist = rng.gamma(2.0, 3.0, size=(50, 40))
    for perp in (2.0, 5.0, 15.0):
        P, beta = calibrate_affinities(dist, perp)
        H = -(P * np.log(np.clip(P, 1e-30, None))).sum(1)
        np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(np.exp(H), perp, rtol=1e-3)
        assert np.all(beta > 0)


def dense_float64_calibration(dist, perplexity, mask=None, tol=1e-5, max_iter=100):
    """The earlier (n, z) float64 bisection, kept here as the reference."""
    valid = np.ones_like(dist, dtype=bool) if mask is None else ~mask
    target = np.log(perplexity)
    d = np.where(valid, dist, np.inf)
    d = d - d.min(1, keepdims=True)
    lo, hi = np.zeros(len(d)), np.full(len(d), np.inf)
    beta = np.ones(len(d)) / max(np.median(d[np.isfinite(d)]), 1e-12)
    for _ in range(max_iter):
        P = np.exp(-d * beta[:, None])
        P /= P.sum(1, keepdims=True)
        H = -(np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)).sum(1)
        diff = H - target
        if np.all(np.abs(diff) < tol):
            break
        up = diff > 0
        lo, hi = np.where(up, beta, lo), np.where(up, hi, beta)
        beta = np.where(np.isinf(hi), beta * 2.0, (lo + hi) / 2.0)
    return P, beta


def test_chunked_float32_calibration_matches_the_dense_float64_one():
    rng = np.random.default_rng(4)
    dist = rng.gamma(2.0, 3.0, size=(300, 60))
    mask = rng.random((300, 60)) < 0.05
    for perp in (3.0, 10.0):
        P_old, beta_old = dense_float64_calibration(dist, perp, mask)
        P_new, beta_new = calibrate_affinities(dist, perp, mask, chunk=64)
        assert P_new.dtype == np.float32
        np.testing.assert_allclose(P_new, P_old, atol=2e-4)
        np.testing.assert_allclose(beta_new, beta_old, rtol=2e-3)
        assert np.all(P_new[mask] == 0)


@pytest.mark.parametrize("metric", ["euclidean", "poincare"])
def test_step_affinities_from_betas_match_the_dense_calibration(metric):
    from hkd_core.models.exemplars import (exemplar_affinities, exemplar_betas, exemplar_distances,
                                           input_distances, rim_distance)
    X = blobs(200) / (12.0 if metric == "poincare" else 1.0)
    ex, rows = select_exemplars(X, 15, 10, metric, seed=0)
    invalid = rows[None, :] == np.arange(len(X))[:, None]
    P_old, _ = dense_float64_calibration(input_distances(X, ex, metric), 6.0, invalid)
    betas = exemplar_betas(X, ex, rows, None, (6.0,), metric, chunk=64)
    rims = (torch.as_tensor(rim_distance(X)), torch.as_tensor(rim_distance(ex))) \
        if metric == "poincare" else (None, None)
    d = exemplar_distances(torch.as_tensor(X), torch.as_tensor(ex), metric, *rims)
    P_new = exemplar_affinities(d, torch.as_tensor(betas[:, 0]), torch.as_tensor(invalid)).numpy()
    np.testing.assert_allclose(P_new, P_old, atol=5e-4)


def test_calibration_respects_mask_and_rejects_too_high_perplexity():
    dist = np.arange(12, dtype=float).reshape(2, 6) + 1
    mask = np.zeros_like(dist, dtype=bool)
    mask[:, 0] = True
    P, _ = calibrate_affinities(dist, 2.0, mask)
    assert np.all(P[:, 0] == 0)
    with pytest.raises(ValueError, match="perplexity"):
        calibrate_affinities(dist, 5.0, mask)


def test_proj_matches_eq6():
    x = torch.tensor([[0.3, 0.4], [3.0, 4.0], [0.6, 0.8]])
    out = proj(x, eps=1e-5)
    np.testing.assert_allclose(out[0].numpy(), [0.3, 0.4])          # |x| = 0.5 < 1: unchanged
    np.testing.assert_allclose(out[1].numpy(), np.array([3, 4]) / (5 + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(out[2].numpy(), np.array([.6, .8]) / (1 + 1e-5), rtol=1e-6)  # |x| = 1


def test_decay_weights_match_eq11():
    w = decay_weights(4, w0=2.0, decay=0.5).numpy()
    np.testing.assert_allclose(w, [2 * math.exp(-0.5 * d) for d in (1, 2, 3, 4)], rtol=1e-6)
    assert np.all(decay_weights(5, 1.0, 0.0).numpy() == 1.0)


def test_weighted_code_distance_eq10_by_hand():
    p = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])              # point: digits (0, 1)
    e = torch.tensor([[[0.0, 1.0], [0.0, 1.0]],               # differs at digit 1
                      [[1.0, 0.0], [1.0, 0.0]]])              # differs at digit 2
    w = torch.tensor([1.0, 0.5])
    d = weighted_code_distances(p, e, w)
    np.testing.assert_allclose(d.numpy(), [[2 * 1.0 ** 2, 2 * 0.5 ** 2]], rtol=1e-6)
    # per-point exemplars give the same numbers
    d2 = weighted_code_distances(p, e.unsqueeze(0), w)
    np.testing.assert_allclose(d2.numpy(), d.numpy(), rtol=1e-6)


def test_student_t_joint_vs_conditional_and_kl_zero_when_equal():
    d = torch.tensor([[0.0, 1.0], [3.0, 1.0]])
    kern = 1 / (1 + d)
    Qj = student_t_affinities(d, None, "joint")
    Qc = student_t_affinities(d, None, "conditional")
    np.testing.assert_allclose(Qj.numpy(), (kern / kern.sum()).numpy(), rtol=1e-6)
    np.testing.assert_allclose(Qc.numpy(), (kern / kern.sum(1, keepdim=True)).numpy(), rtol=1e-6)
    # KL(P || Q) = 0 when p_{j|i}/B equals the joint q
    P = Qj * 2
    assert abs(exemplar_kl(P, Qj, "joint").item()) < 1e-6
    assert abs(exemplar_kl(Qc, Qc, "conditional").item()) < 1e-6
    assert exemplar_kl(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), Qc, "conditional").item() > 0


def test_relaxations():
    logits = torch.tensor([[[2.0, 1.0, 0.0]]], requires_grad=True)
    soft = tempered_softmax(logits, 0.5)
    np.testing.assert_allclose(soft.detach().numpy(), torch.softmax(logits / 0.5, -1).detach().numpy())
    st = straight_through_one_hot(logits, 1.0)
    np.testing.assert_allclose(st.detach().numpy(), [[[1.0, 0.0, 0.0]]])
    (st * torch.tensor([0.0, 1.0, 0.0])).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("relaxation", ["softmax", "straight-through"])
def test_gradients_reach_the_encoder(relaxation):
    X = blobs(64)
    model = HKD(**{**SMALL, "epochs": 1, "relaxation": relaxation, "beta": 0.0, "alpha": 1.0})
    model.fit(X)
    model.module_.zero_grad()
    from hkd_core.models.modules import RELAXATIONS
    from hkd_core.models.loss import reconstruction_error
    x = torch.as_tensor(X)
    logits = model.module_.encoder(x)
    x_hat = model.module_.decoder(RELAXATIONS[relaxation](logits, 0.5), model.weights_)
    reconstruction_error(x_hat, x).backward()
    first = model.module_.encoder.net[0].weight.grad
    assert first is not None and first.abs().sum().item() > 0


def test_exemplars_kmeans_random_and_neighbours():
    X = blobs(100)
    ex, rows = select_exemplars(X, 7, 5, "euclidean", seed=0)
    assert ex.shape == (12, 2) and np.all(rows[:7] == -1) and np.all(rows[7:] >= 0)
    np.testing.assert_allclose(ex[7:], X[rows[7:]])
    found = kneighbors(X, 3, "sqeuclidean")           # the per-point exemplars of §3.1
    nb, nb_dist = found.indices, found.distances
    d = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_array_equal(nb[:, 0], d.argmin(1))
    np.testing.assert_allclose(nb_dist[:, 0], d.min(1), rtol=1e-5)      # squared Euclidean (eq. 8)
    assert np.all(np.diff(nb_dist, axis=1) >= 0)
    assert not np.any(nb == np.arange(100)[:, None])


def test_short_fit_lowers_loss_and_is_repeatable():
    X = blobs(150)
    a = HKD(**SMALL, random_state=3).fit(X)
    b = HKD(**SMALL, random_state=3).fit(X)
    losses = [h["loss"] for h in a.history_]
    assert losses[-1] < losses[0]
    np.testing.assert_array_equal(a.codes_, b.codes_)
    assert losses == [h["loss"] for h in b.history_]
    assert a.codes_.shape == (150, 3) and a.codes_.dtype == np.int64
    assert a.codes_.min() >= 0 and a.codes_.max() < 4
    np.testing.assert_array_equal(a.transform(X), a.codes_)
    assert a.inverse_transform(a.codes_).shape == X.shape


def test_neighbour_exemplars_poincare_and_conditional_q_train():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((80, 3)) * 0.2).astype(np.float32)
    m = HKD(**{**SMALL, "metric": "poincare", "n_neighbour_exemplars": 5,
               "q_normalization": "conditional", "epochs": 5}).fit(X)
    assert np.isfinite(m.history_[-1]["loss"])


def test_progress_callback_and_cancel():
    X = blobs(60)
    seen = []
    HKD(**{**SMALL, "epochs": 4}).fit(X, progress=seen.append)
    assert [s["epoch"] for s in seen] == [1, 2, 3, 4] and all("loss" in s for s in seen)

    class Cancelled(Exception):
        pass

    def cancel(info):
        if info["epoch"] == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        HKD(**SMALL).fit(X, progress=cancel)


@pytest.mark.parametrize("param,value,match", [
    ("K", 1, "K must be"), ("D", 0, "D must be"), ("alpha", -1, "alpha"),
    ("perplexities", (0.5,), "perplexities"), ("perplexities", (100.0,), "perplexities"),
    ("kl_weights", (1.0, 1.0), "kl_weights"), ("q_normalization", "rowwise", "q_normalization"),
    ("relaxation", "gumbel?", "relaxation"), ("optimizer", "lbfgs", "optimizer"),
    ("epochs", 0, "epochs"), ("lr", 0, "lr"), ("metric", "cosine", "metric"),
    ("hidden", (0,), "hidden"), ("tau_end", 0.0, "tau_end"), ("ablation", "no-x", "ablation"),
])
def test_bad_parameters_raise_clear_errors(param, value, match):
    with pytest.raises(ValueError, match=match):
        HKD(**{**SMALL, param: value}).fit(blobs(40))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        HKD(**SMALL).fit(np.array([[0.0, np.nan]] * 30))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):      # scikit-learn's words
        HKD(**SMALL).fit(np.zeros(30))
    with pytest.raises(ValueError, match="unit ball"):
        HKD(**{**SMALL, "metric": "poincare"}).fit(blobs(40))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        HKD().transform(blobs(5))
    m = HKD(**{**SMALL, "epochs": 1}).fit(blobs(40))
    with pytest.raises(ValueError, match="features"):
        m.transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="code values"):
        m.inverse_transform(np.full((2, 3), 9))


def test_save_load_round_trip(tmp_path):
    X = blobs(60)
    m = make_model("hkd-no-decay", **{**SMALL, "epochs": 3}).fit(X)
    m.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.model_name == "hkd-no-decay" and back.ablation == "no-decay"
    np.testing.assert_array_equal(back.transform(X), m.transform(X))
    np.testing.assert_allclose(back.inverse_transform(m.codes_), m.inverse_transform(m.codes_), rtol=1e-6)


def test_ablations_switch_off_their_term():
    X = blobs(60)
    no_kl = make_model("hkd-no-kl", **{**SMALL, "epochs": 2}).fit(X)
    assert all(h["kl"] == 0 for h in no_kl.history_)
    no_decay = make_model("hkd-no-decay", **{**SMALL, "epochs": 1}).fit(X)
    assert torch.all(no_decay.weights_ == no_decay.weights_[0])
    with pytest.raises(ValueError, match="does not take"):
        make_model("hkd", nonsense=1)


def test_synthetic_dataset_hierarchy_and_split():
    a, b = load_synthetic(seed=0), load_synthetic(seed=0)
    np.testing.assert_array_equal(a.X, b.X)
    assert a.X.shape == (1600, 2) and len(set(a.labels)) == 16
    assert len(np.intersect1d(a.train_idx, a.test_idx)) == 0
    assert len(a.train_idx) + len(a.test_idx) == 1600
    c = cluster_centres()
    # first split (level 1) is the widest: the two super-clusters are x < 0 and x > 0
    assert np.all((c[:8, 0] < 0)) and np.all(c[8:, 0] > 0)
    assert a.hierarchy["g0000"] == "g000" and a.hierarchy["g0"] == "root"
    with pytest.raises(ValueError, match="n_per_cluster"):
        load_synthetic(n_per_cluster=1)
    with pytest.raises(ValueError, match="shrink"):
        load_synthetic(shrink=1.5)


def test_synthetic_geometry_default_overlaps_and_old_one_is_reachable():
    from scipy.spatial.distance import cdist

    def cross_cluster_neighbour_rate(ds, k=10):
        d = cdist(ds.X, ds.X)
        np.fill_diagonal(d, np.inf)
        knn = np.argsort(d, axis=1)[:, :k]
        cluster = ds.extra["cluster"]
        return float(np.mean(cluster[knn] != cluster[:, None]))

    # default: spread 1.0, offsets shrinking by 0.6 per level (16, 9.6, 5.76, 3.456)
    np.testing.assert_allclose(np.abs(cluster_centres()).max(axis=0), [16 + 5.76, 9.6 + 3.456])
    new = load_synthetic(n_per_cluster=50, seed=0)
    old = load_synthetic(n_per_cluster=50, seed=0, spread=0.4, shrink=0.5)
    np.testing.assert_allclose(np.abs(cluster_centres(0.5)).max(axis=0), [20, 10])
    assert cross_cluster_neighbour_rate(old) == 0.0          # every split >= 10 sd
    assert cross_cluster_neighbour_rate(new) < 0.01          # still 16 clusters ...
    # ... but wide: 2.5x the old spread, the finest split 3.5 sd from a centre (old: 5 sd)
    assert np.std(new.X[new.extra["cluster"] == 0], axis=0).mean() > 2 * np.std(
        old.X[old.extra["cluster"] == 0], axis=0).mean()
    assert new.labels == old.labels
    # the first split stays the widest (shrink <= 1/sqrt(2)): x gap between the halves
    xs = np.sort(np.unique(cluster_centres()[:, 0]))
    assert xs[2] - xs[1] == pytest.approx(np.max(np.diff(xs)))
