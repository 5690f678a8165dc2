"""bench/bench_hkd_scale.py --quick runs end to end and prints both tables."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_scale_bench_quick(tmp_path):
    out, js = tmp_path / "tables.txt", tmp_path / "m.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_hkd_scale.py"), "--quick",
                           "--out", str(out), "--json", str(js)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "fitted scaling exponent" in text and "approx recall@20" in text
    record = json.loads(js.read_text())
    assert [r["n"] for r in record["hkd"]] == sorted(record["sizes"])
    for r in record["hkd"]:
        assert r["cpu_s"] > 0 and r["peak_rss_mb"] >= r["rss_before_fit_mb"] > 0
    for r in record["neighbours"]:
        assert 0.0 <= r["approx_recall"] <= 1.0
        assert r["sklearn_agreement"] > 0.99          # exact engine = scikit-learn's exact search
