"""Baselines behind the CodeModel interface: DCCL, KD codes, hierarchical k-means, residual
quantisation, random codes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hkd_core.models import load_model, make_model, model_class
from hkd_core.models.dccl import DCCL, gumbel_softmax_sample
from hkd_core.models.hkm import HierarchicalKMeans
from hkd_core.models.kd import KDCodes, straight_through_softmax
from hkd_core.models.random_codes import RandomCodes

BASELINES = ("dccl", "kd", "hkm", "rq", "random")

# Small, fast settings per model (the defaults are for real data sizes).
FAST = {
    "dccl": dict(epochs=3, lr=1e-3, device="cpu"),
    "kd": dict(epochs=3, device="cpu"),
    "kd-lstm": dict(epochs=3, composition="lstm", device="cpu"),
    "hkm": dict(),
    "rq": dict(),
    "random": dict(),
}


def registry_name(key: str) -> str:
    return key.split("-")[0]


def fast_model(key: str, **params):
    return make_model(registry_name(key), **{**FAST[key], **params})


def four_clusters(n_per: int = 50, seed: int = 0, spread: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Two super-groups far apart (x = -10 / +10), each of two clusters (y = -2 / +2)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-10.0, -2.0], [-10.0, 2.0], [10.0, -2.0], [10.0, 2.0]])
    X = np.concatenate([c + spread * rng.standard_normal((n_per, 2)) for c in centres])
    return X.astype(np.float32), np.repeat(np.arange(4), n_per)


@pytest.fixture(scope="module")
def data():
    X, _ = four_clusters()
    return X


@pytest.fixture(scope="module")
def unit_data():
    """Unit-scale 8-d data (DCCL's Adam at lr 1e-4 moves weights by ~1e-4 a step)."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((8, 8))
    return (centres[rng.integers(0, 8, 256)] + 0.1 * rng.standard_normal((256, 8))).astype(np.float32)


# -- the common interface ------------------------------------------------------------------

@pytest.mark.parametrize("name", BASELINES)
def test_registry_builds_with_defaults(name):
    cls = model_class(name)
    model = cls()
    assert model.model_name == name
    params = make_model(name).get_params()
    assert params["K"] == 16 and params["D"] == 16 and "random_state" in params


@pytest.mark.parametrize("key", list(FAST))
def test_codes_shape_dtype_range_and_transform(key, data):
    model = fast_model(key, K=4, D=6)
    assert model.fit(data) is model
    codes = model.codes_
    assert codes.shape == (len(data), 6) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 4
    assert model.n_features_in_ == 2
    assert len(model.history_) >= 1 and "loss" in model.history_[0]
    np.testing.assert_array_equal(model.transform(data), codes)
    X_hat = model.inverse_transform(codes)
    assert X_hat.shape == data.shape and X_hat.dtype == np.float32
    assert np.all(np.isfinite(X_hat))


@pytest.mark.parametrize("key", list(FAST))
def test_same_seed_repeats_and_other_seed_differs(key, data):
    a = fast_model(key, random_state=3).fit(data)
    b = fast_model(key, random_state=3).fit(data)
    np.testing.assert_array_equal(a.codes_, b.codes_)
    np.testing.assert_array_equal(a.inverse_transform(a.codes_), b.inverse_transform(b.codes_))
    if key != "hkm":     # k-means on 4 clean clusters finds the same tree from any seed
        c = fast_model(key, random_state=4).fit(data)
        assert not np.array_equal(a.codes_, c.codes_)


@pytest.mark.parametrize("key", list(FAST))
def test_save_load_round_trip(key, data, tmp_path):
    model = fast_model(key).fit(data)
    model.save(str(tmp_path / key))
    loaded = load_model(str(tmp_path / key))
    assert type(loaded) is type(model)
    assert loaded.get_params() == {k: (list(v) if isinstance(v, tuple) else v)
                                   for k, v in model.get_params().items()}
    np.testing.assert_array_equal(loaded.codes_, model.codes_)
    X_new = data[::3] + np.float32(0.37)
    np.testing.assert_array_equal(loaded.transform(X_new), model.transform(X_new))
    other_codes = np.roll(model.codes_[:20], 1, axis=1)
    for codes in (model.codes_, other_codes):
        np.testing.assert_array_equal(loaded.inverse_transform(codes), model.inverse_transform(codes))


@pytest.mark.parametrize("key", ["dccl", "kd", "hkm", "rq", "random"])
def test_progress_reports_each_epoch_and_can_cancel(key, data):
    seen = []
    model = fast_model(key).fit(data, progress=seen.append)
    assert [r["epoch"] for r in seen] == [r["epoch"] for r in model.history_]
    assert all({"epoch", "n_epochs", "loss"} <= set(r) for r in seen)

    class Cancelled(Exception):
        pass

    def cancel(record):
        raise Cancelled

    with pytest.raises(Cancelled):
        fast_model(key).fit(data, progress=cancel)


@pytest.mark.parametrize("key", ["dccl", "kd"])
def test_torch_thread_setting_is_restored_after_fit(key, data):
    before = torch.get_num_threads()
    seen = []

    class Cancelled(Exception):
        pass

    def record_and_cancel(record):
        seen.append(torch.get_num_threads())
        raise Cancelled

    with pytest.raises(Cancelled):
        fast_model(key, n_threads=1).fit(data, progress=record_and_cancel)
    assert seen == [1]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("name, param, value", [
    ("dccl", "K", 1), ("dccl", "D", 0), ("dccl", "epochs", 0), ("dccl", "lr", 0.0),
    ("dccl", "batch_size", 0), ("dccl", "tau", -1.0), ("dccl", "max_grad_norm", 0.0),
    ("dccl", "device", "gpu7"), ("dccl", "random_state", -1), ("dccl", "n_threads", 0),
    ("kd", "K", 1.5), ("kd", "composition", "gru"), ("kd", "hidden", (8, 0)),
    ("kd", "hidden", "64"), ("kd", "code_dim", 0), ("kd", "tau0", 0.0), ("kd", "tau_min", 2.0),
    ("kd", "straight_through", "yes"), ("kd", "tau_decay", -1.0), ("kd", "n_threads", 1.5),
    ("hkm", "K", 1), ("hkm", "D", 0), ("hkm", "n_init", 0), ("hkm", "metric", "poincare"),
    ("hkm", "max_iter", 0),
    ("random", "K", 1), ("random", "D", 0), ("random", "random_state", -2),
])
def test_bad_parameters_raise_naming_the_parameter(name, param, value, data):
    with pytest.raises(ValueError, match=param):
        make_model(name, **{param: value}).fit(data)


@pytest.mark.parametrize("key", list(FAST))
def test_bad_input_raises(key, data):
    model = fast_model(key).fit(data)
    with pytest.raises(ValueError, match="features"):
        model.transform(np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="code"):
        model.inverse_transform(np.full((2, model.D), model.K))
    with pytest.raises(ValueError, match="NaN"):
        fast_model(key).fit(np.array([[0.0, 1.0], [np.nan, 2.0]]))


# -- DCCL ------------------------------------------------------------------------------------

def test_dccl_defaults_follow_the_reference():
    p = DCCL().get_params()
    assert (p["lr"], p["batch_size"], p["tau"], p["max_grad_norm"]) == (1e-4, 64, 1.0, 0.001)
    model = DCCL(K=8, D=4, device="cpu")
    model._build(5)
    assert model.encoder_.hidden.out_features == 4 * 8 // 2
    assert tuple(model.codebooks_.weight.shape) == (4, 8, 5)


def test_dccl_loss_falls_over_a_short_fit(unit_data):
    # The reference's lr 1e-4 needs thousands of steps; 10x that keeps the test short.
    model = DCCL(K=8, D=4, epochs=40, lr=1e-3, device="cpu").fit(unit_data)
    losses = [r["loss"] for r in model.history_]
    assert losses[-1] < 0.8 * losses[0]
    # The exported codes reconstruct better than the data mean does.
    mse = ((model.inverse_transform(model.codes_) - unit_data) ** 2).sum(1).mean()
    assert mse < ((unit_data - unit_data.mean(0)) ** 2).sum(1).mean()


def test_dccl_gumbel_sample_is_soft_and_logits_log_softplus():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 4, 8)
    sample = gumbel_softmax_sample(logits, 1.0, gen)
    torch.testing.assert_close(sample.sum(-1), torch.ones(32, 4))
    assert sample.max() < 1.0 and (sample > 0).all()        # a soft sample, never hard one-hot
    model = DCCL(K=8, D=4, device="cpu")
    model._build(3)
    x = torch.randn(10, 3)
    logits = model.encoder_(x)
    a = model.encoder_.logits(torch.tanh(model.encoder_.hidden(x)))
    torch.testing.assert_close(logits, torch.log(torch.nn.functional.softplus(a) + 1e-8).view(10, 4, 8))


def test_dccl_inverse_transform_sums_one_codeword_per_partition(data):
    model = DCCL(K=4, D=3, epochs=1, device="cpu").fit(data)
    A = model.codebooks_.weight.detach().numpy()
    code = np.array([[1, 0, 3]])
    np.testing.assert_allclose(model.inverse_transform(code)[0], A[0, 1] + A[1, 0] + A[2, 3], rtol=1e-6)


# -- KD codes --------------------------------------------------------------------------------

def test_straight_through_forward_is_one_hot_backward_is_softmax():
    logits = torch.randn(5, 3, 4, requires_grad=True)
    out = straight_through_softmax(logits, 0.5)
    expected = torch.nn.functional.one_hot(logits.argmax(-1), 4).float()
    torch.testing.assert_close(out, expected)
    weights = torch.randn(5, 3, 4)
    (out * weights).sum().backward()
    logits2 = logits.detach().clone().requires_grad_(True)
    (torch.softmax(logits2 / 0.5, -1) * weights).sum().backward()
    torch.testing.assert_close(logits.grad, logits2.grad)


@pytest.mark.parametrize("composition", ["linear", "lstm"])
def test_kd_gradients_reach_the_encoder_through_hard_codes(composition):
    model = KDCodes(K=4, D=3, hidden=(8,), composition=composition, device="cpu")
    model._build(2)
    x = torch.randn(16, 2)
    relaxed = model._relax(model.encoder_(x), tau=1.0)
    assert set(relaxed.detach().unique().tolist()) <= {0.0, 1.0}
    torch.nn.functional.mse_loss(model._decode(relaxed), x).backward()
    first = model.encoder_.net[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    assert model.code_embeddings_.weight.grad.abs().sum() > 0


def test_kd_temperature_schedule():
    model = KDCodes(tau0=1.0, tau_decay=1.0, tau_min=0.05)
    assert model.temperature(0) == 1.0
    assert model.temperature(1) == pytest.approx(0.5)
    assert model.temperature(9) == pytest.approx(0.1)
    assert model.temperature(10 ** 6) == pytest.approx(0.05)


@pytest.mark.parametrize("composition", ["linear", "lstm"])
def test_kd_fit_lowers_loss_and_reconstructs(composition, unit_data):
    model = KDCodes(K=8, D=4, composition=composition, epochs=15, device="cpu").fit(unit_data)
    losses = [r["loss"] for r in model.history_]
    assert losses[-1] < 0.5 * losses[0]
    mse = ((model.inverse_transform(model.codes_) - unit_data) ** 2).mean()
    assert mse < ((unit_data - unit_data.mean(0)) ** 2).mean()
    if composition == "lstm":
        assert isinstance(model.composition_.lstm, torch.nn.LSTM)


def test_kd_compositions_match_the_paper():
    lin = KDCodes(K=4, D=3, code_dim=5, composition="linear", device="cpu")
    lstm = KDCodes(K=4, D=3, code_dim=5, composition="lstm", device="cpu")
    lin._build(2), lstm._build(2)
    digits = torch.tensor([[0, 1, 2], [2, 1, 0]])
    codes = torch.nn.functional.one_hot(digits, 4).float()
    with torch.no_grad():
        # linear: v = (sum_j W^j_{c_j}) H
        W = lin.code_embeddings_.weight
        summed = torch.stack([sum(W[j, row[j]] for j in range(3)) for row in digits])
        torch.testing.assert_close(lin._decode(codes), summed @ lin.composition_.out.weight.T)
        # lstm: v = (sum_j h_j) H over the sequence of code embeddings
        seq = lstm.code_embeddings_(codes)
        h, _ = lstm.composition_.lstm(seq)
        torch.testing.assert_close(lstm._decode(codes), h.sum(1) @ lstm.composition_.out.weight.T)
        # the LSTM reads digits in order: reversing the embedding sequence changes the output
        assert not torch.allclose(lstm.composition_(seq.flip(1)), lstm.composition_(seq))


# -- hierarchical k-means ------------------------------------------------------------------

def test_hkm_first_digits_follow_the_hand_made_hierarchy():
    X, cluster = four_clusters(n_per=30, seed=2)
    model = HierarchicalKMeans(K=2, D=4).fit(X)
    super_group = cluster // 2
    first = model.codes_[:, 0]
    # One first digit per super-group, different between the two.
    assert all(len(set(first[super_group == g])) == 1 for g in (0, 1))
    assert first[super_group == 0][0] != first[super_group == 1][0]
    # The second digit splits each super-group into its two clusters.
    prefix2 = [tuple(c) for c in model.codes_[:, :2]]
    for c in range(4):
        assert len({p for p, k in zip(prefix2, cluster) if k == c}) == 1
    assert len(set(prefix2)) == 4
    # New points near a cluster centre get that cluster's prefix.
    probe = np.array([[-10.0, 2.1], [10.1, -2.0]], dtype=np.float32)
    codes = model.transform(probe)
    assert tuple(codes[0, :2]) == prefix2[list(cluster).index(1)]
    assert tuple(codes[1, :2]) == prefix2[list(cluster).index(2)]


def test_hkm_small_nodes_duplicates_and_leaves():
    X = np.array([[0, 0], [0, 0], [0, 0], [5, 5], [9, 9]], dtype=np.float32)
    model = HierarchicalKMeans(K=4, D=3).fit(X)
    # 3 distinct rows <= K: each distinct row is a child, numbered by size (the triple first);
    # children are single-row leaves, so deeper digits are 0.
    np.testing.assert_array_equal(model.codes_[:, 0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(model.codes_[:, 1:], 0)
    np.testing.assert_array_equal(model.inverse_transform(model.codes_), X)
    # Only duplicates: the root is a leaf.
    same = HierarchicalKMeans(K=4, D=3).fit(np.ones((6, 3), dtype=np.float32))
    np.testing.assert_array_equal(same.codes_, 0)
    np.testing.assert_array_equal(same.inverse_transform(same.codes_), np.ones((6, 3)))


def test_hkm_inverse_transform_stops_at_the_deepest_existing_node(data):
    model = HierarchicalKMeans(K=2, D=5).fit(data)
    X_hat = model.inverse_transform(model.codes_)
    assert ((X_hat - data) ** 2).sum(1).mean() < ((data - data.mean(0)) ** 2).sum(1).mean() / 50
    # A code whose first digit exists but whose deeper digits leave the tree: the first-level node.
    node = model.children_[0, 1]
    deep = model.children_[node]
    assert (deep >= 0).any()
    code = np.zeros((1, 5), dtype=np.int64)
    code[0, 0] = 1
    nodes = model.deepest_nodes(code)
    assert model.depth_[nodes[0]] >= 1
    root_only = HierarchicalKMeans(K=3, D=2).fit(np.eye(2, dtype=np.float32))
    # Two distinct rows -> two children; digit 2 names no child, so the root's centroid (mean).
    np.testing.assert_allclose(root_only.inverse_transform(np.array([[2, 0]])), [[0.5, 0.5]])


def test_hkm_depth16_k16_on_1182_points_is_complete():
    X, _ = four_clusters(n_per=296, seed=5, spread=1.0)
    X = X[:1182]
    model = HierarchicalKMeans(K=16, D=16).fit(X)
    # Distinct points end in distinct leaves, so full codes are unique and reconstruct exactly.
    assert len(np.unique(model.codes_, axis=0)) == len(np.unique(X, axis=0))
    np.testing.assert_array_equal(model.transform(X), model.codes_)
    np.testing.assert_allclose(model.inverse_transform(model.codes_), X, atol=1e-6)
    losses = [r["loss"] for r in model.history_]
    assert all(b <= a + 1e-9 for a, b in zip(losses, losses[1:]))


# -- random codes --------------------------------------------------------------------------

def test_random_codes_are_uniform_and_ignore_geometry():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 3)).astype(np.float32)
    model = RandomCodes(K=8, D=4, random_state=1).fit(X)
    counts = np.bincount(model.codes_.ravel(), minlength=8)
    expected = model.codes_.size / 8
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    # A point and a nearby copy get unrelated codes; identical points share one.
    near = model.transform(X[:200] + np.float32(1e-3))
    assert (near[:, 0] == model.codes_[:200, 0]).mean() < 0.3
    np.testing.assert_array_equal(model.transform(X[:5].copy()), model.codes_[:5])


def test_random_inverse_transform_means_rows_sharing_a_code():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    model = RandomCodes(K=2, D=1, random_state=0).fit(X)
    for k in (0, 1):
        rows = model.codes_[:, 0] == k
        if rows.any():
            np.testing.assert_allclose(model.inverse_transform(np.array([[k]]))[0], X[rows].mean(0))
    wide = RandomCodes(K=16, D=8, random_state=0).fit(X)
    unseen = (wide.codes_[:1] + 1) % 16
    assert not any((unseen == c).all() for c in wide.codes_)
    np.testing.assert_allclose(wide.inverse_transform(unseen)[0], X.mean(0))


@pytest.mark.parametrize("model", ["hkd", "hkm", "dccl", "kd", "random", "hkd-cuttree", "rq", "rqvae"])
def test_every_coder_checks_the_same_size_limits(model):
    """One set of limits (models/base.py): a K or D that one coder refuses, every coder refuses."""
    from hkd_core.models import make_model
    from hkd_core.models.base import MAX_D, MAX_K

    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(ValueError, match=rf"K must be .*in \[2, {MAX_K}\]"):
        make_model(model, K=MAX_K + 1, D=2).fit(X)
    with pytest.raises(ValueError, match=rf"D must be in \[1, {MAX_D}\]"):
        make_model(model, K=2, D=MAX_D + 1).fit(X)
