"""Celery mode end to end: a real redis-server, a real Celery worker process, the app's real server.

``create_app(jobs="celery", redis_url=...)`` on loopback is driven by the page's own callback
requests (app/client.py). A training job asked for while no worker runs waits in Redis (the
watchdog says so instead of calling it dead); a worker started then (``celery -A app.worker
worker``, the README's command) takes it, and the model it trains reaches the page through the
shared cache directory while the server keeps serving. A wrong Redis URL is said clearly.

redis-server is a Debian package (.ci/run installs it). Without it the end-to-end test is skipped
locally and fails with CI=true, so CI cannot pass without running it. Most of the end-to-end
test's time is the worker's start and its first torch import (79 s were measured on two cores
shared with other jobs, load 11); its bounds only tell a hang from a busy machine.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from app import create_app
from app.client import CallbackClient, LoopbackServer
from diagnostics import free_port, wait_for
from hkd_core.jobs import JobsConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDIS_SERVER = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
CONTROLS = {"model-select": "hkd", "param-K": 4, "param-D": 4, "param-alpha": 1.0, "param-beta": 1.0,
            "param-perplexity": 10.0, "param-epochs": 2, "param-kmeans": 20, "param-random": 20}




def stop(proc: subprocess.Popen, timeout: float = 15):
    """End a process group this test started (SIGTERM, then SIGKILL)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    if REDIS_SERVER is None:
        message = "the Celery test needs redis-server (Debian package redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: it must run in CI; .ci/run installs it)", pytrace=False)
        pytest.skip(message)
    import redis

    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    log = open(folder / "redis.log", "wb")
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"

    def up():
        try:
            return redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            assert proc.poll() is None, (folder / "redis.log").read_text()
            return False
    try:
        wait_for(up, 15, "redis-server")
        yield url
    finally:
        stop(proc)
        log.close()


def start_worker(redis_url: str, cache_dir: str, log_path, node: str) -> subprocess.Popen:
    """The README's worker command (prefork pool, one job at a time) in its own process group."""
    env = dict(os.environ, HKD_REDIS_URL=redis_url, HKD_CACHE_DIR=cache_dir)
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "app.worker", "worker", "--loglevel=info",
                             "--concurrency=1", "--without-gossip", "--without-mingle", "--hostname", node],
                            cwd=ROOT, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_a_training_job_waits_for_a_worker_then_runs_in_it(redis_url, tmp_path, monkeypatch):
    cache_dir = str(tmp_path / "cache")
    app = create_app(cache_dir=cache_dir, default_dataset="synthetic", controls={"model": "hkd"},
                     projection="pca", jobs="celery", redis_url=redis_url)
    ws = app.workspace
    # nothing of the server's is pickled for Celery (the worker builds the app, the job's arguments
    # travel as JSON); the workspace still pickles as its configuration, without its Celery probe
    import pickle

    copy = pickle.loads(pickle.dumps(ws))
    assert copy.cache_dir == ws.cache_dir and copy.job_probe is None and ws.job_probe is not None
    loopback = LoopbackServer(app)
    client = CallbackClient(app, loopback.url, timeout=30)
    worker, node, log_path = None, f"hkd-test-{os.getpid()}@localhost", tmp_path / "worker.log"
    try:
        status, text = client.call("..result-key.data...train-request.data",
                                   {**CONTROLS, "dataset-select": "synthetic", "train-button": 1},
                                   changed="train-button.n_clicks")
        assert status == 200, text
        request = json.loads(text)["response"]["train-request"]["data"]
        assert request["model"] == "hkd" and not ws.has_result(request["key"])
        watchdog = {"job-watchdog.n_intervals": 3, "train-button.disabled": True,
                    "train-request.data": dict(request, asked=time.time() - 600)}   # long past the grace
        seen = {"polls": 0, "waiting": None, "pages": 0}

        def on_poll(status, text):
            nonlocal worker
            seen["polls"] += 1
            assert client.get("/")[0] == 200          # the server keeps serving the page meanwhile
            seen["pages"] += 1
            if worker is None:
                # queued in Redis, no worker yet: the watchdog says it waits, keeps the button busy
                code, answer = client.call("..train-button.disabled", watchdog)
                assert code == 200, answer
                response = json.loads(answer)["response"]
                assert "train-button" not in response and "cancel-button" not in response, response
                seen["waiting"] = response["status"]["children"]
                worker = start_worker(redis_url, cache_dir, log_path, node)

        try:
            status, text, progress = client.call_background(
                "..result-key.data@", {"train-request.data": request}, changed="train-request.data",
                timeout=240, on_poll=on_poll)        # a hang detector, not a speed limit
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\nworker log:\n{log_path.read_text()[-3000:]}") from None
        assert "waiting for a Celery worker" in seen["waiting"] and "celery -A app.worker worker" in seen["waiting"]
        assert status == 200, text + log_path.read_text()[-3000:]
        response = json.loads(text)["response"]
        assert response.get("result-key", {}).get("data", {}).get("key") == request["key"], (
            f"{response}\nworker log:\n{log_path.read_text()[-3000:]}")
        assert "hkd trained in" in response["train-status"]["children"]
        assert any("hkd" in str(p) for p in progress)      # the job's progress came through Redis
        assert ws.has_result(request["key"]) and ws.result(request["key"])["codes"].shape[1] == 4
        assert seen["pages"] >= 2 and client.get("/")[0] == 200
        log = log_path.read_text()
        # the worker built the same app: the server's background callbacks are its Celery tasks
        for task in app.celery.tasks:
            if task.startswith("background_callback_"):
                assert task in log, log[-3000:]
        # and it ran the training task (it logs that after the task returned, so maybe a moment later)
        wait_for(lambda: "succeeded" in log_path.read_text(), 60, "the worker's 'succeeded' line")
        # the job is done: within the grace the watchdog has nothing to say; past it, a page that
        # still waits (its poll broke off) is handed the stored result, never told the job died
        from app.views import training

        monkeypatch.setattr(training, "RESULT_PICKUP_GRACE_S", 3600)
        assert client.call("..train-button.disabled", watchdog)[0] == 204
        monkeypatch.setattr(training, "RESULT_PICKUP_GRACE_S", 0)
        code, answer = client.call("..train-button.disabled", watchdog)
        assert code == 200 and json.loads(answer)["response"]["result-key"]["data"]["key"] == request["key"], answer

        # a training marker of a Celery task on another machine is asked about through Celery, not by pid:
        # this worker answers without that task, so it is not training it; a worker that does not answer
        # (gone, or a solo pool busy with the job) cannot be told from one that trains it
        for worker_name, alive in ((node, False), ("nobody@nowhere", True)):
            key = "result:elsewhere" + "0" * 16
            ws.store.put_json("training:" + key, {"pid": 1, "host": "another-machine", "started": time.time(),
                                                  "task": "no-such-task", "worker": worker_name})
            assert ws.training_alive(key) is alive
            assert (ws.store.get_json("training:" + key) is None) is not alive
        ws.store.cache.delete("training:" + key + ":json")
    finally:
        loopback.stop()
        if worker is not None:
            stop(worker)


def test_a_wrong_redis_url_gets_a_clear_message(tmp_path, capsys):
    url = f"redis://127.0.0.1:{free_port()}/0"            # nothing listens there
    with pytest.raises(JobsConfigError, match=f"cannot reach Redis at {url}: "):
        create_app(cache_dir=str(tmp_path), jobs="celery", redis_url=url)
    # app.py's command line says it as a usage error (exit 2), before serving anything
    import importlib.util

    spec = importlib.util.spec_from_file_location("hkd_app_cli", os.path.join(ROOT, "app.py"))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    for argv, words in ((["--jobs", "celery", "--redis", url], f"cannot reach Redis at {url}: "),
                        (["--jobs", "celery"], "--jobs celery needs --redis URL"),
                        (["--redis", url], "--redis is only used with --jobs celery"),
                        (["--jobs", "rq"], "invalid choice: 'rq'")):
        with pytest.raises(SystemExit) as info:
            cli.main(argv + ["--cache-dir", str(tmp_path)])
        assert info.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, words", [
    ({"jobs": "rq"}, "jobs must be one of ('diskcache', 'celery'), got 'rq'"),
    ({"jobs": "celery"}, "Celery jobs need a Redis URL"),
    ({"jobs": "celery", "redis_url": "http://127.0.0.1:6379"}, "not a Redis URL: 'http://127.0.0.1:6379'"),
    ({"jobs": "celery", "redis_url": "redis://127.0.0.1:port/0"}, "not a Redis URL"),
    ({"redis_url": "redis://127.0.0.1:6379/0"}, "redis_url is only used with jobs='celery'"),
])
def test_bad_jobs_settings_get_a_clear_error(tmp_path, kwargs, words):
    with pytest.raises(ValueError) as info:
        create_app(cache_dir=str(tmp_path), **kwargs)
    assert words in str(info.value)


def test_a_password_in_the_redis_url_is_not_repeated():
    from hkd_core.jobs import ping_redis

    with pytest.raises(JobsConfigError) as info:
        ping_redis(f"redis://user:s3cret@127.0.0.1:{free_port()}/0", timeout=0.5)
    assert "s3cret" not in str(info.value) and "user:***@127.0.0.1" in str(info.value)


@pytest.mark.parametrize("url, words", [
    (None, "set HKD_REDIS_URL to the server's --redis URL"),
    ("redis://127.0.0.1:{port}/0", "cannot reach Redis at redis://127.0.0.1:{port}/0: "),
])
def test_a_worker_with_no_or_a_wrong_redis_url_says_why(tmp_path, url, words):
    """The README's worker command stops at once with the reason, not after a hang."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "HKD_REDIS_URL"}
    if url:
        env["HKD_REDIS_URL"] = url.format(port=port)
    env["HKD_CACHE_DIR"] = str(tmp_path)
    worker = subprocess.run([sys.executable, "-m", "celery", "-A", "app.worker", "worker", "--loglevel=info"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert worker.returncode != 0 and words.format(port=port) in worker.stderr, worker.stderr[-2000:]
