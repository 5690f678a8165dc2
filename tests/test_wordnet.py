"""WordNet closure builder, closure/embedding files and the shipped mammals dataset."""
import os
from collections import Counter

import numpy as np
import pytest

from hkd_core.datasets import load_dataset
from hkd_core.datasets.base import Dataset
from hkd_core.datasets.wordnet import (
    CLOSURE_FILE, DATA_DIR, EMBEDDING_VARIANTS, LEXNAMES, ancestor_at_depth, availability,
    build_closure, closure_structure, group_labels, load_mammals, open_wordnet, read_closure_tsv,
    read_embedding_tsv, wordnet_available, write_closure_tsv, write_embedding_tsv)


@pytest.fixture(scope="module")
def wn():
    ok, msg = wordnet_available()
    if not ok:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must install WordNet (wordnet-base): {msg}")
        pytest.skip(msg)
    return open_wordnet()


# ---------------------------------------------------------------- closure builder (needs WordNet)

def test_closure_of_a_small_subtree(wn):
    nodes, edges = build_closure("wolf.n.01", wn)
    # WordNet 3.0: wolf.n.01 has five direct hyponyms; coydog.n.01 sits under coyote.n.01
    assert nodes == sorted(["wolf.n.01", "timber_wolf.n.01", "white_wolf.n.01", "red_wolf.n.01",
                            "coyote.n.01", "coydog.n.01", "wolf_pup.n.01"])
    direct = [(n, "wolf.n.01") for n in nodes if n not in ("wolf.n.01", "coydog.n.01")]
    transitive = [("coydog.n.01", "coyote.n.01"), ("coydog.n.01", "wolf.n.01")]
    assert edges == sorted(direct + transitive)


def test_closure_is_transitive_and_irreflexive(wn):
    nodes, edges = build_closure("canine.n.02", wn)
    node_set, edge_set = set(nodes), set(edges)
    assert "dog.n.01" in node_set and "hunting_dog.n.01" in node_set and "wolf.n.01" in node_set
    assert all(u != v for u, v in edges)
    assert all(u in node_set and v in node_set for u, v in edges)
    # transitivity: (a, b) and (b, c) imply (a, c)
    ancestors = {}
    for u, v in edges:
        ancestors.setdefault(u, set()).add(v)
    for u, anc in ancestors.items():
        for a in anc:
            assert ancestors.get(a, set()) <= anc
    assert ("beagle.n.01", "hound.n.01") in edge_set
    assert ("beagle.n.01", "dog.n.01") in edge_set
    assert ("beagle.n.01", "canine.n.02") in edge_set
    # every non-root node reaches the root
    assert all((n, "canine.n.02") in edge_set for n in nodes if n != "canine.n.02")


def test_closure_keeps_only_ancestors_inside_the_subtree(wn):
    # dog.n.01 is also under domestic_animal.n.01 (outside canine.n.02): such pairs are dropped
    nodes, edges = build_closure("dog.n.01", wn)
    assert {v for _, v in edges} <= set(nodes)
    assert not any(v == "domestic_animal.n.01" for _, v in edges)


def test_mammal_closure_counts_from_wordnet(wn):
    nodes, edges = build_closure("mammal.n.01", wn)
    assert (len(nodes), len(edges)) == (1182, 6542)


def test_unknown_root_raises(wn):
    with pytest.raises(ValueError, match="root"):
        build_closure("not_a_synset.n.01", wn)


def test_lexnames_has_45_entries():
    assert len(LEXNAMES) == 45
    assert LEXNAMES[5] == "noun.animal 1"  # mammal synsets' lexicographer file is number 05


def test_open_wordnet_bad_dir_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="wordnet"):
        open_wordnet(tmp_path)


# ---------------------------------------------------------------- files (no WordNet needed)

def test_closure_tsv_round_trip(tmp_path):
    nodes = ["r.n.01", "a.n.01", "b.n.01"]
    edges = [("a.n.01", "r.n.01"), ("b.n.01", "r.n.01"), ("b.n.01", "a.n.01")]
    path = tmp_path / "c.tsv"
    write_closure_tsv(path, nodes, edges, root="r.n.01")
    assert read_closure_tsv(path) == (nodes, edges)


def test_closure_tsv_rejects_unknown_nodes(tmp_path):
    with pytest.raises(ValueError, match="not in nodes"):
        write_closure_tsv(tmp_path / "c.tsv", ["a"], [("a", "b")])
    bad = tmp_path / "bad.tsv"
    bad.write_text("node\ta\nedge\ta\tb\n")
    with pytest.raises(ValueError, match="unknown nodes"):
        read_closure_tsv(bad)
    bad.write_text("something else\n")
    with pytest.raises(ValueError, match="expected"):
        read_closure_tsv(bad)


def test_embedding_tsv_round_trip(tmp_path):
    X = np.array([[0.1, -0.25], [0.5, 1e-7]])
    write_embedding_tsv(tmp_path / "e.tsv", ["x", "y"], X, header="two lines\nof header")
    names, Y = read_embedding_tsv(tmp_path / "e.tsv")
    assert names == ["x", "y"]
    np.testing.assert_allclose(Y, X, rtol=1e-7)


def test_closure_structure_depth_parents_and_labels():
    nodes = ["r", "a", "b", "a1", "x"]
    # x sits under a1 and b (multiple inheritance); its deepest chain is r > a > a1 > x
    edges = [("a", "r"), ("b", "r"), ("a1", "a"), ("a1", "r"),
             ("x", "a1"), ("x", "a"), ("x", "b"), ("x", "r")]
    st = closure_structure(nodes, edges)
    assert st["root"] == "r"
    assert st["depth"] == {"r": 0, "a": 1, "b": 1, "a1": 2, "x": 3}
    assert st["parents"]["x"] == ["a1", "b"]
    assert st["parents"]["a1"] == ["a"]
    assert ancestor_at_depth(st, "x", 1) == "a"
    assert ancestor_at_depth(st, "b", 2) == "b"
    # depth-2 groups: a1 = {a1, x}, a = {a}, b = {b}, r = {r}; with min_group 2 the
    # singletons a and b move up to depth 1 (still singletons), then to the root
    assert group_labels(st, nodes, 2, 1) == ["r", "a", "b", "a1", "a1"]
    assert group_labels(st, nodes, 2, 2) == ["r", "r", "r", "a1", "a1"]


# ---------------------------------------------------------------- shipped data

def test_shipped_closure_counts():
    nodes, edges = read_closure_tsv(DATA_DIR / CLOSURE_FILE)
    assert (len(nodes), len(edges)) == (1182, 6542)
    assert len(set(nodes)) == 1182 and len(set(edges)) == 6542
    assert all(u != v for u, v in edges)
    assert all((n, "mammal.n.01") in set(edges) for n in nodes if n != "mammal.n.01")


def test_load_mammals_is_a_valid_dataset():
    ok, msg = availability()
    assert ok, msg
    ds = load_mammals()
    assert isinstance(ds, Dataset)
    assert ds.X.shape == (1182, 10) and ds.metric == "poincare"
    assert np.all(np.linalg.norm(ds.X.astype(np.float64), axis=1) < 1.0)
    assert "dog.n.01" in ds.names and "hunting_dog.n.01" in ds.names
    assert not ds.has_split
    assert len(ds.extra["edges"]) == 6542 and len(ds.extra["depth"]) == 1182
    counts = Counter(ds.labels)
    assert 5 <= len(counts) <= 30
    assert ds.labels[ds.index_of("dog.n.01")] == "carnivore.n.01"
    assert ds.labels[ds.index_of("whitetail_prairie_dog.n.01")] == "rodent.n.01"
    assert ds.extra["depth"][ds.index_of("mammal.n.01")] == 0


def test_load_mammals_through_registry_and_variants():
    ds = load_dataset("mammals")
    assert ds.name == "mammals" and ds.n == 1182
    for variant in EMBEDDING_VARIANTS:
        if availability(variant)[0]:
            assert load_mammals(variant=variant).X.shape == (1182, 10)
    with pytest.raises(ValueError, match="variant"):
        load_mammals(variant="nope")


def test_shipped_embedding_reconstructs_the_closure():
    from hkd_core.poincare import reconstruction_scores

    ds = load_mammals()
    nodes, edges = read_closure_tsv(DATA_DIR / CLOSURE_FILE)
    order = [ds.index_of(n) for n in nodes]
    s = reconstruction_scores(ds.X[order].astype(np.float64), nodes, edges, count_self=False)
    assert s["mean_rank"] <= 3.0 and s["map"] >= 0.75


# ---------------------------------------------------------------- any subtree (needs WordNet once)

def test_subtree_builds_caches_and_trains_through_the_cli(wn, tmp_path, monkeypatch, capsys):
    import json

    from hkd_core import poincare
    from hkd_core.cli import main
    from hkd_core.datasets import wordnet as wordnet_module
    from hkd_core.datasets.wordnet import load_wordnet_subtree

    monkeypatch.setenv("HKD_CACHE_DIR", str(tmp_path / "cache"))
    epochs_seen = []
    ds = load_wordnet_subtree("feline.n.01", epochs=3, progress=epochs_seen.append)
    assert [e["epoch"] for e in epochs_seen] == [1, 2, 3]
    assert ds.n == 60 and ds.X.shape == (60, 10) and ds.metric == "poincare"
    assert "cat.n.01" in ds.names and "lion.n.01" in ds.names
    assert np.all(np.linalg.norm(ds.X.astype(np.float64), axis=1) < 1.0)
    assert len(ds.extra["edges"]) == 169 and ds.extra["root"] == "feline.n.01"
    assert ds.extra["depth"][ds.index_of("feline.n.01")] == 0
    assert ds.labels[ds.index_of("lion.n.01")] in ("big_cat.n.01", "feline.n.01")
    rec = ds.extra["reconstruction"]
    assert rec["mean_rank"] >= 1 and 0 < rec["map"] <= 1
    cache = tmp_path / "cache" / "wordnet"
    [folder] = list(cache.glob("feline.n.01-*"))
    assert {p.name for p in folder.iterdir()} == {"closure.tsv", "embedding.npz", "info.json"}
    assert json.loads((folder / "info.json").read_text())["epochs"] == 3

    # a second call reads the files: no WordNet, no training
    def refuse(*args, **kwargs):
        raise AssertionError("the cached subtree was rebuilt")
    monkeypatch.setattr(poincare.PoincareEmbedding, "fit", refuse)
    monkeypatch.setattr(wordnet_module, "open_wordnet", refuse)
    again = load_dataset("wordnet", root="feline.n.01", epochs=3)
    np.testing.assert_array_equal(again.X, ds.X)
    assert again.names == ds.names and again.labels == ds.labels

    out = tmp_path / "run"
    assert main(["train", "--wordnet-root", "feline.n.01", "--wordnet-epochs", "3", "--model", "hkm",
                 "--K", "4", "--out", str(out)]) == 0
    assert "hkm on wordnet" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["metric"] == "poincare" and m["split"] == "test"
    assert sum(m["split_sizes"].values()) == 60
    run = json.loads((out / "run.json").read_text())
    assert run["dataset"] == "wordnet" and run["dataset_options"]["root"] == "feline.n.01"
    # other settings are another cache entry (and would train)
    with pytest.raises(AssertionError, match="rebuilt"):
        load_wordnet_subtree("feline.n.01", epochs=4)


def test_subtree_errors(wn, tmp_path, monkeypatch):
    from hkd_core.datasets.wordnet import load_wordnet_subtree

    monkeypatch.setenv("HKD_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="bear.n.01.* 11 hyponyms.*at least 20"):
        load_wordnet_subtree("bear.n.01", epochs=1)
    with pytest.raises(ValueError, match="root must be a WordNet synset"):
        load_wordnet_subtree("no_such_thing.n.01", epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        load_wordnet_subtree("feline.n.01", epochs=0)


def test_subtree_without_wordnet_says_how_to_install(tmp_path, monkeypatch):
    from hkd_core.datasets.wordnet import load_wordnet_subtree

    monkeypatch.setenv("HKD_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base"):
        load_wordnet_subtree("feline.n.01", epochs=1, wordnet_dir=tmp_path)
