"""The dashboard in a real browser: Playwright driving the installed Chromium
against uvicorn on 127.0.0.1, mounted in a host app as a service would, with a
real Locust cluster running a real load test.

The host authenticates browsers with a session cookie, so the CSRF check is
what a cookie-authenticated host gets.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_server import serve
from browser import Page, chromium

import loadmanager as lm
from loadmanager.http import ApiRequest, Principal, create_app, create_dashboard
from loadmanager.testing.target import TargetServer

pytestmark = pytest.mark.slow
GENTLE = Path(__file__).parent / "locustfiles" / "gentle.py"
SESSIONS = {
    "alice-session": Principal("alice@example.com", {"tenant-1"}),
    "eve-session": Principal("eve@example.com", {"tenant-2"}),
}


def session_cookie(request: ApiRequest) -> Principal | None:
    """A host's cookie login: the session cookie names the principal."""
    for part in request.headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "session":
            return SESSIONS.get(value)
    return None


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, lm.Orchestrator]]:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    tmp = tmp_path_factory.mktemp("dashboard")
    with (
        TargetServer(slow_ms=20, fail_ratio=0.05) as target,
        lm.LocalCluster(GENTLE, workers=1, host=target.url) as cluster,
        lm.connect(f"sqlite:///{tmp / 'dashboard.db'}") as storage,
        lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"cluster-1": cluster.url}),
            poll_interval=1.0,
        ) as orch,
    ):
        app = Starlette(
            routes=[
                Mount("/api", create_app(orch, authenticate=session_cookie)),
                Mount(
                    "/dashboard",
                    create_dashboard(orch, authenticate=session_cookie, secure_cookies=False),
                ),
            ]
        )
        orch.create_load_test(
            {
                "name": "Checkout API",
                "description": "The checkout path under load",
                "tags": ["api", "checkout"],
                "tenantId": "tenant-1",
                "envId": "staging",
                "locustClusterId": "cluster-1",
                "targetUrl": target.url,
                "locustfile": "gentle.py",
                "defaultUsers": 3,
                "defaultSpawnRate": 3,
                "thresholds": ["p95 < 2000ms", "error_rate < 50% for 3s", "rps > 0"],
            },
            actor="alice@example.com",
        )
        for base in serve(app):
            yield base, orch


class Outline(HTMLParser):
    """What an accessibility check needs from a page's HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[int] = []
        self.controls: list[dict[str, str | None]] = []
        self.labels_for: set[str] = set()
        self.images: list[dict[str, str | None]] = []
        self._label_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.headings.append(int(tag[1]))
        elif tag == "label":
            self._label_depth += 1
            if found.get("for"):
                self.labels_for.add(str(found["for"]))
        elif tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.controls.append({**found, "_wrapped": "yes" if self._label_depth else None})
        elif tag in ("img", "svg"):
            self.images.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth -= 1


def assert_accessible(html: str) -> None:
    outline = Outline()
    outline.feed(html)
    assert outline.headings[:1] == [1], outline.headings
    for before, after in zip(outline.headings, outline.headings[1:], strict=False):
        assert after <= before + 1, f"heading h{before} is followed by h{after}"
    for control in outline.controls:
        labelled = (
            control.get("_wrapped")
            or control.get("aria-label")
            or (control.get("id") and control["id"] in outline.labels_for)
        )
        assert labelled, f"a control without a label: {control}"
    for image in outline.images:
        assert image.get("alt") or image.get("aria-label") or image.get("aria-hidden"), image


def login(browser: Any, base: str, who: str, **page: Any) -> Page:
    tab = Page(browser, **page)
    tab.page.context.add_cookies([{"name": "session", "value": who, "url": base}])
    return tab


def rps_points(tab: Page) -> int:
    return int(
        tab.page.evaluate(
            """() => {
                const load = LMCharts.instances.find(u => u.lmSpec.id === "load");
                return load ? load.data[1].filter(v => v !== null).length : 0;
            }"""
        )
    )


def test_a_live_run_from_start_to_stop(host: tuple[str, lm.Orchestrator]) -> None:
    base, orch = host
    dash = f"{base}/dashboard"
    with chromium() as browser:
        tab = login(browser, base, "alice-session")
        tab.page.goto(f"{dash}/tests")
        assert tab.page.inner_text("h1") == "Load tests"
        assert "Checkout API" in tab.page.inner_text("table")
        assert_accessible(tab.page.content())
        tab.screenshot("dashboard-tests")

        tab.page.click("text=Checkout API")
        tab.page.wait_for_selector("#start-form")
        assert_accessible(tab.page.content())
        # Keyboard only: Tab reaches the start form's fields and its button.
        reached = set()
        for _ in range(25):
            tab.page.keyboard.press("Tab")
            reached.add(
                tab.page.evaluate(
                    "() => document.activeElement.id || document.activeElement.textContent"
                )
            )
        assert {"users", "spawn", "runtime", "Start run"} <= reached, reached
        tab.screenshot("dashboard-test-before")
        tab.page.fill("#users", "4")
        tab.page.fill("#spawn", "4")
        tab.page.click("#start-form button")
        tab.page.wait_for_url("**/runs/*")
        run_id = tab.page.url.rsplit("/", 1)[1]

        # The live chart gains points while the run runs.
        tab.page.wait_for_function("() => window.LMCharts && LMCharts.instances.length >= 2")
        first = rps_points(tab)
        deadline = time.monotonic() + 30
        while rps_points(tab) < first + 3:
            assert time.monotonic() < deadline, "the live chart did not grow"
            tab.page.wait_for_timeout(500)
        assert tab.page.inner_text("#status") == "running"
        tab.page.wait_for_selector("text=Latest snapshot")  # the live endpoint table
        assert_accessible(tab.page.content())
        tab.screenshot("dashboard-run-live")

        tab.page.click("#stop")
        tab.page.wait_for_function(
            "() => document.getElementById('status').textContent === 'stopped'", timeout=30_000
        )
        assert tab.page.inner_text("#reason") == "stopped by alice@example.com"
        tab.page.wait_for_function(
            "() => document.getElementById('verdict').textContent !== 'RUNNING'"
        )
        assert "stopped (stopped by alice@example.com)" in tab.page.inner_text("#facts")
        assert tab.page.is_hidden("#stop")
        tab.page.wait_for_selector("text=The verdict")
        assert orch.get_run(run_id).status is lm.RunStatus.STOPPED
        tab.screenshot("dashboard-run-stopped")

        # The stopped run becomes the baseline, through the API with If-Match and CSRF.
        tab.page.reload()
        tab.page.click("#baseline")
        tab.page.wait_for_selector("text=This run is now its test's baseline.")
        test = orch.get_load_test(orch.get_run(run_id).load_test_id)
        assert test.baseline_run_id == run_id
        assert tab.errors == []

        # A second, short run, compared with the first on the compare page.
        second = orch.start_run(test.id, {"runTime": 3}, actor="alice@example.com")
        orch.wait(second.id, timeout=60)
        tab.page.goto(f"{dash}/runs/{second.id}")
        tab.page.select_option("#baseline-pick", run_id)
        tab.page.click("form.inline button")
        tab.page.wait_for_url("**/compare?*")
        tab.page.wait_for_function("() => LMCharts.instances.length === 2")
        assert "compared with baseline" in tab.page.inner_text("h1")
        assert_accessible(tab.page.content())
        tab.screenshot("dashboard-compare")

        tab.page.goto(f"{dash}/tests/{test.id}")
        tab.page.wait_for_function("() => LMCharts.instances.length === 1")  # the trend
        assert tab.page.locator("svg.spark").count() == 0  # sparklines live on the list
        tab.screenshot("dashboard-test-after")
        tab.page.goto(f"{dash}/tests")
        assert tab.page.locator("svg.spark").count() == 1
        assert tab.errors == []

        phone = login(browser, base, "alice-session", width=390, height=844)
        phone.page.goto(f"{dash}/runs/{run_id}")
        phone.page.wait_for_function("() => LMCharts.instances.length >= 2")
        width = phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "the run page scrolls sideways on a phone"
        phone.screenshot("dashboard-run-phone")
        assert phone.errors == []

        dark = Page(browser, color_scheme="dark")
        dark.page.context.add_cookies([{"name": "session", "value": "alice-session", "url": base}])
        dark.page.goto(f"{dash}/runs/{run_id}")
        dark.page.wait_for_function("() => LMCharts.instances.length >= 2")
        background = dark.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"  # the dark palette, not white
        dark.screenshot("dashboard-run-dark")
        assert dark.errors == []


def test_another_tenant_gets_404_and_writes_need_the_csrf_token(
    host: tuple[str, lm.Orchestrator],
) -> None:
    base, orch = host
    test = orch.list_load_tests(tenant_id="tenant-1")[0]
    run = orch.start_run(test.id, {"runTime": 2}, actor="alice@example.com")
    orch.wait(run.id, timeout=60)
    with chromium() as browser:
        eve = login(browser, base, "eve-session")
        for path in (f"runs/{run.id}", f"tests/{test.id}", f"runs/{run.id}/live"):
            response = eve.page.goto(f"{base}/dashboard/{path}")
            assert response is not None
            assert response.status == 404, path
        eve.page.goto(f"{base}/dashboard/tests")
        assert "Checkout API" not in eve.page.content()
        anonymous = Page(browser)
        response = anonymous.page.goto(f"{base}/dashboard/tests")
        assert response is not None
        assert response.status == 401

    cookies = {"session": "alice-session"}
    with httpx.Client(base_url=f"{base}/dashboard", cookies=cookies) as http:
        page = http.get(f"/runs/{run.id}")
        token = http.cookies.get("lm_csrf")
        assert token
        assert f'content="{token}"' in page.text
        stop_url = f"/api/v1/runs/{run.id}/stop"
        refused = http.post(stop_url, json={})
        assert refused.status_code == 403
        assert "CSRF" in refused.json()["title"]
        wrong = http.post(stop_url, json={}, headers={"X-CSRF-Token": "forged"})
        assert wrong.status_code == 403
        # With the token the API answers; the run has ended, so it refuses the stop itself.
        allowed = http.post(stop_url, json={}, headers={"X-CSRF-Token": token})
        assert allowed.status_code == 409
