"""The training view: what to show for a data set and model (a cached result, a quick preview, or a
training request), the background training job, and the watchdog that gives the Train button back
when a job's process died.

    request_model   Train / auto-request -> result-key (cached or fast model) and/or train-request
    train_job       (background, forkserver: hkd_core/jobs.py) train-request -> result-key, progress bar
    watch_training  job-watchdog tick -> the Train button back if the job's process is gone, and a
                    finished job's result shown if the page never got it
"""
from __future__ import annotations

import time
import uuid

from dash import Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from app.controls import InputError, check_choice, check_controls
from app.state import PREVIEW_MAX_ROWS, PREVIEW_MODEL, Workspace, model_params
from app.views.common import CONTROL_IDS, CONTROL_KEYS, describe
from hkd_core.models import MODEL_NAMES

FAST_MODELS = ("hkm", "random")
JOB_START_GRACE_S = 90     # a job's process may take this long to start (forkserver, data loading);
                           # a Celery job queued in Redis is told apart from a dead one (celery_waiting)
RESULT_PICKUP_GRACE_S = 20  # a stored result the page has not received this long after it was written
                            # (Dash's poll of the job failed, or Dash dropped the reply) is shown by
                            # the watchdog


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


def preview_result(ws: Workspace, dataset_key: str, ds) -> dict:
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


def register(app, ws: Workspace, background_manager):
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
            return (preview_result(ws, dataset_key, ds), request,
                    f"{ds.name}: training {model} in the background — showing a quick preview meanwhile")
        return no_update, request, f"{ds.name}: training {model}…"

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
        Output("result-key", "data", allow_duplicate=True),
        Input("job-watchdog", "n_intervals"), State("train-request", "data"), State("train-button", "disabled"),
        State("result-key", "data"),
        prevent_initial_call=True,
    )
    def watch_training(_n, request, busy, shown=None):
        """The Train button stays disabled while a job runs; if the job's process is gone (its
        marker's pid is dead or it never started) and it left no result, give the button back.
        If the job stored its result but the page never received it (Dash's poll of the job
        failed or stopped, or Dash dropped the job's reply), show that result: to a page still
        busy with the job, or still showing the quick preview (or the label view) of that data
        set - never in place of a result the user chose."""
        if not request or not request.get("key"):
            raise PreventUpdate
        previewing = (isinstance(shown, dict) and (shown.get("preview") or not shown.get("key"))
                      and shown.get("dataset") == request.get("dataset") and shown.get("key") != request["key"])
        if not (busy or previewing):
            raise PreventUpdate
        if ws.has_result(request["key"]):
            stored = (ws.result(request["key"]) or {}).get("meta", {})
            if time.time() - float(stored.get("created") or time.time()) < RESULT_PICKUP_GRACE_S:
                raise PreventUpdate           # just stored: the job's own reply is on its way
            msg = f"{request.get('model', '')} trained, codes ready"
            return (False, True, "progress", msg, f"{ws.display_name(str(request.get('dataset')))}: {msg}",
                    {"key": request["key"], "dataset": request.get("dataset"), "model": request.get("model")})
        asked = request.get("asked") or 0
        if not busy or time.time() - float(asked) < JOB_START_GRACE_S or ws.training_alive(request["key"]):
            raise PreventUpdate
        if ws.job_probe is not None:
            waiting = celery_waiting(ws.job_probe, request)
            if waiting == "":
                raise PreventUpdate           # a worker holds the job: it has not written its marker yet
            if waiting:
                return no_update, no_update, no_update, waiting, waiting, no_update
        msg = (f"The {request.get('model', '')} training job stopped without a result (its process ended: "
               "a server restart or a kill); press Train to start it again")
        return False, True, "progress", msg, msg, no_update
