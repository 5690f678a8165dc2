"""Page layout: a CSS-grid of cards (styles in assets/app.css). No callbacks here."""
from __future__ import annotations

import dash_ag_grid as dag
from dash import dcc, html

from app.colours import SCHEME_LABELS, scheme_label
from app.controls import CONTROL_LIMITS, MAX_KNN
from hkd_core.uploads import MAX_UPLOAD_BYTES
from app.figures import ENTITY_COLUMNS, NEIGHBOUR_COLUMNS, message_figure
from hkd_core.projection import PROJECTION_LABELS

EXPORT_TARGETS = [
    {"label": "Map (figure)", "value": "map"},
    {"label": "Code tree (figure)", "value": "tree"},
    {"label": "Codes + coordinates (table)", "value": "codes"},
    {"label": "Selected points (table)", "value": "selection"},
    {"label": "Entity table", "value": "entities"},
    {"label": "Neighbour table", "value": "neighbours"},
    {"label": "Metrics table", "value": "metrics"},
]
FIGURE_FORMATS = ["png", "svg", "pdf", "html"]
TABLE_FORMATS = ["csv", "parquet"]


def _field(label, component, hint=None):
    return html.Label([html.Span(label, className="field-label"), component]
                      + ([html.Span(hint, className="field-hint")] if hint else []), className="field")


def _number(id_, value, min_, max_, step, label, hint=None):
    return _field(label, dcc.Input(id=id_, type="number", value=value, min=min_, max=max_, step=step,
                                   debounce=True, className="num"), hint)


def _control(id_, key, value):
    """A model control with the limits the server checks too (app/controls.py)."""
    typ, low, high, label = CONTROL_LIMITS[key]
    return _number(id_, value, low, high, 1 if typ is int else "any", label)


def _loading(child):
    """A view that shows it is recomputing: a spinner over the old content after 300 ms, the
    content dimmed but kept (no blank card while a projection or a model computes)."""
    return dcc.Loading(child, type="circle", delay_show=300,
                       overlay_style={"visibility": "visible", "opacity": 0.45, "filter": "blur(1px)"})


def _grid(id_, columns, height="300px", **kw):
    return dag.AgGrid(
        id=id_, columnDefs=columns, rowData=[],
        defaultColDef={"sortable": True, "resizable": True, "flex": 1, "minWidth": 80},
        dashGridOptions={"rowSelection": {"mode": "singleRow", "enableClickSelection": True},
                         "animateRows": False},
        # the grid's own CSV button: the data columns, never the thumbnails
        csvExportParams={"fileName": f"{id_}.csv", "columnKeys": [c["field"] for c in columns]},
        style={"height": height, "width": "100%"}, **kw)


def controls_card(dataset_options, default_dataset, model_names, controls):
    return html.Div(className="card controls", children=[
        html.H3("Data & model"),
        _field("Dataset", dcc.Dropdown(id="dataset-select", options=dataset_options, value=default_dataset,
                                       clearable=False)),
        dcc.Upload(id="upload", className="upload", multiple=False,
                   children=html.Div(["Drop or ", html.A("choose"), " a CSV / NPY / Parquet file"])),
        html.Div(id="upload-error", className="alert", role="alert", hidden=True,
                 **{"data-max-bytes": str(MAX_UPLOAD_BYTES)}),       # assets/upload_limit.js reads it
        dcc.Upload(id="hierarchy-upload", className="upload small", multiple=False,
                   children=html.Div(["+ a label hierarchy for the shown upload ('PARENT CHILD' per line)"])),
        html.Div(id="dataset-info", className="muted small"),
        _field("Model", dcc.Dropdown(id="model-select", value=controls["model"], clearable=False,
                                     options=[{"label": m, "value": m} for m in model_names])),
        html.Div(className="grid2", children=[
            *[_control(id_, key, controls[key]) for id_, key in (
                ("param-K", "K"), ("param-D", "D"), ("param-alpha", "alpha"), ("param-beta", "beta"),
                ("param-perplexity", "perplexity"), ("param-epochs", "epochs"),
                ("param-kmeans", "kmeans_exemplars"), ("param-random", "random_exemplars"))],
        ]),
        html.Div(className="buttons", children=[
            html.Button("Train", id="train-button", className="btn primary", n_clicks=0),
            html.Button("Cancel", id="cancel-button", className="btn", n_clicks=0, disabled=True),
        ]),
        html.Progress(id="train-progress", value="0", max="1", className="progress"),
        html.Div(id="progress-text", className="muted small"),
        html.Div(id="train-status", className="muted small", children="", **{"aria-live": "polite"}),
    ])


def map_card(depth_max, depth=1, scheme="hierarchical"):
    return html.Div(className="card map-card", children=[
        html.Div(className="card-head", children=[
            html.H3("Map"),
            dcc.Dropdown(id="projection-select", clearable=False, className="inline-dd", value=None,
                         options=[{"label": v, "value": k} for k, v in PROJECTION_LABELS.items()]),
            dcc.Dropdown(id="colour-scheme", value=scheme, clearable=False, className="inline-dd scheme",
                         options=[{"label": "colour: " + text, "value": key}
                                  for key, text in SCHEME_LABELS.items()]
                         + ([] if scheme in SCHEME_LABELS else [{"label": "colour: " + scheme_label(scheme),
                                                                 "value": scheme}])),
        ]),
        html.Div(className="slider-row", children=[
            html.Span("prefix depth N", className="field-label"),
            html.Div(dcc.Slider(id="depth-slider", min=0, max=depth_max, step=1, value=depth, updatemode="drag",
                                marks={i: str(i) for i in range(0, depth_max + 1)}, allow_direct_input=False),
                     className="slider"),
            html.Span(id="depth-label", className="badge"),
        ]),
        html.Div(className="find-row", children=[
            dcc.Input(id="find-box", type="text", debounce=True, maxLength=200, className="find",
                      placeholder="Find: a name, a label (label: cat) or a code prefix (7 13, code: 7d)"),
            html.Span(id="find-info", className="muted small", **{"aria-live": "polite"}),
        ]),
        html.Div(id="map-caption", className="muted small caption"),
        # the tooltip sits beside the graph in one positioned box: its bbox is in the graph's pixels
        html.Div(className="map-box", children=[
            _loading(dcc.Graph(id="map", figure=message_figure("Loading data…"), className="map-graph",
                               config={"displaylogo": False, "scrollZoom": True})),
            dcc.Tooltip(id="map-tooltip", direction="right", loading_text="…"),
        ]),
        html.Div(id="map-legend", className="legend"),
    ])


def tree_card():
    return html.Div(className="card tree-card", children=[
        html.Div(className="card-head", children=[
            html.H3("Code tree"),
            html.Span("click a branch to list its members", className="muted small"),
        ]),
        _loading(dcc.Graph(id="code-tree", figure=message_figure("Waiting for codes…"), className="tree-graph",
                           config={"displaylogo": False})),
        html.Div(id="selection-info", className="muted small"),
        dcc.Dropdown(id="compare-select", options=[], value=None, clearable=True,
                     placeholder="Compare with another coder's tree on this data set…"),
        html.Div(id="compare-box", hidden=True, children=[
            _loading(dcc.Graph(id="code-tree-2", figure=message_figure(""), className="tree-graph compare",
                               config={"displaylogo": False})),
        ]),
    ])


def entity_card():
    return html.Div(className="card entity-card", children=[
        html.Div(className="card-head", children=[
            html.H3("Entities: clicked branch or map selection"),
            html.Button("CSV", id="entity-csv", className="btn small", n_clicks=0),
        ]),
        _grid("entity-table", ENTITY_COLUMNS),
    ])


def neighbour_card():
    return html.Div(className="card", children=[
        html.Div(className="card-head", children=[
            html.H3("Nearest neighbours"),
            html.Label(["k ", dcc.Input(id="param-knn", type="number", value=10, min=1, max=MAX_KNN, step=1,
                                        debounce=True, className="num knn")], className="inline-field"),
        ]),
        dcc.Dropdown(id="entity-search", placeholder="Search an entity, e.g. dog.n.01", options=[],
                     searchable=True, clearable=True),
        _grid("neighbour-table", NEIGHBOUR_COLUMNS, height="270px"),
    ])


def metrics_card():
    return html.Div(className="card wide", children=[
        html.Div(className="card-head", children=[
            html.H3("Trade-off: neighbour sharing against search-space reduction"),
            html.Span("share: fraction of the k nearest input-space neighbours with the same first N codes; "
                      "reduction: 1 − (points with the same first N codes)/n", className="muted small"),
        ]),
        _loading(dcc.Graph(id="tradeoff", figure=message_figure("Waiting for codes…"),
                           config={"displaylogo": False}, className="tradeoff-graph")),
        html.Div("the same numbers, per depth N:", className="muted small"),
        dag.AgGrid(id="metrics-table", columnDefs=[], rowData=[],
                   defaultColDef={"sortable": False, "resizable": True},
                   dashGridOptions={"domLayout": "autoHeight", "suppressMovableColumns": True},
                   style={"width": "100%"}),
    ])


def export_card():
    return html.Div(className="card export", children=[
        html.H3("Export"),
        html.Div(className="grid2", children=[
            _field("What", dcc.Dropdown(id="export-target", options=EXPORT_TARGETS, value="map", clearable=False)),
            _field("Format", dcc.Dropdown(id="export-format", options=FIGURE_FORMATS, value="png", clearable=False)),
        ]),
        html.Button("Download", id="export-button", className="btn primary", n_clicks=0),
        html.Div(id="export-status", className="muted small"),
        dcc.Download(id="download"),
    ])


def build_layout(dataset_options, default_dataset, model_names, controls, depth_max=16, url_state=None):
    """The page. ``url_state`` (app/urlstate.parse_state of the page's URL) sets the depth and the
    colour scheme here; the projection, branch and entity are applied by callbacks once the data
    and codes are there."""
    url_state = dict(url_state or {})
    depth = int(min(url_state.get("depth", 1), depth_max))
    return html.Div(className="page", children=[
        html.Header(className="topbar", children=[
            html.Div([html.H1("HKD Explorer"),
                      html.Span("hierarchical K-way D-dimensional codes of embeddings", className="muted")]),
            html.Div(id="status", className="status", children="Starting…"),
        ]),
        html.Main(className="layout", children=[
            controls_card(dataset_options, default_dataset, model_names, controls),
            map_card(depth_max, depth, url_state.get("colour", "hierarchical")),
            tree_card(),
            entity_card(),
            neighbour_card(),
            metrics_card(),
            export_card(),
        ]),
        # Browser-side state: small keys only; big arrays stay on the server (app/state.py).
        dcc.Store(id="result-key"),          # {"key", "model", "dataset", "preview"}
        dcc.Store(id="train-request"),       # {"dataset", "model", "params", "key"}
        dcc.Store(id="projection-request"),  # {"dataset", "method"}: a slow map for the background job
        dcc.Store(id="projection-ready"),    # {"dataset", "method"}: that map is in the cache
        dcc.Interval(id="projection-poll", interval=1500, disabled=True),   # watches for it
        dcc.Interval(id="job-watchdog", interval=5000),   # a training job whose process died
        dcc.Store(id="auto-request"),        # set when the dataset changes
        dcc.Store(id="map-groups"),          # per-depth colour slots + legends for recolour.js
        dcc.Store(id="selection"),           # rows selected on the map (box / lasso)
        dcc.Store(id="url-state", data=url_state),   # the view in the URL, applied once
        dcc.Store(id="branch"),              # the clicked code-tree branch (kept in the URL)
        dcc.Store(id="url-written"),         # output of the clientside URL writer
    ])
