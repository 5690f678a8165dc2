"""The command line writes the files the app and later issues rely on."""
import json

import numpy as np
import pytest

from hkd_core.benchmark.protocol import Split
from hkd_core.cli import main
from hkd_core.datasets import load_dataset
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
    # the benchmark split: the shipped synthetic test rows are the test part
    split = Split.load(str(out / "split.npz"))
    ds = load_dataset("synthetic")
    np.testing.assert_array_equal(split.test, np.sort(ds.test_idx))
    np.testing.assert_array_equal(X, ds.X[split.test])
    assert m["split"] == "test"
    assert m["split_sizes"] == {"train": len(split.train), "validation": len(split.validation),
                                "test": 320}
    assert len(split.train) + len(split.validation) + 320 == 1600


def test_train_fits_on_train_rows_only_and_scores_the_test_rows(tmp_path, monkeypatch, capsys):
    from hkd_core import runs
    from hkd_core.benchmark.protocol import make_split

    seen = {}
    real = runs.make_model

    def spy(name, **params):
        model = real(name, **params)
        fit = model.fit

        def recording_fit(X, **kw):
            seen["X"] = np.array(X)
            return fit(X, **kw)
        model.fit = recording_fit
        return model
    monkeypatch.setattr(runs, "make_model", spy)
    out = tmp_path / "mam"
    assert main(["train", "--dataset", "mammals", "--model", "hkm", "--out", str(out)]) == 0
    ds = load_dataset("mammals")
    split = make_split(ds, 0)
    np.testing.assert_array_equal(seen["X"], ds.X[split.train])
    names = (out / "names.txt").read_text().splitlines()
    assert names == [ds.names[i] for i in split.test]          # mammals now has a test part
    assert 0 < len(names) < ds.n
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == len(split.test) and m["split"] == "test"
    assert not set(names) & {ds.names[i] for i in split.train}
    # neighbours of a synset the run did not score: looked up among all rows, encoded by the model
    capsys.readouterr()
    entity = ds.names[split.train[0]]
    assert main(["neighbours", entity, "--dataset", "mammals", "--run", str(out), "--k", "2"]) == 0
    captured = capsys.readouterr()
    assert "not among the run's test rows" in captured.err
    assert captured.out.splitlines()[1].startswith(entity)


def test_train_needs_exactly_one_data_source(tmp_path, capsys):
    assert main(["train", "--model", "hkm", "--out", str(tmp_path / "a")]) == 2
    assert "exactly one of --dataset" in capsys.readouterr().err
    assert main(["train", "--dataset", "synthetic", "--wordnet-root", "dog.n.01", "--model", "hkm",
                 "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "exactly one of" in err and "--wordnet-root dog.n.01" in err
    assert main(["train", "--dataset", "synthetic", "--data-metric", "poincare", "--model", "hkm",
                 "--out", str(tmp_path / "c")]) == 2
    assert "--data-metric applies to --data only" in capsys.readouterr().err
    assert main(["train", "--dataset", "wordnet", "--model", "hkm", "--out", str(tmp_path / "d")]) == 2
    assert "--wordnet-root" in capsys.readouterr().err


def test_train_without_model_uses_the_recommended_coder(tmp_path):
    from hkd_core.presets import RECOMMENDED_MODEL

    out = tmp_path / "rec"
    assert main(["train", "--dataset", "synthetic", "--D", "4", "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["model"] == RECOMMENDED_MODEL


def _write_csv(path, n=60, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0, 0.1, (n // 2, d)), rng.normal(5, 0.1, (n - n // 2, d))])
    lines = ["name,label," + ",".join(f"x{j}" for j in range(d))]
    lines += [f"item{i},{'a' if i < n // 2 else 'b'}," + ",".join(f"{v:.5f}" for v in row)
              for i, row in enumerate(X)]
    path.write_text("\n".join(lines) + "\n")
    return X


def test_train_on_a_users_file(tmp_path, capsys):
    X = _write_csv(tmp_path / "emb.csv")
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "emb.csv"), "--model", "hkm", "--K", "2",
                 "--out", str(out)]) == 0
    assert "upload:emb.csv" in capsys.readouterr().out
    split = Split.load(str(out / "split.npz"))
    assert sorted(np.concatenate([split.train, split.validation, split.test]).tolist()) == list(range(60))
    names = (out / "names.txt").read_text().splitlines()
    assert names == [f"item{i}" for i in split.test]
    assert set((out / "labels.txt").read_text().split()) == {"a", "b"}
    np.testing.assert_allclose(np.load(out / "embeddings.npy"), X[split.test], atol=1e-5)
    run = json.loads((out / "run.json").read_text())
    assert run["dataset_options"]["path"].endswith("emb.csv")
    m = json.loads((out / "metrics.json").read_text())
    assert m["share"]["5"][0] == 1.0           # two far-apart blobs: K=2 splits them


def test_train_data_file_errors(tmp_path, capsys, monkeypatch):
    assert main(["train", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "a")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("name,x\na,1\nb,hello\n")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not numeric" in err and "'hello'" in err
    exe = tmp_path / "model.pkl"
    exe.write_bytes(b"\x80\x04.")
    assert main(["train", "--data", str(exe), "--out", str(tmp_path / "c")]) == 2
    assert "unsupported file type" in capsys.readouterr().err
    _write_csv(tmp_path / "big.csv")
    import hkd_core.uploads
    monkeypatch.setattr(hkd_core.uploads, "MAX_UPLOAD_BYTES", 100)
    assert main(["train", "--data", str(tmp_path / "big.csv"), "--out", str(tmp_path / "d")]) == 2
    assert "too large" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_generic_defaults_are_hkds_own_everywhere():
    """A user's file gets HKD()'s defaults in the library, the CLI and the app."""
    from app.state import BASE_CONTROLS, controls_for, model_params
    from hkd_core.datasets.base import Dataset
    from hkd_core.models.hkd import HKD
    from hkd_core.presets import GENERIC_TRAINING, default_params
    from hkd_core.runs import run_config

    hkd = HKD().get_params()
    cli = default_params("some-upload", "hkd")
    assert cli == GENERIC_TRAINING and cli  # only training keys; the rest is HKD() itself
    assert all(hkd[k] == v for k, v in cli.items())
    assert (hkd["epochs"], hkd["lr"], hkd["decay"]) == (200, 1e-3, 0.2)
    assert run_config("upload:x.csv", "hkd")["params"] == cli
    controls = controls_for("upload:abc123")
    assert controls == BASE_CONTROLS
    ds = Dataset("upload:x", np.zeros((4, 2)), ["a", "b", "c", "d"])
    app = model_params("hkd", "upload:abc123", ds, controls)
    for key, value in app.items():
        if key == "device":
            continue
        want = hkd[key]
        assert (tuple(value) if isinstance(value, list) else value) == want, key
    assert {"epochs", "lr", "decay", "K", "D", "alpha", "beta", "n_kmeans_exemplars"} <= set(app)


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


def test_search_prints_the_nearest_row_and_saves_and_loads_the_index(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--model", "rq", "--D", "6", "--out", str(out)]) == 0
    ds = load_dataset("synthetic")
    X = ds.X.astype(np.float64)
    query = 5
    dist = np.sqrt(((X - X[query]) ** 2).sum(1))
    dist[query] = np.inf
    nearest = int(np.argmin(dist))
    capsys.readouterr()
    saved = tmp_path / "synthetic-index.npz"
    args = ["search", ds.names[query], "--dataset", "synthetic", "--run", str(out), "--k", "3",
            "--n-probe", "1000"]
    assert main(args + ["--save", str(saved)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == f"query {ds.names[query]} (row {query})"
    first = lines[2].split()
    assert first[:3] == ["1", ds.names[nearest], str(nearest)]
    assert float(first[3]) == pytest.approx(dist[nearest], abs=1e-4)
    assert len([line for line in lines if line.startswith("  ") and line.split()[0].isdigit()]) == 3
    assert saved.exists()
    # the saved index answers the same, by row id as well as by name
    assert main(["search", "--load", str(saved), "--rows", str(query), "--k", "3", "--n-probe", "1000"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == lines[1:]
    assert main(["search", "nobody", "--load", str(saved)]) == 2
    assert "not a row of the index" in capsys.readouterr().err
