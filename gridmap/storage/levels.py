"""SQL for the screens of the levels of command: the areas one level below a scope side by side (a district's
streets, a street's communities, a community's grids) with their figures, their monthly event counts for the
safety index, and the intake figures (calls taken, answered on the spot, dispatched) per channel or area.

Every read is confined in SQL to the area asked for (:mod:`gridmap.storage.scopes`). Every function runs on
the caller's SQLAlchemy connection, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pandas as pd
from sqlalchemy import Connection, RowMapping, text

from gridmap.storage import scopes

OPEN = "('reported', 'dispatched', 'accepted', 'on_site')"
#: The column of ``events`` that names an area of each level.
EVENT_COLUMN = {"street": "street_code", "community": "community_code", "grid": "grid_code"}
#: The level one below each.
BELOW = {"district": "street", "street": "community", "community": "grid"}


def children(conn: Connection, area: str, level: str) -> list[RowMapping]:
    """The current areas of ``level`` under ``area`` (a district's streets, ...), with name, population and
    bounding box."""
    sub = {"street": scopes.streets_of(":a"), "community": scopes.communities_of(":a"),
           "grid": scopes.grids_of(":a")}[level]
    return list(conn.execute(text(f"""
        SELECT a.code, a.name, a.name_zh, a.parent_code, a.population, ST_XMin(a.geom) AS minx, ST_YMin(a.geom) AS miny,
               ST_XMax(a.geom) AS maxx, ST_YMax(a.geom) AS maxy
        FROM areas a WHERE a.level = :lvl AND a.valid_to IS NULL AND a.code IN ({sub}) ORDER BY a.code"""),
        {"a": area, "lvl": level}).mappings())


def figures_by(conn: Connection, area: str, level: str, *, now: dt.datetime, period_start: dt.datetime,
               day_start: dt.datetime) -> list[RowMapping]:
    """Per area of ``level`` under ``area``: open events, overdue now, reported today and in the period, closed
    of those of the period, and the median response (reported → on site) of the period, in minutes."""
    col = EVENT_COLUMN[level]
    return list(conn.execute(text(f"""
        SELECT e.{col} AS code,
               count(*) FILTER (WHERE e.status IN {OPEN}) AS open_events,
               count(*) FILTER (WHERE e.status IN {OPEN} AND e.due_at < :now) AS overdue,
               count(*) FILTER (WHERE e.reported_at >= :day) AS reported_today,
               count(*) FILTER (WHERE e.reported_at >= :period) AS reported_period,
               count(*) FILTER (WHERE e.reported_at >= :period AND e.status = 'closed') AS closed_period,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.on_site_at - e.reported_at))
                   FILTER (WHERE e.reported_at >= :period AND e.on_site_at IS NOT NULL AND e.on_site_at <= :now) / 60
                   AS response_p50_min
        FROM events e
        WHERE e.duplicate_of IS NULL AND e.reported_at <= :now AND e.{col} IS NOT NULL
          AND (e.status IN {OPEN} OR e.reported_at >= :period) AND {scopes.events("e.", ":a")}
        GROUP BY 1"""), {"a": area, "now": now, "period": period_start, "day": day_start}).mappings())


def month_counts(conn: Connection, area: str, level: str, *, start: dt.datetime, end: dt.datetime,
                 windows: Mapping[str, tuple[str, float]], as_of: dt.datetime, tz: str) -> pd.DataFrame:
    """Events per (area of ``level`` under ``area``, local month, category) with ``done_<w>``/``due_<w>`` per
    window: the input of :func:`gridmap.analysis.safety.safety_index`, confined to ``area`` in SQL (the same
    counts as :func:`gridmap.storage.analysis_sql.event_month_counts`)."""
    col = EVENT_COLUMN[level]
    bind: dict[str, object] = {"a": area, "start": start, "end": end, "as_of": as_of, "tz": tz}
    extra = []
    for i, (name, (column, seconds)) in enumerate(windows.items()):
        if column not in ("dispatched_at", "accepted_at", "on_site_at", "resolved_at", "closed_at") \
                or not name.isidentifier():
            raise ValueError(f"window {name!r} measures {column!r}")
        bind[f"w{i}"] = float(seconds)
        extra.append(f"count(*) FILTER (WHERE e.{column} IS NOT NULL AND "
                     f"e.{column} <= e.reported_at + make_interval(secs => :w{i})) AS done_{name}")
        extra.append(f"count(*) FILTER (WHERE e.reported_at + make_interval(secs => :w{i}) <= :as_of) AS due_{name}")
    sel = ", ".join(["count(*) AS events", *extra])
    rows = conn.execute(text(f"""
        SELECT e.{col} AS code, date_trunc('month', e.reported_at AT TIME ZONE :tz) AS month, e.category, {sel}
        FROM events e
        WHERE e.duplicate_of IS NULL AND e.reported_at >= :start AND e.reported_at < :end AND e.{col} IS NOT NULL
          AND {scopes.events("e.", ":a")}
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""), bind).all()
    cols = ["code", "month", "category", "events"] + [f"{p}_{n}" for n in windows for p in ("done", "due")]
    out = pd.DataFrame(rows, columns=cols)
    out["month"] = pd.to_datetime(out["month"])
    for c in cols[3:]:
        out[c] = out[c].astype("int64")
    return out


INTAKE_GROUPS = {"channel": "e.channel", "street": "e.street_code", "community": "e.community_code",
                 "category": "e.category", "all": "'all'"}


def intake_metrics(conn: Connection, *, group_by: str, start: dt.datetime, end: dt.datetime,
                   channels: Sequence[str] | None, area: str | None) -> list[RowMapping]:
    """Per group: calls (events) taken, answered on the spot, dispatched to a team, escalated above the
    first rung, still open, closed (near-duplicates count once, with their master)."""
    where = ["e.duplicate_of IS NULL", "e.reported_at >= :start", "e.reported_at < :end"]
    if channels:
        where.append("e.channel = ANY(:ch)")
    if area is not None:
        where.append(scopes.events("e.", ":a"))
    return list(conn.execute(text(f"""
        SELECT {INTAKE_GROUPS[group_by]} AS key, count(*) AS taken,
               count(*) FILTER (WHERE e.outcome = 'answered_on_the_spot') AS answered_on_the_spot,
               count(*) FILTER (WHERE e.dispatched_at IS NOT NULL
                                OR EXISTS (SELECT 1 FROM assignments a WHERE a.event_id = e.id)) AS dispatched,
               count(*) FILTER (WHERE e.escalation_rung > 0) AS escalated,
               count(*) FILTER (WHERE e.status IN {OPEN}) AS open,
               count(*) FILTER (WHERE e.status = 'closed') AS closed
        FROM events e WHERE {' AND '.join(where)}
        GROUP BY 1 ORDER BY 1"""),
        {"start": start, "end": end, "ch": list(channels or ()), "a": area}).mappings())
