"""Artefact store on diskcache: codes, metrics, projections and uploaded data sets.

Keys are hashes of what produced an artefact:

    model result   sha256(dataset fingerprint, model name, params, CODE_VERSION)
    projection     sha256(dataset fingerprint, method, params, CODE_VERSION)
    dataset        its fingerprint = sha256(X bytes, shape, names, labels, metric)

Values are only bytes and JSON text: numpy arrays go through ``np.save`` / ``np.load(...,
allow_pickle=False)`` and everything else through ``json``. diskcache returns bytes and str values
as they were stored, so reading the store never unpickles anything, even if the cache directory
was written by someone else.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time

import numpy as np

from hkd_core.npyio import load_npz_bytes

# Bump when a change in hkd_core makes old cached codes, metrics or projections wrong.
CODE_VERSION = "1"


def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            p = np.ascontiguousarray(p)
            h.update(str((p.dtype.str, p.shape)).encode())
            h.update(p.tobytes())
        elif isinstance(p, bytes):
            h.update(p)
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:32]


def dataset_fingerprint(dataset) -> str:
    """Hash of the data itself (values, names, labels, metric), not of its file or name."""
    return _sha(np.asarray(dataset.X, dtype=np.float32), list(dataset.names),
                list(dataset.labels) if dataset.labels is not None else None, dataset.metric)


def model_key(fingerprint: str, model: str, params: dict) -> str:
    return "result:" + _sha(fingerprint, model, _canonical(params), CODE_VERSION)


def projection_key(fingerprint: str, method: str, params: dict | None = None) -> str:
    return "proj:" + _sha(fingerprint, method, _canonical(params or {}), CODE_VERSION)


def _canonical(params: dict) -> dict:
    """JSON-stable params: tuples -> lists, numpy scalars -> Python numbers, and whole floats
    -> ints, because parameters that travel through the browser come back as JavaScript
    numbers (1.0 returns as 1) and must still find their cached result."""
    return _whole_floats_to_int(json.loads(json.dumps(params, sort_keys=True, default=_to_json)))


def _whole_floats_to_int(v):
    if isinstance(v, dict):
        return {k: _whole_floats_to_int(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_whole_floats_to_int(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _to_json(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, set)):
        return list(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"parameter value {v!r} is not JSON-serialisable")


def arrays_to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    for a in arrays.values():
        if np.asarray(a).dtype == object:
            raise ValueError("object arrays cannot be stored (they would need pickle)")
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def bytes_to_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Arrays of stored npz bytes; safe to call from many threads at once (see hkd_core.npyio)."""
    return load_npz_bytes(data)


class ArtefactStore:
    """diskcache-backed store. Safe to share between the server and its background processes
    (diskcache uses SQLite with file locking)."""

    def __init__(self, directory: str):
        import diskcache

        if not directory:
            raise ValueError("directory must be a path for the artefact cache")
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.cache = diskcache.Cache(directory)

    # -- low level: bytes and JSON only -------------------------------------------------------
    def put_arrays(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        self.cache.set(key + ":npz", arrays_to_bytes(arrays))

    def get_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        data = self.cache.get(key + ":npz")
        return None if not isinstance(data, bytes) else bytes_to_arrays(data)

    def put_json(self, key: str, value) -> None:
        self.cache.set(key + ":json", json.dumps(value, default=_to_json))

    def get_json(self, key: str):
        text = self.cache.get(key + ":json")
        return None if not isinstance(text, str) else json.loads(text)

    def __contains__(self, key: str) -> bool:
        return (key + ":json") in self.cache or (key + ":npz") in self.cache

    # -- model results ----------------------------------------------------------------------
    def put_result(self, key: str, codes: np.ndarray, metrics: dict | None, meta: dict,
                   extra_arrays: dict[str, np.ndarray] | None = None) -> None:
        arrays = {"codes": np.asarray(codes, dtype=np.int16 if np.max(codes, initial=0) < 2**15 else np.int64)}
        arrays.update(extra_arrays or {})
        self.put_arrays(key, arrays)
        meta = dict(meta, created=time.time())
        self.put_json(key, {"meta": meta, "metrics": metrics})
        fp = meta.get("fingerprint")
        if fp:
            with self.cache.transact():
                index = self.get_json("index:" + fp) or {}
                index[key] = {"model": meta.get("model"), "params": meta.get("params"),
                              "created": meta["created"]}
                self.put_json("index:" + fp, index)

    def get_result(self, key: str) -> dict | None:
        """{"codes": (n, D) int64, "metrics": dict | None, "meta": dict, **extra arrays} or None."""
        info = self.get_json(key)
        arrays = self.get_arrays(key)
        if info is None or arrays is None:
            return None
        arrays["codes"] = arrays["codes"].astype(np.int64)
        return dict(arrays, metrics=info.get("metrics"), meta=info.get("meta", {}))

    def results_for(self, fingerprint: str) -> dict[str, dict]:
        """Cached results of a data set: key -> {"model", "params", "created"}, oldest first."""
        index = self.get_json("index:" + fingerprint) or {}
        alive = {k: v for k, v in index.items() if (k + ":json") in self.cache}
        return dict(sorted(alive.items(), key=lambda kv: kv[1].get("created", 0)))

    # -- projections ------------------------------------------------------------------------
    def put_projection(self, key: str, xy: np.ndarray) -> None:
        self.put_arrays(key, {"xy": np.asarray(xy, dtype=np.float32)})

    def get_projection(self, key: str) -> np.ndarray | None:
        arrays = self.get_arrays(key)
        return None if arrays is None else arrays["xy"]

    # -- data sets (uploads) ------------------------------------------------------------------
    def put_dataset(self, dataset) -> str:
        """Store an uploaded Dataset; returns its fingerprint (its key in the store)."""
        fp = dataset_fingerprint(dataset)
        self.put_arrays("dataset:" + fp, {"X": np.asarray(dataset.X, dtype=np.float32)})
        self.put_json("dataset:" + fp, {"name": dataset.name, "names": list(dataset.names),
                                       "labels": dataset.labels, "metric": dataset.metric,
                                       "description": dataset.description})
        return fp

    def get_dataset(self, fingerprint: str):
        from hkd_core.datasets.base import Dataset

        info = self.get_json("dataset:" + fingerprint)
        arrays = self.get_arrays("dataset:" + fingerprint)
        if info is None or arrays is None:
            return None
        return Dataset(name=info["name"], X=arrays["X"], names=info["names"], labels=info["labels"],
                       metric=info["metric"], description=info.get("description", ""))

    def close(self) -> None:
        self.cache.close()
