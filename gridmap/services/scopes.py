"""Who may read what, by scope: the one place the services turn a caller into the SQL condition of a read.

* An **operator** reads inside one area (a district's streets, a street, or a community's grids): events by
  :func:`gridmap.storage.scopes.events`, teams by their home grid, buildings and residents by community.
* A **unit member** reads the events that stand or stood at their unit (its inbox and what passed through).
* Admins read everything; planners aggregates; grid workers and volunteers their grid and team (their own
  rules, in :mod:`gridmap.services.events`).

Each helper returns a condition and its parameters to AND into a query, or refuses the caller.
"""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping

from gridmap.errors import Forbidden
from gridmap.services.auth import Principal
from gridmap.storage import areas as areas_sql
from gridmap.storage import scopes as scopes_sql
from gridmap.storage import units as units_sql

#: Matches nothing: the condition of a scoped caller whose area or unit is not set (fail closed).
NOTHING = "false"


def event_clause(p: Principal, alias: str = "e.") -> tuple[str, dict[str, object]] | None:
    """The condition confining a read of events to ``p``'s scope; None for a caller who reads every event."""
    if p.role == "operator":
        if p.area is None:
            return NOTHING, {}
        return scopes_sql.events(alias, ":scope_area"), {"scope_area": p.area}
    if p.role == "unit":
        if p.unit is None:
            return NOTHING, {}
        return units_sql.events_at_units_clause(alias, ":scope_unit"), {"scope_unit": p.unit}
    return None


def check_event(conn: Connection, p: Principal, ev: RowMapping, what: str | None = None) -> None:
    """Refuse an operator an event outside their area, and a unit member an event that never stood at their
    unit. (Admins pass; other roles are the caller's business.)"""
    label = what or f"event {ev['code']}"
    if p.role == "operator":
        p.check_street(ev["street_code"], label, ev["community_code"])
    elif p.role == "unit" and (p.unit is None or not units_sql.ever_at_unit(conn, ev["id"], p.unit)):
        raise Forbidden(f"{label} never stood at your unit {p.unit}", field="event_id",
                        fix="your unit reads the events at its rungs (GET /v1/units/{code}/inbox)")


def require_area(conn: Connection, p: Principal, area: str, what: str = "area") -> None:
    """An operator may name only areas inside their own (a district's streets and communities, ...)."""
    if p.role != "operator":
        return
    if p.area is None or not areas_sql.area_within(conn, area, p.area):
        where = p.scope.describe() if p.scope is not None else "your area (none is set)"
        raise Forbidden(f"{what} {area} is outside {where}", field="area",
                        fix=f"ask for {p.area} or an area inside it, or leave area out" if p.area else "ask an admin")
