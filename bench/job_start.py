"""Start-up of a background job (hkd_core.jobs forkserver): wall seconds of the first HKD fit in
two fresh job processes, with torch._dynamo in the forkserver preload and without it.

    python bench/job_start.py with; python bench/job_start.py without
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import hkd_core.jobs as jobs  # noqa: E402

def job(q):
    import time, sys
    t = time.perf_counter()
    had = "torch._dynamo" in sys.modules
    import numpy as np
    from hkd_core.models.hkd import HKD
    X = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    HKD(epochs=1, n_kmeans_exemplars=20, n_random_exemplars=10).fit(X)
    q.put((had, time.perf_counter() - t))

if __name__ == "__main__":
    if sys.argv[1] == "without":
        jobs.PRELOAD_MODULES = tuple(m for m in jobs.PRELOAD_MODULES if m != "torch._dynamo")
    ctx = jobs.job_context("forkserver")
    q = ctx.Queue()
    for i in range(2):
        p = ctx.Process(target=job, args=(q,)); p.start(); p.join()
        print(sys.argv[1], "preload" , "job", i, "dynamo already imported: %s, first fit %.2f s wall" % q.get())
