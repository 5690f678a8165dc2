"""Turn a user's uploaded embedding file into a :class:`Dataset`, or explain why it cannot.

Accepted formats (by file extension):

* ``.csv`` / ``.tsv`` / ``.txt`` -- one row per entity. A header row is optional. A name column
  (``name``, ``id``, ``entity``, ``word``, ``synset``) and a label column (``label``, ``class``,
  ``category``) are optional; every other column must be numeric. Without a header, leading text
  columns are read as name (then label), which covers GloVe-style ``word v1 v2 ...`` files; a
  word2vec ``"<n> <d>"`` first line is skipped.
* ``.npy`` -- a 2-d numeric array, read with ``allow_pickle=False``.
* ``.parquet`` -- the same column rules as CSV; a single column holding equal-length lists of
  numbers (the usual way to store embeddings in Parquet) is expanded into dimensions.

Big files are read in bounded pieces: Parquet's numeric columns in record batches and a long
text file in chunks, each straight into one preallocated float32 array (the Dataset's), so a
million-row upload needs little more memory than that array and its names.

Nothing in an upload is ever executed: no pickle, no eval, only parsers for inert formats.
Every rejection raises :class:`UploadError` whose message is meant to be shown to the user as is.
Rows in messages count from 1, header excluded; CSV messages also give the line of the file.
Soft problems (duplicate names, constant data, ...) do not stop the upload; they are listed in
``dataset.extra["warnings"]`` for the page to display.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import csv
import io
import os
import urllib.parse

import numpy as np
import pandas as pd

from hkd_core.datasets.base import METRICS, Dataset
from hkd_core.npyio import NPY_HEADER_LOCK

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_ROWS = 1_000_000   # a million rows fit the 50 MB cap as .npy (1M x 12 float32) or Parquet (1M x 11)
MAX_COLUMNS = 4_096
# rows x dimensions: a compressed Parquet file (or .npy header) may ask for far more than its bytes;
# 64 M float32 numbers are 256 MB, five times what an uncompressed 50 MB upload can hold
MAX_VALUES = 64_000_000
MIN_ROWS = 2  # the fewest rows a Dataset accepts; models may need more and say so when fitted

NAME_COLUMNS = ("name", "entity", "synset", "word", "id")  # in order of preference
LABEL_COLUMNS = ("label", "class", "category")
IMAGE_COLUMNS = ("image", "image_bytes", "image_path", "image_file", "img", "thumbnail")
META_PREFIXES = ("meta:", "meta_")   # a numeric column so named is metadata, not a dimension
MAX_METADATA_COLUMNS = 32
TEXT_EXTENSIONS = (".csv", ".tsv", ".txt")
SUPPORTED_EXTENSIONS = TEXT_EXTENSIONS + (".npy", ".parquet")
POINCARE_HINTS = ("poincare", "poincaré", "hyperbolic")

# Cells that mean "no value" (compared lower-cased); they count as NaN, not as text.
_NA_WORDS = frozenset({"", "nan", "-nan", "+nan", "na", "n/a", "null", "none", "<na>"})
_HEAD_ROWS = 2_000  # rows read as text to find the header and the name/label columns
_CSV_CHUNK_ROWS = 65_536  # rows per chunk of a big text file's typed parse, at most
_PARQUET_BATCH_ROWS = 65_536  # rows per record batch of a Parquet upload, at most
_CHUNK_CELLS = 1 << 17  # and at most this many numbers per chunk or batch (1 MB as float64; pandas'
                        # C reader needs ~50 MB for a 65,536-row chunk of 16 numbers, ~9 MB at 8,192)
_NPY_MAGIC = b"\x93NUMPY"
_PARQUET_MAGIC = b"PAR1"
_DUPLICATE_SEPARATOR = "#"


class UploadError(ValueError):
    """An upload that cannot become a Dataset; ``str(err)`` is a message for the user."""


def parse_embedding_upload(
    filename: str,
    content: bytes | str,
    max_bytes: int = MAX_UPLOAD_BYTES,
    metric: str | None = None,
    max_rows: int = MAX_ROWS,
    max_columns: int = MAX_COLUMNS,
    image_root: str | None = None,
) -> Dataset:
    """Parse an uploaded embedding file into a Dataset.

    filename  the uploaded file's name; its extension picks the parser.
    content   raw bytes, or the ``"data:<mime>;base64,<...>"`` string dcc.Upload delivers
              (any other string is taken as the file's text).
    metric    None (euclidean unless the filename hints at Poincare), "euclidean" or "poincare".
    image_root  folder below which an image column's file paths may be read (None: paths are
              kept as text; image bytes and ``data:image/`` cells need no folder).
    """
    if metric is not None and metric not in METRICS:
        raise UploadError(f"metric must be one of {METRICS} or None, got {metric!r}")
    if not isinstance(max_bytes, int) or max_bytes < 1:
        raise UploadError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    filename = _check_filename(filename)
    if not filename:
        raise UploadError("the upload has no file name, so its format is unknown")
    ext = _extension(filename)
    if ext not in SUPPORTED_EXTENSIONS:
        shown = f"'{ext}'" if ext else "without an extension"
        raise UploadError(
            f"unsupported file type {shown} for {filename!r}: upload one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )

    data = decode_upload_content(content, max_bytes)
    if len(data) == 0:
        raise UploadError(f"{filename!r} is empty (0 bytes)")
    if len(data) > max_bytes:
        raise UploadError(_too_large_message(filename, len(data), max_bytes))

    warnings: list[str] = []
    side = {"columns": {}, "image": None}
    if ext in TEXT_EXTENSIONS:
        X, names, labels, dims, side = _parse_text_table(filename, data, ext, max_rows, max_columns, warnings)
    elif ext == ".npy":
        X, names, labels, dims = _read_npy(filename, data, max_rows, max_columns), None, None, None
    else:
        X, names, labels, dims, side = _parse_parquet(filename, data, max_rows, max_columns, warnings)

    _check_shape(filename, X, max_rows, max_columns)
    with np.errstate(over="ignore"):  # the Dataset holds float32: a value beyond its range is inf
        X = X.astype(np.float32, copy=False)
    _check_finite(filename, X, dims)
    names = _unique_names(names, len(X), warnings)
    _warn_degenerate(X, warnings)
    chosen_metric = _choose_metric(filename, X, metric, warnings)
    extra = {"source": "upload", "filename": filename, "warnings": warnings}
    columns = dict(side["columns"])
    if side["image"] is not None:
        column, values = side["image"]
        thumbs = _image_thumbnails(column, values, image_root, warnings)
        if thumbs is not None:
            extra["images"] = thumbs
        else:
            columns.setdefault(column, _text_values(pd.Series(values), column, "metadata", warnings))
    if columns:
        extra["columns"] = columns

    return Dataset(
        name=f"upload:{filename}",
        X=X,
        names=names,
        labels=labels,
        metric=chosen_metric,
        description=f"uploaded file {filename} ({X.shape[0]} rows x {X.shape[1]} dimensions)",
        extra=extra,
    )


def _image_thumbnails(column: str, values: list, image_root: str | None, warnings) -> list | None:
    """One PNG thumbnail (or None) per row from an image column: image bytes (Parquet binary),
    ``data:image/...;base64,`` text, or file paths -- read only below ``image_root``, never
    elsewhere on the server. None (and a warning) when no row yields an image."""
    from hkd_core.images import ImageError, thumbnail_from_bytes

    root = os.path.realpath(image_root) if image_root else None
    thumbs, problems, paths_refused = [], {}, 0
    for value in values:
        thumb = None
        try:
            if isinstance(value, (bytes, bytearray, memoryview)):
                thumb = thumbnail_from_bytes(value)
            elif isinstance(value, str) and value.strip():
                text = value.strip()
                if text.lower().startswith("data:image/"):
                    thumb = thumbnail_from_bytes(decode_upload_content(text.replace(" ", "+")))
                elif root is None or "://" in text:
                    paths_refused += 1
                else:
                    path = os.path.realpath(os.path.join(root, text))
                    if os.path.commonpath([root, path]) != root:
                        raise ImageError("path leads outside the image folder")
                    if not os.path.isfile(path):
                        raise ImageError("no such file")
                    if os.path.getsize(path) > 10 * 1024 * 1024:
                        raise ImageError("file over 10 MB")
                    with open(path, "rb") as fh:
                        thumb = thumbnail_from_bytes(fh.read())
        except (ImageError, UploadError, OSError) as exc:
            problems[str(exc)] = problems.get(str(exc), 0) + 1
        thumbs.append(thumb)
    found = sum(t is not None for t in thumbs)
    if paths_refused:
        warnings.append(
            f"column {column!r}: the image paths or URLs of {_count(paths_refused, 'row')} are kept as text; "
            "paths are read only below the folder given with --image-root, URLs never"
            if root is None else
            f"column {column!r}: the image URLs of {_count(paths_refused, 'row')} are kept as text (URLs are not fetched)")
    if problems:
        why = "; ".join(f"{n} {reason}" for reason, n in sorted(problems.items(), key=lambda kv: -kv[1])[:3])
        warnings.append(f"column {column!r}: no thumbnail for {_count(sum(problems.values()), 'row')} ({why})")
    return thumbs if found else None


def _check_filename(filename) -> str:
    """The upload's base name. dcc.Upload sends a list of names when ``multiple=True``: a list
    of one name is that name; anything else that is not a string is refused."""
    if isinstance(filename, (list, tuple)):
        if len(filename) != 1:
            raise UploadError(
                f"upload one file at a time (got {len(filename)} file names)" if filename
                else "the upload has no file name, so its format is unknown"
            )
        filename = filename[0]
    if filename is None:
        filename = ""
    if not isinstance(filename, str):
        raise UploadError(f"the upload's file name must be text, got {type(filename).__name__}")
    return os.path.basename(filename.replace("\\", "/")).strip()


def decode_upload_content(content: bytes | str, max_bytes: int = MAX_UPLOAD_BYTES) -> bytes:
    """Bytes of an upload given as bytes or as a dcc.Upload data URL string."""
    if content is None:
        raise UploadError("no file content was received")
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    if not isinstance(content, str):
        raise UploadError(f"upload content must be bytes or a data URL string, got {type(content).__name__}")
    if not content.startswith("data:"):
        return content.encode("utf-8")
    header, comma, payload = content.partition(",")
    if not comma:
        raise UploadError("the upload is a malformed data URL (no ',' after the header)")
    if header.endswith(";base64"):
        # Refuse before decoding: a base64 payload is 4/3 the size of the file it encodes.
        if len(payload) * 3 // 4 > max_bytes + 3:
            raise UploadError(_too_large_message("the upload", len(payload) * 3 // 4, max_bytes))
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise UploadError("the upload could not be decoded: its data URL is not valid base64") from None
    return urllib.parse.unquote_to_bytes(payload)


# ----------------------------------------------------------------------------------- text tables

def _parse_text_table(filename, data, ext, max_rows, max_columns, warnings):
    """(X, names, labels, dimension names) of a CSV/TSV/TXT upload.

    The layout (separator, word2vec preamble, header, name/label columns) is read from the first
    rows; a file longer than that is then parsed by pandas' C reader in chunks of
    ``_CSV_CHUNK_ROWS`` rows with float feature columns, straight into one float32 array. Any
    sign of trouble in that parse (a parser error, a missing value, a short row) sends the file
    to the text path, which scans it cell by cell to name the offending row, line and column.
    Small files always take the text path. The file's decoded text is only built for the text
    path, never held beside a big file's typed parse.
    """
    skip, sep, n_lines = _decode_text(filename, data, ext, max_rows, warnings)
    if n_lines > skip + _HEAD_ROWS + 1:  # more lines than the head: try one typed parse
        try:
            head = _text_cells(filename, data, sep, skip, ext, _HEAD_ROWS + 1)
        except UploadError:
            head = None  # the text path explains it
        if head is not None and len(head) > 1:
            if head.shape[1] > max_columns + 2:  # +2: a name and a label column are not dimensions
                raise UploadError(f"{filename!r} has {head.shape[1]:,} columns; the limit is {max_columns:,}")
            # at most one row per line after the skipped ones (the last line may lack its newline)
            typed = _typed_text_table(data, sep, skip, _split_header(head), warnings, n_lines - skip + 1)
            if typed is not None:
                return typed
    text = data.decode("utf-8-sig")  # _decode_text checked that this works
    _check_ragged(filename, text, text.splitlines(), sep, skip)
    del text
    table = _text_cells(filename, data, sep, skip, ext, None)
    if len(table) == 0:
        raise UploadError(f"{filename!r} is empty (no rows)")
    if table.shape[1] > max_columns + 2:
        raise UploadError(f"{filename!r} has {table.shape[1]:,} columns; the limit is {max_columns:,}")
    return _table_columns(filename, _split_header(table), True, warnings)


def _decode_text(filename, data, ext, max_rows, warnings):
    """(lines to skip before the table, separator, number of newlines) after checking that the
    file is UTF-8 text, without decoding all of it at once."""
    _check_utf8(filename, data, ext)
    if b"\x00" in data:
        raise UploadError(f"{filename!r} contains NUL bytes: it is a binary file, not {ext} text")
    lines = _leading_lines(data, 3)
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    if not nonblank:  # the whole file was read: it is empty or white space
        raise UploadError(f"{filename!r} is empty (no rows)")
    n_lines = data.count(b"\n")
    if n_lines > max_rows + 2:
        raise UploadError(f"{filename!r} has more than {max_rows:,} rows (the limit is {max_rows:,})")

    first = nonblank[0]
    skip = first
    if _is_word2vec_preamble(lines, first):
        skip = first + 1
        warnings.append(f"line {first + 1} ('{lines[first].strip()}') looks like a word2vec header and was skipped")
    sep = _separator(ext, lines[skip] if skip < len(lines) else "")
    return skip, sep, n_lines


_UTF8_SLICE = 1 << 23  # bytes decoded at a time to check that a text upload is UTF-8


def _chunk_rows(most: int, width: int) -> int:
    """Rows per chunk: ``most``, fewer for wide rows so that a chunk holds at most _CHUNK_CELLS numbers."""
    return max(1, min(most, _CHUNK_CELLS // max(width, 1)))


def _check_utf8(filename, data: bytes, ext) -> None:
    """Raise unless ``data`` is UTF-8, decoding it a slice at a time (cut between characters) so
    that the check needs no copy of a big file's text; a failure is re-raised by decoding the
    whole file, for the same message (and offset) as always."""
    view = memoryview(data)
    start = 0
    try:
        while start < len(data):
            end = min(start + _UTF8_SLICE, len(data))
            back = 0
            while end < len(data) and back < 3 and (data[end] & 0xC0) == 0x80:  # a continuation byte
                end -= 1
                back += 1
            codecs.utf_8_decode(view[start:end], "strict", True)
            start = end
    except UnicodeDecodeError:
        try:
            data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise UploadError(
                f"{filename!r} is not UTF-8 text (undecodable byte at offset {err.start}); "
                f"is it a binary file with a {ext} extension?"
            ) from None
    finally:
        view.release()


def _leading_lines(data: bytes, nonblank: int) -> list[str]:
    """The file's first lines (as ``str.splitlines`` splits them), up to and including its
    ``nonblank``-th non-blank line, without decoding the whole file."""
    size = 1 << 16
    while size < len(data):
        # a character cut at the end only spoils the last line, which may be cut anyway
        lines = data[:size].decode("utf-8-sig", errors="ignore").splitlines()[:-1]
        if sum(1 for line in lines if line.strip()) >= nonblank:
            return lines
        size *= 8
    return data.decode("utf-8-sig").splitlines()


def _text_cells(filename, data: bytes, sep, skip, ext, nrows) -> pd.DataFrame:
    """Cells as stripped strings, blank lines dropped; the index is each row's 0-based line."""
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            encoding="utf-8-sig",
            sep=sep,
            header=None,
            dtype="str",  # pandas >= 3: Arrow strings, whose strip and compare are vectorised
            keep_default_na=False,
            skip_blank_lines=False,  # keeps the index equal to line numbers
            skiprows=skip,
            nrows=nrows,
            engine="c",
            quotechar='"',
        )
    except pd.errors.EmptyDataError:
        raise UploadError(f"{filename!r} is empty (no rows)") from None
    except pd.errors.ParserError as err:
        raise UploadError(f"{filename!r} could not be parsed as {ext} text: {err}") from None
    frame.index = frame.index + skip  # exact unless a quoted field spans lines
    frame = frame.fillna("").apply(lambda col: col.str.strip())
    return frame.loc[~frame.eq("").all(axis=1)]


def _typed_text_table(data: bytes, sep, skip, head: pd.DataFrame, warnings, capacity: int):
    """Parse the whole file in chunks with float feature columns into one float32 array, or
    None to fall back to text cells (on a parser error, a missing value or a short row: the
    text path names the culprit). ``capacity``: at least the number of data rows."""
    if len(head) == 0:
        return None
    header = head.attrs.get("header", False)
    head_warnings: list[str] = []
    roles = _column_roles(head, header, head_warnings, drop_index=False)
    if not roles["features"]:
        return None
    columns = list(head.columns)
    position = {col: j for j, col in enumerate(columns)}
    text_cols = [c for c in columns if c not in roles["features"]]
    feature_pos = [position[c] for c in roles["features"]]
    dtypes = {position[c]: np.float64 for c in roles["features"]}
    dtypes.update({position[c]: "str" for c in text_cols})
    X = np.empty((capacity, len(feature_pos)), dtype=np.float32)
    # the first dimension as read, in case it turns out to be a saved pandas index
    first = np.empty(capacity) if _may_be_index(columns, roles["features"]) else None
    texts: dict = {c: [] for c in text_cols}
    rows = 0
    try:
        with pd.read_csv(
            io.BytesIO(data),
            encoding="utf-8-sig",
            sep=sep,
            header=0 if header else None,  # the header record itself, however it is quoted
            names=list(range(head.shape[1])),
            skiprows=skip,
            dtype=dtypes,
            keep_default_na=False,
            na_values={position[c]: [""] for c in roles["features"]},
            skip_blank_lines=True,
            engine="c",
            quotechar='"',
            chunksize=_chunk_rows(_CSV_CHUNK_ROWS, len(feature_pos)),
        ) as reader:
            for chunk in reader:
                block = chunk[feature_pos].to_numpy(dtype=np.float64)
                if np.isnan(block).any() or any(chunk[position[c]].isna().any() for c in text_cols):
                    return None  # a missing value or a short row: the text path says which
                if rows + len(block) > capacity:
                    return None  # cannot happen (one row per line at most); the text path copes
                with np.errstate(over="ignore"):  # beyond float32: inf, reported as such below
                    X[rows:rows + len(block)] = block
                if first is not None:
                    first[rows:rows + len(block)] = block[:, 0]
                for c in text_cols:
                    texts[c].append(chunk[position[c]])
                rows += len(block)
    except (ValueError, pd.errors.ParserError):
        return None
    if rows == 0:
        return None
    X.resize((rows, X.shape[1]), refcheck=False)  # in place: the array was never shared
    typed = pd.DataFrame({c: pd.concat(texts[c], ignore_index=True) for c in text_cols}, index=pd.RangeIndex(rows))
    features = _drop_pandas_index(columns, roles["features"], lambda c: first[:rows], head_warnings)
    if not features:
        return None
    if len(features) != len(roles["features"]):
        X = np.ascontiguousarray(X[:, 1:])
    warnings.extend(head_warnings)
    names = labels = None
    if roles["name"] is not None:
        names = _text_values(typed[roles["name"]], roles["name"], "name", warnings)
    if roles["label"] is not None:
        labels = _text_values(typed[roles["label"]], roles["label"], "label", warnings)
    return X, names, labels, [str(c) for c in features], _side_columns("", typed, roles, warnings)


def _check_ragged(filename, text: str, lines: list[str], sep: str, skip: int) -> int:
    """Every non-blank record must have as many fields as the first one; returns their number."""
    if sep == r"\s+":
        counts = ((i, len(line.split())) for i, line in enumerate(lines) if i >= skip and line.strip())
    elif '"' not in text:
        counts = ((i, line.count(sep) + 1) for i, line in enumerate(lines) if i >= skip and line.strip())
    else:
        reader = csv.reader(io.StringIO(text), delimiter=sep, quotechar='"')
        counts = ((reader.line_num - 1, len(rec)) for rec in reader
                  if reader.line_num > skip and any(cell.strip() for cell in rec))
    first_line, first_count, n_records = None, None, 0
    for line, count in counts:
        n_records += 1
        if first_count is None:
            first_line, first_count = line, count
        elif count != first_count:
            raise UploadError(
                f"ragged rows in {filename!r}: line {line + 1} has {count} field{'s' if count != 1 else ''} "
                f"but line {first_line + 1} has {first_count}; every row needs the same number of columns"
            )
    return n_records


def _is_word2vec_preamble(lines: list[str], first: int) -> bool:
    """word2vec's text format starts with a '<count> <dimensions>' line."""
    head = lines[first].split()
    if len(head) != 2 or not all(tok.isdigit() for tok in head):
        return False
    rest = next((line for line in lines[first + 1:] if line.strip()), "")
    return len(rest.split()) == int(head[1]) + 1


def _separator(ext: str, first_line: str) -> str:
    if ext == ".tsv":
        return "\t"
    if ext == ".csv":
        if "," not in first_line:
            if ";" in first_line:
                return ";"
            if "\t" in first_line:
                return "\t"
        return ","
    if "\t" in first_line:
        return "\t"
    if "," in first_line:
        return ","
    return r"\s+"


def _is_number(cells: pd.Series) -> pd.Series:
    """True where a text cell reads as a number (nan and inf count: they are caught later)."""
    return pd.to_numeric(cells, errors="coerce").notna() | (cells.str.lower().isin(_NA_WORDS) & (cells != ""))


def _split_header(frame: pd.DataFrame) -> pd.DataFrame:
    """Use the first row as column names when it looks like a header."""
    row0 = frame.iloc[0]
    body = frame.iloc[1:]
    keywords = set(NAME_COLUMNS) | set(LABEL_COLUMNS)
    is_header = any(str(cell).lower() in keywords for cell in row0)
    if not is_header and row0.iloc[0] == "" and len(body) and frame.shape[1] > 1:
        # DataFrame.to_csv writes its index under an empty header cell
        first = pd.to_numeric(body.iloc[:, 0], errors="coerce").to_numpy()
        is_header = bool(np.array_equal(first, np.arange(len(body))))
    if not is_header and len(body):
        numeric_row0 = _is_number(row0)
        for j, col in enumerate(frame.columns):
            if numeric_row0.iloc[j] or row0.iloc[j] == "":
                continue
            if _is_number(body[col]).mean() > 0.5:  # a word above a column of numbers
                is_header = True
                break
    if not is_header:
        frame.columns = [f"column {j + 1}" for j in range(frame.shape[1])]
        frame.attrs["header"] = False
        return frame
    names = [str(c) if str(c) else f"column {j + 1}" for j, c in enumerate(row0)]
    body = body.copy()
    body.columns = _dedupe_columns(names)
    body.attrs["header"] = True
    return body


def _dedupe_columns(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    return out


# ------------------------------------------------------------------------------ column semantics

def _table_columns(filename, frame: pd.DataFrame, index_is_line: bool, warnings):
    """Split a table into (X, names, labels, dimension names) by the name/label/numeric rules.

    ``index_is_line``: the frame's index holds 0-based line numbers of a text file.
    """
    if len(frame) == 0:
        raise UploadError(f"{filename!r} has a header but no data rows (need at least {MIN_ROWS})")
    header = frame.attrs.get("header", True)
    roles = _column_roles(frame, header, warnings)
    name_col, label_col = roles["name"], roles["label"]
    feature_cols = roles["features"]
    if not feature_cols:
        raise UploadError(
            f"{filename!r} has no numeric columns: need at least 1 embedding dimension besides "
            "the name and label columns"
        )

    columns, dims = [], []
    for col in feature_cols:
        parts = _numeric_columns(filename, frame, col, index_is_line)
        columns.extend(parts)
        dims.extend([str(col)] if len(parts) == 1 else [f"{col}[{j}]" for j in range(len(parts))])
    X = np.column_stack(columns) if len(columns) > 1 else columns[0].reshape(-1, 1)

    names = None if name_col is None else _text_values(frame[name_col], name_col, "name", warnings)
    labels = None if label_col is None else _text_values(frame[label_col], label_col, "label", warnings)
    return X, names, labels, dims, _side_columns(filename, frame, roles, warnings)


def _text_values(values: pd.Series, col, role: str, warnings) -> list[str]:
    """Names or labels as strings; empty cells get a placeholder and a warning."""
    text = values.where(values.notna(), "").astype(str).str.strip().tolist()
    empty = [i for i, v in enumerate(text) if not v]
    if role == "name":
        for i in empty:
            text[i] = f"row_{i}"
        what = f"without a name in column {col!r} are called row_<index>"
    elif role == "label":
        for i in empty:
            text[i] = "(missing)"
        what = f"without a label in column {col!r} are labelled '(missing)'"
    else:
        for i in empty:
            text[i] = "(missing)"
        return text          # an empty metadata cell is just missing: no warning
    if empty:
        warnings.append(f"{_count(len(empty), 'row')} {what}")
    return text


def _column_roles(frame: pd.DataFrame, header: bool, warnings, drop_index: bool = True) -> dict:
    if header:
        columns = list(frame.columns)
        drop = (lambda features: _drop_pandas_index(columns, features, frame.__getitem__, warnings)) \
            if drop_index else None
        return _named_roles(columns, lambda c: _is_text_column(frame[c]), lambda c: _is_list_column(frame[c]),
                            warnings, drop)
    # No header: leading text columns are the name, then the label (GloVe: "word v1 v2 ...").
    text_cols = []
    for col in frame.columns[:2]:
        if not _is_number(frame[col].astype(str)).all():
            text_cols.append(col)
        else:
            break
    name_col = text_cols[0] if text_cols else None
    label_col = text_cols[1] if len(text_cols) > 1 else None
    features = [c for c in frame.columns if c not in text_cols]
    return {"name": name_col, "label": label_col, "features": features, "metadata": [], "image": None}


def _named_roles(columns: list, is_text, is_list, warnings, drop_index=None) -> dict:
    """Roles of named columns (a header row, or Parquet): ``is_text(col)``/``is_list(col)`` say
    whether a column is mostly text / holds lists; ``drop_index(features)`` drops a saved index."""
    lower = {col: str(col).strip().lower() for col in columns}
    name_like = [c for c in columns if lower[c] in NAME_COLUMNS]
    label_like = [c for c in columns if lower[c] in LABEL_COLUMNS]
    name_col = min(name_like, key=lambda c: NAME_COLUMNS.index(lower[c]), default=None)
    label_col = min(label_like, key=lambda c: LABEL_COLUMNS.index(lower[c]), default=None)
    image_like = [c for c in columns if lower[c] in IMAGE_COLUMNS]
    image_col = min(image_like, key=lambda c: IMAGE_COLUMNS.index(lower[c]), default=None)
    ignored = [c for c in name_like + label_like + image_like if c not in (name_col, label_col, image_col)]
    if ignored:
        warnings.append(f"columns {ignored} were ignored: only one name, one label and one image column are used")
    rest = [c for c in columns if c not in name_like + label_like + image_like]
    # metadata: columns named meta:..., and text columns (mostly not numbers) -- a numeric
    # column with a stray word stays a dimension, and its bad cell gets a clear error
    metadata = [c for c in rest if lower[c].startswith(META_PREFIXES) or is_text(c)]
    features = [c for c in rest if c not in metadata]
    if any(is_list(c) for c in features):
        # Parquet with an embedding column of lists: the scalar columns describe the rows
        scalars = [c for c in features if not is_list(c)]
        metadata += scalars
        features = [c for c in features if c not in scalars]
    if drop_index is not None:
        features = drop_index(features)
    if len(metadata) > MAX_METADATA_COLUMNS:
        warnings.append(f"{len(metadata) - MAX_METADATA_COLUMNS} metadata columns were ignored "
                        f"(at most {MAX_METADATA_COLUMNS} are kept): {metadata[MAX_METADATA_COLUMNS:][:5]}...")
        metadata = metadata[:MAX_METADATA_COLUMNS]
    return {"name": name_col, "label": label_col, "features": features, "metadata": metadata,
            "image": image_col}


def _is_list_column(series: pd.Series) -> bool:
    return series.dtype == object and len(series) > 0 and isinstance(series.iloc[0], (list, tuple, np.ndarray))


def _is_text_column(series: pd.Series) -> bool:
    """Most non-empty cells are not numbers (a metadata column such as a colour or a URL)."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series) or _is_list_column(series):
        return False
    text = series.dropna().astype(str).str.strip()
    text = text[~text.str.lower().isin(_NA_WORDS)]
    if len(text) == 0:
        return False
    return float(_is_number(text).mean()) < 0.5


def _side_columns(filename, frame: pd.DataFrame, roles: dict, warnings) -> dict:
    """What describes the rows besides name and label: metadata columns (text as strings,
    numbers as float64 with NaN for missing) and the image column's raw values."""
    columns = {}
    for col in roles.get("metadata", []):
        series = frame[col]
        key = str(col)
        if pd.api.types.is_bool_dtype(series):
            columns[key] = series.astype(str).tolist()
        elif _is_text_column(series) or _is_list_column(series) or series.dtype == object and not len(series):
            columns[key] = _text_values(series, col, "metadata", warnings)
        else:
            values = pd.to_numeric(series.astype(str).str.strip() if series.dtype == object else series,
                                   errors="coerce")
            columns[key] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    image = roles.get("image")
    return {"columns": columns, "image": None if image is None else (str(image), frame[image].tolist())}


def _may_be_index(columns: list, features: list) -> bool:
    """Whether the first dimension is named like a saved index (then its values decide)."""
    if not features:
        return False
    first = features[0]
    return first == columns[0] and (str(first).startswith("column ") or str(first).startswith("Unnamed")
                                    or str(first) in ("", "index", "__index_level_0__"))


def _drop_pandas_index(columns: list, features: list, values_of, warnings) -> list:
    """A nameless first column counting 0, 1, 2, ... is a saved pandas index, not a dimension.
    ``values_of(col)``: that column's values, asked for only when its name fits."""
    if not _may_be_index(columns, features):
        return features
    first = features[0]
    values = pd.to_numeric(pd.Series(values_of(first)), errors="coerce")
    if values.notna().all() and np.array_equal(values.to_numpy(), np.arange(len(values))):
        warnings.append(f"column {first!r} counts 0, 1, 2, ... (a saved row index) and was not used as a dimension")
        return features[1:]
    return features


def _numeric_columns(filename, frame, col, index_is_line) -> list[np.ndarray]:
    """One float64 column, or several when a Parquet cell holds a list of numbers."""
    series = frame[col]
    if series.dtype == object and len(series) and isinstance(series.iloc[0], (list, tuple, np.ndarray)):
        return _list_column(filename, series, col)
    if pd.api.types.is_bool_dtype(series):
        return [series.to_numpy(dtype=np.float64)]
    if pd.api.types.is_numeric_dtype(series):
        return [series.to_numpy(dtype=np.float64, na_value=np.nan)]
    text = series.astype(str).str.strip()
    values = pd.to_numeric(text, errors="coerce")
    na_words = text.str.lower().isin(_NA_WORDS) | series.isna()
    bad = values.isna() & ~na_words
    if bad.any():
        pos = int(np.argmax(bad.to_numpy()))
        where = _where(frame, pos, index_is_line)
        raise UploadError(
            f"column {col!r} of {filename!r} is not numeric: {where} holds {str(series.iloc[pos])[:40]!r}; "
            "a column of numbers with one word in it is not an embedding dimension (mostly-text columns are "
            "kept as metadata; name numeric metadata meta:<name>)"
        )
    return [values.to_numpy(dtype=np.float64, na_value=np.nan)]


def _list_column(filename, series, col) -> list[np.ndarray]:
    lengths = series.map(lambda v: len(v) if isinstance(v, (list, tuple, np.ndarray)) else -1).to_numpy()
    if (lengths != lengths[0]).any():
        pos = int(np.argmax(lengths != lengths[0]))
        raise UploadError(
            f"ragged rows in {filename!r}: column {col!r} holds lists of {lengths[0]} numbers but row {pos + 1} "
            f"holds {'no list' if lengths[pos] < 0 else lengths[pos]}"
        )
    try:
        matrix = np.array([np.asarray(v, dtype=np.float64) for v in series])
    except (TypeError, ValueError):
        raise UploadError(f"column {col!r} of {filename!r} holds lists that are not all numbers") from None
    return [matrix[:, j] for j in range(matrix.shape[1])]


def _where(frame, pos: int, index_is_line: bool) -> str:
    if not index_is_line:
        return f"row {pos + 1}"
    return f"row {pos + 1} (line {int(frame.index[pos]) + 1} of the file)"


# ---------------------------------------------------------------------------------- npy, parquet

def _read_npy(filename, data: bytes, max_rows, max_columns) -> np.ndarray:
    if not data.startswith(_NPY_MAGIC):
        raise UploadError(f"{filename!r} is not a .npy file (it lacks the NUMPY header); save it with numpy.save")
    buf = io.BytesIO(data)
    # Read the header first so that type and size are checked before any data is allocated.
    try:
        with NPY_HEADER_LOCK:  # numpy's header parser is not safe in many threads at once
            version = np.lib.format.read_magic(buf)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(buf)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(buf)
    except (ValueError, OSError, EOFError, SyntaxError) as err:
        raise UploadError(f"{filename!r} is a corrupt .npy file (unreadable header: {err})") from None
    if dtype.hasobject:
        raise UploadError(
            f"{filename!r} holds Python objects (dtype {dtype}); only plain numeric arrays are accepted, "
            "because loading objects would mean unpickling (running) the file's contents"
        )
    if dtype.names is not None:
        raise UploadError(
            f"{filename!r} holds a structured array (fields {', '.join(dtype.names)}); "
            "save a plain 2-d numeric array instead, e.g. numpy.save(path, X.astype('float32'))"
        )
    if dtype.kind not in "biuf":
        raise UploadError(f"{filename!r} holds {dtype} values; need a numeric (integer or float) array")
    if len(shape) != 2:
        hint = " (reshape a single vector with X.reshape(1, -1))" if len(shape) == 1 else ""
        raise UploadError(f"{filename!r} holds an array of shape {shape}; need a 2-d array rows x dimensions{hint}")
    _check_shape(filename, tuple(shape), max_rows, max_columns)
    buf.seek(0)
    try:
        with NPY_HEADER_LOCK:
            array = np.load(buf, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UploadError(f"{filename!r} is a corrupt .npy file ({err})") from None
    with np.errstate(over="ignore"):
        return np.asarray(array, dtype=np.float32)


@contextlib.contextmanager
def _parquet_errors(filename):
    """Errors of pyarrow while reading an upload become "a corrupt Parquet file"."""
    import pyarrow as pa

    try:
        yield
    except UploadError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError) as err:
        raise UploadError(f"{filename!r} is a corrupt Parquet file ({str(err)[:200]})") from None


def _is_numeric_type(t) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _is_numeric_list_type(t) -> bool:
    import pyarrow as pa

    return ((pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))
            and _is_numeric_type(t.value_type))


def _parse_parquet(filename, data: bytes, max_rows, max_columns, warnings):
    """(X, names, labels, dimension names, side columns) of a Parquet upload, streamed.

    Rows and columns are checked against the limits from the file's metadata before any data is
    read. Numeric columns, and list columns of numbers (an embedding column), are read
    ``_PARQUET_BATCH_ROWS`` rows at a time straight into one float32 array (rows x dimensions);
    only the other columns (names, labels, text, images, ...) are read whole, with pandas, and
    the same column rules and messages as for CSV apply to both.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not (data.startswith(_PARQUET_MAGIC) and data.endswith(_PARQUET_MAGIC)):
        raise UploadError(f"{filename!r} is not a Parquet file (it lacks the PAR1 markers) or it is truncated")
    with _parquet_errors(filename):
        parquet = pq.ParquetFile(io.BytesIO(data))
        meta = parquet.metadata
        schema = parquet.schema_arrow
        pandas_meta = schema.pandas_metadata or {}
    n = meta.num_rows
    if n > max_rows:
        raise UploadError(f"{filename!r} has {n:,} rows; the limit is {max_rows:,}")
    if meta.num_columns > max_columns + 2:
        raise UploadError(f"{filename!r} has {meta.num_columns:,} columns; the limit is {max_columns:,}")
    if n == 0:
        raise UploadError(f"{filename!r} is empty (no rows)")

    # Columns as pandas would name them; a saved pandas index (listed in the metadata) is dropped.
    index_columns = {c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)}
    shown = {c["field_name"]: str(c.get("name")) for c in pandas_meta.get("columns", [])
             if isinstance(c, dict) and "field_name" in c}
    fields = {}
    for f in schema:
        if f.name in index_columns:
            continue
        col = shown.get(f.name, f.name)
        if col in fields:
            raise UploadError(f"{filename!r} has two columns named {col!r}; rename one of them")
        fields[col] = f
    columns = list(fields)
    reserved = set(NAME_COLUMNS) | set(LABEL_COLUMNS) | set(IMAGE_COLUMNS)
    streamed = {col: f for col, f in fields.items()
                if (_is_numeric_type(f.type) or _is_numeric_list_type(f.type))
                and not (col.strip().lower() in reserved or col.strip().lower().startswith(META_PREFIXES))}
    width = {}  # list column -> numbers per row (those of its first row)
    lists = [col for col, f in streamed.items() if _is_numeric_list_type(f.type)]
    if lists:
        with _parquet_errors(filename):
            first = next((b for b in parquet.iter_batches(batch_size=1, columns=[fields[c].name for c in lists])
                          if b.num_rows), None)
        if first is None:
            raise UploadError(f"{filename!r} is a corrupt Parquet file (no rows, though its metadata says {n:,})")
        for j, col in enumerate(lists):
            value = first.column(j)[0]
            if value.is_valid:
                width[col] = len(value)
            else:           # a first row without a list: read whole, the pandas rules explain it
                del streamed[col]

    others = [col for col in columns if col not in streamed]
    with _parquet_errors(filename):
        if others:
            side = parquet.read(columns=[fields[c].name for c in others], use_pandas_metadata=True).to_pandas()
            side = side.reset_index(drop=True)
            side.columns = others
        else:
            side = pd.DataFrame(index=pd.RangeIndex(n))

    def values_of(col):  # asked for a column named like a saved index only
        if col not in streamed:
            return side[col]
        if col in width:
            return [np.nan]   # a list column is never an index
        with _parquet_errors(filename):
            return parquet.read(columns=[fields[col].name]).column(0).to_numpy()

    roles = _named_roles(columns, lambda c: c not in streamed and _is_text_column(side[c]),
                         lambda c: c in width if c in streamed else _is_list_column(side[c]), warnings,
                         lambda features: _drop_pandas_index(columns, features, values_of, warnings))
    features = roles["features"]
    if not features:
        raise UploadError(
            f"{filename!r} has no numeric columns: need at least 1 embedding dimension besides "
            "the name and label columns"
        )

    errors: dict = {}   # column -> its first problem; the first column's problem is raised
    converted = {}      # dimensions from columns read whole (numbers as text, booleans, ...)
    for col in features:
        if col not in streamed:
            try:
                converted[col] = _numeric_columns(filename, side, col, False)
            except UploadError as err:
                errors[col] = str(err)
            width[col] = len(converted.get(col, [None]))
        elif col not in width:
            width[col] = 1
    dims, offset = [], {}
    for col in features:
        offset[col] = len(dims)
        dims.extend([str(col)] if width[col] == 1 else [f"{col}[{j}]" for j in range(width[col])])
    _check_shape(filename, (n, len(dims)), max_rows, max_columns)   # before allocating rows x dimensions
    X = np.empty((n, len(dims)), dtype=np.float32)
    with np.errstate(over="ignore"):  # beyond float32: inf, reported as such
        for col, parts in converted.items():
            for j, values in enumerate(parts):
                X[:, offset[col] + j] = values

    numeric_metadata = [c for c in roles["metadata"] if c in streamed]
    metadata_values = {c: np.empty(n) for c in numeric_metadata}
    wanted = [c for c in features if c in streamed] + numeric_metadata
    row = 0
    if wanted:
        batch_rows = _chunk_rows(_PARQUET_BATCH_ROWS, len(dims) + len(numeric_metadata))
        batches = parquet.iter_batches(batch_size=batch_rows, columns=[fields[c].name for c in wanted],
                                       use_pandas_metadata=False)
        while True:
            with _parquet_errors(filename):
                batch = next(batches, None)
            if batch is None:
                break
            k = batch.num_rows
            if row + k > n:
                raise UploadError(f"{filename!r} is a corrupt Parquet file (more rows than its metadata says)")
            for j, col in enumerate(wanted):
                array = batch.column(j)
                if col in metadata_values:
                    metadata_values[col][row:row + k] = array.to_numpy(zero_copy_only=False)
                elif col in errors:
                    continue
                elif col in lists:
                    lengths = pc.fill_null(pc.list_value_length(array), -1).to_numpy()
                    bad = lengths != width[col]
                    if bad.any():
                        pos = int(np.argmax(bad))
                        errors[col] = (f"ragged rows in {filename!r}: column {col!r} holds lists of {width[col]} "
                                       f"numbers but row {row + pos + 1} holds "
                                       f"{'no list' if lengths[pos] < 0 else lengths[pos]}")
                        continue
                    values = array.flatten().to_numpy(zero_copy_only=False)
                    with np.errstate(over="ignore"):
                        X[row:row + k, offset[col]:offset[col] + width[col]] = values.reshape(k, width[col])
                else:
                    with np.errstate(over="ignore"):
                        X[row:row + k, offset[col]] = array.to_numpy(zero_copy_only=False)
            row += k
        if row != n:
            raise UploadError(f"{filename!r} is a corrupt Parquet file (fewer rows than its metadata says)")
    for col in features:
        if col in errors:
            raise UploadError(errors[col])

    for col, values in metadata_values.items():
        side[col] = values
    names = None if roles["name"] is None else _text_values(side[roles["name"]], roles["name"], "name", warnings)
    labels = None if roles["label"] is None else _text_values(side[roles["label"]], roles["label"], "label", warnings)
    return X, names, labels, dims, _side_columns(filename, side, roles, warnings)


# ------------------------------------------------------------------------------------ validation

def _check_shape(filename, X, max_rows, max_columns) -> None:
    rows, cols = X if isinstance(X, tuple) else X.shape
    if rows == 0:
        raise UploadError(f"{filename!r} is empty (no rows)")
    if rows < MIN_ROWS:
        raise UploadError(f"{filename!r} has {rows} row; need at least {MIN_ROWS} rows (one per entity)")
    if cols < 1:
        raise UploadError(f"{filename!r} has no columns: need at least 1 embedding dimension")
    if rows > max_rows:
        raise UploadError(f"{filename!r} has {rows:,} rows; the limit is {max_rows:,}")
    if cols > max_columns:
        raise UploadError(f"{filename!r} has {cols:,} dimensions; the limit is {max_columns:,}")
    if rows * cols > MAX_VALUES:
        raise UploadError(f"{filename!r} holds {rows:,} rows x {cols:,} dimensions = {rows * cols:,} numbers; "
                          f"the limit is {MAX_VALUES:,} (compressed files too: they are unpacked in memory)")


_FINITE_BLOCK_ROWS = 16_384  # rows checked at a time, so the check needs no rows x dims mask


def _check_finite(filename, X: np.ndarray, dims: list[str] | None) -> None:
    if all(np.isfinite(X[i:i + _FINITE_BLOCK_ROWS]).all() for i in range(0, len(X), _FINITE_BLOCK_ROWS)):
        return
    finite = np.isfinite(X)
    n_nan = int(np.isnan(X).sum())
    n_inf = int(np.isinf(X).sum())
    row, col = (int(i) for i in np.argwhere(~finite)[0])
    parts = []
    if n_nan:
        parts.append(f"{n_nan} missing or NaN value{'s' if n_nan > 1 else ''}")
    if n_inf:
        parts.append(f"{n_inf} infinite value{'s' if n_inf > 1 else ''}")
    raise UploadError(
        f"{filename!r} contains {' and '.join(parts)} (first in row {row + 1}, "
        f"{'dimension ' + str(col + 1) if dims is None else 'column ' + repr(dims[col])}); "
        "remove or fill them before uploading"
    )


def _unique_names(names, n, warnings) -> list[str]:
    """Names identify entities in search and tables, so duplicates get a '#2', '#3' suffix."""
    if names is None:
        return [f"row_{i}" for i in range(n)]
    if len(set(names)) == len(names):
        return list(names)
    counts: dict[str, int] = {}
    taken = set(names)
    out = []
    renamed = 0
    for name in names:
        counts[name] = counts.get(name, 0) + 1
        if counts[name] == 1:
            out.append(name)
            continue
        k = counts[name]
        while f"{name}{_DUPLICATE_SEPARATOR}{k}" in taken:
            k += 1
        counts[name] = k
        new = f"{name}{_DUPLICATE_SEPARATOR}{k}"
        taken.add(new)
        out.append(new)
        renamed += 1
    if renamed:
        first = next(a for a, b in zip(names, out) if a != b)
        warnings.append(f"{_count(renamed, 'duplicate name')} made unique with a '#2', '#3', ... suffix (first: {first!r})")
    return out


def _warn_degenerate(X: np.ndarray, warnings) -> None:
    spread = X.max(axis=0) - X.min(axis=0)
    if not spread.any():
        warnings.append("all rows are identical (zero variance): codes, maps and neighbours will be meaningless")
    elif not spread.all():
        warnings.append(f"{int((spread == 0).sum())} of {X.shape[1]} dimensions are constant (zero variance)")


def _choose_metric(filename, X, metric, warnings) -> str:
    hinted = any(h in filename.lower() for h in POINCARE_HINTS)
    if metric == "euclidean" or (metric is None and not hinted):
        return "euclidean"
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))  # of the float32 values kept
    outside = norms >= 1.0
    if not outside.any():
        return "poincare"
    row = int(np.argmax(outside))
    if metric == "poincare":
        raise UploadError(
            f"metric 'poincare' needs every row strictly inside the unit ball, but {int(outside.sum())} rows are not "
            f"(first: row {row + 1}, norm {norms[row]:.4g})"
        )
    warnings.append(
        f"the file name suggests Poincare embeddings but row {row + 1} has norm {norms[row]:.4g} >= 1; using euclidean"
    )
    return "euclidean"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _too_large_message(what: str, size: int, limit: int) -> str:
    return f"{what} is too large ({_mb(size)}); the limit is {_mb(limit)}"


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def _extension(filename: str) -> str:
    return os.path.splitext(filename)[1].lower()


# ------------------------------------------------------------------------------- label hierarchy

MAX_HIERARCHY_EDGES = 200_000


def parse_label_hierarchy(filename: str, content: bytes | str, labels=None,
                          max_bytes: int = MAX_UPLOAD_BYTES) -> dict[str, str]:
    """A parent-child file as child -> parent names: one edge per line, ``PARENT CHILD``
    separated by a tab, a comma or (when neither is there) white space, as in the shipped
    ``cifar.parent-child.txt``; ``#`` starts a comment. The edges must form a forest (one parent
    per node, no cycle), and every label of the data (``labels``) must be a node of it, so coders
    that learn from a label hierarchy (shrewd, shred) and the hierarchy metrics can use it.
    Every problem raises :class:`UploadError` naming the line."""
    filename = _check_filename(filename) or "the hierarchy file"
    data = decode_upload_content(content, max_bytes)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UploadError(f"{filename!r} is not UTF-8 text (undecodable byte at offset {err.start})") from None
    parent: dict[str, str] = {}
    edges = 0
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        sep = "\t" if "\t" in line else "," if "," in line else None
        parts = [p.strip() for p in (line.split(sep) if sep else line.split())]
        if len(parts) != 2 or not all(parts):
            raise UploadError(f"{filename!r} line {number}: expected 'PARENT CHILD', got {line[:80]!r}")
        par, child = parts
        if par == child:
            raise UploadError(f"{filename!r} line {number}: {child!r} is its own parent")
        if parent.setdefault(child, par) != par:
            raise UploadError(f"{filename!r} line {number}: {child!r} has two parents "
                              f"({parent[child]!r} and {par!r}); a label hierarchy must be a tree")
        edges += 1
        if edges > MAX_HIERARCHY_EDGES:
            raise UploadError(f"{filename!r} has more than {MAX_HIERARCHY_EDGES:,} edges")
    if not parent:
        raise UploadError(f"{filename!r} holds no 'PARENT CHILD' lines")
    for start in parent:                              # no cycles: every chain ends at a root
        seen, node = {start}, start
        while node in parent:
            node = parent[node]
            if node in seen:
                raise UploadError(f"{filename!r}: the edges make a cycle through {node!r}")
            seen.add(node)
    if labels is not None:
        nodes = set(parent) | set(parent.values())
        missing = sorted(set(map(str, labels)) - nodes)
        if missing:
            raise UploadError(f"{len(missing)} label(s) of the data are not in {filename!r}: "
                              f"{', '.join(map(repr, missing[:5]))}{' …' if len(missing) > 5 else ''}")
    return parent


def read_embedding_file(path: str, metric: str | None = None, hierarchy: str | None = None) -> Dataset:
    """A user's embedding file on disk as a Dataset, through the upload parser and its limits
    (the command line's ``--data``). Its image paths may be read relative to its own folder.
    ``hierarchy``: a parent-child file for its labels; by default ``<path>.parent-child.txt``
    (or ``<stem>.parent-child.txt``) beside it is read when it exists."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--data {path!r}: no such file")
    size = os.path.getsize(path)
    if size > MAX_UPLOAD_BYTES:   # checked before reading: the parser's limit, without the memory
        raise UploadError(f"{os.path.basename(path)!r} is too large ({size / 2**20:.1f} MB); "
                          f"the limit is {MAX_UPLOAD_BYTES / 2**20:.1f} MB")
    with open(path, "rb") as fh:
        ds = parse_embedding_upload(os.path.basename(path), fh.read(), metric=metric,
                                    image_root=os.path.dirname(os.path.abspath(path)))
    if hierarchy is None:
        stem = os.path.splitext(path)[0]
        hierarchy = next((c for c in (path + ".parent-child.txt", stem + ".parent-child.txt")
                          if os.path.isfile(c)), None)
    elif not os.path.isfile(hierarchy):
        raise FileNotFoundError(f"--label-tree {hierarchy!r}: no such file")
    if hierarchy is not None:
        if ds.labels is None:
            raise UploadError(f"{os.path.basename(hierarchy)!r} is a label hierarchy, but "
                              f"{os.path.basename(path)!r} has no label column")
        with open(hierarchy, "rb") as fh:
            ds.hierarchy = parse_label_hierarchy(os.path.basename(hierarchy), fh.read(), ds.labels)
        ds.description += f", label hierarchy from {os.path.basename(hierarchy)}"
    return ds
