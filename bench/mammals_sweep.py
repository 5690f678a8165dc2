"""What moves HKD's trade-off on WordNet mammals: one line per configuration with the best
KNN=5 share at >= 80 % and >= 90 % search reduction under Euclidean and Poincare neighbours, the
reductions at N = 1..4, and the leading codes dog.n.01 shares with hunting_dog /
whitetail_prairie_dog / flying_fox (Table 4's ordering).

    python bench/mammals_sweep.py            # all configurations (about 10 minutes on 2 cores)
    python bench/mammals_sweep.py eu-d0.3 hkm2
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


from hkd_core.datasets.wordnet import load_mammals  # noqa: E402
from hkd_core.metrics import best_share_at_reduction, evaluate, shared_prefix_length  # noqa: E402
from hkd_core.models import make_model  # noqa: E402
from hkd_core.presets import default_params  # noqa: E402

# name -> (model, parameters over the mammals defaults, embedding variant); "pc" = p_{j|i} on
# Poincare distances, "eu" = on squared Euclidean distances of the ball coordinates
CONFIGS = {
    "hkm2": ("hkm", {"K": 2}, "default"), "hkm4": ("hkm", {"K": 4}, "default"),
    "dccl": ("dccl", {}, "default"),
    "pc-d0.2": ("hkd", {"decay": 0.2, "metric": "poincare"}, "default"),
    "pc-d0.3": ("hkd", {"decay": 0.3, "metric": "poincare"}, "default"),
    "pc-d0.4": ("hkd", {"decay": 0.4, "metric": "poincare"}, "default"),
    "pc-d0.2-nb10": ("hkd", {"decay": 0.2, "metric": "poincare", "n_neighbour_exemplars": 10}, "default"),
    "pc-d0.2-cond": ("hkd", {"decay": 0.2, "metric": "poincare", "q_normalization": "conditional"}, "default"),
    "pc-d0.2-st": ("hkd", {"decay": 0.2, "metric": "poincare", "relaxation": "straight-through"}, "default"),
    "eu-d0.2": ("hkd", {"decay": 0.2, "metric": "euclidean"}, "default"),
    "eu-d0.3": ("hkd", {"decay": 0.3, "metric": "euclidean"}, "default"),
    "eu-d0.3-s1": ("hkd", {"decay": 0.3, "metric": "euclidean", "random_state": 1}, "default"),
    "eu-d0.4": ("hkd", {"decay": 0.4, "metric": "euclidean"}, "default"),
    "eu-d0.5": ("hkd", {"decay": 0.5, "metric": "euclidean"}, "default"),
    "eu-d0.3-ep600": ("hkd", {"decay": 0.3, "metric": "euclidean", "epochs": 600}, "default"),
    "eu-d0.2-p30": ("hkd", {"decay": 0.2, "metric": "euclidean", "perplexities": (30.0,)}, "default"),
    "eu-d0.2-p5,30": ("hkd", {"decay": 0.2, "metric": "euclidean", "perplexities": (5.0, 30.0),
                              "kl_weights": (1.0, 1.0)}, "default"),
    "eu-d0.2-a0.1": ("hkd", {"decay": 0.2, "metric": "euclidean", "alpha": 0.1}, "default"),
    "eu-d0.2-ex600": ("hkd", {"decay": 0.2, "metric": "euclidean", "n_kmeans_exemplars": 400,
                              "n_random_exemplars": 200}, "default"),
    "hkm2-e30": ("hkm", {"K": 2}, "e30"), "hkm4-e30": ("hkm", {"K": 4}, "e30"),
    "dccl-e30": ("dccl", {}, "e30"),
    "pc-d0.2-e30": ("hkd", {"decay": 0.2, "metric": "poincare"}, "e30"),
    "pc-d0.3-e30": ("hkd", {"decay": 0.3, "metric": "poincare"}, "e30"),
    "pc-d0.5-e30": ("hkd", {"decay": 0.5, "metric": "poincare"}, "e30"),
    "pc-d0.2-e30-nb10": ("hkd", {"decay": 0.2, "metric": "poincare", "n_neighbour_exemplars": 10}, "e30"),
    "pc-d0.2-e30-p30": ("hkd", {"decay": 0.2, "metric": "poincare", "perplexities": (30.0,)}, "e30"),
    "pc-d0.2-e30-cond": ("hkd", {"decay": 0.2, "metric": "poincare", "q_normalization": "conditional"}, "e30"),
    "pc-d0.2-e30-st": ("hkd", {"decay": 0.2, "metric": "poincare", "relaxation": "straight-through"}, "e30"),
    "eu-d0.3-e30": ("hkd", {"decay": 0.3, "metric": "euclidean"}, "e30"),
}


def main(names):
    fmt = lambda v: "  -  " if v is None else f"{v:.3f}"  # noqa: E731
    print(f"{'config':<18}{'s':>4} | {'eucl @80':>8} {'@90':>6} | {'poin @80':>8} {'@90':>6} | "
          f"{'reduction % N=1..4':<22} | dog shares: hunting whitetail flying_fox")
    for name in names:
        model, params, variant = CONFIGS[name]
        ds = load_mammals(variant=variant)
        kw = default_params("mammals", model)
        kw.update(params)
        start = time.perf_counter()
        codes = make_model(model, **kw).fit(ds.X).codes_
        seconds = time.perf_counter() - start
        res = {m: evaluate(codes, ds.X, m) for m in ("euclidean", "poincare")}
        b = {m: [best_share_at_reduction(r, lvl) for lvl in (0.8, 0.9)] for m, r in res.items()}
        red = " ".join(f"{100 * v:.1f}" for v in res["euclidean"]["reduction"][:4])
        shared = shared_prefix_length(codes, codes[ds.index_of("dog.n.01")])
        t4 = [int(shared[ds.index_of(n)]) for n in
              ("hunting_dog.n.01", "whitetail_prairie_dog.n.01", "flying_fox.n.01")]
        print(f"{name:<18}{seconds:>4.0f} | {fmt(b['euclidean'][0]):>8} {fmt(b['euclidean'][1]):>6} | "
              f"{fmt(b['poincare'][0]):>8} {fmt(b['poincare'][1]):>6} | {red:<22} | "
              f"{t4[0]:>3} {t4[1]:>3} {t4[2]:>3}", flush=True)


if __name__ == "__main__":
    unknown = [n for n in sys.argv[1:] if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    main(sys.argv[1:] or list(CONFIGS))
