"""The app's workspace (app/state.py) beyond what the browser and reliability tests reach."""
import threading
import time

from app.state import Workspace

SMALL = {"synthetic": {"n_per_cluster": 25}}


def test_two_requests_for_one_map_compute_it_once(tmp_path, monkeypatch):
    """A first visit renders the map twice (the preview's codes, then the trained model's): the
    second render waits for the first's t-SNE instead of computing it again beside it."""
    import hkd_core.projection as projection

    calls = []
    real = projection.project

    def slow_project(*args, **kwargs):
        calls.append(threading.get_ident())
        time.sleep(0.5)                           # both requests arrive while it runs
        return real(*args, **kwargs)

    monkeypatch.setattr(projection, "project", slow_project)
    ws = Workspace(str(tmp_path), SMALL)
    maps = [None, None]

    def render(i):
        maps[i] = ws.projection("synthetic", "pca")

    threads = [threading.Thread(target=render, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(calls) == 1
    assert maps[0] is not None and (maps[0] == maps[1]).all()
    assert ws.has_projection("synthetic", "pca")
    ws.projection("synthetic", "tsne")            # another map is its own computation
    assert len(calls) == 2
