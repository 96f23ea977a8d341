"""The screen under its Content-Security-Policy, in a real Chromium: the login form, the map with every layer,
a tooltip, a drill-down and the legend work, and the browser reports no violation of the policy."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from api.dashboard import CSP

from .conftest import log_in, open_dashboard

pytestmark = [pytest.mark.db, pytest.mark.slow]
#: Runs before any script of the page (injected by the browser, so the policy does not apply to it): every
#: violation the browser reports is kept in window.__csp.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def violations(pg) -> list[str]:
    """The violations, but for one known and harmless: at start-up the deck.gl bundle probes WebAssembly (Long.js,
    in loaders.gl's 3D-tiles code) and falls back to JavaScript when the policy refuses it (see api.dashboard.CSP)."""
    seen = pg.evaluate("() => window.__csp || []")
    return [v for v in seen if not (v.startswith("script-src blocked wasm-eval") and "/dashboard/static/deckgl-" in v)]


def test_the_policy_allows_only_this_app_and_nothing_that_runs_strings():
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe-eval" not in CSP and "http" not in CSP and "*" not in CSP


def test_the_screen_works_and_violates_nothing(page, server, dash_engine, sample_now, dispatched, dash_users):
    page.context.add_init_script(RECORD_VIOLATIONS)
    response = page.goto(f"{server}/dashboard/login")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.allowed_errors.append(r"status of 401")  # the browser logs the refused login
    log_in(page, dash_users["planner"], "a wrong password", succeeds=False)  # the form's script runs
    page.wait_for_selector("#gm-login-error:not([hidden])", timeout=20_000)
    assert violations(page) == []
    open_dashboard(page, server, sample_now, dash_users["admin"])
    counts = page.evaluate("() => window.gridmap.layerCounts()")
    assert all(counts[k] > 0 for k in ("grids", "equipment", "teams", "events")), counts  # (buildings: tiles)
    assert page.locator("#gm-legend .sw").count() > 0  # the legend's colour swatches (inline style attributes)
    swatch = page.locator("#gm-legend .sw").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert swatch not in ("", "rgba(0, 0, 0, 0)"), swatch  # ... applied, not blocked
    # a drill-down into the dispatched event, through the page's own code path
    with dash_engine.connect() as conn:
        team = conn.execute(text("SELECT code FROM teams t JOIN assignments a ON a.team_id = t.id WHERE a.id = :a"),
                            {"a": dispatched["assignment_id"]}).scalar_one()
    page.evaluate("c => window.gridmap.openTeam(c)", team)
    page.wait_for_function("() => document.querySelector('#gm-detail-event')", timeout=20_000)
    assert page.locator("#gm-detail-event").inner_text() == "TEST-DASH-ROUTE"
    assert violations(page) == [], violations(page)
