"""Rebuild the shipped WordNet data: the transitive hypernym closure under a root synset and its
Poincare embeddings, with reconstruction scores.

    python scripts/build_wordnet_data.py                       # mammals, as shipped
    python scripts/build_wordnet_data.py --root animal.n.01 --out /tmp/animal --also-epochs

Writes to --out (default data/wordnet/):
    <stem>_closure.tsv                 nodes + (hyponym, ancestor) edges      (stem: mammal.n.01 -> mammal)
    <stem>_poincare<dim>.tsv           main embedding (--epochs)
    <stem>_poincare<dim>_e<E>.tsv      the same run's embedding after epoch E, per --also-epochs E
                                       (default 30, the HKD paper's training length)
Each embedding file starts with '#' lines giving its training parameters and scores.
Needs WordNet 3.0 (Debian wordnet-base, or nltk.download('wordnet')); see hkd_core/datasets/wordnet.py.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parents[1]
if str(ROOT_DIR) not in sys.path:
    sys.path.insert(0, str(ROOT_DIR))

from hkd_core.datasets.wordnet import (  # noqa: E402
    build_closure, open_wordnet, write_closure_tsv, write_embedding_tsv)
from hkd_core.poincare import PoincareEmbedding, reconstruction_scores  # noqa: E402

# the WordNet licence asks for its copyright notice on all copies (full text: LICENSE-WordNet)
WORDNET_NOTICE = "WordNet 3.0 Copyright 2006 by Princeton University, licence in LICENSE-WordNet"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="mammal.n.01", help="root synset (default mammal.n.01)")
    ap.add_argument("--out", default=str(ROOT_DIR / "data" / "wordnet"), help="output directory")
    ap.add_argument("--wordnet-dir", default=None, help="WordNet dict directory (default: Debian's, then nltk's)")
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=200, help="epochs of the main embedding (default 200)")
    ap.add_argument("--also-epochs", type=int, nargs="*", default=[30],
                    help="also write the run's embedding after these epochs (default: 30, the HKD "
                         "paper's length); pass the flag with no value for none")
    ap.add_argument("--negatives", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--lr-schedule", choices=("constant", "linear"), default="linear")
    ap.add_argument("--burn-in", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--closure-only", action="store_true", help="write the closure, train nothing")
    return ap.parse_args(argv)


def write_scored_embedding(args, nodes, edges, emb, epochs, model, seconds, path: Path) -> dict:
    scores = reconstruction_scores(emb, nodes, edges, count_self=False)
    with_self = reconstruction_scores(emb, nodes, edges, count_self=True)
    stopped = "" if epochs == model.epochs else f" - snapshot after epoch {epochs} of this run"
    header = "\n".join([
        f"Poincare embedding (Nickel & Kiela) of the WordNet 3.0 closure under {args.root}",
        WORDNET_NOTICE,
        f"built by scripts/build_wordnet_data.py; hkd_core.poincare.PoincareEmbedding("
        f"dim={args.dim}, epochs={model.epochs}, negatives={args.negatives}, lr={args.lr}, "
        f"burn_in={model.burn_in}, batch_size={args.batch_size}, lr_schedule={args.lr_schedule!r}, "
        f"seed={args.seed}){stopped}",
        f"reconstruction, node itself excluded: mean_rank {scores['mean_rank']:.4f} map {scores['map']:.4f}",
        f"reconstruction, node itself counted:  mean_rank {with_self['mean_rank']:.4f} map {with_self['map']:.4f}",
        f"loss at epoch {epochs}: {model.history_[epochs - 1]['loss']:.5f}; whole run {seconds:.0f} s",
        "format: synset<TAB>space-separated coordinates (inside the unit ball)",
    ])
    write_embedding_tsv(path, nodes, emb, header=header)
    print(f"wrote {path}  (epoch {epochs})")
    print(f"  reconstruction (node excluded): mean rank {scores['mean_rank']:.3f}  MAP {scores['map']:.3f}")
    print(f"  reconstruction (node counted):  mean rank {with_self['mean_rank']:.3f}  MAP {with_self['map']:.3f}")
    return scores


def train_and_write(args, nodes, edges, out: Path, stem: str) -> None:
    extra = sorted({e for e in (args.also_epochs or []) if e != args.epochs})
    if any(e > args.epochs for e in extra):
        raise SystemExit(f"--also-epochs must not exceed --epochs ({args.epochs}), got {extra}")
    model = PoincareEmbedding(dim=args.dim, epochs=args.epochs, negatives=args.negatives, lr=args.lr,
                              burn_in=min(args.burn_in, args.epochs), batch_size=args.batch_size,
                              lr_schedule=args.lr_schedule, seed=args.seed, device=args.device,
                              snapshot_epochs=extra)
    t0 = time.time()

    def progress(rec):
        if rec["epoch"] % max(1, args.epochs // 10) == 0 or rec["epoch"] in extra:
            print(f"  epoch {rec['epoch']:4d}/{args.epochs}  loss {rec['loss']:.4f}  ({rec['phase']}, "
                  f"lr {rec['lr']:.4g}, {time.time() - t0:.0f} s)", flush=True)

    print(f"training {args.dim}-d Poincare embedding, {args.epochs} epochs"
          + (f" (snapshots after epochs {extra})" if extra else ""))
    model.fit(nodes, edges, progress=progress)
    seconds = time.time() - t0
    write_scored_embedding(args, nodes, edges, model.embedding_, args.epochs, model, seconds,
                           out / f"{stem}_poincare{args.dim}.tsv")
    for e in extra:
        write_scored_embedding(args, nodes, edges, model.snapshots_[e], e, model, seconds,
                               out / f"{stem}_poincare{args.dim}_e{e}.tsv")


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    stem = args.root.split(".")[0]
    t0 = time.time()
    wn = open_wordnet(args.wordnet_dir)
    nodes, edges = build_closure(args.root, wn)
    print(f"closure under {args.root}: {len(nodes)} nodes, {len(edges)} (hyponym, ancestor) edges "
          f"(+{len(nodes)} reflexive = {len(nodes) + len(edges)} relations)  [{time.time() - t0:.1f} s]")
    closure_path = out / f"{stem}_closure.tsv"
    write_closure_tsv(closure_path, nodes, edges, root=args.root,
                      source=f"WordNet {wn.get_version()} via nltk ({WORDNET_NOTICE})")
    print(f"wrote {closure_path}")
    if args.closure_only:
        return 0
    train_and_write(args, nodes, edges, out, stem)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
