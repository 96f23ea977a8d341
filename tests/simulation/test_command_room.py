"""The simulation's command room (its operator) covers every street the simulation drives: the sample has two
streets in one district, and the simulator sends positions, statuses and closures for the teams and events of
both."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gridmap.simulation.world import OPERATOR

from .conftest import sim_client

pytestmark = [pytest.mark.db]


def test_the_command_room_is_the_district_s_and_sees_every_team(sim_copy, sim_settings):
    engine, world, creds = sim_copy("sim_command_room")
    try:
        with engine.connect() as conn:
            streets = set(conn.execute(text("SELECT DISTINCT c.parent_code FROM areas g JOIN areas c ON "
                                            "c.code = g.parent_code AND c.valid_to IS NULL WHERE g.level = 'grid' "
                                            "AND g.valid_to IS NULL")).scalars())
            row = conn.execute(text("SELECT street_code, district_code FROM users WHERE username = :u"),
                               {"u": OPERATOR}).one()
        assert len(streets) == 2  # the sample: the main street and the smaller 330106901
        assert row.street_code is None and row.district_code == world.command_area
        with sim_client(engine, sim_settings) as client:
            r = client.post("/v1/auth/token", json={"username": OPERATOR, "password": creds[OPERATOR]})
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            got = client.get("/v1/teams", headers=headers)
            assert got.status_code == 200, got.text
            assert {t["code"] for t in got.json()} == {t.code for t in world.teams}
    finally:
        engine.dispose()
