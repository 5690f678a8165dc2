"""The paper's metrics on hand-computed cases, and metrics.json against an independent
brute-force implementation of the same definitions."""
import json
import math

import numpy as np
import pytest

from hkd_core.neighbours import kneighbors
from hkd_core.metrics import (best_share_at_reduction, code_statistics, evaluate,
                              prefix_share, reconstruction_mse, search_reduction,
                              shared_prefix_length)

# 5 points on a line; codes chosen by hand
X = np.array([[0.0], [1.0], [3.0], [7.0], [8.5]])


def knn_indices(X, k, metric):
    return kneighbors(X, k, metric).indices
CODES = np.array([[0, 0], [0, 1], [0, 1], [1, 0], [1, 0]])


def test_knn_by_hand():
    knn = knn_indices(X, 2, "euclidean")
    # 0: 1 (d1), 2 (d3); 1: 0 (d1), 2 (d2); 2: 1 (d2), 0 (d3); 3: 4 (1.5), 2 (4); 4: 3, 2 (5.5)
    np.testing.assert_array_equal(knn, [[1, 2], [0, 2], [1, 0], [4, 2], [3, 2]])


def test_prefix_share_by_hand():
    knn = knn_indices(X, 1, "euclidean")          # 1, 0, 1, 4, 3
    # N=1: pairs (0,1) same, (1,0) same, (2,1) same, (3,4) same, (4,3) same -> 5/5
    assert prefix_share(CODES, knn, 1) == 1.0
    # N=2: (0,1) differ, (1,0) differ, (2,1) same, (3,4) same, (4,3) same -> 3/5
    assert prefix_share(CODES, knn, 2) == pytest.approx(3 / 5)
    knn2 = knn_indices(X, 2, "euclidean")
    # N=1 with k=2: 0:{1 y,2 y} 1:{0 y,2 y} 2:{1 y,0 y} 3:{4 y,2 n} 4:{3 y,2 n} -> 8/10
    assert prefix_share(CODES, knn2, 1) == pytest.approx(0.8)


def test_search_reduction_by_hand():
    # N=1: groups {0,1,2} {3,4}: sizes 3,3,3,2,2 -> mean 13/5 -> 1 - 13/25
    assert search_reduction(CODES, 1) == pytest.approx(1 - 13 / 25)
    # N=2: groups {0} {1,2} {3,4}: sizes 1,2,2,2,2 -> 9/5 -> 1 - 9/25
    assert search_reduction(CODES, 2) == pytest.approx(1 - 9 / 25)
    assert search_reduction(CODES, 0) == 0.0


def test_shared_prefix_reconstruction_and_statistics():
    np.testing.assert_array_equal(shared_prefix_length(CODES, [0, 1]), [1, 2, 2, 0, 0])
    assert reconstruction_mse([[0, 0], [1, 1]], [[0, 1], [1, 3]]) == pytest.approx((1 + 4) / 2)
    stats = code_statistics(CODES, K=2)
    assert [s["distinct_prefixes"] for s in stats] == [2, 3]
    p = np.array([3, 2]) / 5
    assert stats[0]["prefix_entropy_bits"] == pytest.approx(-(p * np.log2(p)).sum())


def test_poincare_neighbours_differ_from_euclidean():
    # near the boundary Euclidean-close points can be Poincare-far
    P = np.array([[0.0, 0.0], [0.3, 0.0], [0.95, 0.0], [0.95, 0.04]])
    assert knn_indices(P, 1, "poincare")[2, 0] == 3
    d01 = math.acosh(1 + 2 * 0.09 / (1 * (1 - 0.09)))
    from hkd_core.distances import poincare
    assert poincare(P[:1], P[1:2])[0, 0] == pytest.approx(d01)


def test_best_share_at_reduction():
    res = {"share": {"5": [0.99, 0.9, 0.8]}, "reduction": [0.5, 0.85, 0.95]}
    assert best_share_at_reduction(res, 0.8) == 0.9
    assert best_share_at_reduction(res, 0.9) == 0.8
    assert best_share_at_reduction(res, 0.99) is None


def independent_share(codes, X, k, N):
    """Straight from the definition, with Python loops and no shared helpers."""
    n = len(X)
    total = 0
    for i in range(n):
        d = [(float(np.sqrt(((X[i] - X[j]) ** 2).sum())), j) for j in range(n) if j != i]
        d.sort()
        for _, j in d[:k]:
            total += tuple(codes[i][:N]) == tuple(codes[j][:N])
    return total / (n * k)


def independent_reduction(codes, N):
    n = len(codes)
    same = [sum(tuple(codes[j][:N]) == tuple(codes[i][:N]) for j in range(n)) for i in range(n)]
    return 1 - sum(same) / n / n


def test_metrics_json_agrees_with_independent_implementation(tmp_path):
    from hkd_core.cli import main
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--model", "hkd", "--epochs", "3",
                 "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    X = np.load(out / "embeddings.npy")
    codes = np.load(out / "codes.npy")
    assert m["metric"] == "euclidean"
    for k in (5, 10, 15, 20):
        for N in (1, 2, 4, 8):
            assert abs(m["share"][str(k)][N - 1] - independent_share(codes, X, k, N)) < 1e-6
    for N in range(1, 9):
        assert abs(m["reduction"][N - 1] - independent_reduction(codes, N)) < 1e-6


def test_evaluate_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="codes"):
        evaluate(CODES[:3], X, "euclidean")


def test_frontier_auc_by_hand():
    from hkd_core.metrics import frontier_auc, reduction_frontier

    m = {"share": {"5": [1.0, 0.8, 0.5]}, "reduction": [0.5, 0.8, 0.95]}
    # r in [0, .5]: 1.0; (.5, .8]: 0.8; (.8, .95]: 0.5; above .95: nothing -> 0
    assert frontier_auc(m) == pytest.approx(0.5 * 1.0 + 0.3 * 0.8 + 0.15 * 0.5)
    assert reduction_frontier(m, (0.8, 0.9, 0.99)) == [0.8, 0.5, 0.0]
    # a deeper depth that keeps more neighbours dominates the shallower one below its reduction
    m2 = {"share": {"5": [0.6, 0.9]}, "reduction": [0.5, 0.7]}
    assert frontier_auc(m2) == pytest.approx(0.7 * 0.9)


def test_hierarchy_agreement_on_hand_made_codes():
    from hkd_core.metrics import full_code_collisions, hierarchy_agreement

    # 16 leaves of a binary tree of depth 4: the path bits are the tree; LCA depth = common prefix
    paths = np.array([[(c >> (3 - b)) & 1 for b in range(4)] for c in range(16)])
    paths = np.repeat(paths, 4, axis=0)

    def lca_depth(i, j):
        return shared_prefix_length_rows(paths[i], paths[j])

    assert hierarchy_agreement(paths, lca_depth, n_pairs=4000) == pytest.approx(1.0)
    reversed_codes = paths[:, ::-1]        # the fine split first: little agreement
    assert hierarchy_agreement(reversed_codes, lca_depth, n_pairs=4000) < 0.3
    assert hierarchy_agreement(np.zeros_like(paths), lca_depth) is None   # constant codes
    assert full_code_collisions(paths) == 64 - 16
    stats = code_statistics(paths, K=4)
    assert stats[0]["unused_digit_values"] == 2


def shared_prefix_length_rows(a, b):
    differs = a != b
    return np.where(differs.any(1), differs.argmax(1), a.shape[1])
