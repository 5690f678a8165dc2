"""Malformed input through the real server (HTTP on loopback, the page's own callback requests):
every case gets a clear message, never an HTTP 500, and a normal request works right after.

The requests are the ones the Dash page sends (``POST /_dash-update-component``), built from the
app's callback map, so a value the page's inputs would never produce (K=2.7, depth "x", a data
set "../../etc/passwd") reaches the callbacks exactly as a hand-made request would.
"""
from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
from app import create_app
from app.client import CallbackClient, LoopbackServer

SMALL = {"synthetic": {"n_per_cluster": 10}}
GOOD_CONTROLS = {"model-select": "hkm", "param-K": 4, "param-D": 4, "param-alpha": 1.0, "param-beta": 1.0,
                 "param-perplexity": 10.0, "param-epochs": 5, "param-kmeans": 0, "param-random": 0}


class Server(CallbackClient):
    """The app on loopback with the page's callback client (app/client.py)."""

    def __init__(self, app):
        self.loopback = LoopbackServer(app)
        super().__init__(app, self.loopback.url)

    def callback(self, output_prefix: str, values: dict, changed: str | None = None):
        first = "upload.contents" if output_prefix.startswith("..upload-error") else None
        return self.call(output_prefix, values, changed, first_input=first)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app = create_app(cache_dir=str(tmp_path_factory.mktemp("reliability")), default_dataset="synthetic",
                     dataset_options=SMALL, controls={"model": "hkm"}, projection="pca")
    s = Server(app)
    yield s
    s.loopback.stop()


def train(server, **overrides):
    values = {**GOOD_CONTROLS, "dataset-select": "synthetic", "train-button": 1, **overrides}
    return server.callback("..result-key.data...train-request.data", values, changed="train-button.n_clicks")


@pytest.fixture(scope="module")
def result(server):
    status, text = train(server)
    assert status == 200, text
    return json.loads(text)["response"]["result-key"]["data"]


def assert_normal_afterwards(server, result):
    assert server.get("/")[0] == 200
    status, text = train(server)
    assert status == 200 and "loaded from cache" in text or "trained" in text


def data_url(raw: bytes, mime="application/octet-stream") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def parquet(frame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def npy(array, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


UPLOADS = [  # (case, filename, contents, words the message must hold)
    ("empty file", "e.csv", data_url(b""), "empty"),
    ("binary as csv", "b.csv", data_url(bytes(range(256)) * 4), "not UTF-8"),
    ("unsupported extension", "x.exe", data_url(b"1,2\n3,4\n"), "unsupported file type"),
    ("no extension", "data", data_url(b"1,2\n3,4\n"), "without an extension"),
    ("ragged rows", "r.csv", data_url(b"x,y\n1,2\n3,4,5\n6,7\n"), "ragged rows"),
    ("word in a number column", "w.csv", data_url(b"name,x,y\na,1,2\nb,3,oops\nc,5,6\n"), "'oops'"),
    ("NaN cell", "n.csv", data_url(b"x,y\n1,2\nnan,4\n5,6\n"), "NaN"),
    ("one row", "o.csv", data_url(b"x,y\n1,2\n"), "need at least 2 rows"),
    ("only text columns", "t.csv", data_url(b"name,label\ndog,a\ncat,b\n"), "no numeric columns"),
    ("pickled npy", "p.npy", data_url(npy(np.array([{"a": 1}], dtype=object), allow_pickle=True)), "unpickling"),
    ("1-d npy", "d.npy", data_url(npy(np.arange(5.0))), "2-d"),
    ("not an npy", "f.npy", data_url(b"hello world"), "not a .npy"),
    ("truncated parquet", "t.parquet", data_url(parquet(pd.DataFrame({"x": [1.0, 2.0]}))[:-30]), "Parquet"),
    ("not a parquet", "n.parquet", data_url(b"x,y\n1,2\n"), "not a Parquet"),
    ("ragged list column", "l.parquet", data_url(parquet(pd.DataFrame({"e": [[1.0, 2.0], [1.0]]}))), "ragged"),
    ("invalid base64", "i.csv", "data:text/csv;base64,@@@@", "not valid base64"),
    ("data URL without comma", "c.csv", "data:text/csv;base64", "malformed data URL"),
    ("two file names", ["a.csv", "b.csv"], data_url(b"x,y\n1,2\n3,4\n"), "one file at a time"),
    ("file name not text", {"evil": 1}, data_url(b"x,y\n1,2\n3,4\n"), "must be text"),
    ("infinite value", "inf.csv", data_url(b"x,y\n1,2\ninf,4\n5,6\n"), "Inf"),
]


@pytest.mark.parametrize("case, filename, contents, words", UPLOADS, ids=[u[0] for u in UPLOADS])
def test_malformed_upload_gets_its_message(server, result, case, filename, contents, words):
    status, text = server.callback("..upload-error.children", {"upload.contents": contents,
                                                                "upload.filename": filename})
    assert status == 200, text
    message = json.loads(text)["response"]["upload-error"]["children"]
    assert message.startswith("Upload rejected:") and words.lower() in message.lower(), message
    assert_normal_afterwards(server, result)


BAD_TRAINING = [  # (case, overrides, words)
    ("unknown data set", {"dataset-select": "nope"}, "unknown data set 'nope'"),
    ("path as data set", {"dataset-select": "../../etc/passwd"}, "unknown data set"),
    ("upload not in the cache", {"dataset-select": "upload:deadbeef"}, "unknown data set"),
    ("unknown model", {"model-select": "evil"}, "unknown model 'evil'"),
    ("K a fraction", {"param-K": 2.7}, "K (code values) must be a whole number in [2, 256], got 2.7"),
    ("K too large for the page", {"param-K": 1024}, "in [2, 256], got 1024"),
    ("D too large for the page", {"param-D": 256}, "D (code length) must be a whole number in [1, 64]"),
    ("K as text", {"param-K": "abc"}, "got 'abc'"),
    ("negative epochs", {"param-epochs": -1}, "epochs must be"),
    ("alpha NaN", {"param-alpha": "nan"}, "α (reconstruction) must be a number"),
    ("K a bool", {"param-K": True}, "got True"),
    ("perplexity 1e9", {"param-perplexity": 1e9}, "perplexity must be a number in [2, 200]"),
]


@pytest.mark.parametrize("case, overrides, words", BAD_TRAINING, ids=[c[0] for c in BAD_TRAINING])
def test_bad_training_request_gets_its_message(server, result, case, overrides, words):
    status, text = train(server, **overrides)
    assert status == 200, text
    assert words in json.loads(text)["response"]["status"]["children"]
    assert_normal_afterwards(server, result)


def view_values(result, **overrides):
    return {"result-key": result, "projection-select": "pca", "colour-scheme": "hierarchical",
            "dataset-select": "synthetic", "depth-slider": 1, **overrides}


BAD_VIEWS = [  # (case, callback, overrides, words)
    ("unknown result key", "..map.figure...map-groups", {"result-key": {"key": "result:nope", "dataset": "synthetic"}},
     "not in the cache"),
    ("depth as text", "..map.figure...map-groups", {"depth-slider": "x"}, "prefix depth N must be a whole number"),
    ("negative depth", "..map.figure...map-groups", {"depth-slider": -7}, "got -7"),
    ("k as text", "..neighbour-table.rowData", {"entity-search": "n0", "param-knn": "abc"}, "k (neighbours) must be"),
    ("k negative", "..neighbour-table.rowData", {"entity-search": "n0", "param-knn": -5}, "got -5"),
    ("k huge", "..neighbour-table.rowData", {"entity-search": "n0", "param-knn": 1e9}, "in [1, 100]"),
    ("depth fraction on a selection", "..entity-table.rowData@",
     {"map.selectedData": {"points": [{"curveNumber": 0, "customdata": 1}]}, "depth-slider": 1.5}, "whole number"),
]


@pytest.mark.parametrize("case, callback, overrides, words", BAD_VIEWS, ids=[c[0] for c in BAD_VIEWS])
def test_bad_view_request_says_why(server, result, case, callback, overrides, words):
    values = view_values(result, **overrides)
    if "entity-search" in overrides:   # the searched name must exist in the data set
        values["entity-search"] = server.app.workspace.dataset("synthetic").names[0]
    first = "selectedData" if callback == "..entity-table.rowData@" else None
    status, text = server.call(callback, values, first_input=first)
    assert status == 200, text
    side = json.loads(text).get("sideUpdate", {})
    assert words in json.dumps(side, ensure_ascii=False), text[:500]
    assert_normal_afterwards(server, result)


def test_the_suite_has_at_least_30_cases():
    assert len(UPLOADS) + len(BAD_TRAINING) + len(BAD_VIEWS) >= 30


def test_a_body_over_the_cap_gets_a_sentence_not_a_bare_413(server):
    from hkd_core.uploads import MAX_UPLOAD_BYTES

    body = b"x" * (MAX_UPLOAD_BYTES * 2 + 1)
    request = urllib.request.Request(server.url + "/_dash-update-component", data=body,
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=120)
    assert info.value.code == 413
    text = info.value.read().decode()
    assert text.startswith("Upload rejected: the request is larger than") and "at most 50 MB" in text
    assert server.get("/")[0] == 200


def test_a_dead_training_job_gives_the_train_button_back(server):
    """The page left open after its job's process was killed (kill -9, or the server restarted):
    the watchdog sees no live process and no result, and says so."""
    import subprocess
    import time

    ws = server.app.workspace
    key = "result:dead" + "0" * 20
    child = subprocess.Popen(["sleep", "60"])
    ws.store.put_json("training:" + key, {"pid": child.pid, "started": time.time()})
    request = {"key": key, "model": "hkd", "dataset": "synthetic", "asked": time.time() - 600}
    values = {"job-watchdog.n_intervals": 3, "train-request.data": request, "train-button.disabled": True}
    status, _ = server.callback("..train-button.disabled", values)
    assert status == 204                          # the job's process is alive: nothing to do
    child.kill()                                  # kill -9 of the training job
    child.wait()
    status, text = server.callback("..train-button.disabled", values)
    assert status == 200, text
    response = json.loads(text)["response"]
    assert response["train-button"]["disabled"] is False and response["cancel-button"]["disabled"] is True
    assert "stopped without a result" in response["status"]["children"]
    assert ws.store.get_json("training:" + key) is None       # the stale marker is gone
    fresh = dict(request, asked=time.time())                  # a job that has only just been asked for
    status, _ = server.callback("..train-button.disabled", dict(values, **{"train-request.data": fresh}))
    assert status == 204


def test_a_result_the_page_never_received_is_shown_by_the_watchdog(server, result, monkeypatch):
    """The job stored its result but the page's poll of the job broke off (a failed request, a
    server thread gone): the page would wait forever with Train disabled. Past a grace time the
    watchdog shows the stored result and gives the button back."""
    import time

    from app.views import training

    request = {"key": result["key"], "model": "hkm", "dataset": "synthetic", "asked": time.time() - 60}
    values = {"job-watchdog.n_intervals": 3, "train-request.data": request, "train-button.disabled": True}
    monkeypatch.setattr(training, "RESULT_PICKUP_GRACE_S", 3600)
    status, _ = server.callback("..train-button.disabled", values)
    assert status == 204                          # just stored: the job's own reply is on its way
    monkeypatch.setattr(training, "RESULT_PICKUP_GRACE_S", 0)
    status, text = server.callback("..train-button.disabled", values)
    assert status == 200, text
    response = json.loads(text)["response"]
    assert response["result-key"]["data"] == {"key": result["key"], "dataset": "synthetic", "model": "hkm"}
    assert response["train-button"]["disabled"] is False and response["cancel-button"]["disabled"] is True
    assert "codes ready" in response["status"]["children"]
    idle = {"train-button.disabled": False}
    # the job's reply was dropped with the button already given back: a page still showing the
    # data set's quick preview (or label view) is shown the result it asked for
    for shown in ({"key": "result:preview", "dataset": "synthetic", "model": "hkm", "preview": True},
                  {"key": None, "dataset": "synthetic", "model": None, "preview": True}):
        status, text = server.callback("..train-button.disabled", dict(values, **idle, **{"result-key.data": shown}))
        assert status == 200 and json.loads(text)["response"]["result-key"]["data"]["key"] == result["key"], text
    # a page that is not waiting, or shows a result the user chose, is left alone
    chosen = {"key": "result:chosen", "dataset": "synthetic", "model": "hkd"}
    for page in (idle, dict(idle, **{"result-key.data": chosen}),
                 dict(idle, **{"result-key.data": {"key": None, "dataset": "other", "preview": True}})):
        status, _ = server.callback("..train-button.disabled", dict(values, **page))
        assert status == 204


def test_a_request_the_page_never_sends_gets_400_with_a_sentence(server):
    status, text = server.post("/_dash-update-component", b'{"output": "no-such.prop", "inputs": []}')
    assert status == 400 and text.startswith("Bad request: the server could not read it")
    status, text = server.post("/_dash-update-component", b"not json at all")
    assert status in (400, 415) and "<html" not in text.lower()
    assert server.get("/")[0] == 200


def test_load_bench_quick_runs_without_errors(capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_load.py"
    spec = importlib.util.spec_from_file_location("bench_load", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick"]) == 0                   # no error in any request
    out = capsys.readouterr().out
    assert "p95 ms" in out and "tree click" in out and "entity search" in out


def test_a_label_hierarchy_joins_an_upload_through_the_server(server):
    csv = b"name,label,x,y\n" + b"".join(f"r{i},{'dog' if i % 2 else 'cat'},{i},{i % 3}\n".encode() for i in range(20))
    status, text = server.callback("..upload-error.children", {"upload.contents": data_url(csv, "text/csv"),
                                                                "upload.filename": "pets.csv"})
    key = json.loads(text)["response"]["dataset-select"]["value"]
    bad = data_url(b"animal dog\n")                                      # cat is missing
    status, text = server.call("..upload-error.children@", {"hierarchy-upload.contents": bad,
                                                             "hierarchy-upload.filename": "tree.txt",
                                                             "dataset-select.value": key},
                               first_input="hierarchy-upload.contents")
    assert status == 200 and "not in 'tree.txt'" in text and "'cat'" in text
    good = data_url(b"animal dog\nanimal cat\n")
    status, text = server.call("..upload-error.children@", {"hierarchy-upload.contents": good,
                                                             "hierarchy-upload.filename": "tree.txt",
                                                             "dataset-select.value": key},
                               first_input="hierarchy-upload.contents")
    assert status == 200, text
    new_key = json.loads(text)["response"]["dataset-select"]["value"]
    assert new_key != key
    server.app.workspace._datasets.clear()                               # read it back from the store
    assert server.app.workspace.dataset(new_key).hierarchy == {"dog": "animal", "cat": "animal"}


# ---------------------------------------------------------------- kill -9 during a cache write

HANGING_SERVER = """
import os, sys, time
from hkd_core.store import ArtefactStore

cache_dir, port, prefix, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
real = ArtefactStore._write_parts

def first_part_then_hang(self, key, blob, text):
    # inside the write transaction: the first part is written, the rest never is (a kill -9 lands here)
    if key.startswith(prefix) and blob is not None and text is not None:
        real(self, key, blob, None)
        with open(marker, "w") as fh:
            fh.write(key)
        time.sleep(3600)
    return real(self, key, blob, text)

if prefix:
    ArtefactStore._write_parts = first_part_then_hang
from app import create_app
# 4,800 rows: their codes are bigger than diskcache's inline limit, so the first part is a file
app = create_app(cache_dir=cache_dir, default_dataset="synthetic", dataset_options={"synthetic": {"n_per_cluster": 300}},
                 controls={"model": "hkm"}, projection="pca")
app.run(host="127.0.0.1", port=port, debug=False)
"""


class ServerProcess(CallbackClient):
    """``python app.py``'s server as its own process (so it can be killed with -9), driven through
    the callback map of an identical app built here on another cache directory."""

    def __init__(self, client_app, cache_dir, prefix="", marker=""):
        import os
        import socket
        import subprocess
        import sys
        import time

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen([sys.executable, "-c", HANGING_SERVER, cache_dir, str(port), prefix, marker],
                                     cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        super().__init__(client_app, f"http://127.0.0.1:{port}", timeout=120)
        end = time.time() + 120
        while time.time() < end:
            try:
                if self.get("/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise AssertionError("the server did not start")

    def kill(self):
        import os

        os.killpg(self.proc.pid, 9)
        self.proc.wait(30)


@pytest.fixture(scope="module")
def client_app(tmp_path_factory):
    return create_app(cache_dir=str(tmp_path_factory.mktemp("callback-map")), default_dataset="synthetic",
                      dataset_options=SMALL, controls={"model": "hkm"}, projection="pca")


def upload_request(name="killed.csv"):
    # 3,000 x 8 float32: bigger than diskcache's inline limit, so the first part is a file on disk
    header = "name," + ",".join(f"x{j}" for j in range(8)) + "\n"
    csv = (header + "".join(f"p{i}," + ",".join(str((i * (j + 3)) % 97) for j in range(8)) + "\n"
                            for i in range(3000))).encode()
    return {"upload.contents": data_url(csv, "text/csv"), "upload.filename": name}


def send_upload(server, values):
    return server.call("..upload-error.children", values, first_input="upload.contents")


def send_train(server, values):
    return server.call("..result-key.data...train-request.data", values, changed="train-button.n_clicks")


@pytest.mark.parametrize("what", ["result", "dataset"])
def test_kill_9_during_a_cache_write_then_a_restart_serves_no_half_entry(client_app, tmp_path, what):
    """The server is killed (-9) inside the write of a trained result / an uploaded data set, with
    one part written. The restarted server on the same cache retrains / accepts the upload again
    and serves it whole; it never serves the half entry, and the orphaned value file is removed."""
    import os
    import threading
    import time

    cache, marker = str(tmp_path / "cache"), str(tmp_path / "in-the-write")
    values = upload_request() if what == "dataset" else {**GOOD_CONTROLS, "dataset-select": "synthetic",
                                                         "train-button": 1}
    send = send_upload if what == "dataset" else send_train
    first = ServerProcess(client_app, cache, prefix=what + ":", marker=marker)
    try:
        threading.Thread(target=lambda: _quietly(send, first, values), daemon=True).start()
        end = time.time() + 120
        while not os.path.exists(marker) and time.time() < end:
            time.sleep(0.1)
        assert os.path.exists(marker), "the request never reached the cache write"
    finally:
        first.kill()
    key = open(marker).read()
    import diskcache

    with diskcache.Cache(os.path.join(cache, "artefacts")) as raw:    # what the kill left
        left = raw.check(fix=False)
    assert any("unknown file" in str(w.message) for w in left), left  # the first part's value file

    second = ServerProcess(client_app, cache)
    try:
        from hkd_core.store import ArtefactStore

        if what == "result":
            status, text = send_train(second, values)
            assert status == 200 and "trained" in text and "loaded from cache" not in text, text
            assert json.loads(text)["response"]["result-key"]["data"]["key"] == key
            status, text = send_train(second, values)                    # now cached, and whole
            assert status == 200 and "loaded from cache" in text, text
        else:
            assert second.get("/")[0] == 200
            layout = second.get("/_dash-layout")[1].decode()
            assert "killed.csv" not in layout                            # the half upload is not listed
            status, text = send_upload(second, values)
            assert status == 200, text
            assert json.loads(text)["response"]["dataset-select"]["value"] == "upload:" + key[len("dataset:"):]
            assert "killed.csv" in second.get("/_dash-layout")[1].decode()
        assert second.get("/")[0] == 200
    finally:
        second.kill()
    store = ArtefactStore(os.path.join(cache, "artefacts"))
    assert key in store and store.cleanup()["removed"] == []
    # no value file that no entry points to
    assert not any("unknown file" in w for w in store.cleanup()["files"])


def _quietly(send, server, values):
    try:
        send(server, values)
    except OSError:                     # the connection dies with the server: expected
        pass
