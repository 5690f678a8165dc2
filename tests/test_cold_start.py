"""Cold starts of the real server: every start serves the page and finishes its training job.

The hazard (hkd_core/jobs.py): a background job started by fork() while a request thread is
inside OpenBLAS (t-SNE's neighbour search for the first map) could hang the child and the page.
Each start here is a fresh process on a fresh cache, so the first map (t-SNE of the 1,182 mammals)
and the first HKD training job race exactly as on a user's first visit. HKD_COLD_STARTS sets the
count (default 20).
"""
import os
import subprocess
import sys
import time
import urllib.request

from diagnostics import (descendants, free_port, job_processes, page_report, process_report, stop_jobs,
                         track_requests, wait_for)

COLD_STARTS = int(os.environ.get("HKD_COLD_STARTS", "20"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = """
import sys
from app import create_app
app = create_app(cache_dir=sys.argv[1], default_dataset="mammals",
                 controls={"model": "hkd", "epochs": 2}, projection="tsne")
app.run(host="127.0.0.1", port=int(sys.argv[2]), debug=False)
"""




def cold_start(driver, cache_dir: str, timeout: float = 600) -> float:
    # The bound only tells a hang (the old one lasted over 10 minutes) from a slow fit on two
    # busy cores; it is not a speed limit (speed is measured in bench/, never asserted here).
    """One fresh server: the page loads, the t-SNE map is drawn and the HKD job finishes."""
    port = free_port()
    # the server's log (werkzeug writes a line per request) to a file: a pipe nobody reads would
    # block the server once it is full, and the file says which requests arrived before a hang
    log_path = cache_dir.rstrip("/") + ".server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, cache_dir, str(port)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    started = time.time()
    try:
        url = f"http://127.0.0.1:{port}/"

        def server_answers():
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False
        # the server first, then the page once: reloading a page that has not finished drawing
        # starts it again each time, and on two busy cores it may never finish
        wait_for(server_answers, 120, "the server")
        driver.get(url)
        track_requests(driver)
        wait_for(lambda: driver.find_elements("css selector", "#status"), 60, "the page")
        text = lambda sel: driver.find_element("css selector", sel).text  # noqa: E731

        def wait_or_report(fn, what):
            try:
                wait_for(fn, timeout, what)
            except AssertionError as err:
                with open(log_path, errors="replace") as fh:
                    server_log = "".join(fh.readlines()[-40:])
                raise AssertionError(f"{err} (start {os.path.basename(cache_dir)}); the page:\n"
                                     f"{page_report(driver)}\nthe server's last log lines:\n{server_log}\n"
                                     f"{process_report(proc.pid)}") from None
        wait_or_report(lambda: "hkd trained" in text("#status") or "failed" in text("#status"),
                       "the HKD training job")
        assert "failed" not in text("#status"), text("#status")
        wait_or_report(lambda: "t-SNE" in text("#map-caption") and "hkd" in text("#map-caption"),
                       "the t-SNE map coloured by the trained codes")
        return time.time() - started
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(10)


def test_cold_starts_never_hang(dash_duo, tmp_path):
    seconds = []
    for i in range(COLD_STARTS):
        seconds.append(cold_start(dash_duo.driver, str(tmp_path / f"cache{i}")))
    print(f"{COLD_STARTS} cold starts, seconds to a trained model on the t-SNE map: "
          f"median {sorted(seconds)[len(seconds) // 2]:.1f}, max {max(seconds):.1f}")


def _report_parent(queue_dir):
    with open(os.path.join(queue_dir, "ppid"), "w") as fh:
        fh.write(str(os.getppid()))


def test_jobs_are_not_forked_from_the_server(tmp_path):
    """The job's parent is the forkserver, not this (threaded) process."""
    from hkd_core.jobs import job_context

    proc = job_context("forkserver").Process(target=_report_parent, args=(str(tmp_path),))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0
    assert int((tmp_path / "ppid").read_text()) != os.getpid()


def test_process_report_names_the_children(tmp_path):
    """The hang report lists the processes below the server (here: a sleeping grandchild)."""
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time; subprocess.Popen(['sleep', '30']); time.sleep(30)"],
                              start_new_session=True)
    try:
        wait_for(lambda: descendants(parent.pid), 20, "the grandchild")
        report = process_report(parent.pid)
        assert f"pid {parent.pid} state" in report
        assert "sleep 30" in report
        python_only = process_report(parent.pid, python_only=True)
        assert f"pid {parent.pid} state" in python_only and "sleep 30" not in python_only
    finally:
        os.killpg(parent.pid, 9)
        parent.wait(10)


def test_stop_jobs_stops_a_job_left_running():
    """The browser tests' guard: a job process of the forkserver still running after its test is
    found and stopped; the forkserver itself is left alone."""
    from hkd_core.jobs import job_context

    job = job_context("forkserver").Process(target=time.sleep, args=(60,))
    job.start()
    try:
        wait_for(lambda: job.pid in job_processes(os.getpid()), 30, "the job below the forkserver")
        assert stop_jobs(os.getpid()) == [job.pid]
        job.join(10)
        assert job.exitcode == -9
        assert job_processes(os.getpid()) == []
    finally:
        if job.is_alive():
            job.kill()


PRELOAD_PROBE = """
import importlib, json, os, sys, threading
from hkd_core.jobs import PRELOAD_MODULES

def state():
    me = os.getpid()
    with open(f"/proc/{me}/task/{me}/children") as fh:
        children = fh.read().split()
    return {"native_threads": len(os.listdir("/proc/self/task")), "python_threads": threading.active_count(),
            "children": len(children)}

from app import JOB_PRELOAD

# libraries that start their own idle threads when loaded: numpy's and scipy's OpenBLAS (workers)
# and pyarrow's jemalloc (a background purge thread; pandas imports pyarrow). No BLAS call and no
# Arrow allocation ever runs in the forkserver, and each library prepares its threads for a fork
# itself (its pthread_atfork handlers)
import numpy, scipy.linalg, pyarrow
before = state()
for name in PRELOAD_MODULES + JOB_PRELOAD:
    importlib.import_module(name)
print(json.dumps({"before": before, "after": state()}))
"""


def test_the_forkserver_preload_starts_no_thread_or_process():
    """What the forkserver imports must leave it a process that is safe to fork: beyond the idle
    threads of OpenBLAS and jemalloc, its preloads (torch and torch._dynamo, scikit-learn, the
    app's views, imported once so no job pays them) start no thread, Python or native, and no
    child process."""
    out = subprocess.run([sys.executable, "-c", PRELOAD_PROBE], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    import json

    got = json.loads(out.strip().splitlines()[-1])
    assert got["after"] == got["before"], got
    assert got["after"]["python_threads"] == 1 and got["after"]["children"] == 0


EAGER_PROBE = """
import os, sys, tempfile
from app import create_app
create_app(cache_dir=tempfile.mkdtemp(), default_dataset="synthetic", controls={"model": "hkm"})
sys.path.insert(0, "tests")
from diagnostics import descendants
print([open(f"/proc/{p}/cmdline").read().replace(chr(0), " ")[:80] for p in descendants(os.getpid())])
"""


def test_the_app_starts_its_forkserver_before_the_first_job():
    """The forkserver's imports (about 10 CPU s) overlap the server's start-up: it runs as soon
    as the app is built, before any job asks for it."""
    out = subprocess.run([sys.executable, "-c", EAGER_PROBE], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert "multiprocess.forkserver" in out.strip().splitlines()[-1], out


def _dynamo_loaded(queue_dir):
    with open(os.path.join(queue_dir, "dynamo"), "w") as fh:
        fh.write(str("torch._dynamo" in sys.modules))


def test_jobs_start_with_torch_dynamo_already_imported(tmp_path):
    from hkd_core.jobs import job_context

    proc = job_context("forkserver").Process(target=_dynamo_loaded, args=(str(tmp_path),))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0
    assert (tmp_path / "dynamo").read_text() == "True"
