"""A small HTTP client for the page's own callback requests, and a loopback server to aim it at:
what the reliability tests (tests/test_reliability.py) and the load benchmark
(bench/bench_load.py) use to drive the real server without a browser.

``CallbackClient.call("..result-key.data...train-request.data", {"dataset-select": "mammals", ...})``
builds the ``POST /_dash-update-component`` body the Dash renderer would send for the callback
whose output key starts with that prefix, from the app's callback map. A background callback
(training, slow maps) answers that first request with its job's handles; ``call_background``
then polls with them as the renderer does, until the job's response (or its end without one).
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from werkzeug.serving import make_server


class LoopbackServer:
    """The app's Flask server on 127.0.0.1 (a free port), threaded, in a daemon thread."""

    def __init__(self, app):
        self.app = app
        self.httpd = make_server("127.0.0.1", 0, app.server, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()


class CallbackClient:
    def __init__(self, app, url: str, timeout: float = 120):
        self.app, self.url, self.timeout = app, url.rstrip("/"), timeout

    def key(self, output_prefix: str, first_input: str | None = None) -> str:
        """The callback-map key of the one callback whose outputs start with ``output_prefix``
        (and whose first input is ``first_input``, "prop" or "id.prop", when several do)."""
        def first(v):
            item = v["inputs"][0]
            return first_input in (item["property"], f"{item['id']}.{item['property']}")

        matches = [k for k, v in self.app.callback_map.items() if k.startswith(output_prefix)
                   and (first_input is None or first(v))]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} callbacks match {output_prefix!r}: {matches[:3]}")
        return matches[0]

    def body(self, key: str, values: dict, changed: str | None = None) -> dict:
        spec = self.app.callback_map[key]

        def items(kind):
            out = []
            for item in spec.get(kind, []):
                name = f"{item['id']}.{item['property']}"
                out.append({"id": item["id"], "property": item["property"],
                            "value": values.get(name, values.get(item["id"]))})
            return out

        inputs = items("inputs")
        outputs = [{"id": o.split(".")[0], "property": o.split(".")[1].split("@")[0]}
                   for o in key.strip(".").split("...")]
        return {"output": key, "outputs": outputs if key.startswith("..") else outputs[0],
                "inputs": inputs, "state": items("state"),
                "changedPropIds": [changed or f"{inputs[0]['id']}.{inputs[0]['property']}"]}

    def call(self, output_prefix: str, values: dict, changed: str | None = None,
             first_input: str | None = None) -> tuple[int, str]:
        """(HTTP status, response text) of one callback request."""
        body = self.body(self.key(output_prefix, first_input), values, changed)
        return self.post("/_dash-update-component", json.dumps(body).encode())

    def call_background(self, output_prefix: str, values: dict, changed: str | None = None,
                        timeout: float = 120, interval: float = 0.5, on_poll=None) -> tuple[int, str, list]:
        """(HTTP status, response text, progress values seen) of a background callback: the
        first request starts the job, then the renderer's polls (``?cacheKey=..&job=..``) until
        the job answers. ``on_poll(status, text)`` is called after each poll (a test can check
        the server meanwhile). A callback that is not a background one answers the first request."""
        data = json.dumps(self.body(self.key(output_prefix), values, changed)).encode()
        status, text = self.post("/_dash-update-component", data)
        handles = json.loads(text) if status == 200 else {}
        if "cacheKey" not in handles:
            return status, text, []
        query = urllib.parse.urlencode({"cacheKey": handles["cacheKey"], "job": handles["job"]})
        progress, end = [], time.time() + timeout
        while time.time() < end:
            time.sleep(interval)
            status, text = self.post("/_dash-update-component?" + query, data)
            if on_poll is not None:
                on_poll(status, text)
            if status != 200:
                return status, text, progress            # 204: the job ended without an update
            answer = json.loads(text)
            if answer.get("progress"):
                progress.append(answer["progress"])
            if "response" in answer:
                return status, text, progress
        raise TimeoutError(f"background callback {output_prefix!r} gave no answer in {timeout} s "
                           f"(progress seen: {progress[-1:] or 'none'})")

    def post(self, path: str, data: bytes) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def get(self, path: str = "/") -> tuple[int, bytes]:
        with urllib.request.urlopen(self.url + path, timeout=self.timeout) as resp:
            return resp.status, resp.read()
