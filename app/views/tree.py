"""The code-tree view: a click on the sunburst lists a branch's members and outlines them on the map;
a second coder's tree for the same data, side by side.

    compare_options  result -> the other cached results of the data set, for the compare menu
    compare_tree     compare menu -> the second code tree
    on_tree_click    sunburst click -> entity table, members overlay on the map, branch (for the URL)
"""
from __future__ import annotations

import numpy as np
from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from app import figures as F
from app.state import Workspace
from app.views.common import (MAP_VIEW_STATE, SUNBURST_DEPTH, describe, members_table, metrics_rows_for,
                              overlay_context, tree_colours_and_labels, view_data)
from hkd_core.tree import node_members


def register(app, ws: Workspace):
    # -- side by side: a second coder's code tree for the same data ---------------------------------
    @app.callback(
        Output("compare-select", "options"), Output("compare-select", "value"),
        Input("result-key", "data"), State("compare-select", "value"),
    )
    def compare_options(result, current):
        if not result or not result.get("key"):
            return [], None
        options = [{"label": label, "value": key}
                   for label, _, current_, key in metrics_rows_for(ws, result["dataset"], result["key"]) if not current_]
        return options, current if current in [o["value"] for o in options] else None

    @app.callback(
        Output("code-tree-2", "figure"), Output("compare-box", "hidden"),
        Input("compare-select", "value"), State("colour-scheme", "value"),
        prevent_initial_call=True,
    )
    def compare_tree(key, scheme):
        if not key:
            return no_update, True
        try:
            v = view_data(ws, key)
        except KeyError:
            return F.message_figure("That result is no longer in the cache."), False
        colours, labels = tree_colours_and_labels(ws, v, scheme or "hierarchical")
        D = v["codes"].shape[1]
        return F.sunburst_figure(v["frame"], title=f"{describe(v['meta'])}: first {min(SUNBURST_DEPTH, D)} digits",
                                 node_colours=colours, node_labels=labels), False

    # -- code-tree click -> members -------------------------------------------------------------------
    @app.callback(
        Output("entity-table", "rowData", allow_duplicate=True), Output("map", "figure", allow_duplicate=True),
        Output("selection-info", "children", allow_duplicate=True), Output("branch", "data"),
        Input("code-tree", "clickData"),
        *MAP_VIEW_STATE,
        prevent_initial_call=True,
    )
    def on_tree_click(click, result, method, depth, scheme):
        if not click or not result or not result.get("key"):
            raise PreventUpdate
        node_id = click["points"][0].get("id")
        v, xy, patch = overlay_context(ws, result, method, depth, scheme)
        if not node_id or node_id == "root":
            patch["data"][F.TRACE_MEMBERS].update({"x": [], "y": []})
            return [], patch, "Whole tree selected: click a branch to list its members.", None
        try:
            rows = node_members(v["index"], v["frame"], node_id)
        except ValueError:
            rows = np.zeros(0, dtype=np.int64)
        if not len(rows):
            patch["data"][F.TRACE_MEMBERS].update({"x": [], "y": []})
            return [], patch, f"Branch {node_id} is not in this code tree.", None
        table = members_table(v, rows)
        patch["data"][F.TRACE_MEMBERS].update(F.overlay_points(xy, rows))
        prefix = v["frame"].loc[v["frame"]["ids"] == node_id, "prefix"]
        return (table, patch, f"Branch {prefix.iloc[0] if len(prefix) else node_id}: {len(rows)} entities",
                node_id)
