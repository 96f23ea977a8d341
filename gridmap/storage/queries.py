"""Read queries that return GeoDataFrames; filters are pushed down to PostGIS (index-backed)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, text

from gridmap.errors import InvalidInput, NotFound
from gridmap.storage.layers import AREA_LEVEL_LAYERS, LayerSpec


@dataclass(frozen=True)
class AreaFilter:
    """Where to read: an area code (street, community or grid, at its current boundary) and/or a bbox."""

    area: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    at: dt.datetime | None = None  # boundary version (default: current)


def _validity(alias: str, at_param: bool) -> str:
    if at_param:
        return f"{alias}.valid_from <= :at AND ({alias}.valid_to IS NULL OR :at < {alias}.valid_to)"
    return f"{alias}.valid_to IS NULL"


def area_exists(conn: Connection, code: str, at: dt.datetime | None = None) -> bool:
    q = f"SELECT 1 FROM areas a WHERE a.code = :code AND {_validity('a', at is not None)}"
    return conn.execute(text(q), {"code": code, "at": at}).first() is not None


def select_layer(
    conn: Connection, spec: LayerSpec, flt: AreaFilter, *, level: str | None = None,
    columns: list[str] | None = None, where: str | None = None, params: dict | None = None,
    limit: int | None = None,
) -> gpd.GeoDataFrame:
    """Select the public columns of a layer, filtered by area/bbox, as a GeoDataFrame in EPSG:4326."""
    cols = columns or spec.public_columns
    unknown = [c for c in cols if c not in spec.public_columns]
    if unknown:
        raise InvalidInput(f"unknown or restricted column(s) {', '.join(unknown)}", field="columns",
                           fix=f"choose from {', '.join(spec.public_columns)}")
    sel = ", ".join(f't."{c}"' if c != "geom" else "ST_AsBinary(t.geom) AS geom" for c in cols)
    if "geom" not in cols:
        sel += ", ST_AsBinary(t.geom) AS geom"
    conds, bind = [], dict(params or {})
    if spec.name == "areas":
        conds.append(_validity("t", flt.at is not None))
        bind["at"] = flt.at
        if level:
            conds.append("t.level = :level")
            bind["level"] = level
    if flt.bbox is not None:
        minx, miny, maxx, maxy = flt.bbox
        if not (minx < maxx and miny < maxy):
            raise InvalidInput(f"bbox {flt.bbox} is empty", field="bbox", fix="give (min_lon, min_lat, max_lon, max_lat)")
        conds.append("t.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)")
        bind.update(minx=minx, miny=miny, maxx=maxx, maxy=maxy)
    if flt.area is not None:
        if not area_exists(conn, flt.area, flt.at):
            raise NotFound(f"no area with code {flt.area!r}", field="area", fix="list areas with gm.layer('areas')")
        bind["area_code"] = flt.area
        bind["at"] = flt.at
        area_geom = f"(SELECT a.geom FROM areas a WHERE a.code = :area_code AND {_validity('a', flt.at is not None)})"
        if spec.name == "areas":
            # the area itself and everything below it in the hierarchy, as it was at `at` (a grid may
            # have moved to another community since); CAST, not `::`, which text() does not see as a bind
            conds.append(
                "t.code IN (WITH RECURSIVE sub AS (SELECT CAST(:area_code AS text) AS code UNION "
                "SELECT c.code FROM areas c JOIN sub ON c.parent_code = sub.code "
                f"WHERE {_validity('c', flt.at is not None)}) "
                "SELECT code FROM sub)"
            )
        elif spec.kind == "polygon":
            conds.append(f"t.geom && {area_geom} AND ST_Intersects(ST_PointOnSurface(t.geom), {area_geom})")
        else:
            conds.append(f"ST_Intersects(t.geom, {area_geom})")
    if where:
        conds.append(where)
    q = f"SELECT {sel} FROM {spec.table.name} t"
    if conds:
        q += " WHERE " + " AND ".join(f"({c})" for c in conds)
    order = ", ".join(f"t.{k}" for k in spec.key)
    q += f" ORDER BY {order}"
    if limit is not None:
        q += f" LIMIT {int(limit)}"
    gdf = gpd.read_postgis(text(q), conn, geom_col="geom", params=bind, crs="EPSG:4326")  # type: ignore[call-overload]  # stubs: sql is str only; geopandas takes a TextClause
    return gdf


def level_of(layer: str) -> str | None:
    return AREA_LEVEL_LAYERS.get(layer)


def residents_frame(conn: Connection, flt: AreaFilter, *, personal: bool, limit: int | None = None,
                    after: int | None = None) -> gpd.GeoDataFrame:
    """Residents with their household and building (a point on the building), optionally with personal data;
    by id, at most ``limit`` of them after the id ``after`` (keyset paging), all done in PostgreSQL.

    Two statements: the buildings of the area first (its GiST index, a point on each footprint inside the
    boundary), then their residents by id. Handed the buildings as an array, the planner knows how many
    there are and walks the residents in id order until it has ``limit`` rows (~0.1 s for the first 500 of a
    street of 260,000 residents); as one statement it read and sorted them all (1-3 s).
    """
    pii = ", p.name, p.id_card, p.phone" if personal else ""
    join = " LEFT JOIN resident_pii p ON p.resident_id = r.id" if personal else ""
    b_conds: list[str] = []
    bind: dict[str, Any] = {}
    if flt.bbox is not None:
        b_conds.append("b.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)")
        bind.update(zip(("minx", "miny", "maxx", "maxy"), flt.bbox, strict=True))
    if flt.area is not None:
        if not area_exists(conn, flt.area):
            raise NotFound(f"no area with code {flt.area!r}", field="area", fix="list areas with gm.layer('areas')")
        area = "(SELECT geom FROM areas WHERE code = :area AND valid_to IS NULL)"
        b_conds.append(f"b.geom && {area} AND ST_Intersects(ST_PointOnSurface(b.geom), {area})")
        bind["area"] = flt.area
    conds: list[str] = []
    params: dict[str, Any] = {}
    if b_conds:
        ids = conn.execute(text("SELECT b.id FROM buildings b WHERE " + " AND ".join(b_conds)), bind).scalars().all()
        conds.append("r.building_id = ANY(CAST(:buildings AS bigint[]))")
        params["buildings"] = list(ids)
    if after is not None:
        conds.append("r.id > :after")
        params["after"] = after
    q = (
        "SELECT r.id, r.household_id, r.building_id, h.unit, h.floor, h.room, r.sex, r.birth_year, r.is_party_member, "
        f"r.flags, b.code AS building_code, b.grid_code, b.community_code{pii}, "
        "ST_AsBinary(ST_PointOnSurface(b.geom)) AS geom "
        f"FROM residents r JOIN households h ON h.id = r.household_id JOIN buildings b ON b.id = r.building_id{join}"
    )
    if conds:
        q += " WHERE " + " AND ".join(conds)
    q += " ORDER BY r.id"
    if limit is not None:
        q += " LIMIT :limit"
        params["limit"] = int(limit)
    return gpd.read_postgis(text(q), conn, geom_col="geom", params=params, crs="EPSG:4326")  # type: ignore[call-overload]  # stubs: sql is str only; geopandas takes a TextClause


def log_pii_access(conn: Connection, actor: str, purpose: str, table: str, rows: int, detail: dict) -> None:
    conn.execute(
        text("INSERT INTO pii_access_log (actor, purpose, table_name, row_count, detail) "
             "VALUES (:actor, :purpose, :table, :rows, CAST(:detail AS jsonb))"),
        {"actor": actor, "purpose": purpose, "table": table, "rows": rows, "detail": pd.Series(detail).to_json()},
    )


def counts(conn: Connection) -> dict[str, int]:
    """Row counts of the registry (areas by level: current versions)."""
    out: dict[str, int] = {}
    for level, n in conn.execute(text("SELECT level, count(*) FROM areas WHERE valid_to IS NULL GROUP BY level")):
        out[f"areas.{level}"] = n
    for table in ("buildings", "households", "residents", "businesses", "fire_equipment", "teams", "team_members",
                  "road_nodes", "road_edges", "events"):
        out[table] = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    return out
