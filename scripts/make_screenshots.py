"""Screenshots of the real app for the README: python scripts/make_screenshots.py [--out DIR]

Starts the app on WordNet mammals (HKM codes, trained in seconds, and the t-SNE map), drives it in
headless Chromium (Debian's chromium + chromium-driver) and saves docs/screenshots/*.png: the whole
page, the map at depths 1 and 3 with hierarchical colours, a dog.n.01 search with its neighbours
drawn, a code-tree branch click and the trade-off chart; then scikit-learn's digits coloured by
label with an image in the hover, and a box selection with the selected images in the table.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(fn, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        try:
            value = fn()
            if value:
                return value
        except Exception:
            pass
        time.sleep(0.3)
    raise RuntimeError("timed out")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "screenshots"))
    parser.add_argument("--cache-dir", default=None, help="app cache (default: a fresh temporary one)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from app import create_app

    cache = args.cache_dir or tempfile.mkdtemp(prefix="hkd_shots_")
    app = create_app(cache_dir=cache, default_dataset="mammals", controls={"model": "hkm", "K": 2},
                     projection="tsne")
    port = free_port()
    threading.Thread(target=lambda: app.run(host="127.0.0.1", port=port, debug=False), daemon=True).start()

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options)
    try:
        wait(lambda: driver.get(f"http://127.0.0.1:{port}/") or True, 30)
        wait(lambda: "t-SNE" in driver.find_element("css selector", "#map-caption").text
             and "hkm" in driver.find_element("css selector", "#map-caption").text, 300)
        time.sleep(2)

        def shot(name, selector=None):
            path = os.path.join(args.out, name)
            if selector:
                el = driver.find_element("css selector", selector)
                driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", el)
                time.sleep(0.5)
                el.screenshot(path)
            else:
                driver.save_screenshot(path)
            print("wrote", path)

        shot("page.png")
        thumb = driver.find_element("css selector", "#depth-slider [role=slider]")
        thumb.click()
        thumb.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        wait(lambda: "N = 3" in driver.find_element("css selector", "#depth-label").text)
        time.sleep(1)
        shot("map_depth3.png", ".map-card")
        driver.find_element("css selector", "#entity-search").click()
        driver.find_element("css selector", "input.dash-dropdown-search").send_keys("dog.n.01")
        xpath = "//*[contains(@class, 'dash-options-list-option') and normalize-space(.)='dog.n.01']"
        wait(lambda: driver.find_elements("xpath", xpath))[0].click()
        wait(lambda: len(driver.find_elements("css selector", "#neighbour-table .ag-row")) > 3)
        time.sleep(1.5)
        shot("search_dog.png", ".map-card")
        shot("neighbours.png", "#neighbour-table")
        tree = driver.find_element("css selector", "#code-tree")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", tree)
        time.sleep(0.5)
        slices = driver.find_elements("css selector", "#code-tree g.slice path.surface")
        # a small wedge: the centre of a half-ring's bounding box lies on the root disc
        width = tree.size["width"]
        wedge = next(s for s in slices[1:] if s.size["width"] < 0.3 * width)
        ActionChains(driver).move_to_element(wedge).click().perform()
        wait(lambda: "entities" in driver.find_element("css selector", "#selection-info").text, 60)
        time.sleep(1)
        shot("code_tree.png", ".tree-card")
        shot("tradeoff.png", "#tradeoff")

        # image data: scikit-learn's digits coloured by label, a hover thumbnail, a box selection
        driver.get(f"http://127.0.0.1:{port}/?dataset=digits&model=hkm&K=4&projection=tsne&colour=label")
        wait(lambda: "colour = label" in driver.find_element("css selector", "#map-caption").text
             and "hkm" in driver.find_element("css selector", "#map-caption").text, 300)
        time.sleep(2)
        plot = driver.find_element("css selector", "#map .js-plotly-plot")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", plot)
        time.sleep(0.5)
        pos = driver.execute_script(
            "var gd = document.querySelector('#map .js-plotly-plot'), L = gd._fullLayout, t = gd._fullData[0];"
            "return [L.xaxis.l2p(t.x[7]) + L._size.l, L.yaxis.l2p(t.y[7]) + L._size.t];")
        # (selenium <= 4.2: offsets from the element's top-left corner)
        ActionChains(driver).move_to_element_with_offset(plot, int(pos[0]), int(pos[1])).perform()
        wait(lambda: driver.find_elements("css selector", "#map-tooltip img.thumb-img"), 60)
        time.sleep(1)
        shot("digits_hover.png", ".map-card")
        driver.find_element("css selector", "#map .modebar-btn[data-title='Box Select']").click()
        area = driver.find_element("css selector", "#map .nsewdrag")
        w, h = area.size["width"], area.size["height"]
        ActionChains(driver).move_to_element_with_offset(area, w // 3, h // 3).click_and_hold() \
            .move_by_offset(w // 4, h // 4).release().perform()
        wait(lambda: "Selection:" in driver.find_element("css selector", "#selection-info").text, 60)
        wait(lambda: driver.find_elements("css selector", "#entity-table img.cell-thumb"), 60)
        time.sleep(1.5)
        shot("selection.png", ".map-card")
        shot("selection_tree.png", ".tree-card")
        shot("selection_table.png", ".entity-card")
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
