"""gridmap.storage.events: the event's status and milestones, written one way; lists filtered with bound
parameters."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from gridmap.services import events as event_service
from gridmap.services.auth import Principal
from gridmap.storage import events
from tests.storage.conftest import T0, add_event, add_team

pytestmark = [pytest.mark.db]


def _row(conn, event_id: int):
    return conn.execute(text("SELECT status, team_id, dispatched_at, accepted_at, on_site_at FROM events "
                             "WHERE id = :e"), {"e": event_id}).one()


def test_set_status_stamps_the_milestone_and_keeps_the_team(conn):
    """Dispatch (accept, decline, lapse) and the lifecycle write through :func:`events.set_status`: the status,
    its milestone (none for ``reported``), the team left as it is."""
    team = add_team(conn, "T1")
    eid = add_event(conn, "EV1", status="dispatched")
    conn.execute(text("UPDATE events SET team_id = :t WHERE id = :e"), {"t": team, "e": eid})
    at = T0 + dt.timedelta(minutes=3)
    events.set_status(conn, eid, "accepted", at)
    assert _row(conn, eid) == ("accepted", team, None, at, None)
    events.set_status(conn, eid, "reported", at + dt.timedelta(minutes=1))
    assert _row(conn, eid) == ("reported", team, None, at, None)


@pytest.mark.parametrize("open_statuses", [("reported",), ("reported", "dispatched", "accepted", "on_site"),
                                           ("reported", "it's")])
def test_overdue_filter_binds_the_statuses(db, conn, monkeypatch, open_statuses):
    """The overdue filter of the event list binds the open statuses as a parameter (``= ANY(:open_statuses)``):
    a one-element tuple or a value with a quote, whose Python repr is not SQL, works like any other."""
    now = T0 + dt.timedelta(hours=1)
    late = add_event(conn, "EV1", due_at=T0)
    add_event(conn, "EV2", due_at=now + dt.timedelta(hours=1))  # not due yet
    add_event(conn, "EV3", status="resolved", due_at=T0)  # past due but not open
    conn.commit()
    monkeypatch.setattr(event_service, "OPEN_EVENT_STATUSES", open_statuses)
    service = event_service.EventService(db.engine, db.settings, clock=lambda: now)
    admin = Principal(user_id=1, username="admin", role="admin")
    from sqlalchemy.orm import Session

    with Session(db.engine) as session:
        overdue = service.list(session, admin, overdue=True)
    with Session(db.engine) as session:
        not_overdue = service.list(session, admin, overdue=False)
    assert [e["id"] for e in overdue] == [late]
    assert sorted(e["code"] for e in not_overdue) == ["EV2", "EV3"]
