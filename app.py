"""Run the HKD Explorer: python app.py [--host 127.0.0.1] [--port 8050] [--debug] [--cache-dir DIR] [--image-root DIR]
[--jobs diskcache|celery] [--redis URL]

With --jobs celery --redis redis://HOST:6379/0, long jobs run in Celery workers (app/worker.py):
    HKD_REDIS_URL=redis://HOST:6379/0 HKD_CACHE_DIR=DIR celery -A app.worker worker --loglevel=info
"""
from __future__ import annotations

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="HKD Explorer: hierarchical codes of embeddings in a browser")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--debug", action="store_true", help="Dash debug mode (hot reload, error pop-ups)")
    parser.add_argument("--cache-dir", default=None, help="artefact + job cache directory (default .hkd_cache/)")
    parser.add_argument("--dataset", default="mammals", help="data set shown at start (default mammals)")
    parser.add_argument("--image-root", default=None,
                        help="folder below which an upload's image-path column may be read (default: none, "
                             "paths stay text; image bytes and data: URIs need no folder)")
    parser.add_argument("--jobs", choices=("diskcache", "celery"), default="diskcache",
                        help="where training and slow maps run: diskcache (processes of this server, the "
                             "default) or celery (Celery workers over Redis: several users and worker machines)")
    parser.add_argument("--redis", default=None, metavar="URL",
                        help="the Redis server of --jobs celery, e.g. redis://127.0.0.1:6379/0; workers start "
                             "with HKD_REDIS_URL=URL HKD_CACHE_DIR=DIR celery -A app.worker worker")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be in [1, 65535], got {args.port}")

    import logging

    from app import create_app

    if not args.debug:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request (progress polls)

    import os

    if args.image_root is not None and not os.path.isdir(args.image_root):
        parser.error(f"--image-root {args.image_root!r} is not a folder")
    if args.jobs == "celery" and not args.redis:
        parser.error("--jobs celery needs --redis URL, e.g. --redis redis://127.0.0.1:6379/0")
    if args.jobs != "celery" and args.redis:
        parser.error("--redis is only used with --jobs celery")
    from hkd_core.jobs import JobsConfigError

    try:
        dash_app = create_app(cache_dir=args.cache_dir, default_dataset=args.dataset, image_root=args.image_root,
                              jobs=args.jobs, redis_url=args.redis)
    except JobsConfigError as exc:
        parser.error(str(exc))
    print(f"HKD Explorer on http://{args.host}:{args.port}  (cache: {dash_app.workspace.cache_dir})", flush=True)
    if args.jobs == "celery":
        print(f"Jobs run in Celery workers; start one or more with:\n  HKD_REDIS_URL={args.redis} "
              f"HKD_CACHE_DIR={dash_app.workspace.cache_dir} celery -A app.worker worker --loglevel=info", flush=True)
    dash_app.run(host=args.host, port=args.port, debug=args.debug)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
