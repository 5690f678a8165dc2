"""The page's callbacks, one module a view: thin Dash callbacks over app/state.py (the workspace),
hkd_core and the pure figure builders of app/figures.py.

    data.py        data-set menu -> controls, map methods, colour schemes; the URL (restore, write);
                   uploads (an embedding, a label hierarchy)
    training.py    what to show: cached result, quick preview or a training request; the background
                   training job; the watchdog of a dead job
    projection.py  a slow map (t-SNE / UMAP of many points): ask, background job, poll
    map.py         render (map, code tree, metrics, trade-off, slider), the browser-side recolour,
                   hover thumbnail, find box, box / lasso selection
    tree.py        code-tree click -> members; a second coder's tree side by side
    neighbours.py  entity search -> nearest neighbours; map / table click -> the entity
    export.py      figure and table exports, the entity table's CSV
    common.py      what they share: control ids, view data, colourings, the map a request draws,
                   overlay patches, model labels (no callbacks)

Flow: dataset change -> controls + auto-request -> request_model (cached result, or a quick HKM
preview plus a background training request) -> result-key -> render (map, tree, metrics,
map-groups) -> the depth slider recolours in the browser (assets/recolour.js), sunburst clicks
and searches patch overlay traces of the map.
"""
from __future__ import annotations

from app.state import Workspace
from app.views.common import CONTROL_KEYS

__all__ = ["CONTROL_KEYS", "register_callbacks"]   # create_app reads the URL's controls with CONTROL_KEYS


def register_callbacks(app, ws: Workspace, background_manager, image_root: str | None = None):
    """Register every callback of the page on ``app``, view by view."""
    from app.views import data, export, map, neighbours, projection, training, tree

    data.register(app, ws, image_root=image_root)
    training.register(app, ws, background_manager)
    projection.register(app, ws, background_manager)
    map.register(app, ws)
    tree.register(app, ws)
    neighbours.register(app, ws)
    export.register(app, ws)
    return app
