"""Aggregates of events, counted in PostGIS: rates and durations by area and period, overdue counts, the
figures of the map's side panel and of the levels of command, monthly counts for the safety index, intake
figures per channel.

Every function runs on the caller's SQLAlchemy connection, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pandas as pd
from sqlalchemy import Connection, RowMapping, text

from gridmap.errors import InvalidInput
from gridmap.storage import scopes
from gridmap.storage._filters import (
    _AREA,
    EVENT_LEVEL_COLUMN,
    LOCAL_TZ,
    MILESTONES,
    OPEN_STATUSES,
    AreaFilter,
    _frame,
    _q,
    _sql_where,
    _street_events,
    _time_conds,
    _where,
)

OPEN = f"{OPEN_STATUSES}"


#: The column of ``events`` that names an area of each level.
EVENT_COLUMN = {"street": "street_code", "community": "community_code", "grid": "grid_code"}


#: The level one below each.
BELOW = {"district": "street", "street": "community", "community": "grid"}


def _window_counts(windows: Mapping[str, tuple[str, float]], bind: dict, *, as_of: bool) -> list[str]:
    """The ``done_<name>`` and ``due_<name>`` counts of each window (name -> (milestone column, seconds)): events
    whose milestone came within that many seconds of the report, and events reported at least that long before
    ``:as_of`` (all of them when there is no ``as_of``). The columns are a whitelist: they are spliced into SQL."""
    out = []
    for i, (name, (column, seconds)) in enumerate(windows.items()):
        if column not in MILESTONES:
            raise InvalidInput(f"window {name!r} measures {column!r}", field="windows",
                               fix=f"use one of {', '.join(MILESTONES)}")
        if not name.isidentifier():
            raise InvalidInput(f"window name {name!r} is not an identifier", field="windows", fix="use letters, digits, _")
        bind[f"w{i}"] = float(seconds)
        out.append(f"count(*) FILTER (WHERE e.{column} IS NOT NULL AND "
                   f"e.{column} <= e.reported_at + make_interval(secs => :w{i})) AS done_{name}")
        out.append(f"count(*) FILTER (WHERE e.reported_at + make_interval(secs => :w{i}) <= :as_of) AS due_{name}"
                   if as_of else f"count(*) AS due_{name}")
    return out


def _month_frame(rows: Sequence, names: list[str]) -> pd.DataFrame:
    """Rows of (code, month, category, events, done/due per window) as a frame: months as timestamps, counts
    as int64."""
    cols = ["code", "month", "category", "events"] + [f"{p}_{n}" for n in names for p in ("done", "due")]
    out = pd.DataFrame(rows, columns=cols)
    out["month"] = pd.to_datetime(out["month"])
    for c in cols[3:]:
        out[c] = out[c].astype("int64")
    return out


# -- metrics ------------------------------------------------------------------------------------------------
def event_metrics(conn: Connection, *, key: str, period: str | None, start: dt.datetime, end: dt.datetime,
                  street: str | None, now: dt.datetime, tz: str) -> list[RowMapping]:
    """Counts, closure/resolution rates and durations (minutes) by ``key`` column and period."""
    bucket = f"date_trunc('{period}', e.reported_at AT TIME ZONE :tz)" if period else "NULL::timestamp"
    group = f"e.{key}" if key != "all" else "'all'"
    return list(conn.execute(text(f"""
        SELECT {group} AS key, {bucket} AS period,
          count(*) AS reported,
          count(*) FILTER (WHERE e.status IN ('resolved', 'closed')) AS resolved,
          count(*) FILTER (WHERE e.status = 'closed') AS closed,
          count(*) FILTER (WHERE e.status IN {OPEN_STATUSES}) AS open,
          count(*) FILTER (WHERE e.due_at IS NOT NULL AND (
              (e.status IN {OPEN_STATUSES} AND e.due_at < :now)
              OR (e.resolved_at IS NOT NULL AND e.resolved_at > e.due_at))) AS overdue,
          avg(extract(epoch FROM e.on_site_at - e.reported_at)) / 60 AS response_avg_min,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.on_site_at - e.reported_at)) / 60
            AS response_p50_min,
          percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM e.on_site_at - e.reported_at)) / 60
            AS response_p90_min,
          avg(extract(epoch FROM e.resolved_at - e.on_site_at)) / 60 AS handling_avg_min,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.resolved_at - e.on_site_at)) / 60
            AS handling_p50_min,
          avg(extract(epoch FROM e.closed_at - e.reported_at)) / 60 AS closure_avg_min
        FROM events e
        WHERE e.duplicate_of IS NULL AND e.reported_at >= :start AND e.reported_at < :end
          AND {scopes.unconfined_or(':street', scopes.events('e.', ':street'))}
        GROUP BY 1, 2 ORDER BY 1, 2"""), {"start": start, "end": end, "street": street, "now": now, "tz": tz}).mappings())


def overdue_by(conn: Connection, *, now: dt.datetime, street: str | None) -> list[RowMapping]:
    return list(conn.execute(text(f"""
        SELECT e.street_code, e.community_code, e.category, e.escalation_rung AS rung, count(*) AS overdue
        FROM events e
        WHERE e.status IN {OPEN_STATUSES} AND e.duplicate_of IS NULL
          AND e.due_at < :now AND {scopes.unconfined_or(':street', scopes.events('e.', ':street'))}
        GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC, 1, 2, 3, 4"""), {"now": now, "street": street}).mappings())


def grid_events(conn: Connection, *, now: dt.datetime, since: dt.datetime,
                street: str | None = None) -> pd.DataFrame:
    """Per grid code: open events, and ``recent_weighted``, the summed severity (1–4) of events reported in
    [since, now). Every grid with such events (of ``street`` if given); the caller keeps those it shows."""
    cur = _q(conn,
        f"""SELECT grid_code AS code,
                   count(*) FILTER (WHERE status IN {OPEN_STATUSES})::int AS open_events,
                   COALESCE(sum(severity) FILTER (WHERE reported_at >= :since), 0)::int AS recent_weighted
            FROM events WHERE grid_code IS NOT NULL AND reported_at <= :now
              AND (status IN {OPEN_STATUSES} OR reported_at >= :since)
              AND (CAST(:street AS text) IS NULL OR {scopes.events("", _AREA)})
            GROUP BY 1""",
        {"now": now, "since": since, "street": street})
    return _frame(cur)


def figures(conn: Connection, street: str | None, *, now: dt.datetime, day_start: dt.datetime,
            period_start: dt.datetime, unplaced: bool = True) -> dict:
    """Open events, response times (reported → on site) today, and closure in the period, in one pass."""
    cur = _q(conn,
        f"""SELECT
              count(*) FILTER (WHERE status IN {OPEN_STATUSES}) AS open_events,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM on_site_at - reported_at))
                  FILTER (WHERE reported_at >= :day AND on_site_at IS NOT NULL AND on_site_at <= :now)
                  AS median_response_s_today,
              count(*) FILTER (WHERE reported_at >= :day) AS reported_today,
              count(*) FILTER (WHERE reported_at >= :period) AS reported_period,
              count(*) FILTER (WHERE reported_at >= :period AND status = 'closed') AS closed_period
            FROM events
            WHERE reported_at <= :now AND (status IN {OPEN_STATUSES} OR reported_at >= :period)
              AND {_street_events(street, unplaced)}""",
        {"now": now, "day": day_start, "period": period_start, "street": street})
    return dict(cur.mappings().one())


def figures_by(conn: Connection, area: str, level: str, *, now: dt.datetime, period_start: dt.datetime,
               day_start: dt.datetime) -> list[RowMapping]:
    """Per area of ``level`` under ``area``: open events, overdue now, reported today and in the period, closed
    of those of the period, and the median response (reported → on site) of the period, in minutes."""
    col = EVENT_COLUMN[level]
    return list(conn.execute(text(f"""
        SELECT e.{col} AS code,
               count(*) FILTER (WHERE e.status IN {OPEN_STATUSES}) AS open_events,
               count(*) FILTER (WHERE e.status IN {OPEN_STATUSES} AND e.due_at < :now) AS overdue,
               count(*) FILTER (WHERE e.reported_at >= :day) AS reported_today,
               count(*) FILTER (WHERE e.reported_at >= :period) AS reported_period,
               count(*) FILTER (WHERE e.reported_at >= :period AND e.status = 'closed') AS closed_period,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.on_site_at - e.reported_at))
                   FILTER (WHERE e.reported_at >= :period AND e.on_site_at IS NOT NULL AND e.on_site_at <= :now) / 60
                   AS response_p50_min
        FROM events e
        WHERE e.duplicate_of IS NULL AND e.reported_at <= :now AND e.{col} IS NOT NULL
          AND (e.status IN {OPEN_STATUSES} OR e.reported_at >= :period) AND {scopes.events("e.", ":a")}
        GROUP BY 1"""), {"a": area, "now": now, "period": period_start, "day": day_start}).mappings())


def month_counts(conn: Connection, area: str, level: str, *, start: dt.datetime, end: dt.datetime,
                 windows: Mapping[str, tuple[str, float]], as_of: dt.datetime, tz: str) -> pd.DataFrame:
    """Events per (area of ``level`` under ``area``, local month, category) with ``done_<w>``/``due_<w>`` per
    window: the input of :func:`gridmap.analysis.safety.safety_index`, confined to ``area`` in SQL (the same
    counts as :func:`event_month_counts`, near-duplicates apart)."""
    col = EVENT_COLUMN[level]
    bind: dict[str, object] = {"a": area, "start": start, "end": end, "as_of": as_of, "tz": tz}
    sel = ", ".join(["count(*) AS events", *_window_counts(windows, bind, as_of=True)])
    rows = conn.execute(text(f"""
        SELECT e.{col} AS code, date_trunc('month', e.reported_at AT TIME ZONE :tz) AS month, e.category, {sel}
        FROM events e
        WHERE e.duplicate_of IS NULL AND e.reported_at >= :start AND e.reported_at < :end AND e.{col} IS NOT NULL
          AND {scopes.events("e.", ":a")}
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""), bind).all()
    return _month_frame(rows, list(windows))


def event_month_counts(conn: Connection, flt: AreaFilter, *, level: str = "grid", start: dt.datetime | None = None,
                       end: dt.datetime | None = None, categories: Sequence[str] | None = None,
                       windows: Mapping[str, tuple[str, float]] | None = None,
                       as_of: dt.datetime | None = None) -> pd.DataFrame:
    """Events per (area code, local month, category), counted in PostGIS.

    ``windows`` maps a name to (milestone column, seconds): for each it adds ``done_<name>`` (events
    whose milestone came within that many seconds of the report) and ``due_<name>`` (events reported
    at least that long before ``as_of``: the ones whose outcome is known). Returns columns ``code,
    month`` (first day of the local month, naive), ``category, events`` and the window counts.
    """
    if level not in EVENT_LEVEL_COLUMN:
        raise InvalidInput(f"unknown level {level!r}", field="level", fix=f"use one of {', '.join(EVENT_LEVEL_COLUMN)}")
    code_col = EVENT_LEVEL_COLUMN[level]
    bind: dict = {"tz": LOCAL_TZ}
    conds = [*_where(conn, "e", flt, bind), *_time_conds("e", start, end, bind), f"e.{code_col} IS NOT NULL"]
    if categories is not None:
        conds.append("e.category = ANY(:cats)")
        bind["cats"] = list(categories)
    extra = _window_counts(windows or {}, bind, as_of=as_of is not None)
    if as_of is not None:
        if as_of.tzinfo is None:
            raise InvalidInput(f"as_of {as_of} has no time zone", field="as_of", fix="pass an aware datetime")
        bind["as_of"] = as_of
    sel = ", ".join(["count(*) AS events", *extra])
    q = (f"SELECT e.{code_col} AS code, date_trunc('month', e.reported_at AT TIME ZONE :tz) AS month, "
         f"e.category, {sel} FROM events e{_sql_where(conds)} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    return _month_frame(conn.execute(text(q), bind).all(), list(windows or {}))


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
               count(*) FILTER (WHERE e.status IN {OPEN_STATUSES}) AS open,
               count(*) FILTER (WHERE e.status = 'closed') AS closed
        FROM events e WHERE {' AND '.join(where)}
        GROUP BY 1 ORDER BY 1"""),
        {"start": start, "end": end, "ch": list(channels or ()), "a": area}).mappings())
