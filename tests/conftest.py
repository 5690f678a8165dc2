"""Shared pytest configuration: only the browser guard.

Browser tests (those using the ``dash_duo`` fixture of dash[testing]) need Chromium and
chromedriver. Locally they are skipped when these are missing; with CI=true they fail, so a CI
image without a browser cannot pass silently. Headless mode is switched on automatically when
there is no display, so ``python -m pytest`` works as is (``--headless`` is still accepted).
"""
import os
import shutil

import pytest

_CHROME_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def _missing_browser_parts() -> list[str]:
    chrome = os.environ.get("DASH_TEST_CHROMEPATH") or next(
        (p for p in map(shutil.which, _CHROME_CANDIDATES) if p), None)
    missing = []
    if not chrome or not os.path.exists(chrome):
        missing.append("chromium (set DASH_TEST_CHROMEPATH)")
    if not shutil.which("chromedriver"):
        missing.append("chromedriver")
    return missing


def pytest_configure(config):
    if hasattr(config.option, "headless") and not os.environ.get("DISPLAY"):
        config.option.headless = True
    if "DASH_TEST_CHROMEPATH" not in os.environ and os.path.exists("/usr/bin/chromium"):
        os.environ["DASH_TEST_CHROMEPATH"] = "/usr/bin/chromium"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if "dash_duo" not in getattr(item, "fixturenames", ()):
        return
    missing = _missing_browser_parts()
    if not missing:
        return
    message = "browser test needs " + " and ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: browser tests must run in CI)", pytrace=False)
    pytest.skip(message)
