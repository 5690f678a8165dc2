"""The whole WordNet 3.0 noun hierarchy: closure under entity.n.01 (82,115 synsets, 743,241
hyponym-ancestor edges, Nickel & Kiela's noun closure), its Poincare embedding, codes and scores.

    python -m hkd_core wordnet-nouns [--quick] [--out DIR] [--epochs N] [--dim D] [--resume]

``build_wordnet_nouns`` writes into one cache directory (default ``<cache root>/wordnet-nouns``,
``<cache root>/wordnet-nouns-quick`` for ``--quick``):

  closure.tsv            the closure (read back instead of WordNet on later runs)
  checkpoints/           PoincareEmbedding checkpoint.npz (+ .json), atomically every few epochs
  embedding.npz          names, X (the trained embedding; arrays only, no pickle)
  codes.npz              names, codes (CODER's codes of X)
  info.json              settings, per-phase timing, reconstruction and code metrics

``load_wordnet_nouns`` (registry name "wordnet-nouns") reads those files; ``availability``
says how to build them when they are missing. Everything big stays in the cache directory, not
in the repository (the embedding alone is 82,115 x 10 floats).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from hkd_core.datasets.wordnet import (
    LABEL_MIN_GROUP, build_closure, closure_dataset, closure_structure, group_labels, open_wordnet,
    read_closure_tsv, wordnet_available, write_closure_tsv)

NOUNS_ROOT = "entity.n.01"
QUICK_ROOT = "dog.n.01"        # a few hundred nouns: the --quick form a test runs in seconds
# N&K train the noun closure with one edge per step for many more epochs than fit here; batches
# of 256 at lr 0.3 (rsgd, loss summed: lr per edge) keep the per-step overhead low on a CPU.
NOUNS_POINCARE = dict(negatives=50, lr=0.3, burn_in=2, batch_size=256, optimizer="rsgd",
                      lr_schedule="linear", checkpoint_every=1)
QUICK_EPOCHS = 2
CODER = "hkm"                  # hierarchical k-means: cheap enough for 82k rows on 2 CPU cores
# D=4: 16^4 = 65,536 cells for 82k rows; hkm runs one k-means per non-leaf cell, so D=8 means
# tens of thousands of tiny k-means fits (over 5 minutes here), D=4 about 4,400
CODER_PARAMS = dict(K=16, D=4, n_init=1, max_iter=50)
LABEL_DEPTH = 3                # entity > physical_entity/abstraction > object/... > whole/...
RECON_SAMPLE = 2000            # nodes ranked for mean rank / MAP (each ranks against all nodes)
SHARE_SAMPLE = 5000            # query rows of the neighbour-sharing table
FILES = ("closure.tsv", "embedding.npz", "codes.npz", "info.json")
BUILD_COMMAND = "python -m hkd_core wordnet-nouns"
# Nickel & Kiela 2017, Table 1 (WordNet nouns reconstruction, Poincare, 10 dimensions)
PUBLISHED = {"dim": 10, "mean_rank": 4.02, "map": 0.851}


def default_out(quick: bool = False) -> Path:
    from hkd_core.runs import cache_root

    return Path(cache_root()) / ("wordnet-nouns-quick" if quick else "wordnet-nouns")


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def phase_timing(history: list[dict]) -> dict:
    """Microseconds per edge and optimizer steps per edge of each phase, over the given epochs."""
    out = {}
    for phase in ("burn-in", "main"):
        recs = [r for r in history if r.get("phase") == phase and "seconds" in r]
        if recs:
            edges = sum(r["edges"] for r in recs)
            out[phase] = {"epochs": len(recs), "us_per_edge": 1e6 * sum(r["seconds"] for r in recs) / edges,
                          "steps_per_edge": sum(r["steps"] for r in recs) / edges,
                          "redraws_per_edge": sum(r["redraws"] for r in recs) / edges}
    return out


def sampled_share_table(codes, X, metric: str, ks=(5, 10, 15, 20), max_depth: int = 8,
                        n_queries: int = SHARE_SAMPLE, seed: int = 0, block: int = 256) -> dict:
    """metrics.share_table over a uniform sample of ``n_queries`` query rows (each against all
    rows, self excluded, exact distances): memory O(block * n), time O(n_queries * n)."""
    from hkd_core.distances import pairwise
    from hkd_core.metrics import _prefix_ids

    codes = np.asarray(codes)
    n = len(X)
    ks = [k for k in ks if k < n]
    q = np.sort(np.random.default_rng(seed).choice(n, size=min(n_queries, n), replace=False))
    kmax = max(ks)
    knn = np.empty((len(q), kmax), dtype=np.int64)
    for s in range(0, len(q), block):
        rows = q[s:s + block]
        d = pairwise(np.asarray(X[rows], np.float64), np.asarray(X, np.float64), metric)
        d[np.arange(len(rows)), rows] = np.inf
        part = np.argpartition(d, kmax, axis=1)[:, :kmax]
        order = np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable")
        knn[s:s + block] = np.take_along_axis(part, order, 1)
    depth = min(max_depth, codes.shape[1])
    ids = [_prefix_ids(codes, N) for N in range(1, depth + 1)]
    return {"share": {str(k): [float(np.mean(g[knn[:, :k]] == g[q, None])) for g in ids] for k in ks},
            "n_queries": int(len(q))}


def build_wordnet_nouns(out=None, quick: bool = False, epochs: int | None = None, dim: int = 10,
                        resume: bool = False, seed: int = 0, log=print, wordnet_dir=None,
                        recon_sample: int = RECON_SAMPLE, share_sample: int = SHARE_SAMPLE) -> dict:
    """Build closure, embedding, codes and scores into ``out``; returns info.json's content."""
    from hkd_core.metrics import code_statistics, full_code_collisions, search_reduction
    from hkd_core.models import make_model
    from hkd_core.models.base import choose_device
    from hkd_core.poincare import PoincareEmbedding, reconstruction_scores

    root = QUICK_ROOT if quick else NOUNS_ROOT
    epochs = int(epochs if epochs is not None else (QUICK_EPOCHS if quick else 50))
    if epochs < 1 or int(dim) < 1:
        raise ValueError(f"epochs and dim must be >= 1, got epochs={epochs}, dim={dim}")
    out = Path(out) if out is not None else default_out(quick)
    out.mkdir(parents=True, exist_ok=True)
    closure_path = out / "closure.tsv"
    t0 = time.perf_counter()
    if closure_path.is_file():
        nodes, edges = read_closure_tsv(closure_path)
    else:
        ok, msg = wordnet_available(wordnet_dir)
        if not ok:
            raise FileNotFoundError(msg)
        nodes, edges = build_closure(root, open_wordnet(wordnet_dir))
        tmp = closure_path.with_name("closure.tsv.tmp")
        write_closure_tsv(tmp, nodes, edges, root=root, source="WordNet 3.0 via nltk")
        os.replace(tmp, closure_path)
    log(f"closure under {root}: {len(nodes):,} synsets, {len(edges):,} edges "
        f"({time.perf_counter() - t0:.1f} s)")

    settings = dict(NOUNS_POINCARE)
    settings["burn_in"] = min(settings["burn_in"], max(1, epochs // 2) if epochs > 1 else 0)
    device = choose_device("auto")
    model = PoincareEmbedding(dim=int(dim), epochs=epochs, seed=int(seed), device=str(device),
                              checkpoint_dir=str(out / "checkpoints"), resume=bool(resume), **settings)

    def progress(rec):
        log(f"epoch {rec['epoch']}/{rec['n_epochs']} {rec['phase']:7s} loss {rec['loss']:.4f} "
            f"lr {rec['lr']:.4f} {rec['seconds']:.1f} s = {1e6 * rec['seconds'] / rec['edges']:.1f} "
            f"us/edge, {rec['steps']} steps, {rec['redraws']} redraws", flush=True)

    log(f"training {dim}-d Poincare embedding on {device}, {epochs} epochs "
        f"({settings['burn_in']} burn-in), checkpoints in {out / 'checkpoints'}"
        + (" (resuming)" if resume else ""))
    model.fit(nodes, edges, progress=progress)
    if model.start_epoch_ > 1:
        log(f"resumed from the checkpoint of epoch {model.start_epoch_ - 1}")
    names, X = list(model.nodes_), model.embedding_
    _atomic_npz(out / "embedding.npz", names=np.asarray(names, dtype=str), X=X)
    timing = phase_timing(model.history_)
    for phase, t in timing.items():
        log(f"{phase:8s}: {t['us_per_edge']:.1f} us/edge over {t['epochs']} epoch(s), "
            f"{t['steps_per_edge']:.5f} steps/edge, {t['redraws_per_edge']:.3f} redraws/edge")

    t = time.perf_counter()
    recon = reconstruction_scores(X, names, edges, sample=recon_sample, seed=seed)
    log(f"reconstruction ({recon['n_nodes_ranked']:,} of {recon['n_nodes_with_neighbours']:,} nodes "
        f"ranked, {recon['n_pairs']:,} pairs, node not counting itself): mean rank "
        f"{recon['mean_rank']:.2f}, MAP {recon['map']:.3f} ({time.perf_counter() - t:.0f} s); "
        f"N&K Table 1, {PUBLISHED['dim']}-d: MR {PUBLISHED['mean_rank']}, MAP {PUBLISHED['map']}")

    t = time.perf_counter()
    coder = make_model(CODER, random_state=int(seed), **CODER_PARAMS)
    coder.fit(X.astype(np.float32))
    codes = np.asarray(coder.codes_)
    _atomic_npz(out / "codes.npz", names=np.asarray(names, dtype=str), codes=codes)
    log(f"coded with {CODER} {CODER_PARAMS} in {time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    share = sampled_share_table(codes, X, "poincare", n_queries=share_sample, seed=seed)
    code_metrics = {"metric": "poincare", "n": len(X), **share,
                    "reduction": [search_reduction(codes, N) for N in range(1, min(8, codes.shape[1]) + 1)],
                    "code_statistics": code_statistics(codes, CODER_PARAMS["K"]),
                    "full_code_collisions": full_code_collisions(codes)}
    log(f"code metrics ({share['n_queries']:,} query rows, exact Poincare neighbours, "
        f"{time.perf_counter() - t:.0f} s):")
    log(format_share_table(code_metrics))

    info = {"root": root, "quick": bool(quick), "dim": int(dim), "epochs": epochs, "seed": int(seed),
            "epochs_done": len(model.history_), "device": str(device),
            "poincare": settings, "n_nodes": len(nodes), "n_edges": len(edges),
            "timing": timing, "history": model.history_,
            "reconstruction": {k: recon[k] for k in recon}, "published": PUBLISHED,
            "coder": CODER, "coder_params": CODER_PARAMS, "code_metrics": code_metrics}
    _atomic_text(out / "info.json", json.dumps(info, indent=1))
    log(f"wrote {out}")
    return info


def format_share_table(m: dict) -> str:
    depth = len(m["reduction"])
    lines = ["N        " + " ".join(f"{N:>6d}" for N in range(1, depth + 1))]
    for k, row in m["share"].items():
        lines.append(f"KNN={k:<4s} " + " ".join(f"{v:6.3f}" for v in row))
    lines.append("reduct.  " + " ".join(f"{v:6.3f}" for v in m["reduction"]))
    return "\n".join(lines)


def availability(cache_dir=None, quick: bool = False, **_) -> tuple[bool, str]:
    out = Path(cache_dir) if cache_dir is not None else default_out(quick)
    missing = [f for f in FILES if not (out / f).is_file()]
    if missing:
        return False, (f"not built yet ({', '.join(missing)} missing in {out}); build it with: "
                       f"{BUILD_COMMAND}" + (" --quick" if quick else "")
                       + " (needs WordNet; the full run trains for a long while, --resume continues)")
    info = json.loads((out / "info.json").read_text())
    r = info["reconstruction"]
    return True, (f"built in {out}: {info['epochs_done']} epochs, MR {r['mean_rank']:.2f} / "
                  f"MAP {r['map']:.3f}")


def load_wordnet_nouns(cache_dir=None, quick: bool = False, label_depth: int = LABEL_DEPTH,
                       label_min_group: int = LABEL_MIN_GROUP):
    """The built noun hierarchy as a Dataset (metric "poincare"); extra holds the edges, the
    codes of the build (extra["codes"], CODER's) and its scores (extra["info"])."""
    out = Path(cache_dir) if cache_dir is not None else default_out(quick)
    ok, msg = availability(out)
    if not ok:
        raise FileNotFoundError(msg)
    nodes, edges = read_closure_tsv(out / "closure.tsv")
    with np.load(out / "embedding.npz", allow_pickle=False) as npz:
        names, X = [str(s) for s in npz["names"]], np.asarray(npz["X"], dtype=np.float64)
    with np.load(out / "codes.npz", allow_pickle=False) as npz:
        codes = np.asarray(npz["codes"])
    info = json.loads((out / "info.json").read_text())
    if set(names) != set(nodes):
        raise ValueError(f"{out}/embedding.npz names do not match the closure's {len(nodes)} synsets")
    structure = closure_structure(nodes, edges, root=info["root"])
    labels = group_labels(structure, names, int(label_depth), int(label_min_group))
    r = info["reconstruction"]
    return closure_dataset(
        "wordnet-nouns-quick" if info.get("quick") else "wordnet-nouns", X, names, labels, structure, edges,
        description=(f"WordNet 3.0 noun closure under {info['root']}: {len(nodes):,} synsets, "
                     f"{len(edges):,} edges; {X.shape[1]}-d Poincare embedding trained here "
                     f"({info['epochs_done']} epochs; MR {r['mean_rank']:.2f} / MAP {r['map']:.3f} "
                     f"on {r['n_nodes_ranked']:,} sampled nodes)"),
        extra={"root": info["root"], "cache_dir": str(out), "codes": codes, "info": info,
               "reconstruction": r, "label_depth": int(label_depth)},
    )
