"""A volunteer's live feed: new assignments pushed over WebSocket (in-process test client) and over
server-sent events (a real uvicorn server on loopback, fed through PostgreSQL NOTIFY from another app)."""

from __future__ import annotations

import itertools
import json

import httpx
import pytest
from starlette.websockets import WebSocketDisconnect

from tests.api.conftest import query, recv, team_user

pytestmark = [pytest.mark.db]
_ids = itertools.count(1)


def team_at(api_engine, n: int) -> tuple[str, float, float]:
    """The n-th available patrol team with a position, and where it is."""
    r = query(api_engine, "SELECT code, ST_X(geom), ST_Y(geom) FROM teams WHERE status = 'available' "
                          "AND 'patrol' = ANY(skills) AND geom IS NOT NULL ORDER BY code OFFSET :n LIMIT 1", n=n)[0]
    return r[0], r[1], r[2]


def report_at(client, users, lon, lat, category="road_facility") -> dict:
    body = {"channel": "patrol", "external_id": f"FEED-{next(_ids):04d}", "category": category,
            "location": {"lon": lon, "lat": lat}}
    r = client.post("/v1/events", json=body, headers=users["admin"]["headers"])
    assert r.status_code == 201, r.text
    return r.json()


def test_new_assignments_are_pushed_to_their_team_only_over_websocket(client, users, api_engine, field):
    x_team, x_lon, x_lat = team_at(api_engine, 3)
    y_team, y_lon, y_lat = team_at(api_engine, 20)
    x = team_user(client, api_engine, users["admin"]["headers"], x_team)
    y = team_user(client, api_engine, users["admin"]["headers"], y_team)
    with client.websocket_connect("/v1/me/feed/ws", headers=x["headers"]) as wx, \
         client.websocket_connect("/v1/me/feed/ws") as wy:
        wy.send_json({"token": y["token"]})  # a browser cannot set headers: the token comes first instead
        assert recv(wx) == {"type": "snapshot", "assignments": []}
        assert recv(wy) == {"type": "snapshot", "assignments": []}
        ex = report_at(client, users, x_lon, x_lat)
        assert ex["dispatch"]["team"] == x_team
        msg = recv(wx)
        assert msg["type"] == "assignment" and msg["assignment"]["status"] == "offered"
        assert msg["assignment"]["event"]["id"] == ex["event"]["id"] and msg["assignment"]["team"] == x_team
        ey = report_at(client, users, y_lon, y_lat, category="parking")
        assert ey["dispatch"]["team"] == y_team
        first_for_y = recv(wy)  # Y never saw X's offer: its first push is its own
        assert first_for_y["assignment"]["event"]["id"] == ey["event"]["id"]
        # X declines: X's feed shows the change, and the event goes on to another team
        r = client.post(f"/v1/assignments/{ex['dispatch']['assignment_id']}/decline", json={}, headers=x["headers"])
        assert r.status_code == 200
        msg = recv(wx)
        assert msg["assignment"]["status"] == "declined" and msg["assignment"]["event"]["id"] == ex["event"]["id"]


def test_the_websocket_feed_refuses_bad_tokens_and_non_team_roles(client, users):
    for token, field, code in (("not-a-token", "Authorization", 4401), (users["planner"]["token"], "role", 4403)):
        with client.websocket_connect("/v1/me/feed/ws") as ws:
            ws.send_json({"token": token})
            msg = recv(ws)
            assert msg["type"] == "error" and msg["field"] == field
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_json()
            assert info.value.code == code


def test_new_assignments_are_pushed_over_server_sent_events_across_processes(client, users, api_engine, live_server,
                                                                             field):
    team, lon, lat = team_at(api_engine, 7)
    vol = team_user(client, api_engine, users["admin"]["headers"], team)
    with httpx.Client(base_url=live_server, timeout=httpx.Timeout(20.0)) as http:
        assert http.get("/v1/me/feed", headers=users["planner"]["headers"]).status_code == 403
        with http.stream("GET", "/v1/me/feed", headers=vol["headers"]) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines) == "event: snapshot"
            assert json.loads(next(lines)[len("data: "):])["assignments"] == []
            # the event comes in through the *other* app instance: the push crosses processes via NOTIFY
            out = report_at(client, users, lon, lat)
            assert out["dispatch"]["team"] == team
            got = None
            for line in lines:
                if line.startswith("data: ") and got is None and '"assignment"' in line:
                    got = json.loads(line[len("data: "):])
                    break
            assert got["type"] == "assignment" and got["assignment"]["event"]["id"] == out["event"]["id"]
            assert got["assignment"]["status"] == "offered"
