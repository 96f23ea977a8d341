"""SQL of the dataset as a whole: the record of loads (``load_batches``), ``dataset_info``, row counts,
the post-load placement, emptying the registry and refreshing the planner's statistics.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, text

from gridmap.storage._filters import _q
from gridmap.storage.events import place_events
from gridmap.storage.registry import place_buildings

REGISTRY_TABLES = (
    "events", "grid_staff", "team_members", "teams", "fire_equipment", "businesses", "resident_pii", "residents",
    "households", "buildings", "areas", "road_edges", "road_nodes",
)


#: What a load of a layer is followed by, in its transaction (placing rows in their grids).
POST_LOAD = {"buildings": place_buildings, "events": place_events}


def record_load(conn: Connection, *, layer: str, source: str, sha256: str | None, source_crs: str | None,
                rows_in: int, inserted: int, updated: int, unchanged: int, repaired: int, outside_area: int) -> None:
    _q(conn, "INSERT INTO load_batches (layer, source, sha256, source_crs, rows_in, inserted, updated, unchanged, "
             "repaired, outside_area) VALUES (:layer, :source, :sha256, :source_crs, :rows_in, :inserted, :updated, "
             ":unchanged, :repaired, :outside_area)",
       {"layer": layer, "source": source, "sha256": sha256, "source_crs": source_crs, "rows_in": rows_in,
        "inserted": inserted, "updated": updated, "unchanged": unchanged, "repaired": repaired,
        "outside_area": outside_area})


def registry_occupied(conn: Connection) -> bool:
    return bool(_q(conn, "SELECT EXISTS (SELECT 1 FROM buildings) OR EXISTS (SELECT 1 FROM events)").scalar_one())


def truncate_registry(conn: Connection) -> None:
    _q(conn, f"TRUNCATE {', '.join(REGISTRY_TABLES)} RESTART IDENTITY CASCADE")


def analyze(conn: Connection, tables: tuple[str, ...]) -> None:
    """Refresh the planner's statistics after a bulk load."""
    _q(conn, f"ANALYZE {', '.join(tables)}")


def get_info(conn: Connection, key: str) -> dict | None:
    return _q(conn, "SELECT value FROM dataset_info WHERE key = :k", {"k": key}).scalar_one_or_none()


def put_info(conn: Connection, key: str, value: dict) -> None:
    _q(conn, "INSERT INTO dataset_info (key, value) VALUES (:k, CAST(:v AS jsonb)) "
             "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
       {"k": key, "v": json.dumps(value)})


def counts(conn: Connection) -> dict[str, int]:
    """Row counts of the registry (areas by level: current versions)."""
    out: dict[str, int] = {}
    for level, n in conn.execute(text("SELECT level, count(*) FROM areas WHERE valid_to IS NULL GROUP BY level")):
        out[f"areas.{level}"] = n
    for table in ("buildings", "households", "residents", "businesses", "fire_equipment", "teams", "team_members",
                  "road_nodes", "road_edges", "events"):
        out[table] = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    return out


def data_version(conn: Connection) -> tuple:
    """A cheap fingerprint of the static layers (buildings, residents, businesses): it changes on a load."""
    return tuple(_q(conn, "SELECT (SELECT COALESCE(max(id), 0) FROM load_batches), "
                          "(SELECT COALESCE(max(updated_at), 'epoch') FROM dataset_info), "
                          "(SELECT COALESCE(max(id), 0) FROM buildings)").one())
