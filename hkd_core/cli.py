"""Command line: ``python -m hkd_core {datasets,train,benchmark,reproduce,neighbours,search}``."""
from __future__ import annotations

import argparse
import os
import sys

from hkd_core.models import MODEL_NAMES
from hkd_core.presets import RECOMMENDED_MODEL

# command-line flag -> model parameter; only the flags a user gives are passed on, and a model
# that does not take one says so (models/__init__.make_model)
MODEL_FLAGS = {
    "K": int, "D": int, "random_state": int, "epochs": int, "lr": float, "batch_size": int,
    "alpha": float, "beta": float, "decay": float, "w0": float, "code_dim": int,
    "n_kmeans_exemplars": int, "n_random_exemplars": int, "n_neighbour_exemplars": int,
    "q_normalization": str, "relaxation": str, "tau_start": float, "tau_end": float,
    "optimizer": str, "device": str, "activation": str, "composition": str,
    "n_iter": int, "n_init": int, "max_beam_size": int,   # rq (faiss residual quantiser)
    "latent_dim": int, "commitment": float,                # rqvae
    "levels": int, "gamma": float, "pretrain_epochs": int,  # hcrl
    "lambda_sim": float, "lambda_kl": float, "lambda_cls": float,   # shrewd / shred
    "metric": str,   # HKD's distance in p_{j|i} (default: --knn-metric, else the data's geometry)
}
LIST_FLAGS = {"perplexities": float, "kl_weights": float, "hidden": int, "decoder_hidden": int}
DEFAULT_BENCHMARK_DATASETS = ("synthetic", "mammals", "digits")
DATASET_FLAGS = {"data_dir": str, "backbone": str, "backbone_epochs": int, "limit": int,
                 "variant": str, "download": bool, "hierarchy": str}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hkd_core",
                                     description="Hierarchical K-way D-dimensional codes of embeddings")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("datasets", help="list datasets and whether their data is present")

    wn = sub.add_parser("wordnet-nouns", help="build, embed (Poincare) and code the whole WordNet "
                        "noun closure into a cache dir the app opens as dataset 'wordnet-nouns'")
    wn.add_argument("--quick", action="store_true", help="a few hundred nouns (dog.n.01), 2 epochs")
    wn.add_argument("--out", help="output dir (default: <cache>/wordnet-nouns[-quick])")
    wn.add_argument("--epochs", type=int, help="Poincare epochs (default 50; --quick 2)")
    wn.add_argument("--dim", type=int, default=10, help="Poincare dimension (default 10)")
    wn.add_argument("--seed", type=int, default=0)
    wn.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")

    train = sub.add_parser(
        "train", help="train a model and write codes, metrics, the split and the model",
        description="Fit a coder on the train rows of the benchmark split (hkd_core.benchmark."
                    "protocol) and score it on the test rows. The data: exactly one of --dataset, "
                    "--data, --wordnet-root.")
    src = train.add_argument_group("data (exactly one)")
    src.add_argument("--dataset", help="a built-in dataset (see `datasets`)")
    src.add_argument("--data", metavar="FILE",
                     help="your embeddings: .csv/.tsv/.txt (optional name/label columns), .npy or "
                          ".parquet, read like an upload in the app (at most 50 MB)")
    src.add_argument("--wordnet-root", metavar="SYNSET",
                     help="the WordNet noun subtree under SYNSET (e.g. dog.n.01), embedded in the "
                          "Poincare ball first (cached)")
    train.add_argument("--label-tree", metavar="FILE", dest="label_tree",
                       help="with --data: the labels' hierarchy, 'PARENT CHILD' per line (default: "
                            "FILE.parent-child.txt beside the data file, when there is one)")
    src.add_argument("--data-metric", choices=("euclidean", "poincare"),
                     help="--data: the file's geometry (default: euclidean unless the file name "
                          "says poincare/hyperbolic)")
    src.add_argument("--wordnet-dim", type=int, help="--wordnet-root: Poincare dimension (default 10)")
    src.add_argument("--wordnet-epochs", type=int,
                     help="--wordnet-root: Poincare training epochs (default: see "
                          "datasets/wordnet.load_wordnet_subtree)")
    train.add_argument("--model", choices=MODEL_NAMES, default=None,
                       help=f"the coder (default: the recommended one, {RECOMMENDED_MODEL})")
    train.add_argument("--out", required=True, help="output directory")
    _add_model_flags(train)
    _add_dataset_flags(train)

    bench = sub.add_parser("benchmark", help="datasets x coders: fit on train rows, choose on validation "
                           "rows, report test rows (hkd_core/benchmark)")
    bench.add_argument("--datasets", nargs="*", default=None,
                       help=f"registry names (default: {' '.join(DEFAULT_BENCHMARK_DATASETS)}; "
                            "give the flag alone for none, e.g. with --data or --wordnet-root only)")
    bench.add_argument("--data", action="append", default=[], metavar="FILE",
                       help="also a user's file (upload formats); repeatable")
    bench.add_argument("--wordnet-root", action="append", default=[], metavar="SYNSET",
                       help="also a WordNet subtree (closure + Poincare embedding, cached); repeatable")
    bench.add_argument("--coders", nargs="+", default=None, help="row labels to run (default: all)")
    bench.add_argument("--seeds", type=int, default=3, help="model seeds (default 3)")
    bench.add_argument("--quick", action="store_true", help="small data, few epochs, one setting (CI)")
    bench.add_argument("--out", default="bench_results", help="directory for results.json, report.txt, plots")
    bench.add_argument("--no-png", action="store_true", help="HTML plots only")
    bench.add_argument("--no-cache", action="store_true", help="refit everything")
    bench.add_argument("--merge-with", metavar="results.json", action="append", default=[],
                       help="add the datasets of an earlier run's results.json (those not in this run) "
                            "to the report, the JSON and the README table; repeatable")
    bench.add_argument("--readme", metavar="README.md",
                       help="rewrite this file's results table (between its benchmark markers)")

    rep = sub.add_parser("reproduce", help="print the paper's tables")
    rep.add_argument("experiment", choices=("synthetic", "mammals", "shrewd", "hcrl"),
                     help="shrewd: SHREWD's Table 1 ablation (hkd_core/reproduce_shrewd.py); "
                          "hcrl: HCRL's digit grouping and Table 2 ordering (reproduce_hcrl.py)")
    rep.add_argument("--features", default="gloss", choices=("gloss", "poincare", "cifar100"),
                     help="shrewd: the feature set (default gloss: WordNet mammal glosses)")
    rep.add_argument("--seeds", type=int, default=3, help="shrewd, hcrl: model seeds (default 3)")
    rep.add_argument("--quick", action="store_true",
                     help="shrewd: 1 seed, 3 epochs; hcrl: small data, 1 seed, 2 epochs (tests)")
    rep.add_argument("--data-dir", help="shrewd --features cifar100: the archive's directory")
    rep.add_argument("--json", help="also write the tables' numbers to this file")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--epochs", type=int, help="override the training epochs of every model")
    rep.add_argument("--variant", help="mammals: which shipped Poincare embedding")

    nb = sub.add_parser("neighbours", help="an entity's nearest neighbours with codes and shared prefixes")
    nb.add_argument("entity")
    nb.add_argument("--dataset", default="mammals")
    nb.add_argument("--model", default="hkd", choices=MODEL_NAMES)
    nb.add_argument("--k", type=int, default=10)
    nb.add_argument("--run", help="a run directory written by `train` (default: train or reuse a cached run)")
    _add_model_flags(nb)
    _add_dataset_flags(nb)

    se = sub.add_parser(
        "search", help="nearest neighbours through the prefix index over a model's codes",
        description="Build (or --load) a prefix index (hkd_core/index.py) over every row of a "
                    "dataset coded by a trained model (trained and cached like `neighbours`, or "
                    "--run DIR), and print each query's neighbours with their distances.")
    se.add_argument("entity", nargs="*", help="query rows by name (e.g. dog.n.01)")
    se.add_argument("--rows", type=int, nargs="+", default=[], help="query rows by row id")
    se.add_argument("--query-file", metavar="FILE", help="query vectors: .npy or one vector per line")
    se.add_argument("--dataset", default="mammals")
    se.add_argument("--model", default="hkd", choices=MODEL_NAMES)
    se.add_argument("--run", help="a run directory written by `train` (default: train or reuse a cached run)")
    se.add_argument("--k", type=int, default=10)
    se.add_argument("--n-probe", type=int, help="leaves scanned per query (default: the index's, 8)")
    se.add_argument("--max-candidates", type=int, help="stop after re-ranking this many rows")
    se.add_argument("--leaf-size", type=int, help="rows at which a branch stops being split")
    se.add_argument("--routing", choices=("auto", "flat", "tree"), default="auto")
    se.add_argument("--search-metric", choices=("euclidean", "poincare"),
                    help="search distance (default: the run's neighbour metric)")
    se.add_argument("--save", metavar="FILE.npz", help="write the index (npz, no pickle)")
    se.add_argument("--load", metavar="FILE.npz", help="search a saved index instead of building one")
    _add_model_flags(se)
    _add_dataset_flags(se)
    return parser


def _add_model_flags(p):
    g = p.add_argument_group("model parameters (defaults: the paper's settings for the dataset)")
    for name, typ in MODEL_FLAGS.items():
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=typ)
    for name, typ in LIST_FLAGS.items():
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, nargs="+")
    g.add_argument("--perplexity", dest="perplexities", type=float, nargs="+", help="alias of --perplexities")
    g.add_argument("--seed", dest="random_state", type=int, help="alias of --random-state")
    g.add_argument("--knn-metric", choices=("euclidean", "poincare"),
                   help="distance defining each point's nearest neighbours in the metrics "
                        "(default: the dataset's own geometry)")


def _add_dataset_flags(p):
    g = p.add_argument_group("dataset options")
    g.add_argument("--data-dir", dest="data_dir")
    g.add_argument("--backbone", dest="backbone")
    g.add_argument("--backbone-epochs", dest="backbone_epochs", type=int)
    g.add_argument("--limit", dest="limit", type=int)
    g.add_argument("--variant", dest="variant")
    g.add_argument("--hierarchy", dest="hierarchy",
                   help="CIFAR-100: class tree for mAHP, barz-denzler (default), superclasses or wordnet")
    g.add_argument("--download", dest="download", action="store_true", default=None)


def _collect(args, names) -> dict:
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "datasets":
            return cmd_datasets()
        if args.command == "train":
            return cmd_train(args)
        if args.command == "benchmark":
            return cmd_benchmark(args)
        if args.command == "reproduce" and args.experiment == "shrewd":
            from hkd_core.reproduce_shrewd import main as reproduce_shrewd
            return reproduce_shrewd(args.features, args.seeds, args.epochs, args.quick,
                                    args.json, args.data_dir)
        if args.command == "reproduce" and args.experiment == "hcrl":
            from hkd_core.reproduce_hcrl import main as reproduce_hcrl
            return reproduce_hcrl(args.seeds, args.epochs, args.quick, args.json)
        if args.command == "reproduce":
            from hkd_core.reproduce import reproduce
            return reproduce(args.experiment, json_path=args.json, seed=args.seed, epochs=args.epochs,
                             variant=args.variant)
        if args.command == "neighbours":
            return cmd_neighbours(args)
        if args.command == "search":
            return cmd_search(args)
        if args.command == "wordnet-nouns":
            from hkd_core.datasets.wordnet_nouns import build_wordnet_nouns
            build_wordnet_nouns(args.out, quick=args.quick, epochs=args.epochs, dim=args.dim,
                                resume=args.resume, seed=args.seed)
            return 0
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return 1


def cmd_datasets() -> int:
    from hkd_core.datasets import DATASETS
    print(f"{'dataset':<11} {'present':<8} description / status")
    for name, spec in DATASETS.items():
        try:
            ok, message = spec.availability()
        except Exception as exc:  # a broken optional dependency must not hide the others
            ok, message = False, f"cannot check: {exc}"
        print(f"{name:<11} {'yes' if ok else 'no':<8} {spec.description}")
        print(f"{'':<20} {message}")
    return 0


def cmd_train(args) -> int:
    from hkd_core.runs import train_run

    model = args.model or RECOMMENDED_MODEL
    params = _collect(args, list(MODEL_FLAGS) + list(LIST_FLAGS))
    options = _collect(args, DATASET_FLAGS)
    sources = {flag: value for flag, value in (("--dataset", args.dataset), ("--data", args.data),
                                               ("--wordnet-root", args.wordnet_root))
               if value is not None}
    if len(sources) != 1:
        given = ", ".join(f"{k} {v}" for k, v in sources.items()) or "none"
        raise ValueError("train needs exactly one of --dataset NAME, --data FILE or "
                         f"--wordnet-root SYNSET (given: {given})")
    for flag, attr, source in (("--data-metric", "data_metric", "--data"), ("--label-tree", "label_tree", "--data"),
                               ("--wordnet-dim", "wordnet_dim", "--wordnet-root"),
                               ("--wordnet-epochs", "wordnet_epochs", "--wordnet-root")):
        if getattr(args, attr) is not None and source not in sources:
            raise ValueError(f"{flag} applies to {source} only")

    def progress(info):
        e, n = info["epoch"], info["n_epochs"]
        if e == 1 or e == n or e % max(1, n // 10) == 0:
            what = f"{info['phase']} " if "phase" in info else ""   # Poincare embedding epochs
            print(f"  {what}epoch {e}/{n}  loss {info['loss']:.4f}", file=sys.stderr, flush=True)

    data = None
    if args.data is not None:
        if options:
            raise ValueError(f"dataset option(s) {sorted(options)} do not apply to --data")
        data = read_data_file(args.data, args.data_metric, args.label_tree)
        dataset = data.name
        options = {"path": os.path.abspath(args.data)}
        for warning in data.extra.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
    elif args.wordnet_root is not None:
        dataset = "wordnet"
        options = {**options, "root": args.wordnet_root}
        if args.wordnet_dim is not None:
            options["dim"] = args.wordnet_dim
        if args.wordnet_epochs is not None:
            options["epochs"] = args.wordnet_epochs
    else:
        dataset = args.dataset
    result = train_run(dataset, model, params, options, args.knn_metric, out=args.out,
                       progress=progress, data=data)
    m = result.metrics
    sizes = m["split_sizes"]
    print(f"{model} on {dataset}: fit on {sizes['train']} train rows, scored on {sizes['test']} "
          f"test rows ({sizes['validation']} validation rows left out), neighbours by "
          f"{m['metric']} distance, fit {m['fit_seconds']:.1f} s -> {args.out}")
    from hkd_core.benchmark.report import format_share_table

    print(format_share_table({model: m}))
    if m.get("reconstruction_mse") is not None:
        print(f"reconstruction MSE {m['reconstruction_mse']:.6g}")
    if m.get("hierarchical_f_score") is not None:
        print(f"hierarchical clustering F-score {m['hierarchical_f_score']:.4f} (HCRL Table 2: "
              "the code tree's nodes against the test labels and their ancestors)")
    if m.get("mahp250") is not None:
        print(f"mAHP@250 {m['mahp250']:.4f}  mAP {m['map']:.4f}  (Hamming ranking of the test rows, "
              "ties averaged)" if m.get("map") is not None else f"mAHP@250 {m['mahp250']:.4f}")
    return 0


def cmd_benchmark(args) -> int:
    import os

    from hkd_core.benchmark.report import format_report, write_outputs
    from hkd_core.benchmark.run import default_coders, run_benchmark
    from hkd_core.presets import RECOMMENDED_MODEL
    from hkd_core.runs import cache_root

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    keys = list(DEFAULT_BENCHMARK_DATASETS if args.datasets is None else args.datasets)
    keys += [f"file:{path}" for path in args.data] + [f"wordnet:{root}" for root in args.wordnet_root]
    if not keys:
        raise ValueError("no dataset to benchmark: name --datasets, --data or --wordnet-root")
    for path in args.data:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--data {path}: no such file")
    coders = default_coders()
    if args.coders:
        unknown = sorted(set(args.coders) - {c.label for c in coders})
        if unknown:
            raise ValueError(f"unknown coder(s) {unknown}; choose from {[c.label for c in coders]}")
        coders = [c for c in coders if c.label in args.coders]
    cache = None if args.no_cache else os.path.join(cache_root(), "benchmark", "fits")
    results = run_benchmark(keys, coders, seeds=tuple(range(args.seeds)), quick=args.quick,
                            cache_dir=cache, log=lambda s: print(s, file=sys.stderr, flush=True))
    for path in args.merge_with:
        import json

        with open(path) as fh:
            earlier = json.load(fh)
        for key, entry in earlier.get("datasets", {}).items():
            if key not in results["datasets"]:
                entry["from"] = os.path.abspath(path)     # say where the rows come from
                results["datasets"][key] = entry
    recommended = next((c.label for c in default_coders() if c.model == RECOMMENDED_MODEL), None)
    print(format_report(results, recommended))
    for path in write_outputs(results, args.out, recommended, png=not args.no_png):
        print(f"wrote {path}", file=sys.stderr)
    if args.readme:
        from hkd_core.benchmark.report import update_readme

        update_readme(args.readme, results, recommended)
        print(f"updated the results table of {args.readme}", file=sys.stderr)
    return 0


def read_data_file(path: str, metric: str | None = None, hierarchy: str | None = None):
    """A user's embedding file as a Dataset (hkd_core.uploads.read_embedding_file)."""
    from hkd_core.uploads import read_embedding_file

    return read_embedding_file(path, metric=metric, hierarchy=hierarchy)


def cmd_neighbours(args) -> int:
    import numpy as np
    from hkd_core.distances import pairwise
    from hkd_core.metrics import shared_prefix_length
    from hkd_core.runs import cached_run, encode_all_rows, read_run

    if args.k < 1:
        raise ValueError(f"--k must be >= 1, got {args.k}")
    if args.run:
        run_dir = args.run
    else:
        params = _collect(args, list(MODEL_FLAGS) + list(LIST_FLAGS))
        _, run_dir = cached_run(args.dataset, args.model, params, _collect(args, DATASET_FLAGS),
                                args.knn_metric, log=lambda s: print(s, file=sys.stderr))
    run = read_run(run_dir)
    names = run["names"]
    X, codes = run["embeddings"], run["codes"]
    if args.entity not in names:
        # the run scored only its test rows; look the entity up among all rows of its dataset,
        # encoded by the run's model
        everything = encode_all_rows(run_dir)
        if everything is not None and args.entity in everything[0]:
            names, X, codes = everything
            print(f"({args.entity} is not among the run's test rows: searching all {len(names)} "
                  "rows of the dataset, encoded by the run's model)", file=sys.stderr)
    if args.entity not in names:
        close = [n for n in names if args.entity.split(".")[0] in n][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"{args.entity!r} is not in the evaluated rows of {args.dataset}{hint}")
    i = names.index(args.entity)
    metric = args.knn_metric or run["metrics"]["metric"]
    dist = pairwise(X[i:i + 1], X, metric)[0]
    order = np.argsort(dist, kind="stable")
    order = [j for j in order if j != i][: args.k]
    shared = shared_prefix_length(codes, codes[i])
    print(format_neighbour_table(names, codes, dist, shared, [i, *order], metric))
    return 0


def cmd_search(args) -> int:
    from hkd_core.index import PrefixIndex, index_for_run, resolve_queries, search_report
    from hkd_core.runs import cached_run

    if args.k < 1:
        raise ValueError(f"--k must be >= 1, got {args.k}")
    if args.load:
        if args.run or args.leaf_size or args.search_metric:
            raise ValueError("--load searches a saved index: --run, --leaf-size and --search-metric "
                             "do not apply")
        index = PrefixIndex.load(args.load)
        names = index.names_
    else:
        run_dir = args.run
        if not run_dir:
            params = _collect(args, list(MODEL_FLAGS) + list(LIST_FLAGS))
            _, run_dir = cached_run(args.dataset, args.model, params, _collect(args, DATASET_FLAGS),
                                    args.knn_metric, log=lambda s: print(s, file=sys.stderr))
        index_params = {"routing": args.routing}
        if args.leaf_size is not None:
            index_params["leaf_size"] = args.leaf_size
        index, names = index_for_run(run_dir, args.search_metric, **index_params)
    if args.save:
        print(f"wrote {index.save(args.save, names=names)}", file=sys.stderr)
    Q, labels, own = resolve_queries(index, names, args.entity, args.rows, args.query_file)
    print(search_report(index, names, Q, labels, own, args.k, args.n_probe, args.max_candidates))
    return 0


def format_neighbour_table(names, codes, dist, shared, rows, metric) -> str:
    width = max(len(names[j]) for j in rows) + 2
    code_w = 3 * codes.shape[1] + 2
    lines = [f"{'entity':<{width}}{'code':<{code_w}}{metric + ' dist':>14}{'shared':>8}"]
    for j in rows:
        code = "[" + " ".join(f"{c:>2}" for c in codes[j]) + "]"
        lines.append(f"{names[j]:<{width}}{code:<{code_w}}{dist[j]:>14.3f}{shared[j]:>8d}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
