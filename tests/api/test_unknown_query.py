"""A query parameter the route does not declare is refused, naming it and the nearest known one: ignored, a
typo such as ``?categroy=fire`` would answer every category as if it had been asked for."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.db]


def test_a_misspelt_filter_is_refused_with_the_name_it_meant(client, users):
    admin = users["admin"]["headers"]
    r = client.get("/v1/events", params={"categroy": "fire_hazard"}, headers=admin)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == "categroy" and "did you mean 'category'" in body["fix"]
    assert client.get("/v1/events", params={"category": "fire_hazard"}, headers=admin).status_code == 200


def test_the_screen_keeps_its_cache_keys_and_nothing_else(client, users):
    admin = users["admin"]["headers"]
    assert client.get("/dashboard/api/summary", params={"v": "3"}, headers=admin).status_code == 200
    r = client.get("/dashboard/api/summary", params={"verbose": "1"}, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "verbose"
    # a route without query parameters says so
    r = client.get("/v1/me", params={"x": "1"}, headers=admin)
    assert r.status_code == 422 and "no query parameters" in r.json()["fix"]
