"""Thread-safe reading of ``.npy`` / ``.npz`` bytes.

numpy reads the header of every ``.npy`` array (also each member of an ``.npz``) with
``ast.literal_eval``. Run from many threads at once, as Dash request threads do, that parser
failed here with ``SystemError: AST constructor recursion depth mismatch`` (an interpreter-level
race, not bad data), so every header parse in hkd_core goes through :data:`NPY_HEADER_LOCK`.
Loading in-memory bytes is a copy, so holding the lock for the whole load costs little.
"""
from __future__ import annotations

import io
import threading

import numpy as np

NPY_HEADER_LOCK = threading.Lock()


def load_npz_bytes(data: bytes) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` held in memory, read with ``allow_pickle=False``."""
    with NPY_HEADER_LOCK:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
