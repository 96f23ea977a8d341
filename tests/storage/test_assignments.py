"""gridmap.storage.assignments: one implementation of each operation on ``assignments``."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from sqlalchemy import text

from gridmap.storage import assignments
from tests.storage.conftest import T0, add_assignment, add_event, add_team

pytestmark = [pytest.mark.db]


def test_close_assignment_keeps_the_first_response_time(conn):
    """Accepted at T0+2 min, completed at T0+40 min: ``responded_at`` stays the acceptance, the measured
    response time (the copy that overwrote it is gone)."""
    aid = add_assignment(conn, add_event(conn, "EV1"), add_team(conn, "T1"))
    accepted, completed = T0 + dt.timedelta(minutes=2), T0 + dt.timedelta(minutes=40)
    assignments.close_assignment(conn, aid, "accepted", accepted)
    assignments.close_assignment(conn, aid, "completed", completed)
    status, responded = conn.execute(text("SELECT status, responded_at FROM assignments WHERE id = :a"),
                                     {"a": aid}).one()
    assert status == "completed"
    assert responded == accepted


def test_assignment_gives_what_dispatch_and_the_lifecycle_need(conn):
    """One read of an assignment for both callers: the event, the team (id and code), the status."""
    team_id = add_team(conn, "T1")
    event_id = add_event(conn, "EV1")
    aid = add_assignment(conn, event_id, team_id)
    row = assignments.assignment(conn, aid)
    assert (row["id"], row["event_id"], row["team_id"], row["team_code"], row["status"]) == \
        (aid, event_id, team_id, "T1", "offered")
    assert row["respond_by"] == T0 + dt.timedelta(minutes=3)
    assert assignments.assignment(conn, aid + 1000) is None


def test_assignment_with_lock_holds_the_row(db, conn):
    """``lock=True`` locks the assignment until the transaction ends (dispatch's answer and lapse rely on it)."""
    aid = add_assignment(conn, add_event(conn, "EV1"), add_team(conn, "T1"))
    conn.commit()
    assignments.assignment(conn, aid, lock=True)
    with db.engine.connect() as other, pytest.raises(Exception) as exc:
        other.execute(text("SELECT id FROM assignments WHERE id = :a FOR UPDATE NOWAIT"), {"a": aid})
    assert isinstance(exc.value.orig, psycopg.errors.LockNotAvailable)  # type: ignore[attr-defined]
    conn.rollback()
    with db.engine.connect() as other:  # free again once the transaction ended
        assert other.execute(text("SELECT id FROM assignments WHERE id = :a FOR UPDATE NOWAIT"),
                             {"a": aid}).scalar_one() == aid


def test_assignments_of_event_and_team_current_give_routes_as_geometries(conn):
    """WKB is storage's to decode: routes come back as shapely lines (or None)."""
    team_id = add_team(conn, "T1")
    event_id = add_event(conn, "EV1", status="dispatched")
    aid = add_assignment(conn, event_id, team_id)
    conn.execute(text("UPDATE assignments SET route = ST_GeomFromText('LINESTRING(120.1 30.28, 120.11 30.29)', 4326) "
                      "WHERE id = :a"), {"a": aid})
    df = assignments.assignments_of_event(conn, event_id)
    assert "wkb" not in df.columns
    assert df["route"].iloc[0].geom_type == "LineString"
    assert df["route"].iloc[0].coords[1] == pytest.approx((120.11, 30.29))
    cur = assignments.team_current(conn, team_id)
    assert cur is not None and cur["route"].equals(df["route"].iloc[0])
    routes = assignments.routes_in_view(conn, None, limit=10)
    assert routes.crs.to_epsg() == 4326 and list(routes["assignment_id"]) == [aid]
