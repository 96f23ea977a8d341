"""Layers: what can be loaded, read and exported, derived from the models (one source of truth).

A layer is a table with a geometry column. Its spec says which columns a load may write, which are
required, the natural key the load upserts on, input column aliases, which columns are sensitive
(never read by default, never exported), and which public columns hold free text that people type (an
event's title and description: redacted for readers without the right to personal data, and in exports).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
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
from gridmap.errors import NotFound
from gridmap.storage import models as m

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
