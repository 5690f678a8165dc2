"""The neighbour engine at a million rows: each row's 20 nearest other rows of the scale bench's
synthetic 32-d data, approximate (IVF, the default above 200k rows) with its measured recall.

    python bench/bench_neighbours_1m.py [--n 1000000]

CPU seconds are time.process_time() (all threads), peak RSS by resource.getrusage.
"""
import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_hkd_scale import hierarchical_rows  # noqa: E402
from hkd_core.neighbours import kneighbors  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=1_000_000)
args = p.parse_args()
X = hierarchical_rows(args.n)
cpu, wall = time.process_time(), time.perf_counter()
nb = kneighbors(X, 20, "euclidean")
print(f"n={args.n}: {'approximate' if nb.approximate else 'exact'} in {time.process_time() - cpu:.1f} CPU s, "
      f"{time.perf_counter() - wall:.1f} wall s, peak RSS "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; recall@20 {nb.recall:.3f} "
      f"on {nb.recall_sample} sampled queries; {nb.method}")
