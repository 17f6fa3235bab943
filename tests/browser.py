"""Playwright driving the machine's installed Chromium (never a downloaded browser).

``chromium()`` finds the browser (``LM_CHROMIUM``, else ``chromium`` or
``chromium-browser`` or ``google-chrome`` on PATH) and skips the test, saying
why, when there is none, unless ``LM_REQUIRE_BROWSER=1`` (set by ``.ci/run``),
which turns a missing browser into a failure. Screenshots go to
``build/artifacts`` (``LM_ARTIFACTS`` to move them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(os.environ.get("LM_ARTIFACTS", Path(__file__).parent.parent / "build/artifacts"))

# The flags Chromium needs on a machine with no network and no sandbox user.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def executable() -> str:
    found = os.environ.get("LM_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    if found is None:
        why = "no Chromium installed (apt-get install chromium, or set LM_CHROMIUM)"
        if os.environ.get("LM_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return found


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright browser over the installed Chromium."""
    sync_api = pytest.importorskip("playwright.sync_api")
    path = executable()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """A page that records console errors and uncaught exceptions."""

    def __init__(
        self, browser: Any, *, width: int = 1200, height: int = 900, color_scheme: str = "light"
    ) -> None:
        self.page = browser.new_page(
            viewport={"width": width, "height": height}, color_scheme=color_scheme
        )
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def charts_state(page: Any) -> list[dict[str, Any]]:
    """What uPlot drew: each chart's title, axis labels and the tick labels it rendered."""
    return page.evaluate(
        """() => LMCharts.instances.map(u => ({
            id: u.lmSpec.id,
            width: u.width,
            axes: u.axes.map(a => ({label: a.label, ticks: (a._values || []).filter(v => v)})),
            nulls: u.data.slice(1).map(col => col.filter(v => v === null).length),
        }))"""
    )


def assert_readable(state: list[dict[str, Any]]) -> None:
    for chart in state:
        assert chart["width"] >= 320
        for axis in chart["axes"]:
            assert axis["label"], chart  # every axis says what it measures
            assert len(axis["ticks"]) >= 2, (chart["id"], axis)
            # No label printed twice (a half-second step under m:ss labels did).
            assert len(set(axis["ticks"])) == len(axis["ticks"]), (chart["id"], axis)


def check_report(path: Path, name: str, *, width: int = 1200) -> list[dict[str, Any]]:
    """Open a report from disk, check it drew readable charts; the charts' state."""
    with chromium() as browser:
        page = Page(browser, width=width)
        page.page.goto(path.resolve().as_uri())
        page.page.wait_for_function("window.LMCharts && LMCharts.instances.length > 0")
        state = charts_state(page.page)
        page.screenshot(name)
        assert page.errors == []
    assert_readable(state)
    return state
