"""The wordnet-nouns command in its --quick form (dog.n.01, a few hundred nouns, 2 epochs) and
the dataset it makes."""
import json

import numpy as np
import pytest

from hkd_core.datasets import get_dataset_spec
from hkd_core.datasets.wordnet import wordnet_available
from hkd_core.datasets.wordnet_nouns import (availability, build_wordnet_nouns, load_wordnet_nouns,
                                             sampled_share_table)


def test_unbuilt_dataset_is_unavailable_with_the_build_command(tmp_path):
    ok, msg = availability(cache_dir=tmp_path / "nothing")
    assert not ok and "python -m hkd_core wordnet-nouns" in msg
    with pytest.raises(FileNotFoundError, match="wordnet-nouns"):
        load_wordnet_nouns(cache_dir=tmp_path / "nothing")


def test_sampled_share_table_with_all_rows_matches_metrics_share_table():
    from hkd_core.metrics import share_table

    rng = np.random.default_rng(0)
    X = rng.uniform(-0.4, 0.4, (60, 3))
    codes = rng.integers(0, 3, (60, 4))
    full = share_table(codes, X, "poincare", (5, 10), 4)
    sampled = sampled_share_table(codes, X, "poincare", (5, 10), 4, n_queries=60)
    assert sampled["n_queries"] == 60
    for k in full:
        assert sampled["share"][k] == pytest.approx(full[k])


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory):
    ok, msg = wordnet_available()
    if not ok:
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("nouns")
    lines = []
    info = build_wordnet_nouns(out, quick=True, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    return out, info, lines


def test_quick_build_writes_a_dataset_the_registry_opens(quick_build):
    out, info, lines = quick_build
    assert info["epochs_done"] == 2 and info["n_nodes"] > 100
    assert {"burn-in", "main"} <= set(info["timing"])
    r = info["reconstruction"]
    assert r["n_nodes_ranked"] == r["n_nodes_with_neighbours"] and 1 <= r["mean_rank"] and 0 < r["map"] <= 1
    assert any("us/edge" in line for line in lines) and any("KNN=5" in line for line in lines)
    ok, msg = availability(cache_dir=out)
    assert ok, msg
    ds = get_dataset_spec("wordnet-nouns").load(cache_dir=str(out))
    assert ds.metric == "poincare" and ds.n == info["n_nodes"]
    assert ds.extra["codes"].shape == (ds.n, 4)
    assert np.all(np.linalg.norm(ds.X, axis=1) < 1)
    assert json.loads((out / "info.json").read_text())["coder"] == "hkm"


def test_quick_build_resumes_from_its_checkpoint(quick_build):
    out, info, _ = quick_build
    lines = []
    again = build_wordnet_nouns(out, quick=True, epochs=3, resume=True,
                                log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert again["epochs_done"] == 3
    assert any("resumed from the checkpoint of epoch 2" in line for line in lines)
    assert [h["epoch"] for h in again["history"]][:2] == [1, 2]
    assert again["history"][:2] == info["history"][:2]
