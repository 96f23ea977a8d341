"""SQL of ``areas``: the versioned boundaries of districts, streets, communities and grids, and what is
read by area (where a point falls, what lies under an area, extents, the current polygons as shapely
geometries or GeoDataFrames in EPSG:4326).

Every function runs on the caller's SQLAlchemy connection, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, RowMapping, text

from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.storage import scopes
from gridmap.storage._filters import (
    _AREA,
    _STREET_COMMUNITIES,
    _STREET_SHAPE,
    _area_geom,
    _bbox_cond,
    _geo_frame,
    _geoms,
    _postgis_frame,
    _q,
    _sql_where,
    _where,
)
from gridmap.storage._filters import AreaFilter as AreaFilter  # the area filter and its test are the areas'
from gridmap.storage._filters import area_exists as area_exists

_CURRENT = "valid_to IS NULL"


# -- resolving a scope ----------------------------------------------------------------------------------------
def area_level(conn: Connection, code: str) -> str | None:
    """The level of the current area ``code`` (None: no such area)."""
    return conn.execute(text(f"SELECT level FROM areas WHERE code = :c AND {_CURRENT}"), {"c": code}).scalar_one_or_none()


def resolve(conn: Connection, code: str) -> tuple[list[str], list[str]]:
    """The current (streets, communities) under area ``code``, in one round trip."""
    row = conn.execute(text(f"""
        SELECT ARRAY(SELECT code FROM ({scopes.streets_of(':a')}) s ORDER BY code) AS streets,
               ARRAY(SELECT code FROM ({scopes.communities_of(':a')}) c ORDER BY code) AS communities"""),
        {"a": code}).one()
    return list(row.streets), list(row.communities)


def area_within(conn: Connection, area: str, scope: str) -> bool:
    """Whether area ``area`` is ``scope`` or lies under it (current boundaries)."""
    return conn.execute(text(f"""
        WITH RECURSIVE up AS (
            SELECT code, parent_code FROM areas WHERE code = :a AND {_CURRENT}
            UNION SELECT a.code, a.parent_code FROM areas a JOIN up ON a.code = up.parent_code AND a.{_CURRENT})
        SELECT EXISTS (SELECT 1 FROM up WHERE code = :s)"""), {"a": area, "s": scope}).scalar_one()


def area_names(conn: Connection, codes: list[str]) -> dict[str, dict[str, str | None]]:
    """Name, Chinese name, level and parent of current areas."""
    rows = conn.execute(text(f"SELECT code, name, name_zh, level, parent_code FROM areas WHERE code = ANY(:c) "
                             f"AND {_CURRENT}"), {"c": codes}).mappings()
    return {r["code"]: {"name": r["name"], "name_zh": r["name_zh"], "level": r["level"], "parent": r["parent_code"]}
            for r in rows}


def first_district(conn: Connection) -> str | None:
    """The first district (by code) that has current streets: the default of a screen asked for no area."""
    return conn.execute(text(f"""
        SELECT d.code FROM areas d WHERE d.level = 'district' AND d.{_CURRENT}
          AND EXISTS (SELECT 1 FROM areas s WHERE s.level = 'street' AND s.{_CURRENT} AND s.parent_code = d.code)
        ORDER BY d.code LIMIT 1""")).scalar_one_or_none()


def street_exists(conn: Connection, code: str) -> bool:
    return conn.execute(text("SELECT EXISTS (SELECT 1 FROM areas WHERE code = :c AND level = 'street')"),
                        {"c": code}).scalar_one()


def place_point(conn: Connection, lon: float, lat: float, at: dt.datetime) -> RowMapping | None:
    """The grid (version valid at ``at``) containing the point, with its community and street."""
    return conn.execute(text("""
        SELECT g.id AS grid_area_id, g.code AS grid_code, g.parent_code AS community_code,
               c.parent_code AS street_code
        FROM areas g
        LEFT JOIN areas c ON c.code = g.parent_code AND c.level = 'community'
             AND c.valid_from <= :at AND (c.valid_to IS NULL OR :at < c.valid_to)
        WHERE g.level = 'grid' AND g.valid_from <= :at AND (g.valid_to IS NULL OR :at < g.valid_to)
          AND ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
        ORDER BY g.code LIMIT 1"""), {"lon": lon, "lat": lat, "at": at}).mappings().first()


def street_of_grid(conn: Connection, grid_code: str | None) -> str | None:
    if grid_code is None:
        return None
    return conn.execute(text(
        "SELECT c.parent_code FROM areas g JOIN areas c ON c.code = g.parent_code AND c.valid_to IS NULL "
        "WHERE g.code = :g AND g.level = 'grid' AND g.valid_to IS NULL"), {"g": grid_code}).scalar()


def street_of_area(conn: Connection, area_code: str | None) -> str | None:
    """The street of an operator's area: the street itself, a community's street, or a district's first street
    (by code)."""
    if area_code is None:
        return None
    return conn.execute(text(
        "SELECT s.code FROM areas s WHERE s.level = 'street' AND s.valid_to IS NULL AND (s.code = :a "
        "OR s.parent_code = :a OR s.code = (SELECT c.parent_code FROM areas c WHERE c.code = :a "
        "AND c.level = 'community' AND c.valid_to IS NULL)) ORDER BY s.code LIMIT 1"), {"a": area_code}).scalar()


def streets(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL ORDER BY code"))
                .scalars())


def street_extent(conn: Connection, street_code: str) -> tuple[float, float, float, float] | None:
    row = conn.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e "
                            "FROM areas WHERE code = :s AND level = 'street' AND valid_to IS NULL) s"),
                       {"s": street_code}).first()
    if row is None or row[0] is None:
        return None
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def community(conn: Connection, code: str) -> RowMapping | None:
    return conn.execute(text("SELECT code, name, name_zh FROM areas WHERE code = :c AND level = 'community' "
                             "AND valid_to IS NULL"), {"c": code}).mappings().first()


def current_streets(conn: Connection) -> gpd.GeoDataFrame:
    """The current street polygons (``code`` and the geometry, EPSG:4326): the managed area."""
    return _geo_frame(_q(conn, "SELECT code, ST_AsBinary(geom) AS wkb FROM areas WHERE level = 'street' "
                               "AND valid_to IS NULL ORDER BY code"))


def current_grids(conn: Connection) -> list[dict[str, Any]]:
    """The current grids: code, community, street, district and the polygon (``geometry``, EPSG:4326)."""
    rows = [dict(r) for r in conn.execute(text("""
        SELECT g.code, g.parent_code AS community_code, c.parent_code AS street_code, s.parent_code AS district_code,
               ST_AsBinary(g.geom) AS wkb
        FROM areas g LEFT JOIN areas c ON c.code = g.parent_code AND c.valid_to IS NULL
             LEFT JOIN areas s ON s.code = c.parent_code AND s.valid_to IS NULL
        WHERE g.level = 'grid' AND g.valid_to IS NULL ORDER BY g.code""")).mappings()]
    for r, geom in zip(rows, _geoms([r.pop("wkb") for r in rows]), strict=True):
        r["geometry"] = geom
    return rows


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


def area_bounds(conn: Connection, code: str) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of an area's current boundary."""
    bind: dict = {}
    ag = _area_geom(conn, code, bind)
    row = conn.execute(text(f"SELECT ST_XMin(g), ST_YMin(g), ST_XMax(g), ST_YMax(g) FROM {ag} AS x(g)"), bind).one()
    return tuple(float(v) for v in row)  # type: ignore[return-value]


def area_population(conn: Connection, flt: AreaFilter, level: str) -> pd.DataFrame:
    """Current areas of one level inside the area filter: code, name, parent code, population."""
    bind: dict = {"level": level}
    conds = ["t.level = :level", "t.valid_to IS NULL", *_where(conn, "t", flt, bind, polygon=True)]
    q = ("SELECT t.code, t.name, t.name_zh, t.parent_code, t.population "
         f"FROM areas t{_sql_where(conds)} ORDER BY t.code")
    return pd.DataFrame(conn.execute(text(q), bind).all(), columns=["code", "name", "name_zh", "parent_code",
                                                                    "population"])


def grid_registry(conn: Connection, flt: AreaFilter) -> gpd.GeoDataFrame:
    """Current grids (those of the area, or touching the bbox) with buildings, households, residents and
    grid workers counted on the server."""
    bind: dict = {}
    conds = ["g.level = 'grid'", "g.valid_to IS NULL"]
    if flt.bbox is not None:
        conds.append(_bbox_cond("g", flt.bbox, bind))
    if flt.area is not None:
        if not area_exists(conn, flt.area):
            raise NotFound(f"no area with code {flt.area!r}", field="area", fix="list areas with db.layer('areas')")
        bind["area_code"] = flt.area
        conds.append("(g.code = :area_code OR g.parent_code = :area_code OR g.parent_code IN "
                     "(SELECT c.code FROM areas c WHERE c.parent_code = :area_code AND c.valid_to IS NULL))")
    q = f"""
        WITH g AS (SELECT g.code, g.name, g.name_zh, g.parent_code, g.population, g.geom FROM areas g{_sql_where(conds)}),
        b AS (SELECT b.grid_code, count(*) AS buildings,
                     sum((SELECT count(*) FROM households h WHERE h.building_id = b.id)) AS households,
                     sum((SELECT count(*) FROM residents r WHERE r.building_id = b.id)) AS residents
              FROM buildings b WHERE b.grid_code IN (SELECT code FROM g) GROUP BY b.grid_code),
        s AS (SELECT grid_code, count(*) AS workers FROM grid_staff WHERE grid_code IN (SELECT code FROM g)
              GROUP BY grid_code)
        SELECT g.code, g.name, g.name_zh, g.parent_code AS community_code, g.population,
               coalesce(b.buildings, 0) AS buildings, coalesce(b.households, 0) AS households,
               coalesce(b.residents, 0) AS residents, coalesce(s.workers, 0) AS workers,
               ST_AsBinary(g.geom) AS geom
        FROM g LEFT JOIN b ON b.grid_code = g.code LEFT JOIN s ON s.grid_code = g.code ORDER BY g.code"""
    out = _postgis_frame(conn, q, bind)
    for c in ("buildings", "households", "residents", "workers"):
        out[c] = out[c].astype("int64")
    return out


def extent(conn: Connection, area: str | None = None) -> tuple[float, float, float, float] | None:
    """Bounding box of an area's current boundary, or of the buildings when no area is given."""
    if area is None:
        row = _q(conn,
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT COALESCE(ST_Extent(geom), (SELECT ST_Extent(geom) FROM areas WHERE level = 'street' "
            "AND valid_to IS NULL)) AS e FROM buildings) s").fetchone()
    else:  # the area's polygons: a district's streets (not the whole district), a street, a community
        row = _q(conn,
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM "
            f"({_STREET_SHAPE}) a) s", {"street": area}).fetchone()
    return None if row is None or row[0] is None else (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def main_street(conn: Connection) -> str | None:
    row = _q(conn, "SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL "
                       "ORDER BY population DESC NULLS LAST, code LIMIT 1").fetchone()
    return row[0] if row else None


# -- the map's areas -------------------------------------------------------------------------------------------------
def boundaries(conn: Connection, street: str | None) -> gpd.GeoDataFrame:
    """The street, its communities and the district(s) that contain it (current boundaries)."""
    cur = _q(conn,
        """
        WITH st AS (SELECT code, parent_code, geom FROM areas
                    WHERE level = 'street' AND valid_to IS NULL AND (CAST(:street AS text) IS NULL OR code IN ({streets})
                          OR code = (SELECT parent_code FROM areas WHERE code = :street AND level = 'community'
                                     AND valid_to IS NULL)))
        SELECT a.code, a.level, a.name, a.name_zh, a.parent_code, ST_AsBinary(a.geom) AS wkb
        FROM areas a
        WHERE a.valid_to IS NULL AND (
              (a.level = 'street' AND a.code IN (SELECT code FROM st))
           OR (a.level = 'community' AND a.parent_code IN (SELECT code FROM st)
               AND (CAST(:street AS text) IS NULL OR a.code IN ({communities})))
           OR (a.level = 'district' AND (a.code IN (SELECT parent_code FROM st)
                OR EXISTS (SELECT 1 FROM st WHERE ST_Intersects(st.geom, a.geom)
                           AND ST_Area(ST_Intersection(st.geom, a.geom)) > 0.2 * ST_Area(st.geom)))))
        ORDER BY CASE a.level WHEN 'district' THEN 0 WHEN 'street' THEN 1 ELSE 2 END, a.code"""
        .replace("{streets}", scopes.streets_of(_AREA)).replace("{communities}", _STREET_COMMUNITIES),
        {"street": street})
    return _geo_frame(cur)


def _grids_cte() -> str:
    return """
        WITH g AS (
            SELECT a.code, a.name, a.name_zh, a.parent_code, a.geom FROM areas a
            WHERE a.level = 'grid' AND a.valid_to IS NULL
              AND (CAST(:street AS text) IS NULL OR a.parent_code IN (""" + _STREET_COMMUNITIES + """))
        )"""


def grid_shapes(conn: Connection, street: str | None) -> gpd.GeoDataFrame:
    """The current grids of the street with what changes only on a load: population and key places
    without a smart fire alarm (``key_places_unprotected``)."""
    cur = _q(conn,
        _grids_cte() + """,
        pop AS (SELECT b.grid_code, count(r.id) AS n FROM buildings b JOIN residents r ON r.building_id = b.id
                WHERE b.grid_code IN (SELECT code FROM g) GROUP BY 1),
        kp AS (SELECT b.grid_code, count(*) AS n FROM businesses z JOIN buildings b ON b.id = z.building_id
               WHERE z.is_key_place AND NOT z.has_smart_fire_alarm AND b.grid_code IN (SELECT code FROM g)
               GROUP BY 1)
        SELECT g.code, g.name, g.name_zh, g.parent_code AS community_code,
               COALESCE(pop.n, 0)::int AS residents, COALESCE(kp.n, 0)::int AS key_places_unprotected,
               ST_AsBinary(g.geom) AS wkb
        FROM g LEFT JOIN pop ON pop.grid_code = g.code LEFT JOIN kp ON kp.grid_code = g.code
        ORDER BY g.code""",
        {"street": street})
    return _geo_frame(cur)


def redraw_area(conn: Connection, code: str, geometry: BaseGeometry, valid_from: dt.datetime) -> int:
    """Close the current version of an area at ``valid_from`` and open a new one with ``geometry``.

    Returns the new row's id. Events keep the version they were placed in (``events.grid_area_id``).
    """
    if valid_from.tzinfo is None:
        raise InvalidInput(f"valid_from {valid_from} has no time zone", field="valid_from",
                           fix="give an aware datetime, e.g. with ZoneInfo('Asia/Shanghai')")
    if isinstance(geometry, shapely.Polygon):
        geometry = shapely.MultiPolygon([geometry])
    if geometry.geom_type != "MultiPolygon" or not geometry.is_valid:
        raise InvalidInput(f"the new boundary of {code} is not a valid polygon", field="geometry",
                           fix="give a valid (Multi)Polygon in EPSG:4326")
    row = _q(conn, "SELECT id, level, name, name_zh, parent_code, valid_from FROM areas "
                   "WHERE code = :c AND valid_to IS NULL FOR UPDATE", {"c": code}).first()
    if row is None:
        raise NotFound(f"no current area with code {code!r}", field="code", fix="check the code")
    old_id, level, name, name_zh, parent, old_from = row
    if valid_from <= old_from:
        raise Conflict(f"the current boundary of {code} is valid from {old_from}; a new one must start later",
                       field="valid_from", fix=f"give a time after {old_from}")
    _q(conn, "UPDATE areas SET valid_to = :t WHERE id = :id", {"t": valid_from, "id": old_id})
    return int(_q(conn, "INSERT INTO areas (code, level, name, name_zh, parent_code, valid_from, geom) "
                        "VALUES (:code, :level, :name, :name_zh, :parent, :t, ST_GeomFromWKB(:wkb, 4326)) RETURNING id",
                  {"code": code, "level": level, "name": name, "name_zh": name_zh, "parent": parent, "t": valid_from,
                   "wkb": shapely.to_wkb(geometry)}).scalar_one())
