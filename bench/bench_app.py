"""App benchmarks: start-up to first drawn map (cold and warm cache) and depth-slider recolour.

    python bench/bench_app.py                 # everything (several minutes on 2 cores)
    python bench/bench_app.py --skip-startup  # recolour only
    python bench/bench_app.py --sizes 10000 100000 --repeats 7

Start-up: ``python app.py`` is started as a subprocess with a fresh cache directory (cold: the
map projection and a quick preview model are computed) and again with the same directory (warm);
the time is from process start to the frame after the map's points are drawn in headless Chromium.

Recolour: the app is started on a pre-filled cache holding n random 2-d points with random codes
(K=16, D=16). Inside the page we time (performance.now) from the slider's keydown to the
animation frame after the map's plotly_restyle, and, in the same browser run, a bare
``Plotly.restyle`` of the same colour arrays. The machines have no GPU (WebGL is software), so
only the ratio slider / bare restyle means something.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

HOOKS_JS = """
var gd = document.querySelector('#map .js-plotly-plot');
if (!window.__bench) {
  window.__bench = {t0: null, t1: null};
  document.addEventListener('keydown', function () { window.__bench.t0 = performance.now(); window.__bench.t1 = null; }, true);
  gd.on('plotly_restyle', function () {
    requestAnimationFrame(function () { window.__bench.t1 = performance.now(); });
  });
}
return true;
"""

BARE_RESTYLE_JS = """
var arr = arguments[0] === 'A' ? window.__colA : window.__colB, done = arguments[arguments.length - 1];
var gd = document.querySelector('#map .js-plotly-plot');
window.__bench.t1 = null;
var t0 = performance.now();
window.__bench.t0 = t0;
Plotly.restyle(gd, {'marker.color': [arr]}, [0]);
(function wait() { if (window.__bench.t1 !== null) { done(window.__bench.t1 - t0); } else { setTimeout(wait, 5); } })();
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options

    opts = Options()
    opts.binary_location = os.environ.get("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1200"):
        opts.add_argument(a)
    driver = webdriver.Chrome(options=opts)
    # a million points keep the page's main thread busy for many seconds (software WebGL here):
    # a script waits for it instead of failing
    driver.set_script_timeout(600)
    return driver


def start_server(port, cache_dir, dataset):
    # A new session so the whole group (server + its background training process) can be stopped.
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "app.py"), "--port", str(port),
                             "--cache-dir", cache_dir, "--dataset", dataset],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop_server(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def wait_map_drawn(driver, url, t_start, min_points=1, timeout=600):
    """Seconds from t_start until the frame after the map shows >= min_points with codes colours."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            driver.get(url)
            break
        except Exception:
            time.sleep(0.2)
    while time.time() < deadline:
        ok = driver.execute_async_script("""
            var done = arguments[arguments.length - 1];
            var gd = document.querySelector('#map .js-plotly-plot');
            var legend = document.querySelector('#map-legend .legend-item');
            if (!gd || !gd._fullData || !gd._fullData.length || !legend) { done(false); return; }
            var n = gd._fullData[0].x ? gd._fullData[0].x.length : 0;
            if (n < arguments[0]) { done(false); return; }
            requestAnimationFrame(function () { done(true); });
        """, min_points)
        if ok:
            return time.time() - t_start
        time.sleep(0.1)
    raise TimeoutError("map was not drawn in time")


def wait_training_done(driver, t0, timeout=600.0):
    """Seconds from start until the status line says the model is trained (None on time-out)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = driver.find_element("id", "status").text
        if "trained" in text or "loaded from cache" in text:
            return time.time() - t0
        time.sleep(0.5)
    return None


def bench_startup(dataset):
    cache = tempfile.mkdtemp(prefix="hkd_bench_cache_")
    out = {}
    driver = browser()
    try:
        for phase in ("cold", "warm"):
            port = free_port()
            t0 = time.time()
            proc = start_server(port, cache, dataset)
            try:
                out[phase] = wait_map_drawn(driver, f"http://127.0.0.1:{port}/", t0)
                out[phase + "_status"] = driver.find_element("id", "status").text
                if phase == "cold":
                    # let the background HKD training finish, so the warm start measures what a
                    # user's second start does: load the trained model from the cache
                    out["cold_training"] = wait_training_done(driver, t0)
            finally:
                stop_server(proc)
    finally:
        driver.quit()
    return out


def prefill_random(cache_dir, n, K=16, D=16, seed=0):
    """A cache holding n random 2-d points and random codes under the app's 'random' model key."""
    from app.state import Workspace, model_params
    from hkd_core.datasets.base import Dataset

    rng = np.random.default_rng(seed)
    ds = Dataset(name=f"random{n}", X=rng.normal(size=(n, 2)).astype(np.float32),
                 names=[f"p{i}" for i in range(n)], labels=None)
    ws = Workspace(cache_dir)
    key = ws.add_upload(ds, f"random{n}.npy")
    controls = dict(ws.controls_for(key), model="random", K=K, D=D)
    params = model_params("random", key, ds, controls)
    rkey = ws.result_key(key, "random", params)
    ws.store.put_result(rkey, rng.integers(0, K, size=(n, D)), None,
                        {"model": "random", "params": params, "fingerprint": ws.fingerprint(key),
                         "dataset": key, "K": K, "D": D})
    return key


def bench_recolour(n, repeats):
    from selenium.webdriver.common.keys import Keys

    cache = tempfile.mkdtemp(prefix="hkd_bench_recolour_")
    dataset_key = prefill_random(cache, n)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", (
        "import sys, logging; sys.path.insert(0, %r); logging.getLogger('werkzeug').setLevel(logging.WARNING)\n"
        "from app import create_app\n"
        "create_app(cache_dir=%r, default_dataset=%r, controls={'model': 'random'}).run(port=%d)"
    ) % (ROOT, cache, dataset_key, port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    driver = browser()
    try:
        wait_map_drawn(driver, f"http://127.0.0.1:{port}/", time.time(), min_points=n)
        driver.execute_script(HOOKS_JS)
        thumb = driver.find_element("css selector", "#depth-slider [role=slider]")
        thumb.click()
        time.sleep(1.0)

        def press(key):
            driver.execute_script("window.__bench.t1 = null;")
            thumb.send_keys(key)
            deadline = time.time() + 60
            while time.time() < deadline:
                r = driver.execute_script("var b = window.__bench; return (b.t1 !== null && b.t0 !== null) ? b.t1 - b.t0 : null;")
                if r is not None:
                    return r
                time.sleep(0.01)
            raise TimeoutError("no restyle after key press")

        # warm-up: visit depths 1 <-> 2 once (decoding of each depth is cached), capture arrays
        press(Keys.ARROW_RIGHT)
        driver.execute_script("window.__colB = document.querySelector('#map .js-plotly-plot')._fullData[0].marker.color;")
        press(Keys.ARROW_LEFT)
        driver.execute_script("window.__colA = document.querySelector('#map .js-plotly-plot')._fullData[0].marker.color;")
        slider, bare = [], []
        for i in range(repeats):
            time.sleep(0.3)
            slider.append(press(Keys.ARROW_RIGHT if i % 2 == 0 else Keys.ARROW_LEFT))
            time.sleep(0.3)
            bare.append(driver.execute_async_script(BARE_RESTYLE_JS, "B" if i % 2 == 0 else "A"))
        return statistics.median(slider), statistics.median(bare)
    finally:
        driver.quit()
        stop_server(proc)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--dataset", default="mammals", help="data set for the start-up timing")
    p.add_argument("--skip-startup", action="store_true")
    p.add_argument("--skip-recolour", action="store_true")
    args = p.parse_args(argv)

    print("| measurement | value |\n|---|---|")
    if not args.skip_startup:
        s = bench_startup(args.dataset)
        print(f"| start -> first drawn map, cold cache ({args.dataset}) | {s['cold']:.1f} s |")
        trained = s.get("cold_training")
        print(f"| start -> trained HKD shown, cold cache ({args.dataset}) | "
              f"{'not within 600 s' if trained is None else f'{trained:.1f} s'} |")
        print(f"| start -> first drawn map, warm cache ({args.dataset}) | {s['warm']:.1f} s |")
        print(f"| status shown (warm) | {s['warm_status']} |")
        sys.stdout.flush()
    if not args.skip_recolour:
        for n in args.sizes:
            slider, bare = bench_recolour(n, args.repeats)
            print(f"| recolour {n:,} points: slider key -> frame | {slider:.1f} ms |")
            print(f"| recolour {n:,} points: bare Plotly.restyle -> frame | {bare:.1f} ms |")
            print(f"| recolour {n:,} points: ratio slider / bare | {slider / bare:.2f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
