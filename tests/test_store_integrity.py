"""Store reliability: thread-safe array reads, all-or-nothing entries, the integrity pass."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from hkd_core.datasets.base import Dataset
from hkd_core.store import ArtefactStore, dataset_fingerprint, model_key


def small_dataset(seed=0, n=40, d=3):
    rng = np.random.default_rng(seed)
    return Dataset(name=f"upload:t{seed}.csv", X=rng.normal(size=(n, d)), names=[f"p{i}" for i in range(n)],
                   labels=["a"] * n, metric="euclidean")


def stored_result(store, seed=0):
    ds = small_dataset(seed)
    fp = dataset_fingerprint(ds)
    key = model_key(fp, "hkd", {"K": 4, "seed": seed})
    codes = np.random.default_rng(seed).integers(0, 4, size=(40, 5))
    store.put_result(key, codes, {"share": [0.5]}, {"model": "hkd", "params": {"K": 4}, "fingerprint": fp})
    return key, fp, codes


# ------------------------------------------------------------------------- 1. threaded reads

def _overlap_tripwire(monkeypatch):
    """Make ast.literal_eval raise the reported SystemError whenever two calls overlap."""
    real = ast.literal_eval
    active = [0]
    guard = threading.Lock()

    def tripwire(node_or_string):
        with guard:
            active[0] += 1
            overlap = active[0] > 1
        try:
            time.sleep(0.0005)  # widen the window in which a second parse could enter
            if overlap:
                raise SystemError("AST constructor recursion depth mismatch (before=1, after=2)")
            return real(node_or_string)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(ast, "literal_eval", tripwire)


def run_threads(fn, n_threads):
    errors = []

    def target():
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(repr(err))

    threads = [threading.Thread(target=target) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_threaded_npy_uploads_parse_headers_one_at_a_time(monkeypatch):
    import io as _io

    from hkd_core.uploads import parse_embedding_upload

    buf = _io.BytesIO()
    np.save(buf, np.arange(12.0).reshape(6, 2))
    raw = buf.getvalue()
    _overlap_tripwire(monkeypatch)
    shapes = []
    errors = run_threads(lambda: [shapes.append(parse_embedding_upload("e.npy", raw).X.shape) for _ in range(20)], 8)
    assert errors == [] and shapes == [(6, 2)] * 160


def test_threaded_reads_never_run_two_npy_header_parses_at_once(tmp_path, monkeypatch):
    """numpy parses every npy header with ast.literal_eval, which failed under concurrent
    requests (SystemError: AST constructor recursion depth mismatch). The tripwire raises that
    error whenever two parses overlap; 16 threads x 50 reads must never trip it."""
    store = ArtefactStore(str(tmp_path))
    key, _, codes = stored_result(store)
    store.put_projection("proj:x", np.arange(80.0).reshape(40, 2))
    expected = store.get_result(key)
    expected_xy = store.get_projection("proj:x")

    real = ast.literal_eval
    active = [0]
    guard = threading.Lock()

    def tripwire(node_or_string):
        with guard:
            active[0] += 1
            overlap = active[0] > 1
        try:
            time.sleep(0.0005)  # widen the window in which a second parse could enter
            if overlap:
                raise SystemError("AST constructor recursion depth mismatch (before=1, after=2)")
            return real(node_or_string)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(ast, "literal_eval", tripwire)
    errors, results = [], []

    def reader():
        try:
            for _ in range(50):
                res = store.get_result(key)
                xy = store.get_projection("proj:x")
                results.append((res["codes"].tobytes(), res["codes"].dtype.str, xy.tobytes()))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(err))

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 16 * 50
    want = (expected["codes"].tobytes(), expected["codes"].dtype.str, expected_xy.tobytes())
    assert all(r == want for r in results)
    assert np.array_equal(expected["codes"], codes)


# ------------------------------------------------------------------ 2. all-or-nothing entries

def test_result_missing_its_json_half_is_missing_and_deleted(tmp_path):
    """A kill between the two writes of an older version left codes without metrics/meta."""
    store = ArtefactStore(str(tmp_path))
    key, fp, _ = stored_result(store)
    store.cache.delete(key + ":json")
    assert key not in store and not store.has(key)
    assert store.get_result(key) is None  # the caller retrains instead of failing
    assert (key + ":npz") not in store.cache  # the leftover half was removed
    assert store.results_for(fp) == {}
    key2, _, _ = stored_result(store, seed=1)
    store.cache.delete(key2 + ":npz")
    assert key2 not in store and store.get_result(key2) is None


def test_dataset_missing_a_half_is_missing(tmp_path):
    store = ArtefactStore(str(tmp_path))
    for half in ("npz", "json"):
        fp = store.put_dataset(small_dataset())
        assert ("dataset:" + fp) in store and store.get_dataset(fp) is not None
        store.cache.delete(f"dataset:{fp}:{half}")
        assert ("dataset:" + fp) not in store
        assert store.get_dataset(fp) is None


def test_undecodable_parts_read_as_missing(tmp_path):
    store = ArtefactStore(str(tmp_path))
    key, _, _ = stored_result(store)
    store.cache.set(key + ":npz", b"PK\x03\x04 truncated")
    assert store.get_result(key) is None and key not in store
    fp = store.put_dataset(small_dataset())
    store.cache.set(f"dataset:{fp}:json", "{not json")
    assert store.get_dataset(fp) is None


def test_an_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    """The parts go in one transaction: interrupted after the first part, none is kept."""
    store = ArtefactStore(str(tmp_path))
    real_set = store.cache.set
    calls = []

    def set_then_die(k, v, *a, **kw):
        calls.append(k)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the parts")
        return real_set(k, v, *a, **kw)

    monkeypatch.setattr(store.cache, "set", set_then_die)
    ds = small_dataset()
    with pytest.raises(KeyboardInterrupt):
        store.put_dataset(ds, filename="t.csv")
    with pytest.raises(KeyboardInterrupt):
        calls.clear()
        stored_result(store)
    monkeypatch.undo()
    fp = dataset_fingerprint(ds)
    assert ("dataset:" + fp) not in store and store.get_dataset(fp) is None
    assert list(store.cache.iterkeys()) == []
    assert store.uploads() == {}


def test_a_killed_process_leaves_no_partial_entry(tmp_path):
    """A real kill (os._exit) after the first part of a result: nothing of it is visible, and
    cleanup() removes the value file that write left behind."""
    script = textwrap.dedent(f"""
        import os, numpy as np
        from hkd_core.store import ArtefactStore
        store = ArtefactStore({str(tmp_path)!r})
        real = store._write_parts
        def first_part_then_die(key, blob, text):
            real(key, blob, None)
            os._exit(9)
        store._write_parts = first_part_then_die
        store.put_result("result:k", np.zeros((20000, 8), dtype=np.int64) + 7, None,
                         {{"model": "m", "params": {{}}, "fingerprint": "fp"}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), timeout=60)
    assert proc.returncode == 9
    store = ArtefactStore(str(tmp_path))
    assert "result:k" not in store and store.get_result("result:k") is None
    assert list(store.cache.iterkeys()) == []
    report = store.cleanup()
    assert any("unknown file" in w for w in report["files"])  # the orphaned value file
    values = [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".val")]
    assert values == []


# ----------------------------------------------------------------------- 3. integrity pass

def test_put_dataset_with_filename_lists_it_atomically(tmp_path):
    store = ArtefactStore(str(tmp_path))
    fp = store.add_upload(small_dataset(), "t0.csv")
    assert store.uploads() == {fp: {"filename": "t0.csv", "n": 40, "d": 3}}
    assert store.get_json("uploads") == store.uploads()


def test_cleanup_removes_partials_and_reconciles_the_uploads_index(tmp_path):
    store = ArtefactStore(str(tmp_path))
    # a data set stored but never listed (kill before the index update, as app/state.py does it)
    unlisted = store.put_dataset(small_dataset(1))
    # a listed data set whose arrays were lost
    gone = store.add_upload(small_dataset(2), "gone.csv")
    store.cache.delete(f"dataset:{gone}:npz")
    # an index entry for a data set never stored
    store.put_json("uploads", dict(store.get_json("uploads"), deadbeef={"filename": "x.csv", "n": 1, "d": 1}))
    kept = store.add_upload(small_dataset(3), "kept.csv")
    # results: one whole, one half, one whole but missing from its index
    key, fp, _ = stored_result(store)
    half, _, _ = stored_result(store, seed=4)
    store.cache.delete(half + ":json")
    lost, fp5, _ = stored_result(store, seed=5)
    store.cache.delete("index:" + fp5 + ":json")
    store.put_projection("proj:half", np.ones((3, 2)))
    store.cache.set("proj:bad:npz", b"garbage")

    report = store.cleanup()
    assert sorted(report["removed"]) == sorted([f"dataset:{gone}", half, "proj:bad"])
    assert report["listed"] == [unlisted]
    assert sorted(report["unlisted"]) == sorted([gone, "deadbeef"])
    assert store.uploads() == store.get_json("uploads") == {
        unlisted: {"filename": "t1.csv", "n": 40, "d": 3}, kept: {"filename": "kept.csv", "n": 40, "d": 3}}
    assert list(store.results_for(fp)) == [key] and list(store.results_for(fp5)) == [lost]
    assert store.get_projection("proj:half").shape == (3, 2)
    assert not any(k.startswith(half) or k.startswith(f"dataset:{gone}") for k in store.cache.iterkeys())
    # a second pass finds nothing to do
    again = store.cleanup()
    assert again["removed"] == again["listed"] == again["unlisted"] == again["reindexed"] == []


def test_readers_accept_any_key_without_failing(tmp_path):
    store = ArtefactStore(str(tmp_path))
    assert store.get_result("not-a-result-key") is None and store.get_dataset("nope") is None
    store.put_projection("proj:only", np.zeros((2, 2)))
    assert "proj:only" in store and store.get_projection("proj:only").shape == (2, 2)
