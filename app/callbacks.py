"""Dash callbacks: thin glue between the page and app/state.py, hkd_core and app/figures.py.

Flow: dataset change -> controls + auto-request -> request_model (cached result, or a quick HKM
preview plus a background training request) -> result-key -> render (map, tree, metrics,
map-groups) -> the depth slider recolours in the browser (assets/recolour.js), sunburst clicks
and searches patch overlay traces of the map.
"""
from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pandas as pd
from dash import ClientsideFunction, Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from app import figures as F
from app.layout import FIGURE_FORMATS, TABLE_FORMATS
from app.controls import InputError, check_choice, check_controls, check_depth, check_knn
from app.state import PREVIEW_MAX_ROWS, PREVIEW_MODEL, Workspace, model_params
from hkd_core.models import MODEL_NAMES
from hkd_core.projection import PROJECTION_LABELS, available_methods
from app.colours import COLUMN_SCHEME, depth_colours, rank_colours, scheme_label, scheme_options
from hkd_core.benchmark.report import tradeoff_figure
from hkd_core.tree import (CodeTree, branch_labeller, format_codes, node_members, parse_prefix,
                           sunburst_frame)

CONTROL_IDS = ["model-select", "param-K", "param-D", "param-alpha", "param-beta", "param-perplexity",
               "param-epochs", "param-kmeans", "param-random"]
CONTROL_KEYS = ["model", "K", "D", "alpha", "beta", "perplexity", "epochs", "kmeans_exemplars",
                "random_exemplars"]
FAST_MODELS = ("hkm", "random")
SUNBURST_DEPTH = 4
JOB_START_GRACE_S = 90     # a job's process may take this long to start (forkserver, data loading);
                           # a Celery job queued in Redis is told apart from a dead one (celery_waiting)


# -- pure helpers over the workspace (no Dash objects) ------------------------------------------

def view_data(ws: Workspace, result_key: str) -> dict:
    """Per-result derived data: codes, their strings, the prefix index, the sunburst frame, the
    branch labeller."""
    def build():
        res = ws.result(result_key)
        if res is None:
            raise KeyError(f"result {result_key!r} is not in the cache")
        ds = ws.dataset(res["meta"]["dataset"])
        codes = res["codes"]
        K = int(res["meta"].get("K", codes.max() + 1))
        strings = format_codes(codes, K)
        frame = sunburst_frame(codes, ds.names, max_depth=min(SUNBURST_DEPTH, codes.shape[1]), K=K,
                               min_branch_size=max(2, len(codes) // 100))
        return {"key": result_key, "codes": codes, "K": K, "strings": strings, "index": CodeTree(codes),
                "frame": frame, "meta": res["meta"], "metrics": res["metrics"], "dataset": ds,
                "labeller": branch_labeller(ds.names, ds.labels, ds.item_ancestors())}
    return ws.derived((result_key, "view"), build)


def colourings(ws: Workspace, v: dict, scheme: str) -> list:
    ds = v["dataset"]

    def build():
        knn = None
        if scheme == "share":
            from hkd_core.neighbours import kneighbors

            knn = ws.derived((v["meta"].get("fingerprint"), "knn5"),
                             lambda: kneighbors(ds.X, min(5, ds.n - 1), ds.metric).indices)
        return depth_colours(v["codes"], scheme, K=v["K"], labels=ds.labels, knn=knn,
                             columns=ds.metadata_columns())
    return ws.derived((v["key"], "colours", scheme), build)


def colouring_at(ws: Workspace, v: dict, scheme: str, depth) -> object:
    c = colourings(ws, v, scheme)
    return c[check_depth(depth, len(c) - 1)]


def recolour_patch(ws: Workspace, v: dict, scheme: str, depth, method: str, xy) -> Patch:
    """A figure patch that keeps the map at the page's depth and scheme: the slider recolours in
    the browser only, so any server patch of the figure must carry the current colours too."""
    patch = Patch()
    patch["data"][F.TRACE_POINTS]["marker"].update(F.marker_colours(colouring_at(ws, v, scheme, depth)))
    d = check_depth(depth, v["codes"].shape[1])
    labels = map_payload(ws, v, scheme, method, xy)["depths"][d]["labels"]
    patch["data"][F.TRACE_LABELS].update(labels)
    return patch


def members_table(v: dict, rows) -> list[dict]:
    """Entity-table rows for a set of rows (a branch, a selection, search matches), nearest to
    their centre first (input-space distance)."""
    from hkd_core.distances import pairwise

    ds = v["dataset"]
    X = ds.X[rows].astype(np.float64)
    dist = pairwise(X, X.mean(0, keepdims=True), ds.metric)[:, 0]
    return F.add_thumbnails(F.entity_rows(rows, ds.names, ds.labels, v["strings"], dist), ds.extra.get("images"))


def projection_failure_key(request: dict) -> str:
    return f"projection-failed:{request.get('nonce', '')}"


def table_columns(ds) -> tuple[list, list]:
    """Column definitions of the entity and neighbour tables: with thumbnails for image data."""
    images = ds.extra.get("images") is not None
    return F.with_images(F.ENTITY_COLUMNS, images), F.with_images(F.NEIGHBOUR_COLUMNS, images)


def map_payload(ws: Workspace, v: dict, scheme: str, method: str, xy) -> dict:
    """The browser's recolouring data for one result, scheme and map (label positions)."""
    # branch labels name code prefixes; a label or column colouring is named by its own values
    labeller = v["labeller"] if scheme in ("hierarchical", "rank", "digit") else None
    return ws.derived((v["key"], scheme, method, "payload"),
                      lambda: F.depth_payload(colourings(ws, v, scheme), xy, labeller,
                                              token=f"{v['key']}:{scheme}:{method}"))


def tree_colours_and_labels(ws: Workspace, v: dict, scheme: str) -> tuple[dict, dict]:
    """Per sunburst node: its colour on the map and its branch label."""
    scheme = scheme if scheme in ("hierarchical", "rank") else "hierarchical"   # the tree is of prefixes

    def build():
        colours, labels = {}, {}
        c = colourings(ws, v, scheme)
        for node_id in v["frame"]["ids"]:
            if node_id == "root" or node_id.endswith("other"):
                continue
            prefix = parse_prefix(node_id)
            rows = v["index"].members(prefix)
            if len(rows):
                depth_c = c[len(prefix)]
                colours[node_id] = depth_c.colours[depth_c.slots[rows[0]]]
                labels[node_id] = v["labeller"](rows)
        return colours, labels
    return ws.derived((v["key"], scheme, "tree"), build)


def describe(meta: dict, extra_keys=()) -> str:
    """A model's name with its main parameters (and ``extra_keys``, those that tell two runs of
    the same model apart)."""
    p = meta.get("params", {})
    bits = [f"K={p['K']}" if "K" in p else "", f"D={p['D']}" if "D" in p else "",
            f"{p['epochs']} epochs" if "epochs" in p else ""]
    bits += [f"{k}={p[k]}" for k in extra_keys if k in p and k not in ("K", "D", "epochs")]
    return f"{meta.get('model')} ({', '.join(b for b in bits if b)})"


def distinct_labels(metas: list[dict]) -> list[str]:
    """Labels for a list of results: model and main parameters, plus whatever parameters differ
    between results of the same model, so no two rows read the same."""
    out = []
    for meta in metas:
        same = [m for m in metas if m.get("model") == meta.get("model")]
        keys = sorted({k for m in same for k in m.get("params", {})
                       if len({json.dumps(x.get("params", {}).get(k), sort_keys=True) for x in same}) > 1}
                      - {"random_state"})
        out.append(describe(meta, keys))
    return out


def celery_waiting(probe, request: dict) -> str | None:
    """In Celery mode, what a training job that has no marker is doing: a sentence when it waits
    in Redis for a worker, "" when a worker has it (starting up), None when it is gone."""
    where, workers = probe.where(request["key"])
    if where in ("running", "reserved"):
        return ""
    if where != "queued":
        return None
    model = request.get("model", "")
    if not workers:
        return (f"The {model} training job is queued in Redis, waiting for a Celery worker: none answers "
                "(start one with: celery -A app.worker worker --loglevel=info)")
    return (f"The {model} training job is queued in Redis, waiting for a free Celery worker "
            f"({len(workers)} running, all busy)")


def register_callbacks(app, ws: Workspace, background_manager, image_root: str | None = None):
    # -- dataset -> controls --------------------------------------------------------------------
    @app.callback(
        [Output(i, "value") for i in CONTROL_IDS]
        + [Output("projection-select", "options"), Output("projection-select", "value"),
           Output("dataset-info", "children"), Output("auto-request", "data"),
           Output("url-state", "data"), Output("colour-scheme", "options"), Output("colour-scheme", "value")],
        Input("dataset-select", "value"), State("url-state", "data"), State("colour-scheme", "value"),
    )
    def on_dataset(dataset_key, url_state, scheme):
        if not dataset_key:
            raise PreventUpdate
        try:
            ds = ws.dataset(dataset_key)
        except Exception as exc:  # missing archive or uncached features: say so, keep serving
            message = f"Cannot load {dataset_key}: {exc}"
            return [no_update] * (len(CONTROL_IDS) + 2) + [html.Span(message, className="error"), no_update,
                                                           no_update, no_update, no_update]
        schemes = scheme_options(ds.labels is not None, ds.metadata_columns())
        scheme_menu = [{"label": "colour: " + text, "value": key} for key, text in schemes]
        scheme_value = no_update if scheme in {key for key, _ in schemes} else "hierarchical"
        url = url_state or {}
        # the first data set shown after a page load takes the model, parameters and map of the
        # page's URL (app/urlstate.py); later changes of data set start from its defaults
        from_url = bool(url) and not url.get("applied") and url.get("dataset", dataset_key) == dataset_key
        c = ws.controls_for(dataset_key)
        if from_url:
            c.update({k: v for k, v in url.items() if k in CONTROL_KEYS})
        methods = available_methods(ds.X.shape[1])
        options = [{"label": PROJECTION_LABELS[m], "value": m} for m in methods]
        method = url["projection"] if from_url and url.get("projection") in methods \
            else ws.default_projection(ds.X.shape[1])
        info = (ds.description or ds.name) + f" — {ds.n} entities, {ds.X.shape[1]}-d, {ds.metric} metric"
        return ([c[k] for k in CONTROL_KEYS] + [options, method, info,
                {"dataset": dataset_key, "nonce": uuid.uuid4().hex, "controls": c},
                {**url, "applied": True} if from_url else no_update, scheme_menu, scheme_value])

    @app.callback(
        Output("code-tree", "clickData"), Output("entity-search", "value", allow_duplicate=True),
        Output("entity-search", "options", allow_duplicate=True),
        Output("url-state", "data", allow_duplicate=True),
        Input("map-groups", "data"), State("url-state", "data"), State("result-key", "data"),
        prevent_initial_call=True,
    )
    def restore_from_url(_payload, url, result):
        """Once the URL's model has codes on the page: click its branch, search its entity."""
        if not url or not url.get("applied") or url.get("restored") or not result or not result.get("key"):
            raise PreventUpdate
        if result.get("preview") or (url.get("model") and result.get("model") != url["model"]):
            raise PreventUpdate                       # the URL's model is still on its way
        names = ws.dataset(result["dataset"]).names
        branch = url.get("branch")
        entity = url.get("entity") if url.get("entity") in names else None
        return ({"points": [{"id": branch}]} if branch else no_update,
                entity or no_update, [{"label": entity, "value": entity}] if entity else no_update,
                {**url, "restored": True})

    # -- what to show: cached result, quick preview, or a training request ---------------------------
    @app.callback(
        Output("result-key", "data"), Output("train-request", "data"), Output("status", "children"),
        Input("train-button", "n_clicks"), Input("auto-request", "data"),
        State("dataset-select", "value"), [State(i, "value") for i in CONTROL_IDS],
        prevent_initial_call=True,
    )
    def request_model(_clicks, auto, dataset_key, *values):
        if not dataset_key:
            raise PreventUpdate
        controls = dict(zip(CONTROL_KEYS, values))
        if auto and ctx.triggered_id == "auto-request":
            # the control outputs may not have landed yet: the request carries them
            controls = dict(auto.get("controls") or ws.controls_for(auto["dataset"]))
            dataset_key = auto["dataset"]
        if any(v is None for v in controls.values()):
            return no_update, no_update, "Fill in every parameter (empty or out-of-range field)."
        try:   # the page's limits, on the server: a hand-made request meets them too
            check_choice(dataset_key, ws.usable_datasets(), "data set")
            model = check_choice(controls["model"], MODEL_NAMES, "model")
            controls = check_controls(controls)
        except InputError as exc:
            return no_update, no_update, f"Invalid request: {exc}"
        ds = ws.dataset(dataset_key)
        try:
            params = model_params(model, dataset_key, ds, controls)
            key = ws.result_key(dataset_key, model, params)
        except ValueError as exc:
            return no_update, no_update, f"Invalid settings: {exc}"
        if ws.has_result(key):
            return ({"key": key, "dataset": dataset_key, "model": model}, no_update,
                    f"{ds.name}: {describe(ws.result(key)['meta'])} loaded from cache")
        request = {"dataset": dataset_key, "model": model, "params": params, "key": key,
                   "nonce": uuid.uuid4().hex, "asked": time.time()}
        if model in FAST_MODELS and ds.n <= PREVIEW_MAX_ROWS:
            try:
                ws.train(dataset_key, model, params)
            except Exception as exc:
                label_view = {"key": None, "dataset": dataset_key, "model": None}
                return (label_view if ctx.triggered_id == "auto-request" else no_update, no_update,
                        f"{model} failed: {exc}")
            return ({"key": key, "dataset": dataset_key, "model": model}, no_update,
                    f"{ds.name}: {model} trained")
        if ctx.triggered_id == "auto-request":
            # First visit of this data set: show something useful at once, train in the background.
            return (preview_result(dataset_key, ds), request,
                    f"{ds.name}: training {model} in the background — showing a quick preview meanwhile")
        return no_update, request, f"{ds.name}: training {model}…"

    def preview_result(dataset_key, ds):
        """The best already cached result for this data set, else a quick HKM fit, else none
        (the map is then coloured by label)."""
        cached = ws.cached_results(dataset_key)
        if cached:
            key = list(cached)[-1]
            return {"key": key, "dataset": dataset_key, "model": cached[key]["model"], "preview": True}
        if ds.n > PREVIEW_MAX_ROWS:      # a preview would keep the first map waiting: label view now
            return {"key": None, "dataset": dataset_key, "model": None, "preview": True}
        try:
            c = ws.controls_for(dataset_key)
            params = model_params(PREVIEW_MODEL, dataset_key, ds, c)
            key = ws.train(dataset_key, PREVIEW_MODEL, params)
            return {"key": key, "dataset": dataset_key, "model": PREVIEW_MODEL, "preview": True}
        except Exception:  # the preview model may be unavailable; the label view still works
            return {"key": None, "dataset": dataset_key, "model": None, "preview": True}

    # -- background training ------------------------------------------------------------------------
    @app.callback(
        Output("result-key", "data", allow_duplicate=True),
        Output("train-status", "children"), Output("status", "children", allow_duplicate=True),
        Input("train-request", "data"),
        background=True, manager=background_manager, prevent_initial_call=True,
        progress=[Output("train-progress", "value"), Output("train-progress", "max"),
                  Output("progress-text", "children")],
        running=[(Output("train-button", "disabled"), True, False),
                 (Output("cancel-button", "disabled"), False, True),
                 (Output("train-progress", "className"), "progress active", "progress")],
        cancel=[Input("cancel-button", "n_clicks")],
    )
    def train_job(set_progress, request):
        if not request:
            raise PreventUpdate
        # A fresh store handle: SQLite connections must not cross the fork.
        job_ws = Workspace(ws.cache_dir, ws.dataset_options, ws.control_overrides, ws.projection_override)
        started = time.time()
        set_progress(("0", "1", f"starting {request['model']}…"))

        def progress(info):
            if info.get("stage") == "evaluating":
                set_progress(("1", "1", "evaluating codes…"))
                return
            e, n = int(info.get("epoch", 0) or 0), int(info.get("n_epochs", 1) or 1)
            loss = info.get("loss")
            text = f"{request['model']}: epoch {e}/{n}" + (f", loss {loss:.4g}" if loss is not None else "")
            set_progress((str(e), str(n), text))

        if job_ws.training_elsewhere(request["key"]):
            # Same model already training (another tab, or a reload): follow it instead of
            # starting a second copy.
            while job_ws.training_elsewhere(request["key"]) and not job_ws.has_result(request["key"]):
                progress(dict(job_ws.progress_of(request["key"]), follow=True))
                time.sleep(1.0)
            if job_ws.has_result(request["key"]):
                msg = f"{request['model']} trained (by another session)"
                set_progress(("1", "1", msg))
                return ({"key": request["key"], "dataset": request["dataset"], "model": request["model"]}, msg, msg)
        try:
            key = job_ws.train(request["dataset"], request["model"], request["params"], progress=progress)
        except Exception as exc:
            msg = f"Training failed: {type(exc).__name__}: {exc}"
            return no_update, msg, msg
        if key != request["key"]:
            # a Celery worker whose data set or code differs from the server's (another version,
            # another cache directory): its model is not the one the page asked for
            msg = (f"Training failed: the job's worker built a different model ({key}, not {request['key']}): "
                   "start workers from the same code with the server's cache directory (HKD_CACHE_DIR)")
            return no_update, msg, msg
        msg = f"{request['model']} trained in {time.time() - started:.0f} s"
        set_progress(("1", "1", f"{msg}; codes evaluated"))
        return ({"key": key, "dataset": request["dataset"], "model": request["model"]}, msg,
                f"{job_ws.display_name(request['dataset'])}: {msg}, codes ready")

    # -- a training job that died (kill -9, a server restart) is said so, and can be restarted -----
    @app.callback(
        Output("train-button", "disabled", allow_duplicate=True),
        Output("cancel-button", "disabled", allow_duplicate=True),
        Output("train-progress", "className", allow_duplicate=True),
        Output("progress-text", "children", allow_duplicate=True),
        Output("status", "children", allow_duplicate=True),
        Input("job-watchdog", "n_intervals"), State("train-request", "data"), State("train-button", "disabled"),
        prevent_initial_call=True,
    )
    def watch_training(_n, request, busy):
        """The Train button stays disabled while a job runs; if the job's process is gone (its
        marker's pid is dead or it never started) and it left no result, give the button back."""
        if not busy or not request or not request.get("key"):
            raise PreventUpdate
        asked = request.get("asked") or 0
        if time.time() - float(asked) < JOB_START_GRACE_S or ws.has_result(request["key"]) \
                or ws.training_alive(request["key"]):
            raise PreventUpdate
        if ws.job_probe is not None:
            waiting = celery_waiting(ws.job_probe, request)
            if waiting == "":
                raise PreventUpdate           # a worker holds the job: it has not written its marker yet
            if waiting:
                return no_update, no_update, no_update, waiting, waiting
        msg = (f"The {request.get('model', '')} training job stopped without a result (its process ended: "
               "a server restart or a kill); press Train to start it again")
        return False, True, "progress", msg, msg

    # -- a slow map (t-SNE / UMAP of many points) in a background job --------------------------------
    # The chain is ask -> job, and poll -> render: render must not wait for the job (Dash holds a
    # callback while any of its inputs is the output of a running one), so the job's end is seen
    # by a light poll of the store, whose output re-renders the map.
    @app.callback(
        Output("projection-request", "data"), Output("projection-poll", "disabled"),
        Input("result-key", "data"), Input("projection-select", "value"), State("projection-request", "data"),
    )
    def ask_projection(result, method, asked):
        """The map the page wants but may not compute in a request (Workspace.projection_now):
        ask the background job for it, once per data set and method."""
        if not result or not result.get("dataset"):
            raise PreventUpdate
        ds = ws.dataset(result["dataset"])
        if method not in available_methods(ds.X.shape[1]):
            method = ws.default_projection(ds.X.shape[1])
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
        if method not in available_methods(ds.X.shape[1]):
            method = ws.default_projection(ds.X.shape[1])
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
        fig = F.map_figure(xy, view_hover(v), colouring_at(ws, v, scheme, depth),
                           plotly_hover="images" not in (ds.extra or {}),
                           labels=payload["depths"][depth]["labels"])
        node_colours, node_labels = tree_colours_and_labels(ws, v, scheme)
        tree = F.sunburst_figure(v["frame"], title=f"{label}: first {min(SUNBURST_DEPTH, D)} code digits",
                                 node_colours=node_colours, node_labels=node_labels)
        compared = metrics_rows_for(result["dataset"], result["key"])
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

    # -- side by side: a second coder's code tree for the same data ---------------------------------
    @app.callback(
        Output("compare-select", "options"), Output("compare-select", "value"),
        Input("result-key", "data"), State("compare-select", "value"),
    )
    def compare_options(result, current):
        if not result or not result.get("key"):
            return [], None
        options = [{"label": label, "value": key}
                   for label, _, current_, key in metrics_rows_for(result["dataset"], result["key"]) if not current_]
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

    def overlay_context(result, method, depth, scheme):
        """What every overlay callback starts from: the result's view data, the map coordinates,
        and a figure patch that keeps the page's depth and colours."""
        v = view_data(ws, result["key"])
        method, xy = map_xy(result, method)
        return v, xy, recolour_patch(ws, v, scheme or "hierarchical", depth, method, xy)

    def map_xy(result, method):
        """(projection method actually drawn, its coordinates): never a slow projection in a
        request (Workspace.projection_now; the background job below computes it)."""
        ds = ws.dataset(result["dataset"])
        if method not in available_methods(ds.X.shape[1]):
            method = ws.default_projection(ds.X.shape[1])
        return ws.projection_now(result["dataset"], method)

    def view_hover(v):
        return ws.derived((v["meta"].get("fingerprint"), v["meta"]["model"], id(v), "hover"),
                          lambda: F.hover_texts(v["dataset"].names, v["dataset"].labels, v["strings"]))

    def metrics_rows_for(dataset_key, current_key, limit: int = 12):
        """(label, metrics, is current, result key) for the shown model and the newest cached results of the
        data set, labelled so that two runs of one model are told apart by their parameters."""
        keys = [current_key] + [k for k in reversed(list(ws.cached_results(dataset_key))) if k != current_key]
        results = [(k, ws.result(k)) for k in keys[:limit]]
        results = [(k, r) for k, r in results if r and r.get("metrics")]
        labels = distinct_labels([r["meta"] for _, r in results])
        return [(label + (" — shown" if k == current_key else ""), r["metrics"], k == current_key, k)
                for label, (k, r) in zip(labels, results)]

    # -- depth slider: browser-only recolour ------------------------------------------------------------
    app.clientside_callback(
        ClientsideFunction(namespace="hkd", function_name="recolour"),
        Output("map-legend", "children"), Output("depth-label", "children"),
        Input("depth-slider", "value"), Input("map-groups", "data"),
    )

    # -- the view into the URL (assets/urlstate.js; app/urlstate.py reads it back) ----------------
    app.clientside_callback(
        ClientsideFunction(namespace="hkd", function_name="writeUrl"),
        Output("url-written", "data"),
        Input("dataset-select", "value"), [Input(i, "value") for i in CONTROL_IDS],
        Input("projection-select", "value"), Input("depth-slider", "value"), Input("colour-scheme", "value"),
        Input("branch", "data"), Input("entity-search", "value"),
    )

    # -- code-tree click -> members -------------------------------------------------------------------
    @app.callback(
        Output("entity-table", "rowData", allow_duplicate=True), Output("map", "figure", allow_duplicate=True),
        Output("selection-info", "children", allow_duplicate=True), Output("branch", "data"),
        Input("code-tree", "clickData"),
        State("result-key", "data"), State("projection-select", "value"), State("depth-slider", "value"),
        State("colour-scheme", "value"),
        prevent_initial_call=True,
    )
    def on_tree_click(click, result, method, depth, scheme):
        if not click or not result or not result.get("key"):
            raise PreventUpdate
        node_id = click["points"][0].get("id")
        v, xy, patch = overlay_context(result, method, depth, scheme)
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
        State("result-key", "data"), State("projection-select", "value"), State("depth-slider", "value"),
        State("colour-scheme", "value"),
        prevent_initial_call=True,
    )
    def on_find(query, result, method, depth, scheme):
        from app.find import find_entities

        if not result or not result.get("key"):
            return no_update, no_update, "Codes are not ready yet."
        v, xy, patch = overlay_context(result, method, depth, scheme)
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
        State("result-key", "data"), State("projection-select", "value"), State("depth-slider", "value"),
        State("colour-scheme", "value"),
        prevent_initial_call=True,
    )
    def on_select(selected, result, method, depth, scheme):
        if not result or not result.get("key"):
            raise PreventUpdate
        v, xy, patch = overlay_context(result, method, depth, scheme)
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
        State("result-key", "data"), State("projection-select", "value"), State("depth-slider", "value"),
        State("colour-scheme", "value"),
        prevent_initial_call=True,
    )
    def on_search(name, k, result, method, depth, scheme):
        if not result or not result.get("key"):
            raise PreventUpdate
        v, xy, patch = overlay_context(result, method, depth, scheme)
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

    # -- upload -----------------------------------------------------------------------------------
    @app.callback(
        Output("upload-error", "children"), Output("upload-error", "hidden"),
        Output("dataset-select", "options"), Output("dataset-select", "value"),
        Input("upload", "contents"), State("upload", "filename"),
        prevent_initial_call=True,
    )
    def on_upload(contents, filename):
        from hkd_core.uploads import UploadError, parse_embedding_upload

        if contents is None:
            raise PreventUpdate
        try:
            ds = parse_embedding_upload(filename or "", contents, image_root=image_root)
        except UploadError as exc:
            return f"Upload rejected: {exc}", False, no_update, no_update
        except Exception as exc:  # any other failure is still the user's file, never a crash
            return f"Upload failed ({type(exc).__name__}): {exc}", False, no_update, no_update
        key = ws.add_upload(ds, filename)
        return "", True, ws.dataset_choices(), key

    @app.callback(
        Output("upload-error", "children", allow_duplicate=True), Output("upload-error", "hidden", allow_duplicate=True),
        Output("dataset-select", "options", allow_duplicate=True), Output("dataset-select", "value", allow_duplicate=True),
        Input("hierarchy-upload", "contents"), State("hierarchy-upload", "filename"), State("dataset-select", "value"),
        prevent_initial_call=True,
    )
    def on_hierarchy_upload(contents, filename, dataset_key):
        """A parent-child file for the labels of the upload on the page: stored as a data set of
        its own (the same rows, now with a label hierarchy: shrewd/shred and the hierarchy
        metrics can use it)."""
        import dataclasses

        from hkd_core.uploads import UploadError, parse_label_hierarchy

        if contents is None:
            raise PreventUpdate
        if not dataset_key or not str(dataset_key).startswith("upload:"):
            return ("Upload rejected: a label hierarchy goes with an uploaded data set; choose or upload "
                    "one first", False, no_update, no_update)
        ds = ws.dataset(dataset_key)
        if ds.labels is None:
            return "Upload rejected: the shown upload has no label column to arrange", False, no_update, no_update
        try:
            tree = parse_label_hierarchy(filename or "", contents, ds.labels)
        except UploadError as exc:
            return f"Upload rejected: {exc}", False, no_update, no_update
        info = ws.store.uploads().get(dataset_key.split(":", 1)[1], {})
        name = f"{info.get('filename', ds.name)} + {filename}"
        with_tree = dataclasses.replace(ds, hierarchy=tree, name=f"upload:{name}",
                                        description=ds.description + f", label hierarchy from {filename}")
        key = ws.add_upload(with_tree, name)
        return "", True, ws.dataset_choices(), key

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
        State("export-target", "value"), State("export-format", "value"), State("result-key", "data"),
        State("projection-select", "value"), State("depth-slider", "value"), State("colour-scheme", "value"),
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
        method, _ = map_xy(result, method)               # the map the page shows
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
                    fig = F.map_figure(xy, view_hover(v), colouring_at(ws, v, scheme, d), labels=shown["labels"],
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

    return app
