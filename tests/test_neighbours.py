"""The neighbour engine against brute force: by hand, on random data, Poincare, approximate."""
import math

import numpy as np
import pytest

from hkd_core.distances import poincare, sq_euclidean
from hkd_core.metrics import evaluate
from hkd_core.neighbours import NeighbourIndex, kneighbors, recall_at_k, smallest_k


def brute_force(X, k, metric, Q=None):
    """Full float64 distance matrix, stable sort (ties to the smaller index)."""
    X = np.asarray(X, dtype=np.float64)
    A = X if Q is None else np.asarray(Q, dtype=np.float64)
    if metric == "cosine":
        an = A / np.linalg.norm(A, axis=1, keepdims=True)
        xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        D = 1.0 - an @ xn.T
    elif metric == "poincare":
        D = poincare(A, X)
    else:
        D = sq_euclidean(A, X)
        if metric == "euclidean":
            D = np.sqrt(D)
    if Q is None:
        np.fill_diagonal(D, np.inf)
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(D, idx, 1)


def ball(n, d, r, seed):
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(n, d))
    return Y / np.linalg.norm(Y, axis=1, keepdims=True) * rng.uniform(0, r, (n, 1))


def test_by_hand_on_a_line_with_ties_to_the_smaller_index():
    X = np.array([[0.0], [1.0], [3.0], [7.0], [8.5], [2.0]])
    nb = kneighbors(X, 2, "euclidean")
    # 0: 1 (1), 5 (2); 1: 0 and 5 tie at 1 -> 0 first; 2: 5 (1), 1 (2); 3: 4 (1.5), 2 (4);
    # 4: 3 (1.5), 2 (5.5); 5: 1 and 2 tie at 1 -> 1 first
    np.testing.assert_array_equal(nb.indices, [[1, 5], [0, 5], [5, 1], [4, 2], [3, 2], [1, 2]])
    np.testing.assert_allclose(nb.distances, [[1, 2], [1, 1], [1, 2], [1.5, 4], [1.5, 5.5], [1, 1]])
    assert not nb.approximate and nb.recall == 1.0
    sq = kneighbors(X, 2, "sqeuclidean")
    np.testing.assert_allclose(sq.distances, nb.distances ** 2)


def test_duplicates_are_neighbours_but_a_row_is_never_its_own():
    X = np.repeat(np.arange(4.0), 3)[:, None]           # rows 0-2 equal, 3-5 equal, ...
    nb = kneighbors(X, 3, "euclidean")
    np.testing.assert_array_equal(nb.indices[0], [1, 2, 3])
    np.testing.assert_array_equal(nb.indices[4], [3, 5, 0])
    assert not np.any(nb.indices == np.arange(len(X))[:, None])


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_exact_equals_brute_force_on_random_data(metric):
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(600, 6)) + 5.0).astype(np.float32)   # off-centre: float32 must not bite
    nb = kneighbors(X, 9, metric)
    idx, dist = brute_force(X, 9, metric)
    np.testing.assert_array_equal(nb.indices, idx)
    np.testing.assert_allclose(nb.distances, dist, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("radius", [0.5, 0.999])
def test_poincare_exact_equals_brute_force(radius):
    X = ball(400, 4, radius, seed=1)
    nb = kneighbors(X, 6, "poincare", memory_mb=1)     # tiny blocks for the exact re-search
    idx, dist = brute_force(X, 6, "poincare")
    np.testing.assert_array_equal(nb.indices, idx)
    np.testing.assert_allclose(nb.distances, dist, rtol=1e-9, atol=1e-9)
    # and by hand: near the rim, Euclidean-close points are Poincare-far
    P = np.array([[0.0, 0.0], [0.3, 0.0], [0.95, 0.0], [0.95, 0.04]])
    hand = kneighbors(P, 1, "poincare")
    assert hand.indices[2, 0] == 3
    assert hand.distances[0, 0] == pytest.approx(math.acosh(1 + 2 * 0.09 / (1 - 0.09)))


def test_queries_other_than_the_indexed_rows_keep_every_row():
    rng = np.random.default_rng(0)
    X, Q = rng.normal(size=(300, 3)), rng.normal(size=(20, 3))
    dist, idx = NeighbourIndex().fit(X).kneighbors(Q, 5)
    ref_idx, ref_dist = brute_force(X, 5, "euclidean", Q)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-9)
    # a query equal to an indexed row finds that row at distance 0
    assert NeighbourIndex().fit(X).kneighbors(X[7:8], 1, return_distance=False)[0, 0] == 7


@pytest.mark.parametrize("metric", ["euclidean", "poincare"])
def test_approximate_search_reports_a_measured_recall(metric):
    X = ball(3000, 8, 0.9, seed=2) if metric == "poincare" else \
        np.random.default_rng(2).normal(size=(3000, 8)).astype(np.float32)
    nb = kneighbors(X, 10, metric, approximate_above=1000, recall_sample=300, target_recall=0.9)
    assert nb.approximate and nb.recall_sample == 300 and "IVF" in nb.method
    assert 0.0 <= nb.recall <= 1.0
    exact_idx, exact_dist = brute_force(X, 10, metric)
    true_recall = recall_at_k(nb.distances, exact_dist)
    # the sampled estimate is close to the recall over all rows, and the target was met on it
    assert nb.recall >= 0.9 and abs(true_recall - nb.recall) < 0.05
    assert not np.any(nb.indices == np.arange(len(X))[:, None])
    again = kneighbors(X, 10, metric, approximate_above=1000, recall_sample=300, target_recall=0.9)
    np.testing.assert_array_equal(again.indices, nb.indices)          # deterministic


def test_evaluate_carries_the_neighbour_recall():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 4))
    codes = rng.integers(0, 4, size=(1500, 3))
    exact = evaluate(codes, X, ks=(5,))
    assert exact["neighbour_recall"] == 1.0 and not exact["neighbour_search"]["approximate"]
    approx = evaluate(codes, X, ks=(5,), approximate_above=1000)
    assert approx["neighbour_search"]["approximate"]
    assert 0.0 <= approx["neighbour_recall"] <= 1.0
    assert approx["share"]["5"] == pytest.approx(exact["share"]["5"], abs=0.05)


def test_smallest_k_breaks_ties_by_index():
    key = np.array([[3.0, 1.0, 1.0, 1.0, 0.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(smallest_k(key, 2), [[4, 1], [0, 1]])
    np.testing.assert_array_equal(smallest_k(key, 3), [[4, 1, 2], [0, 1, 2]])


def test_bad_parameters_are_named():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="k must be"):
        kneighbors(X, 5)
    with pytest.raises(ValueError, match="metric"):
        kneighbors(X, 2, "manhattan")
    with pytest.raises(ValueError, match="unit ball"):
        kneighbors(X + 2, 2, "poincare")
    with pytest.raises(ValueError, match="target_recall"):
        kneighbors(X, 2, target_recall=1.5)


def test_refit_forgets_the_earlier_rows():
    rng = np.random.default_rng(5)
    index = NeighbourIndex()
    index.fit(rng.normal(size=(200, 3)) + 100.0)
    X = rng.normal(size=(250, 3))
    nb = index.fit(X).search(None, 4)
    np.testing.assert_array_equal(nb.indices, brute_force(X, 4, "euclidean")[0])
