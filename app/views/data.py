"""The data set view: the data-set menu (its controls, map methods and colour schemes), the page's
URL (restored once the codes are shown, written back on every change), and uploads (an embedding,
a label hierarchy for it).

    on_dataset           data set -> the controls' start values, map methods, colour schemes, auto-request
    restore_from_url     the URL's branch and entity, once its model's codes are on the page
    writeUrl             (browser) the view into the URL: assets/urlstate.js, read back by app/urlstate.py
    on_upload            an embedding file -> a new data set, shown
    on_hierarchy_upload  a parent-child file for the shown upload's labels -> that upload with a hierarchy
"""
from __future__ import annotations

import uuid

from dash import ClientsideFunction, Input, Output, State, html, no_update
from dash.exceptions import PreventUpdate

from app.colours import scheme_options
from app.state import Workspace
from app.views.common import CONTROL_IDS, CONTROL_KEYS, map_method
from hkd_core.projection import PROJECTION_LABELS, available_methods


def register(app, ws: Workspace, image_root: str | None = None):
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
        method = map_method(ws, ds, url.get("projection") if from_url else None)
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

    # -- the view into the URL (assets/urlstate.js; app/urlstate.py reads it back) ----------------
    app.clientside_callback(
        ClientsideFunction(namespace="hkd", function_name="writeUrl"),
        Output("url-written", "data"),
        Input("dataset-select", "value"), [Input(i, "value") for i in CONTROL_IDS],
        Input("projection-select", "value"), Input("depth-slider", "value"), Input("colour-scheme", "value"),
        Input("branch", "data"), Input("entity-search", "value"),
    )

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
