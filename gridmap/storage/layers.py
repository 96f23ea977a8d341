"""Layers: what can be loaded, read and exported, derived from the models (one source of truth), and the
read of a layer as a GeoDataFrame (:func:`select_layer`, filters pushed down to PostGIS).

A layer is a table with a geometry column. Its spec says which columns a load may write, which are
required, the natural key the load upserts on, input column aliases, which columns are sensitive
(never read by default, never exported), and which public columns hold free text that people type (an
event's title and description: redacted for readers without the right to personal data, and in exports).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Double,
    Integer,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from gridmap.core import vocabulary
from gridmap.core.geomcheck import Kind
from gridmap.errors import InvalidInput, NotFound
from gridmap.storage import models as m
from gridmap.storage._filters import _bbox_cond, _postgis_frame, _validity
from gridmap.storage.areas import AreaFilter, area_exists

# (order matters: SmallInteger and BigInteger are subclasses of Integer)
# PostgreSQL binary-COPY type names for psycopg's ``Copy.set_types`` (geometry travels as EWKB bytes).
_PG_TYPES = {
    Text: "text", BigInteger: "int8", SmallInteger: "int2", Integer: "int4", Double: "float8",
    Boolean: "bool", Date: "date", DateTime: "timestamptz", JSONB: "jsonb", Geometry: "bytea",
}


def pg_type(col: Column) -> str:
    if isinstance(col.type, ARRAY):
        return "text[]"
    for cls, name in _PG_TYPES.items():
        if isinstance(col.type, cls):
            return name
    raise TypeError(f"no COPY type for column {col.table.name}.{col.name} ({col.type})")


@dataclass(frozen=True)
class LayerSpec:
    name: str
    model: type[m.Base]
    kind: Kind  # point | line | polygon
    key: tuple[str, ...]
    aliases: dict[str, str] = field(default_factory=dict)
    description: str = ""
    #: public columns of free text typed by people (may hold names and phone numbers): redacted on the way out
    free_text: tuple[str, ...] = ()

    @property
    def table(self) -> Table:
        return self.model.__table__  # type: ignore[return-value]

    @property
    def geometry_column(self) -> str:
        return "geom"

    @property
    def writable(self) -> list[Column]:
        """Columns a load may write: all but identities and server timestamps."""
        return [
            c for c in self.table.columns
            if c.identity is None and c.name not in ("created_at", "updated_at") and not c.info.get("sensitive")
        ]

    @property
    def required(self) -> list[str]:
        return [
            c.name for c in self.writable
            if not c.nullable and c.server_default is None and c.name != self.geometry_column
        ]

    @property
    def public_columns(self) -> list[str]:
        """Columns shown by default reads and exports (no personal data)."""
        return [c.name for c in self.table.columns if not c.info.get("sensitive")]

    @property
    def choices(self) -> dict[str, tuple[str, ...]]:
        """Columns whose values come from a fixed list (checked per feature before the database sees them)."""
        return CHOICES.get(self.name, {})

    @property
    def sensitive_columns(self) -> list[str]:
        return [c.name for c in self.table.columns if c.info.get("sensitive")]


#: The closed vocabularies a load checks before it writes (the database's CHECK constraints say the same).
_CHOICE_COLUMNS = {"areas": ("level",), "buildings": ("use",), "businesses": ("kind",),
                   "fire_equipment": ("kind", "status"), "teams": ("kind", "status"), "events": ("channel", "status")}
CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    table: {col: vocabulary.CHECKED[table, col] for col in cols} for table, cols in _CHOICE_COLUMNS.items()}

_OSM_EDGE_ALIASES = {"u": "source", "v": "target", "osmid": "osm_id", "length": "length_m", "travel_time": "travel_time_s"}

LAYERS: dict[str, LayerSpec] = {
    s.name: s
    for s in [
        LayerSpec("areas", m.Area, "polygon", ("code", "valid_from"),
                  description="districts, streets, communities and grids (versioned boundaries)"),
        LayerSpec("buildings", m.Building, "polygon", ("code",), {"building_use": "use", "height": "height_m"},
                  "building footprints"),
        LayerSpec("businesses", m.Business, "point", ("code",), description="businesses and places"),
        LayerSpec("fire_equipment", m.FireEquipment, "point", ("code",),
                  description="micro fire stations, trucks, hydrants, cabinets, smart alarms"),
        LayerSpec("teams", m.Team, "point", ("code",), description="patrol teams at their last known position"),
        LayerSpec("road_nodes", m.RoadNode, "point", ("id",), {"osmid": "id"}, "road network nodes"),
        LayerSpec("road_edges", m.RoadEdge, "line", ("source", "target", "key"), _OSM_EDGE_ALIASES,
                  "directed road edges"),
        LayerSpec("events", m.Event, "point", ("code",), description="events (incidents)",
                  free_text=("title", "description", "address")),
    ]
}

# Friendly names for the area levels: `gridmap load grids file.gpkg` loads areas with level=grid.
AREA_LEVEL_LAYERS = {"districts": "district", "streets": "street", "communities": "community", "grids": "grid"}


def layer_spec(name: str) -> LayerSpec:
    key = AREA_LEVEL_LAYERS.get(name) and "areas" or name
    try:
        return LAYERS[key]
    except KeyError:
        names = ", ".join([*LAYERS, *AREA_LEVEL_LAYERS])
        raise NotFound(f"unknown layer {name!r}", field="layer", fix=f"use one of: {names}") from None

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
        conds.append(_bbox_cond("t", flt.bbox, bind))
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
    gdf = _postgis_frame(conn, q, bind)
    return gdf


def level_of(layer: str) -> str | None:
    return AREA_LEVEL_LAYERS.get(layer)
