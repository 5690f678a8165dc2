"""CIFAR-100: safe archive reader, class hierarchy, wide-ResNet features (paper §3.4, Fig. 4).

The official ``cifar-100-python.tar.gz`` holds three Python-2 pickles (``train``, ``test``,
``meta``) inside a ``cifar-100-python/`` folder. Pickles run code when loaded carelessly, so they
are read here with ``RestrictedUnpickler``: plain containers plus the three numpy callables an
array needs, nothing else. Tar members are read straight into memory (nothing is extracted to
disk); absolute paths, ``..``, links, devices and oversized members are refused.

    raw = read_cifar100("~/data")              # dict of uint8 images, labels, names
    ds = load_cifar100("~/data", backbone="wrn-28-10", backbone_epochs=200)   # Dataset of features

The class tree a CIFAR-100 Dataset carries for mAHP (``hierarchy`` option) is by default Barz &
Denzler's WordNet-based hierarchy shipped in data/cifar100/ (``load_barz_denzler_hierarchy``);
``hierarchy="superclasses"`` gives the flat 20 x 5 tree of the archive.

``write_cifar100_archive`` writes a small synthetic archive in exactly the official format (the
real class names and superclass assignment, synthetic images) for tests and demos.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import posixpath
import struct
import tarfile
import urllib.error
import urllib.request
import zlib
from typing import Callable

import numpy as np

from hkd_core.datasets.base import Dataset

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
ARCHIVE_NAME = "cifar-100-python.tar.gz"
FOLDER_NAME = "cifar-100-python"
MEMBERS = ("train", "test", "meta")
# The real train pickle is ~155 MB; anything far larger is not CIFAR-100.
MAX_MEMBER_BYTES = 256 * 2**20
MAX_ARCHIVE_MEMBERS_BYTES = 1024 * 2**20
IMAGE_SHAPE = (32, 32, 3)
FEATURE_CACHE_VERSION = 1
DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "data", "cifar100")
BARZ_DENZLER_EDGES = "cifar.parent-child.txt"
BARZ_DENZLER_NAMES = "class_names.txt"
# Which class tree a CIFAR-100 Dataset carries as ``hierarchy`` (what mAHP measures against):
#   "barz-denzler"  Barz & Denzler's WordNet-based tree (data/cifar100/, MIT; height 8) - default
#   "superclasses"  the flat 20 superclasses x 5 classes tree of the archive (height 2)
#   "wordnet"       this project's own WordNet 3.0 tree (data/cifar100/wordnet_tree.tsv)
HIERARCHIES = ("barz-denzler", "superclasses", "wordnet")
DEFAULT_HIERARCHY = "barz-denzler"

# The 20 superclasses and their 5 classes each (CIFAR-100 documentation, Krizhevsky 2009).
# The archive's meta lists both name sets in sorted order; labels index into those lists.
SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
COARSE_LABEL_NAMES = tuple(sorted(SUPERCLASSES))
FINE_LABEL_NAMES = tuple(sorted(f for fines in SUPERCLASSES.values() for f in fines))

ProgressCallback = Callable[[dict], None]


class UnsafeArchiveError(ValueError):
    """The archive holds something a CIFAR-100 archive never holds (code in a pickle, a link, a
    path outside its folder, an oversized member). Nothing from it was executed or written."""


# --- restricted unpickling ---------------------------------------------------------------------

class _NdarrayType:
    """Stands in for ``numpy.ndarray`` inside a pickle: it can only be passed to
    ``_reconstruct`` (calling it, i.e. building arbitrary arrays, fails)."""

    def __repr__(self) -> str:
        return "<restricted numpy.ndarray>"

    def __call__(self, *args, **kwargs):
        raise UnsafeArchiveError("pickle calls numpy.ndarray directly; only _reconstruct may build arrays")


_NDARRAY = _NdarrayType()


def _as_text(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _safe_dtype(spec, align=False, copy=False):
    dtype = np.dtype(_as_text(spec), bool(align), bool(copy))
    if dtype.hasobject:
        raise UnsafeArchiveError(f"pickle asks for an object dtype {dtype!r}; refused")
    return dtype


def _safe_reconstruct(subtype, shape, dtype_spec):
    # numpy's own _reconstruct(ndarray, (0,), b'b') makes an empty array that BUILD then fills via
    # ndarray.__setstate__; this does the same without importing numpy internals.
    if subtype is not _NDARRAY:
        raise UnsafeArchiveError(f"pickle reconstructs an array of type {subtype!r}; only numpy.ndarray is allowed")
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and 0 <= s for s in shape) \
            or int(np.prod(shape, dtype=np.int64)) > MAX_MEMBER_BYTES:
        raise UnsafeArchiveError(f"pickle asks for an array of shape {shape!r}; refused")
    return np.ndarray(shape, dtype=_safe_dtype(dtype_spec))


def _latin1_encode(text, encoding="latin1"):
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeArchiveError(f"pickle calls _codecs.encode with {encoding!r}; only latin1 is allowed")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR pickles: plain containers, strings, numbers and numpy uint8-style
    arrays. Any other global (os.system, builtins.eval, ...) raises UnsafeArchiveError before
    it can be called."""

    ALLOWED_GLOBALS = {
        ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _safe_dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeArchiveError(
                f"refused to load {module}.{name} from a pickle: CIFAR-100 pickles only contain "
                "containers and numpy arrays (the archive may be corrupt or hostile)") from None

    def persistent_load(self, pid):
        raise UnsafeArchiveError("refused a persistent id in a pickle: CIFAR-100 pickles have none")


def restricted_loads(data: bytes, what: str = "pickle"):
    """Unpickle ``data`` with RestrictedUnpickler (Python-2 strings come back as bytes)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafeArchiveError as exc:
        raise UnsafeArchiveError(f"{what}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
            IndexError, KeyError, struct.error, MemoryError, RecursionError) as exc:
        raise ValueError(f"{what} is not a readable CIFAR pickle: {type(exc).__name__}: {exc}") from None


# --- reading the archive -----------------------------------------------------------------------

def _member_key(name: str) -> str | None:
    """Which of train/test/meta a tar member is, or None. Raises on unsafe paths."""
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"archive member {name!r} points outside the archive ('..'); refused")
    if len(parts) == 2 and parts[0] == FOLDER_NAME and parts[1] in MEMBERS:
        return parts[1]
    return None


def _read_tar_members(path: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:  # streamed: members are checked before any data is read
                key = _member_key(member.name)
                if member.issym() or member.islnk():
                    raise UnsafeArchiveError(f"archive member {member.name!r} is a link; refused")
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArchiveError(f"archive member {member.name!r} is not a regular file; refused")
                total += member.size
                if member.size > MAX_MEMBER_BYTES or total > MAX_ARCHIVE_MEMBERS_BYTES:
                    raise UnsafeArchiveError(
                        f"archive member {member.name!r} is {member.size} bytes; CIFAR-100 members are "
                        f"under {MAX_MEMBER_BYTES} bytes (total under {MAX_ARCHIVE_MEMBERS_BYTES}); refused")
                if key is None or member.isdir():
                    continue  # e.g. the real archive's stray 'file.txt~'
                if key in found:
                    raise UnsafeArchiveError(f"archive holds {FOLDER_NAME}/{key} twice; refused")
                handle = tar.extractfile(member)
                found[key] = handle.read(MAX_MEMBER_BYTES + 1)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"{path} is not a readable tar archive: {exc}") from None
    return found


def _read_folder_members(folder: str) -> dict[str, bytes]:
    found = {}
    for key in MEMBERS:
        path = os.path.join(folder, key)
        if not os.path.isfile(path):
            continue
        size = os.path.getsize(path)
        if size > MAX_MEMBER_BYTES:
            raise UnsafeArchiveError(f"{path} is {size} bytes; CIFAR-100 files are under {MAX_MEMBER_BYTES}; refused")
        with open(path, "rb") as fh:
            found[key] = fh.read()
    return found


def resolve_cifar100_source(path: str) -> str:
    """The archive file or extracted folder that ``path`` designates (see read_cifar100)."""
    path = os.path.expanduser(str(path))
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        if all(os.path.isfile(os.path.join(path, m)) for m in MEMBERS):
            return path
        folder = os.path.join(path, FOLDER_NAME)
        if os.path.isdir(folder) and all(os.path.isfile(os.path.join(folder, m)) for m in MEMBERS):
            return folder
        archive = os.path.join(path, ARCHIVE_NAME)
        if os.path.isfile(archive):
            return archive
    raise FileNotFoundError(
        f"no CIFAR-100 data at {path!r}: expected {ARCHIVE_NAME}, the extracted {FOLDER_NAME}/ folder "
        f"(files {', '.join(MEMBERS)}), or a directory holding either. Get the archive from "
        f"{CIFAR100_URL} (md5 {CIFAR100_MD5}) or pass download=True / --download on a machine with internet.")


def _str_keys(obj, what: str) -> dict:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must hold a dict, got {type(obj).__name__}")
    return {_as_text(k): v for k, v in obj.items()}


def _names(values, what: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, (bytes, str)) for v in values):
        raise ValueError(f"{what} must be a list of strings")
    return [_as_text(v) for v in values]


def _int_labels(values, n: int, n_classes: int, what: str) -> np.ndarray:
    if not isinstance(values, list) or len(values) != n or not all(type(v) is int for v in values):
        raise ValueError(f"{what} must be a list of {n} integers")
    arr = np.asarray(values, dtype=np.int64)
    if n and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{what} must be in [0, {n_classes}), got [{arr.min()}, {arr.max()}]")
    return arr


def _parse_split(obj, what: str, n_fine: int, n_coarse: int) -> dict:
    d = _str_keys(obj, what)
    missing = {"data", "fine_labels", "coarse_labels", "filenames"} - set(d)
    if missing:
        raise ValueError(f"{what} lacks key(s) {sorted(missing)}")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise ValueError(f"{what}['data'] must be a uint8 array (n, 3072), got {type(data).__name__} {shape}")
    n = len(data)
    # Rows are channel-major (1024 red, 1024 green, 1024 blue values, row by row).
    images = np.ascontiguousarray(data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))
    filenames = _names(d["filenames"], f"{what}['filenames']")
    if len(filenames) != n:
        raise ValueError(f"{what}['filenames'] has {len(filenames)} entries for {n} images")
    return {"images": images,
            "fine_labels": _int_labels(d["fine_labels"], n, n_fine, f"{what}['fine_labels']"),
            "coarse_labels": _int_labels(d["coarse_labels"], n, n_coarse, f"{what}['coarse_labels']"),
            "filenames": filenames}


def read_cifar100(source) -> dict:
    """Read the official CIFAR-100 python archive safely.

    source: ``cifar-100-python.tar.gz``, the extracted ``cifar-100-python/`` folder, or a
    directory holding either. Returns {"train": split, "test": split, "fine_label_names",
    "coarse_label_names", "fingerprint" (sha256 of the three pickles), "source"}, where a split is
    {"images": uint8 (n, 32, 32, 3), "fine_labels": int64 (n,), "coarse_labels": int64 (n,),
    "filenames": list[str]}. Raises UnsafeArchiveError for hostile content."""
    resolved = resolve_cifar100_source(source)
    members = _read_tar_members(resolved) if os.path.isfile(resolved) else _read_folder_members(resolved)
    missing = [m for m in MEMBERS if m not in members]
    if missing:
        raise ValueError(f"{resolved} lacks {', '.join(f'{FOLDER_NAME}/{m}' for m in missing)}")
    for key, raw in members.items():
        if len(raw) > MAX_MEMBER_BYTES:
            raise UnsafeArchiveError(f"{FOLDER_NAME}/{key} exceeds {MAX_MEMBER_BYTES} bytes; refused")
    fingerprint = hashlib.sha256()
    for key in MEMBERS:
        fingerprint.update(hashlib.sha256(members[key]).digest())
    meta = _str_keys(restricted_loads(members["meta"], f"{FOLDER_NAME}/meta"), f"{FOLDER_NAME}/meta")
    for key in ("fine_label_names", "coarse_label_names"):
        if key not in meta:
            raise ValueError(f"{FOLDER_NAME}/meta lacks key {key!r}")
    fine_names = _names(meta["fine_label_names"], "meta['fine_label_names']")
    coarse_names = _names(meta["coarse_label_names"], "meta['coarse_label_names']")
    out = {"fine_label_names": fine_names, "coarse_label_names": coarse_names,
           "fingerprint": fingerprint.hexdigest(), "source": resolved}
    for split in ("train", "test"):
        obj = restricted_loads(members.pop(split), f"{FOLDER_NAME}/{split}")
        out[split] = _parse_split(obj, f"{FOLDER_NAME}/{split}", len(fine_names), len(coarse_names))
    return out


def cifar100_hierarchy(raw: dict) -> dict[str, str]:
    """Fine class name -> superclass name, derived from the (fine, coarse) label pairs of the
    archive itself. Raises if a class appears under two superclasses."""
    fine = np.concatenate([raw[s]["fine_labels"] for s in ("train", "test")])
    coarse = np.concatenate([raw[s]["coarse_labels"] for s in ("train", "test")])
    pairs = np.unique(np.stack([fine, coarse], 1), axis=0)
    hierarchy: dict[str, str] = {}
    for f, c in pairs:
        name, parent = raw["fine_label_names"][f], raw["coarse_label_names"][c]
        if hierarchy.get(name, parent) != parent:
            raise ValueError(f"class {name!r} appears under two superclasses ({hierarchy[name]!r}, {parent!r})")
        hierarchy[name] = parent
    return hierarchy


# --- finding and downloading -------------------------------------------------------------------

def default_cache_dir() -> str:
    root = os.environ.get("HKD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hkd_explorer")
    return os.path.join(root, "cifar100")


def _candidate_dirs(data_dir) -> list[str]:
    if data_dir is not None:
        return [os.path.expanduser(str(data_dir))]
    repo_data = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "data", "cifar100")
    env = os.environ.get("HKD_CIFAR100_DIR")
    return ([env] if env else []) + [default_cache_dir(), repo_data]


def find_cifar100(data_dir=None) -> str | None:
    """The first CIFAR-100 archive or folder found in ``data_dir`` (or, when None, in
    $HKD_CIFAR100_DIR, ~/.cache/hkd_explorer/cifar100, data/cifar100), else None."""
    for directory in _candidate_dirs(data_dir):
        try:
            return resolve_cifar100_source(directory)
        except FileNotFoundError:
            continue
    return None


def availability(data_dir=None, **_ignored) -> tuple[bool, str]:
    """(available, message) without reading the archive."""
    found = find_cifar100(data_dir)
    if found:
        return True, f"CIFAR-100 found at {found}"
    where = ", ".join(_candidate_dirs(data_dir))
    return False, (f"CIFAR-100 not found in {where}. Pass a directory holding {ARCHIVE_NAME} "
                   f"(from {CIFAR100_URL}), or download=True on a machine with internet.")


def download_cifar100(dest=None, url: str = CIFAR100_URL, md5: str = CIFAR100_MD5,
                      timeout: float = 60.0) -> str:
    """Download the official archive into ``dest`` (default ~/.cache/hkd_explorer/cifar100),
    check its md5, and return its path. Raises ConnectionError with instructions when offline."""
    dest = os.path.expanduser(str(dest)) if dest is not None else default_cache_dir()
    os.makedirs(dest, exist_ok=True)
    target = os.path.join(dest, ARCHIVE_NAME)
    if os.path.isfile(target) and _md5_of(target) == md5:
        return target
    partial = target + ".part"
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        if os.path.exists(partial):
            os.remove(partial)
        raise ConnectionError(
            f"could not download CIFAR-100 from {url}: {exc}. This machine may be offline: fetch the "
            f"archive elsewhere (md5 {md5}) and pass the directory holding {ARCHIVE_NAME} as data_dir "
            "(--data-dir).") from None
    if digest.hexdigest() != md5:
        os.remove(partial)
        raise ValueError(f"downloaded archive has md5 {digest.hexdigest()}, expected {md5}; removed it")
    os.replace(partial, target)
    return target


def _md5_of(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- features ----------------------------------------------------------------------------------

def _limit_split(split: dict, limit: int | None) -> dict:
    if limit is None:
        return split
    return {"images": split["images"][:limit], "fine_labels": split["fine_labels"][:limit],
            "coarse_labels": split["coarse_labels"][:limit], "filenames": split["filenames"][:limit]}


def feature_cache_key(fingerprint: str, backbone_config: dict, limit: int | None) -> str:
    """Hash of everything the features depend on (the seed is part of the backbone config)."""
    blob = json.dumps({"version": FEATURE_CACHE_VERSION, "archive": fingerprint,
                       "backbone": backbone_config, "limit": limit}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_cifar100(data_dir=None, download: bool = False, backbone: str = "wrn-28-10",
                  backbone_epochs: int = 200, limit: int | None = None, batch_size: int = 128,
                  seed: int = 0, cache_dir=None, device: str = "auto",
                  progress: ProgressCallback | None = None, lr: float = 0.1,
                  schedule: str = "step", dropout: float = 0.3, train_backbone: bool = True,
                  hierarchy: str = DEFAULT_HIERARCHY) -> Dataset:
    """CIFAR-100 images as wide-ResNet penultimate-layer features.

    Trains ``backbone`` (e.g. "wrn-28-10") for ``backbone_epochs`` epochs on the train split's
    fine labels (CUDA when available), or reuses the weights/features cached under ``cache_dir``
    (default ~/.cache/hkd_explorer/cifar100) for the same archive content, backbone configuration,
    seed and ``limit`` (= first ``limit`` images of each split). ``progress`` receives one dict per
    backbone epoch ({"stage": "backbone", "epoch", "n_epochs", "loss", "accuracy", ...}).

    Returns a Dataset: X = features of the train rows then the test rows, train_idx/test_idx,
    names = file names, labels = fine class names, hierarchy = the class tree mAHP uses (child ->
    parent; ``hierarchy`` option: "barz-denzler" = Barz & Denzler's WordNet-based tree, the
    default; "superclasses" = the flat {fine class: superclass} tree; "wordnet" = the project's
    WordNet 3.0 tree), extra["coarse_labels"] = superclass per row, extra["hierarchy"] = the
    option, metric "euclidean"."""
    from hkd_core import backbone as bb  # torch is imported only when features are needed
    from hkd_core.models.base import check_choice

    check_choice("hierarchy", hierarchy, HIERARCHIES)

    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 2:
            raise ValueError(f"limit must be an integer >= 2 (images per split) or None, got {limit!r}")
        limit = int(limit)
    config = bb.BackboneConfig(arch=str(backbone).strip().lower(), epochs=backbone_epochs,
                               batch_size=batch_size, lr=lr, schedule=schedule, dropout=dropout,
                               seed=seed).validate()
    source = find_cifar100(data_dir)
    if source is None:
        if not download:
            raise FileNotFoundError(availability(data_dir)[1])
        source = download_cifar100(data_dir)
    raw = read_cifar100(source)
    class_tree = cifar100_class_hierarchy(hierarchy, raw)
    n_superclasses = len(set(cifar100_hierarchy(raw).values()))
    train, test = _limit_split(raw["train"], limit), _limit_split(raw["test"], limit)
    fine_names, coarse_names = raw["fine_label_names"], raw["coarse_label_names"]

    cache_dir = os.path.expanduser(str(cache_dir)) if cache_dir is not None else default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    key = feature_cache_key(raw["fingerprint"], config.to_dict(), limit)
    features_path = os.path.join(cache_dir, f"features-{key}.npy")
    meta_path = os.path.join(cache_dir, f"features-{key}.json")
    weights_path = os.path.join(cache_dir, f"backbone-{key}.pt")
    n_train, n_test = len(train["images"]), len(test["images"])

    features, meta = _read_feature_cache(features_path, meta_path, n_train + n_test)
    if features is None:
        history: list[dict] = []
        if os.path.isfile(weights_path):
            model = bb.load_backbone(weights_path, config, len(fine_names))
            trained_here = False
        elif not train_backbone:
            # the app asks for cached features only: a wide ResNet takes hours to train
            raise FileNotFoundError(
                f"no cached {config.arch} features ({config.epochs} epochs, limit {limit}) for the "
                f"CIFAR-100 archive in {source}; compute them once with `python -m hkd_core train "
                f"--dataset cifar100 --data-dir DIR --model hkd --out OUT --backbone {config.arch} "
                f"--backbone-epochs {config.epochs}` (a GPU is strongly advised)")
        else:
            model, history = bb.train_backbone(train["images"], train["fine_labels"], config,
                                               progress=progress, device=device,
                                               num_classes=len(fine_names))
            bb.save_backbone(model, f"{weights_path}.{os.getpid()}.tmp")
            os.replace(f"{weights_path}.{os.getpid()}.tmp", weights_path)
            trained_here = True
        images = np.concatenate([train["images"], test["images"]])
        features, logits = bb.extract_features(model, images, device=device, return_logits=True)
        predicted = logits.argmax(1)
        meta = {"backbone": config.to_dict(), "limit": limit, "archive_sha256": raw["fingerprint"],
                "feature_dim": int(features.shape[1]),
                "backbone_train_accuracy": float(np.mean(predicted[:n_train] == train["fine_labels"])),
                "backbone_test_accuracy": float(np.mean(predicted[n_train:] == test["fine_labels"])),
                "backbone_history": history, "trained_in_this_call": trained_here}
        _write_feature_cache(features_path, meta_path, features, meta)
        meta = dict(meta)
    else:
        meta = dict(meta, trained_in_this_call=False)

    fine = np.concatenate([train["fine_labels"], test["fine_labels"]])
    coarse = np.concatenate([train["coarse_labels"], test["coarse_labels"]])
    return Dataset(
        name="cifar100",
        X=features,
        names=train["filenames"] + test["filenames"],
        labels=[fine_names[i] for i in fine],
        metric="euclidean",
        train_idx=np.arange(n_train),
        test_idx=np.arange(n_train, n_train + n_test),
        hierarchy=class_tree,
        description=(f"CIFAR-100 {config.arch} features ({config.epochs} backbone epochs), "
                     f"{n_train} train + {n_test} test images, {n_superclasses} superclasses, "
                     f"mAHP against the {hierarchy} class tree"),
        extra={"coarse_labels": [coarse_names[i] for i in coarse], "hierarchy": hierarchy,
               "columns": {"superclass": [coarse_names[i] for i in coarse],
                           "split": ["train"] * n_train + ["test"] * n_test},
               "images": np.concatenate([train["images"], test["images"]]),
               "feature_cache": features_path,
               "backbone_weights": weights_path, **meta},
    )


def _read_feature_cache(features_path: str, meta_path: str, n_rows: int):
    if not (os.path.isfile(features_path) and os.path.isfile(meta_path)):
        return None, None
    try:
        features = np.load(features_path, allow_pickle=False)
        with open(meta_path) as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None, None  # unreadable cache: recompute rather than fail
    if features.ndim != 2 or len(features) != n_rows or features.dtype != np.float32:
        return None, None
    return features, meta


def _write_feature_cache(features_path: str, meta_path: str, features: np.ndarray, meta: dict) -> None:
    # Written to per-process temporary names and renamed, so neither a crash nor two processes
    # filling the same entry leave a half-written file behind.
    tmp = f".{os.getpid()}.tmp"
    with open(features_path + tmp, "wb") as fh:
        np.save(fh, features.astype(np.float32), allow_pickle=False)
    with open(meta_path + tmp, "w") as fh:
        json.dump(meta, fh, indent=1)
    os.replace(meta_path + tmp, meta_path)
    os.replace(features_path + tmp, features_path)


# --- writing an archive in the official format -------------------------------------------------

class _Py2PickleWriter:
    """Emits protocol-2 pickles the way Python 2 + numpy 1.x wrote the official CIFAR files:
    strings as py2 ``str`` (SHORT_BINSTRING/BINSTRING opcodes, read back as bytes), arrays via
    ``numpy.core.multiarray._reconstruct`` + BUILD. Python 3's pickler cannot produce this
    (it writes bytes as ``_codecs.encode`` calls and arrays via ``numpy._core``)."""

    def __init__(self):
        self.out = io.BytesIO()

    def dumps(self, obj) -> bytes:
        self.out.write(pickle.PROTO + b"\x02")
        self._save(obj)
        self.out.write(pickle.STOP)
        return self.out.getvalue()

    def _save(self, obj) -> None:
        w = self.out.write
        if obj is None:
            w(pickle.NONE)
        elif isinstance(obj, bool):
            w(pickle.NEWTRUE if obj else pickle.NEWFALSE)
        elif isinstance(obj, (int, np.integer)):
            obj = int(obj)
            if 0 <= obj < 256:
                w(pickle.BININT1 + struct.pack("<B", obj))
            elif 0 <= obj < 65536:
                w(pickle.BININT2 + struct.pack("<H", obj))
            else:
                w(pickle.BININT + struct.pack("<i", obj))
        elif isinstance(obj, bytes):
            if len(obj) < 256:
                w(pickle.SHORT_BINSTRING + struct.pack("<B", len(obj)) + obj)
            else:
                w(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        elif isinstance(obj, tuple):
            if 1 <= len(obj) <= 3:
                for item in obj:
                    self._save(item)
                w((pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3)[len(obj) - 1])
            else:
                w(pickle.MARK)
                for item in obj:
                    self._save(item)
                w(pickle.TUPLE)
        elif isinstance(obj, list):
            w(pickle.EMPTY_LIST)
            for start in range(0, len(obj), 1000):  # batches of 1000, like the stdlib pickler
                w(pickle.MARK)
                for item in obj[start:start + 1000]:
                    self._save(item)
                w(pickle.APPENDS)
        elif isinstance(obj, dict):
            w(pickle.EMPTY_DICT)
            if obj:
                w(pickle.MARK)
                for k, v in obj.items():
                    self._save(k)
                    self._save(v)
                w(pickle.SETITEMS)
        elif isinstance(obj, np.dtype):
            w(pickle.GLOBAL + b"numpy\ndtype\n")
            self._save((obj.str[1:].encode(), 0, 1))
            w(pickle.REDUCE)
            self._save((3, b"|" if obj.itemsize == 1 else b"<", None, None, None, -1, -1, 0))
            w(pickle.BUILD)
        elif isinstance(obj, np.ndarray):
            obj = np.ascontiguousarray(obj)
            w(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            w(pickle.GLOBAL + b"numpy\nndarray\n")
            self._save((0,))
            self._save(b"b")
            w(pickle.TUPLE3)
            w(pickle.REDUCE)
            self._save((1, tuple(obj.shape), obj.dtype, False, obj.tobytes()))
            w(pickle.BUILD)
        else:
            raise TypeError(f"cannot write {type(obj).__name__} in a CIFAR pickle")


def _synthetic_images(fine: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images a small network can tell apart: a background colour per superclass (so the 20 x 5
    structure is visible), a coloured blob per class at one of five places, plus noise."""
    palette = np.random.default_rng(12345)  # class looks are fixed, whatever the seed
    coarse_colour = palette.uniform(30, 150, (len(COARSE_LABEL_NAMES), 3))
    fine_colour = palette.uniform(100, 255, (len(FINE_LABEL_NAMES), 3))
    places = np.array([[9, 9], [9, 22], [22, 9], [22, 22], [16, 16]], dtype=float)
    coarse_of = np.array([COARSE_LABEL_NAMES.index(_SUPERCLASS_OF[f]) for f in FINE_LABEL_NAMES])
    place_of = np.array([SUPERCLASSES[_SUPERCLASS_OF[f]].index(f) for f in FINE_LABEL_NAMES])
    n = len(fine)
    yy, xx = np.mgrid[0:32, 0:32].astype(float)
    centre = places[place_of[fine]] + rng.uniform(-2.5, 2.5, (n, 2))
    radius = rng.uniform(4.0, 7.0, n)
    d2 = (yy[None] - centre[:, 0, None, None]) ** 2 + (xx[None] - centre[:, 1, None, None]) ** 2
    blob = np.exp(-d2 / (2 * radius[:, None, None] ** 2))[..., None]
    background = coarse_colour[coarse_of[fine]][:, None, None, :]
    images = background * (1 - blob) + fine_colour[fine][:, None, None, :] * blob
    images = images * rng.uniform(0.8, 1.2, (n, 1, 1, 1)) + rng.normal(0, 18, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)


_SUPERCLASS_OF = {f: c for c, fines in SUPERCLASSES.items() for f in fines}


def _split_dict(fine: np.ndarray, images: np.ndarray, serials: np.ndarray, batch_label: str) -> dict:
    coarse = [COARSE_LABEL_NAMES.index(_SUPERCLASS_OF[FINE_LABEL_NAMES[f]]) for f in fine]
    # Same key order and value types as the official pickles.
    return {
        b"filenames": [f"{FINE_LABEL_NAMES[f]}_s_{s:06d}.png".encode() for f, s in zip(fine, serials)],
        b"batch_label": batch_label.encode(),
        b"fine_labels": [int(f) for f in fine],
        b"coarse_labels": coarse,
        b"data": images.transpose(0, 3, 1, 2).reshape(len(fine), 3072),
    }


def write_cifar100_archive(path, n_train: int = 500, n_test: int = 100, seed: int = 0) -> str:
    """Write a synthetic ``cifar-100-python.tar.gz`` in the official format.

    path: the archive file to write (a name ending in .tar.gz or .tgz), or else a directory that
    is created if needed and receives the archive under its official name. Labels cycle through all 100 classes in a shuffled order, so any first-N
    slice is close to balanced. Returns the archive path."""
    from hkd_core.models.base import check_int

    check_int("n_train", n_train, 1, 100_000)
    check_int("n_test", n_test, 1, 100_000)
    check_int("seed", seed, 0)
    path = os.path.expanduser(str(path))
    if not path.endswith((".tar.gz", ".tgz")):
        os.makedirs(path, exist_ok=True)
        path = os.path.join(path, ARCHIVE_NAME)
    rng = np.random.default_rng(seed)
    members = {}
    serial = rng.permutation(n_train + n_test)  # unique file names across both splits
    for split, n, label, serials in (("train", n_train, "training batch 1 of 1", serial[:n_train]),
                                     ("test", n_test, "testing batch 1 of 1", serial[n_train:])):
        fine = rng.permutation(np.resize(np.arange(len(FINE_LABEL_NAMES)), n))
        members[split] = _Py2PickleWriter().dumps(_split_dict(fine, _synthetic_images(fine, rng), serials, label))
    members["meta"] = _Py2PickleWriter().dumps({
        b"fine_label_names": [f.encode() for f in FINE_LABEL_NAMES],
        b"coarse_label_names": [c.encode() for c in COARSE_LABEL_NAMES],
    })
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo(FOLDER_NAME)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for key in ("meta", "test", "train"):
            info = tarfile.TarInfo(posixpath.join(FOLDER_NAME, key))
            info.size, info.mode = len(members[key]), 0o644
            tar.addfile(info, io.BytesIO(members[key]))
    return path


# --- a deeper, WordNet-based class tree (optional; shipped in data/cifar100/) ------------------

# WordNet 3.0 noun sense of each CIFAR-100 class, chosen by reading the glosses (the first sense
# is often wrong: 'seal' the wax, 'ray' the beam, 'table' the data table). 'aquarium_fish' has no
# synset of its own: it hangs directly under fish.n.01.
WORDNET_SENSES: dict[str, str] = {
    "apple": "apple.n.01", "aquarium_fish": "fish.n.01", "baby": "baby.n.01",
    "bear": "bear.n.01", "beaver": "beaver.n.07", "bed": "bed.n.01", "bee": "bee.n.01",
    "beetle": "beetle.n.01", "bicycle": "bicycle.n.01", "bottle": "bottle.n.01", "bowl": "bowl.n.01",
    "boy": "male_child.n.01", "bridge": "bridge.n.01", "bus": "bus.n.01", "butterfly": "butterfly.n.01",
    "camel": "camel.n.01", "can": "can.n.01", "castle": "castle.n.02", "caterpillar": "caterpillar.n.01",
    "cattle": "cattle.n.01", "chair": "chair.n.01", "chimpanzee": "chimpanzee.n.01", "clock": "clock.n.01",
    "cloud": "cloud.n.02", "cockroach": "cockroach.n.01", "couch": "sofa.n.01", "crab": "crab.n.01",
    "crocodile": "crocodile.n.01", "cup": "cup.n.01", "dinosaur": "dinosaur.n.01", "dolphin": "dolphin.n.02",
    "elephant": "elephant.n.01", "flatfish": "flatfish.n.02", "forest": "forest.n.02", "fox": "fox.n.01",
    "girl": "female_child.n.01", "hamster": "hamster.n.01", "house": "house.n.01", "kangaroo": "kangaroo.n.01",
    "keyboard": "computer_keyboard.n.01", "lamp": "lamp.n.02", "lawn_mower": "lawn_mower.n.01",
    "leopard": "leopard.n.02", "lion": "lion.n.01", "lizard": "lizard.n.01", "lobster": "lobster.n.02",
    "man": "man.n.01", "maple_tree": "maple.n.02", "motorcycle": "motorcycle.n.01",
    "mountain": "mountain.n.01", "mouse": "mouse.n.01", "mushroom": "mushroom.n.02", "oak_tree": "oak.n.02",
    "orange": "orange.n.01", "orchid": "orchid.n.01", "otter": "otter.n.02", "palm_tree": "palm.n.03",
    "pear": "pear.n.01", "pickup_truck": "pickup.n.01", "pine_tree": "pine.n.01", "plain": "plain.n.01",
    "plate": "plate.n.04", "poppy": "poppy.n.01", "porcupine": "porcupine.n.01", "possum": "opossum.n.02",
    "rabbit": "rabbit.n.01", "raccoon": "raccoon.n.02", "ray": "ray.n.07", "road": "road.n.01",
    "rocket": "rocket.n.01", "rose": "rose.n.01", "sea": "sea.n.01", "seal": "seal.n.09",
    "shark": "shark.n.01", "shrew": "shrew.n.02", "skunk": "skunk.n.04", "skyscraper": "skyscraper.n.01",
    "snail": "snail.n.01", "snake": "snake.n.01", "spider": "spider.n.01", "squirrel": "squirrel.n.01",
    "streetcar": "streetcar.n.01", "sunflower": "sunflower.n.01", "sweet_pepper": "sweet_pepper.n.02",
    "table": "table.n.02", "tank": "tank.n.01", "telephone": "telephone.n.01",
    "television": "television_receiver.n.01", "tiger": "tiger.n.02", "tractor": "tractor.n.01",
    "train": "train.n.01", "trout": "trout.n.02", "tulip": "tulip.n.01", "turtle": "turtle.n.02",
    "wardrobe": "wardrobe.n.01", "whale": "whale.n.02", "willow_tree": "willow.n.01", "wolf": "wolf.n.01",
    "woman": "woman.n.01", "worm": "worm.n.01",
}
WORDNET_TREE_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                 "data", "cifar100", "wordnet_tree.tsv")


def build_wordnet_class_tree(wn) -> dict[str, str]:
    """Class tree of the 100 CIFAR classes from WordNet 3.0 (``wn``: an nltk WordNet reader).

    Each class hangs under its synset's chain of hypernyms up to entity.n.01, taking at every
    step the hypernym whose name sorts first (one fixed choice everywhere makes the union of the
    chains a tree, and does not depend on the reader's ordering). Internal synsets with a single
    child are then removed, so that a node's height counts branchings, not WordNet's uneven
    chain lengths. Returns child -> parent with class names as leaves and synset names above."""
    parent: dict[str, str] = {}
    for cls in FINE_LABEL_NAMES:
        node = wn.synset(WORDNET_SENSES[cls])
        parent[cls] = node.name()
        while True:
            # nltk versions disagree on the order of hypernyms; the name order does not.
            ups = sorted(node.hypernyms() or node.instance_hypernyms(), key=lambda s: s.name())
            if not ups:
                break
            parent.setdefault(node.name(), ups[0].name())
            node = ups[0]
    children: dict[str, list[str]] = {}
    for child, par in parent.items():
        children.setdefault(par, []).append(child)
    # Splice out single-child internal nodes (bottom-up order does not matter for splicing).
    for node in list(children):
        kids = children[node]
        if len(kids) == 1 and node in parent:
            (kid,) = kids
            up = parent.pop(node)
            parent[kid] = up
            children[up] = [kid if c == node else c for c in children[up]]
            del children[node]
    # A root with a single child is spliced too: the tree's root is where the classes first split.
    tops = {p for p in parent.values() if p not in parent}
    while len(tops) == 1:
        (top,) = tops
        kids = [c for c, p in parent.items() if p == top]
        if len(kids) != 1:
            break
        del parent[kids[0]]
        tops = {kids[0]}
    return parent


def load_wordnet_class_tree(path: str = WORDNET_TREE_FILE) -> dict[str, str]:
    """The shipped WordNet-based CIFAR-100 class tree (child -> parent), for deeper mAHP."""
    tree = {}
    with open(path) as fh:
        for line in fh:
            if line.strip() and not line.startswith("#"):
                child, par = line.rstrip("\n").split("\t")
                tree[child] = par
    missing = set(FINE_LABEL_NAMES) - set(tree)
    if missing:
        raise ValueError(f"{path} lacks classes {sorted(missing)[:5]}")
    return tree


# --- Barz & Denzler's WordNet-based CIFAR-100 hierarchy (shipped; the default for mAHP) ------



def _read_id_lines(path: str, what: str) -> list[tuple[str, str]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split(None, 1)
            if len(parts) != 2 or not parts[0].isdigit():
                raise ValueError(f"{path}:{number}: expected '{what}', got {line.rstrip()!r}")
            rows.append((parts[0], parts[1].strip()))
    return rows


def load_barz_denzler_hierarchy(directory: str = DATA_DIR) -> dict[str, str]:
    """Barz & Denzler's CIFAR-100 class hierarchy as child -> parent names.

    Reads ``cifar.parent-child.txt`` ("PARENT_ID CHILD_ID" per line) and ``class_names.txt``
    ("ID NAME"; ids 0-99 are the CIFAR-100 fine classes in the official label order, ids >= 100
    inner WordNet nodes, e.g. 125 feline, root 108 entity). Leaves come back as the CIFAR fine
    label names; inner nodes by their name. Checks that the edges form one tree whose leaves are
    exactly the 100 classes."""
    names_path = os.path.join(directory, BARZ_DENZLER_NAMES)
    edges_path = os.path.join(directory, BARZ_DENZLER_EDGES)
    names = dict(_read_id_lines(names_path, "ID NAME"))
    fine_ids = [str(i) for i in range(len(FINE_LABEL_NAMES))]
    if [names.get(i) for i in fine_ids] != list(FINE_LABEL_NAMES):
        raise ValueError(f"{names_path}: ids 0-99 must name the CIFAR-100 fine classes in label order")
    if len(set(names.values())) != len(names):
        raise ValueError(f"{names_path}: node names must be unique")
    parent_id: dict[str, str] = {}
    for par, child in _read_id_lines(edges_path, "PARENT_ID CHILD_ID"):
        if not child.isdigit() or par not in names or child not in names:
            raise ValueError(f"{edges_path}: edge {par} {child} names an id not in {names_path}")
        if parent_id.setdefault(child, par) != par:
            raise ValueError(f"{edges_path}: node {child} ({names[child]}) has two parents; "
                             "expected a tree")
    inner = set(parent_id.values())
    leaves = sorted((set(parent_id) | inner) - inner, key=int)
    if leaves != fine_ids:
        raise ValueError(f"{edges_path}: the leaves must be exactly the 100 CIFAR-100 classes (ids 0-99)")
    roots = inner - set(parent_id)
    if len(roots) != 1:
        raise ValueError(f"{edges_path}: expected one root, found {len(roots)}")
    return {names[c]: names[p] for c, p in parent_id.items()}


def cifar100_class_hierarchy(hierarchy: str = DEFAULT_HIERARCHY, raw: dict | None = None) -> dict[str, str]:
    """The CIFAR-100 class tree named ``hierarchy`` (one of HIERARCHIES) as child -> parent.
    "superclasses" is read from the archive ``raw`` (read_cifar100) when given, else from
    SUPERCLASSES."""
    from hkd_core.models.base import check_choice

    check_choice("hierarchy", hierarchy, HIERARCHIES)
    if hierarchy == "barz-denzler":
        return load_barz_denzler_hierarchy()
    if hierarchy == "wordnet":
        return load_wordnet_class_tree()
    if raw is not None:
        return cifar100_hierarchy(raw)
    return dict(_SUPERCLASS_OF)


# The paper's Fig. 2b / Fig. 4 look at two superclasses (5 classes each) at a time.
FIG4_SUPERCLASSES = ("large_carnivores", "large_omnivores_and_herbivores")


def load_cifar100_superclasses(superclasses=FIG4_SUPERCLASSES, **options) -> Dataset:
    """CIFAR-100 features (``load_cifar100(**options)``) restricted to the train and test images
    of the given superclasses, keeping the split: the data of the paper's Fig. 4 view."""
    superclasses = tuple(superclasses)
    ds = load_cifar100(**options)
    coarse = np.asarray(ds.extra["coarse_labels"])
    known = sorted(set(coarse.tolist()))
    unknown = [s for s in superclasses if s not in known]
    if unknown or len(superclasses) < 1:
        raise ValueError(f"superclasses must be names from {known}, got {list(superclasses)}")
    keep = np.flatnonzero(np.isin(coarse, superclasses))
    position = {row: i for i, row in enumerate(keep)}
    sub = ds.subset(keep, name="cifar100:" + "+".join(superclasses))
    sub.train_idx = np.array([position[r] for r in ds.train_idx if r in position], dtype=np.int64)
    sub.test_idx = np.array([position[r] for r in ds.test_idx if r in position], dtype=np.int64)
    sub.extra.update({"coarse_labels": coarse[keep].tolist(), "superclasses": list(superclasses)})
    return sub
