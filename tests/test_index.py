"""The prefix index over codes (hkd_core/index.py): exact with full probing, recall rising with the
probes, a cap on the rows scanned, save/load, and the code tree it is built on."""
import numpy as np
import pytest

from hkd_core.distances import pairwise
from hkd_core.index import CodeTree, PrefixIndex


def clustered(n=1500, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = 6 * rng.standard_normal((12, d))
    X = centres[rng.integers(0, 12, n)] + rng.standard_normal((n, d))
    Q = centres[rng.integers(0, 12, 120)] + rng.standard_normal((120, d))
    return X.astype(np.float32), Q.astype(np.float32)


def rq_codes(X, K=4, D=5):
    from hkd_core.models import make_model

    return make_model("rq", K=K, D=D, random_state=0).fit(X).transform(X)


def brute(Q, X, k, metric="euclidean"):
    dist = pairwise(Q.astype(np.float64), X.astype(np.float64), metric)
    idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, idx, 1), idx


def recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)])


@pytest.mark.parametrize("routing", ["flat", "tree"])
def test_full_probing_returns_exactly_the_brute_force_neighbours(routing):
    X, Q = clustered()
    index = PrefixIndex(leaf_size=16, routing=routing, beam=2).fit(X, rq_codes(X))
    dist, idx = index.search(Q, k=10, n_probe=index.n_leaves_)
    true_dist, true_idx = brute(Q, X, 10)
    assert np.array_equal(idx, true_idx)
    assert np.allclose(dist, true_dist, atol=1e-4)
    assert index.last_fraction_scanned_ == pytest.approx(1.0)


def test_poincare_full_probing_is_exact():
    X, Q = clustered(d=4)
    X = X / (1 + np.linalg.norm(X, axis=1, keepdims=True))
    Q = Q / (1 + np.linalg.norm(Q, axis=1, keepdims=True))
    index = PrefixIndex(leaf_size=16, metric="poincare").fit(X, rq_codes(X))
    dist, idx = index.search(Q, k=5, n_probe=index.n_leaves_)
    true_dist, true_idx = brute(Q, X, 5, "poincare")
    assert np.array_equal(idx, true_idx)
    assert np.allclose(dist, true_dist, atol=1e-6)


@pytest.mark.parametrize("routing", ["flat", "tree"])
def test_recall_and_scanned_fraction_rise_with_n_probe(routing):
    X, Q = clustered()
    index = PrefixIndex(leaf_size=16, routing=routing).fit(X, rq_codes(X))
    _, truth = brute(Q, X, 10)
    recalls, scanned = [], []
    for n_probe in (1, 2, 4, 8, 16, 32):
        _, idx = index.search(Q, 10, n_probe=n_probe)
        recalls.append(recall(idx, truth))
        scanned.append(index.last_fraction_scanned_)
    assert all(b >= a for a, b in zip(recalls, recalls[1:]))
    assert all(b > a for a, b in zip(scanned, scanned[1:]))
    assert recalls[0] < 0.9 < recalls[-1]
    assert scanned[-1] < 0.5                    # it found them without scanning everything


def test_max_candidates_caps_the_rows_scanned():
    X, Q = clustered()
    index = PrefixIndex(leaf_size=16, n_probe=64).fit(X, rq_codes(X))
    index.search(Q, 10, max_candidates=50)
    assert 0 < index.last_fraction_scanned_ * len(X) <= 50


def test_save_load_round_trip_gives_identical_results(tmp_path):
    X, Q = clustered()
    index = PrefixIndex(leaf_size=12, n_probe=5, routing="tree", beam=3).fit(X, rq_codes(X))
    names = [f"row{i}" for i in range(len(X))]
    path = index.save(tmp_path / "index", names=names)
    assert path.endswith(".npz")
    again = PrefixIndex.load(path)
    assert again.get_params() == index.get_params() and again.names_ == names
    for a, b in zip(index.search(Q, 7), again.search(Q, 7)):
        assert np.array_equal(a, b)
    with np.load(path, allow_pickle=False) as npz:    # nothing in the file needs pickle
        assert set(npz.files) == {"X", "codes", "header", "names"}


def test_leaves_partition_the_rows_by_code_prefix():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 3, (500, 4))
    codes[:40] = 0                                    # 40 identical codes: a leaf larger than 10
    tree = CodeTree(codes)
    b = tree.branches(leaf_size=10)
    leaves = b["leaf_nodes"]
    assert np.array_equal(b["start"][leaves][1:], b["stop"][leaves][:-1])
    assert b["start"][leaves][0] == 0 and b["stop"][leaves][-1] == 500
    sizes = b["stop"][leaves] - b["start"][leaves]
    deep = b["level"][leaves] == 4
    assert (sizes[~deep] <= 10).all() and sizes.max() >= 40
    for node in leaves:                               # a leaf = the rows of one prefix
        rows = tree.order[b["start"][node]:b["stop"][node]]
        level = b["level"][node]
        assert np.array_equal(np.sort(rows), tree.members(codes[rows[0], :level]))


def test_k_larger_than_the_data_and_bad_arguments():
    X, Q = clustered(n=30)
    index = PrefixIndex(leaf_size=4).fit(X, rq_codes(X, D=3))
    dist, idx = index.search(Q[:2], k=40, n_probe=100)
    assert (idx[:, 30:] == -1).all() and np.isinf(dist[:, 30:]).all()
    assert sorted(idx[0, :30]) == list(range(30))
    with pytest.raises(ValueError, match="n_probe"):
        index.search(Q, 3, n_probe=0)
    with pytest.raises(ValueError, match="queries"):
        index.search(Q[:, :2], 3)
    with pytest.raises(ValueError, match="routing"):
        PrefixIndex(routing="dfs").fit(X, rq_codes(X, D=3))
    with pytest.raises(ValueError, match="codes has"):
        PrefixIndex().fit(X, rq_codes(X, D=3)[:5])
    with pytest.raises(RuntimeError, match="not fitted"):
        PrefixIndex().search(Q, 3)


def test_bench_index_quick_runs(capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_index.py"
    spec = importlib.util.spec_from_file_location("bench_index", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--no-cache"]) == 0
    out = capsys.readouterr().out
    for label in ("ivf", "hkm K=16", "rq K=16"):
        assert f"\n{label} " in out
    assert "(a) equal fraction scanned" in out and "(b) QPS at recall >= 0.95" in out
