"""Load on the real server: concurrent sessions redrawing the map, clicking the code tree,
searching an entity and finding a code prefix, for a bounded time, on loopback only.

    python bench/bench_load.py                      # 20 sessions for 60 s on WordNet mammals
    python bench/bench_load.py --sessions 5 --seconds 20
    python bench/bench_load.py --quick              # 3 sessions for 5 s (the test suite runs this)

Each session sends the requests the page sends (app/client.py builds them from the callback
map) one after another, as a user's browser would; the server is the app's own threaded Flask
server on 127.0.0.1. Prints, per request kind, the count, the errors (HTTP status other than 200
and 204, or a failure message in the reply) and the p50 / p95 / p99 latency in ms. Times are
wall-clock on shared machines: compare runs made side by side, not with another day's.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CONTROLS = {"model-select": "hkm", "param-K": 2, "param-D": 10, "param-alpha": 1.0, "param-beta": 1.0,
            "param-perplexity": 10.0, "param-epochs": 5, "param-kmeans": 0, "param-random": 0}
FAILURE_WORDS = ("Invalid request", "Not found", "Could not update", "failed")


def percentiles(ms: list[float]) -> tuple[float, float, float]:
    if not ms:
        return (float("nan"),) * 3
    return tuple(float(np.percentile(ms, q)) for q in (50, 95, 99))


def run(sessions: int, seconds: float, dataset: str, projection: str, cache_dir: str | None,
        dataset_options: dict | None = None) -> dict:
    import logging

    from app import create_app
    from app.client import CallbackClient, LoopbackServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)        # no line per request

    app = create_app(cache_dir=cache_dir or tempfile.mkdtemp(prefix="hkd_load_"), default_dataset=dataset,
                     controls={"model": "hkm"}, projection=projection, dataset_options=dataset_options)
    server = LoopbackServer(app)
    client = CallbackClient(app, server.url)
    base = {**CONTROLS, "dataset-select": dataset, "train-button": 1}
    status, text = client.call("..result-key.data...train-request.data", base, changed="train-button.n_clicks")
    if status != 200:
        raise RuntimeError(f"training request failed: HTTP {status}: {text[:300]}")
    result = json.loads(text)["response"]["result-key"]["data"]
    view = {"result-key": result, "projection-select": projection, "colour-scheme": "hierarchical",
            "dataset-select": dataset, "depth-slider": 1}
    status, text = client.call("..map.figure...map-groups", view)
    if status != 200:
        raise RuntimeError(f"first render failed: HTTP {status}: {text[:300]}")
    response = json.loads(text)["response"]
    groups = response["map-groups"]["data"]
    tree_ids = [i for i in response["code-tree"]["figure"]["data"][0]["ids"] if i != "root"]
    names = app.workspace.dataset(dataset).names
    D = len(groups["depths"]) - 1

    # (the depth slider recolours in the browser alone, assets/recolour.js: it sends no request)
    kinds = {
        "map render": lambda rng: client.call("..map.figure...map-groups", {
            **view, "colour-scheme": ["hierarchical", "rank", "digit"][int(rng.integers(3))],
            "depth-slider": int(rng.integers(0, D + 1))}, changed="colour-scheme.value"),
        "tree click": lambda rng: client.call("..entity-table.rowData@", {
            **view, "code-tree.clickData": {"points": [{"id": tree_ids[int(rng.integers(len(tree_ids)))]}]}},
            first_input="clickData"),
        "entity search": lambda rng: client.call("..neighbour-table.rowData@", {
            **view, "entity-search.value": names[int(rng.integers(len(names)))], "param-knn": 10}),
        "find prefix": lambda rng: client.call("..entity-table.rowData@", {
            **view, "find-box.value": " ".join(str(rng.integers(2)) for _ in range(rng.integers(1, 3)))},
            first_input="value"),
        "page load": lambda rng: client.get("/"),
    }
    weights = {"map render": 2, "tree click": 2, "entity search": 2, "find prefix": 1, "page load": 1}
    latencies = {k: [] for k in kinds}
    errors = {k: 0 for k in kinds}
    examples: dict[str, str] = {}
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def session(seed: int):
        rng = np.random.default_rng(seed)
        order = [k for k, w in weights.items() for _ in range(w)]
        while time.time() < stop_at:
            kind = order[rng.integers(len(order))]
            t0 = time.perf_counter()
            try:
                status, text = kinds[kind](rng)
                text = text.decode(errors="replace") if isinstance(text, bytes) else text
                bad = status not in (200, 204) or (kind != "page load" and any(w in text for w in FAILURE_WORDS))
            except Exception as exc:        # a refused connection or a timeout is an error too
                bad, text = True, f"{type(exc).__name__}: {exc}"
            ms = 1000 * (time.perf_counter() - t0)
            with lock:
                latencies[kind].append(ms)
                if bad:
                    errors[kind] += 1
                    examples.setdefault(kind, text[:200])

    threads = [threading.Thread(target=session, args=(random.randrange(2**31),)) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.stop()
    return {"latencies": latencies, "errors": errors, "examples": examples, "sessions": sessions,
            "seconds": seconds, "dataset": dataset}


def report(out: dict) -> str:
    lines = [f"{out['sessions']} sessions for {out['seconds']:.0f} s on {out['dataset']} (loopback, threaded server)",
             f"{'request':<18}{'count':>7}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"]
    total = errors = 0
    for kind, ms in out["latencies"].items():
        p50, p95, p99 = percentiles(ms)
        total += len(ms)
        errors += out["errors"][kind]
        lines.append(f"{kind:<18}{len(ms):>7}{out['errors'][kind]:>8}{p50:>9.0f}{p95:>9.0f}{p99:>9.0f}")
    everything = [m for ms in out["latencies"].values() for m in ms]
    p50, p95, p99 = percentiles(everything)
    lines.append(f"{'all':<18}{total:>7}{errors:>8}{p50:>9.0f}{p95:>9.0f}{p99:>9.0f}")
    for kind, text in out["examples"].items():
        lines.append(f"first error of {kind}: {text}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--dataset", default="mammals")
    parser.add_argument("--projection", default="pca", help="map method (pca: no t-SNE wait before the load)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="3 sessions for 5 s on a small synthetic set")
    args = parser.parse_args(argv)
    if not 1 <= args.sessions <= 200 or not 0 < args.seconds <= 3600:
        parser.error("--sessions must be in [1, 200] and --seconds in (0, 3600]")
    options = None
    if args.quick:
        args.sessions, args.seconds, args.dataset = 3, 5.0, "synthetic"
        options = {"synthetic": {"n_per_cluster": 10}}
    out = run(args.sessions, args.seconds, args.dataset, args.projection, args.cache_dir, options)
    print(report(out))
    return 1 if sum(out["errors"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
