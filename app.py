"""Run the HKD Explorer: python app.py [--host 127.0.0.1] [--port 8050] [--debug] [--cache-dir DIR] [--image-root DIR]"""
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
    dash_app = create_app(cache_dir=args.cache_dir, default_dataset=args.dataset, image_root=args.image_root)
    print(f"HKD Explorer on http://{args.host}:{args.port}  (cache: {dash_app.workspace.cache_dir})", flush=True)
    dash_app.run(host=args.host, port=args.port, debug=args.debug)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
