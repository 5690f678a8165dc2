"""HKD fit time and peak memory against the number of rows, and the neighbour engine against
faiss and scikit-learn on the same rows.

    python bench/bench_hkd_scale.py                      # HKD at 10k 30k 100k 300k 1M; engine at 10k 50k 100k
    python bench/bench_hkd_scale.py --sizes 10000 30000 --epochs 2 --neighbour-sizes 10000
    python bench/bench_hkd_scale.py --anchor-code /path/to/older/checkout --anchor-max 100000
    python bench/bench_hkd_scale.py --sizes --neighbour-sizes --calibration-sizes 200000 --anchor-code DIR
    python bench/bench_hkd_scale.py --quick              # tiny sizes (what the test runs)

Data: a seeded hierarchical Gaussian mixture in 32 dimensions (4 levels x 4 branches, offsets
halving per level), float32.

HKD table: one fresh process per size (``--one-size``), so each peak is that fit's own. CPU
seconds are ``time.process_time()`` of ``HKD(...).fit`` (all threads of the process), wall
seconds beside them. Memory is the process's peak resident set (``resource.getrusage``
ru_maxrss: numpy, torch and faiss allocations alike), printed whole and as the increase over the
peak before the fit (data, imports). The scaling exponent is the least-squares slope of
log(CPU seconds) against log(n). With ``--anchor-code`` the same sizes (up to ``--anchor-max``)
also run with the hkd_core of another checkout (e.g. before this change), in the same run, and
the table prints the ratios.

Neighbour table: each row's 20 nearest other rows. ``engine exact`` and ``engine approx`` are
hkd_core.neighbours (exact: faiss flat + float64 re-rank + certificate; approx: IVF tuned to
recall 0.95 on 1000 sampled queries, recall printed); ``faiss flat`` is a bare IndexFlatL2
search of k + 1; ``sklearn`` is NearestNeighbors().kneighbors() (algorithm "auto"). CPU seconds
(process_time, all threads) and the ratio to faiss flat.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if not any(a.startswith("--one-") for a in sys.argv):     # a measured child imports from PYTHONPATH
    sys.path.insert(0, os.path.dirname(HERE))
ROOT = os.path.dirname(HERE)
DEFAULT_SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000)
DEFAULT_NEIGHBOUR_SIZES = (10_000, 50_000, 100_000)
QUICK_SIZES = (1500, 3000)
QUICK_NEIGHBOUR_SIZES = (1500, 3000)
K_NEIGHBOURS = 20


def hierarchical_rows(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    """n rows of a 4-level, 4-way Gaussian hierarchy in d dimensions."""
    rng = np.random.default_rng(seed)
    leaves = rng.integers(0, 4 ** 4, size=n)
    X = np.zeros((n, d))
    scale = 8.0
    for level in range(4):
        branch = (leaves // 4 ** (3 - level)) % 4 + 4 * (leaves // 4 ** (4 - level) if level else 0)
        offsets = rng.normal(size=(4 ** (level + 1), d)) * scale
        X += offsets[branch % len(offsets)]
        scale /= 2.0
    X += rng.normal(size=(n, d))
    return X.astype(np.float32)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0      # Linux: kilobytes


# -- one HKD fit in this process ---------------------------------------------------------------

def one_size(n: int, epochs: int, seed: int) -> dict:
    from hkd_core.models.hkd import HKD

    X = hierarchical_rows(n, seed=seed)
    import torch  # noqa: F401  (imports and the optimizer's lazy imports are not the fit's cost)
    HKD(epochs=1, n_kmeans_exemplars=5, n_random_exemplars=5, perplexities=(3.0,)).fit(X[:64])
    before = peak_rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    # the anchor (older code) called the parameter seed; this code, random_state
    seeding = {"random_state": seed} if "random_state" in HKD().get_params() else {"seed": seed}
    model = HKD(epochs=epochs, **seeding).fit(X)
    out = {"n": n, "epochs": epochs, "cpu_s": time.process_time() - cpu,
           "wall_s": time.perf_counter() - wall, "peak_rss_mb": peak_rss_mb(),
           "rss_before_fit_mb": before, "final_loss": model.history_[-1]["loss"],
           "distinct_codes": int(len(np.unique(model.codes_, axis=0)))}
    return out


def one_calibration(n: int, seed: int) -> dict:
    """Eq. 8's calibration alone, as HKD.fit runs it: 200 k-means-like + 100 random exemplars,
    perplexity 10. This checkout's chunked betas (exemplars.exemplar_betas) when it has them,
    else the dense input_distances + calibrate_affinities of older checkouts."""
    from hkd_core.models import exemplars as E

    X = hierarchical_rows(n, seed=seed)
    rng = np.random.default_rng(seed)
    rows = np.concatenate([np.full(200, -1), rng.choice(n, 100, replace=False)])
    ex = np.concatenate([X[rng.choice(n, 200, replace=False)] + 0.1, X[rows[200:]]]).astype(np.float32)
    E.calibrate_affinities(np.random.default_rng(0).gamma(2.0, 1.0, (50, 30)), 5.0)    # warm up
    before = peak_rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    if hasattr(E, "exemplar_betas"):
        E.exemplar_betas(X, ex, rows, None, (10.0,), "euclidean")
        how = "chunked float32 betas"
    else:
        invalid = rows[None, :] == np.arange(n)[:, None]
        E.calibrate_affinities(E.input_distances(X, ex, "euclidean"), 10.0, invalid)
        how = "dense float64"
    return {"n": n, "how": how, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
            "peak_rss_mb": peak_rss_mb(), "rss_before_fit_mb": before}


def run_calibration(n: int, seed: int, code: str | None = None) -> dict:
    return _subprocess(["--one-calibration", str(n), "--seed", str(seed)], code)


def format_calibration_table(rows: list[dict], anchor: dict[int, dict]) -> str:
    lines = [f"{'n':>9}{'new CPU s':>11}{'new +MB':>9}{'old CPU s':>11}{'old +MB':>9}{'old/new CPU':>13}"
             f"{'old/new +MB':>13}"]
    for r in rows:
        a = anchor.get(r["n"])
        grow = r["peak_rss_mb"] - r["rss_before_fit_mb"]
        line = f"{r['n']:>9}{r['cpu_s']:>11.2f}{grow:>9.0f}"
        if a:
            a_grow = a["peak_rss_mb"] - a["rss_before_fit_mb"]
            line += (f"{a['cpu_s']:>11.2f}{a_grow:>9.0f}{a['cpu_s'] / max(r['cpu_s'], 1e-9):>13.2f}"
                     f"{a_grow / max(grow, 1.0):>13.2f}")
        lines.append(line)
    return "\n".join(lines)


def _subprocess(args: list[str], code: str | None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([code or ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), *args],
                          env=env, capture_output=True, text=True, cwd=code or ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_size(n: int, epochs: int, seed: int, code: str | None = None) -> dict:
    return _subprocess(["--one-size", str(n), "--epochs", str(epochs), "--seed", str(seed)], code)


def scaling_exponent(ns, seconds) -> float | None:
    ns, seconds = np.asarray(ns, dtype=float), np.asarray(seconds, dtype=float)
    if len(ns) < 2:
        return None
    return float(np.polyfit(np.log(ns), np.log(seconds), 1)[0])


def format_hkd_table(rows: list[dict], anchor: dict[int, dict] | None) -> str:
    head = (f"{'n':>9}{'epochs':>7}{'fit CPU s':>11}{'wall s':>9}{'CPU us/row/ep':>15}"
            f"{'peak RSS MB':>13}{'fit +MB':>9}{'codes':>8}")
    if anchor:
        head += f"{'old CPU s':>11}{'old/new CPU':>13}{'old peak MB':>13}{'old/new +MB':>13}"
    lines = [head]
    for r in rows:
        grow = r["peak_rss_mb"] - r["rss_before_fit_mb"]
        line = (f"{r['n']:>9}{r['epochs']:>7}{r['cpu_s']:>11.1f}{r['wall_s']:>9.1f}"
                f"{1e6 * r['cpu_s'] / r['n'] / r['epochs']:>15.1f}{r['peak_rss_mb']:>13.0f}{grow:>9.0f}"
                f"{r['distinct_codes']:>8}")
        if anchor:
            a = anchor.get(r["n"])
            if a:
                a_grow = a["peak_rss_mb"] - a["rss_before_fit_mb"]
                line += (f"{a['cpu_s']:>11.1f}{a['cpu_s'] / r['cpu_s']:>13.2f}{a['peak_rss_mb']:>13.0f}"
                         f"{a_grow / max(grow, 1.0):>13.2f}")
            else:
                line += f"{'-':>11}{'-':>13}{'-':>13}{'-':>13}"
        lines.append(line)
    exp = scaling_exponent([r["n"] for r in rows], [r["cpu_s"] for r in rows])
    if exp is not None:
        lines.append(f"fitted scaling exponent (log-log slope of fit CPU s vs n, "
                     f"{rows[0]['n']}..{rows[-1]['n']}): {exp:.2f}")
    if anchor:
        done = [r for r in rows if r["n"] in anchor]
        exp_old = scaling_exponent([r["n"] for r in done], [anchor[r["n"]]["cpu_s"] for r in done])
        if exp_old is not None:
            lines.append(f"old code's exponent over {done[0]['n']}..{done[-1]['n']}: {exp_old:.2f}")
    return "\n".join(lines)


# -- neighbour engine vs faiss and scikit-learn ------------------------------------------------

def _cpu(fn):
    cpu = time.process_time()
    out = fn()
    return time.process_time() - cpu, out


def neighbour_rows(sizes, seed: int = 0) -> list[dict]:
    import faiss
    from sklearn.neighbors import NearestNeighbors

    from hkd_core.neighbours import kneighbors

    rows = []
    k = K_NEIGHBOURS
    for n in sizes:
        X = hierarchical_rows(n, seed=seed)

        def flat():
            index = faiss.IndexFlatL2(X.shape[1])
            index.add(X)
            return index.search(X, k + 1)

        faiss_s, _ = _cpu(flat)
        exact_s, exact = _cpu(lambda: kneighbors(X, k, "euclidean", algorithm="exact"))
        approx_s, approx = _cpu(lambda: kneighbors(X, k, "euclidean", algorithm="approximate"))
        sk_s, sk = _cpu(lambda: NearestNeighbors(n_neighbors=k).fit(X).kneighbors())
        agree = float(np.mean(np.sort(sk[1], 1) == np.sort(exact.indices, 1)))
        rows.append({"n": n, "faiss_flat_s": faiss_s, "engine_exact_s": exact_s,
                     "engine_approx_s": approx_s, "sklearn_s": sk_s, "approx_recall": approx.recall,
                     "approx_method": approx.method, "sklearn_agreement": agree})
    return rows


def format_neighbour_table(rows: list[dict]) -> str:
    lines = [f"{'n':>9}{'faiss flat s':>14}{'engine exact s':>16}{'x faiss':>9}{'engine approx s':>17}"
             f"{'x faiss':>9}{'approx recall@20':>18}{'sklearn s':>11}{'x faiss':>9}{'sk = engine':>13}"]
    for r in rows:
        f = max(r["faiss_flat_s"], 1e-9)
        lines.append(f"{r['n']:>9}{r['faiss_flat_s']:>14.2f}{r['engine_exact_s']:>16.2f}"
                     f"{r['engine_exact_s'] / f:>9.2f}{r['engine_approx_s']:>17.2f}"
                     f"{r['engine_approx_s'] / f:>9.2f}{r['approx_recall']:>18.3f}"
                     f"{r['sklearn_s']:>11.2f}{r['sklearn_s'] / f:>9.2f}{r['sklearn_agreement']:>13.4f}")
    lines += [f"  approx at n={r['n']}: {r['approx_method']}" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=None, help="HKD row counts (none: skip)")
    p.add_argument("--neighbour-sizes", type=int, nargs="*", default=None, help="engine row counts (none: skip)")
    p.add_argument("--epochs", type=int, default=2, help="HKD epochs per fit (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one epoch (for the test)")
    p.add_argument("--anchor-code", help="also fit with the hkd_core of this checkout (same sizes)")
    p.add_argument("--anchor-max", type=int, default=100_000, help="largest size the anchor fits")
    p.add_argument("--out", help="also write the printed tables to this file")
    p.add_argument("--json", help="also write the measurements to this JSON file")
    p.add_argument("--calibration-sizes", type=int, nargs="*", default=(),
                   help="also time eq. 8's calibration alone at these sizes (against --anchor-code)")
    p.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--one-calibration", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one_size:
        print(json.dumps(one_size(args.one_size, args.epochs, args.seed)))
        return 0
    if args.one_calibration:
        print(json.dumps(one_calibration(args.one_calibration, args.seed)))
        return 0
    sizes = args.sizes if args.sizes is not None else (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    nb_sizes = args.neighbour_sizes if args.neighbour_sizes is not None else (
        QUICK_NEIGHBOUR_SIZES if args.quick else DEFAULT_NEIGHBOUR_SIZES)
    epochs = 1 if args.quick else args.epochs
    text, record = [], {"sizes": list(sizes), "epochs": epochs}

    def emit(line=""):
        print(line, flush=True)
        text.append(line)

    if sizes:
        rows, anchor = [], {}
        for n in sorted(sizes):
            rows.append(run_size(n, epochs, args.seed))
            print(f"  n={n}: {rows[-1]['cpu_s']:.1f} CPU s, peak {rows[-1]['peak_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
            if args.anchor_code and n <= args.anchor_max:
                anchor[n] = run_size(n, epochs, args.seed, args.anchor_code)
                print(f"  n={n} (anchor code): {anchor[n]['cpu_s']:.1f} CPU s", file=sys.stderr, flush=True)
        emit(f"HKD fit on synthetic 32-d rows (K=16, D=16, 200 k-means + 100 random exemplars, "
             f"{epochs} epoch(s), 1 torch thread); peak RSS by getrusage, fresh process per size"
             + (f"; old = hkd_core of {args.anchor_code}" if anchor else ""))
        emit(format_hkd_table(rows, anchor or None))
        record["hkd"], record["anchor"] = rows, list(anchor.values())
        emit()
    if args.calibration_sizes:
        crows, canchor = [], {}
        for n in sorted(args.calibration_sizes):
            crows.append(run_calibration(n, args.seed))
            if args.anchor_code:
                canchor[n] = run_calibration(n, args.seed, args.anchor_code)
        emit("Eq. 8 calibration alone (300 exemplars, perplexity 10), fresh process per size: "
             f"new = {crows[0]['how']}" + (f", old = {next(iter(canchor.values()))['how']} "
                                           f"({args.anchor_code})" if canchor else ""))
        emit(format_calibration_table(crows, canchor))
        record["calibration"], record["calibration_anchor"] = crows, list(canchor.values())
        emit()
    if nb_sizes:
        nrows = neighbour_rows(sorted(nb_sizes), args.seed)
        emit(f"Each row's {K_NEIGHBOURS} nearest other rows, synthetic 32-d; CPU seconds (process_time, "
             f"all threads)")
        emit(format_neighbour_table(nrows))
        record["neighbours"] = nrows
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(text) + "\n")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(record, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
