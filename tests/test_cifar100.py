"""CIFAR-100 pipeline on a synthetic archive in the official format: safe reading, hierarchy,
wide-ResNet features with caching, refusal of hostile archives. Never touches the real data."""
import hashlib
import io
import os
import pickle
import pickletools
import tarfile
import urllib.error

import numpy as np
import pytest
import torch

from hkd_core import backbone as bb
from hkd_core.datasets import cifar100 as c100
from hkd_core.datasets.cifar100 import (
    COARSE_LABEL_NAMES, FINE_LABEL_NAMES, SUPERCLASSES, UnsafeArchiveError, availability,
    cifar100_hierarchy, download_cifar100, load_cifar100, read_cifar100, restricted_loads,
    write_cifar100_archive,
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return write_cifar100_archive(tmp_path_factory.mktemp("cifar"), n_train=300, n_test=120, seed=0)


@pytest.fixture(scope="module")
def raw(archive):
    return read_cifar100(archive)


def _tar_with(path, members):
    """members: list of (TarInfo-kwargs dict, bytes or None)."""
    with tarfile.open(path, "w:gz") as tar:
        for info_kwargs, payload in members:
            info = tarfile.TarInfo(info_kwargs.pop("name"))
            for k, v in info_kwargs.items():
                setattr(info, k, v)
            if payload is not None:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                tar.addfile(info)
    return str(path)


def _member_bytes(archive, key):
    with tarfile.open(archive) as tar:
        return tar.extractfile(f"cifar-100-python/{key}").read()


# --- format ------------------------------------------------------------------------------------

def test_archive_is_in_the_official_format(archive):
    with tarfile.open(archive, "r:gz") as tar:
        names = set(tar.getnames())
    assert {"cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"} <= names
    train = _member_bytes(archive, "train")
    ops = list(pickletools.genops(train))
    assert ops[0][0].name == "PROTO" and ops[0][1] == 2
    globals_used = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    # Python-2 numpy names, strings as py2 str opcodes, no Python-3-only constructs.
    assert globals_used == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert "BINUNICODE" not in {op.name for op, _, _ in ops}
    # Our own file, so a plain unpickler is fine here: bytes keys as in the official pickles.
    obj = pickle.loads(train, encoding="bytes")
    assert set(obj) == {b"data", b"fine_labels", b"coarse_labels", b"filenames", b"batch_label"}
    assert obj[b"data"].dtype == np.uint8 and obj[b"data"].shape == (300, 3072)
    assert isinstance(obj[b"filenames"][0], bytes) and isinstance(obj[b"fine_labels"][0], int)
    meta = pickle.loads(_member_bytes(archive, "meta"), encoding="bytes")
    assert [n.decode() for n in meta[b"fine_label_names"]] == list(FINE_LABEL_NAMES)
    assert [n.decode() for n in meta[b"coarse_label_names"]] == list(COARSE_LABEL_NAMES)


def test_real_class_names_are_sorted_and_complete():
    assert len(FINE_LABEL_NAMES) == 100 and len(COARSE_LABEL_NAMES) == 20
    assert FINE_LABEL_NAMES[0] == "apple" and FINE_LABEL_NAMES[-1] == "worm"
    assert COARSE_LABEL_NAMES[0] == "aquatic_mammals" and COARSE_LABEL_NAMES[-1] == "vehicles_2"
    assert all(len(v) == 5 for v in SUPERCLASSES.values())


def test_read_archive_shapes_and_labels(raw):
    for split, n in (("train", 300), ("test", 120)):
        s = raw[split]
        assert s["images"].shape == (n, 32, 32, 3) and s["images"].dtype == np.uint8
        assert s["fine_labels"].shape == (n,) and s["coarse_labels"].shape == (n,)
        assert len(s["filenames"]) == n and s["filenames"][0].endswith(".png")
        for f, c in zip(s["fine_labels"], s["coarse_labels"]):
            assert raw["fine_label_names"][f] in SUPERCLASSES[raw["coarse_label_names"][c]]
    assert len(set(raw["train"]["filenames"]) | set(raw["test"]["filenames"])) == 420


def test_rows_are_channel_major(tmp_path):
    # One image whose red plane is 10, green 20, blue 30 must read back as pixels (10, 20, 30).
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    split = {b"filenames": [b"x.png"], b"batch_label": b"b", b"fine_labels": [3], b"coarse_labels": [0],
             b"data": row[None, :]}
    meta = {b"fine_label_names": [n.encode() for n in FINE_LABEL_NAMES],
            b"coarse_label_names": [n.encode() for n in COARSE_LABEL_NAMES]}
    w = c100._Py2PickleWriter
    path = _tar_with(tmp_path / "a.tar.gz", [({"name": "cifar-100-python/train"}, w().dumps(split)),
                                             ({"name": "cifar-100-python/test"}, w().dumps(split)),
                                             ({"name": "cifar-100-python/meta"}, w().dumps(meta))])
    out = read_cifar100(path)
    assert out["train"]["images"].shape == (1, 32, 32, 3)
    assert np.all(out["train"]["images"][0] == [10, 20, 30])


def test_extracted_folder_and_parent_dir_read_the_same(archive, raw, tmp_path):
    with tarfile.open(archive) as tar:  # our own trusted file
        tar.extractall(tmp_path, filter="data")
    for source in (tmp_path, tmp_path / "cifar-100-python", os.path.dirname(archive)):
        other = read_cifar100(source)
        assert other["fingerprint"] == raw["fingerprint"]
        assert np.array_equal(other["test"]["images"], raw["test"]["images"])


def test_missing_data_gives_instructions(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-python.tar.gz"):
        read_cifar100(tmp_path)
    ok, message = availability(tmp_path)
    assert not ok and "download" in message


def test_hierarchy_is_20_by_5_from_the_archive(raw):
    hierarchy = cifar100_hierarchy(raw)
    assert len(hierarchy) == 100
    children = {}
    for fine, coarse in hierarchy.items():
        children.setdefault(coarse, set()).add(fine)
    assert len(children) == 20 and all(len(v) == 5 for v in children.values())
    assert children == {k: set(v) for k, v in SUPERCLASSES.items()}


def test_hierarchy_conflict_is_reported(raw):
    bad = {**raw, "train": dict(raw["train"])}
    coarse = raw["train"]["coarse_labels"].copy()
    coarse[0] = (coarse[0] + 1) % 20
    bad["train"]["coarse_labels"] = coarse
    with pytest.raises(ValueError, match="two superclasses"):
        cifar100_hierarchy(bad)


# --- hostile input -----------------------------------------------------------------------------

class _OpensAFile:
    """Unpickling this calls open(path, 'w'): a stand-in for any code execution."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_payload_would_run_under_plain_pickle(tmp_path):
    # Control: the payload is live (a careless loader creates the file) ...
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_OpensAFile(marker), protocol=2)).close()
    assert marker.exists()


@pytest.mark.parametrize("as_folder", [False, True])
def test_hostile_pickle_is_refused_and_not_executed(archive, tmp_path, as_folder):
    # ... but read_cifar100 refuses it and nothing runs.
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _OpensAFile(marker)}, protocol=2)
    meta, test = _member_bytes(archive, "meta"), _member_bytes(archive, "test")
    if as_folder:
        folder = tmp_path / "cifar-100-python"
        folder.mkdir()
        for name, payload in (("train", evil), ("test", test), ("meta", meta)):
            (folder / name).write_bytes(payload)
        source = folder
    else:
        source = _tar_with(tmp_path / "evil.tar.gz", [({"name": "cifar-100-python/meta"}, meta),
                                                      ({"name": "cifar-100-python/test"}, test),
                                                      ({"name": "cifar-100-python/train"}, evil)])
    with pytest.raises(UnsafeArchiveError, match="refused to load"):
        read_cifar100(source)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps(np.array([1, "x"], dtype=object), protocol=2),       # object array
    b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.",             # builtins.eval('1+1')
    b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.",               # os.system('true')
    b"\x80\x02cnumpy\nndarray\nK\x05\x85R.",                           # calling ndarray directly
])
def test_restricted_unpickler_refuses_non_array_globals(payload):
    with pytest.raises(UnsafeArchiveError):
        restricted_loads(payload)


def test_restricted_unpickler_reads_python3_pickles_of_arrays():
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = restricted_loads(pickle.dumps({b"data": arr, b"names": [b"a"]}, protocol=2))
    assert np.array_equal(out[b"data"], arr) and out[b"names"] == [b"a"]


def test_corrupt_pickle_is_a_clear_error():
    with pytest.raises(ValueError, match="not a readable CIFAR pickle"):
        restricted_loads(b"\x80\x02}q\x00(")


@pytest.mark.parametrize("member", [
    {"name": "../escape"},
    {"name": "cifar-100-python/../../escape"},
    {"name": "/tmp/escape-abs"},
    {"name": "cifar-100-python/train", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"},
    {"name": "cifar-100-python/train", "type": tarfile.LNKTYPE, "linkname": "cifar-100-python/meta"},
    {"name": "cifar-100-python/dev", "type": tarfile.CHRTYPE},
])
def test_unsafe_tar_members_are_refused(archive, tmp_path, member):
    meta = _member_bytes(archive, "meta")
    payload = None if member.get("type") in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE) else b"x"
    path = _tar_with(tmp_path / "bad.tar.gz", [({"name": "cifar-100-python/meta"}, meta), (dict(member), payload)])
    before = set(os.listdir(tmp_path)) | set(os.listdir(tmp_path.parent))
    with pytest.raises(UnsafeArchiveError):
        read_cifar100(path)
    assert set(os.listdir(tmp_path)) | set(os.listdir(tmp_path.parent)) == before
    assert not os.path.exists("/tmp/escape-abs")


def test_oversized_member_is_refused(archive, monkeypatch):
    monkeypatch.setattr(c100, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(UnsafeArchiveError, match="bytes"):
        read_cifar100(archive)


# --- download ----------------------------------------------------------------------------------

def test_download_offline_is_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(c100.urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match="--data-dir"):
        download_cifar100(tmp_path)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ConnectionError):
        load_cifar100(tmp_path / "empty", download=True, cache_dir=tmp_path / "cache")


def test_download_checks_md5(archive, tmp_path):
    md5 = hashlib.md5(open(archive, "rb").read()).hexdigest()
    url = "file://" + os.path.abspath(archive)
    got = download_cifar100(tmp_path / "ok", url=url, md5=md5)
    assert read_cifar100(got)["test"]["images"].shape == (120, 32, 32, 3)
    with pytest.raises(ValueError, match="md5"):
        download_cifar100(tmp_path / "bad", url=url, md5="0" * 32)
    assert os.listdir(tmp_path / "bad") == []


# --- backbone ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [("wrn-28-10", (28, 10)), ("WRN-16-2", (16, 2)), ("wrn-10-1", (10, 1))])
def test_parse_backbone(name, expected):
    assert bb.parse_backbone(name) == expected


@pytest.mark.parametrize("name, match", [
    ("wrn-27-10", "6n\\+4"), ("wrn-4-1", "6n\\+4"), ("wrn-28-0", "width"), ("resnet50", "wrn-DEPTH-WIDTH"),
    ("wrn-28", "wrn-DEPTH-WIDTH"), (28, "string"),
])
def test_parse_backbone_errors(name, match):
    with pytest.raises(ValueError, match=match):
        bb.parse_backbone(name)


def test_wide_resnet_shapes_and_weights_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = bb.WideResNet(16, 2, num_classes=7, dropout=0.0).eval()
    x = torch.rand(3, 3, 32, 32) * 255
    assert model.features(x).shape == (3, 128)
    assert model(x).shape == (3, 7)
    path = str(tmp_path / "w.pt")
    bb.save_backbone(model, path)
    config = bb.BackboneConfig("wrn-16-2", dropout=0.0)
    again = bb.load_backbone(path, config, num_classes=7)
    with torch.no_grad():
        assert torch.allclose(again(x), model(x))


def test_random_crop_flip_takes_windows_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    img = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32).repeat(8, 3, 1, 1) + 1
    out = bb.random_crop_flip(img, g)
    assert out.shape == img.shape
    padded = torch.nn.functional.pad(img[0], (4, 4, 4, 4))
    for b in range(8):
        windows = [padded[:, y:y + 32, x:x + 32] for y in range(9) for x in range(9)]
        windows += [w.flip(2) for w in windows]
        assert any(torch.equal(out[b], w) for w in windows)


def test_learning_rate_schedules():
    step = bb.BackboneConfig(epochs=100, lr=0.1, schedule="step")
    assert bb.learning_rate_at(step, 0) == pytest.approx(0.1)
    assert bb.learning_rate_at(step, 35) == pytest.approx(0.02)
    assert bb.learning_rate_at(step, 99) == pytest.approx(0.1 * 0.2 ** 3)
    cos = bb.BackboneConfig(epochs=100, lr=0.1, schedule="cosine")
    assert bb.learning_rate_at(cos, 50) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="schedule"):
        bb.BackboneConfig(schedule="linear").validate()


# --- load_cifar100 end to end ------------------------------------------------------------------

TINY = dict(backbone="wrn-10-1", backbone_epochs=1, limit=60, batch_size=20, seed=0, device="cpu")


def test_load_cifar100_trains_extracts_and_caches(archive, tmp_path, monkeypatch):
    epochs = []
    ds = load_cifar100(archive, cache_dir=tmp_path, progress=epochs.append, **TINY)
    assert ds.X.shape == (120, 64) and ds.X.dtype == np.float32
    assert ds.train_idx.tolist() == list(range(60)) and ds.test_idx.tolist() == list(range(60, 120))
    raw = read_cifar100(archive)
    assert ds.names == raw["train"]["filenames"][:60] + raw["test"]["filenames"][:60]
    assert ds.labels[0] == FINE_LABEL_NAMES[raw["train"]["fine_labels"][0]]
    assert ds.labels[60] == FINE_LABEL_NAMES[raw["test"]["fine_labels"][0]]
    # the default class tree for mAHP is Barz & Denzler's (shipped in data/cifar100/)
    assert ds.extra["hierarchy"] == "barz-denzler"
    assert ds.hierarchy == c100.load_barz_denzler_hierarchy()
    assert set(ds.labels) <= set(ds.hierarchy) - set(ds.hierarchy.values())
    assert ds.metric == "euclidean"
    assert [e["epoch"] for e in epochs] == [1] and epochs[0]["stage"] == "backbone"
    assert ds.extra["trained_in_this_call"] is True
    assert 0.0 <= ds.extra["backbone_test_accuracy"] <= 1.0
    # the flat 20 x 5 tree stays available (same cached features)
    flat = load_cifar100(archive, cache_dir=tmp_path, hierarchy="superclasses", **TINY)
    assert flat.extra["trained_in_this_call"] is False and np.array_equal(flat.X, ds.X)
    assert len(flat.hierarchy) == 100 and len(set(flat.hierarchy.values())) == 20
    assert all(flat.hierarchy[f] == c for f, c in zip(flat.labels, flat.extra["coarse_labels"]))
    # the page's images and colour-by columns: each row's own 32 x 32 picture, its superclass
    assert ds.extra["images"].shape == (120, 32, 32, 3)
    np.testing.assert_array_equal(ds.extra["images"][60], raw["test"]["images"][0])
    assert ds.metadata_columns()["superclass"] == ds.extra["coarse_labels"]
    assert ds.metadata_columns()["split"][59:61] == ["train", "test"]

    # Second call: same configuration -> cached features, no training, no weight loading.
    def must_not_train(*a, **k):
        raise AssertionError("backbone retrained although its features are cached")

    monkeypatch.setattr(bb, "train_backbone", must_not_train)
    again = load_cifar100(archive, cache_dir=tmp_path, **TINY)
    assert np.array_equal(again.X, ds.X) and again.extra["trained_in_this_call"] is False

    # Features gone but weights cached: extract again from the saved weights, still no training.
    os.remove(ds.extra["feature_cache"])
    rebuilt = load_cifar100(archive, cache_dir=tmp_path, **TINY)
    assert np.allclose(rebuilt.X, ds.X, atol=1e-5)

    # A different configuration is a different cache entry (and would train).
    with pytest.raises(AssertionError, match="retrained"):
        load_cifar100(archive, cache_dir=tmp_path, **{**TINY, "seed": 1})


def test_cancelling_from_progress_leaves_no_cache(archive, tmp_path):
    class Stop(Exception):
        pass

    def cancel(info):
        raise Stop

    with pytest.raises(Stop):
        load_cifar100(archive, cache_dir=tmp_path, progress=cancel, **TINY)
    assert not [f for f in os.listdir(tmp_path) if f.endswith((".npy", ".pt"))]


@pytest.mark.parametrize("kwargs, match", [
    ({"backbone": "wrn-11-1"}, "6n\\+4"), ({"limit": 1}, "limit"), ({"backbone_epochs": -1}, "backbone_epochs"),
    ({"hierarchy": "flat"}, "hierarchy must be one of"),
])
def test_load_cifar100_bad_parameters(archive, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_cifar100(archive, cache_dir=tmp_path, **{**TINY, **kwargs})


def test_features_to_codes_to_mahp(archive, tmp_path):
    """The issue's CI path: archive -> backbone (1 epoch) -> HKD -> metrics incl. mAHP@250."""
    hkd = pytest.importorskip("hkd_core.models.hkd")
    from hkd_core.hierarchical_retrieval import mean_average_hierarchical_precision

    ds = load_cifar100(archive, cache_dir=tmp_path, **TINY)
    model = hkd.HKD(K=4, D=4, hidden=(16,), epochs=2, batch_size=32, n_kmeans_exemplars=10,
                    n_random_exemplars=10, perplexities=(5.0,), random_state=0, device="cpu").fit(ds.X[ds.train_idx])
    codes = model.transform(ds.X[ds.test_idx])
    test_labels = [ds.labels[i] for i in ds.test_idx]
    score = mean_average_hierarchical_precision(codes, test_labels, ds.hierarchy, k=250)
    assert codes.shape == (60, 4)
    assert 0.0 < score <= 1.0


# --- Barz & Denzler's class hierarchy (shipped data, the default for mAHP) ---------------------

def test_shipped_barz_denzler_hierarchy_is_one_tree_over_the_100_classes():
    tree = c100.load_barz_denzler_hierarchy()
    leaves = set(tree) - set(tree.values())
    assert leaves == set(FINE_LABEL_NAMES) and len(leaves) == 100
    assert {p for p in tree.values() if p not in tree} == {"entity"}      # one root
    assert len(tree) == 162                                               # 163 nodes, one parent each
    assert tree["lion"] == "feline" and tree["feline"] == "carnivore" and tree["wolf"] == "canine"


def test_shipped_barz_denzler_similarities_by_hand():
    from hkd_core.hierarchical_retrieval import class_similarity_from_hierarchy

    tree = c100.load_barz_denzler_hierarchy()

    def depth(node):
        d = 0
        while node in tree:
            node, d = tree[node], d + 1
        return d

    # the deepest leaves are 8 edges below the root, so height(root) = 8
    assert max(depth(leaf) for leaf in FINE_LABEL_NAMES) == 8
    nodes, sim = class_similarity_from_hierarchy(tree)
    i = {n: j for j, n in enumerate(nodes)}
    # lion, tiger: lca feline (height 1: its children are leaves) -> 1 - 1/8
    assert sim[i["lion"], i["tiger"]] == pytest.approx(7 / 8)
    # lion, wolf: lca carnivore > {feline > lion, canine > wolf, ...} (height 2) -> 1 - 2/8
    assert sim[i["lion"], i["wolf"]] == pytest.approx(6 / 8)
    # lion, bicycle: only the root (entity) in common -> 0; a class with itself -> 1
    assert sim[i["lion"], i["bicycle"]] == 0.0
    assert sim[i["lion"], i["lion"]] == 1.0


def test_cifar100_class_hierarchy_options():
    assert c100.cifar100_class_hierarchy() == c100.load_barz_denzler_hierarchy()
    flat = c100.cifar100_class_hierarchy("superclasses")
    assert flat["lion"] == "large_carnivores" and len(set(flat.values())) == 20
    assert c100.cifar100_class_hierarchy("wordnet") == c100.load_wordnet_class_tree()
    with pytest.raises(ValueError, match="hierarchy must be one of"):
        c100.cifar100_class_hierarchy("superclass")


def test_barz_denzler_loader_refuses_a_broken_copy(tmp_path):
    import shutil

    for name in (c100.BARZ_DENZLER_EDGES, c100.BARZ_DENZLER_NAMES):
        shutil.copy(os.path.join(c100.DATA_DIR, name), tmp_path / name)
    edges = (tmp_path / c100.BARZ_DENZLER_EDGES).read_text()
    (tmp_path / c100.BARZ_DENZLER_EDGES).write_text(edges + "125 97\n")   # wolf under feline too
    with pytest.raises(ValueError, match="two parents"):
        c100.load_barz_denzler_hierarchy(str(tmp_path))


# --- WordNet class tree (shipped data) ---------------------------------------------------------

def test_shipped_wordnet_tree_is_a_tree_over_the_100_classes():
    from hkd_core.hierarchical_retrieval import class_similarity_from_hierarchy

    tree = c100.load_wordnet_class_tree()
    leaves = set(tree) - set(tree.values())
    assert leaves == set(FINE_LABEL_NAMES)
    assert {p for p in tree.values() if p not in tree} == {"entity.n.01"}
    nodes, sim = class_similarity_from_hierarchy(tree)
    i = {n: j for j, n in enumerate(nodes)}
    # closer relatives are more similar
    assert sim[i["lion"], i["tiger"]] > sim[i["lion"], i["wolf"]] > sim[i["lion"], i["bicycle"]]


def test_shipped_wordnet_tree_matches_its_builder():
    from hkd_core.datasets.wordnet import open_wordnet, wordnet_available

    if not wordnet_available()[0]:
        pytest.skip("WordNet 3.0 not installed")
    assert c100.build_wordnet_class_tree(open_wordnet()) == c100.load_wordnet_class_tree()
