"""mAHP (mean average hierarchical precision) and the hierarchy-based class similarity."""
import numpy as np
import pytest

from hkd_core.hierarchical_retrieval import (
    class_similarity_from_hierarchy,
    hierarchical_precision_curve,
    mean_average_hierarchical_precision,
)

# Two superclasses: a, b under A; c under B.  s(a,a)=1, s(a,b)=1-1/2=0.5, s(a,c)=s(b,c)=0.
TWO_LEVEL = {"a": "A", "b": "A", "c": "B"}
LABELS = ["a", "a", "b", "c"]
CODES = np.array([[0, 0], [1, 1], [0, 1], [0, 0]])
FEATURES = np.array([[0.0], [1.0], [2.0], [3.5]])

# Hand computation, k = 3 (= n - 1), every query ranks the 3 other items.
# query 0 (a, code 00): Hamming to 1,2,3 = 2,1,0 -> order 3(c),2(b),1(a); sims 0,.5,1
#     cumulative 0,.5,1.5; ideal (sims to others sorted 1,.5,0) cumulative 1,1.5,1.5
#     HP = 0, 1/3, 1                    mean 4/9   trapezoid (4/3 - (0+1)/2)/3 = 5/18
# query 1 (a, code 11): Hamming to 0,2,3 = 2,1,2 -> 2 first; 0 and 3 tie at 2 and the feature
#     distance (1 vs 2.5) puts 0 first -> order 2(b),0(a),3(c); sims .5,1,0 cumulative .5,1.5,1.5
#     ideal 1,1.5,1.5 -> HP = .5, 1, 1     mean 5/6   trapezoid (2.5 - .75)/3 = 7/12
# query 2 (b, code 01): Hamming 1 to everyone; feature distances 2, 1, 1.5 -> order 1,3,0;
#     sims .5,0,.5 cumulative .5,.5,1; ideal (.5,.5,0) cumulative .5,1,1 -> HP = 1,.5,1
#     mean 5/6   trapezoid (2.5 - 1)/3 = 1/2
# query 3 (c): nothing else is under B, ideal sum 0 -> HP undefined, query skipped.
# mAHP@3 (mean)      = (4/9 + 5/6 + 5/6)/3 = 19/27
# mAHP@3 (trapezoid) = (5/18 + 7/12 + 1/2)/3 = 49/108
# k = 1: HP@1 = 0, .5, 1 -> mAHP@1 = 1/2


def test_class_similarity_two_levels():
    nodes, sim = class_similarity_from_hierarchy(TWO_LEVEL)
    assert nodes == ["A", "B", "a", "b", "c"]
    i = {n: j for j, n in enumerate(nodes)}
    assert sim[i["a"], i["a"]] == 1.0
    assert sim[i["a"], i["b"]] == 0.5
    assert sim[i["a"], i["c"]] == 0.0
    assert np.allclose(sim, sim.T)


def test_class_similarity_uses_single_top_node_as_root_and_longest_path_heights():
    # R > {A > {a, b}, c}: heights a=b=c=0, A=1, R=2 -> s(a,b)=1/2, s(a,c)=0, s(A,c)=0.
    nodes, sim = class_similarity_from_hierarchy({"a": "A", "b": "A", "A": "R", "c": "R"})
    i = {n: j for j, n in enumerate(nodes)}
    assert "R" in nodes
    assert sim[i["a"], i["b"]] == 0.5
    assert sim[i["a"], i["c"]] == 0.0
    # A deeper branch raises the root's height: R > {A > B > {a, b}, c}; heights B=1, A=2, R=3.
    nodes, sim = class_similarity_from_hierarchy({"a": "B", "b": "B", "B": "A", "A": "R", "c": "R"})
    i = {n: j for j, n in enumerate(nodes)}
    assert sim[i["a"], i["b"]] == pytest.approx(1 - 1 / 3)
    assert sim[i["a"], i["c"]] == 0.0


def test_class_similarity_rejects_cycles_and_empty():
    with pytest.raises(ValueError, match="cycle"):
        class_similarity_from_hierarchy({"a": "b", "b": "a"})
    with pytest.raises(ValueError, match="hierarchy"):
        class_similarity_from_hierarchy({})


def test_hand_computed_curve_and_mahp():
    hp, queries = hierarchical_precision_curve(CODES, FEATURES, LABELS, TWO_LEVEL, k=3)
    assert queries.tolist() == [0, 1, 2]
    assert np.allclose(hp, [[0, 1 / 3, 1], [0.5, 1, 1], [1, 0.5, 1]])
    assert mean_average_hierarchical_precision(CODES, FEATURES, LABELS, TWO_LEVEL, k=3) == pytest.approx(19 / 27)
    assert mean_average_hierarchical_precision(CODES, FEATURES, LABELS, TWO_LEVEL, k=3,
                                               integration="trapezoid") == pytest.approx(49 / 108)
    assert mean_average_hierarchical_precision(CODES, FEATURES, LABELS, TWO_LEVEL, k=1) == pytest.approx(0.5)


def test_k_beyond_n_minus_one_is_clipped():
    at_3 = mean_average_hierarchical_precision(CODES, FEATURES, LABELS, TWO_LEVEL, k=3)
    assert mean_average_hierarchical_precision(CODES, FEATURES, LABELS, TWO_LEVEL, k=250) == at_3


def test_feature_distance_breaks_hamming_ties():
    # Move item 3 next to item 1: query 1's tie (items 0 and 3 at Hamming 2) now goes to 3 (c),
    # so HP becomes .5, .5/1.5, 1.
    moved = FEATURES.copy()
    moved[3] = 1.2
    hp, _ = hierarchical_precision_curve(CODES, moved, LABELS, TWO_LEVEL, k=3)
    assert np.allclose(hp[1], [0.5, 1 / 3, 1])


def _cifar_like(per_class=3):
    hierarchy = {f"c{s}_{j}": f"s{s}" for s in range(20) for j in range(5)}
    fine = np.repeat(np.arange(100), per_class)
    labels = [f"c{f // 5}_{f % 5}" for f in fine]
    return hierarchy, fine, labels


def test_perfect_codes_score_one():
    hierarchy, fine, labels = _cifar_like()
    # digit 0 = superclass, digit 1 = class: Hamming 0 within a class, 1 within a superclass,
    # 2 across superclasses -- exactly the order of the similarities.
    codes = np.stack([fine // 5, fine], 1)
    feats = np.random.default_rng(0).normal(size=(len(fine), 4))
    assert mean_average_hierarchical_precision(codes, feats, labels, hierarchy, k=250) == pytest.approx(1.0)
    # trapezoid rule (Barz & Denzler's evaluation code) tops out at (k-1)/k
    assert mean_average_hierarchical_precision(codes, feats, labels, hierarchy, k=250,
                                               integration="trapezoid") == pytest.approx(249 / 250)


def test_random_codes_score_well_below_perfect_and_superclass_codes_in_between():
    hierarchy, fine, labels = _cifar_like()
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(len(fine), 4))
    random_codes = rng.integers(0, 16, size=(len(fine), 4))
    coarse_only = np.stack([fine // 5, np.zeros_like(fine)], 1)
    r = mean_average_hierarchical_precision(random_codes, feats, labels, hierarchy, k=50)
    c = mean_average_hierarchical_precision(coarse_only, feats, labels, hierarchy, k=50)
    assert r < 0.3
    assert r < c < 1.0


def test_chunking_does_not_change_the_result():
    hierarchy, fine, labels = _cifar_like(2)
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 3, size=(len(fine), 3))
    feats = rng.normal(size=(len(fine), 3))
    full, q_full = hierarchical_precision_curve(codes, feats, labels, hierarchy, k=20, chunk_size=1000)
    small, q_small = hierarchical_precision_curve(codes, feats, labels, hierarchy, k=20, chunk_size=7)
    assert np.array_equal(q_full, q_small)
    assert np.allclose(full, small)


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 0}, "k must be"),
    ({"labels": ["a", "a", "b", "zebra"]}, "not in the hierarchy"),
    ({"features": np.zeros((3, 1))}, "features"),
    ({"codes": np.zeros((4, 2)) + 0.5}, "codes"),
    ({"integration": "simpson"}, "integration"),
])
def test_bad_input_is_refused_with_a_clear_message(kwargs, match):
    args = dict(codes=CODES, features=FEATURES, labels=LABELS, hierarchy=TWO_LEVEL, k=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mean_average_hierarchical_precision(**args)
