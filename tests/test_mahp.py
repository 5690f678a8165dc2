"""mAHP (mean average hierarchical precision) and the hierarchy-based class similarity."""
import itertools

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

# Hand computation, k = 3 (= n - 1), every query ranks the 3 other items; items at equal Hamming
# distance are tied and count with the mean similarity of their block at each of its ranks.
# query 0 (a, code 00): Hamming to 1,2,3 = 2,1,0 -> no tie: order 3(c),2(b),1(a); sims 0,.5,1
#     cumulative 0,.5,1.5; ideal (sims to others sorted 1,.5,0) cumulative 1,1.5,1.5
#     HP = 0, 1/3, 1                  mean 4/9    trapezoid (4/3 - (0+1)/2)/3 = 5/18
# query 1 (a, code 11): Hamming to 0,2,3 = 2,1,2 -> 2(b) first, then 0(a) and 3(c) TIE at 2:
#     block mean (1+0)/2 = .5 -> expected cumulative .5, 1, 1.5 (orders "0,3": .5,1.5,1.5 and
#     "3,0": .5,.5,1.5 averaged); ideal 1,1.5,1.5 -> HP = .5, 2/3, 1
#     mean 13/18   trapezoid (13/6 - 3/4)/3 = 17/36
# query 2 (b, code 01): Hamming 1 to everyone -> one tie block, sims .5,.5,0, mean 1/3:
#     expected cumulative 1/3, 2/3, 1; ideal .5,1,1 -> HP = 2/3, 2/3, 1
#     mean 7/9   trapezoid (7/3 - 5/6)/3 = 1/2
# query 3 (c): nothing else is under B, ideal sum 0 -> HP undefined, query skipped.
# mAHP@3 (mean)      = (4/9 + 13/18 + 7/9)/3 = 35/54
# mAHP@3 (trapezoid) = (5/18 + 17/36 + 1/2)/3 = 5/12
# k = 1: HP@1 = 0, .5, 2/3 -> mAHP@1 (mean) = 7/18


def reference_ahp(order_sims, best_cum, k, integration):
    """AHP@k of ONE ordering, straight from the definition (no ties involved)."""
    cum = np.cumsum(order_sims[:k])
    hp = cum / best_cum[:k]
    if integration == "mean":
        return hp.mean()
    trapezoid = getattr(np, "trapezoid", None) or np.trapz     # numpy >= 2 renamed it
    return trapezoid(hp, dx=1.0 / k)


def brute_force_expected_mahp(codes, labels, hierarchy, k, integration):
    """Average AHP over EVERY ordering of the other items that sorts them by Hamming distance
    (= every way of ordering the tie blocks), for tiny n."""
    nodes, sim = class_similarity_from_hierarchy(hierarchy)
    pos = {name: i for i, name in enumerate(nodes)}
    n = len(codes)
    k = min(k, n - 1)
    scores = []
    for q in range(n):
        others = [j for j in range(n) if j != q]
        s = np.array([sim[pos[labels[q]], pos[labels[j]]] for j in others])
        best = np.cumsum(np.sort(s)[::-1])
        if best[0] == 0:
            continue
        ham = np.array([(codes[q] != codes[j]).sum() for j in others])
        values = [reference_ahp(s[list(p)], best, k, integration)
                  for p in itertools.permutations(range(len(others)))
                  if np.all(np.diff(ham[list(p)]) >= 0)]
        scores.append(np.mean(values))
    return float(np.mean(scores))


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


def test_hand_computed_curve_and_mahp_with_ties():
    hp, queries = hierarchical_precision_curve(CODES, LABELS, TWO_LEVEL, k=3)
    assert queries.tolist() == [0, 1, 2]
    assert np.allclose(hp, [[0, 1 / 3, 1], [0.5, 2 / 3, 1], [2 / 3, 2 / 3, 1]])
    assert mean_average_hierarchical_precision(CODES, LABELS, TWO_LEVEL, k=3,
                                               integration="mean") == pytest.approx(35 / 54)
    assert mean_average_hierarchical_precision(CODES, LABELS, TWO_LEVEL, k=3,
                                               integration="trapezoid") == pytest.approx(5 / 12)
    # trapezoid is the default
    assert mean_average_hierarchical_precision(CODES, LABELS, TWO_LEVEL, k=3) == pytest.approx(5 / 12)
    assert mean_average_hierarchical_precision(CODES, LABELS, TWO_LEVEL, k=1,
                                               integration="mean") == pytest.approx(7 / 18)


def test_k_beyond_n_minus_one_is_clipped():
    at_3 = mean_average_hierarchical_precision(CODES, LABELS, TWO_LEVEL, k=3)
    assert mean_average_hierarchical_precision(CODES, LABELS, TWO_LEVEL, k=250) == at_3


def test_result_does_not_depend_on_item_order():
    # No hidden tie-break: permuting the items (codes and labels together) changes nothing.
    perm = [2, 0, 3, 1]
    for integration in ("mean", "trapezoid"):
        base = mean_average_hierarchical_precision(CODES, LABELS, TWO_LEVEL, k=3, integration=integration)
        moved = mean_average_hierarchical_precision(CODES[perm], [LABELS[i] for i in perm], TWO_LEVEL,
                                                    k=3, integration=integration)
        assert moved == pytest.approx(base)


@pytest.mark.parametrize("integration", ["mean", "trapezoid"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expectation_equals_brute_force_average_over_tie_orderings(seed, integration):
    rng = np.random.default_rng(seed)
    hierarchy = {"a": "A", "b": "A", "c": "B", "d": "B", "A": "R", "B": "R", "e": "R"}
    labels = list(rng.choice(list("abcde"), size=7))
    codes = rng.integers(0, 2, size=(7, 2))       # few distinct codes: many ties
    for k in (2, 4, 6):
        expected = brute_force_expected_mahp(codes, labels, hierarchy, k, integration)
        got = mean_average_hierarchical_precision(codes, labels, hierarchy, k=k, integration=integration)
        assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("integration", ["mean", "trapezoid"])
def test_constant_codes_score_chance_level(integration):
    # Constant codes tie every item: the score must be the expected AHP of a uniformly random
    # ranking, here averaged over EVERY permutation of the 6 other items (720 per query).
    hierarchy = {"a": "A", "b": "A", "c": "B", "d": "B"}
    labels = ["a", "a", "b", "c", "c", "d", "a"]
    nodes, sim = class_similarity_from_hierarchy(hierarchy)
    pos = {name: i for i, name in enumerate(nodes)}
    k = 4
    chance = []
    for q in range(len(labels)):
        s = np.array([sim[pos[labels[q]], pos[labels[j]]] for j in range(len(labels)) if j != q])
        best = np.cumsum(np.sort(s)[::-1])
        chance.append(np.mean([reference_ahp(s[list(p)], best, k, integration)
                               for p in itertools.permutations(range(len(s)))]))
    constant = np.zeros((len(labels), 3), dtype=np.int64)
    got = mean_average_hierarchical_precision(constant, labels, hierarchy, k=k, integration=integration)
    assert got == pytest.approx(float(np.mean(chance)), abs=1e-12)


def _cifar_like(per_class=3):
    hierarchy = {f"c{s}_{j}": f"s{s}" for s in range(20) for j in range(5)}
    fine = np.repeat(np.arange(100), per_class)
    labels = [f"c{f // 5}_{f % 5}" for f in fine]
    return hierarchy, fine, labels


def test_perfect_codes_score_the_ideal():
    hierarchy, fine, labels = _cifar_like()
    # digit 0 = superclass, digit 1 = class: Hamming 0 within a class, 1 within a superclass,
    # 2 across superclasses -- exactly the order of the similarities.
    codes = np.stack([fine // 5, fine], 1)
    # trapezoid rule (the default, Barz & Denzler's evaluation code) tops out at (k-1)/k
    assert mean_average_hierarchical_precision(codes, labels, hierarchy, k=250) == pytest.approx(249 / 250)
    assert mean_average_hierarchical_precision(codes, labels, hierarchy, k=250,
                                               integration="mean") == pytest.approx(1.0)


def test_constant_codes_no_longer_score_one_on_cifar_like_data():
    hierarchy, fine, labels = _cifar_like()
    constant = np.zeros((len(fine), 4), dtype=np.int64)
    score = mean_average_hierarchical_precision(constant, labels, hierarchy, k=50, integration="mean")
    # chance: every rank holds the mean similarity to the others, (2*1 + 12*.5)/299 per query
    mu = (2 * 1.0 + 12 * 0.5) / 299
    ideal = np.cumsum([1.0, 1.0] + [0.5] * 12 + [0.0] * 36)
    assert score == pytest.approx(np.mean(mu * np.arange(1, 51) / ideal))
    assert score < 0.1


def test_random_codes_score_well_below_perfect_and_superclass_codes_in_between():
    hierarchy, fine, labels = _cifar_like()
    rng = np.random.default_rng(1)
    random_codes = rng.integers(0, 16, size=(len(fine), 4))
    coarse_only = np.stack([fine // 5, np.zeros_like(fine)], 1)
    r = mean_average_hierarchical_precision(random_codes, labels, hierarchy, k=50)
    c = mean_average_hierarchical_precision(coarse_only, labels, hierarchy, k=50)
    assert r < 0.3
    assert r < c < 1.0


def test_chunking_does_not_change_the_result():
    hierarchy, fine, labels = _cifar_like(2)
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 3, size=(len(fine), 3))
    full, q_full = hierarchical_precision_curve(codes, labels, hierarchy, k=20, chunk_size=1000)
    small, q_small = hierarchical_precision_curve(codes, labels, hierarchy, k=20, chunk_size=7)
    assert np.array_equal(q_full, q_small)
    assert np.allclose(full, small)


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 0}, "k must be"),
    ({"labels": ["a", "a", "b", "zebra"]}, "not in the hierarchy"),
    ({"labels": ["a", "a", "b"]}, "labels must have one entry per code"),
    ({"codes": np.zeros((4, 2)) + 0.5}, "codes"),
    ({"integration": "simpson"}, "integration"),
])
def test_bad_input_is_refused_with_a_clear_message(kwargs, match):
    args = dict(codes=CODES, labels=LABELS, hierarchy=TWO_LEVEL, k=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mean_average_hierarchical_precision(**args)


def test_old_call_with_features_says_features_are_gone():
    features = np.zeros((4, 1))
    with pytest.raises(TypeError, match="no longer takes features"):
        mean_average_hierarchical_precision(CODES, features, LABELS, TWO_LEVEL)
