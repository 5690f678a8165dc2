"""Sweep the synthetic set's geometry: does a flat coder (DCCL) lose neighbours where HKD keeps
them (paper Table 1)? Fits on the protocol's train rows, scores KNN=10 share on the test rows.

    python bench/synthetic_sweep.py --spreads 0.4 1.0 1.5 --shrinks 0.5 --hkd-epochs 200
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hkd_core.benchmark.protocol import make_split  # noqa: E402
from hkd_core.datasets.synthetic import load_synthetic  # noqa: E402
from hkd_core.metrics import evaluate  # noqa: E402
from hkd_core.models import make_model  # noqa: E402
from hkd_core.presets import default_params  # noqa: E402


def run(model, ds, split, epochs=None):
    params = default_params("synthetic", model)
    if epochs is not None:
        params["epochs"] = epochs
    est = make_model(model, **params)
    t = time.perf_counter()
    est.fit(ds.X[split.train])
    X = ds.X[split.test]
    m = evaluate(est.transform(X), X, "euclidean")
    return m, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spreads", type=float, nargs="+", default=[0.4, 1.0, 1.5, 2.0])
    ap.add_argument("--shrinks", type=float, nargs="+", default=[0.5])
    ap.add_argument("--models", nargs="+", default=["dccl", "hkd"])
    ap.add_argument("--hkd-epochs", type=int)
    ap.add_argument("--dccl-epochs", type=int)
    args = ap.parse_args()
    print(f"{'spread':>6} {'shrink':>6} {'model':<5} " + " ".join(f"N={n:<4}" for n in (1, 2, 4, 8))
          + "  red.N=1/2/8 %      s", flush=True)
    for shrink in args.shrinks:
        for spread in args.spreads:
            ds = load_synthetic(spread=spread, shrink=shrink)
            split = make_split(ds, 0)
            for model in args.models:
                ep = args.hkd_epochs if model == "hkd" else args.dccl_epochs
                m, s = run(model, ds, split, ep)
                sh = m["share"]["10"]
                r = m["reduction"]
                print(f"{spread:>6.2f} {shrink:>6.2f} {model:<5} "
                      + " ".join(f"{sh[n - 1]:<6.3f}" for n in (1, 2, 4, 8))
                      + f"  {100 * r[0]:.1f}/{100 * r[1]:.1f}/{100 * r[7]:.1f}  {s:6.1f}", flush=True)


if __name__ == "__main__":
    main()
