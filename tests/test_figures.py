import base64

import numpy as np
import pytest

from app import figures as F
from app.colours import OTHER_GREY, hex_hue, hierarchical_colours, rank_colours, step_colorscale
from hkd_core.tree import prefix_groups, sunburst_frame


def decode(b64):
    return np.frombuffer(base64.b64decode(b64), dtype=np.uint8)


def hierarchical_codes(n=400, D=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(n, D))


def decode16(b64):
    return np.frombuffer(base64.b64decode(b64), dtype="<u2")


def test_hierarchical_colours_children_are_shades_of_their_parent():
    codes = hierarchical_codes(600, D=4)
    depths = hierarchical_colours(codes, K=2)
    assert len(depths) == 5
    assert len(set(depths[0].slots)) == 1
    for d in range(1, 5):
        c = depths[d]
        groups = prefix_groups(codes, d)
        # one colour per group (none is grey: every point is coloured at every depth)
        assert len(set(c.slots)) == len(set(groups)) == c.n_groups and c.other_groups == 0
    # children read as shades of their parent: each child's hue is nearer its own parent's hue
    # than any other parent's at that depth, and siblings differ
    for d in range(1, 4):
        parent, child = depths[d], depths[d + 1]
        parent_hues = {tuple(p): hex_hue(parent.colours[parent.slots[np.flatnonzero((codes[:, :d] == p).all(1))[0]]])
                       for p in np.unique(codes[:, :d], axis=0)}
        for prefix, hue in parent_hues.items():
            rows = np.flatnonzero((codes[:, :d] == np.asarray(prefix)).all(1))
            child_hues = {hex_hue(child.colours[s]) for s in child.slots[rows]}
            for h in child_hues:
                nearest = min(parent_hues, key=lambda q: abs(parent_hues[q] - h))
                assert nearest == prefix
            assert len(child_hues) == len(np.unique(codes[rows, d]))


def test_small_groups_keep_their_parents_colour():
    codes = np.column_stack([np.arange(400) % 2, np.arange(400) % 200])   # 2 branches, 200 leaves
    depths = hierarchical_colours(codes, K=200, max_colours=10)
    top, c = depths[1], depths[2]
    assert c.n_groups == 200 and c.other_groups == 190 and c.other_points == 380
    own = {item["group"] for item in c.legend if item["own_colour"]}
    colour_of = lambda dc, r: dc.colours[dc.slots[r]]  # noqa: E731
    for r in range(400):
        if c.groups[r] not in own and len(own) == 10:
            assert colour_of(c, r) == colour_of(top, r)       # inherited: the parent's colour
    assert len({colour_of(c, r) for r in range(400)}) == 10 + 2


def test_rank_scheme_greys_beyond_the_top_groups():
    codes = np.arange(300).reshape(-1, 1) % 50          # 50 groups of 6
    c = rank_colours(codes, n_top=20)[1]
    colours = [c.colours[s] for s in c.slots]
    assert colours.count(OTHER_GREY) == 180 and len(set(colours) - {OTHER_GREY}) == 20
    assert c.other_groups == 30 and c.other_points == 180
    with pytest.raises(ValueError, match="n_top"):
        rank_colours(codes, n_top=0)


def test_step_colorscale_maps_slot_to_its_colour():
    colours = ["#111111", "#222222", "#333333", "#444444"]
    scale = step_colorscale(colours)
    cmin, cmax = -0.5, len(colours) - 0.5
    for slot, colour in enumerate(colours):
        t = (slot - cmin) / (cmax - cmin)
        hits = [c for (a, c), (b, _) in zip(scale[::2], scale[1::2]) if a <= t <= b]
        assert hits == [colour]


def test_depth_payload_legend_labels_and_escaping():
    codes = hierarchical_codes(200)
    xy = np.random.default_rng(1).normal(size=(200, 2))
    payload = F.depth_payload(hierarchical_colours(codes, K=2), xy, lambda rows: f"<b>{len(rows)}</b>", "t")
    assert payload["n"] == 200 and len(payload["depths"]) == 5
    d1 = payload["depths"][1]
    assert len(decode16(d1["slots"])) == 200 and len(d1["colours"]) == 2
    assert sum(item[1] for item in d1["legend"]) == 200
    assert d1["legend"][0][3] == f"<b>{d1['legend'][0][1]}</b>"         # raw: React escapes it
    assert d1["labels"]["text"][0].startswith("&lt;b&gt;")              # plotly text: escaped
    assert d1["labels"]["x"][0] == pytest.approx(np.median(xy[codes[:, 0] == int(d1["legend"][0][0]), 0]))


def test_map_figure_structure_hover_and_visible_overlays():
    xy = np.random.default_rng(0).normal(size=(50, 2))
    codes = hierarchical_codes(50)
    hover = F.hover_texts([f"n{i}" for i in range(49)] + ["<img src=x onerror=alert(1)>"], ["a"] * 50, ["0101"] * 50)
    colouring = hierarchical_colours(codes, K=2)[2]
    fig = F.map_figure(xy, hover, colouring)
    assert fig.data[0].type == "scattergl" and len(fig.data) == 6
    assert fig.data[0].customdata[3] == 3 and isinstance(fig.layout.uirevision, str)
    assert "n7" in fig.data[0].text[7] and "code: 0101" in fig.data[0].text[7]
    assert "<img" not in fig.data[0].text[49] and "&lt;img" in fig.data[0].text[49]
    marker = fig.to_plotly_json()["data"][0]["marker"]
    assert np.array_equal(decode16(marker["color"]["bdata"]), colouring.slots)
    assert marker["cmax"] == len(colouring.colours) - 0.5
    for trace in fig.data[1:5]:            # filled, opaque, outlined: visible in WebGL
        assert "open" not in trace.marker.symbol and trace.marker.opacity == 1.0
        assert trace.marker.color.lower() not in {c.lower() for c in colouring.colours}
    with pytest.raises(ValueError, match="slots"):
        F.map_figure(xy, hover, hierarchical_colours(codes[:3], K=2)[1])
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
    from hkd_core.export import codes_frame

    df = codes_frame(["a", "b"], None, np.array([[1, 2], [3, 0]]), np.zeros((2, 2)), code_strings=["12", "30"],
                     columns={"year": np.array([2001.0, 2002.0]), "c1": ["clash", "clash"]})
    assert list(df.columns) == ["name", "label", "year", "code", "c1", "c2", "x", "y"]
    assert df["code"].tolist() == ["12", "30"] and df["c1"].tolist() == [1, 3]   # a digit column wins


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


def test_selected_rows_and_branches_spanned():
    sel = {"points": [{"curveNumber": 0, "customdata": 5}, {"curveNumber": 0, "pointIndex": 2},
                      {"curveNumber": 2, "customdata": 7}, {"curveNumber": 0, "customdata": 99},
                      {"curveNumber": 0, "customdata": 5}]}
    assert F.selected_rows(sel, 10).tolist() == [2, 5]          # overlays and bad indices ignored
    assert F.selected_rows(None, 10).tolist() == []
    codes = np.array([[0, 1], [0, 1], [0, 0], [1, 1]])
    assert F.branches_spanned(codes, 1, 2) == [("0", 3), ("1", 1)]
    assert F.branches_spanned(codes, 2, 2) == [("01", 2), ("00", 1), ("11", 1)]


def test_thumbnail_is_a_png_of_the_image():
    import io as _io

    from PIL import Image

    image = np.zeros((8, 8))
    image[2:6, 3] = 16                                   # a stroke
    uri = F.thumbnail_uri([image], 0, size=96)
    assert uri.startswith("data:image/png;base64,")
    png = Image.open(_io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert png.size == (96, 96)
    px = np.asarray(png)
    assert px[2 * 12 + 5, 3 * 12 + 5] == 0 and px[0, 0] == 255     # ink dark, paper white
    with pytest.raises(ValueError, match="image"):
        F.thumbnail_uri([np.zeros((2, 2, 7))], 0)


def test_colour_by_label_digit_and_neighbour_share():
    from app.colours import depth_colours

    codes = np.array([[0, 1], [0, 1], [0, 0], [1, 1]])
    labels = ["a", "a", "b", "c"]
    by_label = depth_colours(codes, "label", labels=labels)
    assert len(by_label) == 3 and by_label[0] is by_label[2]            # the same at every depth
    c = by_label[1]
    assert c.colours[c.slots[0]] == c.colours[c.slots[1]] != c.colours[c.slots[2]]
    assert c.legend[0]["prefix"] == "a" and c.legend[0]["size"] == 2
    digit = depth_colours(codes, "digit", K=2)[2]                       # digit 2 alone
    assert digit.colours[digit.slots[2]] != digit.colours[digit.slots[3]]
    assert digit.colours[digit.slots[0]] == digit.colours[digit.slots[3]]
    knn = np.array([[1], [0], [0], [2]])                               # each row's 1 neighbour
    share = depth_colours(codes, "share", knn=knn)
    assert share[1].slots.tolist() == [10, 10, 10, 0]                   # N=1: 3 keep, 1 loses
    assert share[2].slots.tolist() == [10, 10, 0, 0]
    with pytest.raises(ValueError, match="no labels"):
        depth_colours(codes, "label", labels=None)


def test_colour_by_a_metadata_column_text_and_numbers():
    from app.colours import OTHER_GREY, PALETTE, SEQUENTIAL, depth_colours, scheme_options

    codes = np.array([[0, 1], [0, 1], [0, 0], [1, 1]])
    columns = {"kind": ["p", "q", "p", "p"], "score": np.array([0.0, 5.5, 11.0, np.nan])}
    kind = depth_colours(codes, "column:kind", columns=columns)
    assert len(kind) == 3 and kind[0] is kind[2]                   # the same at every depth
    assert [kind[1].colours[s] for s in kind[1].slots] == [PALETTE[0], PALETTE[1], PALETTE[0], PALETTE[0]]
    assert [(item["prefix"], item["size"]) for item in kind[1].legend] == [("p", 3), ("q", 1)]
    score = depth_colours(codes, "column:score", columns=columns)[1]
    drawn = [score.colours[s] for s in score.slots]
    # 0 -> first step, 11 (the maximum) -> last step, 5.5 -> the middle step, NaN -> grey
    assert drawn == [SEQUENTIAL[0], SEQUENTIAL[5], SEQUENTIAL[10], OTHER_GREY]
    assert score.legend[-1]["prefix"] == "(missing)" and score.legend[0]["prefix"] == "10 to 11"
    with pytest.raises(ValueError, match="no metadata column 'nope'"):
        depth_colours(codes, "column:nope", columns=columns)
    options = dict(scheme_options(False, columns))
    assert "label" not in options and options["column:score"] == "column score"


def test_table_thumbnails_only_for_image_data():
    images = np.zeros((3, 8, 8))
    table = [{"row": 2, "name": "a"}, {"row": 0, "name": "b"}]
    assert F.add_thumbnails([dict(t) for t in table], None) == table
    with_thumbs = F.add_thumbnails([dict(t) for t in table], images)
    assert all(t["image"].startswith("data:image/png;base64,") for t in with_thumbs)
    assert F.add_thumbnails([{"row": 0}], [None])[0]["image"] == ""          # a row without an image
    assert F.with_images(F.ENTITY_COLUMNS, True)[0]["cellRenderer"] == "ImageCell"
    assert F.with_images(F.ENTITY_COLUMNS, False) == F.ENTITY_COLUMNS
