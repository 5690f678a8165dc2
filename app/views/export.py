"""The export view: the map or code tree as a figure, codes / the selection / a table as a file;
the entity table's own CSV download.

    export_formats  export target -> the formats it can be written in
    on_export       Export -> a download of what the page shows (hkd_core/export.py writes it)
    entity_csv      the entity table's CSV button -> the grid's own CSV export
"""
from __future__ import annotations

import pandas as pd
from dash import Input, Output, State, dcc, no_update

from app import figures as F
from app.controls import check_depth
from app.layout import FIGURE_FORMATS, TABLE_FORMATS
from app.state import Workspace
from app.views.common import (MAP_VIEW_STATE, colouring_at, describe, map_payload, map_xy,
                              tree_colours_and_labels, view_data, view_hover)


def register(app, ws: Workspace):
    # -- export -------------------------------------------------------------------------------------
    @app.callback(
        Output("export-format", "options"), Output("export-format", "value"),
        Input("export-target", "value"), State("export-format", "value"),
    )
    def export_formats(target, current):
        fmts = FIGURE_FORMATS if target in ("map", "tree") else TABLE_FORMATS
        return fmts, current if current in fmts else fmts[0]

    @app.callback(
        Output("download", "data"), Output("export-status", "children"),
        Input("export-button", "n_clicks"),
        State("export-target", "value"), State("export-format", "value"), *MAP_VIEW_STATE,
        State("entity-table", "rowData"), State("neighbour-table", "rowData"), State("metrics-table", "rowData"),
        State("map", "figure"), State("selection", "data"),
        prevent_initial_call=True,
    )
    def on_export(_n, target, fmt, result, method, depth, scheme, entity_rows, neighbour_rows, metric_rows,
                  shown_map, selection):
        from hkd_core.export import codes_frame, figure_bytes, table_bytes

        if not result:
            return no_update, "Nothing to export yet."
        ds = ws.dataset(result["dataset"])
        method, _ = map_xy(ws, result, method)               # the map the page shows
        stem = f"hkd_{ds.name.replace(':', '_').replace('/', '_')}_{target}"
        try:
            if target in ("map", "tree"):
                if not result.get("key"):
                    return no_update, "Codes are not ready yet."
                v = view_data(ws, result["key"])
                scheme = scheme or "hierarchical"
                if target == "map":
                    xy = ws.projection(result["dataset"], method)     # cached: map_xy drew it
                    d = check_depth(depth, v["codes"].shape[1])
                    shown = map_payload(ws, v, scheme, method, xy)["depths"][d]
                    fig = F.map_figure(xy, view_hover(ws, v), colouring_at(ws, v, scheme, d), labels=shown["labels"],
                                       title=f"{ds.name} · {describe(v['meta'])} · prefix depth {d}")
                    # what the page shows: its overlays and the legend of the groups
                    F.copy_overlays(fig, shown_map)
                    F.add_group_legend(fig, shown)
                else:
                    node_colours, node_labels = tree_colours_and_labels(ws, v, scheme)
                    fig = F.sunburst_figure(v["frame"], title=f"{ds.name} · {describe(v['meta'])} code tree",
                                            node_colours=node_colours, node_labels=node_labels)
                data = figure_bytes(fig, fmt)
            else:
                if target in ("codes", "selection"):
                    if not result.get("key"):
                        return no_update, "Codes are not ready yet."
                    v = view_data(ws, result["key"])
                    df = codes_frame(ds.names, ds.labels, v["codes"], ws.projection(result["dataset"], method),
                                     code_strings=v["strings"], columns=ds.metadata_columns())
                    if target == "selection":
                        if not selection:
                            return no_update, "Nothing is selected: drag a box or lasso on the map first."
                        df = df.iloc[F.selected_rows({"points": [{"curveNumber": 0, "customdata": r}
                                                                 for r in selection]}, ds.n)]
                else:
                    rows = {"entities": entity_rows, "neighbours": neighbour_rows, "metrics": metric_rows}[target]
                    if not rows:
                        return no_update, f"The {target} table is empty."
                    df = pd.DataFrame(rows).drop(columns=["image"], errors="ignore")   # thumbnails stay on the page
                data = table_bytes(df, fmt)
        except Exception as exc:
            return no_update, f"Export failed: {type(exc).__name__}: {exc}"
        return dcc.send_bytes(data, f"{stem}.{fmt}"), f"Exported {stem}.{fmt} ({len(data):,} bytes)"

    @app.callback(Output("entity-table", "exportDataAsCsv"), Input("entity-csv", "n_clicks"),
                  prevent_initial_call=True)
    def entity_csv(_n):
        return True
