"""The page's inputs and their limits, in one table: the layout draws the inputs from it, the URL
parser (app/urlstate.py) and every callback check values against it on the server, so a request
sent without the page (or a URL typed by hand) meets the same limits as the sliders.

Every check raises :class:`InputError` whose text is meant for the page as is.
"""
from __future__ import annotations

import math

# control key -> (type, low, high, label): the same bounds for every coder
CONTROL_LIMITS = {
    "K": (int, 2, 256, "K (code values)"),
    "D": (int, 1, 64, "D (code length)"),
    "alpha": (float, 0, 100, "α (reconstruction)"),
    "beta": (float, 0, 100, "β (KL)"),
    "perplexity": (float, 2, 200, "perplexity"),
    "epochs": (int, 1, 5000, "epochs"),
    "kmeans_exemplars": (int, 0, 5000, "k-means exemplars"),
    "random_exemplars": (int, 0, 5000, "random exemplars"),
}
MAX_DEPTH = 64
MAX_KNN = 100
MAX_TEXT = 300


class InputError(ValueError):
    """A value from the page (or from a hand-made request) that the server refuses."""


def as_number(value, typ, low, high, label: str):
    """``value`` as ``typ`` within [low, high]; bools, NaN, text and fractions for a whole
    number are refused with a message naming the control."""
    kind = "a whole number" if typ is int else "a number"
    if isinstance(value, bool) or value is None:
        raise InputError(f"{label} must be {kind} in [{low}, {high}], got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{label} must be {kind} in [{low}, {high}], got {str(value)[:40]!r}") from None
    if not math.isfinite(number) or not low <= number <= high or (typ is int and number != int(number)):
        raise InputError(f"{label} must be {kind} in [{low}, {high}], got {str(value)[:40]}")
    return int(number) if typ is int else number


def check_controls(controls: dict) -> dict:
    """Every model control within its limits (typed), or InputError for the first that is not."""
    out = dict(controls)
    for key, (typ, low, high, label) in CONTROL_LIMITS.items():
        if key in controls:
            out[key] = as_number(controls[key], typ, low, high, label)
    return out


def check_depth(depth, D: int) -> int:
    """The depth slider's value (None: 1) within [0, D]."""
    return 1 if depth is None else as_number(depth, int, 0, min(D, MAX_DEPTH), "prefix depth N")


def check_knn(k) -> int:
    return as_number(10 if k is None else k, int, 1, MAX_KNN, "k (neighbours)")


def check_choice(value, choices, label: str):
    if not isinstance(value, str) or value not in choices:
        shown = repr(value)[:60]
        raise InputError(f"unknown {label} {shown}; choose one of {', '.join(map(str, list(choices)[:12]))}")
    return value
