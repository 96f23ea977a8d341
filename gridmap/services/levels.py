"""The levels of command side by side, and their figures: a district's streets, a street's communities, a
community's grids (open events, overdue, response time, closure rate; the safety index's counts), the
intake figures of the one-door intake and the hotlines (calls taken, answered on the spot, dispatched), and
resolution per unit and rung (the mall's "98 disputes, 100 % resolved").

Everything is read in SQL confined to the caller's area (operators) or unit (unit members); planners and
admins read any area. Aggregates only: no person is named.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from gridmap.core.levels import OPERATOR_LEVELS
from gridmap.core.vocabulary import CHANNELS, LOCAL_TZ, RESOLVED_OUTCOMES, TIME_ZONE
from gridmap.errors import Forbidden, InvalidInput, NotFound
from gridmap.services import scopes as scope_rules
from gridmap.services.auth import Principal
from gridmap.services.metrics import check_window
from gridmap.storage import areas as areas_sql
from gridmap.storage import mediation as mediation_sql
from gridmap.storage import metrics as metrics_sql
from gridmap.storage import scopes as scopes_sql
from gridmap.storage import units as units_sql

Clock = Callable[[], dt.datetime]
#: How far back the closure rate and the response time look.
PERIOD_DAYS = 30


def _rate(part: int | None, whole: int | None) -> float | None:
    return round((part or 0) / whole, 4) if whole else None


def _num(v: Any) -> float | None:
    return None if v is None else round(float(v), 2)


class LevelsService:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def _area(self, conn: Connection, p: Principal, area: str | None) -> tuple[str, str]:
        """The area ``p`` asks about (default: their own; admins and planners: the first district with
        streets) and its level; refused outside an operator's area."""
        if p.role not in ("admin", "planner", "operator"):
            raise Forbidden(f"role {p.role!r} has no screen of the levels of command", field="role",
                            fix="unit members read their unit's inbox; teams their assignments")
        if area is None:
            area = p.area if p.role == "operator" else areas_sql.first_district(conn)
            if area is None:
                raise NotFound("no district with streets is loaded", field="area",
                               fix="load the registry (gridmap sample load)")
        scope_rules.require_area(conn, p, area)
        level = areas_sql.area_level(conn, area)
        if level not in OPERATOR_LEVELS:
            raise NotFound(f"no district, street or community {area!r}", field="area",
                           fix="give the code of a district, a street or a community")
        return area, level

    def resolve(self, session: Session, p: Principal, area: str | None) -> tuple[str, str]:
        """The area a screen of ``p`` shows (default: theirs) and its level; 403 outside an operator's area."""
        with session.begin():
            return self._area(session.connection(), p, area)

    def overview(self, session: Session, p: Principal, *, area: str | None = None,
                 at: dt.datetime | None = None) -> dict[str, Any]:
        """The areas one level below ``area`` side by side: population, open events, overdue now, events
        reported today, the closure rate (闭环率) and the median response (reported → on site) of the last
        30 days; with the area itself summed up. Operators: their area or one inside it."""
        now = at or self.clock()
        if now.tzinfo is None:
            raise InvalidInput(f"time {now.isoformat()} has no time zone", field="at", fix="send ISO 8601 with an offset")
        day = now.astimezone(LOCAL_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
        period = now - dt.timedelta(days=PERIOD_DAYS)
        with session.begin():
            conn = session.connection()
            code, level = self._area(conn, p, area)
            below = metrics_sql.BELOW[level]
            kids = areas_sql.children(conn, code, below)
            figs = {r["code"]: r for r in metrics_sql.figures_by(conn, code, below, now=now, period_start=period,
                                                                 day_start=day)}
            names = areas_sql.area_names(conn, [code])
        rows = []
        zero = {"open_events": 0, "overdue": 0, "reported_today": 0, "reported_period": 0, "closed_period": 0,
                "response_p50_min": None}  # an area without events
        for k in kids:
            f = figs.get(k["code"], zero)
            rows.append({"code": k["code"], "name": k["name"], "name_zh": k["name_zh"],
                         "population": k["population"], "open": f["open_events"], "overdue": f["overdue"],
                         "reported_today": f["reported_today"], "reported_period": f["reported_period"],
                         "closure_rate": _rate(f["closed_period"], f["reported_period"]),
                         "response_p50_min": _num(f["response_p50_min"]),
                         "bbox": [k["minx"], k["miny"], k["maxx"], k["maxy"]]})
        total = {key: sum(r[key] for r in rows) for key in ("open", "overdue", "reported_today", "reported_period")}
        closed = sum((figs[r["code"]]["closed_period"] if r["code"] in figs else 0) for r in rows)
        info = names.get(code, {})
        return {"at": now, "area": {"code": code, "level": level, "name": info.get("name"),
                                    "name_zh": info.get("name_zh"), "parent": info.get("parent")},
                "level_below": below, "period_days": PERIOD_DAYS,
                "totals": {**total, "closure_rate": _rate(closed, total["reported_period"])}, "areas": rows}

    def safety_inputs(self, session: Session, p: Principal, *, area: str | None, windows: Mapping[str, tuple[str, float]],
                      at: dt.datetime | None = None, months: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
        """What the safety index (:func:`gridmap.analysis.safety.safety_index`) needs for the areas one level
        below ``area``: their event counts per month and category of the last ``months`` months (with the
        windows' done/due counts), and their populations; confined to ``area`` in SQL."""
        now = at or self.clock()
        local = now.astimezone(LOCAL_TZ)
        first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        for _ in range(months - 1):
            first = (first - dt.timedelta(days=1)).replace(day=1)
        with session.begin():
            conn = session.connection()
            code, level = self._area(conn, p, area)
            below = metrics_sql.BELOW[level]
            counts = metrics_sql.month_counts(conn, code, below, start=first, end=now + dt.timedelta(seconds=1),
                                              windows=windows, as_of=now, tz=TIME_ZONE)
            kids = areas_sql.children(conn, code, below)
        areas = pd.DataFrame({"code": [k["code"] for k in kids],
                              "population": [k["population"] or 0 for k in kids]})
        return counts, areas

    def nav(self, session: Session, p: Principal, area: str | None) -> dict[str, Any]:
        """Where a screen of ``area`` sits among the levels: the area (name, level), its parent if ``p`` may look
        at it, and the areas one level below (a district's streets, a street's communities) that ``p`` may
        drill into. ``area`` None: the whole registry (admins, planners)."""
        with session.begin():
            conn = session.connection()
            if area is None:
                area = areas_sql.first_district(conn)
                if area is None:
                    return {"here": None, "parent": None, "children": []}
            level = areas_sql.area_level(conn, area)
            info = areas_sql.area_names(conn, [area]).get(area, {})
            parent = info.get("parent")
            may_parent = parent is not None and areas_sql.area_level(conn, parent) in OPERATOR_LEVELS and (
                p.role in ("admin", "planner") or (p.area is not None and areas_sql.area_within(conn, parent, p.area)))
            kids = areas_sql.children(conn, area, metrics_sql.BELOW[level]) if level in ("district", "street") else []
            parent_info = areas_sql.area_names(conn, [parent]).get(parent, {}) if may_parent and parent else {}
        return {"here": {"code": area, "level": level, "name": info.get("name"), "name_zh": info.get("name_zh")},
                "parent": {"code": parent, "name_zh": parent_info.get("name_zh"), "name": parent_info.get("name"),
                           "level": parent_info.get("level")} if may_parent else None,
                "children": [{"code": k["code"], "name": k["name"], "name_zh": k["name_zh"]} for k in kids]}

    # -- metrics --------------------------------------------------------------------------------------------
    def _window(self, p: Principal, start: dt.datetime | None,
                end: dt.datetime | None) -> tuple[dt.datetime, dt.datetime, dt.datetime, str | None]:
        """Now, the figures' window (default: the year up to now, checked) and the operator's area confining
        them in SQL (``"-"``, nothing, for an operator without one; None for everyone else)."""
        now = self.clock()
        end = end or now + dt.timedelta(seconds=1)
        start = start or end - dt.timedelta(days=365)
        check_window(start, end)
        return now, start, end, (p.area or "-") if p.role == "operator" else None

    def intake(self, session: Session, p: Principal, *, group_by: str = "channel", channels: Sequence[str] | None = None,
               start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict[str, Any]:
        """Calls and visits taken, answered on the spot, dispatched, escalated, open and closed, per channel
        (or street, community, category); operators: their area."""
        p.require("admin", "operator", "planner", what="read intake figures")
        if group_by not in metrics_sql.INTAKE_GROUPS:
            raise InvalidInput(f"cannot group by {group_by!r}", field="group_by",
                               fix=f"use one of {', '.join(metrics_sql.INTAKE_GROUPS)}")
        unknown = [c for c in channels or () if c not in CHANNELS]
        if unknown:
            raise InvalidInput(f"unknown channel {unknown[0]!r}", field="channel", fix=f"use one of {', '.join(CHANNELS)}")
        _, start, end, area = self._window(p, start, end)
        with session.begin():
            rows = metrics_sql.intake_metrics(session.connection(), group_by=group_by, start=start, end=end,
                                              channels=channels, area=area)
        out = []
        for r in rows:
            out.append({**dict(r), "answered_rate": _rate(r["answered_on_the_spot"], r["taken"]),
                        "dispatched_rate": _rate(r["dispatched"], r["taken"])})
        return {"group_by": group_by, "start": start, "end": end, "area": area, "rows": out}

    def units(self, session: Session, p: Principal, *, group_by: str = "unit", start: dt.datetime | None = None,
              end: dt.datetime | None = None, unit: str | None = None) -> dict[str, Any]:
        """Per unit (or ladder rung ``category:rung``, a unit's rung ``unit/category:rung``, unit kind, place,
        category): the disputes that reached it, settled there, escalated, referred, returned, still there,
        overdue, resolved in the end, the resolution rate (resolved / those that left it), the minutes spent
        there and from arrival to settling there (median, p90); per mediation room (``group_by=unit``) its
        cases by outcome. ``unit``: that unit's rows only. Confined in SQL: operators to their area's events,
        unit members to their own unit."""
        if p.role not in ("admin", "planner", "operator", "unit"):
            raise Forbidden(f"role {p.role!r} does not read unit figures", field="role",
                            fix="admins, planners, operators and unit members do")
        if group_by not in units_sql.UNIT_GROUPS:
            raise InvalidInput(f"cannot group by {group_by!r}", field="group_by",
                               fix=f"use one of {', '.join(units_sql.UNIT_GROUPS)}")
        if p.role == "unit" and unit not in (None, p.unit):
            raise Forbidden(f"unit {unit} is not yours ({p.unit})", field="unit", fix=f"ask for {p.unit}, or leave unit out")
        now, start, end, area = self._window(p, start, end)
        if p.role == "unit":
            unit = p.unit or "-"
        with session.begin():
            conn = session.connection()
            if unit is not None and p.role != "unit" and units_sql.unit(conn, unit) is None:
                raise NotFound(f"no unit {unit!r}", field="unit", fix="list units: GET /v1/units")
            rows = units_sql.unit_metrics(conn, group_by=group_by, start=start, end=end, now=now,
                                          resolved_outcomes=RESOLVED_OUTCOMES, area=area, unit_code=unit)
            where, params = [], {}
            if area is not None:
                where.append(scopes_sql.events("e.", ":area"))
                params["area"] = area
            if unit is not None:
                where.append("c.unit_code = :unit")
                params["unit"] = unit
            cases = {r["key"]: dict(r) for r in mediation_sql.case_metrics(conn, start=start, end=end, where=where,
                                                                           params=params)} \
                if group_by == "unit" else {}
        out = []
        for r in rows:
            row = {"key": r["key"], "events": r["events"], "open": r["open"], "settled": r["settled"],
                   "escalated": r["escalated"], "referred": r["referred"], "returned": r["returned"],
                   "overdue": r["overdue"], "done": r["done"],
                   "resolved": r["resolved"], "resolution_rate": _rate(r["resolved"], r["done"]),
                   "settle_rate": _rate(r["settled"], r["done"]),
                   "minutes": {"avg": _num(r["time_avg_min"]), "p50": _num(r["time_p50_min"]),
                               "p90": _num(r["time_p90_min"]), "max": _num(r["time_max_min"])},
                   "settle_min": {"avg": _num(r["settle_avg_min"]), "p50": _num(r["settle_p50_min"]),
                                  "p90": _num(r["settle_p90_min"])},
                   "take_min": {"avg": _num(r["take_avg_min"])}}
            c = cases.get(r["key"])
            if c is not None:
                row["cases"] = _case_figures(c)
            out.append(row)
        return {"group_by": group_by, "start": start, "end": end, "unit": unit, "rows": out}


def _case_figures(c: Mapping[str, Any]) -> dict[str, Any]:
    """A mediation room's cases: counts by outcome, its resolution rate ((agreement + partial) / closed) and
    the time to the outcome."""
    out = {k: v for k, v in c.items() if k not in ("key", "days_avg", "minutes_p50", "minutes_p90")}
    out["days_avg"] = _num(c["days_avg"])
    out["minutes"] = {"p50": _num(c["minutes_p50"]), "p90": _num(c["minutes_p90"])}
    out["resolution_rate"] = _rate(c["agreement"] + c["partial"], c["closed"])
    return out
