"""Validation sweep and test table of the HKD cut tree against hkd, hkm K=2/4/16 and RQ-k-means.

Protocol (hkd_core.benchmark.protocol): fit on the train rows; choose on the validation rows
(codes of the validation rows, validation rows as database); report the test rows (codes of the
test rows, test rows as database); 3 model seeds. Figures: best KNN=5 share at >= 80 % and >= 90 %
search reduction over N = 1..8, and the area under the share-vs-reduction frontier (AUC).

    python bench/hkd_cuttree_search.py val  [datasets...]   # validation table (settings sweep)
    python bench/hkd_cuttree_search.py test [datasets...]   # test table, mean +- spread (3 seeds)
    python bench/hkd_cuttree_search.py test digits --models cut hkm2
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hkd_core.benchmark.protocol import make_split  # noqa: E402
from hkd_core.datasets import load_dataset  # noqa: E402
from hkd_core.datasets.base import Dataset  # noqa: E402
from hkd_core.models import make_model  # noqa: E402
from hkd_core.metrics import best_share_at_reduction, evaluate, frontier_auc  # noqa: E402

D = 8
SEEDS = (0, 1, 2)


# -- data --------------------------------------------------------------------------------------

def _plain(name, X, labels):
    return Dataset(name=name, X=X.astype(np.float32), names=[f"p{i}" for i in range(len(X))],
                   labels=[str(v) for v in labels])


def hierarchy_mixture(seed: int = 123, n: int = 1500, dim: int = 16):
    """Random 3-level hierarchy (3 x 3 x 3 leaves) of Gaussians with shrinking offsets."""
    rng = np.random.default_rng(seed)
    centres, labels = [], []
    for a in range(3):
        ca = rng.standard_normal(dim) * 8
        for b in range(3):
            cb = ca + rng.standard_normal(dim) * 3
            for c in range(3):
                centres.append(cb + rng.standard_normal(dim) * 1.2)
                labels.append(f"{a}.{b}.{c}")
    which = rng.integers(0, len(centres), n)
    X = np.asarray(centres)[which] + rng.standard_normal((n, dim)) * 0.6
    return _plain("hmix", X, np.asarray(labels)[which])


def load(name: str):
    """(Dataset, split, standardise?)"""
    from sklearn import datasets as skd
    if name in ("mammals", "synthetic"):
        ds = load_dataset(name)
        return ds, False
    if name == "digits":
        b = skd.load_digits()
        return _plain("digits", b.data, b.target), False
    if name == "breast_cancer":
        b = skd.load_breast_cancer()
        return _plain("breast_cancer", b.data, b.target), True
    if name == "wine":
        b = skd.load_wine()
        return _plain("wine", b.data, b.target), True
    if name == "hmix":
        return hierarchy_mixture(), False
    raise ValueError(name)


# (dataset, neighbour metric)
CASES = [("mammals", "poincare"), ("mammals", "euclidean"), ("digits", "euclidean"),
         ("synthetic", "euclidean"), ("breast_cancer", "euclidean"), ("wine", "euclidean"),
         ("hmix", "euclidean")]


def parts(name: str):
    ds, standardise = load(name)
    sp = make_split(ds, seed=0)
    X = ds.X.astype(np.float64)
    if standardise:                       # statistics of the training rows only
        mu, sd = X[sp.train].mean(0), X[sp.train].std(0) + 1e-12
        X = (X - mu) / sd
    X = X.astype(np.float32)
    return X[sp.train], X[sp.validation], X[sp.test]


# -- models ------------------------------------------------------------------------------------

class RQ:
    """faiss.ResidualQuantizer(d, M, nbits) codes, K = 2**nbits."""

    def __init__(self, nbits, seed):
        self.nbits, self.seed = nbits, seed

    def fit(self, X):
        import faiss
        self.rq = faiss.ResidualQuantizer(X.shape[1], D, self.nbits)
        if hasattr(self.rq, "cp"):
            self.rq.cp.seed = self.seed          # the per-step k-means seed
        self.rq.train(np.ascontiguousarray(X, dtype=np.float32))
        return self

    def transform(self, X):
        import faiss
        c = self.rq.compute_codes(np.ascontiguousarray(X, dtype=np.float32))
        return faiss.unpack_bitstrings(c, D, self.nbits).astype(np.int64)


def build(key: str, metric: str, seed: int, dataset: str):
    """Model keys: cut (recommended), cut-spectral, cut-kmeans, cut-norefine, cut-b2, hkm2/4/16, rq1/2/4, hkd."""
    geo = "poincare" if metric == "poincare" else "euclidean"
    if key.startswith("hkm"):
        return make_model("hkm", K=int(key[3:]), D=D, random_state=seed)
    if key.startswith("rq"):
        return RQ(int(key[2:]), seed)
    if key == "hkd":
        from hkd_core.presets import default_params
        p = default_params(dataset if dataset in ("mammals", "synthetic") else "user", "hkd")
        p.update(random_state=seed, device="cpu", metric=geo)
        return make_model("hkd", **p)
    base = dict(K=16, D=D, random_state=seed, metric=geo)
    if key == "cut":
        return make_model("hkd-cuttree", **base)
    if key == "cut-vote":          # always the p_{j|i} vote descent
        return make_model("hkd-cuttree", **base, descent="vote")
    if key == "cut-spectral":
        return make_model("hkd-cuttree-spectral", **base)
    if key == "cut-kmeans":
        return make_model("hkd-cuttree-kmeans", **base)
    if key == "cut-norefine":
        return make_model("hkd-cuttree-no-refine", **base)
    if key.startswith("cut-g"):     # fixed graph metric (cut-geuclidean / cut-gpoincare)
        return make_model("hkd-cuttree", **base, graph_metric=key[5:])
    if key.startswith("cut-b"):     # fixed branching, automatic perplexity
        return make_model("hkd-cuttree", **base, branching=int(key[5:]))
    if key.startswith("cut-p"):     # fixed perplexity, automatic branching
        return make_model("hkd-cuttree", **base, perplexity=float(key[5:]))
    if key.startswith("cutkm-b"):   # k-means splits with the same branching
        return make_model("hkd-cuttree-kmeans", **base, branching=int(key[7:]))
    raise ValueError(key)


def score(codes, X, metric):
    m = evaluate(codes, X, metric, ks=(5,), max_depth=8)
    at = [best_share_at_reduction(m, level) for level in (0.8, 0.9)]
    return (*(float("nan") if v is None else v for v in at), frontier_auc(m))


def run(key, dataset, metric, seed, which):
    tr, va, te = parts(dataset)
    model = build(key, metric, seed, dataset)
    t0 = time.time()
    model.fit(tr)
    X = va if which == "val" else te
    codes = model.transform(X)
    return score(codes, X, metric), time.time() - t0, model


DEFAULT_MODELS = ["cut", "cut-spectral", "cut-kmeans", "cut-norefine", "hkm2", "hkm4", "hkm16", "rq1", "rq2", "rq4"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=("val", "test"))
    ap.add_argument("datasets", nargs="*")
    ap.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    ap.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    args = ap.parse_args()
    cases = [c for c in CASES if not args.datasets or c[0] in args.datasets]
    print(f"{args.which} rows; best KNN=5 share at >= 80 % / >= 90 % reduction, frontier AUC; "
          f"mean +- std over seeds {args.seeds}")
    print(f"{'dataset':14s} {'metric':9s} {'model':14s} {'@80':>13s} {'@90':>13s} {'AUC':>13s}  "
          f"{'sec':>5s} chosen")
    for dataset, metric in cases:
        for key in args.models:
            vals, secs, chosen = [], [], []
            for seed in args.seeds:
                v, sec, model = run(key, dataset, metric, seed, args.which)
                vals.append(v)
                secs.append(sec)
                if hasattr(model, "branching_"):
                    chosen.append(f"{model.split_[0]}{model.descent_[0]}b{model.branching_}"
                                  f"p{model.perplexity_:g}{model.graph_metric_[0]}")
            v = np.asarray(vals)
            cells = [f"{np.nanmean(v[:, j]):.3f}+-{np.nanstd(v[:, j]):.3f}" for j in range(3)]
            print(f"{dataset:14s} {metric:9s} {key:14s} {cells[0]:>13s} {cells[1]:>13s} "
                  f"{cells[2]:>13s}  {np.mean(secs):5.1f} {' '.join(chosen)}", flush=True)


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):       # small problems: extra threads only contend on shared cores
        main()
