"""Pure figure and table builders: data in, plotly figures / plain rows out. No Dash state here,
so everything is tested without a browser (tests/test_figures.py).

Map colours: a point's colour is the rank of its prefix group at the current depth (0 = largest
group), clipped to ``n_top``: the ``n_top`` largest groups get palette colours, the rest share
grey. The map trace carries these small integers as a uint8 array with a stepwise colour scale,
so the browser recolours by swapping one typed array (see assets/recolour.js).
"""
from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hkd_core.tree import format_codes, group_table, prefix_groups

# 20 well-separated colours (Kelly's list without its grey, plus two) and the grey of "other".
PALETTE = ("#0067a5", "#f38400", "#008856", "#be0032", "#875692", "#f3c300", "#a1caf1",
           "#882d17", "#8db600", "#e68fac", "#604e97", "#f99379", "#654522", "#dcd300",
           "#2b3d26", "#b3446c", "#c2b280", "#e25822", "#1fa6a6", "#3b3b98")
OTHER_GREY = "#c9c9c9"
N_TOP_DEFAULT = 20

# Overlay traces drawn above the points (indices in map_figure's data).
TRACE_POINTS, TRACE_MEMBERS, TRACE_NEIGHBOURS, TRACE_QUERY = 0, 1, 2, 3


def colour_indices(groups: np.ndarray, n_top: int = N_TOP_DEFAULT) -> np.ndarray:
    """Group ranks -> colour slots 0..n_top (n_top = grey 'other'), as uint8."""
    if not 1 <= n_top <= min(len(PALETTE), 254):
        raise ValueError(f"n_top must be in [1, {len(PALETTE)}], got {n_top}")
    return np.minimum(np.asarray(groups), n_top).astype(np.uint8)


def discrete_colorscale(n_top: int = N_TOP_DEFAULT) -> list:
    """Stepwise scale: value k in 0..n_top maps to PALETTE[k] (n_top -> grey), given
    cmin=-0.5, cmax=n_top+0.5."""
    colours = list(PALETTE[:n_top]) + [OTHER_GREY]
    m = len(colours)
    scale = []
    for k, c in enumerate(colours):
        scale += [[k / m, c], [(k + 1) / m, c]]
    return scale


def slot_colours(slots, n_top: int = N_TOP_DEFAULT) -> list[str]:
    """Colour strings of colour slots (what the stepwise scale draws)."""
    colours = list(PALETTE[:n_top]) + [OTHER_GREY]
    return [colours[int(s)] for s in slots]


def typed_array(a: np.ndarray) -> dict:
    """plotly.js typed-array spec: {dtype, bdata} (base64 of the little-endian bytes)."""
    a = np.ascontiguousarray(a)
    dtypes = {np.dtype("uint8"): "u1", np.dtype("int32"): "i4", np.dtype("float32"): "f4",
              np.dtype("float64"): "f8", np.dtype("int16"): "i2", np.dtype("uint16"): "u2"}
    if a.dtype not in dtypes:
        raise ValueError(f"unsupported dtype for a typed array: {a.dtype}")
    return {"dtype": dtypes[a.dtype], "bdata": base64.b64encode(a.tobytes()).decode("ascii")}


def depth_payload(codes, max_depth: int | None = None, n_top: int = N_TOP_DEFAULT,
                  K: int | None = None, token: str = "") -> dict:
    """Everything the browser needs to recolour the map for any depth without the server:
    per depth the colour slots of all points (base64 uint8) and the legend (top groups'
    prefix and size, and how many points are 'other')."""
    codes = np.asarray(codes)
    D = codes.shape[1]
    max_depth = D if max_depth is None else min(max_depth, D)
    depths, legend = [], []
    for d in range(max_depth + 1):
        groups = prefix_groups(codes, d)
        depths.append(typed_array(colour_indices(groups, n_top))["bdata"])
        table = group_table(codes, d, K)
        top = table.head(n_top)
        legend.append({
            "groups": [[p if p else "(all)", int(s)] for p, s in zip(top["prefix"], top["size"])],
            "n_groups": int(len(table)),
            "other": int(table["size"].iloc[n_top:].sum()),
        })
    return {"token": token, "n": int(len(codes)), "n_top": n_top, "palette": list(PALETTE[:n_top]),
            "grey": OTHER_GREY, "depths": depths, "legend": legend}


def hover_texts(names, labels, code_strings) -> list[str]:
    labels = labels if labels is not None else [None] * len(names)
    out = []
    for name, label, code in zip(names, labels, code_strings):
        parts = [f"<b>{name}</b>"]
        if label is not None:
            parts.append(f"label: {label}")
        if code is not None:
            parts.append(f"code: {code}")
        out.append("<br>".join(parts))
    return out


def map_figure(xy: np.ndarray, hover: list[str], slots: np.ndarray | None,
               n_top: int = N_TOP_DEFAULT, title: str = "", marker_size: float | None = None,
               axis_titles: tuple[str, str] = ("", "")) -> go.Figure:
    """Scattergl map: trace 0 = all points coloured by colour slot (None -> one colour);
    traces 1-3 = empty overlays for branch members, neighbours and the searched entity."""
    xy = np.asarray(xy, dtype=np.float32)
    n = len(xy)
    if slots is not None and len(slots) != n:
        raise ValueError(f"slots has {len(slots)} entries for {n} points")
    size = marker_size or (7 if n < 2000 else 5 if n < 20000 else 3)
    colour = (typed_array(np.asarray(slots, dtype=np.uint8)) if slots is not None
              else typed_array(np.zeros(n, dtype=np.uint8)))
    fig = go.Figure()
    fig.add_trace(go.Scattergl(
        x=xy[:, 0], y=xy[:, 1], mode="markers", name="points", text=hover,
        customdata=list(range(n)),  # plain list: numpy customdata comes back null in clickData
        hovertemplate="%{text}<extra></extra>", showlegend=False,
        marker=dict(size=size, color=colour, colorscale=discrete_colorscale(n_top), cmin=-0.5,
                    cmax=n_top + 0.5, showscale=False, opacity=0.85, line=dict(width=0)),
    ))
    overlays = [
        ("branch members", dict(size=size + 4, color="rgba(0,0,0,0)", line=dict(color="#111", width=1.5)), "circle-open"),
        ("neighbours", dict(size=size + 6, color="rgba(0,0,0,0)", line=dict(color="#d7263d", width=2)), "diamond-open"),
        ("searched entity", dict(size=size + 12, color="#d7263d", line=dict(color="#fff", width=1)), "star"),
    ]
    for name, marker, symbol in overlays:
        fig.add_trace(go.Scattergl(x=[], y=[], mode="markers", name=name, marker=dict(marker, symbol=symbol),
                                   hoverinfo="skip", showlegend=True))
    fig.update_layout(
        title=dict(text=title, x=0.01, font=dict(size=14)), margin=dict(l=10, r=10, t=36, b=10),
        plot_bgcolor="#fbfbfd", paper_bgcolor="rgba(0,0,0,0)", uirevision="map", dragmode="pan",
        legend=dict(orientation="h", yanchor="bottom", y=0, xanchor="right", x=1, bgcolor="rgba(255,255,255,0.7)"),
        xaxis=dict(showgrid=False, zeroline=False, showticklabels=False, title=axis_titles[0]),
        yaxis=dict(showgrid=False, zeroline=False, showticklabels=False, title=axis_titles[1],
                   scaleanchor="x", scaleratio=1),
        hoverlabel=dict(bgcolor="white", font_size=12),
    )
    return fig


def overlay_points(xy: np.ndarray, rows) -> dict:
    """x/y lists of ``rows`` for an overlay trace."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    return {"x": xy[rows, 0].astype(float).tolist(), "y": xy[rows, 1].astype(float).tolist()}


def sunburst_figure(frame: pd.DataFrame, title: str = "") -> go.Figure:
    """Sunburst of a tree.sunburst_frame (branchvalues='total': children sum to their parent)."""
    colours = []
    top_rank = {}
    first = frame[frame["depth"] == 1].sort_values("values", ascending=False)
    for rank, node in enumerate(first["ids"]):
        top_rank[node] = rank
    for node_id, depth in zip(frame["ids"], frame["depth"]):
        if node_id == "root":
            colours.append("#ffffff")
            continue
        head = node_id.split(".")[0]
        rank = top_rank.get(head, len(PALETTE))
        colours.append(PALETTE[rank] if rank < len(PALETTE) and not node_id.endswith("other") else OTHER_GREY)
    fig = go.Figure(go.Sunburst(
        ids=frame["ids"], parents=frame["parents"], labels=frame["labels"], values=frame["values"],
        branchvalues="total", marker=dict(colors=colours, line=dict(color="#fff", width=1)),
        customdata=np.column_stack([frame["prefix"], frame["examples"]]).tolist(),
        hovertemplate="prefix <b>%{customdata[0]}</b><br>%{value} entities<br>%{customdata[1]}<extra></extra>",
        insidetextorientation="radial", maxdepth=3,
    ))
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=14)), margin=dict(l=5, r=5, t=36, b=5),
                      paper_bgcolor="rgba(0,0,0,0)")
    return fig


def message_figure(text: str) -> go.Figure:
    """An empty figure that shows a message (while data load, or when there is nothing to show)."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, font=dict(size=14, color="#666"), x=0.5, y=0.5,
                       xref="paper", yref="paper")
    fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False), paper_bgcolor="rgba(0,0,0,0)",
                      plot_bgcolor="rgba(0,0,0,0)", margin=dict(l=10, r=10, t=10, b=10))
    return fig


# -- tables ----------------------------------------------------------------------------------

def metrics_table(results: list[tuple[str, dict]], max_depth: int = 8) -> tuple[list[dict], list[dict]]:
    """(columnDefs, rowData) for the metrics grid: per model the neighbour-sharing rows
    (KNN 5/10/15/20) and the search-space reduction row, N = 1..max_depth as columns.
    ``results`` = [(model label, hkd_core.metrics.evaluate(...) dict)], current model first."""
    cols = [{"field": "model", "pinned": "left", "minWidth": 150},
            {"field": "measure", "pinned": "left", "minWidth": 110}]
    cols += [{"field": f"N{N}", "headerName": f"N={N}", "type": "numericColumn", "maxWidth": 95}
             for N in range(1, max_depth + 1)]
    rows = []
    for label, ev in results:
        if not ev:
            continue
        share = ev.get("share", {})
        for k in sorted(share, key=lambda s: int(s)):
            rows.append({"model": label, "measure": f"share KNN {k}",
                         **{f"N{i + 1}": round(float(v), 4) for i, v in enumerate(share[k][:max_depth])}})
        red = ev.get("reduction")
        if red is not None:
            rows.append({"model": label, "measure": "reduction",
                         **{f"N{i + 1}": round(float(v), 4) for i, v in enumerate(red[:max_depth])}})
        mse = ev.get("reconstruction_mse")
        if mse is not None:
            rows.append({"model": label, "measure": "recon. MSE", "N1": round(float(mse), 6)})
    return cols, rows


def entity_rows(rows, names, labels, code_strings, distances) -> list[dict]:
    """Entity-table rows for branch members, closest to the branch centre first."""
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(distances, kind="stable")
    out = []
    for o in order:
        r = int(rows[o])
        out.append({"name": names[r], "label": labels[r] if labels is not None else "",
                    "code": code_strings[r], "distance": round(float(distances[o]), 5), "row": r})
    return out


def neighbour_rows(query: int, nbr_rows, distances, shared, names, labels, code_strings) -> list[dict]:
    """Neighbour-table rows (paper Table 4 style): the query first (rank 0), then its nearest
    entities with their codes, input-space distance and number of leading digits shared."""
    out = [{"rank": 0, "name": names[query], "label": labels[query] if labels is not None else "",
            "code": code_strings[query], "distance": 0.0, "shared": len(code_strings[query]) if code_strings[query] else 0,
            "row": int(query)}]
    for rank, (r, d, s) in enumerate(zip(nbr_rows, distances, shared), start=1):
        r = int(r)
        out.append({"rank": rank, "name": names[r], "label": labels[r] if labels is not None else "",
                    "code": code_strings[r], "distance": round(float(d), 5), "shared": int(s), "row": r})
    return out


ENTITY_COLUMNS = [
    {"field": "name", "minWidth": 180, "filter": True}, {"field": "label", "filter": True},
    {"field": "code", "cellClass": "mono", "minWidth": 150},
    {"field": "distance", "headerName": "dist. to centre", "type": "numericColumn"},
]
NEIGHBOUR_COLUMNS = [
    {"field": "rank", "maxWidth": 80}, {"field": "name", "minWidth": 180}, {"field": "label"},
    {"field": "code", "cellClass": "mono", "minWidth": 150},
    {"field": "distance", "type": "numericColumn"},
    {"field": "shared", "headerName": "leading codes shared", "type": "numericColumn"},
]


def codes_frame(names, labels, codes, xy, code_strings=None) -> pd.DataFrame:
    """Codes with map coordinates: one row per entity, one column per digit (for export)."""
    codes = np.asarray(codes)
    df = pd.DataFrame({"name": list(names)})
    if labels is not None:
        df["label"] = list(labels)
    if xy is not None:
        df["x"] = np.asarray(xy)[:, 0]
        df["y"] = np.asarray(xy)[:, 1]
    if code_strings is not None:
        df["code"] = code_strings
    for d in range(codes.shape[1]):
        df[f"c{d + 1}"] = codes[:, d].astype(np.int16)
    return df


def code_strings_for(codes, K) -> list[str]:
    return format_codes(codes, K)
