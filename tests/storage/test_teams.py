"""gridmap.storage.teams: one way to write a team's status."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gridmap.storage import teams
from tests.storage.conftest import add_team

pytestmark = [pytest.mark.db]


def _status(conn, code: str) -> str:
    return conn.execute(text("SELECT status FROM teams WHERE code = :c"), {"c": code}).scalar_one()


def test_set_team_status_writes_one_team_by_id(conn):
    """Dispatch (answers, lapses, manual toggles) and the lifecycle write through the same function, by id."""
    a, b = add_team(conn, "T1"), add_team(conn, "T2")
    teams.set_team_status(conn, a, "on_site")
    assert (_status(conn, "T1"), _status(conn, "T2")) == ("on_site", "available")
    teams.set_team_status(conn, b, "off_duty")
    assert (_status(conn, "T1"), _status(conn, "T2")) == ("on_site", "off_duty")


def test_dispatcher_toggles_status_through_storage(db, conn):
    """The dispatcher's manual toggle finds the team by code and writes through :func:`teams.set_team_status`;
    an unknown code changes nothing."""
    from gridmap.errors import NotFound
    from gridmap.services.dispatch import Dispatcher

    add_team(conn, "T1")
    conn.commit()
    d = Dispatcher(db.engine)
    with pytest.raises(NotFound):
        d.set_team_status("NOPE", "off_duty")
    with pytest.raises(AssertionError):  # the cache is not built: the database write is done first
        d.set_team_status("T1", "off_duty")
    assert _status(conn, "T1") == "off_duty"
