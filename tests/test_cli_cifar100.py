"""The CIFAR-100 pipeline through the command line, on a small archive in the official format
(never the real data): loader -> 1-epoch tiny wide ResNet -> HKD -> metrics with mAHP@250."""
import json

import numpy as np

from hkd_core.cli import main
from hkd_core.datasets.cifar100 import write_cifar100_archive


def test_train_cifar100_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HKD_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    write_cifar100_archive(str(data / "cifar-100-python.tar.gz"), n_train=120, n_test=60, seed=0)
    out = tmp_path / "run"
    code = main(["train", "--dataset", "cifar100", "--data-dir", str(data), "--model", "hkd",
                 "--backbone", "wrn-10-1", "--backbone-epochs", "1", "--limit", "60",
                 "--epochs", "2", "--n-kmeans-exemplars", "20", "--n-neighbour-exemplars", "5",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert 0.0 < m["mahp250"] <= 1.0
    assert m["split"] == "test" and m["metric"] == "euclidean"
    X = np.load(out / "embeddings.npy")
    assert X.shape == (60, 64)                      # wrn-10-1 penultimate width 64 * 1
    labels = (out / "labels.txt").read_text().splitlines()
    names = (out / "names.txt").read_text().splitlines()
    assert len(labels) == len(names) == 60 and names[0].endswith(".png")


def test_train_cifar100_without_data_says_where_to_put_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HKD_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["train", "--dataset", "cifar100", "--data-dir", str(tmp_path / "nothing"),
                 "--model", "hkm", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "cifar-100-python" in capsys.readouterr().err


def test_fig4_view_keeps_two_superclasses_and_the_split(tmp_path, monkeypatch):
    from hkd_core.datasets import load_dataset
    monkeypatch.setenv("HKD_CACHE_DIR", str(tmp_path / "cache"))
    write_cifar100_archive(str(tmp_path / "cifar-100-python.tar.gz"), n_train=200, n_test=100, seed=0)
    opts = dict(data_dir=str(tmp_path), backbone="wrn-10-1", backbone_epochs=1)
    full = load_dataset("cifar100", **opts)
    pair = load_dataset("cifar100-fig4", superclasses=("vehicles_1", "vehicles_2"), **opts)
    coarse = np.asarray(full.extra["coarse_labels"])
    assert pair.n == int(np.isin(coarse, ["vehicles_1", "vehicles_2"]).sum()) > 0
    assert set(pair.extra["coarse_labels"]) <= {"vehicles_1", "vehicles_2"}
    assert len(pair.train_idx) + len(pair.test_idx) == pair.n
    from hkd_core.datasets.cifar100 import SUPERCLASSES, load_barz_denzler_hierarchy
    assert set(pair.labels) <= set(SUPERCLASSES["vehicles_1"] + SUPERCLASSES["vehicles_2"])
    assert pair.hierarchy == full.hierarchy == load_barz_denzler_hierarchy()
    import pytest
    with pytest.raises(ValueError, match="superclasses"):
        load_dataset("cifar100-fig4", superclasses=("dragons",), **opts)


def test_app_workspace_never_trains_a_backbone(tmp_path, monkeypatch):
    """The app reads CIFAR-100 features from the cache only; without them it says how to make them."""
    import pytest
    from app.state import Workspace
    monkeypatch.setenv("HKD_CACHE_DIR", str(tmp_path / "cache"))
    write_cifar100_archive(str(tmp_path / "cifar-100-python.tar.gz"), n_train=60, n_test=30, seed=0)
    opts = dict(data_dir=str(tmp_path), backbone="wrn-10-1", backbone_epochs=1)
    ws = Workspace(str(tmp_path / "app"), dataset_options={"cifar100": opts, "cifar100-fig4": opts})
    with pytest.raises(FileNotFoundError, match="python -m hkd_core train"):
        ws.dataset("cifar100")
    from hkd_core.datasets import load_dataset
    load_dataset("cifar100", **opts)                  # what `train` does: trains and caches
    assert ws.dataset("cifar100").n == 90             # now read from the cache
    assert ws.dataset("cifar100-fig4").n < 90
