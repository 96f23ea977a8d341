"""`GET /v1/residents`: the limit and the page go to PostgreSQL, and the personal-data log records the rows
actually returned (it used to read the street's 260,000 residents and cut the list in Python)."""

from __future__ import annotations

import pytest

from tests.api.conftest import query

pytestmark = [pytest.mark.db]


def _last_pii_log(engine):
    return query(engine, "SELECT actor, row_count, detail FROM pii_access_log ORDER BY id DESC LIMIT 1")[0]


def test_the_limit_is_what_is_read_and_logged(client, users, api_engine, street):
    params = {"area": street, "personal": "true", "purpose": "door-to-door check", "limit": 3}
    r = client.get("/v1/residents", params=params, headers=users["operator"]["headers"])
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()] == [1, 2, 3]
    log = _last_pii_log(api_engine)
    assert log.actor == "operator" and log.row_count == 3  # not the street's 260,000
    assert log.detail["limit"] == 3


def test_pages_follow_each_other_by_id(client, users, api_engine, street):
    h = users["operator"]["headers"]
    six = client.get("/v1/residents", params={"area": street, "limit": 6}, headers=h).json()
    first = client.get("/v1/residents", params={"area": street, "limit": 3}, headers=h).json()
    second = client.get("/v1/residents", params={"area": street, "limit": 3, "after": first[-1]["id"]},
                        headers=h).json()
    assert [x["id"] for x in first + second] == [x["id"] for x in six]
    # a grid: its own residents only, still by id
    grid = query(api_engine, "SELECT code FROM areas WHERE level = 'grid' AND code LIKE :s || '%' "
                             "ORDER BY code DESC LIMIT 1", s=street)[0][0]  # (the operator's street's)
    page = client.get("/v1/residents", params={"area": grid, "limit": 50, "after": 0}, headers=h).json()
    ids = [x["id"] for x in page]
    assert len(ids) == 50 and ids == sorted(ids) and {x["grid_code"] for x in page} == {grid}
    nxt = client.get("/v1/residents", params={"area": grid, "limit": 50, "after": ids[-1]}, headers=h).json()
    assert nxt and nxt[0]["id"] > ids[-1] and {x["grid_code"] for x in nxt} == {grid}


def test_the_registry_limits_in_sql(app, street):
    reg = app.state.registry
    one = reg.residents(area=street, limit=1)
    assert list(one.id) == [1]
    page = reg.residents(area=street, limit=2, after=100_000)
    assert list(page.id) == [100_001, 100_002]
    assert len(reg.residents(area=street, limit=0)) == 0
