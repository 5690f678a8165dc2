import base64

import numpy as np
import pytest

from app import figures as F
from hkd_core.tree import prefix_groups, sunburst_frame


def decode(b64):
    return np.frombuffer(base64.b64decode(b64), dtype=np.uint8)


def hierarchical_codes(n=400, D=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(n, D))


def test_colour_slots_change_with_depth_and_payload_matches_groups():
    codes = hierarchical_codes()
    payload = F.depth_payload(codes, K=2)
    assert len(payload["depths"]) == 5 and payload["n"] == 400
    slots = [decode(s) for s in payload["depths"]]
    assert len(set(slots[0])) == 1                      # depth 0: one colour
    assert len(set(slots[1])) == 2 and len(set(slots[3])) == 8
    assert not np.array_equal(slots[1], slots[2])      # deeper prefix -> different colours
    for d in range(5):
        assert np.array_equal(slots[d], F.colour_indices(prefix_groups(codes, d)))
        legend = payload["legend"][d]
        assert sum(s for _, s in legend["groups"]) + legend["other"] == 400


def test_more_than_n_top_groups_become_grey_other():
    codes = np.arange(300).reshape(-1, 1) % 50          # 50 groups of 6
    slots = F.colour_indices(prefix_groups(codes, 1), n_top=20)
    assert slots.max() == 20 and (slots == 20).sum() == 30 * 6
    colours = F.slot_colours(slots)
    assert colours.count(F.OTHER_GREY) == 180
    assert len(set(c for c in colours if c != F.OTHER_GREY)) == 20
    legend = F.depth_payload(codes, n_top=20)["legend"][1]
    assert len(legend["groups"]) == 20 and legend["other"] == 180 and legend["n_groups"] == 50
    with pytest.raises(ValueError, match="n_top"):
        F.colour_indices(np.zeros(3, int), n_top=0)


def test_discrete_colorscale_maps_slot_to_its_colour():
    scale = F.discrete_colorscale(3)
    cmin, cmax = -0.5, 3.5
    for slot, colour in enumerate(list(F.PALETTE[:3]) + [F.OTHER_GREY]):
        t = (slot - cmin) / (cmax - cmin)
        # the colour of the step containing t
        hits = [c for (a, c), (b, _) in zip(scale[::2], scale[1::2]) if a <= t <= b]
        assert hits == [colour]


def test_map_figure_structure_and_hover():
    xy = np.random.default_rng(0).normal(size=(50, 2))
    codes = hierarchical_codes(50)
    hover = F.hover_texts([f"n{i}" for i in range(50)], ["a"] * 50, ["0101"] * 50)
    fig = F.map_figure(xy, hover, F.colour_indices(prefix_groups(codes, 2)))
    assert fig.data[0].type == "scattergl" and len(fig.data) == 4
    assert fig.data[0].customdata[3] == 3 and isinstance(fig.layout.uirevision, str)
    assert "n7" in fig.data[0].text[7] and "code: 0101" in fig.data[0].text[7]
    colour = fig.to_plotly_json()["data"][0]["marker"]["color"]
    assert np.array_equal(decode(colour["bdata"]), F.colour_indices(prefix_groups(codes, 2)))
    with pytest.raises(ValueError, match="slots"):
        F.map_figure(xy, hover, np.zeros(3, np.uint8))
    ov = F.overlay_points(xy, [1, 4])
    assert ov["x"] == [float(xy[1, 0]), float(xy[4, 0])]


def test_sunburst_figure_from_frame():
    codes = hierarchical_codes()
    frame = sunburst_frame(codes, [f"n{i}" for i in range(len(codes))], max_depth=3, K=2)
    fig = F.sunburst_figure(frame)
    sb = fig.data[0]
    assert sb.type == "sunburst" and sb.branchvalues == "total"
    assert list(sb.ids) == frame["ids"].tolist() and sum(v for v, p in zip(sb.values, sb.parents) if p == "root") == 400


def test_metrics_table_rows():
    ev = {"share": {"5": [0.9, 0.8], "10": [0.85, 0.7]}, "reduction": [0.5, 0.75], "reconstruction_mse": 0.1}
    cols, rows = F.metrics_table([("hkd (shown)", ev), ("hkm", ev)], max_depth=2)
    assert [c["field"] for c in cols] == ["model", "measure", "N1", "N2"]
    assert len(rows) == 8
    assert rows[0] == {"model": "hkd (shown)", "measure": "share KNN 5", "N1": 0.9, "N2": 0.8}
    assert rows[2]["measure"] == "reduction" and rows[2]["N2"] == 0.75


def test_entity_and_neighbour_rows():
    names, labels, strings = ["a", "b", "c"], ["x", "y", "z"], ["01", "00", "11"]
    rows = F.entity_rows([2, 0], names, labels, strings, np.array([0.5, 0.1]))
    assert [r["name"] for r in rows] == ["a", "c"]     # nearest to the centre first
    nb = F.neighbour_rows(0, [1, 2], [0.2, 0.3], [1, 0], names, labels, strings)
    assert nb[0]["rank"] == 0 and nb[0]["name"] == "a" and nb[1]["shared"] == 1 and nb[2]["name"] == "c"


def test_codes_frame_for_export():
    df = F.codes_frame(["a", "b"], None, np.array([[1, 2], [3, 0]]), np.zeros((2, 2)), ["12", "30"])
    assert list(df.columns) == ["name", "x", "y", "code", "c1", "c2"] and df["c2"].tolist() == [2, 0]


def test_request_bodies_are_capped(tmp_path):
    """The Flask server refuses request bodies far above the upload limit without reading them."""
    from app import create_app
    from hkd_core.uploads import MAX_UPLOAD_BYTES

    dash_app = create_app(cache_dir=str(tmp_path), default_dataset="synthetic",
                          dataset_options={"synthetic": {"n_per_cluster": 5}},
                          controls={"model": "hkm"}, projection="pca")
    client = dash_app.server.test_client()
    too_big = b"x" * (MAX_UPLOAD_BYTES * 2 + 1)
    resp = client.post("/_dash-update-component", data=too_big, content_type="application/json")
    assert resp.status_code == 413
    assert client.get("/").status_code == 200            # and the server keeps serving
