"""Find entities by name, label or code prefix: a pure function behind the map's find box."""
from __future__ import annotations

import re

import numpy as np

MAX_QUERY = 200


def find_entities(query: str, names, labels, codes: np.ndarray, K: int) -> tuple[np.ndarray, str]:
    """Rows matching ``query`` and a sentence saying how it was read:

    * ``code: 7 13`` or digits alone (``7 13``, ``7.13``; one hex character per digit such as
      ``3a`` when K <= 16 and the query starts with ``code:``): rows whose code starts with
      that prefix;
    * ``label: cat``, or a query equal to a label (any case): rows with that label;
    * anything else: rows whose name contains the query (any case).
    """
    if not isinstance(query, str):
        raise ValueError("the search must be text")
    q = query.strip()
    if not q:
        return np.zeros(0, dtype=np.int64), ""
    if len(q) > MAX_QUERY:
        raise ValueError(f"the search is longer than {MAX_QUERY} characters")
    explicit_code = q.lower().startswith("code:")
    body = q[5:].strip() if explicit_code else q
    digits = _code_digits(body, K, hex_ok=explicit_code)
    if digits is not None and (explicit_code or re.fullmatch(r"[\d\s.,]+", body)):
        if len(digits) > codes.shape[1]:
            raise ValueError(f"the code prefix has {len(digits)} digits; codes have {codes.shape[1]}")
        rows = np.flatnonzero((codes[:, :len(digits)] == np.asarray(digits)).all(1)) if digits else \
            np.arange(len(codes))
        return rows, f"code prefix {' '.join(map(str, digits))}: {len(rows)} entities"
    if explicit_code:
        raise ValueError(f"{body!r} is not a code prefix: digits 0..{K - 1} separated by spaces")
    if labels is not None:
        wanted = q[6:].strip() if q.lower().startswith("label:") else q
        lab = np.asarray(labels, dtype=object).astype(str)
        rows = np.flatnonzero(np.char.lower(lab.astype(str)) == wanted.lower())
        if len(rows) or q.lower().startswith("label:"):
            return rows, f"label {wanted!r}: {len(rows)} entities"
    low = q.lower()
    rows = np.asarray([i for i, n in enumerate(names) if low in n.lower()], dtype=np.int64)
    return rows, f"names containing {q!r}: {len(rows)} entities"


def _code_digits(text: str, K: int, hex_ok: bool) -> list[int] | None:
    parts = [p for p in re.split(r"[\s.,]+", text) if p]
    if hex_ok and len(parts) == 1 and K <= 16 and re.fullmatch(r"[0-9a-fA-F]+", parts[0]) and len(parts[0]) > 1:
        parts = list(parts[0])
        values = [int(p, 16) for p in parts]
    elif all(re.fullmatch(r"\d+", p) for p in parts):
        values = [int(p) for p in parts]
    else:
        return None
    if any(v >= K for v in values):
        return None
    return values
