"""The map view and what is drawn for a result: the map, its code tree, metrics, trade-off chart and
the tables' columns; the depth slider's browser-side recolouring; the hover thumbnail; the find box
and the box / lasso selection, both drawn as overlays on the map.

    render     result / map method / colour scheme / finished slow map -> map, code tree, metrics,
               depth slider, trade-off chart, table columns, map-groups (the browser's recolour data)
    recolour   (browser) depth slider -> map colours, legend and labels: assets/recolour.js
    on_hover   map hover -> a thumbnail tooltip (image data sets)
    on_find    find box (name, label or code prefix) -> entity table, matches outlined on the map
    on_select  box / lasso selection -> entity table, selection overlay, the branches it spans
"""
from __future__ import annotations

import pandas as pd
from dash import ClientsideFunction, Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from app import figures as F
from app.colours import COLUMN_SCHEME, rank_colours, scheme_label
from app.controls import check_depth
from app.state import Workspace
from app.views.common import (MAP_VIEW_STATE, SUNBURST_DEPTH, colouring_at, describe, map_method, map_payload,
                              members_table, metrics_rows_for, overlay_context, tree_colours_and_labels, view_data,
                              view_hover)
from hkd_core.benchmark.report import tradeoff_figure
from hkd_core.projection import PROJECTION_LABELS


def table_columns(ds) -> tuple[list, list]:
    """Column definitions of the entity and neighbour tables: with thumbnails for image data."""
    images = ds.extra.get("images") is not None
    return F.with_images(F.ENTITY_COLUMNS, images), F.with_images(F.NEIGHBOUR_COLUMNS, images)


def register(app, ws: Workspace):
    # -- render the views for a result ----------------------------------------------------------------
    @app.callback(
        Output("map", "figure"), Output("map-groups", "data"), Output("code-tree", "figure"),
        Output("metrics-table", "columnDefs"), Output("metrics-table", "rowData"),
        Output("depth-slider", "max"), Output("depth-slider", "marks"), Output("depth-slider", "value"),
        Output("entity-table", "rowData"), Output("neighbour-table", "rowData"),
        Output("selection-info", "children"), Output("map-caption", "children"), Output("tradeoff", "figure"),
        Output("entity-table", "columnDefs"), Output("neighbour-table", "columnDefs"),
        Input("result-key", "data"), Input("projection-select", "value"), Input("colour-scheme", "value"),
        Input("projection-ready", "data"),
        State("dataset-select", "value"), State("depth-slider", "value"),
    )
    def render(result, method, scheme, ready, dataset_key, depth):
        if not result:
            raise PreventUpdate
        if ctx.triggered_id == "projection-select" and result.get("dataset") != dataset_key:
            raise PreventUpdate  # the new data set's result is on its way
        ds = ws.dataset(result["dataset"])
        method = map_method(ws, ds, method)
        if ctx.triggered_id == "projection-ready" and (not ready or ready.get("dataset") != result["dataset"]
                                                       or ready.get("method") != method):
            raise PreventUpdate  # a map for another view finished
        wanted = method
        method, xy = ws.projection_now(result["dataset"], wanted)
        title = f"{ds.name} · {PROJECTION_LABELS[method]}"
        if method != wanted:
            title += f" (the {PROJECTION_LABELS[wanted]} map of {ds.n:,} points is being computed in the background)"
        if not result.get("key"):
            # No codes yet: colour by label so the page is useful while training runs.
            labels = ds.labels or ["(no label)"] * ds.n
            label_codes = pd.factorize(pd.Series(labels))[0].reshape(-1, 1)
            fig = F.map_figure(xy, F.hover_texts(ds.names, ds.labels, [None] * ds.n),
                               rank_colours(label_codes, max_depth=1)[1])
            return (fig, None, F.message_figure("Codes are being trained…"), [], [], 16, no_update, no_update,
                    [], [], "", title + " · coloured by label (codes are being trained)",
                    F.message_figure("Codes are being trained…"), *table_columns(ds))
        v = view_data(ws, result["key"])
        D = v["codes"].shape[1]
        depth = check_depth(depth, D)
        scheme = scheme or "hierarchical"
        missing = None                   # a colouring the data set cannot give: say so in the caption
        if scheme == "label" and ds.labels is None:
            scheme, missing = "hierarchical", "this data set has no labels"
        elif scheme.startswith(COLUMN_SCHEME) and scheme[len(COLUMN_SCHEME):] not in ds.metadata_columns():
            scheme, missing = "hierarchical", f"this data set has no column {scheme[len(COLUMN_SCHEME):]!r}"
        label = f"{v['meta']['model']}" + (" (preview)" if result.get("preview") else "")
        payload = map_payload(ws, v, scheme, method, xy)
        fig = F.map_figure(xy, view_hover(ws, v), colouring_at(ws, v, scheme, depth),
                           plotly_hover="images" not in (ds.extra or {}),
                           labels=payload["depths"][depth]["labels"])
        node_colours, node_labels = tree_colours_and_labels(ws, v, scheme)
        tree = F.sunburst_figure(v["frame"], title=f"{label}: first {min(SUNBURST_DEPTH, D)} code digits",
                                 node_colours=node_colours, node_labels=node_labels)
        compared = metrics_rows_for(ws, result["dataset"], result["key"])
        columns, rows = F.metrics_table([(label, m) for label, m, _, _ in compared])
        shown = next((label for label, _, current, _ in compared if current), None)
        tradeoff = tradeoff_figure({label: {"share": m["share"], "reduction": m["reduction"],
                                            "baseline": not current} for label, m, current, _ in compared},
                                   highlight=shown, height=380)
        marks = {i: str(i) for i in range(0, D + 1)} if D <= 16 else {i: str(i) for i in range(0, D + 1, 4)}
        return (fig, payload, tree, columns, rows, D, marks, depth, [], [], "",
                f"{title} · colour = " + (f"shared first-N code prefix of {describe(v['meta'])}"
                                          if scheme in ("hierarchical", "rank") else scheme_label(scheme)
                                          + f" ({describe(v['meta'])})")
                + (" (preview)" if result.get("preview") else "")
                + (f" · {missing}" if missing else ""),
                tradeoff, *table_columns(ds))

    # -- depth slider: browser-only recolour ------------------------------------------------------------
    app.clientside_callback(
        ClientsideFunction(namespace="hkd", function_name="recolour"),
        Output("map-legend", "children"), Output("depth-label", "children"),
        Input("depth-slider", "value"), Input("map-groups", "data"),
    )

    # -- image data sets: a thumbnail in the map's hover --------------------------------------------
    @app.callback(
        Output("map-tooltip", "show"), Output("map-tooltip", "bbox"), Output("map-tooltip", "children"),
        Input("map", "hoverData"), State("result-key", "data"),
        prevent_initial_call=True,
    )
    def on_hover(hover, result):
        if not hover or not result:
            return False, no_update, no_update
        ds = ws.dataset(result["dataset"])
        images = (ds.extra or {}).get("images")
        point = hover["points"][0]
        if images is None or point.get("curveNumber") != F.TRACE_POINTS:
            return False, no_update, no_update
        row = int(point.get("customdata", point.get("pointIndex", 0)))
        code = ""
        if result.get("key"):
            code = view_data(ws, result["key"])["strings"][row]
        label = ds.labels[row] if ds.labels is not None else ""
        children = html.Div(className="thumb", children=[
            html.Img(src=F.thumbnail_uri(images, row), alt=ds.names[row], className="thumb-img")
            if images[row] is not None else html.Div("(no image)", className="muted small"),
            html.Div(ds.names[row], className="thumb-name"),   # text children: React escapes them
            html.Div(f"label {label}" if label else "", className="muted small"),
            html.Div(f"code {code}" if code else "", className="mono small"),
        ])
        return True, point.get("bbox"), children

    # -- find box: name, label or code prefix -> table and highlighted matches ------------------
    @app.callback(
        Output("entity-table", "rowData", allow_duplicate=True), Output("map", "figure", allow_duplicate=True),
        Output("find-info", "children"),
        Input("find-box", "value"),
        *MAP_VIEW_STATE,
        prevent_initial_call=True,
    )
    def on_find(query, result, method, depth, scheme):
        from app.find import find_entities

        if not result or not result.get("key"):
            return no_update, no_update, "Codes are not ready yet."
        v, xy, patch = overlay_context(ws, result, method, depth, scheme)
        ds = v["dataset"]
        try:
            rows, text = find_entities(query or "", ds.names, ds.labels, v["codes"], v["K"])
        except ValueError as exc:
            return no_update, no_update, f"Cannot search: {exc}"
        patch["data"][F.TRACE_MEMBERS].update(F.overlay_points(xy, rows))
        if not len(rows):
            return [], patch, (f"No match: {text}" if text else "")
        return members_table(v, rows), patch, f"Found {text} (outlined on the map)"

    # -- lasso / box selection on the map -> table, overlay, the branches it spans ----------------
    @app.callback(
        Output("entity-table", "rowData", allow_duplicate=True), Output("map", "figure", allow_duplicate=True),
        Output("selection-info", "children", allow_duplicate=True), Output("selection", "data"),
        Input("map", "selectedData"),
        *MAP_VIEW_STATE,
        prevent_initial_call=True,
    )
    def on_select(selected, result, method, depth, scheme):
        if not result or not result.get("key"):
            raise PreventUpdate
        v, xy, patch = overlay_context(ws, result, method, depth, scheme)
        ds = v["dataset"]
        rows = F.selected_rows(selected, ds.n)
        if not len(rows):
            patch["data"][F.TRACE_SELECTION].update({"x": [], "y": []})
            return [], patch, "Nothing selected: drag a box or lasso on the map (toolbar).", None
        patch["data"][F.TRACE_SELECTION].update(F.overlay_points(xy, rows))
        d = max(1, check_depth(depth, v["codes"].shape[1]))
        spans = F.branches_spanned(v["codes"][rows], d, v["K"])
        text = (f"Selection: {len(rows)} entities in {len(spans)} branch{'es' if len(spans) != 1 else ''} "
                f"at N={d}: " + ", ".join(f"{p} ({c})" for p, c in spans[:8])
                + (f", … {len(spans) - 8} more" if len(spans) > 8 else ""))
        return members_table(v, rows), patch, text, rows.tolist()
