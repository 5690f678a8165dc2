"""The slow-map view: a t-SNE / UMAP map of many points is computed in a background job.

The chain is ask -> job, and poll -> render: render (app/views/map.py) must not wait for the job
(Dash holds a callback while any of its inputs is the output of a running one), so the job's end
is seen by a light poll of the store, whose output re-renders the map.

    ask_projection   result / map menu -> projection-request (once per data set and method), poll on
    projection_job   (background, forkserver: hkd_core/jobs.py) projection-request -> the map stored
    poll_projection  projection-poll tick -> projection-ready once the map is stored (or failed)
"""
from __future__ import annotations

import time
import uuid

from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from app.state import Workspace
from app.views.common import map_method
from hkd_core.projection import PROJECTION_LABELS


def projection_failure_key(request: dict) -> str:
    return f"projection-failed:{request.get('nonce', '')}"


def register(app, ws: Workspace, background_manager):
    @app.callback(
        Output("projection-request", "data"), Output("projection-poll", "disabled"),
        Input("result-key", "data"), Input("projection-select", "value"), State("projection-request", "data"),
    )
    def ask_projection(result, method, asked):
        """The map the page wants but may not compute in a request (Workspace.projection_now):
        ask the background job for it, once per data set and method."""
        if not result or not result.get("dataset"):
            raise PreventUpdate
        method = map_method(ws, ws.dataset(result["dataset"]), method)
        if not ws.projection_is_slow(result["dataset"], method):
            raise PreventUpdate
        if asked and asked.get("dataset") == result["dataset"] and asked.get("method") == method:
            raise PreventUpdate
        return {"dataset": result["dataset"], "method": method, "nonce": uuid.uuid4().hex}, False

    @app.callback(
        Output("status", "children", allow_duplicate=True),
        Input("projection-request", "data"),
        background=True, manager=background_manager, prevent_initial_call=True,
    )
    def projection_job(request):
        if not request or request.get("method") not in PROJECTION_LABELS:
            raise PreventUpdate
        job_ws = Workspace(ws.cache_dir, ws.dataset_options, ws.control_overrides, ws.projection_override)
        started = time.time()
        label = PROJECTION_LABELS[request["method"]]
        try:
            job_ws.projection(request["dataset"], request["method"])
        except Exception as exc:
            job_ws.store.put_json(projection_failure_key(request), {"error": f"{type(exc).__name__}: {exc}"})
            return f"The {label} map failed: {type(exc).__name__}: {exc}"
        return f"{job_ws.display_name(request['dataset'])}: {label} map computed in {time.time() - started:.0f} s"

    @app.callback(
        Output("projection-ready", "data"), Output("projection-poll", "disabled", allow_duplicate=True),
        Input("projection-poll", "n_intervals"), State("projection-request", "data"),
        prevent_initial_call=True,
    )
    def poll_projection(_n, request):
        if not request:
            return no_update, True
        if ws.has_projection(request["dataset"], request["method"]):
            return {"dataset": request["dataset"], "method": request["method"]}, True
        if ws.store.get_json(projection_failure_key(request)) is not None:
            return no_update, True          # the job said why in the status line
        raise PreventUpdate
