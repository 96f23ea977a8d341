"""SQL of what a position report leaves besides the position itself (``dispatch_sql.save_positions``): the
fix's accuracy on ``teams`` and the implausible fixes that were flagged and not used (``team_fix_flags``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, text


def save_accuracy(conn: Connection, rows: Sequence[tuple[str, float | None, dt.datetime]]) -> int:
    """(team code, accuracy in metres or None, time of the fix): stored where that fix is the team's position."""
    if not rows:
        return 0
    return conn.execute(text("""
        UPDATE teams t SET position_accuracy_m = u.acc
        FROM unnest(CAST(:codes AS text[]), CAST(:acc AS float8[]), CAST(:at AS timestamptz[])) AS u(code, acc, at)
        WHERE t.code = u.code AND t.position_at = u.at"""),
        {"codes": [r[0] for r in rows], "acc": [r[1] for r in rows], "at": [r[2] for r in rows]}).rowcount


def insert_flags(conn: Connection, flags: Sequence[dict], reported_by: str | None) -> int:
    """The flagged fixes: team code, at, lon, lat, accuracy_m, speed_kmh, distance_m, reason."""
    if not flags:
        return 0
    return conn.execute(text("""
        INSERT INTO team_fix_flags (team_id, at, lon, lat, accuracy_m, speed_kmh, distance_m, reason, reported_by)
        SELECT t.id, u.at, u.lon, u.lat, u.acc, u.kmh, u.dist, u.reason, :by
        FROM unnest(CAST(:codes AS text[]), CAST(:at AS timestamptz[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]),
                    CAST(:acc AS float8[]), CAST(:kmh AS float8[]), CAST(:dist AS float8[]), CAST(:reason AS text[]))
             AS u(code, at, lon, lat, acc, kmh, dist, reason)
        JOIN teams t ON t.code = u.code"""),
        {"codes": [f["team"] for f in flags], "at": [f["at"] for f in flags], "lon": [f["lon"] for f in flags],
         "lat": [f["lat"] for f in flags], "acc": [f.get("accuracy_m") for f in flags],
         "kmh": [f["speed_kmh"] for f in flags], "dist": [f["distance_m"] for f in flags],
         "reason": [f["reason"] for f in flags], "by": reported_by}).rowcount
