"""The simulation's clock is allowed on a simulation database only: the API refuses to start on the simulation clock
without the mark, refuses to move a system clock (409), lets only admins move it, never backwards, and reads its
dispatch rule from the mark."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from gridmap.errors import ConfigError
from gridmap.services.dispatch import Dispatcher
from gridmap.services.events import set_cached_team_position, set_cached_team_status
from gridmap.services.feed import FeedHub
from gridmap.services.registry import Registry
from gridmap.storage import simulation as simulation_sql

from .conftest import DAY, module_copy, sim_client

pytestmark = [pytest.mark.db]


sim_db = module_copy("sim_clock")


def _token(client: TestClient, creds: dict[str, str], user: str) -> dict[str, str]:
    r = client.post("/v1/auth/token", json={"username": user, "password": creds[user]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_the_clock_moves_forward_only_and_only_for_admins(sim_db, sim_settings):
    engine, _, creds = sim_db
    with sim_client(engine, sim_settings) as client:
        admin, operator = _token(client, creds, "sim-admin"), _token(client, creds, "sim-operator")
        state = client.get("/v1/simulation", headers=admin).json()
        assert state["simulation_database"] and state["clock"] == "simulation"
        assert dt.datetime.fromisoformat(state["now"]) == DAY
        later = DAY + dt.timedelta(minutes=5)
        r = client.put("/v1/simulation/clock", json={"at": later.isoformat()}, headers=admin)
        assert r.status_code == 200, r.text
        assert dt.datetime.fromisoformat(client.get("/v1/simulation", headers=admin).json()["now"]) == later
        back = client.put("/v1/simulation/clock", json={"at": DAY.isoformat()}, headers=admin)
        assert back.status_code == 409 and back.json()["field"] == "at"
        r = client.put("/v1/simulation/clock", json={"at": (later + dt.timedelta(hours=1)).isoformat()},
                       headers=operator)
        assert r.status_code == 403
        assert dt.datetime.fromisoformat(client.get("/v1/simulation", headers=admin).json()["now"]) == later


def test_the_system_clock_is_never_moved(sim_db, sim_settings):
    engine, _, creds = sim_db
    settings = sim_settings.model_copy(update={"clock": "system"})
    with TestClient(create_app(settings, Registry(engine, settings))) as client:
        admin = _token(client, creds, "sim-admin")
        state = client.get("/v1/simulation", headers=admin).json()
        assert state["simulation_database"] and state["clock"] == "system"
        r = client.put("/v1/simulation/clock", json={"at": "2030-01-01T00:00:00+08:00"}, headers=admin)
        assert r.status_code == 409, r.text
        assert set(r.json()) >= {"error", "field", "message", "fix"}
    with engine.connect() as conn:
        assert simulation_sql.clock_at(conn) < dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def test_the_simulation_clock_is_refused_on_a_database_without_the_mark(sim_copy, sim_settings):
    engine, _, _ = sim_copy("sim_clock_unmarked")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM simulation_mark")
        app = create_app(sim_settings, Registry(engine, sim_settings))
        with pytest.raises(ConfigError, match="not a simulation database") as err, TestClient(app):
            pass
        assert err.value.field == "GRIDMAP_CLOCK"
    finally:
        engine.dispose()


def test_the_dispatch_rule_comes_from_the_mark(sim_copy, sim_settings):
    engine, _, creds = sim_copy("sim_clock_rule", rule="own_grid")
    try:
        with sim_client(engine, sim_settings) as client:
            admin = _token(client, creds, "sim-admin")
            assert client.get("/v1/simulation", headers=admin).json()["dispatch_rule"] == "own_grid"
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM simulation_mark")
        settings = sim_settings.model_copy(update={"clock": "system"})
        with TestClient(create_app(settings, Registry(engine, settings))) as client:
            admin = _token(client, creds, "sim-admin")
            state = client.get("/v1/simulation", headers=admin).json()
            assert not state["simulation_database"] and state["dispatch_rule"] == "road_eta"
    finally:
        engine.dispose()


def test_a_late_announcement_never_undoes_a_newer_cached_state(sim_copy, settings):
    """The feed listener handles each commit's announcement a moment later; by then this process may have cached a
    newer fix or status (fast simulations step faster than the listener). An older fix must not move the team back,
    and an announced status is read again from the database."""
    engine, world, _ = sim_copy("sim_feed_late")
    try:
        d = Dispatcher.from_database(engine, now=DAY)
        assert d.teams is not None
        team = next(t for t in world.teams if t.lon is not None and t.status == "available")
        i = d.teams.index[team.code]
        t_new = DAY.timestamp() + 60.0
        set_cached_team_position(d, team.code, team.lon + 0.001, team.lat, t_new)
        x_new, y_new = float(d.teams.x[i]), float(d.teams.y[i])
        set_cached_team_position(d, team.code, team.lon - 0.001, team.lat, t_new - 30.0)  # older, handled late
        assert (float(d.teams.x[i]), float(d.teams.y[i]), float(d.teams.pos_at[i])) == (x_new, y_new, t_new)

        hub = FeedHub.for_engine(engine, d)
        with engine.begin() as conn:
            conn.execute(text("UPDATE teams SET status = 'off_duty' WHERE code = :c"), {"c": team.code})
        set_cached_team_status(d, team.code, "off_duty")
        off = d.teams.status_of(team.code)
        hub._handle({"kind": "team", "team": team.code, "status": "available"})  # an earlier change, announced late
        assert d.teams.status_of(team.code) == off == "off_duty"
    finally:
        engine.dispose()
