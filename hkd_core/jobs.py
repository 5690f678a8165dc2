"""Background jobs that never inherit a busy BLAS.

Dash's ``DiskcacheManager`` starts every background callback with a plain ``fork()`` of the
server. The server is multi-threaded: while one request thread is inside OpenBLAS or OpenMP
(t-SNE's neighbour search, k-means), a fork copies that thread's held locks into a child that has
no thread to release them, and the child hangs in the library's fork handler - then so does the
page waiting for it (seen in 1 of 8 cold starts).

``SafeDiskcacheManager`` starts jobs through a *forkserver* instead: a fresh, single-threaded
interpreter (started by exec, not fork, on first use) that imports the heavy libraries once and
forks each job from its own idle state. Jobs start fast and never see another thread's locks. The
job function and its arguments cross to it pickled by ``dill`` (Dash's ``multiprocess``), so what a
job closes over must be picklable (app/state.Workspace pickles as its configuration).
"""
from __future__ import annotations

import os

import diskcache
from dash import DiskcacheManager

# imported once in the forkserver, so each job starts without paying for torch again.
# Not torch._dynamo, although every torch optimizer imports it on construction (2-8 s paid by a
# job's first fit, bench/job_start.py): with it preloaded, one of 20 cold starts of a clean-clone
# CI run waited over 180 s for its training job, and the forkserver must stay a single-threaded
# process that is safe to fork; until that is shown for torch._dynamo, the jobs pay the import.
PRELOAD_MODULES = ("numpy", "torch", "sklearn.cluster", "hkd_core.models.hkd")
START_METHODS = ("forkserver", "spawn")


def job_context(method: str = "forkserver"):
    """A ``multiprocess`` context whose processes do not inherit this process's threads."""
    import multiprocess

    if method not in START_METHODS:
        raise ValueError(f"job start method must be one of {START_METHODS}, got {method!r}")
    ctx = multiprocess.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(list(PRELOAD_MODULES))
    return ctx


class SafeDiskcacheManager(DiskcacheManager):
    """Dash's diskcache background-callback manager with jobs started by forkserver (or spawn)."""

    def __init__(self, cache=None, cache_by=None, expire=None, start_method: str = "forkserver"):
        super().__init__(cache, cache_by=cache_by, expire=expire)
        self.start_method = start_method
        self._context = job_context(start_method)

    def call_job_fn(self, key, job_fn, args, context):
        process = self._context.Process(target=job_fn, args=(key, self._make_progress_key(key), args, context))
        process.start()
        return process.pid


def background_manager(jobs_dir: str, start_method: str = "forkserver") -> SafeDiskcacheManager:
    """The app's manager: its cache lives in ``jobs_dir`` so every job process finds it."""
    os.makedirs(jobs_dir, exist_ok=True)
    return SafeDiskcacheManager(diskcache.Cache(jobs_dir), start_method=start_method)
