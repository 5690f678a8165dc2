"""Poincare embeddings: distance, reconstruction scores on hand-computed examples, a short fit."""
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from hkd_core.distances import poincare
from hkd_core.poincare import PoincareEmbedding, poincare_distance_torch, reconstruction_scores

# a tiny tree: r -> a, b; a -> a1, a2; b -> b1   (closure pairs are (descendant, ancestor))
TREE_NODES = ["r", "a", "b", "a1", "a2", "b1"]
TREE_EDGES = [("a", "r"), ("b", "r"), ("a1", "a"), ("a2", "a"), ("b1", "b"),
              ("a1", "r"), ("a2", "r"), ("b1", "r")]


def test_poincare_distance_hand_computed():
    # origin to (0.5, 0): arcosh(1 + 2*0.25/(1*0.75)) = arcosh(5/3) = ln 3
    a = np.array([[0.0, 0.0]])
    b = np.array([[0.5, 0.0]])
    assert poincare(a, b)[0, 0] == pytest.approx(math.log(3.0), rel=1e-9)
    torch = pytest.importorskip("torch")
    d = poincare_distance_torch(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    assert float(d[0]) == pytest.approx(math.log(3.0), rel=1e-9)


def _line_embedding(positions):
    """Points on the x-axis of the 2-d ball; Poincare distance is monotone in |x - y| there
    only from the same side, so tests below compare distances explicitly where it matters."""
    return np.array([[p, 0.0] for p in positions])


def test_reconstruction_scores_hand_computed():
    nodes = ["u", "v", "w", "x"]
    # u at the origin; w closer to u than v; x farther.  Only edge: (u, v).
    X = _line_embedding([0.0, 0.5, 0.2, 0.9])
    s = reconstruction_scores(X, nodes, [("u", "v")])
    # u's non-neighbours (u excluded): w (closer), x (farther) -> rank of v = 2; AP = 1/2
    assert s["mean_rank"] == pytest.approx(2.0)
    assert s["map"] == pytest.approx(0.5)
    assert s["n_pairs"] == 1 and s["n_nodes_ranked"] == 1
    s_self = reconstruction_scores(X, nodes, [("u", "v")], count_self=True)
    # u itself at distance 0 becomes a non-neighbour closer than v: rank 3, AP 1/3
    assert s_self["mean_rank"] == pytest.approx(3.0)
    assert s_self["map"] == pytest.approx(1.0 / 3.0)


def test_reconstruction_two_neighbours_and_symmetric():
    nodes = ["u", "v1", "v2", "w"]
    X = _line_embedding([0.0, 0.1, 0.6, 0.3])  # distances from u: v1 < w < v2
    edges = [("u", "v1"), ("u", "v2")]
    s = reconstruction_scores(X, nodes, edges)
    # ranks: v1 -> 1, v2 -> 2 (w closer); AP = (1/1 + 2/3) / 2
    assert s["mean_rank"] == pytest.approx(1.5)
    assert s["map"] == pytest.approx((1.0 + 2.0 / 3.0) / 2.0)
    # symmetric adds v1 -> u and v2 -> u as pairs; rank them by hand
    D = poincare(X, X)
    rank_v1 = 1 + sum(D[1, j] < D[1, 0] for j in (2, 3))  # v1's non-neighbours: v2, w
    rank_v2 = 1 + sum(D[2, j] < D[2, 0] for j in (1, 3))
    s_sym = reconstruction_scores(X, nodes, edges, symmetric=True)
    assert s_sym["n_pairs"] == 4
    assert s_sym["mean_rank"] == pytest.approx((1 + 2 + rank_v1 + rank_v2) / 4)


def test_reconstruction_map_matches_sklearn_on_random_points():
    rng = np.random.default_rng(0)
    X = rng.uniform(-0.6, 0.6, size=(len(TREE_NODES), 3))
    s = reconstruction_scores(X, TREE_NODES, TREE_EDGES)
    idx = {n: i for i, n in enumerate(TREE_NODES)}
    D = poincare(X, X)
    aps = []
    for u in TREE_NODES:
        pos = {idx[v] for a, v in TREE_EDGES if a == u}
        if not pos:
            continue
        cand = [j for j in range(len(TREE_NODES)) if j != idx[u]]
        y = [1 if j in pos else 0 for j in cand]
        aps.append(average_precision_score(y, -D[idx[u], cand]))
    assert s["map"] == pytest.approx(np.mean(aps))


def test_reconstruction_rejects_bad_input():
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match="embedding"):
        reconstruction_scores(X, ["a", "b"], [("a", "b")])
    with pytest.raises(ValueError, match="not in nodes"):
        reconstruction_scores(X, ["a", "b", "c"], [("a", "zzz")])


def test_short_fit_lowers_loss_and_stays_in_ball():
    model = PoincareEmbedding(dim=2, epochs=60, negatives=4, lr=0.3, burn_in=5, batch_size=4, seed=0,
                              device="cpu")
    model.fit(TREE_NODES, TREE_EDGES)
    losses = [h["loss"] for h in model.history_]
    assert len(losses) == 60
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    norms = np.linalg.norm(model.embedding_, axis=1)
    assert model.embedding_.shape == (6, 2) and np.all(norms < 1.0)
    # the hierarchy shows: the root is nearer the origin than the leaves
    idx = {n: i for i, n in enumerate(TREE_NODES)}
    assert norms[idx["r"]] < min(norms[idx[leaf]] for leaf in ("a1", "a2", "b1"))
    scores = reconstruction_scores(model.embedding_, TREE_NODES, TREE_EDGES)
    assert scores["map"] > 0.8


def test_fit_is_reproducible_with_seed():
    kw = dict(dim=2, epochs=5, negatives=3, lr=0.1, burn_in=2, batch_size=3, device="cpu")
    a = PoincareEmbedding(seed=1, **kw).fit(TREE_NODES, TREE_EDGES).embedding_
    b = PoincareEmbedding(seed=1, **kw).fit(TREE_NODES, TREE_EDGES).embedding_
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("param, value, match", [
    ("dim", 0, "dim"), ("epochs", 0, "epochs"), ("lr", 0.0, "lr"), ("negatives", 0, "negatives"),
    ("optimizer", "adam", "optimizer"), ("lr_schedule", "cosine", "lr_schedule"), ("burn_in", 99, "burn_in"), ("device", "tpu", "device"),
])
def test_bad_parameters_raise_naming_them(param, value, match):
    kw = dict(epochs=5, burn_in=1)
    kw[param] = value
    with pytest.raises(ValueError, match=match):
        PoincareEmbedding(**kw).fit(TREE_NODES, TREE_EDGES)


def test_snapshot_equals_the_same_run_stopped_early():
    kw = dict(dim=2, negatives=3, lr=0.2, burn_in=1, batch_size=3, lr_schedule="constant", seed=3, device="cpu")
    long_run = PoincareEmbedding(epochs=6, snapshot_epochs=(3,), **kw).fit(TREE_NODES, TREE_EDGES)
    short_run = PoincareEmbedding(epochs=3, **kw).fit(TREE_NODES, TREE_EDGES)
    assert set(long_run.snapshots_) == {3}
    np.testing.assert_allclose(long_run.snapshots_[3], short_run.embedding_)
    assert not np.allclose(long_run.snapshots_[3], long_run.embedding_)
    with pytest.raises(ValueError, match="snapshot_epochs"):
        PoincareEmbedding(epochs=2, snapshot_epochs=(5,), burn_in=0).fit(TREE_NODES, TREE_EDGES)


def test_burn_in_and_linear_schedule_set_the_learning_rate():
    model = PoincareEmbedding(dim=2, epochs=6, negatives=2, lr=0.5, burn_in=2, burn_in_lr_factor=0.1,
                              lr_schedule="linear", device="cpu").fit(TREE_NODES, TREE_EDGES)
    lrs = [h["lr"] for h in model.history_]
    assert lrs[:2] == pytest.approx([0.05, 0.05])
    assert [h["phase"] for h in model.history_] == ["burn-in"] * 2 + ["main"] * 4
    assert lrs[2] == pytest.approx(0.5) and lrs[-1] == pytest.approx(0.005)
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))


def test_fit_rejects_reflexive_and_unknown_edges():
    with pytest.raises(ValueError, match="reflexive"):
        PoincareEmbedding(epochs=1, burn_in=0).fit(TREE_NODES, TREE_EDGES + [("a", "a")])
    with pytest.raises(ValueError, match="not in nodes"):
        PoincareEmbedding(epochs=1, burn_in=0).fit(TREE_NODES, [("a", "nope")])


def test_progress_exception_cancels():
    class Stop(Exception):
        pass

    def progress(rec):
        if rec["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        PoincareEmbedding(epochs=10, burn_in=1, device="cpu").fit(TREE_NODES, TREE_EDGES, progress=progress)
