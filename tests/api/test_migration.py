"""Migration 0003 goes down to 0002 and up again cleanly (on the suite's own, otherwise empty database)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from gridmap.storage import migrate

pytestmark = [pytest.mark.db]
NEW_TABLES = {"escalation_ladders", "event_transitions", "event_reporters", "users"}
NEW_COLUMNS = {"duplicate_of", "location_source", "address", "place_code", "escalation_rung", "rung_started_at",
               "due_at", "intake_sha256"}


def _state(engine):
    insp = inspect(engine)
    tables = set(insp.get_table_names())
    columns = {c["name"] for c in insp.get_columns("events")}
    with engine.connect() as conn:
        triggers = set(conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())
    return tables, columns, triggers


def test_0003_downgrades_and_upgrades_cleanly(engine):
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables, columns, triggers = _state(engine)
    assert tables >= NEW_TABLES and columns >= NEW_COLUMNS
    assert {"events_status_audit", "event_transitions_append_only", "assignments_feed", "teams_feed", "teams_position_feed"} <= triggers
    migrate.downgrade(engine, "0002")
    try:
        tables, columns, triggers = _state(engine)
        assert not NEW_TABLES & tables and not NEW_COLUMNS & columns and not triggers
        assert {"events", "assignments", "teams"} <= tables
    finally:
        migrate.upgrade(engine)
    tables, columns, triggers = _state(engine)
    # the five of 0003 are back, with the later migrations' own: 0006's event_transitions_detail, 0008's
    # event_rung_stints_feed and events_stints
    assert tables >= NEW_TABLES and columns >= NEW_COLUMNS
    assert triggers == {"events_status_audit", "event_transitions_append_only", "assignments_feed", "teams_feed",
                        "teams_position_feed", "event_transitions_detail", "event_rung_stints_feed",
                        "events_stints"}
    with engine.connect() as conn:
        rungs = conn.execute(text("SELECT count(*), count(DISTINCT category) FROM escalation_ladders")).one()
    assert tuple(rungs) == (36, 10)  # every category has a ladder, from data/escalation_ladders.csv
