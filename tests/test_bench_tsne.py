import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tsne_bench_quick(capsys):
    spec = importlib.util.spec_from_file_location("bench_tsne", os.path.join(ROOT, "bench", "bench_tsne.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--quick"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [r[2] for r in rows] == ["fft", "auto"] and float(rows[0][4]) == 1.0    # FFT is the anchor
    assert all(0.0 < float(r[5]) <= 1.0 for r in rows)          # the share of neighbours kept
    assert float(rows[1][5]) > 0.5        # 20 separated clusters: the auto (Barnes-Hut) map keeps them
