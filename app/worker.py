"""The Celery worker of ``python app.py --jobs celery --redis URL``: run it from the repository with

    HKD_REDIS_URL=redis://127.0.0.1:6379/0 HKD_CACHE_DIR=/path/to/.hkd_cache \\
        celery -A app.worker worker --loglevel=info

HKD_REDIS_URL is the server's --redis URL; HKD_CACHE_DIR its --cache-dir (default: <repo>/.hkd_cache,
the server's default too). The worker builds the same Dash app as the server, so each background
callback (training, slow maps) is registered here as the Celery task the server sends; a job
finds its data set and writes its model in the artefact store below HKD_CACHE_DIR, where the
server reads it. A worker on another machine therefore needs the same code and the same cache
directory on a shared filesystem (one whose file locking SQLite can rely on).
"""
from __future__ import annotations

import os

from app import create_app
from hkd_core.jobs import JobsConfigError

REDIS_URL = os.environ.get("HKD_REDIS_URL", "")
if not REDIS_URL.strip():
    raise JobsConfigError("set HKD_REDIS_URL to the server's --redis URL, e.g. "
                          "HKD_REDIS_URL=redis://127.0.0.1:6379/0 celery -A app.worker worker --loglevel=info")

dash_app = create_app(cache_dir=os.environ.get("HKD_CACHE_DIR") or None, jobs="celery", redis_url=REDIS_URL)
celery = dash_app.celery
app = celery           # what ``celery -A app.worker`` looks for
