"""Recall@10 against fraction scanned and queries per second: the prefix index (hkd_core/index.py)
over HKD, hkm and RQ codes against faiss IndexIVFFlat, on the same data, in one run.

Protocol (hkd_core/benchmark/protocol.py make_split, seed 0): the coders are fitted on the train
rows, the database is the train rows (coded by the fitted coder), the queries are the held-out
test rows (at most --queries of them, drawn at random); the leaf size of the prefix index is
chosen on the validation rows when several are given (--leaf-sizes), then reported on the test
rows. Neighbours and recall are Euclidean (faiss IVF has no Poincare metric; mammals is a
Poincare embedding, searched here by Euclidean distance on its coordinates). Each coder's leaf size
is chosen on the validation rows separately for the two summary lines (best recall at IVF's
fraction scanned; best QPS at recall >= .95); both chosen sweeps are printed (label "L<size>").

Timing: CPU seconds (time.process_time) of batched searches over all queries, faiss restricted to
one thread (faiss.omp_set_num_threads(1)) for every method; the brute-force anchor is faiss
IndexFlatL2 in the same run, and QPS is printed as a ratio to it. "scanned" is the mean fraction of
the database whose exact distance was computed per query, as counted by faiss's IVF statistics
for both IVF and the prefix index (centroid comparisons are not in it: they are in the QPS, and
the prefix index's mean number of centroid comparisons per query is printed as "route").

    python bench/bench_index.py                       # mammals, 50k, 1M synthetic rows
    python bench/bench_index.py --datasets mammals synthetic-50k
    python bench/bench_index.py --quick               # seconds: small synthetic set, cheap coders
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import faiss  # noqa: E402

from hkd_core.benchmark.protocol import make_split  # noqa: E402
from hkd_core.benchmark.run import module_source_hash  # noqa: E402
from hkd_core.datasets import load_dataset  # noqa: E402
from hkd_core.index import PrefixIndex  # noqa: E402
from hkd_core.models import MODEL_SPECS, make_model  # noqa: E402
from hkd_core.presets import default_params  # noqa: E402

K_NN = 10
TARGET = 0.95

# name -> (registry dataset, options)
DATASETS = {
    "mammals": ("mammals", {}),
    "synthetic-50k": ("synthetic", {"n_per_cluster": 3125}),     # 16 clusters x 3125 = 50,000
    "synthetic-1m": ("synthetic", {"n_per_cluster": 62500}),     # 1,000,000 rows
    "synthetic-quick": ("synthetic", {"n_per_cluster": 250}),    # 4,000 rows
}


def coders_for(name: str, quick: bool) -> list[tuple[str, str, dict]]:
    """(label, registry model, parameters). HKD uses the dataset's preset (presets.py). At 1M rows
    HKD is left out: its fit (200 epochs over 800k rows on 2 shared cores) does not fit the time
    of this benchmark, so only the cheaper coders run there."""
    dataset = DATASETS[name][0]
    coders = [("hkm K=16", "hkm", {"K": 16, "D": 4}), ("rq K=16", "rq", {"K": 16, "D": 8})]
    if not quick and name != "synthetic-1m":
        params = default_params(dataset, "hkd")
        if name == "synthetic-50k":
            # the preset's 200 epochs are 2,000 steps on the 1,600-row set; 20 epochs over 30,000
            # rows are 4,700 steps (45 min of 2 shared cores at 200 epochs, 5 min at 20)
            params["epochs"] = 20
        coders.insert(0, ("hkd", "hkd", params))
    return coders


def database_codes(ds, split, model: str, params: dict, cache_dir: str | None, log) -> np.ndarray:
    """Codes of the train rows by the coder fitted on them, cached by (data, split, model,
    parameters, source of the coder's modules)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ds.X).tobytes()[:1 << 24] + str(ds.X.shape).encode())
    h.update(np.ascontiguousarray(split.train, dtype=np.int64).tobytes())
    h.update(json.dumps([model, params, module_source_hash(MODEL_SPECS[model][0])], sort_keys=True,
                        default=str).encode())
    path = os.path.join(cache_dir, h.hexdigest()[:20] + ".npy") if cache_dir else None
    if path and os.path.exists(path):
        return np.load(path, allow_pickle=False)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    start = time.perf_counter()
    est = make_model(model, **kwargs).fit(ds.X[split.train])
    codes = np.asarray(est.transform(ds.X[split.train]), dtype=np.int64)
    log(f"  fitted {model} on {len(split.train)} rows in {time.perf_counter() - start:.0f} s")
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        np.save(path + ".tmp.npy", codes)
        os.replace(path + ".tmp.npy", path)
    return codes


def cpu_time(fn, min_seconds: float) -> float:
    """CPU seconds of one call of fn (warmed up, averaged over repeats lasting >= min_seconds)."""
    fn()
    reps, start = 0, time.process_time()
    while True:
        fn()
        reps += 1
        elapsed = time.process_time() - start
        if elapsed >= min_seconds:
            return elapsed / reps


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(np.intersect1d(a, b)) for a, b in zip(found, truth)]
    return float(np.sum(hits)) / truth.size


def probe_grid(n_lists: int) -> list[int]:
    grid = sorted({int(round(1.5 ** i)) for i in range(40)} | {n_lists})
    return [g for g in grid if g <= n_lists]


def sweep_prefix(X_db, codes, Q, truth, leaf_size, min_seconds, stop_at=0.999):
    index = PrefixIndex(leaf_size=leaf_size).fit(X_db, codes)
    rows = []
    for n_probe in probe_grid(index.n_leaves_):
        _, idx = index.search(Q, K_NN, n_probe=n_probe)
        scanned, route = index.last_fraction_scanned_, index.last_routing_distances_
        seconds = cpu_time(lambda: index.search(Q, K_NN, n_probe=n_probe), min_seconds)
        rows.append({"setting": f"leaf {index.leaf_size_} ({index.n_leaves_} leaves, "
                                f"{index.routing_}) n_probe {n_probe}",
                     "scanned": scanned, "recall": recall_at(idx, truth), "seconds": seconds,
                     "route": route})
        if rows[-1]["recall"] >= stop_at:
            break
    return rows


def sweep_ivf(X_db, Q, truth, min_seconds, stop_at=0.999):
    n, d = X_db.shape
    nlist = max(1, int(round(np.sqrt(n))))
    quantizer = faiss.IndexFlatL2(d)
    ivf = faiss.IndexIVFFlat(quantizer, d, nlist)
    ivf.train(X_db)
    ivf.add(X_db)
    rows = []
    for nprobe in probe_grid(nlist):
        ivf.nprobe = nprobe
        faiss.cvar.indexIVF_stats.reset()
        _, idx = ivf.search(Q, K_NN)
        scanned = faiss.cvar.indexIVF_stats.ndis / (len(Q) * n)
        seconds = cpu_time(lambda: ivf.search(Q, K_NN), min_seconds)
        rows.append({"setting": f"nlist {nlist} nprobe {nprobe}", "scanned": scanned,
                     "recall": recall_at(idx, truth), "seconds": seconds, "route": float(nlist)})
        if rows[-1]["recall"] >= stop_at:
            break
    return rows


def recall_at_fraction(rows, fraction: float) -> tuple[float, bool]:
    """(recall of a sweep at a fraction scanned, measured-range flag). Inside the sweep's range:
    linear interpolation in log(fraction) of the running maximum (recall never falls with more
    scanned); below its first point: that point's recall scaled by fraction / its fraction (a
    guess, flagged False, never the first point's recall itself, which would flatter a sweep
    that cannot scan that little); above its last point: the last recall."""
    f = np.array([r["scanned"] for r in rows])
    rec = np.maximum.accumulate([r["recall"] for r in rows])
    if fraction < f[0]:
        return float(rec[0] * fraction / f[0]), False
    return float(np.interp(np.log(fraction), np.log(f), rec)), True


def best_qps_at(rows, brute_seconds, target=TARGET):
    ok = [r for r in rows if r["recall"] >= target]
    return max((brute_seconds / r["seconds"] for r in ok), default=None)


def run_dataset(name, quick, n_queries, leaf_factors, cache_dir, min_seconds, log):
    dataset, options = DATASETS[name]
    ds = load_dataset(dataset, **options)
    split = make_split(ds, seed=0)
    X = np.ascontiguousarray(ds.X, dtype=np.float32)
    X_db = np.ascontiguousarray(X[split.train])
    rng = np.random.default_rng(0)
    test = split.test if len(split.test) <= n_queries else np.sort(rng.choice(split.test, n_queries, replace=False))
    val = (split.validation if len(split.validation) <= n_queries
           else np.sort(rng.choice(split.validation, n_queries, replace=False)))
    Q, Qv = np.ascontiguousarray(X[test]), np.ascontiguousarray(X[val])
    flat = faiss.IndexFlatL2(X_db.shape[1])
    flat.add(X_db)
    _, truth = flat.search(Q, K_NN)
    _, truth_val = flat.search(Qv, K_NN)
    brute = cpu_time(lambda: flat.search(Q, K_NN), min_seconds)
    log(f"{name}: database {len(X_db)} train rows x {X_db.shape[1]} dims, {len(Q)} test queries")
    results = {"ivf": sweep_ivf(X_db, Q, truth, min_seconds)}
    ivf_val = sweep_ivf(X_db, Qv, truth_val, min_seconds / 4)
    point = next((r for r in ivf_val if r["recall"] >= TARGET), ivf_val[-1])
    choice = {}
    for label, model, params in coders_for(name, quick):
        codes = database_codes(ds, split, model, params, cache_dir, log)
        sizes = [max(2, int(round(f * np.sqrt(len(X_db))))) for f in leaf_factors]
        by_recall = by_qps = sizes[0]
        if len(sizes) > 1:
            # the protocol: settings are chosen on the validation rows, one per summary line:
            # (a) the leaf size of the best recall at IVF's fraction scanned for recall .95,
            # (b) the leaf size of the highest QPS at recall >= .95
            val = {ls: sweep_prefix(X_db, codes, Qv, truth_val, ls, min_seconds / 4) for ls in sizes}
            by_recall = max(sizes, key=lambda ls: recall_at_fraction(val[ls], point["scanned"])[0])
            by_qps = max(sizes, key=lambda ls: best_qps_at(val[ls], 1.0) or 0.0)
            log(f"  {label}: leaf size {by_recall} (recall) / {by_qps} (QPS) chosen on the "
                f"validation rows among {sizes}")
        for leaf in sorted({by_recall, by_qps}):
            results[f"{label} L{leaf}"] = sweep_prefix(X_db, codes, Q, truth, leaf, min_seconds)
        choice[label] = {"a": f"{label} L{by_recall}", "b": f"{label} L{by_qps}"}
    return {"name": name, "n": len(X_db), "d": X_db.shape[1], "queries": len(Q),
            "brute_seconds": brute, "results": results, "choice": choice}


def format_dataset(res) -> str:
    brute = res["brute_seconds"]
    lines = [f"== {res['name']}: {res['n']} database rows x {res['d']} dims, {res['queries']} "
             f"queries, recall@{K_NN}; brute force (faiss IndexFlatL2, 1 thread) "
             f"{res['queries'] / brute:,.0f} queries/s = 1.00x",
             f"{'method':<14} {'setting':<44} {'scanned':>8} {'recall':>7} {'QPS/brute':>9} {'route':>7}"]
    for label, rows in res["results"].items():
        for r in rows:
            lines.append(f"{label:<14} {r['setting']:<44} {100 * r['scanned']:>7.2f}% "
                         f"{r['recall']:>7.3f} {brute / r['seconds']:>8.2f}x {r['route']:>7.0f}")
    ivf = res["results"]["ivf"]
    choice = res["choice"]
    # (a) equal fraction scanned: at the fractions where IVF first reaches .90 and .95 recall
    parts, seen = [], set()
    for level in (0.90, TARGET):
        point = next((r for r in ivf if r["recall"] >= level), None)
        if point is None or id(point) in seen:
            continue
        seen.add(id(point))
        f = point["scanned"]
        vs = []
        for c in choice.values():
            value, measured = recall_at_fraction(res["results"][c["a"]], f)
            first = res["results"][c["a"]][0]["scanned"]
            vs.append(f"{c['a']} {value:.3f}" if measured else
                      f"{c['a']} ~{value:.3f} (extrapolated: its first point scans {100 * first:.2f}%)")
        vs = ", ".join(vs)
        parts.append(f"at {100 * f:.2f}% scanned: ivf {point['recall']:.3f} | {vs}")
    lines.append("(a) equal fraction scanned, recall vs IVF -- " + "; ".join(parts))
    ivf_qps = best_qps_at(ivf, brute)
    parts = []
    for c in choice.values():
        k = c["b"]
        q = best_qps_at(res["results"][k], brute)
        parts.append(f"{k} {q / ivf_qps:.2f}x" if q and ivf_qps else f"{k} never reaches {TARGET}")
    ivf_txt = f"{ivf_qps:.1f}x brute" if ivf_qps else f"never reaches {TARGET}"
    lines.append(f"(b) QPS at recall >= {TARGET} as a ratio to IVF ({ivf_txt}) -- " + ", ".join(parts))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS),
                        default=["mammals", "synthetic-50k", "synthetic-1m"])
    parser.add_argument("--queries", type=int, default=2000, help="at most this many test queries")
    parser.add_argument("--leaf-factors", type=float, nargs="+", default=[1.0, 2.0, 4.0],
                        help="prefix index leaf sizes as multiples of sqrt(n); with several, the "
                             "one of the highest validation QPS at recall >= .95 is reported")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="CPU seconds per timing")
    parser.add_argument("--quick", action="store_true", help="a 4k-row synthetic set, hkm and rq only")
    parser.add_argument("--no-cache", action="store_true", help="refit the coders")
    parser.add_argument("--json", help="also write the sweeps to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.min_seconds, args.queries = ["synthetic-quick"], 0.02, min(args.queries, 200)
        args.leaf_factors = args.leaf_factors[:1]
    faiss.omp_set_num_threads(1)
    from hkd_core.runs import cache_root

    cache = None if args.no_cache else os.path.join(cache_root(), "bench_index")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    out = []
    for name in args.datasets:
        res = run_dataset(name, args.quick, args.queries, args.leaf_factors, cache, args.min_seconds, log)
        print(format_dataset(res), flush=True)
        out.append(res)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
