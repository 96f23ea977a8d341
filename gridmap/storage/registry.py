"""SQL of the registry's places: ``buildings``, ``businesses`` and ``fire_equipment`` (the places that carry a
QR code, the map's building tiles and drill-down, the planners' frames). Counts only: no personal data here
(residents are :mod:`gridmap.storage.people`).

Every function runs on the caller's SQLAlchemy connection, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, RowMapping, text

from gridmap.storage._filters import (
    _ENVELOPE,
    _STREET_SHAPE,
    AreaFilter,
    _bbox,
    _frame,
    _in_street,
    _postgis_frame,
    _q,
    _sql_where,
    _where,
)


def building_location(conn: Connection, *, code: str | None = None, address: str | None = None) -> RowMapping | None:
    """A building by code or exact address: its id, address and a point on it (lon/lat)."""
    where = "code = :v" if code is not None else "address = :v"
    return conn.execute(text(
        "SELECT id, code, name, address, ST_X(p) AS lon, ST_Y(p) AS lat "
        f"FROM (SELECT *, ST_PointOnSurface(geom) AS p FROM buildings WHERE {where}) s LIMIT 1"),
        {"v": code if code is not None else address}).mappings().first()


def place_location(conn: Connection, code: str) -> RowMapping | None:
    """What a place's QR code (余安码) stands for: a business (shop, school, ...) or a building."""
    row = conn.execute(text(
        "SELECT 'business' AS kind, s.code, s.name, s.kind AS place_kind, s.address, s.building_id, "
        "b.code AS building_code, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat "
        "FROM businesses s LEFT JOIN buildings b ON b.id = s.building_id WHERE s.code = :c"),
        {"c": code}).mappings().first()
    if row is not None:
        return row
    return conn.execute(text(
        "SELECT 'building' AS kind, b.code, b.name, b.use AS place_kind, b.address, b.id AS building_id, "
        "b.code AS building_code, "
        "ST_X(ST_PointOnSurface(b.geom)) AS lon, ST_Y(ST_PointOnSurface(b.geom)) AS lat "
        "FROM buildings b WHERE b.code = :c"), {"c": code}).mappings().first()


def places_in_community(conn: Connection, code: str, limit: int) -> list[RowMapping]:
    """Businesses, then buildings, of a community, by code: (kind, code, name, address)."""
    return list(conn.execute(text("""
        SELECT * FROM (
            SELECT 'business' AS kind, s.code, s.name, s.address, 0 AS ord FROM businesses s
            JOIN buildings b ON b.id = s.building_id WHERE b.community_code = :c
            UNION ALL
            SELECT 'building', b.code, b.name, b.address, 1 FROM buildings b WHERE b.community_code = :c) p
        ORDER BY ord, code LIMIT :n"""), {"c": code, "n": limit}).mappings())


def place_buildings(conn: Connection) -> int:
    """Fill in the grid and community of buildings that have none (current boundaries)."""
    cur = _q(conn, """
        UPDATE buildings b SET
          grid_code = COALESCE(b.grid_code, g.code),
          community_code = COALESCE(b.community_code, g.parent_code)
        FROM areas g
        WHERE (b.grid_code IS NULL OR b.community_code IS NULL)
          AND g.level = 'grid' AND g.valid_to IS NULL
          AND ST_Intersects(g.geom, ST_PointOnSurface(b.geom))""")
    return cur.rowcount


# -- buildings as tiles -----------------------------------------------------------------------------------
def building_tile(conn: Connection, z: int, x: int, y: int, street: str | None = None) -> bytes:
    """GeoJSON (a FeatureCollection, serialised by PostGIS) of the buildings of web-mercator tile z/x/y.

    A building belongs to exactly one tile, the one its point-on-surface falls in (half-open bounds), and
    is never clipped. Properties: ``code``, ``address``, ``floors``, ``height`` (metres; from ``height_m``
    or 3 m a floor), ``use``, ``residents`` and ``businesses`` (counts: no personal data). With ``street``,
    only the buildings of that street's communities.
    """
    sql = """
    WITH box AS (SELECT ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326) AS g),
    lim AS (SELECT g, ST_XMin(g) AS x0, ST_YMin(g) AS y0, ST_XMax(g) AS x1, ST_YMax(g) AS y1 FROM box),
    b AS (
        SELECT b.id, b.code, b.address, b.floors, COALESCE(b.height_m, b.floors * 3.0) AS height, b.use, b.geom,
               ST_PointOnSurface(b.geom) AS pos
        FROM buildings b, lim WHERE b.geom && lim.g AND {in_street}
    ),
    mine AS (SELECT b.* FROM b, lim WHERE ST_X(b.pos) >= lim.x0 AND ST_X(b.pos) < lim.x1
                                      AND ST_Y(b.pos) >= lim.y0 AND ST_Y(b.pos) < lim.y1),
    r AS (SELECT building_id, count(*) AS n FROM residents WHERE building_id IN (SELECT id FROM mine) GROUP BY 1),
    s AS (SELECT building_id, count(*) AS n FROM businesses WHERE building_id IN (SELECT id FROM mine) GROUP BY 1),
    q AS (
        SELECT m.code, m.address, m.floors, round(m.height::numeric, 1)::float8 AS height, m.use,
               COALESCE(r.n, 0)::int AS residents, COALESCE(s.n, 0)::int AS businesses, m.geom
        FROM mine m LEFT JOIN r ON r.building_id = m.id LEFT JOIN s ON s.building_id = m.id ORDER BY m.id
    )
    SELECT '{"type":"FeatureCollection","features":[' || COALESCE(string_agg(ST_AsGeoJSON(q.*, 'geom', 6), ','), '')
           || ']}' FROM q
    """.replace("{in_street}", _in_street("b.community_code"))
    return str(_q(conn, sql, {"z": z, "x": x, "y": y, "street": street}).scalar_one()).encode()


# -- drill-down --------------------------------------------------------------------------------------------
def building(conn: Connection, building_id: int) -> dict | None:
    """One building: address, floors, use, resident and household COUNTS, a point on it (no personal data)."""
    cur = _q(conn,
        """SELECT b.id, b.code, b.name, b.address, b.floors, COALESCE(b.height_m, b.floors * 3.0) AS height,
                  b.use, b.units, b.year_built, b.grid_code, b.community_code,
                  (SELECT count(*) FROM residents r WHERE r.building_id = b.id)::int AS residents,
                  (SELECT count(*) FROM households h WHERE h.building_id = b.id)::int AS households,
                  ST_X(ST_PointOnSurface(b.geom)) AS lon, ST_Y(ST_PointOnSurface(b.geom)) AS lat
           FROM buildings b WHERE b.id = :id""", {"id": building_id})
    row = cur.mappings().first()
    return None if row is None else dict(row)


def building_id_by_code(conn: Connection, code: str, street: str | None = None) -> int | None:
    row = _q(conn, f"SELECT id FROM buildings WHERE code = :code AND {_in_street('community_code')}",
                       {"code": code, "street": street}).fetchone()
    return row[0] if row else None


def businesses_in(conn: Connection, building_id: int, *, limit: int) -> pd.DataFrame:
    cur = _q(conn,
        """SELECT code, name, kind, is_key_place, has_smart_fire_alarm, employees FROM businesses
           WHERE building_id = :b ORDER BY is_key_place DESC, name LIMIT :n""", {"b": building_id, "n": limit})
    return _frame(cur)


def business_count(conn: Connection, building_id: int) -> int:
    return int(_q(conn, "SELECT count(*) FROM businesses WHERE building_id = :b", {"b": building_id}).scalar_one())


def building_counts(conn: Connection, ids: list[int]) -> pd.DataFrame:
    """Residents and businesses per building (counts only)."""
    cur = _q(conn,
        """SELECT b.id, (SELECT count(*) FROM residents r WHERE r.building_id = b.id)::int AS residents,
                  (SELECT count(*) FROM businesses z WHERE z.building_id = b.id)::int AS businesses
           FROM unnest(CAST(:ids AS bigint[])) AS b(id)""", {"ids": ids})
    return _frame(cur)


def buildings_with_people(conn: Connection, flt: AreaFilter) -> gpd.GeoDataFrame:
    """Buildings (footprints) with their households and residents counted on the server.

    The counts are correlated subqueries on the ``building_id`` indexes, run only for the buildings
    the filter keeps: O(buildings kept · log n), whatever the size of the registry.
    """
    bind: dict = {}
    conds = _where(conn, "b", flt, bind, polygon=True)
    q = (
        "SELECT b.id, b.code, b.use, b.floors, b.grid_code, b.community_code, "
        "(SELECT count(*) FROM households h WHERE h.building_id = b.id) AS households, "
        "(SELECT count(*) FROM residents r WHERE r.building_id = b.id) AS residents, "
        f"ST_AsBinary(b.geom) AS geom FROM buildings b{_sql_where(conds)} ORDER BY b.id"
    )
    return _postgis_frame(conn, q, bind)


# -- per-viewport point layers ------------------------------------------------------------------------------
def equipment_in_view(conn: Connection, bbox: tuple[float, float, float, float] | None, *, limit: int, street: str | None = None) -> pd.DataFrame:
    """Fire equipment in the bbox (and inside the current boundary of ``street``, if given)."""
    cur = _q(conn,
        f"""SELECT f.id, f.code, f.kind, f.status, f.name, f.last_inspected, ST_X(f.geom) AS lon, ST_Y(f.geom) AS lat
            FROM fire_equipment f WHERE f.geom && {_ENVELOPE}
              AND (CAST(:street AS text) IS NULL OR EXISTS (SELECT 1 FROM ({_STREET_SHAPE}) s
                                                       WHERE ST_Intersects(s.geom, f.geom)))
            ORDER BY f.id LIMIT :limit""",
        _bbox(bbox) | {"limit": limit, "street": street})
    return _frame(cur)


def equipment_by_codes(conn: Connection, codes: list[str], street: str | None = None) -> dict[str, dict]:
    """Kind, name and status of the given equipment (of those inside ``street``, if given)."""
    cur = _q(conn,
        f"""SELECT f.code, f.kind, f.name, f.status FROM fire_equipment f WHERE f.code = ANY(:codes)
              AND (CAST(:street AS text) IS NULL OR EXISTS (SELECT 1 FROM ({_STREET_SHAPE}) s
                                                       WHERE ST_Intersects(s.geom, f.geom)))""",
        {"codes": codes, "street": street})
    return {r[0]: {"kind": r[1], "name": r[2], "status": r[3]} for r in cur.fetchall()}


def equipment_of_kinds(conn: Connection, kinds: tuple[str, ...]) -> pd.DataFrame:
    rows = _q(conn, "SELECT code, kind, status, name, ST_X(geom), ST_Y(geom) FROM fire_equipment "
                    "WHERE kind = ANY(:k) ORDER BY id", {"k": list(kinds)}).all()
    return pd.DataFrame(rows, columns=["code", "kind", "status", "name", "lon", "lat"])


def equipment_frame(conn: Connection, flt: AreaFilter, kinds: Sequence[str], statuses: Sequence[str] | None
              ) -> gpd.GeoDataFrame:
    """Fire equipment of the given kinds (and statuses; None: any)."""
    bind: dict = {"kinds": list(kinds)}
    conds = ["t.kind = ANY(:kinds)", *_where(conn, "t", flt, bind)]
    if statuses is not None:
        conds.append("t.status = ANY(:statuses)")
        bind["statuses"] = list(statuses)
    q = ("SELECT t.id, t.code, t.kind, t.name, t.status, t.building_id, ST_AsBinary(t.geom) AS geom "
         f"FROM fire_equipment t{_sql_where(conds)} ORDER BY t.id")
    return _postgis_frame(conn, q, bind)
