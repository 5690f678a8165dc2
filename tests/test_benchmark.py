"""The benchmark protocol and its --quick command on small data."""
import json

import numpy as np
import pytest

from hkd_core.benchmark.protocol import Split, make_split
from hkd_core.benchmark.report import verdicts
from hkd_core.benchmark.run import lca_depth_function, validation_score
from hkd_core.datasets import load_dataset


def test_split_is_disjoint_stratified_and_keeps_a_shipped_test_split(tmp_path):
    syn = load_dataset("synthetic", n_per_cluster=20)
    s = make_split(syn, seed=0)
    np.testing.assert_array_equal(s.test, np.sort(syn.test_idx))        # shipped test rows kept
    assert not set(s.train) & set(s.validation)
    assert set(s.train) | set(s.validation) == set(syn.train_idx)
    labels = np.asarray(syn.labels)
    assert len(set(labels[s.validation])) == 16                          # every cluster validates
    mam = load_dataset("mammals")
    m = make_split(mam, seed=0)
    assert sum(map(len, (m.train, m.validation, m.test))) == mam.n
    assert abs(len(m.test) - 0.2 * mam.n) < 20
    assert not np.array_equal(make_split(mam, seed=1).test, m.test)
    s.save(tmp_path / "split.npz")
    back = Split.load(tmp_path / "split.npz")
    np.testing.assert_array_equal(back.validation, s.validation)
    with pytest.raises(ValueError, match="disjoint"):
        Split(np.array([0, 1]), np.array([1, 2]), np.array([3, 4]))


def test_lca_depths_from_label_hierarchy_and_wordnet_closure():
    syn = load_dataset("synthetic", n_per_cluster=2)
    lca = lca_depth_function(syn)
    labels = syn.labels                     # g0000 .. g1111; clusters 0 and 1 share 3 levels
    a, b, c = labels.index("g0000"), labels.index("g0001"), labels.index("g1111")
    same = [i for i, lab in enumerate(labels) if lab == "g0000"][1]
    assert list(lca(np.array([a, a, a]), np.array([b, c, same]))) == [3, 0, 4]
    mam = load_dataset("mammals")
    anc = mam.item_ancestors()
    i, j = mam.names.index("dog.n.01"), mam.names.index("wolf.n.01")
    depth = lca_depth_function(mam)(np.array([i]), np.array([j]))[0]
    assert depth == anc[i]["canine.n.02"]   # dog and wolf meet at canine.n.02


def test_validation_choice_and_verdicts():
    m = {"best_share": {"0.80": 0.7, "0.90": None, "0.95": None}, "auc": 0.5}
    assert validation_score(m) == (0.35, 0.5)
    stat = lambda v, sd=0.01: {"mean": v, "sd": sd, "n": 3, "values": [v] * 3}  # noqa: E731
    rows = {"new": {"baseline": False, "best_share": {"0.80": stat(0.80), "0.90": stat(0.70)}, "auc": stat(0.6)},
            "hkm": {"baseline": True, "best_share": {"0.80": stat(0.75), "0.90": stat(0.695)}, "auc": stat(0.7)}}
    v = {x["what"]: x["verdict"] for x in verdicts(rows, "new")}
    assert v == {"0.80": "wins", "0.90": "ties", "auc": "loses"}


def test_benchmark_quick_command(tmp_path, capsys):
    from hkd_core.cli import main

    out = tmp_path / "bench"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- benchmark:start -->\nold\n<!-- benchmark:end -->\ntail\n")
    code = main(["benchmark", "--quick", "--datasets", "synthetic", "--seeds", "2", "--no-png",
                 "--coders", "hkd", "hkd-cuttree", "hkm K=2", "rq K=2", "random", "--out", str(out),
                 "--no-cache", "--readme", str(readme)])
    assert code == 0
    text = capsys.readouterr().out
    assert "queries = database = test rows" in text
    results = json.loads((out / "results.json").read_text())
    rows = results["datasets"]["synthetic"]["by_metric"]["euclidean"]
    assert set(rows) == {"hkd", "hkd-cuttree", "hkm K=2", "rq K=2", "random"}
    assert "hkd-cuttree against the best baseline" in text          # the recommended coder
    table = readme.read_text()
    assert "old" not in table and "| synthetic | euclidean | hkd-cuttree (recommended) |" in table
    assert table.endswith("<!-- benchmark:end -->\ntail\n")
    hkm = rows["hkm K=2"]
    # a K=2 tree on the 2 -> 4 -> 8 -> 16 hierarchy: depth 1 is the top split, exactly
    assert hkm["share"]["5"][0] == pytest.approx(1.0)
    assert hkm["agreement"]["mean"] > 0.9 > rows["random"]["agreement"]["mean"]
    assert rows["random"]["auc"]["mean"] < 0.2
    assert (out / "frontier_synthetic_euclidean.html").exists()
