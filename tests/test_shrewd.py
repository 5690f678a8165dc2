"""SHREWD / SHRED hash coders: losses on hand-computed cases, codes, bit grouping, mAP, and the
benchmark/train hooks for data with and without a label hierarchy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hkd_core.datasets.base import Dataset
from hkd_core.metrics import mean_average_precision
from hkd_core.models import load_model, make_model
from hkd_core.models.base import label_fit_kwargs
from hkd_core.models.shrewd import (SHREWD, bits_to_digits, digits_to_bits, greedy_bit_order,
                                    kl_to_target_loss, label_distance_matrix, pair_weights,
                                    similarity_loss)

# a 2-level tree: classes a1, a2 under A; b1 under B; A and B under the implicit root
HIERARCHY = {"a1": "A", "a2": "A", "b1": "B"}


def test_label_distance_is_lca_height_over_root_height():
    d = label_distance_matrix(["a1", "a2", "b1"], HIERARCHY)
    # height(root) = 2; lca(a1, a2) = A of height 1; lca(a1, b1) = root
    np.testing.assert_allclose(d, [[0, 0.5, 1], [0.5, 0, 1], [1, 1, 0]])


def test_similarity_loss_on_a_hand_computed_batch():
    # three codes of 2 bits; Manhattan distances d01 = 1, d02 = 2, d12 = 1
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0, 0.5, 1.0], [0.5, 0.0, 1.0], [1.0, 1.0, 0.0]])
    # tau_z = mean off-diagonal = (1 + 2 + 1) * 2 / 6 = 4/3; tau_y = (0.5 + 1 + 1) * 2 / 6 = 5/6
    # residuals: (0,1): 1/(4/3) - 0.5/(5/6) = 0.75 - 0.6 = 0.15; (0,2): 1.5 - 1.2 = 0.3;
    # (1,2): 0.75 - 1.2 = -0.45. weights (0.1/(0.1+d))^2: d=0.5 -> 1/36, d=1 -> 1/121
    expected = 2 * (0.15 ** 2 / 36 + 0.3 ** 2 / 121 + 0.45 ** 2 / 121) / 9
    assert similarity_loss(z, y).item() == pytest.approx(expected, rel=1e-5)
    assert pair_weights(torch.tensor(0.0)).item() == pytest.approx(1.0)
    # distances proportional to the label distances cost nothing
    assert similarity_loss(torch.tensor([[0.0], [0.5], [1.0]]),
                           torch.tensor([[0.0, 1, 2], [1, 0, 1], [2, 1, 0]])).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_loss_on_a_hand_computed_case_and_prefers_binary_points():
    z = torch.tensor([[0.0], [3.0]])
    u = torch.tensor([[1.0], [5.0]])
    # nu(z; u) = 1, 2; nu(z; z) = 3, 3
    expected = ((np.log(1) - np.log(3)) + (np.log(2) - np.log(3))) / 2
    assert kl_to_target_loss(z, u).item() == pytest.approx(expected, abs=1e-6)
    torch.manual_seed(0)
    beta = torch.distributions.Beta(0.1, 0.1)
    target = beta.sample((256, 8))
    like_target = beta.sample((256, 8))                    # another sample of Beta(0.1, 0.1)
    middle = 0.5 + 0.01 * torch.randn(256, 8)              # undecided codes near 0.5
    assert kl_to_target_loss(like_target, target) < kl_to_target_loss(middle, target)


def test_bits_group_into_big_endian_digits_and_back():
    bits = np.array([[1, 0, 1, 1, 0, 0, 0, 1]])
    np.testing.assert_array_equal(bits_to_digits(bits, 4), [[11, 1]])
    np.testing.assert_array_equal(bits_to_digits(bits, 2), [[2, 3, 0, 1]])
    np.testing.assert_array_equal(digits_to_bits(np.array([[11, 1]]), 4), bits)


def test_greedy_bit_order_puts_the_semantic_bit_first():
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 2, 200)
    bits = np.stack([rng.integers(0, 2, 200), coarse, rng.integers(0, 2, 200)], axis=1)
    i, j = rng.integers(0, 200, 3000), rng.integers(0, 200, 3000)
    similarity = (coarse[i] == coarse[j]).astype(float)
    assert greedy_bit_order(bits, i, j, similarity)[0] == 1


def test_mean_average_precision_hand_case_with_ties():
    # q0 (A): a1 (A) and b (B) tied at Hamming 1, a3 (A) at 2 -> E[AP] = 17/24;
    # q1: both A's tied at Hamming 1 -> 1; q3: like q0 -> 17/24; q2 (B) has no relevant item
    codes = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    labels = ["A", "A", "B", "A"]
    assert mean_average_precision(codes, labels) == pytest.approx((17 / 24 + 1 + 17 / 24) / 3)
    # constant codes: every ordering equally likely -> chance level, not the index order
    assert mean_average_precision(np.zeros((4, 2), dtype=int), ["A", "A", "B", "B"]) == pytest.approx(
        (1 / 3) * 1 + (1 / 3) * 0.5 + (1 / 3) * (1 / 3))


def _toy(n_per=30, seed=0):
    """Four classes under two parents; features = class centre + noise, centres of siblings close."""
    rng = np.random.default_rng(seed)
    centres = {"a1": [0, 0], "a2": [2, 0], "b1": [10, 10], "b2": [12, 10]}
    labels = [c for c in centres for _ in range(n_per)]
    X = np.array([centres[c] for c in labels], float) + 0.3 * rng.standard_normal((len(labels), 2))
    X = np.concatenate([X, rng.standard_normal((len(labels), 6))], axis=1).astype(np.float32)
    return X, labels, {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}


@pytest.fixture(scope="module")
def toy_fit():
    X, y, h = _toy()
    model = SHREWD(K=4, D=4, hidden=(32,), epochs=150, lambda_kl=0.01, lambda_cls=1.0, lr=3e-3,
                   batch_size=64, random_state=0, device="cpu").fit(X, y, hierarchy=h)
    return model, X, y, h


def test_losses_fall_and_codes_have_shape_and_range(toy_fit):
    model, X, y, h = toy_fit
    first, last = model.history_[0], model.history_[-1]
    assert last["loss"] < first["loss"] and last["sim"] < first["sim"] and last["cls"] < first["cls"]
    assert model.n_bits == 8 and model.bits_.shape == (len(X), 8)
    assert set(np.unique(model.bits_)) <= {0, 1}
    assert model.codes_.shape == (len(X), 4) and model.codes_.min() >= 0 and model.codes_.max() < 4
    np.testing.assert_array_equal(model.transform(X), model.codes_)
    np.testing.assert_array_equal(bits_to_digits(model.transform_bits(X), 2), model.codes_)
    assert sorted(model.bit_order_.tolist()) == list(range(8))
    # SHRED's classifier learned the (easy) classes
    assert np.mean(model.predict(X) == np.asarray(y)) > 0.9


def test_codes_follow_the_hierarchy(toy_fit):
    model, X, y, h = toy_fit
    bits = model.bits_.astype(int)
    parent = np.array([h[c] for c in y])
    ham = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    same_parent = parent[:, None] == parent[None, :]
    assert ham[same_parent].mean() < ham[~same_parent].mean()


def test_save_load_round_trip(toy_fit, tmp_path):
    model, X, y, h = toy_fit
    model.save(str(tmp_path / "m"))
    loaded = load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.transform(X), model.codes_)
    np.testing.assert_array_equal(loaded.bits_, model.bits_)


def test_registry_shred_is_shrewd_with_a_classification_loss():
    assert make_model("shrewd").lambda_cls == 0.0
    assert make_model("shred").lambda_cls == 1.0


def test_fit_without_labels_or_hierarchy_says_so():
    X, y, h = _toy(5)
    with pytest.raises(ValueError, match="one label per training row"):
        SHREWD(epochs=1).fit(X)
    with pytest.raises(ValueError, match="hierarchy"):
        SHREWD(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="power of two"):
        SHREWD(K=6).fit(X, y, hierarchy=h)
    flat = Dataset(name="flat", X=X, names=[str(i) for i in range(len(X))], labels=y)
    with pytest.raises(ValueError, match="label hierarchy"):
        label_fit_kwargs(SHREWD(), flat)
    assert label_fit_kwargs(make_model("hkm"), flat) == {}


def test_benchmark_skips_shrewd_without_hierarchy_and_scores_it_with_one(tmp_path):
    from hkd_core.benchmark.run import CoderSpec, run_benchmark

    X, y, h = _toy(15)
    names = [str(i) for i in range(len(X))]
    with_tree = Dataset(name="toy", X=X, names=names, labels=y, hierarchy=h)
    flat = Dataset(name="flat", X=X, names=names, labels=y)
    import hkd_core.benchmark.run as run

    loaded = {"toy": with_tree, "flat": flat}
    original = run.load_benchmark_dataset
    run.load_benchmark_dataset = lambda key, quick=False: run.BenchmarkDataset(
        key, loaded[key], ("euclidean",), "upload", None)
    try:
        coders = [CoderSpec("shrewd", "shrewd"), CoderSpec("hkm K=4", "hkm", {"K": 4})]
        res = run_benchmark(["toy", "flat"], coders, seeds=(0,), quick=True)
    finally:
        run.load_benchmark_dataset = original
    toy = res["datasets"]["toy"]["by_metric"]["euclidean"]
    assert 0.0 <= toy["shrewd"]["mahp250"]["mean"] <= 1.0 and 0.0 <= toy["hkm K=4"]["map"]["mean"] <= 1.0
    flat_rows = res["datasets"]["flat"]
    assert "shrewd" not in flat_rows["by_metric"]["euclidean"]
    assert "label hierarchy" in flat_rows["skipped"]["shrewd"]


def test_reproduce_quick_prints_every_table1_row(capsys):
    from hkd_core.reproduce_shrewd import ABLATIONS, main

    assert main(features="poincare", quick=True) == 0
    out = capsys.readouterr().out
    for name in ABLATIONS:
        assert name in out
    assert "mAHP order here" in out
