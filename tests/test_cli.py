"""The command line writes the files the app and later issues rely on."""
import json

import numpy as np
import pytest

from hkd_core.cli import main
from hkd_core.models import load_model


def test_datasets_lists_each_dataset(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic", "mammals", "cifar100"):
        assert name in out


@pytest.mark.parametrize("model,extra", [("hkd", ["--epochs", "2"]), ("hkm", []),
                                         ("random", []), ("hkd-no-kl", ["--epochs", "1"])])
def test_train_writes_the_promised_files(tmp_path, model, extra, capsys):
    out = tmp_path / model
    assert main(["train", "--dataset", "synthetic", "--model", model, "--D", "8", "--out", str(out),
                 *extra]) == 0
    X = np.load(out / "embeddings.npy", allow_pickle=False)
    codes = np.load(out / "codes.npy", allow_pickle=False)
    names = (out / "names.txt").read_text().splitlines()
    labels = (out / "labels.txt").read_text().splitlines()
    assert X.shape == (320, 2) and codes.shape == (320, 8)          # the test split
    assert np.issubdtype(codes.dtype, np.integer)
    assert len(names) == len(labels) == 320
    m = json.loads((out / "metrics.json").read_text())
    assert m["metric"] == "euclidean"
    assert set(m["share"]) == {"5", "10", "15", "20"}
    assert all(len(v) == 8 for v in m["share"].values()) and len(m["reduction"]) == 8
    assert isinstance(m["reconstruction_mse"], float)
    model_back = load_model(out / "model")
    np.testing.assert_array_equal(model_back.transform(X), codes)
    assert "KNN=5" in capsys.readouterr().out


def test_train_knn_metric_and_bad_arguments(tmp_path, capsys):
    assert main(["train", "--dataset", "synthetic", "--model", "hkm", "--out", str(tmp_path / "a"),
                 "--knn-metric", "euclidean"]) == 0
    assert main(["train", "--dataset", "nowhere", "--model", "hkm", "--out", str(tmp_path / "b")]) == 2
    assert "dataset must be one of" in capsys.readouterr().err
    assert main(["train", "--dataset", "synthetic", "--model", "hkm", "--alpha", "1",
                 "--out", str(tmp_path / "c")]) == 2
    assert "does not take" in capsys.readouterr().err
    assert main(["train", "--dataset", "synthetic", "--model", "hkd", "--K", "1",
                 "--out", str(tmp_path / "d")]) == 2
    assert "K must be" in capsys.readouterr().err
    assert main(["train", "--dataset", "synthetic", "--model", "hkm", "--limit", "3",
                 "--out", str(tmp_path / "e")]) == 2
    assert "does not take option" in capsys.readouterr().err


def test_neighbours_reads_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--model", "hkm", "--out", str(out)]) == 0
    name = (out / "names.txt").read_text().splitlines()[0]
    capsys.readouterr()
    assert main(["neighbours", name, "--dataset", "synthetic", "--run", str(out), "--k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith(name) and len(lines) == 1 + 1 + 3
    assert lines[1].split()[-1] == "16"         # the entity shares all D digits with itself
    assert main(["neighbours", "nobody", "--dataset", "synthetic", "--run", str(out)]) == 2


def test_knn_metric_sets_hkd_input_distance_unless_metric_given():
    from hkd_core.runs import run_config
    assert run_config("mammals", "hkd", {}, knn_metric="euclidean")["params"]["metric"] == "euclidean"
    assert run_config("mammals", "hkd", {})["params"]["metric"] == "poincare"
    explicit = run_config("mammals", "hkd", {"metric": "poincare"}, knn_metric="euclidean")
    assert explicit["params"]["metric"] == "poincare"
    assert "metric" not in run_config("mammals", "hkm", {}, knn_metric="euclidean")["params"]
