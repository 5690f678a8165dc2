"""bench/bench_upload.py --quick runs end to end (a process per parser and file) and prints its tables."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_upload_bench_quick(tmp_path):
    js = tmp_path / "upload.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_upload.py"), "--quick",
                           "--json", str(js)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "peak MB" in proc.stdout and "What the 50 MB cap allows" in proc.stdout
    record = json.loads(js.read_text())
    assert {(r["format"], r["parser"]) for r in record["records"]} == {
        (f, p) for f in ("parquet-columns", "parquet-list", "csv") for p in ("anchor", "upload")}
    for r in record["records"]:
        assert r["cpu_s"] > 0 and r["peak_bytes"] >= 0 and r["shape"] == [3_000, 16]
