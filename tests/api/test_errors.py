"""Every exception mapped: a JSON 500 with a request id (logged with its traceback) that keeps the keep-alive
connection open, a 503 + Retry-After whenever the database is out of reach, request ids and security headers
on every response; and the probe's bad-input findings, each now a 4xx."""

from __future__ import annotations

import http.client
import json
import logging

import psycopg
import pytest
import sqlalchemy.exc as sa_exc
from fastapi import Request

from api.app import create_app
from api.errors import database_unavailable
from gridmap.services.registry import Registry
from tests.servers import served

pytestmark = [pytest.mark.db]


def _operational(message: str = "connection to server at 127.0.0.1 failed: Connection refused") -> Exception:
    return sa_exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(message))


@pytest.fixture(scope="module")
def faulty(api_engine, api_settings, clock):
    """The real app, served by uvicorn, with routes added by this test only (never in the app): one that
    fails with a bug, ones that fail as if the database were down, one that fails after reading a body."""
    app = create_app(api_settings, Registry(api_engine, api_settings), clock=clock)

    async def boom() -> dict:
        raise RuntimeError("a bug the test planted")

    def db_down() -> dict:
        raise _operational()

    def starting_up() -> dict:
        raise psycopg.errors.CannotConnectNow("the database system is starting up")

    def pool_timeout() -> dict:
        raise sa_exc.TimeoutError("QueuePool limit of size 10 overflow 20 reached, connection timed out")

    def bad_sql() -> dict:
        raise sa_exc.ProgrammingError("SELECT nope", {}, psycopg.errors.UndefinedColumn("column nope does not exist"))

    async def boom_after_body(request: Request) -> dict:
        await request.body()
        raise ValueError("failed after the body was read")

    for path, fn, methods in (("/test-only/boom", boom, ["GET"]), ("/test-only/db-down", db_down, ["GET"]),
                              ("/test-only/starting-up", starting_up, ["GET"]),
                              ("/test-only/pool-timeout", pool_timeout, ["GET"]), ("/test-only/bad-sql", bad_sql, ["GET"]),
                              ("/test-only/boom-body", boom_after_body, ["POST"])):
        app.add_api_route(path, fn, methods=methods)
    with served(app) as port:
        yield {"host": "127.0.0.1", "port": port}


def exchange(conn: http.client.HTTPConnection, method: str, path: str, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r, data


def test_an_unexpected_error_is_a_json_500_with_a_request_id_and_the_connection_survives(faulty, caplog):
    conn = http.client.HTTPConnection(faulty["host"], faulty["port"], timeout=30)
    caplog.set_level(logging.ERROR, logger="gridmap.api")
    r, data = exchange(conn, "GET", "/test-only/boom")
    sock = conn.sock
    assert r.status == 500 and r.getheader("content-type") == "application/json"
    body = json.loads(data)
    assert body["error"] == "InternalError" and body["fix"] and body["request_id"]
    assert body["request_id"] == r.getheader("x-request-id") and body["request_id"] in body["message"]
    assert "planted" not in data.decode()  # no internals in the answer
    assert (r.getheader("connection") or "").lower() != "close"
    # the same keep-alive connection serves the next request
    r2, data2 = exchange(conn, "GET", "/health")
    assert conn.sock is sock and sock is not None, "the server closed the connection after the 500"
    assert r2.status == 200 and json.loads(data2)["status"] == "ok"
    conn.close()
    logged = [rec for rec in caplog.records if body["request_id"] in rec.getMessage()]
    assert logged and logged[0].exc_info and "planted" in str(logged[0].exc_info[1])


@pytest.mark.parametrize("path", ["/test-only/db-down", "/test-only/starting-up", "/test-only/pool-timeout"])
def test_the_database_out_of_reach_is_a_503_with_retry_after(faulty, path):
    conn = http.client.HTTPConnection(faulty["host"], faulty["port"], timeout=30)
    r, data = exchange(conn, "GET", path)
    assert r.status == 503 and r.getheader("content-type") == "application/json"
    assert int(r.getheader("retry-after")) > 0
    body = json.loads(data)
    assert body["error"] == "DatabaseUnavailable" and body["field"] == "database" and body["request_id"]
    r2, _ = exchange(conn, "GET", "/v1/me")  # and the connection is still usable
    assert r2.status == 401
    conn.close()


def test_a_bad_query_is_a_500_not_a_503(faulty):
    conn = http.client.HTTPConnection(faulty["host"], faulty["port"], timeout=30)
    r, data = exchange(conn, "GET", "/test-only/bad-sql")
    assert r.status == 500 and json.loads(data)["error"] == "InternalError"
    conn.close()


def test_the_body_limit_and_errors_after_a_chunked_body_answer_in_json(faulty, api_settings):
    conn = http.client.HTTPConnection(faulty["host"], faulty["port"], timeout=30)
    big = b"x" * (api_settings.max_body_bytes + 1)
    r, data = exchange(conn, "POST", "/v1/events", body=big, headers={"content-type": "application/json"})
    assert r.status == 413 and json.loads(data)["error"] == "TooLarge" and r.getheader("x-request-id")
    conn.close()
    conn = http.client.HTTPConnection(faulty["host"], faulty["port"], timeout=30)
    conn.putrequest("POST", "/test-only/boom-body")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"5\r\nhello\r\n0\r\n\r\n")
    r = conn.getresponse()
    data = r.read()
    assert r.status == 500 and json.loads(data)["error"] == "InternalError"
    r2, _ = exchange(conn, "GET", "/health")
    assert r2.status == 200
    conn.close()


def test_request_ids_are_kept_when_sane_and_made_otherwise(client):
    r = client.get("/health", headers={"X-Request-ID": "probe-42.a:b"})
    assert r.headers["x-request-id"] == "probe-42.a:b"
    for bad in ("has space", "x" * 200, "quote\"d", ""):
        r = client.get("/health", headers={"X-Request-ID": bad})
        assert r.headers["x-request-id"] != bad and len(r.headers["x-request-id"]) == 32


def test_api_responses_carry_the_security_headers(client, users):
    for r in (client.get("/health"), client.get("/v1/me"), client.get("/v1/me", headers=users["planner"]["headers"]),
              client.get("/nope")):
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-request-id"]


def test_what_counts_as_the_database_out_of_reach():
    assert database_unavailable(_operational())
    assert database_unavailable(psycopg.errors.CannotConnectNow("the database system is starting up"))
    assert database_unavailable(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))
    assert database_unavailable(psycopg.OperationalError("consuming input failed: server closed the connection"))
    assert database_unavailable(sa_exc.TimeoutError("QueuePool limit reached"))
    try:  # wrapped by something else (a service re-raising)
        try:
            raise _operational()
        except Exception as inner:
            raise RuntimeError("while reading the dashboard") from inner
    except RuntimeError as outer:
        assert database_unavailable(outer)
    assert database_unavailable(ExceptionGroup("task group", [ValueError("x"), _operational()]))
    assert not database_unavailable(sa_exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("dup")))
    assert not database_unavailable(ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))
    assert not database_unavailable(RuntimeError("bug"))


def test_500_and_503_are_in_the_openapi_document(client):
    doc = client.get("/openapi.json").json()
    responses = doc["paths"]["/v1/events"]["post"]["responses"]
    assert "500" in responses and "503" in responses


# -- the probe's bad-input findings (each was a 500) ------------------------------------------------------------
def test_an_unknown_skill_is_a_422_naming_skills(client, users, field):
    r = client.get("/v1/dispatch/recommend", params={"lon": 120.0931, "lat": 30.2619, "skills": ["nope"]},
                   headers=users["admin"]["headers"])
    assert r.status_code == 422 and r.json()["field"] == "skills" and "fire" in r.json()["fix"], r.text


@pytest.mark.parametrize(("path", "param"), [
    ("/v1/metrics/events", "end"), ("/v1/metrics/events", "start"), ("/v1/events", "since"), ("/v1/events", "until"),
    ("/v1/dispatch/recommend", "at")])
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59-14:00",
                                   "-1.1968029632077693e-166"])
def test_times_out_of_range_are_a_422_naming_the_field(client, users, path, param, value):
    params = {param: value}
    if path.endswith("recommend"):
        params.update(lon=120.0931, lat=30.2619)
    r = client.get(path, params=params, headers=users["admin"]["headers"])
    assert r.status_code == 422 and r.json()["field"] == param, (path, param, value, r.status_code, r.text[:200])


LAYERS = ["areas", "districts", "streets", "communities", "grids", "buildings", "businesses", "fire_equipment", "teams",
          "road_nodes", "road_edges", "events"]


def test_every_layer_is_geojson_for_the_roles_that_may_read_it(client, users, street):
    assert sorted(client.get("/layers").json()) == sorted(LAYERS)
    for role in ("admin", "planner", "operator", "gridworker", "intake"):
        for name in LAYERS:
            r = client.get(f"/layers/{name}", params={"limit": 50, "area": street}, headers=users[role]["headers"])
            if role in ("gridworker", "intake") and name in ("teams", "events"):
                assert r.status_code == 403, (role, name, r.text[:200])
                continue
            assert r.status_code == 200, (role, name, r.status_code, r.text[:300])
            fc = r.json()
            assert r.headers["content-type"].startswith("application/geo+json") and fc["type"] == "FeatureCollection"
            assert 0 < len(fc["features"]) <= 50 or name in ("districts",), (role, name)
    for bad in ("%00", "nope"):
        r = client.get(f"/layers/{bad}", headers=users["admin"]["headers"])
        assert r.status_code in (404, 422) and r.headers["content-type"].startswith("application/json"), bad
    assert client.get("/layers/events").status_code == 401
