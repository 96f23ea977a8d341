"""Residents and places as the API shows them, by role.

Personal data (name, ID-card number, phone) reaches only operators (their area) and admins, masked,
with a stated purpose, and every such read is written to the append-only ``pii_access_log`` (by
:meth:`Registry.residents`). Grid workers see the residents of their own grid without personal data;
volunteers and planners never read residents one by one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from gridmap.errors import Forbidden, InvalidInput, NotFound
from gridmap.services.auth import Principal
from gridmap.services.registry import Registry
from gridmap.services.scopes import require_area
from gridmap.storage import areas as areas_sql
from gridmap.storage import registry as registry_sql

RESIDENT_COLUMNS = ("id", "household_id", "building_id", "building_code", "grid_code", "community_code", "unit",
                    "floor", "room", "sex", "birth_year", "is_party_member", "flags")


def _clean(v: Any) -> Any:
    if v is None:
        return None
    try:
        if v != v:  # NaN from pandas
            return None
    except TypeError:
        pass
    return v


def residents(registry: Registry, p: Principal, *, area: str, personal: bool, purpose: str | None,
              limit: int, after: int | None = None) -> list[dict]:
    """At most ``limit`` residents of ``area`` by id, after the id ``after`` (the next page: the last id of
    this one); the limit and the page are applied in PostgreSQL, and a read of personal data is logged
    with the number of rows it returned."""
    if p.role in ("planner", "volunteer", "intake", "unit"):
        raise Forbidden(f"role {p.role!r} does not read residents", field="role",
                        fix="planners read aggregates at /v1/metrics")
    if personal and not p.sees_personal_data:
        raise Forbidden("personal data is for operators and admins only", field="personal", fix="leave it out")
    if p.role == "grid_worker" and area not in p.grids:
        raise Forbidden(f"area {area} is not your grid", field="area", fix=f"use one of {', '.join(p.grids)}")
    if p.role == "operator":
        with registry.engine.connect() as conn:
            require_area(conn, p, area)
    if personal and not purpose:
        raise InvalidInput("reading personal data needs a purpose", field="purpose",
                           fix="say why, e.g. purpose=door-to-door check; it is logged with your name")
    gdf = registry.residents(area=area, personal=personal, actor=p.username if personal else None,
                             purpose=purpose if personal else None, limit=limit, after=after)
    cols = [*RESIDENT_COLUMNS, *(("name", "id_card", "phone") if personal else ())]
    out = []
    for rec in gdf[cols].to_dict("records"):
        rec = {k: _clean(v) for k, v in rec.items()}
        rec["flags"] = list(rec["flags"] or [])
        out.append(rec)
    return out


def place(session: Session, code: str, at: dt.datetime) -> dict:
    """What a QR code (余安码) fills in when scanned: the place, its address, location and grid."""
    with session.begin():
        conn = session.connection()
        row = registry_sql.place_location(conn, code)
        if row is None:
            raise NotFound(f"no place with code {code!r}", field="code",
                           fix="scan again; a place code is a business (S…) or building (B…) code")
        area = areas_sql.place_point(conn, row["lon"], row["lat"], at)
    return {"kind": row["kind"], "code": row["code"], "name": row["name"], "place_kind": row["place_kind"],
            "address": row["address"], "lon": row["lon"], "lat": row["lat"],
            "area": None if area is None else {"street": area["street_code"], "community": area["community_code"],
                                               "grid": area["grid_code"], "grid_area_id": area["grid_area_id"]}}
