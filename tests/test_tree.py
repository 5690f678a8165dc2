import numpy as np
import pytest

from hkd_core.tree import (CodeTree, format_code, format_codes, group_table, node_members, parse_prefix,
                           prefix_groups, sunburst_frame)


def random_codes(n=500, D=6, K=4, seed=0):
    return np.random.default_rng(seed).integers(0, K, size=(n, D))


def test_prefix_groups_match_prefix_equality_and_rank_by_size():
    codes = random_codes()
    for depth in range(0, 7):
        g = prefix_groups(codes, depth)
        # same group <=> same prefix
        i, j = np.random.default_rng(1).integers(0, len(codes), size=(2, 2000))
        same_prefix = np.all(codes[i, :depth] == codes[j, :depth], axis=1)
        assert np.array_equal(g[i] == g[j], same_prefix)
        sizes = np.bincount(g)
        assert np.all(np.diff(sizes) <= 0), "group 0 must be the largest, sizes non-increasing"
    assert np.all(prefix_groups(codes, 0) == 0)


def test_prefix_groups_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        prefix_groups(random_codes(D=3), 4)
    with pytest.raises(ValueError, match="2-d"):
        prefix_groups(np.zeros(5, dtype=int), 1)


def test_group_table_sizes_and_prefixes():
    codes = np.array([[1, 2], [1, 2], [1, 3], [0, 0]])
    t = group_table(codes, 1, K=4)
    assert t["prefix"].tolist() == ["1", "0"] and t["size"].tolist() == [3, 1]
    t2 = group_table(codes, 2, K=4)
    assert t2["prefix"].iloc[0] == "12" and t2["size"].sum() == 4


def test_prefix_index_members_equals_brute_force():
    codes = random_codes(n=800, D=5, K=3, seed=3)
    index = CodeTree(codes)
    for prefix in ([], [0], [2, 1], [1, 1, 0], [2, 2, 2, 2, 2]):
        brute = np.flatnonzero(np.all(codes[:, :len(prefix)] == prefix, axis=1))
        assert np.array_equal(index.members(prefix), brute)
        assert index.count(prefix) == len(brute)
    assert index.members([5]).size == 0
    cand = index.candidates(10, 2)
    assert 10 in cand and np.all(codes[cand, :2] == codes[10, :2])
    with pytest.raises(ValueError, match="digits"):
        index.members([0] * 6)


def test_sunburst_frame_values_sum_and_aggregates_small_branches():
    rng = np.random.default_rng(0)
    # A skewed tree: most points under digit 0, a few scattered elsewhere.
    codes = np.where(rng.random((1000, 4)) < 0.8, 0, rng.integers(1, 8, (1000, 4)))
    names = [f"e{i}" for i in range(1000)]
    frame = sunburst_frame(codes, names, max_depth=3, min_branch_size=30, K=8)
    assert frame.loc[frame["ids"] == "root", "values"].item() == 1000
    for node, value in zip(frame["ids"], frame["values"]):
        kids = frame.loc[frame["parents"] == node, "values"]
        if len(kids):
            assert kids.sum() == value, f"children of {node} must sum to it"
    non_root = frame[frame["ids"] != "root"]
    assert (non_root[~non_root["ids"].str.endswith("other")]["values"] >= 30).all()
    assert non_root["ids"].str.endswith("other").any()
    assert frame["depth"].max() == 3
    # members of a node (and of an aggregate) are exactly the rows it counts
    index = CodeTree(codes)
    for node, value in zip(frame["ids"], frame["values"]):
        assert len(node_members(index, frame, node)) == value


def test_sunburst_frame_validates():
    with pytest.raises(ValueError, match="min_branch_size"):
        sunburst_frame(random_codes(), min_branch_size=0)
    with pytest.raises(ValueError, match="names"):
        sunburst_frame(random_codes(n=5), names=["a"])


def test_format_and_parse():
    assert format_code([1, 10, 15], 16) == "1af"
    assert format_code([1, 20], 32) == "1.20"
    assert format_codes(np.array([[0, 1], [2, 3]]), 4) == ["01", "23"]
    assert parse_prefix("3.7.1") == [3, 7, 1] and parse_prefix("root") == []
    with pytest.raises(ValueError, match="aggregate"):
        parse_prefix("3.other")
