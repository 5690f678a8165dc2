"""Browser checks of the Dash app (dash_duo, headless Chromium; see tests/conftest.py).

Small and fast on purpose: 400 synthetic points, the HKM model (trained in the request, no
background job) and a PCA map; WordNet mammals only for the dog.n.01 search."""
import colorsys
import io
import os
import time

import numpy as np
import pytest
from PIL import Image
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from app import create_app
from app import figures as F
from hkd_core.datasets import DATASETS

from diagnostics import page_report, process_report, stop_jobs

SMALL = {"synthetic": {"n_per_cluster": 25}}
FAST = {"model": "hkm"}


def wait_for_text(dash_duo, selector, text, timeout=30):
    """dash_duo.wait_for_contains_text, and on a timeout what the page and the server's processes
    (this test process, its forkserver and jobs) are doing: a hung job says where it hangs."""
    try:
        return dash_duo.wait_for_contains_text(selector, text, timeout=timeout)
    except TimeoutException as err:
        raise AssertionError(f"{err.msg}\nthe page:\n{page_report(dash_duo.driver)}\n"
                             f"{process_report(os.getpid(), python_only=True)}") from None


@pytest.fixture(autouse=True)
def no_job_outlives_its_test():
    """Each test's server stops with it; a job it left running (a cancel the server had no time
    to carry out) is stopped too, so it cannot slow the next test's jobs."""
    yield
    left = stop_jobs(os.getpid())
    if left:
        print(f"stopped {len(left)} background job(s) left running: {left}")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hkd_cache"))


def start(dash_duo, cache_dir, dataset="synthetic"):
    app = create_app(cache_dir=cache_dir, default_dataset=dataset, dataset_options=SMALL,
                     controls=FAST, projection="pca")
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#map-legend .legend-item", timeout=120)
    return app


def map_colours(dash_duo):
    return dash_duo.driver.execute_script(
        "var gd = document.querySelector('#map .js-plotly-plot');"
        "return Array.from(gd._fullData[0].marker.color);")


def wait_until(fn, timeout=30, interval=0.2):
    end = time.time() + timeout
    while time.time() < end:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def map_image(dash_duo) -> np.ndarray:
    """What the browser drew for the map, as an RGB array (WebGL points, SVG labels, all)."""
    el = dash_duo.find_element("#map .js-plotly-plot")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", el)
    time.sleep(0.3)
    png = el.screenshot_as_png
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def pixels_of(img: np.ndarray, colour: str, tol: int = 60) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img - rgb).sum(-1) < tol).sum())


def point_pixels(dash_duo, img):
    """The drawn colour (RGB) at every point's position on the map."""
    pos = dash_duo.driver.execute_script(
        "var gd = document.querySelector('#map .js-plotly-plot'), L = gd._fullLayout, t = gd._fullData[0];"
        "var x = Array.from(t.x), y = Array.from(t.y);"
        "return x.map(function (v, i) { return [L.xaxis.l2p(v) + L._size.l, L.yaxis.l2p(y[i]) + L._size.t]; });")
    pos = np.rint(np.asarray(pos)).astype(int)
    pos[:, 0] = pos[:, 0].clip(0, img.shape[1] - 1)
    pos[:, 1] = pos[:, 1].clip(0, img.shape[0] - 1)
    return img[pos[:, 1], pos[:, 0]]


def hue_and_saturation(rgb):
    h, _, s = colorsys.rgb_to_hls(*(np.asarray(rgb) / 255.0))
    return h, s


def hue_clusters(hues, min_count: int, gap: float = 0.03) -> list[float]:
    """Centres of the runs of sorted hues separated by more than ``gap`` (colours drawn)."""
    hues = np.sort(np.asarray(hues))
    runs = np.split(hues, np.flatnonzero(np.diff(hues) > gap) + 1)
    return [float(np.median(r)) for r in runs if len(r) >= min_count]


def grid_rows(dash_duo, grid_id):
    return dash_duo.driver.find_elements("css selector", f"#{grid_id} .ag-center-cols-container .ag-row")


def test_page_renders_and_slider_recolours_map(dash_duo, cache_dir):
    start(dash_duo, cache_dir)
    assert dash_duo.find_element("#code-tree .js-plotly-plot")
    wait_for_text(dash_duo, "#depth-label", "N = 1", timeout=30)
    before = map_colours(dash_duo)
    assert len(before) == 400
    thumb = dash_duo.find_element("#depth-slider [role=slider]")
    thumb.click()
    thumb.send_keys(Keys.ARROW_RIGHT)
    wait_for_text(dash_duo, "#depth-label", "N = 2", timeout=30)
    after = wait_until(lambda: (c := map_colours(dash_duo)) != before and c)
    assert len(set(after)) > len(set(before))       # deeper prefix: more groups, more colours
    thumb.send_keys(Keys.HOME)
    wait_for_text(dash_duo, "#depth-label", "N = 0", timeout=30)
    assert len(set(wait_until(lambda: (c := map_colours(dash_duo)) != after and c))) == 1
    assert not dash_duo.get_logs() or all(e["level"] != "SEVERE" for e in dash_duo.get_logs())


def test_sunburst_click_fills_entity_table(dash_duo, cache_dir):
    start(dash_duo, cache_dir)
    slices = dash_duo.driver.find_elements("css selector", "#code-tree g.slice path.surface")
    assert len(slices) > 2
    # The largest first-level branch: slice 0 is the root disc.
    ActionChains(dash_duo.driver).move_to_element(slices[1]).click().perform()
    rows = wait_until(lambda: grid_rows(dash_duo, "entity-table"), timeout=30)
    assert rows and "entities" in dash_duo.find_element("#selection-info").text
    members = dash_duo.driver.execute_script(
        "return document.querySelector('#map .js-plotly-plot').data[1].x.length")
    assert members > 0
    # and they are drawn: the members' overlay colour now covers part of the map
    cyan = F.OVERLAY_COLOURS["branch members"]
    wait_until(lambda: pixels_of(map_image(dash_duo), cyan) > 100, timeout=30)


def test_entity_search_lists_neighbours(dash_duo, cache_dir):
    mammals, _ = DATASETS["mammals"].availability()
    dataset, query, expected = ("mammals", "dog.n.01", "hunting_dog.n.01") if mammals else \
        ("synthetic", "p00000", "p000")
    start(dash_duo, cache_dir, dataset)
    dash_duo.find_element("#entity-search").click()          # Dash 4 dropdown: search box in a popover
    dash_duo.find_element("input.dash-dropdown-search").send_keys(query)
    xpath = f"//*[contains(@class, 'dash-options-list-option') and normalize-space(.)='{query}']"
    option = wait_until(lambda: dash_duo.driver.find_elements("xpath", xpath), timeout=30)[0]
    option.click()
    wait_for_text(dash_duo, "#entity-search", query, timeout=30)
    wait_until(lambda: len(grid_rows(dash_duo, "neighbour-table")) > 3, timeout=30)
    text = dash_duo.find_element("#neighbour-table").text
    assert query in text and expected in text.replace(query, "", 1)
    marked = dash_duo.driver.execute_script(
        "return document.querySelector('#map .js-plotly-plot').data[2].x.length")
    assert marked >= 3
    # drawn, not only in the data: the neighbour and query markers' colour appears on screen
    magenta = F.OVERLAY_COLOURS["neighbours"]
    wait_until(lambda: pixels_of(map_image(dash_duo), magenta) > 150, timeout=30)


def test_export_downloads_non_empty_file(dash_duo, cache_dir):
    start(dash_duo, cache_dir)
    dash_duo.find_element("#export-button").click()
    target = dash_duo.download_path
    files = wait_until(lambda: [f for f in os.listdir(target) if f.endswith(".png")], timeout=120)
    path = os.path.join(target, files[0])
    wait_until(lambda: os.path.getsize(path) > 1000, timeout=30)
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_upload_shows_error_and_server_keeps_serving(dash_duo, cache_dir, tmp_path):
    start(dash_duo, cache_dir)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,hello\n2,3\n")
    dash_duo.find_element("#upload input[type=file]").send_keys(str(bad))
    wait_for_text(dash_duo, "#upload-error", "bad.csv", timeout=30)
    assert dash_duo.find_element("#upload-error").is_displayed()
    # the server still answers callbacks: the slider still recolours
    thumb = dash_duo.find_element("#depth-slider [role=slider]")
    thumb.click()
    thumb.send_keys(Keys.ARROW_RIGHT)
    wait_for_text(dash_duo, "#depth-label", "N = 2", timeout=30)


def test_background_training_shows_progress_and_cancels(dash_duo, tmp_path):
    """HKD trains in a Dash background job: the page shows its epochs, and Cancel stops it."""
    app = create_app(cache_dir=str(tmp_path), default_dataset="synthetic", dataset_options=SMALL,
                     controls={"model": "hkd", "epochs": 5000}, projection="pca")   # the most the page allows
    dash_duo.start_server(app)
    wait_for_text(dash_duo, "#progress-text", "epoch", timeout=120)
    assert not dash_duo.find_element("#train-button").is_enabled()       # a job is running
    dash_duo.find_element("#cancel-button").click()
    wait_until(lambda: dash_duo.find_element("#train-button").is_enabled(), timeout=60)
    stopped_at = dash_duo.find_element("#progress-text").text
    time.sleep(3)
    assert dash_duo.find_element("#progress-text").text == stopped_at     # no progress after cancel
    assert "epoch 5000/5000" not in stopped_at


def test_hierarchical_colours_drawn_children_are_shades_of_parents(dash_duo, tmp_path):
    """K=2 tree on the synthetic hierarchy: at N=1 two hues are drawn; at N=2 each half splits
    into two different colours whose drawn hue stays near its parent's, and the legend names
    the branches (g0 / g1: the nodes of the synthetic hierarchy)."""
    app = create_app(cache_dir=str(tmp_path), default_dataset="synthetic", dataset_options=SMALL,
                     controls={"model": "hkm", "K": 2}, projection="pca")
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#map-legend .legend-item", timeout=120)
    wait_for_text(dash_duo, "#depth-label", "N = 1 · 2 groups", timeout=30)
    legend = dash_duo.find_element("#map-legend").text
    assert "g0" in legend and "g1" in legend
    time.sleep(1)
    at1 = point_pixels(dash_duo, map_image(dash_duo))
    thumb = dash_duo.find_element("#depth-slider [role=slider]")
    thumb.click()
    thumb.send_keys(Keys.ARROW_RIGHT)
    wait_for_text(dash_duo, "#depth-label", "N = 2 · 4 groups", timeout=30)
    time.sleep(1)
    at2 = point_pixels(dash_duo, map_image(dash_duo))
    h1 = np.array([hue_and_saturation(p) for p in at1])
    h2 = np.array([hue_and_saturation(p) for p in at2])
    coloured = (h1[:, 1] > 0.3) & (h2[:, 1] > 0.3)            # skip pixels under label text
    assert coloured.mean() > 0.6
    parents = h1[coloured, 0]
    top = hue_clusters(parents, 20)
    assert len(top) == 2                                      # two branches, two hues drawn
    for hue in top:
        rows = np.abs(parents - hue) < 0.03
        kids = hue_clusters(h2[coloured][rows, 0], 10, gap=0.02)
        assert len(kids) == 2                                 # the branch splits in two colours
        assert all(abs(k - hue) < 0.25 for k in kids)         # each a shade of the parent's hue


def choose(dash_duo, dropdown_id, label):
    """Pick an option of a Dash 4 dropdown by its visible label."""
    dash_duo.find_element(f"#{dropdown_id}").click()
    xpath = f"//*[contains(@class, 'dash-options-list-option') and normalize-space(.)='{label}']"
    wait_until(lambda: dash_duo.driver.find_elements("xpath", xpath), timeout=30)[0].click()


def test_box_selection_fills_table_is_drawn_and_exports(dash_duo, cache_dir):
    start(dash_duo, cache_dir)
    dash_duo.driver.set_window_size(1400, 1100)
    dash_duo.find_element("#map .modebar-btn[data-title='Box Select']").click()
    before = pixels_of(map_image(dash_duo), F.OVERLAY_COLOURS["selection"])   # scrolls the map into view
    area = dash_duo.find_element("#map .nsewdrag")
    w, h = area.size["width"], area.size["height"]
    # (selenium <= 4.2: the offset is from the element's top-left corner)
    ActionChains(dash_duo.driver).move_to_element_with_offset(area, 5, 5) \
        .click_and_hold().move_by_offset(w // 2, h // 2).release().perform()
    wait_for_text(dash_duo, "#selection-info", "Selection:", timeout=30)
    n_selected = int(dash_duo.find_element("#selection-info").text.split("Selection: ")[1].split()[0])
    assert 0 < n_selected < 400
    wait_until(lambda: len(grid_rows(dash_duo, "entity-table")) > 0, timeout=30)
    # the selected points are drawn in the selection colour
    wait_until(lambda: pixels_of(map_image(dash_duo), F.OVERLAY_COLOURS["selection"]) > before + 100, timeout=30)
    choose(dash_duo, "export-target", "Selected points (table)")
    wait_for_text(dash_duo, "#export-format", "csv", timeout=30)
    dash_duo.find_element("#export-button").click()
    target = dash_duo.download_path
    files = wait_until(lambda: [f for f in os.listdir(target) if f.endswith("_selection.csv")], timeout=60)
    path = os.path.join(target, files[0])
    wait_until(lambda: os.path.getsize(path) > 0, timeout=30)
    import pandas as pd

    table = pd.read_csv(path)
    assert len(table) == n_selected
    assert {"name", "label", "x", "y", "code", "c1"} <= set(table.columns)


def test_find_by_code_prefix_highlights_matches(dash_duo, cache_dir):
    start(dash_duo, cache_dir)
    box = dash_duo.find_element("#find-box")
    box.send_keys("0" + Keys.ENTER)           # every point whose first digit is 0
    wait_for_text(dash_duo, "#find-info", "code prefix 0", timeout=30)
    found = int(dash_duo.find_element("#find-info").text.split(": ")[1].split()[0])
    assert 0 < found < 400
    wait_until(lambda: len(grid_rows(dash_duo, "entity-table")) > 0, timeout=30)
    marked = dash_duo.driver.execute_script(
        "return document.querySelector('#map .js-plotly-plot').data[1].x.length")
    assert marked == found
    wait_until(lambda: pixels_of(map_image(dash_duo), F.OVERLAY_COLOURS["branch members"]) > 100, timeout=30)
    box.clear()
    box.send_keys("code: zz" + Keys.ENTER)
    wait_for_text(dash_duo, "#find-info", "Cannot search", timeout=30)


def test_upload_stays_in_the_dataset_list_after_a_reload(dash_duo, tmp_path):
    start(dash_duo, str(tmp_path))
    good = tmp_path / "mine.csv"
    rng = np.random.default_rng(0)
    good.write_text("name,a,b,c\n" + "\n".join(f"row{i},{x:.3f},{y:.3f},{z:.3f}"
                                               for i, (x, y, z) in enumerate(rng.normal(size=(60, 3)))))
    dash_duo.find_element("#upload input[type=file]").send_keys(str(good))
    wait_for_text(dash_duo, "#dataset-select", "mine.csv", timeout=60)
    dash_duo.driver.refresh()
    dash_duo.wait_for_element("#dataset-select", timeout=60)
    dash_duo.find_element("#dataset-select").click()
    xpath = "//*[contains(@class, 'dash-options-list-option') and contains(normalize-space(.), 'mine.csv')]"
    wait_until(lambda: dash_duo.driver.find_elements("xpath", xpath), timeout=30)


def test_image_thumbnail_in_the_hover(dash_duo, tmp_path):
    """scikit-learn digits (8x8 images): hovering a point shows its image, drawn."""
    app = create_app(cache_dir=str(tmp_path), default_dataset="digits",
                     dataset_options={"digits": {"limit": 200}}, controls={"model": "hkm"}, projection="pca")
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#map-legend .legend-item", timeout=120)
    time.sleep(1)
    img = map_image(dash_duo)                                   # scrolls the map into view
    pos = dash_duo.driver.execute_script(
        "var gd = document.querySelector('#map .js-plotly-plot'), L = gd._fullLayout, t = gd._fullData[0];"
        "return [L.xaxis.l2p(t.x[0]) + L._size.l, L.yaxis.l2p(t.y[0]) + L._size.t];")
    plot = dash_duo.find_element("#map .js-plotly-plot")
    ActionChains(dash_duo.driver).move_to_element_with_offset(plot, int(pos[0]), int(pos[1])).perform()
    thumb = wait_until(lambda: dash_duo.driver.find_elements("css selector", "#map-tooltip img.thumb-img"), timeout=30)[0]
    wait_until(lambda: dash_duo.driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0;", thumb), timeout=30)
    assert thumb.is_displayed() and thumb.size["width"] >= 64
    assert "digit" in dash_duo.find_element("#map-tooltip").text
    assert img.size


def test_colour_by_label(dash_duo, cache_dir):
    start(dash_duo, cache_dir)
    choose(dash_duo, "colour-scheme", "colour: label")
    wait_for_text(dash_duo, "#map-caption", "colour = label", timeout=30)
    legend = dash_duo.find_element("#map-legend").text
    assert "g0000" in legend or "g1111" in legend                      # labels, not prefixes
    time.sleep(1)
    drawn = point_pixels(dash_duo, map_image(dash_duo))
    labels = app_labels = DATASETS["synthetic"].load(**SMALL["synthetic"]).labels
    by_label = {}
    for rgb, lab in zip(drawn, app_labels):
        h, s = hue_and_saturation(rgb)
        if s > 0.3:
            by_label.setdefault(lab, []).append(round(h, 2))
    # each label is drawn in (mostly) one colour, and the labels in many different ones
    main = {lab: max(set(hs), key=hs.count) for lab, hs in by_label.items() if len(hs) >= 5}
    agree = {lab: float(np.mean(np.abs(np.array(by_label[lab]) - main[lab]) < 0.03)) for lab in main}
    assert np.median(list(agree.values())) > 0.7
    assert len(set(main.values())) >= 8 and len(main) >= 12 and labels


def test_url_restores_depth_projection_and_branch_after_reload(dash_duo, cache_dir):
    start(dash_duo, cache_dir)
    thumb = dash_duo.find_element("#depth-slider [role=slider]")
    thumb.click()
    thumb.send_keys(Keys.ARROW_RIGHT)
    wait_for_text(dash_duo, "#depth-label", "N = 2", timeout=30)
    slices = dash_duo.driver.find_elements("css selector", "#code-tree g.slice path.surface")
    ActionChains(dash_duo.driver).move_to_element(slices[1]).click().perform()
    wait_for_text(dash_duo, "#selection-info", "Branch", timeout=30)
    branch_text = dash_duo.find_element("#selection-info").text
    def written():
        u = dash_duo.driver.current_url
        return u if "branch=" in u and "depth=2" in u else None
    url = wait_until(written)
    assert "projection=pca" in url and "model=hkm" in url
    dash_duo.driver.refresh()                                        # a reload
    wait_for_text(dash_duo, "#depth-label", "N = 2", timeout=120)
    wait_for_text(dash_duo, "#selection-info", branch_text, timeout=60)
    dash_duo.driver.get(url.replace("projection=pca", "projection=tsne"))   # a pasted, edited link
    wait_for_text(dash_duo, "#map-caption", "t-SNE", timeout=120)
    wait_for_text(dash_duo, "#depth-label", "N = 2", timeout=60)
    wait_for_text(dash_duo, "#selection-info", branch_text, timeout=60)
    assert "Branch" in dash_duo.find_element("#selection-info").text
    wait_until(lambda: len(grid_rows(dash_duo, "entity-table")) > 0, timeout=30)
    # a hostile URL is ignored, the page still works
    dash_duo.driver.get(url.split("?")[0] + "?dataset=../../etc&depth=-7&branch=<b>&K=2.5")
    wait_for_text(dash_duo, "#depth-label", "N = 1", timeout=120)


def test_tradeoff_chart_and_side_by_side_trees(dash_duo, tmp_path):
    """Two coders on one data set: the trade-off chart draws a line per coder (N at each point) and
    the compare menu draws the other coder's tree beside the first."""
    start(dash_duo, str(tmp_path))
    wait_until(lambda: dash_duo.driver.find_elements("css selector", "#tradeoff .scatterlayer .trace"), timeout=30)
    choose(dash_duo, "model-select", "random")
    dash_duo.find_element("#train-button").click()
    wait_for_text(dash_duo, "#status", "random trained", timeout=60)
    traces = lambda: dash_duo.driver.find_elements("css selector", "#tradeoff .scatterlayer .trace")  # noqa: E731
    lines = wait_until(lambda: (lambda t: t if len(t) == 2 else None)(traces()), timeout=30)
    points = dash_duo.driver.find_elements("css selector", "#tradeoff .scatterlayer .trace path.point")
    assert len(lines) == 2 and len(points) >= 8
    legend = dash_duo.find_element("#tradeoff .legend").text
    assert "random" in legend and "hkm" in legend and "shown" in legend
    choose(dash_duo, "compare-select", next(t for t in legend.splitlines() if t.startswith("hkm")))
    wait_until(lambda: dash_duo.find_element("#compare-box").is_displayed(), timeout=30)
    slices = wait_until(lambda: dash_duo.driver.find_elements("css selector", "#code-tree-2 g.slice path.surface"),
                        timeout=30)
    assert len(slices) > 2


def test_upload_metadata_colours_the_map_and_tables_show_thumbnails(dash_duo, tmp_path):
    """A Parquet upload with an embedding column, a text and a numeric metadata column and
    image bytes: colour by each column is drawn, and the entity table draws the thumbnails."""
    import pandas as pd

    from app.colours import SEQUENTIAL

    rng = np.random.default_rng(1)
    n = 80
    kind = np.where(np.arange(n) < n // 2, "left", "right")
    xy = np.column_stack([np.where(kind == "left", -6.0, 6.0) + rng.normal(0, 0.6, n), rng.normal(0, 0.6, n)])

    def png(colour):
        buf = io.BytesIO()
        Image.new("RGB", (24, 24), colour).save(buf, format="PNG")
        return buf.getvalue()

    frame = pd.DataFrame({"name": [f"item{i}" for i in range(n)],
                          "embedding": [list(v) + [0.0] for v in xy], "kind": kind, "score": xy[:, 0],
                          "image": [png((230, 20, 20)) if k == "left" else png((20, 20, 230)) for k in kind]})
    path = tmp_path / "tagged.parquet"
    frame.to_parquet(path, index=False)
    start(dash_duo, str(tmp_path / "cache"))
    dash_duo.driver.set_window_size(1400, 1100)
    dash_duo.find_element("#upload input[type=file]").send_keys(str(path))
    wait_for_text(dash_duo, "#dataset-select", "tagged.parquet", timeout=60)
    wait_for_text(dash_duo, "#map-caption", "tagged.parquet", timeout=120)

    choose(dash_duo, "colour-scheme", "colour: column kind")
    wait_for_text(dash_duo, "#map-caption", "colour = column kind", timeout=60)
    assert "left" in dash_duo.find_element("#map-legend").text
    time.sleep(1)
    drawn = point_pixels(dash_duo, map_image(dash_duo))
    hues = {k: [hue_and_saturation(rgb)[0] for rgb, kk in zip(drawn, kind) if kk == k] for k in ("left", "right")}
    left, right = np.median(hues["left"]), np.median(hues["right"])
    assert abs(left - right) > 0.05                                  # two kinds, two colours drawn
    assert np.mean(np.abs(np.array(hues["left"]) - left) < 0.03) > 0.7

    choose(dash_duo, "colour-scheme", "colour: column score")
    wait_for_text(dash_duo, "#map-caption", "colour = column score", timeout=60)
    time.sleep(1)
    drawn = point_pixels(dash_duo, map_image(dash_duo))
    order = np.argsort(xy[:, 0])
    low, high = drawn[order[:10]], drawn[order[-10:]]
    dark = np.array([int(SEQUENTIAL[0][i:i + 2], 16) for i in (1, 3, 5)])
    yellow = np.array([int(SEQUENTIAL[-1][i:i + 2], 16) for i in (1, 3, 5)])
    # the lowest scores are drawn near the palette's dark end, the highest near its yellow end
    assert np.median(np.abs(low - dark).sum(1)) < np.median(np.abs(low - yellow).sum(1))
    assert np.median(np.abs(high - yellow).sum(1)) < np.median(np.abs(high - dark).sum(1))

    box = dash_duo.find_element("#find-box")
    box.send_keys("item1" + Keys.ENTER)                              # item1, item10..item19
    thumbs = wait_until(lambda: dash_duo.driver.find_elements("css selector", "#entity-table img.cell-thumb"),
                        timeout=30)
    wait_until(lambda: all(dash_duo.driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0;", t) for t in thumbs), timeout=30)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", thumbs[0])
    time.sleep(0.3)
    shot = np.asarray(Image.open(io.BytesIO(thumbs[0].screenshot_as_png)).convert("RGB")).astype(int)
    assert thumbs[0].is_displayed() and thumbs[0].size["width"] >= 24
    # drawn: the red of the left items (item1.. are all on the left)
    assert pixels_of(shot, "#e61414") > 0.3 * shot.shape[0] * shot.shape[1]


def test_a_slow_map_is_drawn_after_pca_without_blocking(dash_duo, tmp_path, monkeypatch):
    """Above INSTANT_ROWS the first map is PCA at once; t-SNE follows from a background job."""
    import app.state

    monkeypatch.setattr(app.state, "INSTANT_ROWS", 100)
    application = create_app(cache_dir=str(tmp_path), default_dataset="mammals", controls=FAST)  # t-SNE map
    dash_duo.start_server(application)
    wait_for_text(dash_duo, "#map-caption", "being computed in the background", timeout=120)
    assert "PCA" in dash_duo.find_element("#map-caption").text
    n = application.workspace.dataset("mammals").n
    assert dash_duo.driver.execute_script(
        "return document.querySelector('#map .js-plotly-plot')._fullData[0].x.length") == n   # drawn meanwhile
    wait_until(lambda: "t-SNE" in dash_duo.find_element("#map-caption").text
               and "background" not in dash_duo.find_element("#map-caption").text, timeout=240)
    wait_for_text(dash_duo, "#status", "map computed in", timeout=30)


def test_a_file_over_the_limit_is_refused_in_the_page(dash_duo, cache_dir, tmp_path):
    from hkd_core.uploads import MAX_UPLOAD_BYTES

    start(dash_duo, cache_dir)
    big = tmp_path / "big.csv"
    with open(big, "wb") as fh:
        fh.truncate(MAX_UPLOAD_BYTES + 1)
    dash_duo.find_element("#upload input[type=file]").send_keys(str(big))
    wait_for_text(dash_duo, "#upload-error", "Upload rejected: 'big.csv' is 50.0 MB", timeout=30)
    assert dash_duo.find_element("#upload-error").is_displayed()
    assert "the limit is 50.0 MB" in dash_duo.find_element("#upload-error").text


def test_an_upload_over_the_old_200k_row_limit_is_drawn_at_once(dash_duo, tmp_path):
    """250,000 rows (above the old 200k limit): the first map (PCA, coloured by label while the
    codes train in the background) is drawn without waiting for any model or metric."""
    import pandas as pd

    n = 250_000
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (8, 6)).astype(np.float32)
    label = rng.integers(0, 8, n)
    X = centres[label] + rng.normal(0, 1, (n, 6)).astype(np.float32)
    frame = pd.DataFrame({"label": [f"c{k}" for k in label], "embedding": list(X)})
    path = tmp_path / "big.parquet"
    frame.to_parquet(path, index=False)
    app = create_app(cache_dir=str(tmp_path / "cache"), default_dataset="synthetic", dataset_options=SMALL,
                     controls={"model": "hkm", "K": 4, "D": 4}, projection="pca")
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#map-legend .legend-item", timeout=120)
    started = time.time()
    dash_duo.find_element("#upload input[type=file]").send_keys(str(path))
    wait_for_text(dash_duo, "#map-caption", "big.parquet", timeout=240)
    assert "coloured by label (codes are being trained)" in dash_duo.find_element("#map-caption").text
    drawn = wait_until(lambda: dash_duo.driver.execute_script(
        "var gd = document.querySelector('#map .js-plotly-plot');"
        "return gd._fullData[0].x.length === 250000 && gd._fullData[0].marker.color.length"), timeout=120)
    assert drawn == n
    img = map_image(dash_duo)
    assert (np.abs(np.diff(img.reshape(-1, 3), axis=0)).sum(1) > 0).mean() > 0.01     # points drawn
    print(f"upload of {n:,} rows to first map: {time.time() - started:.0f} s")
    dash_duo.find_element("#cancel-button").click()           # stop the background fit


@pytest.mark.parametrize("model", ["rqvae", "shred", "hcrl"])
def test_the_other_papers_coders_train_from_the_menu(dash_duo, tmp_path, model):
    """rqvae, shred (labels + the synthetic label tree) and hcrl train as background jobs from
    the page, and their codes colour the map."""
    app = create_app(cache_dir=str(tmp_path), default_dataset="synthetic", dataset_options=SMALL,
                     controls={"model": model, "epochs": 3, "K": 4, "D": 4}, projection="pca")
    dash_duo.start_server(app)
    wait_for_text(dash_duo, "#map-caption", f"shared first-N code prefix of {model}", timeout=240)
    wait_for_text(dash_duo, "#status", "codes ready", timeout=60)
    assert len(dash_duo.find_elements("#map-legend .legend-item")) >= 2      # its codes split the data
    drawn = point_pixels(dash_duo, map_image(dash_duo))
    assert len({tuple(int(v) // 24 for v in rgb) for rgb in drawn}) >= 2    # in at least two colours
