"""The neighbour view: an entity chosen in the search box (or clicked on the map or in the entity
table) -> its nearest neighbours in the input space, with their shared code prefix.

    search_options  typed text / result -> the entity menu's options
    on_search       entity / k -> neighbour table, query and neighbours drawn on the map
    pick_entity     map click / entity-table row -> the entity in the search box
"""
from __future__ import annotations

from dash import Input, Output, State, ctx
from dash.exceptions import PreventUpdate

from app import figures as F
from app.controls import check_knn
from app.state import Workspace
from app.views.common import MAP_VIEW_STATE, overlay_context


def register(app, ws: Workspace):
    # -- entity search -> neighbours ---------------------------------------------------------------
    @app.callback(
        Output("entity-search", "options"),
        Input("entity-search", "search_value"), Input("result-key", "data"),
        State("entity-search", "value"),
    )
    def search_options(search, result, current):
        if not result:
            raise PreventUpdate
        names = ws.dataset(result["dataset"]).names
        if search:
            s = search.lower()
            hits = [n for n in names if n.lower().startswith(s)]
            hits += [n for n in names if s in n.lower() and not n.lower().startswith(s)]
        else:
            hits = names[:50] if len(names) > 1 else names
        hits = hits[:50]
        if current and current not in hits and current in names:
            hits = [current] + hits
        return [{"label": n, "value": n} for n in hits]

    @app.callback(
        Output("neighbour-table", "rowData", allow_duplicate=True), Output("map", "figure", allow_duplicate=True),
        Input("entity-search", "value"), Input("param-knn", "value"),
        *MAP_VIEW_STATE,
        prevent_initial_call=True,
    )
    def on_search(name, k, result, method, depth, scheme):
        if not result or not result.get("key"):
            raise PreventUpdate
        v, xy, patch = overlay_context(ws, result, method, depth, scheme)
        ds = v["dataset"]
        if not name or name not in ds.names:
            patch["data"][F.TRACE_NEIGHBOURS].update({"x": [], "y": []})
            patch["data"][F.TRACE_QUERY].update({"x": [], "y": []})
            return [], patch
        from hkd_core.metrics import shared_prefix_length
        from hkd_core.neighbours import NeighbourIndex

        q = ds.index_of(name)
        k = min(check_knn(k), ds.n - 1)
        # the one neighbour engine, its index kept per data set; k + 1: the query finds itself
        index = ws.derived((v["meta"].get("fingerprint"), "neighbour-index"),
                           lambda: NeighbourIndex(metric=ds.metric).fit(ds.X))
        found = index.search(ds.X[q:q + 1], min(k + 1, ds.n))
        keep = found.indices[0] != q
        nbrs, dist = found.indices[0][keep][:k], found.distances[0][keep][:k]
        shared = shared_prefix_length(v["codes"][nbrs], v["codes"][q])
        table = F.add_thumbnails(F.neighbour_rows(q, nbrs, dist, shared, ds.names, ds.labels, v["strings"]),
                                 ds.extra.get("images"))
        patch["data"][F.TRACE_NEIGHBOURS].update(F.overlay_points(xy, nbrs))
        patch["data"][F.TRACE_QUERY].update(F.overlay_points(xy, [q]))
        return table, patch

    @app.callback(
        Output("entity-search", "value"), Output("entity-search", "options", allow_duplicate=True),
        Input("map", "clickData"), Input("entity-table", "selectedRows"),
        State("result-key", "data"), prevent_initial_call=True,
    )
    def pick_entity(click, selected, result):
        if not result:
            raise PreventUpdate
        names = ws.dataset(result["dataset"]).names
        if ctx.triggered_id == "map":
            point = (click or {}).get("points", [{}])[0]
            if point.get("curveNumber") != 0 or point.get("customdata") is None:
                raise PreventUpdate
            name = names[int(point["customdata"])]
        else:
            if not selected:
                raise PreventUpdate
            name = selected[0]["name"]
        return name, [{"label": name, "value": name}]
