"""t-SNE's repulsion: openTSNE's FFT interpolation (its TSNE default) against its "auto" choice
(Barnes-Hut below 10,000 points, FFT above), which hkd_core.projection uses since
PROJECTION_VERSION 2. Same affinities, same start, same run; CPU seconds of the optimisation and
the ratio to FFT, and how well each map keeps the 10 nearest neighbours of the data (the share of
each point's 10 neighbours in the data that are among its 10 neighbours on the map).

    python bench/bench_tsne.py            # mammals (1,182 Poincare points), synthetic 5k and 20k
    python bench/bench_tsne.py --quick    # 400 synthetic points, 150 iterations (the test's form)

openTSNE's default optimisation (250 early-exaggeration + 500 iterations) as in the app. At 20,000
rows "auto" is FFT too: that row's ratio shows the run-to-run noise of the timing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def neighbour_agreement(X, xy, metric, k=10) -> float:
    from hkd_core.neighbours import kneighbors

    data = kneighbors(X, k, metric).indices
    drawn = kneighbors(xy.astype(np.float32), k, "euclidean").indices
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(data, drawn)]))


def run(name, X, metric, iterations=(250, 500)):
    import openTSNE
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.initialization import pca
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    from hkd_core.neighbours import kneighbors

    nb = kneighbors(X, 90, metric)
    aff = PerplexityBasedNN(knn_index=PrecomputedNeighbors(nb.indices, nb.distances), perplexity=30.0,
                            random_state=0, n_jobs=2)
    rows = []
    for method in ("fft", "auto"):
        start = time.process_time()
        start_xy = pca(X.astype(np.float64), random_state=0) if len(X) > 5000 else "spectral"   # as the app
        emb = openTSNE.TSNE(n_components=2, random_state=0, n_jobs=2, negative_gradient_method=method,
                            early_exaggeration_iter=iterations[0], n_iter=iterations[1],
                            verbose=False).fit(affinities=aff, initialization=start_xy)
        rows.append((method, time.process_time() - start, neighbour_agreement(X, np.asarray(emb), metric)))
    anchor = rows[0][1]
    for method, cpu, kept in rows:
        print(f"{name:<17}{len(X):>7,}  {method:<6}{cpu:>8.1f}{cpu / anchor:>7.2f}{kept:>12.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="400 synthetic points, 150 iterations")
    args = parser.parse_args(argv)
    from hkd_core.datasets import load_dataset

    print(f"{'data':<17}{'rows':>7}  {'method':<6}{'CPU s':>8}{'x':>7}{'10-NN kept':>12}")
    if not args.quick:
        mammals = load_dataset("mammals")
        run("mammals", np.asarray(mammals.X, dtype=np.float32), mammals.metric)
    for n in ((400,) if args.quick else (5_000, 20_000)):
        # --quick: a short optimisation (50 + 100 iterations), enough to exercise the table
        run(f"synthetic-{n:,}", clusters(n), "euclidean", (50, 100) if args.quick else (250, 500))


def clusters(n: int) -> np.ndarray:
    """n points in 20 Gaussian clusters of 16 dimensions."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4, size=(20, 16))
    return (centres[np.arange(n) % 20] + rng.normal(size=(n, 16))).astype(np.float32)


if __name__ == "__main__":
    main()
