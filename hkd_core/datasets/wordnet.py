"""WordNet noun hierarchies: the transitive hypernym closure under a root synset, and the shipped
WordNet-mammals dataset (closure + 10-d Poincare embedding) the app opens by default.

Two halves with different needs:

* Building (``open_wordnet``, ``build_closure``) needs WordNet 3.0 through nltk's reader. On these
  machines that is Debian's ``wordnet-base`` in /usr/share/wordnet; elsewhere
  ``nltk.download('wordnet')``. Only ``scripts/build_wordnet_data.py`` and tests use it.
* Loading (``load_mammals``) reads the small files shipped in data/wordnet/ and needs neither
  WordNet nor nltk, so the app starts in well under a second.

Closure files are TSV with a ``#`` header: one ``node<TAB>name`` line per synset, then one
``edge<TAB>hyponym<TAB>ancestor`` line per closure pair (no reflexive pairs). Embedding files are
TSV: ``name<TAB>x_1 ... x_dim`` with float coordinates inside the unit ball.
"""
from __future__ import annotations

import os
import shutil
import warnings
from collections import Counter, deque
from pathlib import Path

import numpy as np

from hkd_core.datasets.base import Dataset

DEBIAN_WORDNET_DIR = "/usr/share/wordnet"
DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "wordnet"
MAMMAL_ROOT = "mammal.n.01"
CLOSURE_FILE = "mammal_closure.tsv"
# variant name -> embedding file in DATA_DIR (see data/wordnet/README.md for how each was trained)
EMBEDDING_VARIANTS = {
    "default": "mammal_poincare10.tsv",
    "e30": "mammal_poincare10_e30.tsv",
}
# Labels: each synset's ancestor at depth 2 below mammal.n.01 (the order-level grouping:
# carnivore, ungulate, rodent, primate, bat, marsupial, ...). That depth alone gives 39 groups,
# 25 of them with fewer than 5 members (singletons such as aardvark.n.01 or tusker.n.01), so
# members of groups smaller than LABEL_MIN_GROUP take the ancestor one level up instead.
LABEL_DEPTH = 2
LABEL_MIN_GROUP = 5

INSTALL_HINT = (
    "WordNet 3.0 was not found. Install it with one of:\n"
    "  sudo apt-get install wordnet-base wordnet-sense-index   (Debian/Ubuntu, offline mirror)\n"
    "  python -c \"import nltk; nltk.download('wordnet')\"        (needs internet)\n"
    "or pass wordnet_dir=DIR holding data.noun, index.noun, ... (the WordNet 3.0 'dict' folder)."
)

# The 45 lexicographer files of WordNet 3.0 (``man 5 lexnames``): number, name, syntactic
# category. Debian's wordnet-base does not ship this file but nltk's reader requires it.
LEXNAMES = (
    "adj.all 3", "adj.pert 3", "adv.all 4", "noun.Tops 1", "noun.act 1", "noun.animal 1",
    "noun.artifact 1", "noun.attribute 1", "noun.body 1", "noun.cognition 1",
    "noun.communication 1", "noun.event 1", "noun.feeling 1", "noun.food 1", "noun.group 1",
    "noun.location 1", "noun.motive 1", "noun.object 1", "noun.person 1", "noun.phenomenon 1",
    "noun.plant 1", "noun.possession 1", "noun.process 1", "noun.quantity 1", "noun.relation 1",
    "noun.shape 1", "noun.state 1", "noun.substance 1", "noun.time 1", "verb.body 2",
    "verb.change 2", "verb.cognition 2", "verb.communication 2", "verb.competition 2",
    "verb.consumption 2", "verb.contact 2", "verb.creation 2", "verb.emotion 2", "verb.motion 2",
    "verb.perception 2", "verb.possession 2", "verb.social 2", "verb.stative 2", "verb.weather 2",
    "adj.ppl 3",
)

# Files nltk's reader opens; index.sense is optional (only lemma_from_key needs it).
_REQUIRED_FILES = ("data.noun", "index.noun", "data.adj", "index.adj", "data.adv", "index.adv",
                   "data.verb", "index.verb", "adj.exc", "adv.exc", "noun.exc", "verb.exc")
_OPTIONAL_FILES = ("index.sense", "cntlist.rev")


def _cache_root() -> Path:
    base = os.environ.get("HKD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hkd_explorer")
    return Path(base) / "wordnet"


def _reader_class():
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class LocalWordNetReader(WordNetCorpusReader):
        """nltk's reader without the sense-key remap to nltk's own 'wordnet' download (used only
        for multilingual OMW lookups, which we never make); without this override the reader
        looks for corpora/wordnet on nltk.data.path while it is being constructed."""

        def map_wn(self, version="wordnet"):
            return None

    return LocalWordNetReader


def _prepare_copy(source: Path) -> Path:
    """Copy WordNet files into <cache>/corpora/wordnet (nltk refuses symlinks and paths outside
    nltk.data.path) and add the lexnames file. Returns the corpus directory."""
    corpus_dir = _cache_root() / "corpora" / "wordnet"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for fname in _REQUIRED_FILES + _OPTIONAL_FILES:
        src = source / fname
        dst = corpus_dir / fname
        if not src.is_file():
            if fname in _REQUIRED_FILES:
                raise FileNotFoundError(f"{src} is missing.\n{INSTALL_HINT}")
            continue
        if dst.is_symlink():
            dst.unlink()
        src_stat = src.stat()
        if (not dst.exists() or dst.stat().st_size != src_stat.st_size
                or int(dst.stat().st_mtime) != int(src_stat.st_mtime)):
            # copy (with its mtime, to detect a changed source) under a temporary name first so
            # a concurrent reader never sees half a file
            tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
            shutil.copy2(src, tmp, follow_symlinks=True)
            os.replace(tmp, dst)
    lexnames = corpus_dir / "lexnames"
    text = "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in
                   enumerate(line.split() for line in LEXNAMES))
    if not lexnames.exists() or lexnames.read_text() != text:
        lexnames.write_text(text)
    return corpus_dir


def _nltk_own_wordnet():
    """nltk's downloaded 'wordnet' corpus, or None when the user has not downloaded it."""
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        try:
            nltk.data.find("corpora/wordnet.zip")
        except LookupError:
            return None
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    return wordnet


def open_wordnet(wordnet_dir: str | os.PathLike | None = None):
    """An nltk WordNetCorpusReader over WordNet 3.0.

    Looks in ``wordnet_dir`` if given, else Debian's /usr/share/wordnet, else nltk's own
    downloaded 'wordnet' corpus. Raises FileNotFoundError with install instructions when none
    exists. The Debian files are copied once into ~/.cache/hkd_explorer/wordnet (override with
    $HKD_CACHE_DIR), the layout nltk 3.10 accepts.
    """
    import nltk

    source = Path(wordnet_dir) if wordnet_dir is not None else Path(DEBIAN_WORDNET_DIR)
    if (source / "data.noun").is_file():
        corpus_dir = _prepare_copy(source)
        root = str(corpus_dir.parents[1])
        if root not in nltk.data.path:
            nltk.data.path.insert(0, root)
        with warnings.catch_warnings():
            # "multilingual functions are not available": expected, we pass no OMW reader
            warnings.simplefilter("ignore", UserWarning)
            return _reader_class()(str(corpus_dir), None)
    if wordnet_dir is not None:
        raise FileNotFoundError(f"wordnet_dir={str(wordnet_dir)!r} holds no data.noun.\n{INSTALL_HINT}")
    own = _nltk_own_wordnet()
    if own is None:
        raise FileNotFoundError(INSTALL_HINT)
    return own


def wordnet_available(wordnet_dir=None) -> tuple[bool, str]:
    """Whether open_wordnet would find WordNet, without loading it."""
    source = Path(wordnet_dir) if wordnet_dir is not None else Path(DEBIAN_WORDNET_DIR)
    if (source / "data.noun").is_file():
        return True, f"WordNet files in {source}"
    try:
        import nltk

        for res in ("corpora/wordnet", "corpora/wordnet.zip"):
            try:
                return True, f"nltk resource {nltk.data.find(res)}"
            except LookupError:
                pass
    except ImportError:
        pass
    return False, INSTALL_HINT


# --------------------------------------------------------------------------------------------
# closure


def _hyponyms(synset):
    # Instance hyponyms count: in WordNet 3.0 they are named individuals (e.g. specific people
    # under person.n.01); under mammal.n.01 there are none, and including them keeps the closure
    # faithful for roots such as entity.n.01 (Nickel & Kiela's noun closure includes them too).
    return synset.hyponyms() + synset.instance_hyponyms()


def build_closure(root: str = MAMMAL_ROOT, wn=None) -> tuple[list[str], list[tuple[str, str]]]:
    """Transitive hypernym closure under ``root``.

    Returns (nodes, edges): nodes = root and every synset reachable from it by (instance)
    hyponym links, sorted by name; edges = every (hyponym, ancestor) pair where ancestor is a
    proper hypernym of hyponym (through hypernym or instance-hypernym links) and both lie in the
    subtree; no reflexive pairs. Sorted. For mammal.n.01 this is 1,182 nodes and 6,542 edges.
    """
    if wn is None:
        wn = open_wordnet()
    try:
        top = wn.synset(root)
    except Exception as exc:  # nltk raises WordNetError / ValueError for unknown names
        raise ValueError(f"root must be a WordNet synset name such as 'mammal.n.01', got {root!r}: {exc}") from None

    nodes: dict[str, object] = {top.name(): top}
    queue = deque([top])
    while queue:
        s = queue.popleft()
        for h in _hyponyms(s):
            if h.name() not in nodes:
                nodes[h.name()] = h
                queue.append(h)

    # parents inside the subtree; ancestors are their transitive closure (WordNet is a DAG)
    parents = {
        name: sorted({p.name() for p in s.hypernyms() + s.instance_hypernyms()} & nodes.keys())
        for name, s in nodes.items()
    }
    ancestors: dict[str, set[str]] = {}

    def ancestors_of(name: str) -> set[str]:
        stack = [name]
        while stack:  # iterative post-order: hierarchies can be deeper than the recursion limit
            cur = stack[-1]
            missing = [p for p in parents[cur] if p not in ancestors]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            acc: set[str] = set()
            for p in parents[cur]:
                acc.add(p)
                acc |= ancestors[p]
            ancestors[cur] = acc
        return ancestors[name]

    edges = sorted((n, a) for n in nodes for a in ancestors_of(n))
    return sorted(nodes), edges


def write_closure_tsv(path, nodes, edges, root: str | None = None, source: str = "") -> None:
    """Write a closure as TSV (see module docstring)."""
    nodes = list(nodes)
    known = set(nodes)
    for u, v in edges:
        if u not in known or v not in known:
            raise ValueError(f"edge ({u!r}, {v!r}) names a node not in nodes")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf8", newline="\n") as fh:
        fh.write("# WordNet 3.0 transitive hypernym closure"
                 + (f" under {root}" if root else "") + (f"; source: {source}" if source else "") + "\n")
        fh.write(f"# {len(nodes)} nodes, {len(edges)} (hyponym, ancestor) edges, no reflexive pairs\n")
        fh.write("# node<TAB>synset  |  edge<TAB>hyponym<TAB>ancestor\n")
        for n in nodes:
            fh.write(f"node\t{n}\n")
        for u, v in edges:
            fh.write(f"edge\t{u}\t{v}\n")


def read_closure_tsv(path) -> tuple[list[str], list[tuple[str, str]]]:
    """Read a closure written by write_closure_tsv. Returns (nodes, edges) in file order."""
    nodes: list[str] = []
    edges: list[tuple[str, str]] = []
    with open(path, encoding="utf8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            if parts[0] == "node" and len(parts) == 2:
                nodes.append(parts[1])
            elif parts[0] == "edge" and len(parts) == 3:
                edges.append((parts[1], parts[2]))
            else:
                raise ValueError(f"{path}:{lineno}: expected 'node<TAB>name' or 'edge<TAB>u<TAB>v', got {line[:80]!r}")
    known = set(nodes)
    bad = [(u, v) for u, v in edges if u not in known or v not in known]
    if bad:
        raise ValueError(f"{path}: {len(bad)} edges name unknown nodes, e.g. {bad[0]}")
    return nodes, edges


def write_embedding_tsv(path, names, X, header: str = "") -> None:
    """Write an embedding as ``name<TAB>x1 x2 ...`` lines (human-readable, diff-able)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(names):
        raise ValueError(f"X must be (len(names), dim), got {X.shape} for {len(names)} names")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf8", newline="\n") as fh:
        for line in header.splitlines():
            fh.write(f"# {line}\n")
        for name, row in zip(names, X):
            fh.write(name + "\t" + " ".join(f"{v:.8g}" for v in row) + "\n")


def read_embedding_tsv(path) -> tuple[list[str], np.ndarray]:
    names: list[str] = []
    rows: list[list[float]] = []
    with open(path, encoding="utf8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            name, _, coords = line.rstrip("\n").partition("\t")
            try:
                rows.append([float(v) for v in coords.split()])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: coordinates must be numbers") from None
            names.append(name)
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError(f"{path}: expected one row of equal length per name")
    return names, np.asarray(rows, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# hierarchy helpers on a closure


def closure_structure(nodes, edges, root: str | None = None) -> dict:
    """Per node: depth below the root (longest path, = number of ancestors on the deepest chain),
    direct parents (ancestors that are not ancestors of another ancestor) and the root.

    Works on the closure alone, so the shipped files suffice (no WordNet)."""
    ancestors = {n: set() for n in nodes}
    for u, v in edges:
        ancestors[u].add(v)
    roots = [n for n in nodes if not ancestors[n]]
    if root is None:
        if len(roots) != 1:
            raise ValueError(f"closure has {len(roots)} roots; pass root=")
        root = roots[0]
    parents = {}
    for n in nodes:
        implied = set()
        for a in ancestors[n]:
            implied |= ancestors[a]
        parents[n] = sorted(ancestors[n] - implied)
    depth: dict[str, int] = {}
    for n in sorted(nodes, key=lambda m: len(ancestors[m])):  # ancestors before descendants
        depth[n] = 0 if not parents[n] else 1 + max(depth[p] for p in parents[n])
    return {"root": root, "ancestors": ancestors, "parents": parents, "depth": depth}


def group_labels(structure: dict, nodes, level: int, min_group: int = 1) -> list[str]:
    """Each node's ancestor at ``level`` (see ancestor_at_depth); nodes whose group has fewer
    than ``min_group`` members move to their ancestor one level up, repeatedly, up to the root."""
    labels = {n: ancestor_at_depth(structure, n, level) for n in nodes}
    for lev in range(level - 1, -1, -1):
        sizes = Counter(labels.values())
        small = {n for n, lab in labels.items() if sizes[lab] < min_group}
        if not small:
            break
        for n in small:
            labels[n] = ancestor_at_depth(structure, labels[n], lev)
    return [labels[n] for n in nodes]


def ancestor_at_depth(structure: dict, node: str, level: int) -> str:
    """The node's ancestor at ``level`` below the root along its first (alphabetical) deepest
    parent chain; the node itself if it is no deeper than ``level``."""
    depth, parents = structure["depth"], structure["parents"]
    cur = node
    while depth[cur] > level:
        # follow a parent on a longest chain (ties: first name), so labels are stable
        cur = min(parents[cur], key=lambda p: (-depth[p], p))
    return cur


# --------------------------------------------------------------------------------------------
# the shipped dataset


def closure_dataset(name: str, X, names, labels, structure: dict, edges, description: str,
                    extra: dict) -> Dataset:
    """A Poincare-embedded WordNet closure as a Dataset: the label hierarchy from the closure's
    parents, and per row the edges, depth and parents in ``extra`` (Dataset.item_ancestors)."""
    return Dataset(
        name=name, X=X, names=names, labels=labels, metric="poincare",
        hierarchy={lab: structure["parents"][lab][0] for lab in set(labels) if structure["parents"][lab]},
        description=description,
        extra={"edges": edges, "depth": [structure["depth"][n] for n in names],
               "parents": [structure["parents"][n] for n in names], **extra},
    )


def _embedding_path(variant: str, data_dir: Path) -> Path:
    if variant not in EMBEDDING_VARIANTS:
        raise ValueError(f"variant must be one of {tuple(EMBEDDING_VARIANTS)}, got {variant!r}")
    return data_dir / EMBEDDING_VARIANTS[variant]


def availability(variant: str = "default", embedding_path=None, data_dir=None, **_) -> tuple[bool, str]:
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    closure = data_dir / CLOSURE_FILE
    try:
        emb = Path(embedding_path) if embedding_path is not None else _embedding_path(variant, data_dir)
    except ValueError as exc:
        return False, str(exc)
    missing = [str(p) for p in (closure, emb) if not p.is_file()]
    if missing:
        return False, ("missing " + ", ".join(missing)
                       + "; rebuild with: python scripts/build_wordnet_data.py")
    return True, f"shipped files {closure.name} + {emb.name}"


def load_mammals(embedding_path=None, variant: str = "default", data_dir=None,
                 label_depth: int = LABEL_DEPTH, label_min_group: int = LABEL_MIN_GROUP) -> Dataset:
    """WordNet mammals: the 1,182 synsets of the mammal.n.01 closure with their 10-d Poincare
    embedding (metric "poincare"), read from data/wordnet/ (no WordNet needed).

    variant       "default" (200 epochs; reconstruction MR 1.23 / MAP 0.95) or "e30" (the same
                  run after epoch 30, the HKD paper's training length; MR 2.56 / MAP 0.81);
                  see data/wordnet/README.md. Ignored when ``embedding_path`` is given.
    label_depth   labels = each synset's ancestor at this depth below mammal.n.01 (2: order
                  level, e.g. carnivore.n.01, rodent.n.01, primate.n.02; synsets above that
                  depth are their own label) ...
    label_min_group  ... except that groups smaller than this move one level up (default 5:
                  14 groups, e.g. small placental orders such as aardvark.n.01 join
                  placental.n.01).
    No split: train = test = all rows, as the paper evaluates on the whole closure.
    extra: "edges" (hyponym, ancestor) name pairs, "depth" and "parents" per row, "root",
    "variant", "embedding_path".
    """
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    emb_path = Path(embedding_path) if embedding_path is not None else _embedding_path(variant, data_dir)
    if isinstance(label_depth, bool) or not isinstance(label_depth, (int, np.integer)) or label_depth < 0:
        raise ValueError(f"label_depth must be an integer >= 0, got {label_depth!r}")
    ok, msg = availability(variant, embedding_path=emb_path, data_dir=data_dir)
    if not ok:
        raise FileNotFoundError(msg)
    nodes, edges = read_closure_tsv(data_dir / CLOSURE_FILE)
    names, X = read_embedding_tsv(emb_path)
    if set(names) != set(nodes):
        raise ValueError(f"{emb_path} names do not match the closure's {len(nodes)} synsets")
    structure = closure_structure(nodes, edges)
    if isinstance(label_min_group, bool) or not isinstance(label_min_group, (int, np.integer)) or label_min_group < 1:
        raise ValueError(f"label_min_group must be an integer >= 1, got {label_min_group!r}")
    labels = group_labels(structure, names, int(label_depth), int(label_min_group))
    norms = np.linalg.norm(X, axis=1)
    if norms.max() >= 1.0:
        raise ValueError(f"{emb_path}: points must lie inside the unit ball, max norm {norms.max():.6f}")
    return closure_dataset(
        "mammals", X, names, labels, structure, edges,
        description=(f"WordNet 3.0 closure under {structure['root']}: {len(nodes)} synsets, "
                     f"{len(edges)} hyponym-ancestor edges; {X.shape[1]}-d Poincare embedding "
                     f"({emb_path.name}); labels = ancestor at depth {label_depth} "
                     f"(groups under {label_min_group} members merged upward)"),
        extra={
            "root": structure["root"],
            "variant": variant if embedding_path is None else None,
            "embedding_path": str(emb_path),
            "label_depth": int(label_depth),
        },
    )


# --------------------------------------------------------------------------------------------
# any subtree: closure from WordNet + a Poincare embedding trained here, cached as files

MIN_SUBTREE_NODES = 20   # the fewest synsets a subtree needs (a train/validation/test split
#                          of a handful of rows says nothing about codes)
# Poincare training of a subtree (ours). Batches of 512 edges instead of N&K's one edge at a time:
# per epoch about 8x faster on one CPU core, which buys the epochs; see load_wordnet_subtree.
SUBTREE_EPOCHS = 50
SUBTREE_POINCARE = dict(negatives=50, lr=0.3, burn_in=5, batch_size=512, optimizer="rsgd",
                        lr_schedule="linear")
SUBTREE_CLOSURE_FILE = "closure.tsv"
SUBTREE_EMBEDDING_FILE = "embedding.npz"
SUBTREE_INFO_FILE = "info.json"


def subtree_cache_dir(root: str, dim: int, epochs: int, seed: int) -> Path:
    """<cache root>/wordnet/<root>-<hash of the embedding settings>."""
    import hashlib
    import json

    from hkd_core.runs import cache_root

    settings = {"root": root, "dim": int(dim), "epochs": int(epochs), "seed": int(seed),
                "poincare": SUBTREE_POINCARE, "format": 1}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_root()) / "wordnet" / f"{root}-{digest}"


def load_wordnet_subtree(root: str, dim: int = 10, epochs: int = SUBTREE_EPOCHS, seed: int = 0,
                         progress=None, wordnet_dir=None, label_depth: int = LABEL_DEPTH,
                         label_min_group: int = LABEL_MIN_GROUP) -> Dataset:
    """The WordNet noun subtree under ``root`` (e.g. 'dog.n.01') with a ``dim``-d Poincare
    embedding trained here, like ``load_mammals`` returns the shipped mammals (metric "poincare").

    The first call builds the closure (build_closure; needs WordNet, see INSTALL_HINT) and trains
    ``PoincareEmbedding(dim, epochs, seed, **SUBTREE_POINCARE)`` on it, reporting each epoch to
    ``progress``; it writes ``closure.tsv``, ``embedding.npz`` (arrays ``names``, ``X``; no
    pickle) and ``info.json`` (settings, reconstruction scores) to ``subtree_cache_dir(...)``.
    Later calls with the same settings read those files and need neither WordNet nor training.

    Time and quality measured here (one CPU core, 10-d, seed 0, the default 50 epochs of
    SUBTREE_POINCARE; reconstruction as in poincare.reconstruction_scores, a node not counting
    itself): mammal.n.01 (1,182 nodes, 6,542 edges) MR 3.54 / MAP 0.863 in ~30 s;
    animal.n.01 (4,017 nodes, 29,795 edges) MR 8.96 / MAP 0.787 in about 3 minutes of CPU.
    Both are below the shipped mammals embedding (200 epochs of one-edge batches: MR 1.23 /
    MAP 0.95), the price of a few minutes; pass more ``epochs`` for a better embedding. On
    mammals, 20 epochs already gave MR 3.52 / MAP 0.862, lr 0.5 instead of 0.3 MR 4.99, and
    batches of 64 at lr 0.1 for 20 epochs MR 14.1 (it needs many more epochs).

    labels = each synset's ancestor at ``label_depth`` below the root, groups smaller than
    ``label_min_group`` merged upward (as load_mammals). No split of its own (the benchmark
    protocol splits it 60/20/20). extra: "edges", "depth", "parents", "root", "cache_dir",
    "reconstruction".
    """
    import json

    from hkd_core.poincare import PoincareEmbedding, reconstruction_scores

    if not isinstance(root, str) or not root.strip():
        raise ValueError(f"root must be a WordNet synset name such as 'dog.n.01', got {root!r}")
    for name, value, low in (("dim", dim, 1), ("epochs", epochs, 1), ("seed", seed, 0),
                             ("label_depth", label_depth, 0), ("label_min_group", label_min_group, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    root = root.strip()
    cache = subtree_cache_dir(root, dim, epochs, seed)
    closure_path = cache / SUBTREE_CLOSURE_FILE
    emb_path = cache / SUBTREE_EMBEDDING_FILE
    info_path = cache / SUBTREE_INFO_FILE
    if closure_path.is_file() and emb_path.is_file() and info_path.is_file():
        nodes, edges = read_closure_tsv(closure_path)
        with np.load(emb_path, allow_pickle=False) as npz:
            names, X = [str(s) for s in npz["names"]], np.asarray(npz["X"], dtype=np.float64)
        info = json.loads(info_path.read_text())
    else:
        ok, msg = wordnet_available(wordnet_dir)
        if not ok:
            raise FileNotFoundError(msg)
        nodes, edges = build_closure(root, open_wordnet(wordnet_dir))
        if len(nodes) < MIN_SUBTREE_NODES:
            raise ValueError(f"root {root!r} has {len(nodes) - 1} hyponyms; a subtree needs at least "
                             f"{MIN_SUBTREE_NODES} synsets: choose a broader synset (a hypernym of {root})")
        settings = dict(SUBTREE_POINCARE)
        settings["burn_in"] = min(settings["burn_in"], int(epochs) // 4)   # short test runs
        model = PoincareEmbedding(dim=int(dim), epochs=int(epochs), seed=int(seed), device="cpu",
                                  **settings)
        model.fit(nodes, edges, progress=progress)
        names, X = list(model.nodes_), model.embedding_
        scores = reconstruction_scores(X, names, edges)
        info = {"root": root, "dim": int(dim), "epochs": int(epochs), "seed": int(seed),
                "poincare": SUBTREE_POINCARE, "n_nodes": len(nodes), "n_edges": len(edges),
                "reconstruction": {"mean_rank": float(scores["mean_rank"]), "map": float(scores["map"]),
                                   "count_self": False}}
        # write under temporary names, then rename: a concurrent reader never sees half a cache
        cache.mkdir(parents=True, exist_ok=True)
        tmp = f".tmp{os.getpid()}"
        write_closure_tsv(cache / (SUBTREE_CLOSURE_FILE + tmp), nodes, edges, root=root,
                          source="WordNet 3.0 via nltk")
        with open(cache / (SUBTREE_EMBEDDING_FILE + tmp), "wb") as fh:
            np.savez(fh, names=np.asarray(names, dtype=str), X=X)
        (cache / (SUBTREE_INFO_FILE + tmp)).write_text(json.dumps(info, indent=2))
        for fname in (SUBTREE_CLOSURE_FILE, SUBTREE_EMBEDDING_FILE, SUBTREE_INFO_FILE):
            os.replace(cache / (fname + tmp), cache / fname)
    if set(names) != set(nodes):
        raise ValueError(f"{emb_path} names do not match the closure's {len(nodes)} synsets")
    structure = closure_structure(nodes, edges, root=root)
    labels = group_labels(structure, names, int(label_depth), int(label_min_group))
    return closure_dataset(
        f"wordnet:{root}", X, names, labels, structure, edges,
        description=(f"WordNet 3.0 closure under {root}: {len(nodes)} synsets, {len(edges)} "
                     f"hyponym-ancestor edges; {X.shape[1]}-d Poincare embedding trained here "
                     f"({epochs} epochs, reconstruction MR {info['reconstruction']['mean_rank']:.2f} / "
                     f"MAP {info['reconstruction']['map']:.3f})"),
        extra={
            "root": root,
            "cache_dir": str(cache),
            "reconstruction": info["reconstruction"],
            "label_depth": int(label_depth),
        },
    )


def subtree_availability(root: str | None = None, wordnet_dir=None, **_) -> tuple[bool, str]:
    ok, msg = wordnet_available(wordnet_dir)
    if not ok:
        return False, msg
    return True, f"{msg}; any noun subtree: train --wordnet-root SYNSET (embedded once, then cached)"
