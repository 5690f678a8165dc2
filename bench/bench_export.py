"""Static figure export: kaleido's persistent browser (started once, kept) against a browser
started for each image (the anchor), in the same run.

    python bench/bench_export.py            # 5 PNGs of a 5,000-point WebGL map
    python bench/bench_export.py --quick    # 2 PNGs of 500 points (what the tests run)

CPU seconds are this process plus its children (Chromium), the persistent browser's counted once
it is stopped at the end, so its start and stop are in the figure; wall seconds are marked as such.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(persistent: bool, figure, images: int) -> dict:
    import hkd_core.export as export

    export.PERSISTENT_BROWSER = persistent
    export.stop_export_browser()
    cpu0, wall0, each = cpu_seconds(), time.perf_counter(), []
    for _ in range(images):
        t = time.perf_counter()
        data = export.figure_bytes(figure, "png", width=700, height=500, scale=1)
        each.append(time.perf_counter() - t)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    export.stop_export_browser()
    return {"cpu": cpu_seconds() - cpu0, "wall": time.perf_counter() - wall0, "first": each[0],
            "later": sum(each[1:]) / max(1, len(each) - 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=5)
    p.add_argument("--points", type=int, default=5000)
    p.add_argument("--quick", action="store_true", help="2 images of 500 points")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.points = 2, 500
    import numpy as np
    import plotly.graph_objects as go

    from hkd_core.export import find_chrome

    if find_chrome() is None:
        print("no Chrome/Chromium: static export cannot be measured")
        return 1
    rng = np.random.default_rng(0)
    figure = go.Figure(go.Scattergl(x=rng.random(args.points), y=rng.random(args.points), mode="markers"))
    rows = {"browser per image (anchor)": run(False, figure, args.images),
            "persistent browser": run(True, figure, args.images)}
    anchor = rows["browser per image (anchor)"]
    print(f"{args.images} PNG exports of a {args.points:,}-point WebGL map (700 x 500)")
    print(f"{'':28s} {'CPU s':>7s} {'x anchor':>9s} {'wall s':>7s} {'first s':>8s} {'later s':>8s}")
    for name, r in rows.items():
        print(f"{name:28s} {r['cpu']:7.2f} {r['cpu'] / anchor['cpu']:9.2f} {r['wall']:7.2f} "
              f"{r['first']:8.2f} {r['later']:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
