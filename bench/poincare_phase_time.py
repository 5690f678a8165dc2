"""Per-edge time of PoincareEmbedding's burn-in vs main epochs on the full WordNet noun closure.

    python bench/poincare_phase_time.py [--batches 150] [--batch-size 64]

Times ``--batches`` optimizer steps of each phase on the real 82,115-node / 743,241-edge closure
(negatives, forbidden pairs and degree distribution of the whole closure) by letting each epoch
visit only its first batches. It works on any version of hkd_core.poincare (run it on the commit
before the speed fix for the "before" figures): it restricts the epoch's edge permutation, the one
thing both versions share, instead of calling a newer API.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--closure", default=None, help="closure TSV (default: build from WordNet)")
    args = ap.parse_args()
    from hkd_core.datasets.wordnet import build_closure, open_wordnet, read_closure_tsv
    import hkd_core.poincare as P

    if args.closure:
        nodes, edges = read_closure_tsv(args.closure)
    else:
        nodes, edges = build_closure("entity.n.01", open_wordnet())
    n_keep = args.batches * args.batch_size

    real_rng = np.random.default_rng

    class ShortEpochs:
        """A Generator whose epoch permutation keeps only the first n_keep edges."""
        def __init__(self, *a, **k):
            self._g = real_rng(*a, **k)

        def permutation(self, m):
            return self._g.permutation(m)[:n_keep]

        def __getattr__(self, name):
            return getattr(self._g, name)

    P.np.random.default_rng = ShortEpochs   # patch only the module's view of numpy.random
    stamps = []
    model = P.PoincareEmbedding(dim=10, epochs=2, burn_in=1, batch_size=args.batch_size,
                                negatives=50, device="cpu", seed=0)
    last = [time.perf_counter()]

    def progress(rec):
        now = time.perf_counter()
        stamps.append((rec["phase"], now - last[0]))
        last[0] = now

    t0 = time.perf_counter()
    model.fit(nodes, edges, progress=progress)
    # the first interval also holds set-up (forbidden keys, init); time set-up separately
    print(f"closure {len(nodes)} nodes, {len(edges)} edges; {args.batches} batches of "
          f"{args.batch_size} per phase")
    setup = getattr(model, "setup_seconds_", None)
    for phase, sec in stamps:
        if phase == "burn-in" and setup is not None:
            sec -= setup
        print(f"{phase:8s} {sec / n_keep * 1e6:9.1f} us/edge")
    if setup is not None:
        print(f"set-up   {setup:.1f} s (excluded)")
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
