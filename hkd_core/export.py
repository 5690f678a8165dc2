"""Bytes for the app's downloads: figures (PNG, SVG, PDF, offline HTML) and tables (CSV, Parquet).

Static images are drawn by kaleido 1.x, which drives a local Chrome/Chromium (``/usr/bin/chromium``
here; ``BROWSER_PATH`` overrides), started for each image. Renders are serialised with a lock, so
concurrent exports never run more than one browser at a time, and each has a time limit.
"""
from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import threading
from typing import Any, Sequence

import numpy as np
import pandas as pd

EXPORT_FORMATS = {"figure": ("png", "svg", "pdf", "html"), "table": ("csv", "parquet")}
STATIC_FORMATS = ("png", "svg", "pdf")
MIME_TYPES = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "html": "text/html",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}
EXPORT_TIMEOUT_S = 120.0  # one static image; a 100k-point map takes well under this
# MathJax would come from a CDN; these machines are offline and the app's figures use no LaTeX.
_KALEIDO_OPTIONS = {"mathjax": False}



class ExportError(RuntimeError):
    """A figure or table could not be exported; ``str(err)`` is a message for the user."""


# ------------------------------------------------------------------------------------- figures

def figure_bytes(fig: Any, fmt: str, width: int | None = None, height: int | None = None,
                 scale: float = 2) -> bytes:
    """The figure as a file's bytes.

    fig     a ``go.Figure`` or its dict form (what a Dash ``State(..., "figure")`` delivers).
    fmt     "png", "svg", "pdf" (static, drawn by kaleido) or "html" (interactive, plotly.js
            embedded so the file works offline).
    width, height  layout pixels; None keeps the figure's own size (700 x 500 if it has none;
            full window for HTML).
    scale   resolution multiplier of PNG output (2 = sharp on paper and high-DPI screens).
    """
    fmt = _check_format(fmt, "figure")
    width = _check_size(width, "width")
    height = _check_size(height, "height")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 10:
        raise ValueError(f"scale must be a number in (0, 10], got {scale!r}")
    fig_dict = _figure_dict(fig)
    if fmt == "html":
        import plotly.io as pio

        sizes = {}
        if width is not None:
            sizes["default_width"] = width
        if height is not None:
            sizes["default_height"] = height
        html = pio.to_html(fig_dict, include_plotlyjs=True, full_html=True, validate=False, **sizes)
        return html.encode("utf-8")
    opts = {"format": fmt, "scale": scale}
    if width is not None:
        opts["width"] = width
    if height is not None:
        opts["height"] = height
    return _render_static(fig_dict, opts)


def find_chrome() -> str | None:
    """Path of the Chrome/Chromium kaleido will use, or None when there is none."""
    try:
        from choreographer.browsers import Chromium

        return Chromium.find_browser(skip_local=False)
    except Exception:  # noqa: BLE001 - an unusable lookup means "no browser" to the caller
        return None


_lock = threading.Lock()


def _render_static(fig_dict: dict, opts: dict) -> bytes:
    if find_chrome() is None:
        raise ExportError(
            "PNG, SVG and PDF export needs Chrome or Chromium, and none was found "
            "(install it, e.g. `apt-get install chromium`, or set BROWSER_PATH); HTML export works without it"
        )
    with _lock:
        return _render_oneshot(fig_dict, opts, EXPORT_TIMEOUT_S)


def _render_oneshot(fig_dict: dict, opts: dict, timeout: float) -> bytes:
    """Draw with a browser started for this image only (kaleido's async API in a fresh loop)."""
    import kaleido

    def call():
        return asyncio.run(kaleido.calc_fig(fig_dict, opts=opts, kopts=dict(_KALEIDO_OPTIONS)))

    try:
        return _run_with_timeout(call, timeout)
    except TimeoutError as err:
        raise ExportError(f"static export timed out: {err}") from None
    except (ValueError, TypeError):
        raise
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"static export failed ({type(err).__name__}: {err})") from None


def _run_with_timeout(fn, timeout: float):
    """Run ``fn`` in a daemon thread; its own event loop never meets the caller's."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err

    worker = threading.Thread(target=target, name="hkd-export", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"no image after {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _figure_dict(fig: Any) -> dict:
    if hasattr(fig, "to_dict"):
        return fig.to_dict()
    if isinstance(fig, dict) and "data" in fig:
        return fig
    raise TypeError(f"fig must be a plotly Figure or a figure dict with a 'data' key, got {type(fig).__name__}")


def _check_size(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 10 <= value <= 10_000:
        raise ValueError(f"{name} must be None or an integer number of pixels in [10, 10000], got {value!r}")
    return int(value)


# -------------------------------------------------------------------------------------- tables

def table_bytes(df: pd.DataFrame, fmt: str) -> bytes:
    """The table as CSV (UTF-8, CRLF rows, no index) or Parquet (pyarrow, no index) bytes.

    CSV text cells that a spreadsheet would run as a formula are neutralised
    (:func:`neutralise_formulas`); Parquet keeps every value as it is.
    """
    fmt = _check_format(fmt, "table")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if fmt == "csv":
        # CRLF rows (RFC 4180): the csv writer then quotes every cell holding a \r or \n,
        # which a spreadsheet would otherwise take as the start of a new row
        return neutralise_formulas(df).to_csv(index=False, lineterminator="\r\n").encode("utf-8")
    frame = df
    if not all(isinstance(c, str) for c in df.columns):
        frame = df.rename(columns=str)  # Parquet column names must be strings
    buf = io.BytesIO()
    try:
        frame.to_parquet(buf, engine="pyarrow", index=False)
    except Exception as err:  # noqa: BLE001 - pyarrow's type errors name the column
        raise ExportError(f"the table cannot be written as Parquet: {err}") from None
    return buf.getvalue()


# A spreadsheet reads a CSV cell starting with one of these as a formula (OWASP "CSV Injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` for CSV export in which no text cell or column name can run as a
    spreadsheet formula: text starting with ``= + - @``, tab or carriage return gets a leading
    single quote (OWASP's advice), so ``=HYPERLINK(...)`` shows as text. Numbers, also negative
    ones, are values rather than text and are left alone; so is text in numeric-looking cells
    that does not start with those characters (codes like ``11-13-7``)."""
    columns = []
    for j in range(df.shape[1]):
        col = df.iloc[:, j]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(object)
        if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            col = col.map(_defuse, na_action="ignore")
        columns.append(col)
    out = pd.concat(columns, axis=1) if columns else df.copy()
    out.columns = [_defuse(c) for c in df.columns]
    out.index = df.index
    return out


def _defuse(value):
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def codes_frame(names: Sequence[str], labels: Sequence[str] | None, codes: np.ndarray,
                coords: np.ndarray | None = None, code_strings: Sequence[str] | None = None,
                columns: dict | None = None) -> pd.DataFrame:
    """One row per entity: name, label, the metadata ``columns``, code ("11-13-7-...", or
    ``code_strings`` as the page writes them), c1..cD, and x, y when coords given. The one
    table of codes every export writes (the app's and the CLI's).

    labels None gives an empty label column, so every export has the same columns.
    coords  (n, 2) map coordinates, or (n, 3) which adds z.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] < 1:
        raise ValueError(f"codes must be a 2-d array (n entities, D digits), got shape {codes.shape}")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        if not np.all(np.equal(np.mod(codes, 1), 0)):
            raise ValueError("codes must hold integer digits")
    codes = codes.astype(np.int32)
    n, D = codes.shape
    names = [str(s) for s in names]
    if len(names) != n:
        raise ValueError(f"names has {len(names)} entries for {n} rows of codes")
    if labels is None:
        labels = [""] * n
    labels = [str(s) for s in labels]
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries for {n} rows of codes")
    if code_strings is not None and len(code_strings) != n:
        raise ValueError(f"code_strings has {len(code_strings)} entries for {n} rows of codes")
    table: dict = {"name": names, "label": labels}
    for key, values in (columns or {}).items():
        if len(values) != n:
            raise ValueError(f"metadata column {key!r} has {len(values)} values for {n} rows")
        if key not in ("name", "label", "code", "x", "y", "z") and not (key[:1] == "c" and key[1:].isdigit()):
            table[key] = values if isinstance(values, np.ndarray) else list(values)
    table["code"] = (list(code_strings) if code_strings is not None
                     else ["-".join(map(str, row)) for row in codes.tolist()])
    for d in range(D):
        table[f"c{d + 1}"] = codes[:, d]
    if coords is not None:
        coords = np.asarray(coords, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[0] != n or coords.shape[1] not in (2, 3):
            raise ValueError(f"coords must have shape ({n}, 2) or ({n}, 3), got {coords.shape}")
        for j, axis in enumerate("xyz"[: coords.shape[1]]):
            table[axis] = coords[:, j]
    return pd.DataFrame(table)


# ------------------------------------------------------------------------------------ download

def download_payload(data: bytes, filename: str, mime: str | None = None) -> dict:
    """The dict a ``dcc.Download`` component takes (same shape as ``dcc.send_bytes``).

    The MIME type is guessed from the extension when not given; the filename is reduced to a
    safe base name.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    filename = safe_filename(filename)
    if mime is None:
        mime = MIME_TYPES.get(os.path.splitext(filename)[1].lstrip(".").lower(), "application/octet-stream")
    return {"content": base64.b64encode(bytes(data)).decode("ascii"), "filename": filename,
            "type": mime, "base64": True}


def safe_filename(name: str, default: str = "export") -> str:
    """A base name without path separators or characters browsers and shells dislike."""
    base = os.path.basename(str(name).replace("\\", "/"))
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    return base[:150] or default


def _check_format(fmt: str, kind: str) -> str:
    allowed = EXPORT_FORMATS[kind]
    key = str(fmt).lower().lstrip(".") if isinstance(fmt, str) else fmt
    if key not in allowed:
        raise ValueError(f"{kind} export format must be one of {allowed}, got {fmt!r}")
    return key
