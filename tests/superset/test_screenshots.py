"""Every shipped dashboard, rendered by headless Chromium: charts drawn, no error box, and the big
numbers on screen equal to the stand-in rows. Screenshots land in artifacts/screenshots/."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from cht_assets.bi.dashboard_specs import DashboardSpec
from cht_assets.servers.superset import SupersetServer, admin_credentials
from tests.superset import standin
from tests.superset.browser import BrowserError, Chromium
from tests.superset.conftest import MANAGERS, SCREENSHOTS, Analytics, Provisioning

pytestmark = pytest.mark.superset

HOLDER = '[data-test="dashboard-component-chart-holder"]'
STATE_JS = f"""JSON.stringify({{
  holders: document.querySelectorAll('{HOLDER}').length,
  loading: document.querySelectorAll('{HOLDER} [data-test="loading-indicator"], {HOLDER} .loading').length,
  drawn: Array.from(document.querySelectorAll('{HOLDER}')).map(h =>
    h.querySelectorAll('canvas, svg, table').length > 0 || /\\d/.test(h.innerText)),
  errors: Array.from(document.querySelectorAll('.ant-alert-error, .ant-alert-warning, [role=alert]'))
    .map(e => e.innerText.trim()).filter(t => t.length > 0),
  texts: Object.fromEntries(Array.from(document.querySelectorAll('{HOLDER}')).map(h =>
    [h.innerText.split('\\n')[0], h.innerText])),
}})"""


def browser_session(url: str, username: str, password: str) -> str:
    """Log in through Superset's login form; the `session` cookie for the browser."""
    with requests.Session() as http:
        page = http.get(f"{url}/login/", timeout=30)
        token = re.search(r'id="csrf_token"\s+value="([^"]+)"', page.text)
        assert token, "no CSRF token on the login page"
        answer = http.post(
            f"{url}/login/",
            data={"csrf_token": token.group(1), "username": username, "password": password},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 302 and answer.headers["Location"] != "/login/", "login failed"
        return http.cookies["session"]


def render(browser: Chromium, server: SupersetServer, spec: DashboardSpec, shot: Path) -> dict:
    import json

    browser.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1600, "height": 1200, "deviceScaleFactor": 1, "mobile": False},
        session=True,
    )
    browser.navigate(f"{server.url}/superset/dashboard/{spec.slug}/?standalone=1")
    deadline = time.monotonic() + 90
    state: dict = {}
    while time.monotonic() < deadline:
        try:
            state = json.loads(browser.evaluate(STATE_JS))
        except BrowserError:
            state = {}
        if state.get("holders") == len(spec.charts) and not state["loading"] and all(state["drawn"]):
            break
        time.sleep(0.5)
    browser.screenshot(shot)
    state = json.loads(browser.evaluate(STATE_JS))
    return state


def check(state: dict, spec: DashboardSpec, shot: Path) -> None:
    assert state["holders"] == len(spec.charts), f"{shot.name}: {state}"
    assert state["loading"] == 0, f"{shot.name}: charts still loading"
    assert all(state["drawn"]), f"{shot.name}: a chart drew nothing: {state['texts']}"
    assert state["errors"] == [], f"{shot.name}: error box: {state['errors']}"
    assert shot.stat().st_size > 20_000


def test_admin_sees_every_dashboard_rendered(
    browser: Chromium, superset_server: SupersetServer, provisioned: Provisioning, analytics: Analytics
) -> None:
    browser.set_cookie(
        superset_server.url, "session", browser_session(superset_server.url, *admin_credentials())
    )
    rows = analytics.data.rows
    headline = {
        "Reports submitted": sum(r["reports"] for r in rows["useview_chw_activity"]),
        "Persons": sum(r["persons"] for r in rows["useview_population"]),
        "Pregnancies registered": len(rows["useview_pregnancy"]),
        "Pending changes": sum(r["pending"] for r in rows["useview_data_freshness"]),
        "Tasks due": len(rows["useview_task"]),
        "CHW targets that met their goal": sum(1 for r in rows["useview_target"] if r["met_goal"]),
        "Users active in the last 7 days": sum(1 for r in rows["useview_user"] if r["active_7d"]),
    }
    for spec in provisioned.specs:
        shot = SCREENSHOTS / f"admin-{spec.slug}.png"
        state = render(browser, superset_server, spec, shot)
        check(state, spec, shot)
        for title, value in headline.items():
            if title in state["texts"]:
                assert f"{value:,}" in state["texts"][title], (title, state["texts"][title])


def test_a_manager_sees_their_area_on_screen(
    browser: Chromium, superset_server: SupersetServer, provisioned: Provisioning, analytics: Analytics
) -> None:
    north = MANAGERS["north"]
    browser.send("Network.clearBrowserCookies", session=True)
    browser.set_cookie(
        superset_server.url, "session", browser_session(superset_server.url, north.username, north.password)
    )
    spec = next(s for s in provisioned.specs if s.slug == "chw-activity")
    shot = SCREENSHOTS / f"mgr_north-{spec.slug}.png"
    state = render(browser, superset_server, spec, shot)
    check(state, spec, shot)
    reports = sum(r["reports"] for r in analytics.data.where("useview_chw_activity", north.sees))
    assert f"{reports:,}" in state["texts"]["Reports submitted"]
    assert "St Mary" not in state["texts"]["Reports by CHW"]
    assert standin.HOSTILE_NAME in state["texts"]["Reports by CHW"]  # shown as text, not markup
    assert "St Mary" not in state["texts"]["Users by days since last activity"]
    assert "South Supervisor" not in state["texts"]["Users by days since last activity"]
    active = sum(1 for r in analytics.data.where("useview_user", north.sees) if r["active_7d"])
    assert active < sum(1 for r in analytics.data.rows["useview_user"] if r["active_7d"])
    assert state["texts"]["Users active in the last 7 days"].split("\n")[1:2] == [f"{active:,}"]
