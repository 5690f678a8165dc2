"""Map colours for every prefix depth: pure functions, codes in, colour slots and palettes out.

Two schemes, both giving every depth N a ``DepthColours``: one small integer (uint16) per point
indexing a palette of hex colours, plus the legend of the groups shown.

* ``hierarchical_colours`` (the default). The code tree hands out hue: the depth-1 branches
  share the hue circle, each in proportion to the square root of its size; every branch splits
  its own hue interval among its children the same way, and a child's colour is its interval's
  midpoint, its lightness stepped among siblings. So a point's colour at depth N + 1 is a shade
  of its colour at depth N, and the small groups of a large branch read as that branch on the
  map (children share the middle ``CHILD_SPREAD`` of their parent's interval, so they stay near
  its hue). Every point is coloured at every depth: at most ``max_colours`` groups per depth get a
  shade of their own, the rest keep their parent's colour (said in the legend).
* ``rank_colours``: the earlier scheme, the 20 largest groups in 20 distinct colours and grey
  for the rest, re-ranked at each depth (the toggle in the page brings it back).
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# 20 well-separated colours (Kelly's list without its grey, plus two) and the grey of "other".
PALETTE = ("#0067a5", "#f38400", "#008856", "#be0032", "#875692", "#f3c300", "#a1caf1",
           "#882d17", "#8db600", "#e68fac", "#604e97", "#f99379", "#654522", "#dcd300",
           "#2b3d26", "#b3446c", "#c2b280", "#e25822", "#1fa6a6", "#3b3b98")
OTHER_GREY = "#c9c9c9"
ROOT_COLOUR = "#5b7db1"
N_TOP_DEFAULT = 20
MAX_COLOURS = 255
LEGEND_GROUPS = 12
# saturation stays below that of the overlay colours (app/figures.py), which stand out on any map
SATURATION = 0.62
LIGHTNESS_STEPS = (0.0, 0.13, -0.11)
HUE_SPAN = 0.92              # the first and last depth-1 branch must not meet around the circle
CHILD_SPREAD = 0.55          # children share this fraction of their parent's hue interval, centred
                             # on the parent's hue: they stay recognisably its shades
SCHEMES = ("hierarchical", "rank", "label", "digit", "share")
COLUMN_SCHEME = "column:"    # + a metadata column's name: colour by that column
SCHEME_LABELS = {"hierarchical": "code prefix: hierarchical colours", "rank": "code prefix: largest groups",
                 "label": "label", "digit": "code digit N alone", "share": "neighbour share at depth N"}
# a sequential palette (Viridis, sampled at 11 steps) for continuous values in [0, 1]
SEQUENTIAL = ("#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884",
              "#44bf70", "#7ad151", "#bddf26", "#fde725")


@dataclass
class DepthColours:
    slots: np.ndarray                      # (n,) uint16 index into colours
    colours: list[str]                     # hex colour per slot
    legend: list[dict] = field(default_factory=list)   # shown groups: prefix, size, colour, group
    n_groups: int = 1
    other_groups: int = 0                  # groups without a colour of their own
    other_points: int = 0
    groups: np.ndarray | None = None       # (n,) group id per row (the legend's "group")


def hsl_hex(h: float, s: float, l: float) -> str:
    r, g, b = colorsys.hls_to_rgb(h % 1.0, l, s)
    return "#{:02x}{:02x}{:02x}".format(*(int(round(255 * c)) for c in (r, g, b)))


def hex_hue(colour: str) -> float:
    """Hue in [0, 1) of a #rrggbb colour (tests compare what is drawn with what was meant)."""
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hls(r, g, b)[0]


def _prefix_groups(codes: np.ndarray, depth: int, previous=None):
    """Groups of the first ``depth`` digits in lexicographic prefix order: (group per row, size per
    group, first row of each group). ``previous`` = the group per row at depth - 1, so each depth
    costs one 1-d unique (group * K + digit) instead of a row-wise unique of the prefixes."""
    if depth == 0:
        return np.zeros(len(codes), dtype=np.int64), np.array([len(codes)]), np.array([0])
    if previous is None:
        previous = _prefix_groups(codes, depth - 1)[0] if depth > 1 else np.zeros(len(codes), dtype=np.int64)
    base = int(codes.max()) + 1 if codes.size else 1
    keys = previous.astype(np.int64) * base + codes[:, depth - 1]
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts, first


def _legend(groups_order, counts, first, slot_of_group, colours, codes, depth, K, own):
    from hkd_core.tree import format_code

    out = []
    for g in groups_order[:LEGEND_GROUPS]:
        out.append({"group": int(g), "size": int(counts[g]), "colour": colours[slot_of_group[g]],
                    "prefix": format_code(codes[first[g], :depth], K) if depth else "(all)",
                    "own_colour": bool(own[g])})
    return out


def hierarchical_colours(codes, max_depth: int | None = None, K: int | None = None,
                         max_colours: int = MAX_COLOURS) -> list[DepthColours]:
    """See the module docstring. Returns one DepthColours per depth 0..max_depth."""
    codes = np.asarray(codes)
    n, D = codes.shape
    max_depth = D if max_depth is None else min(max_depth, D)
    if not 1 <= max_colours <= 4096:
        raise ValueError(f"max_colours must be in [1, 4096], got {max_colours}")
    palette = [ROOT_COLOUR]                              # every colour handed out, by id
    out = [DepthColours(np.zeros(n, dtype=np.uint16), [ROOT_COLOUR],
                        [{"group": 0, "size": n, "colour": ROOT_COLOUR, "prefix": "(all)", "own_colour": True}],
                        groups=np.zeros(n, dtype=np.int32))]
    group = np.zeros(n, dtype=np.int64)                  # each row's group at the previous depth
    lo, hi = np.array([0.0]), np.array([HUE_SPAN])
    colour_of_group = np.array([0])                      # palette id per group
    for depth in range(1, max_depth + 1):
        parent_of_row = group
        group, counts, first = _prefix_groups(codes, depth, parent_of_row)
        parent = parent_of_row[first]                    # parent group of each group
        # groups come in prefix order, so the children of a parent are contiguous, digit order
        weight = np.sqrt(counts.astype(np.float64))
        frame = pd.DataFrame({"parent": parent, "w": weight})
        by_parent = frame.groupby("parent", sort=False)["w"]
        total = by_parent.transform("sum").to_numpy()
        before = (by_parent.cumsum() - frame["w"]).to_numpy()
        width = hi[parent] - lo[parent]
        if depth > 1:
            mid = (lo + hi) / 2
            lo, hi = mid - (hi - lo) * CHILD_SPREAD / 2, mid + (hi - lo) * CHILD_SPREAD / 2
            width = hi[parent] - lo[parent]
        g_lo = lo[parent] + width * before / total
        g_hi = g_lo + width * weight / total
        by_size = np.argsort(-counts, kind="stable")
        own = np.zeros(len(counts), dtype=bool)
        own[by_size[:max_colours]] = True
        # a group without a colour of its own keeps its parent's colour (a shade it belongs to)
        group_colour = colour_of_group[parent].copy()
        own_ids = np.flatnonzero(own)
        sibling = frame.groupby("parent", sort=False).cumcount().to_numpy()[own_ids]
        light = 0.5 + (np.asarray(LIGHTNESS_STEPS)[sibling % len(LIGHTNESS_STEPS)] if depth > 1 else 0.0)
        hues = (g_lo[own_ids] + g_hi[own_ids]) / 2
        group_colour[own_ids] = len(palette) + np.arange(len(own_ids))
        palette += [hsl_hex(h, SATURATION, float(v)) for h, v in zip(hues, np.broadcast_to(light, hues.shape))]
        used, slot_of_group = np.unique(group_colour, return_inverse=True)
        colours = [palette[c] for c in used]
        out.append(DepthColours(
            slot_of_group[group].astype(np.uint16), colours,
            _legend(by_size, counts, first, slot_of_group, colours, codes, depth, K, own),
            n_groups=len(counts), other_groups=int((~own).sum()),
            other_points=int(counts[~own].sum()), groups=group.astype(np.int32)))
        lo, hi, colour_of_group = g_lo, g_hi, group_colour
    return out


def rank_colours(codes, max_depth: int | None = None, K: int | None = None,
                 n_top: int = N_TOP_DEFAULT) -> list[DepthColours]:
    """The size-rank scheme: at each depth the ``n_top`` largest groups in PALETTE, others grey."""
    codes = np.asarray(codes)
    n, D = codes.shape
    if not 1 <= n_top <= len(PALETTE):
        raise ValueError(f"n_top must be in [1, {len(PALETTE)}], got {n_top}")
    max_depth = D if max_depth is None else min(max_depth, D)
    colours = list(PALETTE[:n_top]) + [OTHER_GREY]
    out = []
    group = None
    for depth in range(max_depth + 1):
        group, counts, first = _prefix_groups(codes, depth, group)
        by_size = np.argsort(-counts, kind="stable")
        rank = np.empty(len(counts), dtype=np.int64)
        rank[by_size] = np.arange(len(counts))
        slot_of_group = np.minimum(rank, n_top)
        own = rank < n_top
        out.append(DepthColours(slot_of_group[group].astype(np.uint16), colours,
                                _legend(by_size, counts, first, slot_of_group, colours, codes, depth, K, own),
                                n_groups=len(counts), other_groups=int((~own).sum()),
                                other_points=int(counts[~own].sum()), groups=group.astype(np.int32)))
    return out


def categorical_colours(values, n_top: int = N_TOP_DEFAULT) -> DepthColours:
    """One colour per category (the ``n_top`` commonest in PALETTE, the rest grey): for labels or
    any categorical column."""
    values = np.asarray(values, dtype=object).astype(str)
    cats, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    by_size = np.argsort(-counts, kind="stable")
    rank = np.empty(len(cats), dtype=np.int64)
    rank[by_size] = np.arange(len(cats))
    n_top = min(n_top, len(PALETTE))
    slot_of = np.minimum(rank, n_top)
    colours = list(PALETTE[:n_top]) + [OTHER_GREY]
    legend = [{"group": int(g), "size": int(counts[g]), "colour": colours[slot_of[g]], "prefix": str(cats[g]),
               "own_colour": bool(rank[g] < n_top)} for g in by_size[:LEGEND_GROUPS]]
    return DepthColours(slot_of[inverse].astype(np.uint16), colours, legend, n_groups=len(cats),
                        other_groups=int(max(0, len(cats) - n_top)),
                        other_points=int(counts[rank >= n_top].sum()), groups=inverse.astype(np.int32))


def label_colours(labels, max_depth: int) -> list[DepthColours]:
    """Colour by label, the same at every depth (the slider then changes nothing)."""
    c = categorical_colours(labels)
    return [c] * (max_depth + 1)


def digit_colours(codes, max_depth: int | None = None, K: int | None = None) -> list[DepthColours]:
    """Depth N: the value of digit N alone (which of the K values each point takes there)."""
    codes = np.asarray(codes)
    n, D = codes.shape
    max_depth = D if max_depth is None else min(max_depth, D)
    out = [categorical_colours(np.zeros(n, dtype=int))]
    for depth in range(1, max_depth + 1):
        c = categorical_colours(codes[:, depth - 1])
        for item in c.legend:
            item["prefix"] = f"digit {depth} = {item['prefix']}"
        out.append(c)
    return out


def share_colours(codes, knn: np.ndarray, max_depth: int | None = None) -> list[DepthColours]:
    """Depth N: each point's share of its nearest neighbours (``knn`` rows) that keep its first-N
    prefix, in 11 steps of a sequential palette; the legend says how many points sit at each."""
    codes = np.asarray(codes)
    n, D = codes.shape
    max_depth = D if max_depth is None else min(max_depth, D)
    out, group = [], None
    for depth in range(max_depth + 1):
        group, _, _ = _prefix_groups(codes, depth, group)
        share = (group[knn] == group[:, None]).mean(1)
        slots = np.rint(share * 10).astype(np.uint16)
        counts = np.bincount(slots, minlength=11)
        legend = [{"group": int(k), "size": int(counts[k]), "colour": SEQUENTIAL[k],
                   "prefix": f"share {k / 10:.1f}", "own_colour": True}
                  for k in range(10, -1, -1) if counts[k]]
        out.append(DepthColours(slots, list(SEQUENTIAL), legend, n_groups=len(legend),
                                groups=slots.astype(np.int32)))
    return out


def continuous_colours(values) -> DepthColours:
    """A numeric column in 11 equal-width steps of SEQUENTIAL from its minimum to its maximum;
    missing values (NaN) in grey. The legend gives each step's value range."""
    v = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(v)
    colours = list(SEQUENTIAL) + [OTHER_GREY]
    steps = len(SEQUENTIAL)
    if missing.all():
        slots = np.full(len(v), steps, dtype=np.uint16)
        lo = hi = float("nan")
    else:
        lo, hi = float(np.min(v[~missing])), float(np.max(v[~missing]))
        width = (hi - lo) / steps if hi > lo else 1.0
        slots = np.where(missing, steps, np.clip(np.floor((np.nan_to_num(v, nan=lo) - lo) / width), 0, steps - 1))
        slots = slots.astype(np.uint16)
    counts = np.bincount(slots, minlength=steps + 1)
    legend = []
    for k in range(steps - 1, -1, -1):
        if counts[k]:
            a = lo + (hi - lo) * k / steps
            b = lo + (hi - lo) * (k + 1) / steps
            legend.append({"group": k, "size": int(counts[k]), "colour": SEQUENTIAL[k],
                           "prefix": f"{a:.4g} to {b:.4g}" if hi > lo else f"{lo:.4g}", "own_colour": True})
    if counts[steps]:
        legend.append({"group": steps, "size": int(counts[steps]), "colour": OTHER_GREY,
                       "prefix": "(missing)", "own_colour": True})
    return DepthColours(slots, colours, legend, n_groups=len(legend), groups=slots.astype(np.int32))


def column_colours(values, max_depth: int) -> list[DepthColours]:
    """Colour by a metadata column, the same at every depth: categories for text, steps of a
    sequential palette for numbers."""
    numeric = isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.number)
    c = continuous_colours(values) if numeric else categorical_colours(values)
    return [c] * (max_depth + 1)


def scheme_options(labels: bool, columns) -> list[tuple[str, str]]:
    """(value, text) of every colouring a data set offers: the code schemes, label when it has
    labels, and one per metadata column."""
    out = [(key, text) for key, text in SCHEME_LABELS.items() if labels or key != "label"]
    return out + [(COLUMN_SCHEME + name, f"column {name}") for name in columns]


def scheme_label(scheme: str) -> str:
    if scheme.startswith(COLUMN_SCHEME):
        return f"column {scheme[len(COLUMN_SCHEME):]}"
    return SCHEME_LABELS[scheme]


def depth_colours(codes, scheme: str = "hierarchical", max_depth: int | None = None,
                  K: int | None = None, labels=None, knn=None, columns=None) -> list[DepthColours]:
    """The colouring of every depth for a scheme (SCHEMES, or "column:<name>" with the data
    set's metadata ``columns``); ``labels`` for "label", the neighbour indices ``knn`` (n, k)
    for "share"."""
    if isinstance(scheme, str) and scheme.startswith(COLUMN_SCHEME):
        name = scheme[len(COLUMN_SCHEME):]
        if not columns or name not in columns:
            raise ValueError(f"this data set has no metadata column {name!r}")
        codes = np.asarray(codes)
        return column_colours(columns[name], codes.shape[1] if max_depth is None else min(max_depth, codes.shape[1]))
    if scheme not in SCHEMES:
        raise ValueError(f"colour scheme must be one of {SCHEMES}, got {scheme!r}")
    if scheme == "hierarchical":
        return hierarchical_colours(codes, max_depth=max_depth, K=K)
    if scheme == "rank":
        return rank_colours(codes, max_depth=max_depth, K=K)
    if scheme == "digit":
        return digit_colours(codes, max_depth=max_depth, K=K)
    codes = np.asarray(codes)
    depth = codes.shape[1] if max_depth is None else min(max_depth, codes.shape[1])
    if scheme == "label":
        if labels is None:
            raise ValueError("this data set has no labels to colour by")
        return label_colours(labels, depth)
    if knn is None:
        raise ValueError("colouring by neighbour share needs the neighbour indices")
    return share_colours(codes, knn, depth)


def step_colorscale(colours: list[str]) -> list:
    """Plotly colour scale drawing value k (with cmin=-0.5, cmax=len-0.5) in colours[k]."""
    m = len(colours)
    if m == 1:
        return [[0.0, colours[0]], [1.0, colours[0]]]
    scale = []
    for k, c in enumerate(colours):
        scale += [[k / m, c], [(k + 1) / m, c]]
    return scale
