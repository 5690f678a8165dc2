"""The HKD Explorer Dash app: ``create_app(cache_dir=...)`` builds it (``python app.py`` runs it).

    layout.py     the page (CSS grid of cards; ids used by tests and callbacks)
    views/        the callbacks, one module a view (data, training, projection, map, tree,
                  neighbours, export; shared helpers in views/common.py): thin callbacks over
                  state.py, hkd_core and figures.py
    figures.py    pure figure / table builders (tested without a browser)
    state.py      server-side workspace: data sets, results, projections (diskcache store)
    client.py     the page's callback requests over HTTP (tests, the load benchmark)
    worker.py     the Celery worker of ``python app.py --jobs celery`` (celery -A app.worker worker)
"""
from __future__ import annotations

import os

# what a training or map job runs (its function lives in the views): imported by the forkserver
# once, not by each job
JOB_PRELOAD = ("app.views",)
ASSETS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")


def callback_error_to_status(err: Exception):
    """Any callback that fails (a value no check foresaw, a result gone from the cache) says why
    in the status line instead of answering HTTP 500; the page and the server keep working."""
    from dash import set_props

    from app.controls import InputError

    if isinstance(err, InputError):
        message = f"Invalid request: {err}"
    elif isinstance(err, KeyError):
        message = f"Not found: {err.args[0] if err.args else err}"
    else:
        message = f"Could not update the page ({type(err).__name__}: {str(err)[:300]})"
    set_props("status", {"children": message})
    return None


def create_app(cache_dir: str | None = None, default_dataset: str = "mammals",
               dataset_options: dict | None = None, controls: dict | None = None,
               projection: str | None = None, title: str = "HKD Explorer", image_root: str | None = None,
               jobs: str = "diskcache", redis_url: str | None = None):
    """Build the Dash app.

    cache_dir        directory for the artefact store and Dash's background-job cache
                     (default: <repo>/.hkd_cache). Results and projections persist there.
    default_dataset  data set shown at start; falls back to the first available one.
    dataset_options  per-dataset loader keyword arguments, e.g. {"synthetic": {"n_per_cluster": 20}}.
    controls         overrides of the start values of the controls, e.g. {"model": "hkm", "epochs": 5}.
    projection       default map method when the data allow it ("pca" for fast tests).
    image_root       folder below which an upload's image-path column may be read (None: never).
    jobs             where long jobs (training, slow maps) run: "diskcache" (processes of this
                     server, the default) or "celery" (Celery workers over Redis, app/worker.py).
    redis_url        the Redis server of the "celery" mode, e.g. redis://127.0.0.1:6379/0; it is
                     pinged here, so a wrong URL fails at start with "cannot reach Redis at ...".
    """
    from dash import Dash

    from app.views import register_callbacks
    from app.layout import build_layout
    from app.state import Workspace
    from hkd_core.jobs import JOB_MODES, background_manager, celery_manager, ping_redis
    from hkd_core.models import MODEL_NAMES

    if jobs not in JOB_MODES:
        raise ValueError(f"jobs must be one of {JOB_MODES}, got {jobs!r}")
    if jobs == "celery":
        ping_redis(redis_url)      # "cannot reach Redis at URL: ..." before anything is built
    elif redis_url is not None:
        raise ValueError("redis_url is only used with jobs='celery'")

    ws = Workspace(cache_dir, dataset_options, controls, projection)
    # before any job runs: drop entries a killed process left half-written, relist uploads. With
    # Celery, workers elsewhere may be writing now: diskcache's file check must not run then.
    ws.store.cleanup(fix_files=jobs == "diskcache")
    choices = ws.dataset_choices()
    enabled = [o["value"] for o in choices if not o.get("disabled")]
    if not enabled:
        raise RuntimeError("no data set is available: " + "; ".join(o.get("title", "") for o in choices))
    if default_dataset not in enabled:
        default_dataset = "synthetic" if "synthetic" in enabled else enabled[0]

    if jobs == "celery":
        # jobs run in Celery workers (app/worker.py builds this same app); Redis holds the queue,
        # Dash's results and progress; the artefact store in cache_dir holds the models
        from hkd_core.jobs import CeleryJobProbe

        manager = celery_manager(redis_url, ping=False)
        ws.job_probe = CeleryJobProbe(manager.handle)
    else:
        # jobs start from a forkserver, never by forking this threaded server (hkd_core/jobs.py);
        # it starts now and imports the job code (JOB_PRELOAD) while the server starts and
        # draws its first page, so the first training job does not wait for those imports
        manager = background_manager(os.path.join(ws.cache_dir, "jobs"), preload=JOB_PRELOAD, start=True)
    app = Dash(__name__, title=title, assets_folder=ASSETS_DIR, background_callback_manager=manager,
               serve_locally=True, update_title=None, on_error=callback_error_to_status)
    # a hard cap on any request body: an upload arrives base64-encoded (4/3 of its size) inside
    # the callback's JSON; files up to the upload limit pass and get parse_embedding_upload's
    # clear message, anything far larger is refused before it is read into memory
    from hkd_core.uploads import MAX_UPLOAD_BYTES
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES * 2

    @app.server.errorhandler(Exception)
    def malformed_request(err):
        """A request the page would never send (an unknown callback, a body that is not the
        renderer's JSON): HTTP 400 with a sentence, not a bare 500 page. Callback failures never
        get here (callback_error_to_status)."""
        from werkzeug.exceptions import HTTPException

        if isinstance(err, HTTPException):       # 400, 404, 405...: the same sentence, no HTML page
            return (f"{err.code} {err.name}: {err.description}", err.code, {"Content-Type": "text/plain; charset=utf-8"})
        return (f"Bad request: the server could not read it ({type(err).__name__}: {str(err)[:200]})", 400,
                {"Content-Type": "text/plain; charset=utf-8"})

    @app.server.errorhandler(413)
    def request_too_large(_err):
        """A body over the cap: a plain sentence, not Flask's bare page (the page itself checks a
        file's size before sending it, assets/upload_limit.js)."""
        return (f"Upload rejected: the request is larger than {MAX_UPLOAD_BYTES * 2 / 2**20:.0f} MB; files may be "
                f"at most {MAX_UPLOAD_BYTES / 2**20:.0f} MB", 413, {"Content-Type": "text/plain; charset=utf-8"})
    def serve_layout():
        """Built per page load: the data-set list is read anew (uploads stay after a reload or a
        restart) and the view in the page's URL (app/urlstate.py) sets the start values."""
        from urllib.parse import urlparse

        from flask import has_request_context, request

        from app.colours import SCHEMES
        from app.urlstate import parse_state
        from hkd_core.projection import PROJECTION_LABELS

        choices = ws.dataset_choices()
        usable = [o["value"] for o in choices if not o.get("disabled")]
        query = urlparse(request.referrer or "").query if has_request_context() else ""
        state = parse_state(query, usable, MODEL_NAMES, PROJECTION_LABELS, SCHEMES)
        dataset = state.get("dataset", default_dataset)
        controls = {**ws.controls_for(dataset), **{k: v for k, v in state.items() if k in CONTROL_KEYS}}
        return build_layout(choices, dataset, MODEL_NAMES, controls, url_state=state)

    from app.views import CONTROL_KEYS

    app.layout = serve_layout
    register_callbacks(app, ws, manager, image_root=image_root)
    app.workspace = ws  # for tests and the benchmark
    app.jobs = jobs
    app.celery = manager.handle if jobs == "celery" else None   # app/worker.py: the workers' Celery app
    return app
