"""Background jobs that never inherit a busy BLAS.

Dash's ``DiskcacheManager`` starts every background callback with a plain ``fork()`` of the
server. The server is multi-threaded: while one request thread is inside OpenBLAS or OpenMP
(t-SNE's neighbour search, k-means), a fork copies that thread's held locks into a child that has
no thread to release them, and the child hangs in the library's fork handler - then so does the
page waiting for it (seen in 1 of 8 cold starts).

``SafeDiskcacheManager`` starts jobs through a *forkserver* instead: a fresh interpreter (started
by exec, not fork, when the app starts) that imports the heavy libraries once and forks each job
from its own idle state. Its only other threads are the libraries' own idle ones (OpenBLAS
workers, pyarrow's jemalloc purge thread), never inside a call, and each library prepares them for
a fork itself (tests/test_cold_start.py checks that the preloads start nothing else). Jobs start fast and never see another thread's locks. The
job function and its arguments cross to it pickled by ``dill`` (Dash's ``multiprocess``), so what a
job closes over must be picklable (app/state.Workspace pickles as its configuration).

``celery_manager(redis_url)`` is the other mode (``python app.py --jobs celery --redis URL``): Dash's
``CeleryManager`` over a Redis broker and result backend, for several users and worker machines
sharing one server. There nothing is pickled: a worker (``celery -A app.worker worker``, see
app/worker.py) builds the same Dash app, so each background callback is a Celery task of the same
name, and only the callback's JSON arguments travel through Redis. ``CeleryJobProbe`` tells the
app's watchdog whether a job is queued, held by a worker, or gone.
"""
from __future__ import annotations

import base64
import json
import os
import socket
from urllib.parse import urlsplit, urlunsplit

import diskcache
from dash import DiskcacheManager

# imported once in the forkserver, so each job starts without paying for them again. torch._dynamo
# too: every torch optimizer imports it on construction, 2-8 s paid by each job's first fit
# without it (bench/job_start.py). Importing it starts no thread and no process (checked in
# tests/test_cold_start.py), so the forkserver stays safe to fork; 20 cold starts with it passed
# at a load average of 7-14 (median 136 s, max 236 s: an earlier 180 s bound was too tight).
PRELOAD_MODULES = ("numpy", "torch", "torch._dynamo", "sklearn.cluster", "hkd_core.models.hkd")
START_METHODS = ("forkserver", "spawn")


def job_context(method: str = "forkserver", preload: tuple[str, ...] = ()):
    """A ``multiprocess`` context whose processes do not inherit this process's threads;
    ``preload`` names modules the forkserver imports too (the caller's job code)."""
    import multiprocess

    if method not in START_METHODS:
        raise ValueError(f"job start method must be one of {START_METHODS}, got {method!r}")
    ctx = multiprocess.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(list(dict.fromkeys(PRELOAD_MODULES + tuple(preload))))
    return ctx


class SafeDiskcacheManager(DiskcacheManager):
    """Dash's diskcache background-callback manager with jobs started by forkserver (or spawn)."""

    def __init__(self, cache=None, cache_by=None, expire=None, start_method: str = "forkserver",
                 preload: tuple[str, ...] = ()):
        super().__init__(cache, cache_by=cache_by, expire=expire)
        self.start_method = start_method
        self._context = job_context(start_method, preload)

    def start(self) -> None:
        """Start the forkserver now rather than at the first job, so its imports (about 10 CPU s:
        torch, torch._dynamo, scikit-learn) overlap the server's start-up and first page instead
        of delaying the first training job. Safe from any thread: it is started by exec."""
        if self.start_method == "forkserver":
            from multiprocess import forkserver

            forkserver.ensure_running()

    def call_job_fn(self, key, job_fn, args, context):
        process = self._context.Process(target=job_fn, args=(key, self._make_progress_key(key), args, context))
        process.start()
        return process.pid


def background_manager(jobs_dir: str, start_method: str = "forkserver", preload: tuple[str, ...] = (),
                       start: bool = False) -> SafeDiskcacheManager:
    """The app's manager: its cache lives in ``jobs_dir`` so every job process finds it;
    ``start`` starts its forkserver at once (SafeDiskcacheManager.start)."""
    os.makedirs(jobs_dir, exist_ok=True)
    manager = SafeDiskcacheManager(diskcache.Cache(jobs_dir), start_method=start_method, preload=preload)
    if start:
        manager.start()
    return manager


# -- Celery mode ------------------------------------------------------------------------------------

REDIS_SCHEMES = ("redis", "rediss", "unix")
JOB_MODES = ("diskcache", "celery")


class JobsConfigError(ValueError):
    """A jobs setting that cannot work (unknown mode, a Redis URL that is malformed or unreachable)."""


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.rpartition("@")
            user = parts.username or ""
            return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
    except ValueError:
        pass
    return url


def check_redis_url(redis_url) -> str:
    """The URL if it names a Redis server (redis://, rediss:// or unix://), else a clear error."""
    if not isinstance(redis_url, str) or not redis_url.strip():
        raise JobsConfigError("Celery jobs need a Redis URL, e.g. redis://127.0.0.1:6379/0 "
                              "(app.py --redis URL, or HKD_REDIS_URL for a worker)")
    redis_url = redis_url.strip()
    try:
        parts = urlsplit(redis_url)
        parts.port                                   # noqa: B018  (raises on a port like :abc)
    except ValueError as exc:
        raise JobsConfigError(f"not a Redis URL: {redact_url(redis_url)!r} ({exc})") from None
    if parts.scheme not in REDIS_SCHEMES or (parts.scheme != "unix" and not parts.hostname):
        raise JobsConfigError(f"not a Redis URL: {redact_url(redis_url)!r} (expected "
                              "redis://HOST:PORT/DB, rediss://... or unix:///path/to/redis.sock)")
    return redis_url


def ping_redis(redis_url: str, timeout: float = 3.0) -> None:
    """Raise ``JobsConfigError("cannot reach Redis at URL: why")`` unless the server answers."""
    import redis

    redis_url = check_redis_url(redis_url)
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise JobsConfigError(f"cannot reach Redis at {redact_url(redis_url)}: {type(exc).__name__}: {exc}"
                              " (is redis-server running there? start it with: redis-server --port PORT)") from None


def celery_app(redis_url: str, name: str = "hkd_explorer"):
    """A Celery app with Redis as broker and result backend (Dash keeps results and progress there).

    Each worker process reserves at most one job ahead (prefetch multiplier 1): a training job
    holds a worker for minutes, so further jobs wait in Redis for whichever worker is free first.
    With ``task_track_started`` a task reads STARTED in the result backend while a worker runs it."""
    from celery import Celery

    app = Celery(name, broker=redis_url, backend=redis_url)
    app.conf.update(worker_prefetch_multiplier=1, task_track_started=True,
                    broker_connection_retry_on_startup=True, result_expires=24 * 3600)
    return app


def celery_manager(redis_url: str, ping: bool = True, timeout: float = 3.0):
    """Dash's ``CeleryManager`` over ``redis_url`` (checked by a ping first, so a wrong URL is said
    at start and not as a hung first job). The Celery app is ``manager.handle``."""
    from dash import CeleryManager

    redis_url = check_redis_url(redis_url)
    if ping:
        ping_redis(redis_url, timeout)
    return CeleryManager(celery_app(redis_url))


class CeleryJobProbe:
    """Where a Celery job is, found by a text its arguments contain (a training request's result
    key): "running" (a worker executes it), "reserved" (a worker holds it), "queued" (in Redis,
    no worker has taken it) or None (gone); ``workers()`` lists the workers that answer a ping;
    ``task_alive(id, worker)`` tells whether a started task still runs.
    A worker started with ``--pool=solo`` does not answer while it runs a job; the default
    (prefork) pool does."""

    def __init__(self, celery, timeout: float = 1.0):
        self.celery, self.timeout = celery, timeout

    def workers(self) -> list[str]:
        try:
            replies = self.celery.control.ping(timeout=self.timeout) or []
        except Exception:        # Redis gone: no worker can be reached either
            return []
        return sorted(name for reply in replies for name in reply)

    def where(self, needle: str) -> tuple[str | None, list[str]]:
        """(where the job is, the workers that answered a ping)."""
        workers = self.workers()
        if workers:              # only workers that answer are asked (each ask waits ``timeout``)
            try:
                inspect = self.celery.control.inspect(timeout=self.timeout, destination=workers,
                                                      limit=len(workers))
                for state, found in (("running", inspect.active()), ("reserved", inspect.reserved())):
                    for tasks in (found or {}).values():
                        if any(needle in json.dumps(t, default=str) for t in tasks):
                            return state, workers
            except Exception:
                pass
        return ("queued" if self.queued(needle) else None), workers

    def task_alive(self, task_id: str, worker: str | None = None) -> bool:
        """False once the task has ended (its state in the result backend) or when the worker
        that took it answers without it; True while it runs, and when that worker does not
        answer at all (a solo pool busy with it, or a machine that cannot be told from one)."""
        from celery import states

        try:
            if self.celery.AsyncResult(task_id).state in states.READY_STATES:
                return False
            inspect = self.celery.control.inspect(timeout=self.timeout, destination=[worker] if worker else None,
                                                  limit=1 if worker else None)
            replies = inspect.active()
        except Exception:
            return True
        if not replies:
            return True
        return any(t.get("id") == task_id for tasks in replies.values() for t in tasks)

    def queued(self, needle: str) -> bool:
        """True when a message in the broker's default queue carries ``needle``."""
        try:
            with self.celery.connection_for_read() as conn:
                client = conn.default_channel.client
                queue = self.celery.conf.task_default_queue
                sep = getattr(conn.default_channel, "sep", "\x06\x16")
                for name in [queue] + [f"{queue}{sep}{p}" for p in (3, 6, 9)]:
                    for raw in client.lrange(name, 0, -1):
                        if needle in _message_text(raw):
                            return True
        except Exception:
            return False
        return False


def _message_text(raw) -> str:
    """A kombu Redis message as text, its (base64) body decoded, for a substring search."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        body = json.loads(text).get("body", "")
        return text + base64.b64decode(body).decode(errors="replace")
    except Exception:
        return text


def this_host() -> str:
    return socket.gethostname()


def current_celery_job() -> dict:
    """{"task": id, "worker": node name} when called inside a Celery task, else {}."""
    import sys

    celery = sys.modules.get("celery")
    if celery is None:
        return {}
    try:
        request = celery.current_task.request
        return {"task": request.id, "worker": request.hostname} if request.id else {}
    except Exception:
        return {}
