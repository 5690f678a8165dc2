"""CPU time of parsing a CSV upload versus plain pandas.read_csv on the same bytes.

    python bench/bench_upload.py [--rows 50000] [--dims 64] [--repeat 3]

Prints a table of CPU seconds (best of --repeat) and the ratio upload/pandas. Nothing is
asserted: this is for reading, not for CI.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hkd_core.uploads import parse_embedding_upload  # noqa: E402


def make_csv(rows: int, dims: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, dims)).astype(np.float32), columns=[f"d{j}" for j in range(dims)])
    frame.insert(0, "label", [f"class_{i % 20}" for i in range(rows)])
    frame.insert(0, "name", [f"entity_{i}" for i in range(rows)])
    return frame.to_csv(index=False).encode("utf-8")


def cpu_seconds(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--dims", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    data = make_csv(args.rows, args.dims)
    cases = {
        "pandas.read_csv (c engine)": lambda: pd.read_csv(io.BytesIO(data)),
        "parse_embedding_upload": lambda: parse_embedding_upload("bench.csv", data),
    }
    times = {name: cpu_seconds(fn, args.repeat) for name, fn in cases.items()}
    base = times["pandas.read_csv (c engine)"]
    print(f"CSV upload parse, {args.rows:,} rows x {args.dims} dims ({len(data) / 1e6:.1f} MB), "
          f"CPU seconds, best of {args.repeat}")
    print(f"{'parser':<30} {'CPU s':>8} {'x pandas':>9}")
    for name, t in times.items():
        print(f"{name:<30} {t:>8.3f} {t / base:>9.2f}")


if __name__ == "__main__":
    main()
