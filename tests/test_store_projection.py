import numpy as np
import pytest

from hkd_core.datasets.base import Dataset
from hkd_core.projection import available_methods, default_method, project
from hkd_core.store import ArtefactStore, arrays_to_bytes, dataset_fingerprint, model_key, projection_key


def small_dataset(seed=0, n=60, d=3, metric="euclidean"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * (0.1 if metric == "poincare" else 1.0)
    return Dataset(name="t", X=X, names=[f"p{i}" for i in range(n)], labels=["a"] * n, metric=metric)


def test_fingerprint_depends_on_data_not_name():
    a, b = small_dataset(), small_dataset()
    b.name = "other"
    assert dataset_fingerprint(a) == dataset_fingerprint(b)
    c = small_dataset()
    c.X[0, 0] += 1e-3
    assert dataset_fingerprint(a) != dataset_fingerprint(c)
    d = small_dataset()
    d.names[0] = "renamed"
    assert dataset_fingerprint(a) != dataset_fingerprint(d)


def test_keys_depend_on_model_and_params():
    fp = "abc"
    assert model_key(fp, "hkd", {"K": 16, "D": 8}) == model_key(fp, "hkd", {"D": 8, "K": 16})
    assert model_key(fp, "hkd", {"K": 16}) != model_key(fp, "hkd", {"K": 8})
    assert model_key(fp, "hkd", {"K": 16}) != model_key(fp, "dccl", {"K": 16})
    assert model_key(fp, "hkd", {"p": (1, 2)}) == model_key(fp, "hkd", {"p": [1, 2]})
    assert projection_key(fp, "tsne", {"seed": 0}) != projection_key(fp, "pca", {"seed": 0})


def test_store_roundtrip_persists_across_instances(tmp_path):
    ds = small_dataset()
    store = ArtefactStore(str(tmp_path))
    fp = dataset_fingerprint(ds)
    key = model_key(fp, "hkd", {"K": 4})
    codes = np.random.default_rng(0).integers(0, 4, size=(60, 5))
    store.put_result(key, codes, {"share": {"5": [0.5]}}, {"model": "hkd", "params": {"K": 4}, "fingerprint": fp})
    store.put_projection("proj:x", np.ones((60, 2)))
    up = store.put_dataset(ds)
    store.close()

    again = ArtefactStore(str(tmp_path))
    res = again.get_result(key)
    assert np.array_equal(res["codes"], codes) and res["codes"].dtype == np.int64
    assert res["metrics"]["share"]["5"] == [0.5] and res["meta"]["model"] == "hkd"
    assert list(again.results_for(fp)) == [key]
    assert again.get_projection("proj:x").shape == (60, 2)
    back = again.get_dataset(up)
    assert back.names == ds.names and np.allclose(back.X, ds.X)
    assert again.get_result("result:missing") is None and again.get_projection("nope") is None


def test_store_refuses_object_arrays_and_never_unpickles(tmp_path):
    store = ArtefactStore(str(tmp_path))
    with pytest.raises(ValueError, match="object"):
        arrays_to_bytes({"a": np.array([{"x": 1}], dtype=object)})
    # A pickled value planted under a key is not returned as arrays (only bytes are decoded,
    # with allow_pickle=False).
    store.cache.set("evil:npz", {"not": "bytes"})
    assert store.get_arrays("evil") is None


def test_project_shapes_and_determinism():
    method = "pca"
    ds = small_dataset(n=80)
    a = project(ds.X, method=method, seed=0)
    b = project(ds.X, method=method, seed=0)
    assert a.shape == (80, 2) and np.all(np.isfinite(a))
    assert np.allclose(a, b)


def test_tsne_keeps_clusters_apart_on_poincare_data():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0.3, 0.02, (40, 4)), rng.normal(-0.3, 0.02, (40, 4))])
    xy = project(X, method="tsne", metric="poincare", seed=0)
    c0, c1 = xy[:40].mean(0), xy[40:].mean(0)
    spread = max(xy[:40].std(0).max(), xy[40:].std(0).max())
    assert np.linalg.norm(c0 - c1) > 3 * spread


def test_disk_and_validation():
    X2 = np.random.default_rng(0).normal(size=(10, 2)) * 0.1
    assert np.allclose(project(X2, method="disk"), X2)
    assert default_method(2) == "disk" and default_method(10) == "tsne"
    assert "disk" not in available_methods(10)
    with pytest.raises(ValueError, match="2-d data"):
        project(np.zeros((10, 3)), method="disk")
    with pytest.raises(ValueError, match="method"):
        project(X2, method="mds")
    with pytest.raises(ValueError, match="metric"):
        project(X2, metric="cosine")


def test_model_key_survives_a_trip_through_the_browser():
    """Parameters sent to a dcc.Store come back as JavaScript numbers (1.0 -> 1)."""
    import json as _json
    from hkd_core.store import model_key
    params = {"alpha": 1.0, "perplexities": (10.0, 30.0), "lr": 0.001, "hidden": (20,)}
    back = _json.loads(_json.dumps({"alpha": 1, "perplexities": [10, 30], "lr": 0.001, "hidden": [20]}))
    assert model_key("fp", "hkd", params) == model_key("fp", "hkd", back)
    assert model_key("fp", "hkd", params) != model_key("fp", "hkd", {**params, "alpha": 0.5})
