"""Set-based registry operations in SQL (the services call these; they never write SQL themselves).

Every function runs on the caller's psycopg connection, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import shapely
from shapely.geometry.base import BaseGeometry

from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.storage._rows import one

REGISTRY_TABLES = (
    "events", "grid_staff", "team_members", "teams", "fire_equipment", "businesses", "resident_pii", "residents",
    "households", "buildings", "areas", "road_edges", "road_nodes",
)


def place_buildings(conn: psycopg.Connection) -> int:
    """Fill in the grid and community of buildings that have none (current boundaries)."""
    cur = conn.execute("""
        UPDATE buildings b SET
          grid_code = COALESCE(b.grid_code, g.code),
          community_code = COALESCE(b.community_code, g.parent_code)
        FROM areas g
        WHERE (b.grid_code IS NULL OR b.community_code IS NULL)
          AND g.level = 'grid' AND g.valid_to IS NULL
          AND ST_Intersects(g.geom, ST_PointOnSurface(b.geom))""")
    return cur.rowcount


def place_events(conn: psycopg.Connection) -> int:
    """Place events without a grid version in the grid valid when each was reported."""
    cur = conn.execute("""
        UPDATE events e SET grid_area_id = g.id, grid_code = g.code,
          community_code = COALESCE(e.community_code, g.parent_code)
        FROM areas g
        WHERE e.grid_area_id IS NULL AND g.level = 'grid'
          AND g.valid_from <= e.reported_at AND (g.valid_to IS NULL OR e.reported_at < g.valid_to)
          AND ST_Intersects(g.geom, e.geom)""")
    return cur.rowcount


POST_LOAD = {"buildings": place_buildings, "events": place_events}


def record_load(conn: psycopg.Connection, *, layer: str, source: str, sha256: str | None, source_crs: str | None,
                rows_in: int, inserted: int, updated: int, unchanged: int, repaired: int, outside_area: int) -> None:
    conn.execute(
        "INSERT INTO load_batches (layer, source, sha256, source_crs, rows_in, inserted, updated, unchanged, "
        "repaired, outside_area) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (layer, source, sha256, source_crs, rows_in, inserted, updated, unchanged, repaired, outside_area),
    )


def registry_occupied(conn: psycopg.Connection) -> bool:
    return one(conn.execute("SELECT EXISTS (SELECT 1 FROM buildings) OR EXISTS (SELECT 1 FROM events)"))[0]


def truncate_registry(conn: psycopg.Connection) -> None:
    conn.execute(f"TRUNCATE {', '.join(REGISTRY_TABLES)} RESTART IDENTITY CASCADE")


def analyze(conn: psycopg.Connection, tables: tuple[str, ...]) -> None:
    """Refresh the planner's statistics after a bulk load."""
    conn.execute(f"ANALYZE {', '.join(tables)}")


def get_info(conn: psycopg.Connection, key: str) -> dict | None:
    row = conn.execute("SELECT value FROM dataset_info WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


def put_info(conn: psycopg.Connection, key: str, value: dict) -> None:
    conn.execute(
        "INSERT INTO dataset_info (key, value) VALUES (%s, %s::jsonb) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        (key, json.dumps(value)),
    )


def redraw_area(conn: psycopg.Connection, code: str, geometry: BaseGeometry, valid_from: dt.datetime) -> int:
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
    row = conn.execute(
        "SELECT id, level, name, name_zh, parent_code, valid_from FROM areas "
        "WHERE code = %s AND valid_to IS NULL FOR UPDATE", (code,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no current area with code {code!r}", field="code", fix="check the code")
    old_id, level, name, name_zh, parent, old_from = row
    if valid_from <= old_from:
        raise Conflict(f"the current boundary of {code} is valid from {old_from}; a new one must start later",
                       field="valid_from", fix=f"give a time after {old_from}")
    conn.execute("UPDATE areas SET valid_to = %s WHERE id = %s", (valid_from, old_id))
    new_id = one(conn.execute(
        "INSERT INTO areas (code, level, name, name_zh, parent_code, valid_from, geom) "
        "VALUES (%s, %s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 4326)) RETURNING id",
        (code, level, name, name_zh, parent, valid_from, shapely.to_wkb(geometry)),
    ))[0]
    return new_id
