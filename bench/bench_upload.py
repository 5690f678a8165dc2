"""CPU time and peak memory of parsing big uploads versus plain pyarrow / pandas on the same bytes.

    python bench/bench_upload.py [--sizes 100000 1000000] [--dims 16] [--repeat 1]
                                 [--old PATH_TO_OLD_uploads.py] [--quick] [--json OUT]

Formats: float32 Parquet with one column per dimension, Parquet with one list<float32>
embedding column, and CSV (6 significant digits); every file also has a ``name`` column.
Each (format, size, parser) runs in its own Python process, so its peak is clean:

* CPU s   -- process CPU seconds (all threads) of the parse, best of --repeat;
* peak MB -- peak RSS of that process during the first parse minus its RSS just before it
             (the file's bytes are already in memory), i.e. the extra memory the parse needs,
             result included.

Parsers: ``anchor`` is plain pyarrow/pandas (Parquet: ``pyarrow.parquet.read_table(...)
.to_pandas()`` then ``to_numpy(float32)`` of the dimension columns, or ``np.stack`` of the
list column; CSV: ``pandas.read_csv`` then ``to_numpy(float32)``); ``upload`` is
``hkd_core.uploads.parse_embedding_upload`` of this checkout; ``old`` (with --old) is the same
function loaded from another copy of uploads.py, e.g. ``git show main:hkd_core/uploads.py``.
Ratios are to the anchor of the same run. Files above the 50 MB upload cap are parsed with
``max_bytes`` raised to the file's size (marked ``*``), to measure the parser, not the cap.
Nothing is asserted: this is for reading, not for CI.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FORMATS = ("parquet-columns", "parquet-list", "csv")
EXTENSION = {"parquet-columns": ".parquet", "parquet-list": ".parquet", "csv": ".csv"}


def make_file(fmt: str, rows: int, dims: int, seed: int = 0) -> bytes:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = np.random.default_rng(seed).normal(size=(rows, dims)).astype(np.float32)
    names = pa.array([f"entity_{i}" for i in range(rows)])
    buf = io.BytesIO()
    if fmt == "parquet-columns":
        table = pa.table({"name": names, **{f"d{j}": pa.array(X[:, j]) for j in range(dims)}})
        pq.write_table(table, buf)
    elif fmt == "parquet-list":
        embedding = pa.ListArray.from_arrays(pa.array(np.arange(0, rows * dims + 1, dims, dtype=np.int32)),
                                             pa.array(X.reshape(-1)))
        pq.write_table(pa.table({"name": names, "embedding": embedding}), buf)
    else:
        frame = pd.DataFrame(X, columns=[f"d{j}" for j in range(dims)])
        frame.insert(0, "name", names.to_pylist())
        frame.to_csv(buf, index=False, float_format="%.6g")
    return buf.getvalue()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _parser(kind: str, fmt: str, old: str | None):
    import pandas as pd
    import pyarrow.parquet as pq

    if kind == "anchor":
        if fmt == "csv":
            def anchor(filename, data, max_bytes):
                frame = pd.read_csv(io.BytesIO(data))
                return frame[[c for c in frame.columns if c != "name"]].to_numpy(np.float32), frame["name"]
        elif fmt == "parquet-list":
            def anchor(filename, data, max_bytes):
                frame = pq.read_table(io.BytesIO(data)).to_pandas()
                return np.stack(frame["embedding"].to_numpy()).astype(np.float32), frame["name"]
        else:
            def anchor(filename, data, max_bytes):
                frame = pq.read_table(io.BytesIO(data)).to_pandas()
                return frame[[c for c in frame.columns if c != "name"]].to_numpy(np.float32), frame["name"]
        return anchor
    if kind == "old":
        import importlib.util

        spec = importlib.util.spec_from_file_location("old_uploads", old)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        import hkd_core.uploads as module
    return lambda filename, data, max_bytes: module.parse_embedding_upload(filename, data, max_bytes=max_bytes)


def worker(args) -> None:
    """One parser on one file in this fresh process: print a JSON line."""
    import pyarrow.parquet  # noqa: F401  (imported before measuring, for every parser)

    with open(args.file, "rb") as fh:
        data = fh.read()
    parse = _parser(args.parser, args.format, args.old)
    filename = "bench" + EXTENSION[args.format]
    best, peak = float("inf"), None
    for i in range(args.repeat):
        rss_before, maxrss_before = _rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        start = time.process_time()
        result = parse(filename, data, args.max_bytes)
        best = min(best, time.process_time() - start)
        if i == 0:
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            peak = max(maxrss - rss_before, 0) if maxrss > maxrss_before else max(_rss_bytes() - rss_before, 0)
        X = result.X if hasattr(result, "X") else result[0]
        shape = list(X.shape)
        del result, X
    print(json.dumps({"cpu_s": best, "peak_bytes": peak, "shape": shape}))


def run_case(path, fmt, parser, max_bytes, repeat, old) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--file", path, "--format", fmt,
           "--parser", parser, "--max-bytes", str(max_bytes), "--repeat", str(repeat)]
    if old:
        cmd += ["--old", old]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{parser} on {fmt} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dims", type=int, default=16)
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--old", help="another uploads.py to compare (e.g. main's, via git show)")
    ap.add_argument("--quick", action="store_true", help="3,000 rows only: a smoke test of a few seconds")
    ap.add_argument("--json", help="write the measurements here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--format", help=argparse.SUPPRESS)
    ap.add_argument("--parser", help=argparse.SUPPRESS)
    ap.add_argument("--max-bytes", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    from hkd_core.uploads import MAX_ROWS, MAX_UPLOAD_BYTES

    sizes = [3_000] if args.quick else args.sizes
    parsers = ["anchor"] + (["old"] if args.old else []) + ["upload"]
    records, per_row = [], {}
    print(f"Upload parse, {args.dims} dims, CPU s best of {args.repeat}; peak MB = peak RSS minus RSS before "
          f"the parse (own process per row); x = ratio to the anchor; * = over the "
          f"{MAX_UPLOAD_BYTES / 2**20:.0f} MB cap, parsed with max_bytes raised")
    head = f"{'format':<16} {'rows':>9} {'file MB':>8} {'parser':<7} {'CPU s':>7} {'x':>6} {'peak MB':>8} {'x':>6}"
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats:
            for rows in sizes:
                data = make_file(fmt, rows, args.dims)
                per_row[fmt] = len(data) / rows   # from the biggest file: the nearest to the cap
                path = os.path.join(tmp, f"{fmt}-{rows}{EXTENSION[fmt]}")
                with open(path, "wb") as fh:
                    fh.write(data)
                over = len(data) > MAX_UPLOAD_BYTES
                max_bytes = len(data) + 1 if over else MAX_UPLOAD_BYTES
                base = None
                for parser in parsers:
                    r = run_case(path, fmt, parser, max_bytes, args.repeat, args.old)
                    r.update(format=fmt, rows=rows, dims=args.dims, file_bytes=len(data), parser=parser,
                             over_cap=over)
                    records.append(r)
                    base = base or r
                    mb = f"{len(data) / 2**20:.1f}{'*' if over else ' '}"
                    print(f"{fmt:<16} {rows:>9,} {mb:>8} {parser:<7} {r['cpu_s']:>7.3f} "
                          f"{r['cpu_s'] / max(base['cpu_s'], 1e-9):>6.2f} {r['peak_bytes'] / 2**20:>8.1f} "
                          f"{r['peak_bytes'] / max(base['peak_bytes'], 1):>6.2f}", flush=True)
                os.remove(path)
    print()
    print(f"What the {MAX_UPLOAD_BYTES / 2**20:.0f} MB cap allows with these files ({args.dims} random float32 "
          f"dims + a name), rows limit {MAX_ROWS:,}:")
    for fmt, size in per_row.items():
        fits = min(int(MAX_UPLOAD_BYTES // size), MAX_ROWS)
        print(f"  {fmt:<16} {size:6.1f} bytes/row -> {fits:>9,} rows x {args.dims} dims")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"dims": args.dims, "sizes": sizes, "records": records, "bytes_per_row": per_row}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
