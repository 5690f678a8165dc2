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
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--burn-in", type=int, default=1)
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
            started.append(time.perf_counter())   # an epoch's batches start right after this
            return self._g.permutation(m)[:n_keep]

        def __getattr__(self, name):
            return getattr(self._g, name)

    # warm up torch (first-call dispatch, allocator) on a tiny closure, so that the first
    # timed epoch, which is the burn-in one, does not pay for it
    tiny = [f"n{i}" for i in range(30)]
    P.PoincareEmbedding(dim=10, epochs=2, burn_in=1, batch_size=args.batch_size, negatives=5,
                        device="cpu").fit(tiny, [(t, "n0") for t in tiny[1:]])
    P.np.random.default_rng = ShortEpochs  # noqa   # patch only the module's view of numpy.random
    stamps, started = [], []
    model = P.PoincareEmbedding(dim=10, epochs=args.epochs, burn_in=args.burn_in, batch_size=args.batch_size,
                                negatives=50, device="cpu", seed=0)

    def progress(rec):
        stamps.append((rec["phase"], time.perf_counter() - started[-1]))

    t0 = time.perf_counter()
    model.fit(nodes, edges, progress=progress)
    print(f"closure {len(nodes)} nodes, {len(edges)} edges; {args.batches} batches of "
          f"{args.batch_size} per phase")
    # each epoch timed from its edge permutation to its progress report: set-up (edge index,
    # forbidden keys, initialisation) is excluded in both versions alike
    for epoch, (phase, sec) in enumerate(stamps, 1):
        print(f"epoch {epoch} {phase:8s} {sec / n_keep * 1e6:9.1f} us/edge")
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
