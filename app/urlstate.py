"""The view in the URL: what a reload or a pasted link restores.

The page writes its state into the query string (``?dataset=mammals&model=hkm&K=2&depth=3&
projection=tsne&colour=hierarchical&branch=0.1&entity=dog.n.01``) as it changes, with
``history.replaceState`` (assets/urlstate.js), and the server reads it back when it builds the
page (app/__init__.py) - so nothing is trusted: every value is checked here and a bad or
unknown one is dropped, never passed on.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode

from app.controls import CONTROL_LIMITS, MAX_TEXT

# URL key -> (type, low, high): the page's own limits (app/controls.py)
NUMBER_KEYS = {key: (typ, low, high) for key, (typ, low, high, _) in CONTROL_LIMITS.items()}
COLUMN = re.compile(r"^column:[^\x00-\x1f]{1,100}$")
BRANCH = re.compile(r"^(root|\d{1,4}(\.\d{1,4}){0,63}(\.other)?|other)$")


def parse_state(query: str, datasets, models, projections, schemes) -> dict:
    """A clean view state from a query string; unknown keys and bad values are left out."""
    raw = {k: v[-1] for k, v in parse_qs(query or "", keep_blank_values=False).items() if v}
    out: dict = {}
    if raw.get("dataset") in datasets:
        out["dataset"] = raw["dataset"]
    if raw.get("model") in models:
        out["model"] = raw["model"]
    if raw.get("projection") in projections:
        out["projection"] = raw["projection"]
    colour = raw.get("colour")
    if colour in schemes or (colour and COLUMN.match(colour)):
        out["colour"] = colour        # a column's name is checked against the data set when drawn
    for key, (typ, low, high) in NUMBER_KEYS.items():
        try:
            value = typ(raw[key]) if typ is float else int(raw[key])
        except (KeyError, ValueError, TypeError):
            continue
        if low <= value <= high and value == value:        # not NaN
            out[key] = value
    try:
        depth = int(raw["depth"])
        if 0 <= depth <= 64:
            out["depth"] = depth
    except (KeyError, ValueError):
        pass
    if "branch" in raw and BRANCH.match(raw["branch"]):
        out["branch"] = raw["branch"]
    if "entity" in raw and 0 < len(raw["entity"]) <= MAX_TEXT:
        out["entity"] = raw["entity"]
    return out


def state_query(state: dict) -> str:
    """The query string of a state (keys in a fixed order, empty values left out)."""
    order = ["dataset", "model", *NUMBER_KEYS, "projection", "depth", "colour", "branch", "entity"]
    return urlencode([(k, state[k]) for k in order if state.get(k) not in (None, "")])
