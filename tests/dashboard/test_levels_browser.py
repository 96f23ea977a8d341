"""The district screen (issue 14) in a real Chromium: a district operator logs in through the form and sees the
district's two streets side by side with their figures, drills down to a street's communities, then opens a
community's map; the way up leads back to the district."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.services import auth

from .conftest import log_in

pytestmark = [pytest.mark.db]


@pytest.fixture(scope="module")
def district_operator(dash_engine) -> dict:
    with dash_engine.connect() as conn:
        district = conn.execute(text("SELECT parent_code FROM areas WHERE level = 'street' AND valid_to IS NULL "
                                     "ORDER BY code LIMIT 1")).scalar_one()
    name, password = "dash_district_op", secrets.token_urlsafe(16)
    with Session(dash_engine) as session:
        auth.create_user(session, username=name, password=password, role="operator", district_code=district)
    return {"username": name, "password": password, "district": district}


def _cards(pg) -> list[str]:
    return pg.eval_on_selector_all("#gm-areas article.gm-area", "els => els.map(e => e.dataset.code)")


def test_district_screen_shows_both_streets_and_drills_down(page, server, dash_engine, district_operator):
    with dash_engine.connect() as conn:
        streets = [r[0] for r in conn.execute(text(
            "SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL AND parent_code = :d "
            "ORDER BY code"), {"d": district_operator["district"]})]
        small = streets[-1]
        communities = sorted(r[0] for r in conn.execute(text(
            "SELECT code FROM areas WHERE level = 'community' AND valid_to IS NULL AND parent_code = :s"),
            {"s": small}))
    assert len(streets) == 2, streets  # the sample's two streets
    page.goto(f"{server}/dashboard/district")
    log_in(page, district_operator)
    page.wait_for_function("() => Number(document.body.dataset.loaded || 0) >= 1", timeout=60_000)
    # the district: its two streets side by side, each with its figures
    assert _cards(page) == streets
    assert "district" in page.locator("#gm-title").inner_text()
    for code in streets:
        card = page.locator(f'article.gm-area[data-code="{code}"]')
        for fig in ("gm-open", "gm-overdue-n", "gm-response", "gm-closure", "gm-safety"):
            assert card.locator(f".{fig}").inner_text().strip() != ""
    # the figures are the overview's own (same session)
    data = page.evaluate("() => window.gridmapScreen.state.data")
    assert [a["code"] for a in data["areas"]] == streets and data["level_below"] == "street"
    shown = page.locator(f'article.gm-area[data-code="{small}"] .gm-open').inner_text()
    assert shown == str(next(a["open"] for a in data["areas"] if a["code"] == small))
    # drill down: the second street's communities
    with page.expect_navigation():
        page.click(f'article.gm-area[data-code="{small}"] a.gm-drill')
    page.wait_for_function("() => Number(document.body.dataset.loaded || 0) >= 1", timeout=60_000)
    assert f"area={small}" in page.url
    assert sorted(_cards(page)) == communities and "community" in page.locator("#gm-title").inner_text()
    # a community's map, then back up to the district
    with page.expect_navigation():
        page.click(f'article.gm-area[data-code="{communities[0]}"] a.gm-name')
    assert f"area={communities[0]}" in page.url and "/dashboard/district" not in page.url
    page.go_back()
    page.wait_for_function("() => Number(document.body.dataset.loaded || 0) >= 1", timeout=60_000)
    with page.expect_navigation():
        page.click("#gm-up")
    page.wait_for_function("() => Number(document.body.dataset.loaded || 0) >= 1", timeout=60_000)
    assert _cards(page) == streets
