"""What the views share: the page's control ids, per-result view data and colourings, the map
a request may draw, figure patches that keep the page's depth and colours, and model labels.

Pure helpers over the workspace (app/state.py): no callback is registered here.
"""
from __future__ import annotations

import json

import numpy as np
from dash import Patch, State

from app import figures as F
from app.colours import depth_colours
from app.controls import check_depth
from app.state import Workspace
from hkd_core.projection import available_methods
from hkd_core.tree import CodeTree, branch_labeller, format_codes, parse_prefix, sunburst_frame

CONTROL_IDS = ["model-select", "param-K", "param-D", "param-alpha", "param-beta", "param-perplexity",
               "param-epochs", "param-kmeans", "param-random"]
CONTROL_KEYS = ["model", "K", "D", "alpha", "beta", "perplexity", "epochs", "kmeans_exemplars",
                "random_exemplars"]
SUNBURST_DEPTH = 4
# the result on the page and how its map is drawn (result, method, depth, scheme): the states of
# every callback that patches the map (overlay_context) or exports what it shows
MAP_VIEW_STATE = (State("result-key", "data"), State("projection-select", "value"), State("depth-slider", "value"),
                  State("colour-scheme", "value"))


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


# -- the map a request draws --------------------------------------------------------------------

def map_method(ws: Workspace, ds, method) -> str:
    """The projection the page asked for if the data allow it, else the data set's default: the
    one fallback of every view that draws or asks for a map."""
    if method not in available_methods(ds.X.shape[1]):
        method = ws.default_projection(ds.X.shape[1])
    return method


def map_xy(ws: Workspace, result: dict, method) -> tuple:
    """(projection method actually drawn, its coordinates): never a slow projection in a
    request (Workspace.projection_now; app/views/projection.py computes it in the background)."""
    return ws.projection_now(result["dataset"], map_method(ws, ws.dataset(result["dataset"]), method))


def overlay_context(ws: Workspace, result: dict, method, depth, scheme) -> tuple:
    """What every overlay callback starts from: the result's view data, the map coordinates,
    and a figure patch that keeps the page's depth and colours."""
    v = view_data(ws, result["key"])
    method, xy = map_xy(ws, result, method)
    return v, xy, recolour_patch(ws, v, scheme or "hierarchical", depth, method, xy)


def view_hover(ws: Workspace, v: dict) -> list:
    return ws.derived((v["meta"].get("fingerprint"), v["meta"]["model"], id(v), "hover"),
                      lambda: F.hover_texts(v["dataset"].names, v["dataset"].labels, v["strings"]))


def metrics_rows_for(ws: Workspace, dataset_key: str, current_key: str, limit: int = 12) -> list[tuple]:
    """(label, metrics, is current, result key) for the shown model and the newest cached results of the
    data set, labelled so that two runs of one model are told apart by their parameters."""
    keys = [current_key] + [k for k in reversed(list(ws.cached_results(dataset_key))) if k != current_key]
    results = [(k, ws.result(k)) for k in keys[:limit]]
    results = [(k, r) for k, r in results if r and r.get("metrics")]
    labels = distinct_labels([r["meta"] for _, r in results])
    return [(label + (" — shown" if k == current_key else ""), r["metrics"], k == current_key, k)
            for label, (k, r) in zip(labels, results)]
