"""Artefact store on diskcache: codes, metrics, projections and uploaded data sets.

Keys are hashes of what produced an artefact:

    model result   sha256(dataset fingerprint, model name, params, CODE_VERSION)
    projection     sha256(dataset fingerprint, method, params, CODE_VERSION)
    dataset        its fingerprint = sha256(X bytes, shape, names, labels, metric)

Multi-part entries (result, data set) are written in one transaction and read as missing when
any part is absent; ``ArtefactStore.cleanup()`` is the integrity pass to run at start.

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
import sqlite3
import time
import zipfile

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
    parts = [np.asarray(dataset.X, dtype=np.float32), list(dataset.names),
             list(dataset.labels) if dataset.labels is not None else None, dataset.metric]
    side = _side_parts(dataset)
    if side:                      # metadata or images: part of the data (no change to older keys)
        parts.append(_sha(*side))
    if getattr(dataset, "hierarchy", None):      # a label hierarchy too
        parts.append(_sha(sorted(dataset.hierarchy.items())))
    return _sha(*parts)


def _side_parts(dataset) -> list:
    columns = dataset.metadata_columns() if hasattr(dataset, "metadata_columns") else {}
    images = (dataset.extra or {}).get("images")
    parts = []
    for name in sorted(columns):
        values = columns[name]
        parts += [name, np.asarray(values, dtype=np.float64) if isinstance(values, np.ndarray) else list(values)]
    if images is not None:
        from hkd_core.images import pack_thumbnails

        parts.append(np.asarray(images) if isinstance(images, np.ndarray)
                     else pack_thumbnails(list(images))["thumb_bytes"])
    return parts


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


# Parts of each kind of multi-part entry (by key prefix). Such an entry is written in one
# transaction and counts as present only when every part is; other keys are single values.
ENTRY_PARTS = {"result:": ("npz", "json"), "dataset:": ("npz", "json"), "proj:": ("npz",)}
UPLOADS_KEY = "uploads"
_UNDECODABLE = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, json.JSONDecodeError)


def _parts_of(key: str) -> tuple[str, ...] | None:
    return next((parts for prefix, parts in ENTRY_PARTS.items() if key.startswith(prefix)), None)


class ArtefactStore:
    """diskcache-backed store. Safe to share between the server and its background processes
    (diskcache uses SQLite with file locking).

    Multi-part entries (a result's codes + metrics + meta, a data set's arrays + names, and the
    index that lists them) are written inside one diskcache transaction, i.e. one SQLite
    transaction: a process killed half-way leaves none of the entry, and other processes never
    see half of it. An entry left partial anyway (written by an older version, or a value file
    lost) reads as missing -- ``get_*`` return None, ``key in store`` is False -- and is deleted,
    so the caller recomputes it. :meth:`cleanup` checks the whole store; run it at start.
    """

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
        if not isinstance(data, bytes):
            return None
        try:
            return bytes_to_arrays(data)
        except _UNDECODABLE:  # truncated or foreign bytes: as good as missing
            return None

    def put_json(self, key: str, value) -> None:
        self.cache.set(key + ":json", json.dumps(value, default=_to_json))

    def get_json(self, key: str):
        text = self.cache.get(key + ":json")
        if not isinstance(text, str):
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None

    def __contains__(self, key: str) -> bool:
        parts = _parts_of(key)
        if parts is None:
            return (key + ":json") in self.cache or (key + ":npz") in self.cache
        return all(f"{key}:{part}" in self.cache for part in parts)

    has = __contains__

    # -- multi-part entries -------------------------------------------------------------------
    def _put_entry(self, key: str, arrays: dict | None = None, value=None, then=None) -> None:
        """Write an entry's parts (and ``then()``, e.g. an index update) atomically."""
        blob = None if arrays is None else arrays_to_bytes(arrays)  # encode outside the lock
        text = None if value is None else json.dumps(value, default=_to_json)
        with self.cache.transact():
            self._write_parts(key, blob, text)
            if then is not None:
                then()

    def _write_parts(self, key: str, blob: bytes | None, text: str | None) -> None:
        """The entry's parts one after the other; only ever called inside a transaction."""
        if blob is not None:
            self.cache.set(key + ":npz", blob)
        if text is not None:
            self.cache.set(key + ":json", text)

    def _get_entry(self, key: str):
        """(arrays or None, json value or None) of a whole entry, or None when it is missing
        or partial (a partial entry is deleted)."""
        parts = _parts_of(key) or ("npz", "json")
        got = self._read_parts(key, parts)
        if got is not None:
            return got
        if not any(f"{key}:{part}" in self.cache for part in parts):
            return None
        # Partial as read: a writer may have committed between our reads, so decide under the
        # write lock, where nothing changes.
        with self.cache.transact():
            got = self._read_parts(key, parts)
            if got is None:
                self._delete_entry(key)
            return got

    def _read_parts(self, key: str, parts):
        arrays = self.get_arrays(key) if "npz" in parts else None
        value = self.get_json(key) if "json" in parts else None
        if ("npz" in parts and arrays is None) or ("json" in parts and value is None):
            return None
        return arrays, value

    def _delete_entry(self, key: str) -> None:
        for part in ("npz", "json"):
            self.cache.delete(f"{key}:{part}")

    # -- model results ----------------------------------------------------------------------
    def put_result(self, key: str, codes: np.ndarray, metrics: dict | None, meta: dict,
                   extra_arrays: dict[str, np.ndarray] | None = None) -> None:
        arrays = {"codes": np.asarray(codes, dtype=np.int16 if np.max(codes, initial=0) < 2**15 else np.int64)}
        arrays.update(extra_arrays or {})
        meta = dict(meta, created=time.time())
        fp = meta.get("fingerprint")

        def index_it():
            if fp:
                index = self.get_json("index:" + fp) or {}
                index[key] = {"model": meta.get("model"), "params": meta.get("params"),
                              "created": meta["created"]}
                self.put_json("index:" + fp, index)

        self._put_entry(key, arrays, {"meta": meta, "metrics": metrics}, then=index_it)

    def get_result(self, key: str) -> dict | None:
        """{"codes": (n, D) int64, "metrics": dict | None, "meta": dict, **extra arrays} or None
        (also when only part of the result is stored: the caller retrains)."""
        got = self._get_entry(key)
        if got is None:
            return None
        arrays, info = got
        if "codes" not in arrays or not isinstance(info, dict):
            self._delete_entry(key)
            return None
        arrays["codes"] = arrays["codes"].astype(np.int64)
        return dict(arrays, metrics=info.get("metrics"), meta=info.get("meta", {}))

    def results_for(self, fingerprint: str) -> dict[str, dict]:
        """Cached results of a data set: key -> {"model", "params", "created"}, oldest first."""
        index = self.get_json("index:" + fingerprint) or {}
        alive = {k: v for k, v in index.items() if k in self}
        return dict(sorted(alive.items(), key=lambda kv: kv[1].get("created", 0)))

    # -- projections ------------------------------------------------------------------------
    def put_projection(self, key: str, xy: np.ndarray) -> None:
        self.put_arrays(key, {"xy": np.asarray(xy, dtype=np.float32)})

    def get_projection(self, key: str) -> np.ndarray | None:
        arrays = self.get_arrays(key)
        return None if arrays is None or "xy" not in arrays else arrays["xy"]

    # -- data sets (uploads) ------------------------------------------------------------------
    def put_dataset(self, dataset, filename: str | None = None) -> str:
        """Store an uploaded Dataset; returns its fingerprint (its key in the store).

        With ``filename`` the data set is also listed in the uploads index (:meth:`uploads`),
        in the same transaction, so it can never be stored but unlisted.
        """
        fp = dataset_fingerprint(dataset)
        X = np.asarray(dataset.X, dtype=np.float32)
        info = {"name": dataset.name, "names": list(dataset.names), "labels": dataset.labels,
                "metric": dataset.metric, "description": dataset.description,
                "filename": filename or _filename_of(dataset.name), "n": int(X.shape[0]),
                "d": int(X.shape[1])}
        arrays = {"X": X}
        if dataset.hierarchy:
            info["hierarchy"] = dict(dataset.hierarchy)
        # metadata: text columns in the json half, numeric ones as arrays; thumbnails packed flat
        text_columns, number_columns = {}, []
        for j, (name, values) in enumerate(dataset.metadata_columns().items()):
            if isinstance(values, np.ndarray):
                arrays[f"meta_{j}"] = np.asarray(values, dtype=np.float64)
                number_columns.append([name, f"meta_{j}"])
            else:
                text_columns[name] = [str(v) for v in values]
        if text_columns or number_columns:
            info["columns"] = {"text": text_columns, "number": number_columns,
                               "order": list(dataset.metadata_columns())}
        images = (dataset.extra or {}).get("images")
        if images is not None:
            from hkd_core.images import pack_thumbnails

            if isinstance(images, np.ndarray):
                arrays["image_pixels"] = images
            else:
                arrays.update(pack_thumbnails(list(images)))

        def list_it():
            if filename is not None:
                self._list_upload(fp, info)

        self._put_entry("dataset:" + fp, arrays, info, then=list_it)
        return fp

    def add_upload(self, dataset, filename: str) -> str:
        """Store an uploaded data set and list it in the uploads index, atomically."""
        return self.put_dataset(dataset, filename=filename)

    def uploads(self) -> dict[str, dict]:
        """The uploads index, fingerprint -> {"filename", "n", "d"}, of data sets stored whole."""
        index = self.get_json(UPLOADS_KEY) or {}
        return {fp: v for fp, v in index.items() if ("dataset:" + fp) in self}

    def _list_upload(self, fp: str, info: dict) -> None:
        index = self.get_json(UPLOADS_KEY) or {}
        index[fp] = {"filename": info["filename"], "n": info["n"], "d": info["d"]}
        self.put_json(UPLOADS_KEY, index)

    def get_dataset(self, fingerprint: str):
        from hkd_core.datasets.base import Dataset

        got = self._get_entry("dataset:" + fingerprint)
        if got is None:
            return None
        arrays, info = got
        try:
            extra = {}
            if info.get("columns"):
                found = dict(info["columns"]["text"])
                found.update({name: np.asarray(arrays[key], dtype=np.float64) for name, key in info["columns"]["number"]})
                extra["columns"] = {name: found[name] for name in info["columns"]["order"]}
            if "image_pixels" in arrays:
                extra["images"] = arrays["image_pixels"]
            elif "thumb_bytes" in arrays:
                from hkd_core.images import unpack_thumbnails

                extra["images"] = unpack_thumbnails(arrays["thumb_bytes"], arrays["thumb_offsets"])
            return Dataset(name=info["name"], X=arrays["X"], names=info["names"], labels=info["labels"],
                           metric=info["metric"], description=info.get("description", ""), extra=extra,
                           hierarchy=info.get("hierarchy"))
        except (KeyError, TypeError, ValueError):
            self._delete_entry("dataset:" + fingerprint)
            return None

    # -- integrity ----------------------------------------------------------------------------
    def cleanup(self, fix_files: bool = True) -> dict:
        """Integrity pass, meant to run once at start (before serving requests).

        * deletes partial entries (a result, data set or projection missing a part, or whose
          bytes do not decode);
        * lists every stored data set in the uploads index (one stored but not listed -- a kill
          between the two writes of an older version -- is listed again under its file name)
          and drops index entries whose data set is gone; likewise for each data set's index of
          results;
        * with ``fix_files``, diskcache's own check removes value files no row refers to (left
          by a kill while a large value was being written) and rows whose file is gone. A
          writer in another process stores a large value's file just before its row, so run
          this while no other process writes, or pass ``fix_files=False``.

        Returns what it did: {"removed": [partial entry keys], "listed": [fps put back in the
        uploads index], "unlisted": [fps taken out of it], "reindexed": [fps whose index of
        results changed], "files": [diskcache's warnings]}.
        """
        import diskcache

        report = {"removed": [], "listed": [], "unlisted": [], "reindexed": [], "files": []}
        if fix_files:
            try:
                report["files"] = [str(w.message) for w in self.cache.check(fix=True)]
            except (diskcache.Timeout, sqlite3.OperationalError) as err:  # busy: next time
                report["files"] = [f"skipped: the cache was busy ({err})"]
        bases = set()
        for stored in list(self.cache.iterkeys()):
            if isinstance(stored, str):
                base, _, part = stored.rpartition(":")
                if part in ("npz", "json") and _parts_of(base) is not None:
                    bases.add(base)
        whole = {}
        for base in sorted(bases):
            got = self._get_entry(base)  # deletes the entry when partial or undecodable
            if got is None:
                report["removed"].append(base)
            else:
                whole[base] = got
        datasets = {b.split(":", 1)[1]: got for b, got in whole.items() if b.startswith("dataset:")}
        results = {b: (v.get("meta") or {}) for b, (_, v) in whole.items()
                   if b.startswith("result:") and isinstance(v, dict)}
        with self.cache.transact():  # entries written meanwhile are whole: `in self` sees them
            index = self.get_json(UPLOADS_KEY) or {}
            for fp in list(index):
                if fp not in datasets and ("dataset:" + fp) not in self:
                    del index[fp]
                    report["unlisted"].append(fp)
            for fp, (arrays, info) in datasets.items():
                if fp not in index:
                    index[fp] = {"filename": info.get("filename") or _filename_of(str(info.get("name", fp))),
                                 "n": int(arrays["X"].shape[0]), "d": int(arrays["X"].shape[1])}
                    report["listed"].append(fp)
            if report["listed"] or report["unlisted"]:
                self.put_json(UPLOADS_KEY, index)
            by_fp: dict[str, dict] = {}
            for key, meta in results.items():
                if meta.get("fingerprint"):
                    by_fp.setdefault(meta["fingerprint"], {})[key] = meta
            stored_indexes = {k.rpartition(":")[0].split(":", 1)[1] for k in self.cache.iterkeys()
                              if isinstance(k, str) and k.startswith("index:") and k.endswith(":json")}
            for fp in sorted(stored_indexes | set(by_fp)):
                old = self.get_json("index:" + fp) or {}
                new = {k: v for k, v in old.items() if k in results or k in self}
                for key, meta in by_fp.get(fp, {}).items():
                    new.setdefault(key, {"model": meta.get("model"), "params": meta.get("params"),
                                         "created": meta.get("created", 0)})
                if new != old:
                    self.put_json("index:" + fp, new)
                    report["reindexed"].append(fp)
        return report

    def close(self) -> None:
        self.cache.close()


def _filename_of(name: str) -> str:
    return name[len("upload:"):] if name.startswith("upload:") else name
