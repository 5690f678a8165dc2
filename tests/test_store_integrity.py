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
