"""Read what an analysis needs, and only that: the filters and counts run in PostGIS.

The only module of :mod:`gridmap.analysis` that touches the database. Each function takes the registry
(``db = gm.connect()``; an SQLAlchemy engine works too), opens one read-only connection, calls
the storage modules (:mod:`gridmap.storage.areas`, ``registry``, ``events``, ``roads``, ``metrics``) and
returns frames in EPSG:4326 (the road graph in EPSG:4549).
``area`` is a street, community or grid code (its current boundary); ``bbox`` is
``(min_lon, min_lat, max_lon, max_lat)``. On a province-sized registry, pass one of them: nothing is
loaded beyond it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Engine

from gridmap.config import MEASURE_CRS
from gridmap.core.crs import to_measure_crs, transformer
from gridmap.errors import NotFound
from gridmap.routing.roadgraph import RoadGraph
from gridmap.storage import areas as areas_sql
from gridmap.storage import events as events_sql
from gridmap.storage import metrics as metrics_sql
from gridmap.storage import registry as registry_sql
from gridmap.storage import roads as roads_sql
from gridmap.storage.areas import AreaFilter

if TYPE_CHECKING:
    from gridmap.services.registry import Registry

Bbox = tuple[float, float, float, float]
Db: TypeAlias = "Registry | Engine"  # the registry (gm.connect()) or an SQLAlchemy engine
T = TypeVar("T")


def _engine(db: Db) -> Engine:
    return db if isinstance(db, Engine) else db.engine


def _read(db: Db, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with _engine(db).connect() as conn:
        try:
            return fn(conn, *args, **kwargs)
        finally:
            conn.rollback()


def area_bounds(db: Db, area: str) -> Bbox:
    """Lon/lat bounds of an area's current boundary."""
    return _read(db, areas_sql.area_bounds, area)


def _grow(bbox: Bbox, margin_m: float) -> Bbox:
    dlat = margin_m / 111_320.0
    dlon = margin_m / (111_320.0 * math.cos(math.radians(0.5 * (bbox[1] + bbox[3]))))
    return (bbox[0] - dlon, bbox[1] - dlat, bbox[2] + dlon, bbox[3] + dlat)


def load_road_graph(db: Db, *, area: str | None = None, bbox: Bbox | None = None, margin_m: float = 3000.0) -> RoadGraph:
    """The directed road graph (EPSG:4549, travel times in seconds) around an area or a bbox.

    Reads the edges touching the area's (or the bbox's) bounds grown by ``margin_m`` metres, so that
    stations just outside still reach in. ``margin_m`` should exceed the farthest reach you ask about
    (3 minutes at 60 km/h is 3 km); with neither ``area`` nor ``bbox`` the whole network is read.

    Examples
    --------
    >>> import gridmap as gm
    >>> from gridmap import analysis as ga
    >>> g = ga.load_road_graph(gm.connect(), area="330106900")   # doctest: +SKIP
    >>> g.n_nodes, g.n_edges                                     # doctest: +SKIP
    (1407, 3166)
    """
    box = bbox if bbox is not None else (area_bounds(db, area) if area is not None else None)
    if box is not None and margin_m:
        box = _grow(box, margin_m)
    nodes, edges = _read(db, roads_sql.road_graph, box)
    if nodes.empty or edges.empty:
        raise NotFound("no road edges in the requested area", field="road_edges",
                       fix="load road_nodes and road_edges (gridmap sample load, or gridmap load), or widen the area")
    x, y = transformer("EPSG:4326", MEASURE_CRS).transform(nodes.lon.to_numpy(), nodes.lat.to_numpy())
    geoms = to_measure_crs(edges.geometry.to_numpy())
    return RoadGraph.from_arrays(nodes.id, np.column_stack([x, y]), edges.source, edges.target, edges.length_m,
                                 edges.travel_time_s, geoms, edges.id)


def load_roads(db: Db, *, area: str | None = None, bbox: Bbox | None = None, margin_m: float = 0.0) -> gpd.GeoDataFrame:
    """Road lines (one per directed edge) with ``highway`` class, EPSG:4326, around an area or bbox."""
    box = bbox if bbox is not None else (area_bounds(db, area) if area is not None else None)
    if box is not None and margin_m:
        box = _grow(box, margin_m)
    _, edges = _read(db, roads_sql.road_graph, box)
    return edges


def load_buildings(db: Db, *, area: str | None = None, bbox: Bbox | None = None) -> gpd.GeoDataFrame:
    """Buildings (footprints, EPSG:4326) with ``households`` and ``residents`` counted in PostGIS.

    Examples
    --------
    >>> b = load_buildings(gm.connect(), area="330106900001")   # doctest: +SKIP
    >>> int(b.residents.sum()) > 0                              # doctest: +SKIP
    True
    """
    return _read(db, registry_sql.buildings_with_people, AreaFilter(area=area, bbox=bbox))


def load_equipment(db: Db, kinds: str | Sequence[str] = "micro_fire_station", *, status: str | Sequence[str] | None = "in_service",
                   area: str | None = None, bbox: Bbox | None = None) -> gpd.GeoDataFrame:
    """Fire equipment of some kinds (default: micro fire stations 微型消防站 in service), EPSG:4326."""
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    statuses = None if status is None else ([status] if isinstance(status, str) else list(status))
    return _read(db, registry_sql.equipment_frame, AreaFilter(area=area, bbox=bbox), kinds, statuses)


def load_events(db: Db, *, area: str | None = None, bbox: Bbox | None = None, start: dt.datetime | None = None,
                end: dt.datetime | None = None, categories: Sequence[str] | None = None,
                columns: Sequence[str] | None = None) -> gpd.GeoDataFrame:
    """Events reported in [start, end) inside the area/bbox, optionally of some categories (points, EPSG:4326)."""
    return _read(db, events_sql.events_frame, AreaFilter(area=area, bbox=bbox), start=start, end=end, categories=categories,
                 columns=columns)


def load_event_month_counts(db: Db, *, level: str = "grid", area: str | None = None, bbox: Bbox | None = None,
                            start: dt.datetime | None = None, end: dt.datetime | None = None,
                            categories: Sequence[str] | None = None,
                            windows: Mapping[str, tuple[str, float]] | None = None,
                            as_of: dt.datetime | None = None) -> pd.DataFrame:
    """Events per (area code, month, category) counted in PostGIS; see
    :func:`gridmap.storage.metrics.event_month_counts` for ``windows`` and ``as_of``."""
    return _read(db, metrics_sql.event_month_counts, AreaFilter(area=area, bbox=bbox), level=level, start=start, end=end,
                 categories=categories, windows=windows, as_of=as_of)


def load_grid_registry(db: Db, *, area: str | None = None, bbox: Bbox | None = None) -> gpd.GeoDataFrame:
    """Current grids with ``population``, ``buildings``, ``households``, ``residents`` and grid ``workers``."""
    return _read(db, areas_sql.grid_registry, AreaFilter(area=area, bbox=bbox))


def load_population(db: Db, level: str, *, area: str | None = None, bbox: Bbox | None = None) -> pd.DataFrame:
    """Current areas of one level (``grid``, ``community``, ``street``): code, names, parent, population."""
    return _read(db, areas_sql.area_population, AreaFilter(area=area, bbox=bbox), level)
