"""Pure figure and table builders: data in, plotly figures / plain rows out. No Dash state here,
so everything is tested without a browser (tests/test_figures.py).

Map colours come from app/colours.py: per depth, one uint16 slot per point and a palette. The map
trace carries the slots as a typed array with a stepwise colour scale, so the browser recolours
for another depth by swapping the array and the scale (assets/recolour.js). Overlays (branch
members, neighbours, the searched entity, a selection) are drawn in saturated colours the map's
palette never uses, as filled markers with a dark outline, so they are visible on any map and at
any marker size (an open WebGL marker with a transparent colour draws nothing).
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.colours import PALETTE, DepthColours, step_colorscale
from hkd_core.tree import format_codes

# Traces of map_figure, in drawing order.
TRACE_POINTS, TRACE_MEMBERS, TRACE_NEIGHBOURS, TRACE_QUERY, TRACE_SELECTION, TRACE_LABELS = range(6)
OVERLAY_COLOURS = {"branch members": "#00e5ff", "neighbours": "#ff00aa", "searched entity": "#ff00aa",
                   "selection": "#ffea00"}
MAP_LABELS = 8


def typed_array(a: np.ndarray) -> dict:
    """plotly.js typed-array spec: {dtype, bdata} (base64 of the little-endian bytes)."""
    a = np.ascontiguousarray(a)
    dtypes = {np.dtype("uint8"): "u1", np.dtype("int32"): "i4", np.dtype("float32"): "f4",
              np.dtype("float64"): "f8", np.dtype("int16"): "i2", np.dtype("uint16"): "u2"}
    if a.dtype not in dtypes:
        raise ValueError(f"unsupported dtype for a typed array: {a.dtype}")
    return {"dtype": dtypes[a.dtype], "bdata": base64.b64encode(a.astype(a.dtype.newbyteorder("<")).tobytes()).decode("ascii")}


def marker_colours(colouring: DepthColours) -> dict:
    """The map trace's marker colour properties for one depth's colouring."""
    return {"color": typed_array(colouring.slots.astype(np.uint16)),
            "colorscale": step_colorscale(colouring.colours),
            "cmin": -0.5, "cmax": len(colouring.colours) - 0.5}


def depth_payload(colourings: list[DepthColours], xy: np.ndarray | None, labeller=None,
                  token: str = "") -> dict:
    """Everything the browser needs to recolour the map for any depth without the server: per
    depth the colour slots (base64 uint16), the palette, the legend (largest groups with their
    colour, size and branch label, and how many groups keep their parent's colour) and the map
    labels of the largest branches at their median position."""
    n = len(colourings[0].slots)
    depths = []
    for d, colouring in enumerate(colourings):
        groups = colouring.groups
        legend = []
        for item in colouring.legend:
            rows = np.flatnonzero(groups == item["group"])
            label = labeller(rows) if labeller is not None and d > 0 else ""
            legend.append([item["prefix"], item["size"], item["colour"], label])   # React escapes
        labels = {"x": [], "y": [], "text": []}
        if xy is not None and d > 0:
            shown = [it for it in colouring.legend[:MAP_LABELS] if it["size"] >= max(3, n // 50)]
            for item, entry in zip(shown, legend):
                rows = np.flatnonzero(groups == item["group"])
                labels["x"].append(float(np.median(xy[rows, 0])))
                labels["y"].append(float(np.median(xy[rows, 1])))
                labels["text"].append(esc(entry[3] or entry[0]))                     # plotly does not
        depths.append({"slots": typed_array(colouring.slots.astype(np.uint16))["bdata"],
                       "colours": colouring.colours, "legend": legend, "n_groups": colouring.n_groups,
                       "other_groups": colouring.other_groups, "other_points": colouring.other_points,
                       "labels": labels})
    return {"token": token, "n": int(n), "depths": depths}


def esc(text) -> str:
    """HTML-escape a name from data before plotly renders it (hover, legend, labels)."""
    return html.escape(str(text), quote=True)


def thumbnail_uri(images, row: int, size: int = 96) -> str | None:
    """Row ``row``'s image (``Dataset.extra["images"]``: pixel arrays or stored PNG thumbnails)
    as a PNG data URI for hover and tables, or None when the row has no image."""
    from hkd_core.images import data_uri, thumbnail_png

    png = thumbnail_png(images, row, size)
    return None if png is None else data_uri(png)


def hover_texts(names, labels, code_strings) -> list[str]:
    labels = labels if labels is not None else [None] * len(names)
    out = []
    for name, label, code in zip(names, labels, code_strings):
        parts = [f"<b>{esc(name)}</b>"]
        if label is not None:
            parts.append(f"label: {esc(label)}")
        if code is not None:
            parts.append(f"code: {esc(code)}")
        out.append("<br>".join(parts))
    return out


def map_figure(xy: np.ndarray, hover: list[str], colouring: DepthColours | None,
               title: str = "", marker_size: float | None = None,
               axis_titles: tuple[str, str] = ("", ""), labels: dict | None = None,
               plotly_hover: bool = True) -> go.Figure:
    """Scattergl map: trace 0 = all points coloured by ``colouring`` (None -> one colour); traces
    1-4 = overlays (branch members, neighbours, the searched entity, a selection), empty until
    filled; trace 5 = text labels of the largest branches (SVG, above the WebGL layer).
    ``plotly_hover=False`` leaves hovering to the page's tooltip (data sets with images)."""
    xy = np.asarray(xy, dtype=np.float32)
    n = len(xy)
    if colouring is not None and len(colouring.slots) != n:
        raise ValueError(f"colouring has {len(colouring.slots)} slots for {n} points")
    size = marker_size or (7 if n < 2000 else 5 if n < 20000 else 3)
    colours = (marker_colours(colouring) if colouring is not None else
               {"color": PALETTE[0]})
    fig = go.Figure()
    fig.add_trace(go.Scattergl(
        x=xy[:, 0], y=xy[:, 1], mode="markers", name="points", text=hover,
        customdata=list(range(n)),  # plain list: numpy customdata comes back null in clickData
        hovertemplate="%{text}<extra></extra>" if plotly_hover else None,
        hoverinfo=None if plotly_hover else "none", showlegend=False,
        marker=dict(size=size, showscale=False, opacity=0.85, line=dict(width=0), **colours),
    ))
    overlay_size = max(size + 4, 9)
    overlays = [("branch members", overlay_size, "circle"), ("neighbours", overlay_size + 3, "diamond"),
                ("searched entity", overlay_size + 9, "star"), ("selection", overlay_size, "square")]
    for name, osize, symbol in overlays:
        fig.add_trace(go.Scattergl(
            x=[], y=[], mode="markers", name=name, hoverinfo="skip", showlegend=True,
            marker=dict(size=osize, symbol=symbol, color=OVERLAY_COLOURS[name], opacity=1.0,
                        line=dict(color="#111111", width=1.5))))
    labels = labels or {"x": [], "y": [], "text": []}
    fig.add_trace(go.Scatter(x=labels["x"], y=labels["y"], text=labels["text"], mode="text",
                             name="branch labels", hoverinfo="skip", showlegend=False,
                             textfont=dict(size=12, color="#111"),
                             textposition="middle center"))
    fig.update_layout(
        title=dict(text=esc(title), x=0.01, font=dict(size=14)), margin=dict(l=10, r=10, t=36, b=10),
        plot_bgcolor="#fbfbfd", paper_bgcolor="rgba(0,0,0,0)", uirevision="map", dragmode="pan",
        legend=dict(orientation="h", yanchor="bottom", y=0, xanchor="right", x=1, bgcolor="rgba(255,255,255,0.7)"),
        xaxis=dict(showgrid=False, zeroline=False, showticklabels=False, title=axis_titles[0]),
        yaxis=dict(showgrid=False, zeroline=False, showticklabels=False, title=axis_titles[1],
                   scaleanchor="x", scaleratio=1),
        hoverlabel=dict(bgcolor="white", font_size=12),
    )
    return fig


def copy_overlays(fig: go.Figure, shown: dict | None) -> go.Figure:
    """Copy the overlay points (members, neighbours, query, selection) of the figure the page
    shows into ``fig`` (an export), so the file holds what the user sees."""
    data = (shown or {}).get("data") or []
    for trace in (TRACE_MEMBERS, TRACE_NEIGHBOURS, TRACE_QUERY, TRACE_SELECTION):
        if trace < len(data) and data[trace].get("x"):
            fig.data[trace].x = list(data[trace]["x"])
            fig.data[trace].y = list(data[trace]["y"])
    return fig


def add_group_legend(fig: go.Figure, depth_info: dict) -> go.Figure:
    """Legend entries for the coloured groups of one depth (payload depth entry), for static
    exports where the page's HTML legend is not there."""
    for prefix, size, colour, label in depth_info["legend"]:
        name = f"{prefix} {label}".strip() + f" ({size})"
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=esc(name), showlegend=True,
                                 marker=dict(size=10, color=colour), hoverinfo="skip"))
    if depth_info["other_groups"]:
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", showlegend=True, hoverinfo="skip", marker=dict(size=10, color="#ffffff"),
            name=f"+ {depth_info['n_groups'] - len(depth_info['legend'])} more groups, "
                 f"{depth_info['other_groups']} in their parent's colour"))
    fig.update_layout(legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"),
                      margin=dict(r=260))
    return fig


def selected_rows(selected: dict | None, n: int) -> np.ndarray:
    """Row indices of the map's points in a plotly selectedData (box / lasso) event: points of
    the points trace only (not overlays), valid indices, sorted, unique."""
    rows = []
    for point in (selected or {}).get("points") or []:
        if point.get("curveNumber") != TRACE_POINTS:
            continue
        r = point.get("customdata", point.get("pointIndex"))
        if isinstance(r, list):
            r = r[0] if r else None
        if isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= int(r) < n:
            rows.append(int(r))
    return np.unique(np.asarray(rows, dtype=np.int64))


def branches_spanned(codes: np.ndarray, depth: int, K: int | None = None) -> list[tuple[str, int]]:
    """The depth-``depth`` prefixes of ``codes`` with their counts, largest first."""
    from hkd_core.tree import format_code

    if len(codes) == 0:
        return []
    prefixes, counts = np.unique(np.asarray(codes)[:, :depth], axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [(format_code(prefixes[i], K), int(counts[i])) for i in order]


def overlay_points(xy: np.ndarray, rows) -> dict:
    """x/y lists of ``rows`` for an overlay trace."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    return {"x": xy[rows, 0].astype(float).tolist(), "y": xy[rows, 1].astype(float).tolist()}


def sunburst_figure(frame: pd.DataFrame, title: str = "", node_colours: dict | None = None,
                    node_labels: dict | None = None) -> go.Figure:
    """Sunburst of a tree.sunburst_frame (branchvalues='total': children sum to their parent).

    ``node_colours`` {node id: colour} (the map's hierarchical colours, so a branch has the same
    colour in both views; aggregates of small branches are grey) and ``node_labels`` {node id:
    branch label} shown on the slices and in the hover."""
    node_colours = node_colours or {}
    node_labels = node_labels or {}
    colours = ["#ffffff" if node_id == "root" else
               "#d9d9d9" if node_id.endswith("other") else node_colours.get(node_id, PALETTE[0])
               for node_id in frame["ids"]]
    names = [esc(node_labels.get(node_id, "")) for node_id in frame["ids"]]
    text = [f"{digit}: {_short(name)}" if name and node_id != "root" else digit
            for node_id, digit, name in zip(frame["ids"], frame["labels"], names)]
    fig = go.Figure(go.Sunburst(
        ids=frame["ids"], parents=frame["parents"], labels=text, values=frame["values"],
        branchvalues="total", marker=dict(colors=colours, line=dict(color="#fff", width=1)),
        customdata=np.column_stack([frame["prefix"], [esc(e) for e in frame["examples"]], names]).tolist(),
        hovertemplate=("prefix <b>%{customdata[0]}</b> · %{customdata[2]}<br>%{value} entities"
                       "<br>%{customdata[1]}<extra></extra>"),
        insidetextorientation="radial", maxdepth=3,
    ))
    fig.update_layout(title=dict(text=esc(title), x=0.01, font=dict(size=14)), margin=dict(l=5, r=5, t=36, b=5),
                      paper_bgcolor="rgba(0,0,0,0)")
    return fig


def _short(text: str, width: int = 22) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


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


IMAGE_COLUMN = {"field": "image", "headerName": "", "cellRenderer": "ImageCell", "sortable": False,
                "filter": False, "resizable": False, "minWidth": 48, "maxWidth": 48, "flex": 0}
TABLE_THUMBNAILS = 200           # rows of a table that get a thumbnail (each is ~1 KB of PNG)


def with_images(columns: list[dict], images: bool) -> list[dict]:
    """A table's column definitions, led by a thumbnail column when the data set has images."""
    return ([IMAGE_COLUMN] if images else []) + list(columns)


def add_thumbnails(table: list[dict], images, size: int = 32) -> list[dict]:
    """Put each row's thumbnail (a PNG data URI, field "image") into the first TABLE_THUMBNAILS
    rows of a table; ``images`` is the data set's extra["images"] or None."""
    if images is None:
        return table
    for item in table[:TABLE_THUMBNAILS]:
        item["image"] = thumbnail_uri(images, int(item["row"]), size) or ""
    return table


ENTITY_COLUMNS = [
    {"field": "name", "minWidth": 180, "filter": True}, {"field": "label", "filter": True},
    {"field": "code", "cellClass": "mono", "minWidth": 150},
    {"field": "distance", "headerName": "dist. to centre", "type": "numericColumn"},
]
NEIGHBOUR_COLUMNS = [
    {"field": "rank", "maxWidth": 70, "minWidth": 60}, {"field": "name", "minWidth": 130},
    {"field": "label", "minWidth": 80},
    {"field": "code", "cellClass": "mono", "minWidth": 100},
    {"field": "distance", "type": "numericColumn", "minWidth": 85, "maxWidth": 110},
    {"field": "shared", "headerName": "digits shared", "type": "numericColumn", "minWidth": 80,
     "maxWidth": 110, "headerTooltip": "leading code digits shared with the searched entity"},
]


def code_strings_for(codes, K) -> list[str]:
    return format_codes(codes, K)
