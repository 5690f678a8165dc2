"""Uploads: every malformed file gets its own readable message; good files round-trip."""
from __future__ import annotations

import base64
import io
import pathlib

import numpy as np
import pandas as pd
import pytest

from hkd_core.datasets.base import Dataset
from hkd_core.uploads import (
    MAX_UPLOAD_BYTES,
    MIN_ROWS,
    UploadError,
    decode_upload_content,
    parse_embedding_upload,
)


def npy_bytes(array, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, engine="pyarrow", index=False)
    return buf.getvalue()


def data_url(raw: bytes, mime="text/csv") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def upload_error(filename, content, **kw) -> str:
    with pytest.raises(UploadError) as info:
        parse_embedding_upload(filename, content, **kw)
    return str(info.value)


# ------------------------------------------------------------------------------- good uploads

def test_csv_with_header_names_and_labels():
    ds = parse_embedding_upload("animals.csv", b"name,label,x,y\ndog.n.01,canine,1,2\ncat.n.01,feline,3,4.5\n")
    assert isinstance(ds, Dataset)
    assert ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X, [[1, 2], [3, 4.5]])
    assert ds.names == ["dog.n.01", "cat.n.01"]
    assert ds.labels == ["canine", "feline"]
    assert ds.metric == "euclidean"
    assert ds.extra["warnings"] == []
    assert ds.name == "upload:animals.csv"


def test_csv_without_header_gets_row_names():
    ds = parse_embedding_upload("v.csv", b"1,2,3\n4,5,6\n7,8,9\n")
    assert ds.X.shape == (3, 3)
    assert ds.names == ["row_0", "row_1", "row_2"]
    assert ds.labels is None


def test_alternative_column_names_and_priority():
    ds = parse_embedding_upload("v.csv", b"id,word,Category,x\n7,dog,a,1\n8,cat,b,2\n")
    assert ds.names == ["dog", "cat"]  # word is preferred to id; id is never a dimension
    assert ds.labels == ["a", "b"]
    assert ds.X.shape == (2, 1)
    assert any("'id'" in w for w in ds.extra["warnings"])


def test_glove_style_text_and_word2vec_preamble():
    glove = parse_embedding_upload("glove.txt", b"dog 0.1 0.2\ncat  0.3 0.4\n\nemu 0.5 0.6\n")
    assert glove.names == ["dog", "cat", "emu"]
    np.testing.assert_allclose(glove.X[2], [0.5, 0.6], rtol=1e-6)
    w2v = parse_embedding_upload("w2v.txt", b"2 3\ndog 1 2 3\ncat 4 5 6\n")
    assert w2v.X.shape == (2, 3) and w2v.names == ["dog", "cat"]
    assert any("word2vec" in w for w in w2v.extra["warnings"])


def test_tsv_and_semicolon_csv():
    tsv = parse_embedding_upload("v.tsv", b"name\tx\ty\na\t1\t2\nb\t3\t4\n")
    assert tsv.names == ["a", "b"] and tsv.X.shape == (2, 2)
    semi = parse_embedding_upload("v.csv", b"x;y\n1;2\n3;4\n")
    np.testing.assert_allclose(semi.X, [[1, 2], [3, 4]])


def test_quoted_names_with_separators():
    ds = parse_embedding_upload("v.csv", b'name,x\n"dog, domestic",1\n"cat",2\n')
    assert ds.names == ["dog, domestic", "cat"]


def test_saved_pandas_index_is_not_a_dimension():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 7.0]})
    ds = parse_embedding_upload("v.csv", frame.to_csv().encode())  # index written under ""
    np.testing.assert_allclose(ds.X, frame.to_numpy())
    assert any("row index" in w for w in ds.extra["warnings"])


def test_data_url_decoding():
    raw = b"name,x,y\na,1,2\nb,3,4\n"
    ds = parse_embedding_upload("v.csv", data_url(raw))
    assert ds.names == ["a", "b"]
    assert decode_upload_content(data_url(raw, mime="")) == raw
    assert decode_upload_content("data:text/csv,1%2C2%0A3%2C4") == b"1,2\n3,4"
    assert "not valid base64" in upload_error("v.csv", "data:text/csv;base64,@@not base64@@")


def test_npy_round_trip():
    X = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    ds = parse_embedding_upload("emb.npy", npy_bytes(X))
    np.testing.assert_array_equal(ds.X, X)
    assert ds.names == [f"row_{i}" for i in range(5)]
    ints = parse_embedding_upload("emb.npy", data_url(npy_bytes(np.arange(6).reshape(3, 2)), "application/octet-stream"))
    np.testing.assert_array_equal(ints.X, [[0, 1], [2, 3], [4, 5]])


def test_parquet_round_trip_with_columns_and_list_column():
    frame = pd.DataFrame({"name": ["a", "b", "c"], "label": ["p", "q", "p"], "x": [1.0, 2.0, 3.0], "y": [0, 1, 2]})
    ds = parse_embedding_upload("emb.parquet", parquet_bytes(frame))
    assert ds.names == ["a", "b", "c"] and ds.labels == ["p", "q", "p"]
    np.testing.assert_allclose(ds.X, frame[["x", "y"]].to_numpy())
    lists = pd.DataFrame({"entity": ["a", "b"], "embedding": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]})
    ds = parse_embedding_upload("emb.parquet", parquet_bytes(lists))
    assert ds.names == ["a", "b"]
    np.testing.assert_allclose(ds.X, [[1, 2, 3], [4, 5, 6]])


# ---------------------------------------------------------------------------- malformed files

def test_empty_files():
    assert "is empty (0 bytes)" in upload_error("v.csv", b"")
    assert "is empty (0 bytes)" in upload_error("v.npy", data_url(b""))
    assert "is empty (no rows)" in upload_error("v.csv", b"\n  \n\n")
    assert "header but no data rows" in upload_error("v.csv", b"name,x,y\n")
    assert "is empty (no rows)" in upload_error("v.npy", npy_bytes(np.zeros((0, 3))))
    assert "is empty (no rows)" in upload_error("v.parquet", parquet_bytes(pd.DataFrame({"x": pd.Series([], dtype=float)})))


def test_one_row_names_the_minimum():
    assert MIN_ROWS == 2
    for filename, content in [("v.csv", b"x,y\n1,2\n"), ("v.npy", npy_bytes(np.ones((1, 4)))),
                              ("v.parquet", parquet_bytes(pd.DataFrame({"x": [1.0]})))]:
        message = upload_error(filename, content)
        assert "has 1 row" in message and "need at least 2 rows" in message


def test_non_numeric_cell_names_column_and_row():
    message = upload_error("v.csv", b"name,x,y\na,1,2\nb,3,oops\nc,5,6\n")
    assert "column 'y'" in message and "row 2" in message and "line 3" in message and "'oops'" in message
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": ["3", "q"]})
    message = upload_error("v.parquet", parquet_bytes(frame))
    assert "column 'y'" in message and "row 2" in message and "'q'" in message


def test_no_numeric_columns():
    assert "no numeric columns" in upload_error("v.csv", b"name,label\ndog,a\ncat,b\n")


def test_ragged_rows():
    longer = upload_error("v.csv", b"x,y\n1,2\n3,4,5\n6,7\n")
    assert "ragged rows" in longer and "line 3 has 3 fields" in longer and "line 1 has 2" in longer
    shorter = upload_error("v.csv", b"x,y\n1,2\n\n3\n6,7\n")
    assert "ragged rows" in shorter and "line 4 has 1 field " in shorter
    text = upload_error("v.txt", b"dog 1 2\ncat 3\n")
    assert "ragged rows" in text and "line 2" in text
    lists = pd.DataFrame({"embedding": [[1.0, 2.0], [3.0], [4.0, 5.0]]})
    assert "ragged rows" in upload_error("v.parquet", parquet_bytes(lists))


def test_nan_and_inf_counted_with_first_row():
    message = upload_error("v.csv", b"x,y\n1,2\n3,nan\n5,inf\n,6\n")
    assert "2 missing or NaN values" in message and "1 infinite value" in message
    assert "first in row 2" in message and "column 'y'" in message
    X = np.ones((4, 2))
    X[3, 1] = -np.inf
    message = upload_error("v.npy", npy_bytes(X))
    assert "1 infinite value" in message and "row 4" in message and "NaN" not in message


def test_too_large_bytes_rows_and_columns():
    assert "too large" in upload_error("v.csv", b"1,2\n3,4\n", max_bytes=5)
    big_url = "data:text/csv;base64," + "A" * 4000
    assert "too large" in upload_error("v.csv", big_url, max_bytes=1000)
    assert MAX_UPLOAD_BYTES >= 10 * 1024 * 1024
    rows = b"".join(b"%d,%d\n" % (i, i) for i in range(20))
    assert "the limit is 10" in upload_error("v.csv", rows, max_rows=10)
    assert "the limit is 10" in upload_error("v.npy", npy_bytes(np.ones((11, 2))), max_rows=10)
    assert "the limit is 5" in upload_error("v.parquet", parquet_bytes(pd.DataFrame({"x": np.arange(6.0)})), max_rows=5)
    message = upload_error("v.npy", npy_bytes(np.ones((3, 8))), max_columns=4)
    assert "8 dimensions" in message and "the limit is 4" in message
    assert "the limit is 2" in upload_error("v.csv", b"1,2,3\n4,5,6\n", max_columns=2)


def test_unsupported_extension():
    message = upload_error("emb.xlsx", b"PK\x03\x04")
    assert "unsupported file type '.xlsx'" in message and ".csv" in message and ".parquet" in message
    assert "without an extension" in upload_error("embeddings", b"1,2\n3,4\n")


def test_corrupt_npy_and_parquet():
    assert "not a .npy file" in upload_error("v.npy", b"1,2\n3,4\n")
    good = npy_bytes(np.arange(12.0).reshape(6, 2))
    assert "corrupt .npy" in upload_error("v.npy", good[:-9])
    assert "corrupt .npy" in upload_error("v.npy", good[:12])  # header cut short
    assert "not a Parquet file" in upload_error("v.parquet", b"x,y\n1,2\n")
    pq = parquet_bytes(pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}))
    assert "corrupt Parquet" in upload_error("v.parquet", pq[:4] + b"\x00" * (len(pq) - 8) + pq[-4:])


def test_binary_data_in_a_text_extension():
    assert "not UTF-8 text" in upload_error("v.csv", b"\xff\xfe\x00\x81garbage")
    assert "binary file" in upload_error("v.csv", npy_bytes(np.ones((2, 2))))


class _Tripwire:
    """Unpickling this creates a file: proof that a loader executed content."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_object_npy_is_refused_without_unpickling(tmp_path):
    tripwire = tmp_path / "executed"
    array = np.empty(2, dtype=object)
    array[0] = _Tripwire(str(tripwire))
    array[1] = _Tripwire(str(tripwire))
    message = upload_error("evil.npy", npy_bytes(array, allow_pickle=True))
    assert "Python objects" in message and "unpickling" in message
    assert not tripwire.exists()


def test_structured_string_and_wrong_rank_npy():
    structured = np.zeros(3, dtype=[("a", "f4"), ("b", "f4")])
    assert "structured array (fields a, b)" in upload_error("v.npy", npy_bytes(structured))
    assert "need a numeric" in upload_error("v.npy", npy_bytes(np.array([["a", "b"], ["c", "d"]])))
    assert "shape (6,)" in upload_error("v.npy", npy_bytes(np.arange(6.0)))
    assert "shape (2, 2, 2)" in upload_error("v.npy", npy_bytes(np.ones((2, 2, 2))))


# ----------------------------------------------------------------------------------- warnings

def test_duplicate_names_made_unique_with_warning():
    ds = parse_embedding_upload("v.csv", b"name,x\ndog,1\ndog,2\ndog#2,3\ncat,4\n")
    assert len(set(ds.names)) == 4
    assert ds.names[0] == "dog" and ds.names[2] == "dog#2" and ds.names[3] == "cat"
    assert ds.names[1].startswith("dog#")
    assert any("1 duplicate name made unique" in w for w in ds.extra["warnings"])


def test_zero_variance_warnings():
    same = parse_embedding_upload("v.csv", b"1,2\n1,2\n1,2\n")
    assert any("zero variance" in w and "identical" in w for w in same.extra["warnings"])
    one_constant = parse_embedding_upload("v.csv", b"1,2\n1,3\n")
    assert any("1 of 2 dimensions are constant" in w for w in one_constant.extra["warnings"])


def test_missing_names_and_labels_are_filled():
    ds = parse_embedding_upload("v.csv", b"name,label,x\n,a,1\nb,,2\n")
    assert ds.names == ["row_0", "b"] and ds.labels == ["a", "(missing)"]
    assert len(ds.extra["warnings"]) == 2


# ------------------------------------------------------------------------------------- metric

def test_poincare_from_filename_or_hint():
    inside = b"0.1,0.2\n0.3,-0.4\n"
    assert parse_embedding_upload("mammals_poincare.csv", inside).metric == "poincare"
    assert parse_embedding_upload("v.csv", inside, metric="poincare").metric == "poincare"
    assert parse_embedding_upload("poincare.csv", inside, metric="euclidean").metric == "euclidean"
    outside = b"0.1,0.2\n0.9,0.9\n"
    ds = parse_embedding_upload("hyperbolic.csv", outside)
    assert ds.metric == "euclidean" and any("row 2 has norm" in w for w in ds.extra["warnings"])
    message = upload_error("v.csv", outside, metric="poincare")
    assert "unit ball" in message and "row 2" in message
    assert "metric must be one of" in upload_error("v.csv", inside, metric="cosine")


# --------------------------------------------------------------------- typed fast path for CSV

FAST_PATH_CASES = [
    ("v.csv", b"name,label,x,y\na,p,1,2\nb,q,3,4\nc,,5,6\nc,r, 7 ,8\n"),
    ("v.csv", b"1,2\n3,4\n5,6\n7,8\n9,10\n"),
    ("v.csv", b"x,y\n1,2\n3,4\n5,oops\n7,8\n"),
    ("v.csv", b"x,y\n1,2\n3,4\nNA,inf\n7,8\n"),
    ("v.csv", b",x,y\n0,1,2\n1,3,4\n2,5,7\n3,1,1\n"),
    ("v.csv", b"x,y\n1,2\n3,4\n   \n7,8\n"),
    ("v.txt", b"dog 1 2\ncat 3 4\nemu 5 6\nnan 7 8\n"),
    ("v.txt", b"1 2\n3 4\ndog 5 6\n"),
    ("v.tsv", b"word\tx\ny\ny\t1\t2\n"),
]


@pytest.mark.parametrize("filename,content", FAST_PATH_CASES)
def test_typed_fast_path_matches_text_path(monkeypatch, filename, content):
    """Big text files are parsed with typed columns after a look at their first rows; forcing
    that path on small files must give the same dataset or the same message as the text path."""
    import hkd_core.uploads as uploads

    def outcome():
        try:
            ds = parse_embedding_upload(filename, content)
        except UploadError as err:
            return str(err)
        return ds.X.tolist(), ds.names, ds.labels, ds.metric, ds.extra["warnings"]

    text_path = outcome()
    monkeypatch.setattr(uploads, "_HEAD_ROWS", 2)
    assert outcome() == text_path


def test_filename_must_be_one_string():
    """dcc.Upload(multiple=True) sends lists: ['v.csv'] used to give "unsupported file type '.csv']'"."""
    ds = parse_embedding_upload(["v.csv"], b"1,2\n3,4\n")
    assert ds.extra["filename"] == "v.csv" and ds.X.shape == (2, 2)
    assert parse_embedding_upload(("v.csv",), b"1,2\n3,4\n").name == "upload:v.csv"
    message = upload_error(["a.csv", "b.csv"], b"1,2\n3,4\n")
    assert "one file at a time" in message and "2 file names" in message and "']" not in message
    assert "no file name" in upload_error([], b"1,2\n3,4\n")
    assert "no file name" in upload_error(None, b"1,2\n3,4\n")
    assert "file name must be text, got int" in upload_error(12, b"1,2\n3,4\n")
    assert "file name must be text, got bytes" in upload_error(b"v.csv", b"1,2\n3,4\n")
    assert "file name must be text, got dict" in upload_error([{"name": "v.csv"}], b"1,2\n3,4\n")


def test_big_csv_is_parsed_by_pandas_without_hand_scans(monkeypatch):
    """A good CSV longer than the head is read by pandas (its first rows, then the whole file
    once with typed columns): no line-by-line scan in Python. Errors still name their line."""
    import hkd_core.uploads as uploads

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(3000, 4)).round(4), columns=list("abcd"))
    frame.insert(0, "name", [f"w{i}" for i in range(3000)])
    good = frame.to_csv(index=False).encode()
    calls = []
    real_read_csv = pd.read_csv

    def counting_read_csv(*args, **kwargs):
        calls.append(kwargs.get("nrows"))
        return real_read_csv(*args, **kwargs)

    def no_scan(*args, **kwargs):
        raise AssertionError("the good path scanned the text by hand")

    monkeypatch.setattr(uploads.pd, "read_csv", counting_read_csv)
    monkeypatch.setattr(uploads, "_check_ragged", no_scan)
    ds = parse_embedding_upload("big.csv", good)
    assert ds.X.shape == (3000, 4) and ds.names[2999] == "w2999"
    assert calls == [uploads._HEAD_ROWS + 1, None]
    monkeypatch.undo()
    lines = good.decode().splitlines()
    lines[2500] = "w,1,2,oops,4"
    message = upload_error("big.csv", ("\n".join(lines) + "\n").encode())
    assert "column 'c'" in message and "row 2500" in message and "line 2501" in message
    lines[2500] = "w,1,2,3"
    assert "line 2501 has 4 fields but line 1 has 5" in upload_error("big.csv", ("\n".join(lines) + "\n").encode())


# -- metadata columns and images --------------------------------------------------------------------

def png_bytes(colour, size=(40, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def test_text_columns_and_meta_numbers_are_metadata_not_dimensions():
    rows = "".join(f"n{i},L{i % 2},{'xyz'[i % 3]},{i * 0.5},{i},{-i}\n" for i in range(3_000))
    for content in (b"name,label,colour,meta:score,a,b\n" + rows.encode(),            # typed (long) path
                    b"name,label,colour,meta:score,a,b\nn0,L0,x,0,1,2\nn1,L1,y,,3,4\n"):  # text path, a gap
        ds = parse_embedding_upload("v.csv", content)
        assert ds.X.shape[1] == 2                       # a and b only
        columns = ds.metadata_columns()
        assert list(columns) == ["colour", "meta:score"]
        assert columns["colour"][:2] == ["x", "y"]
        assert isinstance(columns["meta:score"], np.ndarray) and columns["meta:score"][0] == 0.0
    assert np.isnan(columns["meta:score"][1])           # the empty cell is a missing number


def test_parquet_scalars_beside_an_embedding_list_are_metadata():
    frame = pd.DataFrame({"name": ["a", "b", "c"], "embedding": [[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]],
                          "year": [2001, 2002, 2003], "kind": ["p", "q", "p"]})
    ds = parse_embedding_upload("v.parquet", parquet_bytes(frame))
    assert ds.X.shape == (3, 2)
    assert list(ds.metadata_columns()["year"]) == [2001.0, 2002.0, 2003.0]
    assert ds.metadata_columns()["kind"] == ["p", "q", "p"]


def test_image_bytes_become_thumbnails_and_bad_images_are_named():
    from PIL import Image

    frame = pd.DataFrame({"name": list("abcd"), "x": [1.0, 2.0, 3.0, 4.0], "y": [0.0, 1.0, 0.0, 2.0],
                          "image": [png_bytes((255, 0, 0), (200, 100)), b"not an image", None, png_bytes((0, 0, 255))]})
    ds = parse_embedding_upload("v.parquet", parquet_bytes(frame))
    thumbs = ds.extra["images"]
    assert thumbs[1] is None and thumbs[2] is None
    red = Image.open(io.BytesIO(thumbs[0]))
    assert max(red.size) <= 64 and red.size[0] == 2 * red.size[1]        # shrunk, aspect kept
    assert red.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert any("no thumbnail for 1 row" in w and "not a readable" in w for w in ds.extra["warnings"])


def test_image_paths_are_read_only_below_the_image_root(tmp_path):
    (tmp_path / "data" / "img").mkdir(parents=True)
    (tmp_path / "data" / "img" / "0.png").write_bytes(png_bytes((0, 255, 0)))
    (tmp_path / "secret.png").write_bytes(png_bytes((1, 2, 3)))
    content = b"name,a,b,image_path\nn0,1,2,img/0.png\nn1,3,4,img/../../secret.png\nn2,5,7,img/none.png\n"
    kept_as_text = parse_embedding_upload("v.csv", content)
    assert "images" not in kept_as_text.extra
    assert kept_as_text.metadata_columns()["image_path"][0] == "img/0.png"
    assert any("--image-root" in w for w in kept_as_text.extra["warnings"])
    ds = parse_embedding_upload("v.csv", content, image_root=str(tmp_path / "data"))
    assert ds.extra["images"][0] is not None
    assert ds.extra["images"][1] is None and ds.extra["images"][2] is None        # outside, missing
    assert any("outside the image folder" in w and "no such file" in w for w in ds.extra["warnings"])


def test_metadata_and_thumbnails_survive_the_store(tmp_path):
    from hkd_core.store import ArtefactStore, dataset_fingerprint

    frame = pd.DataFrame({"name": list("abc"), "embedding": [[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]],
                          "year": [2001.0, np.nan, 2003.0], "kind": ["p", "q", "p"],
                          "image": [png_bytes((255, 0, 0)), None, png_bytes((0, 0, 255))]})
    ds = parse_embedding_upload("v.parquet", parquet_bytes(frame))
    store = ArtefactStore(str(tmp_path))
    back = store.get_dataset(store.add_upload(ds, "v.parquet"))
    assert back.metadata_columns()["kind"] == ["p", "q", "p"]
    np.testing.assert_array_equal(back.metadata_columns()["year"], [2001.0, np.nan, 2003.0])
    assert back.extra["images"] == ds.extra["images"]
    other = parse_embedding_upload("v.parquet", parquet_bytes(frame.assign(kind=["p", "p", "p"])))
    assert dataset_fingerprint(other) != dataset_fingerprint(ds)       # metadata is part of the data


# -- a label hierarchy for an upload ----------------------------------------------------------------

def test_label_hierarchy_file_parses_and_names_its_problems(tmp_path):
    from hkd_core.uploads import parse_label_hierarchy, read_embedding_file

    tree = parse_label_hierarchy("h.txt", b"# parent child\nanimal dog\nanimal\tcat\nentity,animal\n",
                                 labels=["dog", "cat", "dog"])
    assert tree == {"dog": "animal", "cat": "animal", "animal": "entity"}
    cases = [(b"a b\nc b\n", "two parents"), (b"a b\nb a\n", "cycle"), (b"a b c\n", "line 1"),
             (b"a a\n", "its own parent"), (b"\n# only a comment\n", "no 'PARENT CHILD' lines"),
             (b"animal dog\n", r"1 label\(s\) of the data are not in")]
    for content, words in cases:
        with pytest.raises(UploadError, match=words):
            parse_label_hierarchy("h.txt", content, labels=["dog", "cat"] if b"dog" in content else None)
    # the command line's --data reads FILE.parent-child.txt beside the data file
    data = tmp_path / "pets.csv"
    data.write_text("name,label,x,y\nrex,dog,1,2\ntom,cat,3,4\nfido,dog,1,3\n")
    (tmp_path / "pets.parent-child.txt").write_text("animal dog\nanimal cat\n")
    ds = read_embedding_file(str(data))
    assert ds.hierarchy == {"dog": "animal", "cat": "animal"}
    assert ds.item_ancestors()[0] == {"animal": 0, "dog": 1}


# -- big files: Parquet streamed in record batches, text parsed in chunks ---------------------------

def _outcome(filename, content, **kw):
    """Everything a parse gives (or its message), for comparing two ways of reading one file."""
    try:
        ds = parse_embedding_upload(filename, content, **kw)
    except UploadError as err:
        return str(err)
    columns = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ds.metadata_columns().items()}
    return ds.X.dtype.str, ds.X.tolist(), ds.names, ds.labels, ds.metric, ds.extra["warnings"], repr(columns)


def _count_batches(monkeypatch):
    """Count the record batches the parser reads from Parquet files (public iter_batches)."""
    import pyarrow.parquet as pq

    seen, real = [], pq.ParquetFile.iter_batches

    def counting(self, *args, **kwargs):
        for batch in real(self, *args, **kwargs):
            seen.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    return seen


def _parquet_layouts(n=50):
    import pyarrow as pa

    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    names = [f"n{i}" for i in range(n)]
    columns = pd.DataFrame({"name": names, "label": [f"L{i % 3}" for i in range(n)], "x": X[:, 0],
                            "y": X[:, 1].astype(np.float64), "z": np.arange(n), "colour": ["red", "blue"] * (n // 2)})
    lists = pd.DataFrame({"name": names, "embedding": [list(r) for r in X], "year": np.arange(n) + 2000,
                          "meta:score": np.arange(n) * 0.5, "kind": ["p", "q"] * (n // 2)})
    fixed = pa.table({"entity": names, "e": pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), 3)})
    buf = io.BytesIO()
    import pyarrow.parquet as pq

    pq.write_table(fixed, buf, row_group_size=16)  # several row groups too
    return {"columns": parquet_bytes(columns), "list": parquet_bytes(lists), "fixed-size list": buf.getvalue()}


@pytest.mark.parametrize("layout", ["columns", "list", "fixed-size list"])
def test_parquet_streamed_in_batches_gives_the_same_dataset(monkeypatch, layout):
    import hkd_core.uploads as uploads

    content = _parquet_layouts()[layout]
    whole = _outcome("v.parquet", content)                 # 50 rows: one batch
    assert not isinstance(whole, str), whole
    batches = _count_batches(monkeypatch)
    monkeypatch.setattr(uploads, "_PARQUET_BATCH_ROWS", 7)
    assert _outcome("v.parquet", content) == whole
    assert len(batches) >= 50 // 7 and max(batches) <= 7   # it was read a few rows at a time


def test_parquet_problem_in_a_later_batch_names_its_row(monkeypatch):
    import hkd_core.uploads as uploads

    monkeypatch.setattr(uploads, "_PARQUET_BATCH_ROWS", 7)
    x = np.arange(20.0)
    x[10] = np.nan                                          # row 11: the second batch
    message = upload_error("v.parquet", parquet_bytes(pd.DataFrame({"x": x, "y": np.ones(20)})))
    assert "1 missing or NaN value" in message and "first in row 11, column 'x'" in message
    emb = [[1.0, 2.0]] * 20
    emb = emb[:9] + [[1.0, np.inf]] + emb[10:]              # row 10, second batch
    message = upload_error("v.parquet", parquet_bytes(pd.DataFrame({"embedding": emb})))
    assert "1 infinite value" in message and "row 10, column 'embedding[1]'" in message
    ragged = emb[:15] + [[1.0]] + emb[16:]                 # row 16, third batch
    message = upload_error("v.parquet", parquet_bytes(pd.DataFrame({"embedding": ragged})))
    assert message.endswith("column 'embedding' holds lists of 2 numbers but row 16 holds 1")
    missing = emb[:15] + [None] + emb[16:]
    assert "row 16 holds no list" in upload_error("v.parquet", parquet_bytes(pd.DataFrame({"embedding": missing})))
    words = pd.DataFrame({"x": np.ones(20), "y": [str(i) for i in range(12)] + ["q"] + ["1"] * 7})
    message = upload_error("v.parquet", parquet_bytes(words))
    assert "column 'y'" in message and "row 13" in message and "'q'" in message


def test_parquet_limits_are_checked_before_any_data_is_read(monkeypatch):
    import pyarrow.parquet as pq

    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the limits were checked")

    content = parquet_bytes(pd.DataFrame({f"d{j}": np.arange(30.0) for j in range(6)}))
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", no_data)
    monkeypatch.setattr(pq.ParquetFile, "read", no_data)
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", no_data)
    assert upload_error("v.parquet", content, max_rows=29) == "'v.parquet' has 30 rows; the limit is 29"
    assert upload_error("v.parquet", content, max_columns=3) == "'v.parquet' has 6 columns; the limit is 3"


def test_parquet_list_wider_than_the_limit_is_refused_before_the_array_is_made(monkeypatch):
    wide = parquet_bytes(pd.DataFrame({"embedding": [list(range(50))] * 4}))
    allocated = []
    real_empty = np.empty
    monkeypatch.setattr(np, "empty", lambda shape, *a, **k: allocated.append(shape) or real_empty(shape, *a, **k))
    assert upload_error("v.parquet", wide, max_columns=10) == "'v.parquet' has 50 dimensions; the limit is 10"
    assert (4, 50) not in allocated


def _csv_lines(rows=300):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 4)).round(4), columns=list("abcd"))
    frame.insert(0, "name", [f"w{i}" for i in range(rows)])
    frame.insert(1, "label", [f"L{i % 5}" for i in range(rows)])
    return frame.to_csv(index=False).splitlines()


def _text(lines):
    return ("\n".join(lines) + "\n").encode()


def test_csv_parsed_in_small_chunks_gives_the_same_result_and_rows(monkeypatch):
    """The typed parse by chunks (a short head, 7 rows a chunk), in one chunk, and the text path
    (the default for a file this small) agree on every result and every message."""
    import hkd_core.uploads as uploads

    lines = _csv_lines()
    variants = {"good": _text(lines), "saved index": pd.read_csv(io.BytesIO(_text(lines))).to_csv().encode(),
                "blank lines": _text(lines[:100] + ["", "  "] + lines[100:])}
    for i, bad in [(251, "w,L,1,2,oops,4"), (251, "w,L,1,2,3"), (177, "w,L,1,,3,4"), (299, "w,L,1,inf,3,4"),
                   (5, "w,L,1,nan,3,4"), (260, "w,L,1,2,3,4,5"), (220, ",L,1,2,3,4")]:
        variants[f"line {i + 1}: {bad}"] = _text(lines[:i] + [bad] + lines[i + 1:])
    expected = {key: _outcome("big.csv", content) for key, content in variants.items()}
    assert expected["line 252: w,L,1,2,oops,4"] == (
        "column 'c' of 'big.csv' is not numeric: row 251 (line 252 of the file) holds 'oops'; a column of numbers "
        "with one word in it is not an embedding dimension (mostly-text columns are kept as metadata; name numeric "
        "metadata meta:<name>)")
    assert "first in row 299, column 'b'" in expected["line 300: w,L,1,inf,3,4"]
    assert expected["line 261: w,L,1,2,3,4,5"].startswith("ragged rows in 'big.csv': line 261 has 7 fields")
    chunk_sizes = []
    real_read_csv = pd.read_csv

    def spying_read_csv(*args, **kwargs):
        chunk_sizes.append(kwargs.get("chunksize"))
        return real_read_csv(*args, **kwargs)

    monkeypatch.setattr(uploads.pd, "read_csv", spying_read_csv)
    monkeypatch.setattr(uploads, "_HEAD_ROWS", 20)
    for chunk in (uploads._CSV_CHUNK_ROWS, 7):
        monkeypatch.setattr(uploads, "_CSV_CHUNK_ROWS", chunk)
        for key, content in variants.items():
            assert _outcome("big.csv", content) == expected[key], (chunk, key)
        assert uploads._chunk_rows(chunk, 4) in chunk_sizes  # the typed parse went by chunks (4 dims)


def test_big_uploads_need_little_more_memory_than_their_float32_array(monkeypatch):
    """Traced peak of a parse, less the names it returns, stays near the float32 array itself
    (the old parsers built whole float64 frames and copies: 3-8 times the array)."""
    import sys
    import tracemalloc

    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet as pq

    import hkd_core.uploads as uploads

    monkeypatch.setattr(uploads, "_PARQUET_BATCH_ROWS", 4096)
    monkeypatch.setattr(uploads, "_CSV_CHUNK_ROWS", 4096)
    monkeypatch.setattr(uploads, "_HEAD_ROWS", 200)
    X = np.random.default_rng(0).normal(size=(60_000, 16)).astype(np.float32)
    columns, lists = io.BytesIO(), io.BytesIO()
    pq.write_table(pa.table({f"d{j}": X[:, j] for j in range(16)}), columns)
    pq.write_table(pa.table({"e": pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), 16)}), lists)
    csv = io.BytesIO()
    pa.csv.write_csv(pa.table({f"d{j}": X[:, j] for j in range(16)}), csv)   # much faster than pandas
    csv = csv.getvalue()
    for filename, content in [("v.parquet", columns.getvalue()), ("v.parquet", lists.getvalue()), ("v.csv", csv)]:
        tracemalloc.start()
        ds = parse_embedding_upload(filename, content)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        names = sys.getsizeof(ds.names) + sum(sys.getsizeof(s) for s in ds.names)
        assert peak - names < 1.6 * ds.X.nbytes, (filename, peak, names, ds.X.nbytes)


def test_wide_rows_make_short_chunks():
    import hkd_core.uploads as uploads

    assert uploads._chunk_rows(65_536, 1) == 65_536 and uploads._chunk_rows(65_536, 16) == 8_192
    assert uploads._chunk_rows(65_536, 4_096) * 4_096 <= uploads._CHUNK_CELLS
    assert uploads._chunk_rows(7, 4_096) == 7 and uploads._chunk_rows(65_536, 10**9) == 1


def test_a_highly_compressed_parquet_asking_for_too_many_numbers_is_refused_before_allocating(monkeypatch):
    """A compression bomb: a small file of constant lists that would unpack to more numbers than
    MAX_VALUES. It is refused from the metadata and its first row, before the array is made."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import hkd_core.uploads as uploads

    monkeypatch.setattr(uploads, "MAX_VALUES", 10_000)
    table = pa.table({"embedding": pa.array([[0.0] * 200] * 100, type=pa.list_(pa.float32()))})  # 20,000 numbers
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    allocated = []
    real_empty = np.empty
    monkeypatch.setattr(np, "empty", lambda shape, *a, **k: allocated.append(shape) or real_empty(shape, *a, **k))
    message = upload_error("bomb.parquet", buf.getvalue())
    assert message == ("'bomb.parquet' holds 100 rows x 200 dimensions = 20,000 numbers; the limit is 10,000 "
                       "(compressed files too: they are unpacked in memory)")
    assert (100, 200) not in allocated
