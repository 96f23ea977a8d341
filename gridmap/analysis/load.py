"""Read what an analysis needs, and only that: the filters and counts run in PostGIS.

The only module of :mod:`gridmap.analysis` that touches the database. Each function takes the registry
(``db = gm.connect()``; an SQLAlchemy engine works too), opens one read-only connection, calls the
storage modules (:mod:`gridmap.storage.areas`, ``registry``, ``events``, ``roads``, ``metrics``) and returns frames in EPSG:4326 (the road
graph in EPSG:4549). ``area`` is a district, street, community or grid code (its current boundary);
``bbox`` is ``(min_lon, min_lat, max_lon, max_lat)``. On a province-sized registry, pass one of them:
nothing is loaded beyond it. The examples need a loaded database (``gridmap setup``), so they are not
run by the tests.
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
from gridmap.core.vocabulary import WGS84
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


# The parameters every reader shares, written once and spliced into each docstring (the way pandas'
# ``@doc`` and SciPy's ``doccer`` share theirs), so the wording cannot drift between functions.
_SHARED_PARAMS = {
    "db": "db : Registry or sqlalchemy.Engine\n        ``gm.connect()``, or an engine on a gridmap database.",
    "area": "area : str, optional\n        A district, street, community or grid code.",
    "bbox": "bbox : tuple of float, optional\n        ``(min_lon, min_lat, max_lon, max_lat)``.",
    "window": "start, end : datetime.datetime, optional\n        The reporting window (time-zone aware), start included,"
              " end excluded.",
    "categories": "categories : sequence of str, optional\n        Keep only these categories.",
    "bbox_or_area": "bbox : tuple of float, optional\n        ``(min_lon, min_lat, max_lon, max_lat)``; used instead of"
                    " ``area`` when both are given.",
}
F = TypeVar("F", bound=Callable[..., Any])


def _shared_doc(fn: F) -> F:
    """Fill the ``%(name)s`` markers of ``fn``'s docstring from :data:`_SHARED_PARAMS`."""
    doc = fn.__doc__ or ""
    for name, text in _SHARED_PARAMS.items():
        doc = doc.replace(f"%({name})s", text)
    if "%(" in doc:
        raise KeyError(f"{fn.__name__}: unknown shared parameter in {doc[doc.index('%('):][:30]!r}")
    fn.__doc__ = doc
    return fn


def _engine(db: Db) -> Engine:
    return db if isinstance(db, Engine) else db.engine


def _read(db: Db, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with _engine(db).connect() as conn:
        try:
            return fn(conn, *args, **kwargs)
        finally:
            conn.rollback()


@_shared_doc
def area_bounds(db: Db, area: str) -> Bbox:
    """Return the lon/lat bounds of an area's current boundary.

    Parameters
    ----------
    %(db)s
    area : str
        A district, street, community or grid code.

    Returns
    -------
    tuple of float
        ``(min_lon, min_lat, max_lon, max_lat)``, EPSG:4326.

    Examples
    --------
    >>> import gridmap as gm
    >>> from gridmap import analysis as ga
    >>> ga.area_bounds(gm.connect(), "330106900")          # doctest: +SKIP
    (120.0..., 30.2..., 120.1..., 30.3...)
    """
    return _read(db, areas_sql.area_bounds, area)


def _grow(bbox: Bbox, margin_m: float) -> Bbox:
    dlat = margin_m / 111_320.0
    dlon = margin_m / (111_320.0 * math.cos(math.radians(0.5 * (bbox[1] + bbox[3]))))
    return (bbox[0] - dlon, bbox[1] - dlat, bbox[2] + dlon, bbox[3] + dlat)


@_shared_doc
def load_road_graph(db: Db, *, area: str | None = None, bbox: Bbox | None = None, margin_m: float = 3000.0) -> RoadGraph:
    """Read the directed road graph (EPSG:4549, travel times in seconds) around an area or a bbox.

    Reads the edges touching the area's (or the bbox's) bounds grown by ``margin_m`` metres, so that
    stations just outside still reach in, and the nodes they end at.

    Parameters
    ----------
    %(db)s
    %(area)s
    %(bbox_or_area)s
    margin_m : float, default 3000
        How far beyond the bounds to read. It should exceed the farthest reach you ask about (3 minutes
        at 60 km/h is 3 km). With neither ``area`` nor ``bbox`` the whole network is read.

    Returns
    -------
    RoadGraph
        The graph the analyses search (:class:`gridmap.routing.roadgraph.RoadGraph`).

    Raises
    ------
    NotFound
        No road edge in the requested area (the network is not loaded, or the area is too small).

    Examples
    --------
    On the sample street (its 3 km margin takes in the whole sample network):

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
    x, y = transformer(WGS84, MEASURE_CRS).transform(nodes.lon.to_numpy(), nodes.lat.to_numpy())
    geoms = to_measure_crs(edges.geometry.to_numpy())
    return RoadGraph.from_arrays(nodes.id, np.column_stack([x, y]), edges.source, edges.target, edges.length_m,
                                 edges.travel_time_s, geoms, edges.id)


@_shared_doc
def load_roads(db: Db, *, area: str | None = None, bbox: Bbox | None = None, margin_m: float = 0.0) -> gpd.GeoDataFrame:
    """Read the road lines (one per directed edge) with their ``highway`` class around an area or a bbox.

    Parameters
    ----------
    %(db)s
    %(area)s
    %(bbox_or_area)s
    margin_m : float, default 0
        How far beyond the bounds to read.

    Returns
    -------
    geopandas.GeoDataFrame
        ``id``, ``source``, ``target``, ``length_m``, ``travel_time_s``, ``highway`` and the line,
        EPSG:4326 (e.g. for :func:`gridmap.analysis.open_land`).

    Examples
    --------
    On the sample street:

    >>> roads = load_roads(gm.connect(), area="330106900")       # doctest: +SKIP
    >>> roads.highway.value_counts().index[:3].tolist()           # doctest: +SKIP
    ['residential', 'tertiary', 'unclassified']
    """
    box = bbox if bbox is not None else (area_bounds(db, area) if area is not None else None)
    if box is not None and margin_m:
        box = _grow(box, margin_m)
    _, edges = _read(db, roads_sql.road_graph, box)
    return edges


@_shared_doc
def load_buildings(db: Db, *, area: str | None = None, bbox: Bbox | None = None) -> gpd.GeoDataFrame:
    """Read the buildings (footprints, EPSG:4326) with ``households`` and ``residents`` counted in PostGIS.

    A building belongs to an area where a point inside its footprint falls.

    Parameters
    ----------
    %(db)s
    %(area)s
    %(bbox)s

    Returns
    -------
    geopandas.GeoDataFrame
        ``id``, ``code``, ``use``, ``floors``, ``grid_code``, ``community_code``, ``households``,
        ``residents`` and the footprint, EPSG:4326. No personal data.

    Examples
    --------
    >>> b = load_buildings(gm.connect(), area="330106900001")   # doctest: +SKIP
    >>> int(b.residents.sum()) > 0                              # doctest: +SKIP
    True
    """
    return _read(db, registry_sql.buildings_with_people, AreaFilter(area=area, bbox=bbox))


@_shared_doc
def load_equipment(db: Db, kinds: str | Sequence[str] = "micro_fire_station", *, status: str | Sequence[str] | None = "in_service",
                   area: str | None = None, bbox: Bbox | None = None) -> gpd.GeoDataFrame:
    """Read fire equipment of some kinds (default: micro fire stations 微型消防站 in service), EPSG:4326.

    Parameters
    ----------
    %(db)s
    kinds : str or sequence of str, default "micro_fire_station"
        Equipment kinds, e.g. ``micro_fire_station``, ``micro_fire_truck``, ``hydrant``.
    status : str or sequence of str or None, default "in_service"
        Keep only these statuses; None: any.
    %(area)s
    %(bbox)s

    Returns
    -------
    geopandas.GeoDataFrame
        One point per piece of equipment: ``id``, ``code``, ``kind``, ``name``, ``status`` and
        ``building_id``, EPSG:4326.

    Examples
    --------
    >>> st = load_equipment(gm.connect(), "micro_fire_station", area="330106900")   # doctest: +SKIP
    >>> set(st.status)                                                              # doctest: +SKIP
    {'in_service'}
    """
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    statuses = None if status is None else ([status] if isinstance(status, str) else list(status))
    return _read(db, registry_sql.equipment_frame, AreaFilter(area=area, bbox=bbox), kinds, statuses)


@_shared_doc
def load_events(db: Db, *, area: str | None = None, bbox: Bbox | None = None, start: dt.datetime | None = None,
                end: dt.datetime | None = None, categories: Sequence[str] | None = None,
                columns: Sequence[str] | None = None) -> gpd.GeoDataFrame:
    """Read the events reported in [start, end) inside the area or bbox, optionally of some categories.

    Parameters
    ----------
    %(db)s
    %(area)s
    %(bbox)s
    %(window)s
    %(categories)s
    columns : sequence of str, optional
        The event columns to read (default: all of them: ``id``, ``code``, ``channel``, ``category``,
        ``severity``, ``reported_at``, the area codes, ``status`` and the lifecycle times).

    Returns
    -------
    geopandas.GeoDataFrame
        One point per event, ordered by id, EPSG:4326; no reporter's data.

    Examples
    --------
    >>> import datetime as dt
    >>> tz = dt.timezone(dt.timedelta(hours=8))
    >>> ev = load_events(gm.connect(), area="330106900", start=dt.datetime(2026, 1, 1, tzinfo=tz),
    ...                  end=dt.datetime(2026, 2, 1, tzinfo=tz), categories=["parking"])   # doctest: +SKIP
    >>> set(ev.category)                                                                  # doctest: +SKIP
    {'parking'}
    """
    return _read(db, events_sql.events_frame, AreaFilter(area=area, bbox=bbox), start=start, end=end, categories=categories,
                 columns=columns)


@_shared_doc
def load_event_month_counts(db: Db, *, level: str = "grid", area: str | None = None, bbox: Bbox | None = None,
                            start: dt.datetime | None = None, end: dt.datetime | None = None,
                            categories: Sequence[str] | None = None,
                            windows: Mapping[str, tuple[str, float]] | None = None,
                            as_of: dt.datetime | None = None) -> pd.DataFrame:
    """Count events per (area code, local month, category) in PostGIS.

    The same table :func:`gridmap.analysis.count_events` makes from a frame of events, without reading
    the events: the input of :func:`gridmap.analysis.safety_index`.

    Parameters
    ----------
    %(db)s
    level : {"grid", "community", "street"}, default "grid"
        The area each event is counted in (by its own code columns: the area version it fell in).
    %(area)s
    %(bbox)s
    %(window)s
    %(categories)s
    windows : mapping of str to (str, float), optional
        Name -> (milestone column, seconds), e.g. :data:`gridmap.analysis.WINDOWS`: for each, ``done_<name>``
        counts the events whose milestone came within that many seconds of the report, and ``due_<name>``
        those reported at least that long before ``as_of`` (the ones whose outcome is known).
    as_of : datetime.datetime, optional
        The time the counts are made at (for ``due_<name>``).

    Returns
    -------
    pandas.DataFrame
        ``code``, ``month`` (first day of the local month, naive), ``category``, ``events`` and the windows'
        ``done_<name>`` / ``due_<name>``.

    Examples
    --------
    >>> import datetime as dt
    >>> from gridmap import analysis as ga
    >>> now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    >>> counts = ga.load_event_month_counts(gm.connect(), level="grid", area="330106900",
    ...                                     windows=ga.WINDOWS, as_of=now)               # doctest: +SKIP
    >>> list(counts.columns[:4])                                                         # doctest: +SKIP
    ['code', 'month', 'category', 'events']
    """
    return _read(db, metrics_sql.event_month_counts, AreaFilter(area=area, bbox=bbox), level=level, start=start, end=end,
                 categories=categories, windows=windows, as_of=as_of)


@_shared_doc
def load_grid_registry(db: Db, *, area: str | None = None, bbox: Bbox | None = None) -> gpd.GeoDataFrame:
    """Read the current grids with ``population``, ``buildings``, ``households``, ``residents`` and ``workers``.

    ``workers`` are the grid's registered grid workers (网格员); the counts are made in PostGIS.

    Parameters
    ----------
    %(db)s
    area : str, optional
        A street, community or grid code: the grids in it.
    bbox : tuple of float, optional
        ``(min_lon, min_lat, max_lon, max_lat)``: the grids touching it.

    Returns
    -------
    geopandas.GeoDataFrame
        One polygon per current grid: ``code``, ``name``, ``name_zh``, ``community_code``, ``population``,
        ``buildings``, ``households``, ``residents`` and ``workers``, EPSG:4326; the input of
        :func:`gridmap.analysis.grid_workload`.

    Examples
    --------
    On the sample street:

    >>> grids = load_grid_registry(gm.connect(), area="330106900")   # doctest: +SKIP
    >>> ga.grid_workload(grids).flag.value_counts().to_dict()         # doctest: +SKIP
    {'typical': 123, 'high': 5}
    """
    return _read(db, areas_sql.grid_registry, AreaFilter(area=area, bbox=bbox))


@_shared_doc
def load_population(db: Db, level: str, *, area: str | None = None, bbox: Bbox | None = None) -> pd.DataFrame:
    """Read the current areas of one level with their registered population.

    Parameters
    ----------
    %(db)s
    level : {"grid", "community", "street"}
        The level read (any level of the ``areas`` table).
    area : str, optional
        A district, street, community or grid code: the areas whose point inside falls in it.
    %(bbox)s

    Returns
    -------
    pandas.DataFrame
        ``code``, ``name``, ``name_zh``, ``parent_code`` and ``population``, ordered by code: the
        ``areas`` of :func:`gridmap.analysis.safety_index`.

    Examples
    --------
    >>> pop = load_population(gm.connect(), "community", area="330106900")   # doctest: +SKIP
    >>> list(pop.columns)                                                     # doctest: +SKIP
    ['code', 'name', 'name_zh', 'parent_code', 'population']
    """
    return _read(db, areas_sql.area_population, AreaFilter(area=area, bbox=bbox), level)
