"""Road-network coverage: who is within t minutes of a micro fire station (微型消防站) or a fire station.

Two rules a street office checks:

* the micro-fire-station rule: residents reached within **3 minutes** of the alarm (``MICRO_STATION_MINUTES``);
* GB 51080-2015 (城市消防站设计规范): a fire station reaches the edge of its district within
  **5 minutes** of the alarm (``FIRE_STATION_MINUTES``).

Times are road travel times from the nearest facility (many-to-one, one multi-source Dijkstra, see
:func:`gridmap.routing.many_to_one.network_times`), including the walk between each point and its road at
``WALK_SPEED``. Buildings are placed at a point inside their footprint. Every function takes
GeoDataFrames in any CRS (they must have one), measures in EPSG:4549 and returns frames in the CRS of
its main input.
"""

from __future__ import annotations

from collections.abc import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gridmap.config import MEASURE_CRS
from gridmap.errors import InvalidInput
from gridmap.routing import many_to_one
from gridmap.routing.many_to_one import network_times
from gridmap.routing.roadgraph import WALK_SPEED, RoadGraph

from ._frames import point_xy, require

#: The micro-fire-station rule: on the scene within 3 minutes of the alarm.
MICRO_STATION_MINUTES = 3.0
#: GB 51080-2015: a fire station reaches the edge of its district within 5 minutes of the alarm.
FIRE_STATION_MINUTES = 5.0


def travel_times(graph: RoadGraph, facilities: gpd.GeoDataFrame, places: gpd.GeoDataFrame, *,
                 max_snap_m: float = 500.0, horizon_s: float = np.inf) -> pd.Series:
    """Compute the road travel time from the nearest facility to each place.

    The time is the walk from each facility to its nearest road, the drive along the roads (one-way
    streets respected) and the walk from the road to the place, at ``WALK_SPEED`` on foot.
    O((V + E) log V + P log E): one multi-source Dijkstra for all facilities, one snap per place.

    Parameters
    ----------
    graph : RoadGraph
        The road graph (EPSG:4549, travel times in seconds), e.g. :func:`gridmap.analysis.load_road_graph`.
    facilities : geopandas.GeoDataFrame
        Where the trips start (stations, teams); points, or polygons placed at a point inside them. Any CRS.
    places : geopandas.GeoDataFrame
        Where the trips end (buildings, addresses). Any CRS.
    max_snap_m : float, default 500
        A facility or place farther than this from every road is not reached (``inf``).
    horizon_s : float, default inf
        Stop the search at this time: places beyond it get ``inf`` (faster for a bounded question).

    Returns
    -------
    pandas.Series
        ``eta_s`` in seconds, indexed like ``places``; ``inf`` where unreachable or beyond ``horizon_s``.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> from gridmap.analysis._toy import toy_graph
    >>> g = toy_graph()                                         # a 1 km road, 10 m/s, along y = 0
    >>> st = gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)], crs="EPSG:4549")
    >>> homes = gpd.GeoDataFrame(geometry=[shapely.Point(500, 0), shapely.Point(900, 0)], crs="EPSG:4549")
    >>> travel_times(g, st, homes).round(1).tolist()
    [50.0, 90.0]
    >>> travel_times(g, st, homes, horizon_s=60).tolist()      # the second is beyond one minute
    [50.0, inf]
    """
    fx, fy = point_xy(facilities, "facilities")
    px, py = point_xy(places, "places")
    t = network_times(graph, fx, fy, px, py, max_snap_m=max_snap_m, horizon_s=horizon_s)
    return pd.Series(t, index=places.index, name="eta_s")


def building_coverage(graph: RoadGraph, facilities: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame,
                      minutes: float = MICRO_STATION_MINUTES, *, max_snap_m: float = 500.0) -> gpd.GeoDataFrame:
    """Add each building's road ETA from the nearest facility, and whether it is within ``minutes``.

    A building is placed at a point inside its footprint; its ETA is :func:`travel_times`'s. Weight the
    answer by the ``residents`` column (from :func:`gridmap.analysis.load_buildings`) to count people.

    Parameters
    ----------
    graph : RoadGraph
        The road graph (EPSG:4549), e.g. :func:`gridmap.analysis.load_road_graph`.
    facilities : geopandas.GeoDataFrame
        The stations (points or polygons, any CRS), e.g. :func:`gridmap.analysis.load_equipment`.
    buildings : geopandas.GeoDataFrame
        The buildings (footprints or points, any CRS).
    minutes : float, default ``MICRO_STATION_MINUTES`` (3)
        The reach: 3 for micro fire stations, ``FIRE_STATION_MINUTES`` (5) for fire stations (GB 51080).
    max_snap_m : float, default 500
        A building or facility farther than this from every road is not reached.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``buildings`` (same CRS and index) with ``eta_s``, ``eta_min`` and ``covered`` (bool).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> from gridmap.analysis._toy import toy_graph
    >>> st = gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)], crs="EPSG:4549")
    >>> b = gpd.GeoDataFrame({"residents": [10, 20]}, geometry=[shapely.Point(500, 0), shapely.Point(900, 0)],
    ...                      crs="EPSG:4549")
    >>> building_coverage(toy_graph(), st, b, minutes=1.0).covered.tolist()   # 50 s and 90 s
    [True, False]
    """
    require(buildings, "buildings")
    if minutes <= 0:
        raise InvalidInput(f"minutes is {minutes}", field="minutes", fix="give a positive number of minutes, e.g. 3")
    out = buildings.copy()
    eta = travel_times(graph, facilities, buildings, max_snap_m=max_snap_m)
    out["eta_s"] = eta.to_numpy()
    out["eta_min"] = out["eta_s"] / 60.0
    out["covered"] = out["eta_s"] <= minutes * 60.0
    return out


def coverage_summary(covered: gpd.GeoDataFrame, weight: str | None = "residents") -> pd.Series:
    """Sum up buildings and (weighted) residents inside and outside the reach.

    Parameters
    ----------
    covered : geopandas.GeoDataFrame
        :func:`building_coverage`'s frame (``covered``, ``eta_s`` and the ``weight`` column).
    weight : str or None, default "residents"
        The column counting people per building; None counts buildings only (every weight 1).

    Returns
    -------
    pandas.Series
        ``buildings``, ``buildings_covered``, ``buildings_outside``, ``residents``, ``residents_covered``,
        ``residents_outside`` (weighted), ``share_covered`` (of the weight; NaN when it sums to 0) and
        ``unreachable_buildings`` (ETA ``inf``: too far from any road, or cut off from the stations).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> b = gpd.GeoDataFrame({"residents": [10, 30], "covered": [True, False], "eta_s": [50.0, float("inf")]},
    ...                      geometry=[shapely.Point(0, 0), shapely.Point(1, 0)], crs="EPSG:4549")
    >>> s = coverage_summary(b)
    >>> s["residents_covered"], s["share_covered"], s["unreachable_buildings"]
    (10.0, 0.25, 1)
    """
    require(covered, "covered", ("covered",))
    w = covered[weight].to_numpy(dtype=float) if weight else np.ones(len(covered))
    c = covered["covered"].to_numpy(dtype=bool)
    total = float(w.sum())
    return pd.Series({
        "buildings": len(covered), "buildings_covered": int(c.sum()), "buildings_outside": int((~c).sum()),
        "residents": total, "residents_covered": float(w[c].sum()), "residents_outside": float(w[~c].sum()),
        "share_covered": float(w[c].sum() / total) if total else np.nan,
        "unreachable_buildings": int(np.isinf(covered["eta_s"]).sum()) if "eta_s" in covered else 0,
    }, dtype=object)


def coverage_by_area(covered: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, *, key: str = "grid_code",
                     weight: str = "residents") -> gpd.GeoDataFrame:
    """Compute the share of residents covered per area (grid or community), joined to the area polygons.

    Parameters
    ----------
    covered : geopandas.GeoDataFrame
        :func:`building_coverage`'s frame, with the ``key`` column naming each building's area.
    areas : geopandas.GeoDataFrame
        The area polygons, with ``code`` (e.g. ``db.layer("grids")``), matched to ``covered[key]``.
    key : str, default "grid_code"
        The column of ``covered`` naming the area: ``grid_code`` or ``community_code``.
    weight : str, default "residents"
        The column counting people per building.

    Returns
    -------
    geopandas.GeoDataFrame
        ``areas`` (its CRS) with ``buildings``, ``buildings_covered``, ``residents``, ``residents_covered``,
        ``residents_outside`` and ``share_covered`` (NaN where nobody lives).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["G1", "G2"]}, crs="EPSG:4549",
    ...                          geometry=[shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)])
    >>> b = gpd.GeoDataFrame({"grid_code": ["G1", "G1", "G2"], "residents": [10, 30, 0],
    ...                       "covered": [True, False, False]}, crs="EPSG:4549",
    ...                      geometry=[shapely.Point(1, 1), shapely.Point(2, 2), shapely.Point(15, 5)])
    >>> by = coverage_by_area(b, grids)
    >>> by.share_covered.tolist()[0], by.buildings.tolist()
    (0.25, [2, 1])
    """
    require(covered, "covered", ("covered", key, weight))
    require(areas, "areas", ("code",))
    c = covered["covered"].astype(bool)
    w = covered[weight].astype(float)
    agg = pd.DataFrame({
        "code": covered[key], "buildings": 1, "buildings_covered": c.astype(int),
        "residents": w, "residents_covered": w.where(c, 0.0),
    }).groupby("code").sum()
    out = areas.merge(agg, left_on="code", right_index=True, how="left")
    for col in ("buildings", "buildings_covered"):
        out[col] = out[col].fillna(0).astype(int)
    for col in ("residents", "residents_covered"):
        out[col] = out[col].fillna(0.0)
    out["residents_outside"] = out["residents"] - out["residents_covered"]
    out["share_covered"] = (out["residents_covered"] / out["residents"]).where(out["residents"] > 0)
    return out


def isochrones(graph: RoadGraph, facilities: gpd.GeoDataFrame, minutes: float | Iterable[float] = (3.0, 5.0), *,
               each: bool = False, spacing_m: float = 25.0, max_snap_m: float = 500.0,
               id_column: str = "code") -> gpd.GeoDataFrame:
    """Draw service areas (isochrones): where the nearest facility arrives within t minutes.

    A point is inside when its ETA, by the same rule as a building's in :func:`building_coverage`
    (walk to its nearest road, then the road network from the nearest facility), is at most t. The ETA
    is evaluated at the centres of a square grid of ``spacing_m`` metres laid over the reach (found first
    from points along the roads), and the cells inside are merged: the polygon is exact to about
    ``spacing_m / 2``, and a building inside it is covered up to that margin. Cost: one Dijkstra
    (O((V + E) log V)) per facility set, one snap of the O(reach area / spacing²) grid cells (shared by
    all sets) and a union of their row runs.

    Parameters
    ----------
    graph : RoadGraph
        The road graph (EPSG:4549).
    facilities : geopandas.GeoDataFrame
        The stations (any CRS); the polygons come back in this CRS.
    minutes : float or iterable of float, default (3.0, 5.0)
        The reach(es), in minutes; each must be positive.
    each : bool, default False
        True: one polygon per facility and minute (the facility's own reach, ignoring the others);
        False: one per minute for all facilities together.
    spacing_m : float, default 25
        The side of the grid cells the ETA is evaluated on (the polygons' precision).
    max_snap_m : float, default 500
        As in :func:`travel_times`.
    id_column : str, default "code"
        The column of ``facilities`` naming each one (with ``each``; the index where it is missing).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per minute, in increasing order (with ``each``: per facility, then minute):
        ``minutes``, the facility's ``id_column`` (with ``each``), ``area_km2`` (measured in EPSG:4549)
        and the polygon, in the CRS of ``facilities`` (an empty polygon where nothing is reached).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> from gridmap.analysis._toy import toy_graph
    >>> st = gpd.GeoDataFrame({"code": ["S1"]}, geometry=[shapely.Point(0, 0)], crs="EPSG:4549")
    >>> iso = isochrones(toy_graph(), st, minutes=[0.5, 1.0])
    >>> iso.minutes.tolist(), bool(iso.geometry.iloc[0].within(iso.geometry.iloc[1]))
    ([0.5, 1.0], True)
    """
    require(facilities, "facilities")
    mins = sorted({float(m) for m in minutes} if isinstance(minutes, Iterable) and not isinstance(minutes, str | bytes)
                  else {float(minutes)})
    if not mins or mins[0] <= 0:
        raise InvalidInput(f"minutes {minutes} must be positive", field="minutes", fix="e.g. minutes=[3, 5]")
    if spacing_m <= 0:
        raise InvalidInput(f"spacing_m is {spacing_m}", field="spacing_m", fix="give a positive grid step, e.g. 25")
    horizon = mins[-1] * 60.0
    fx, fy = point_xy(facilities, "facilities")
    groups = [(None, np.arange(len(fx)))] if not each else [
        (facilities[id_column].iloc[i] if id_column in facilities else facilities.index[i], np.array([i]))
        for i in range(len(fx))]
    # 1. each set's node times, and how far its roads reach: the box the grid must cover
    edge, frac, xy = many_to_one.edge_samples(graph, spacing_m)
    road = many_to_one.Targets.on_edges(graph, edge, frac)
    searches, boxes = [], []
    walk = min(max_snap_m, horizon * WALK_SPEED)
    for label, idx in groups:
        seeds = many_to_one.origin_seeds(graph, fx[idx], fy[idx], max_snap_m)
        dist = many_to_one.node_times(graph, seeds, horizon)
        searches.append((label, seeds, dist))
        hit = road.times_from(graph, dist, seeds, horizon) <= horizon
        if hit.any():
            lo, hi = xy[hit].min(axis=0), xy[hit].max(axis=0)
            boxes.append((lo[0] - walk, lo[1] - walk, hi[0] + walk, hi[1] + walk))
    # 2. one grid over all the reach, snapped once; each set's cells within t merged row by row
    cells = None
    if boxes:
        b = np.array(boxes)
        x0, y0 = np.floor(b[:, :2].min(axis=0) / spacing_m) * spacing_m
        x1, y1 = b[:, 2:].max(axis=0)
        gx = x0 + spacing_m * (np.arange(int(np.ceil((x1 - x0) / spacing_m)) + 1) + 0.5)
        gy = y0 + spacing_m * (np.arange(int(np.ceil((y1 - y0) / spacing_m)) + 1) + 0.5)
        mx, my = np.meshgrid(gx, gy)
        cells = many_to_one.Targets(graph, mx.ravel(), my.ravel(), max_snap_m)
    rows = []
    for label, seeds, dist in searches:
        t = cells.times_from(graph, dist, seeds, horizon).reshape(len(gy), len(gx)) if cells is not None else None
        for m in mins:
            poly = _cells_polygon(t <= m * 60.0, gx, gy, spacing_m) if t is not None else shapely.Polygon()
            row = {"minutes": m, "area_km2": poly.area / 1e6, "geometry": poly}
            rows.append({id_column: label, **row} if each else row)
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=MEASURE_CRS)
    return out.to_crs(facilities.crs) if facilities.crs is not None and facilities.crs != MEASURE_CRS else out


def _cells_polygon(mask: np.ndarray, gx: np.ndarray, gy: np.ndarray, step: float) -> BaseGeometry:
    """Merge the grid cells where ``mask`` is True (rows along y, columns along x) into one shape, by row runs."""
    if not mask.any():
        return shapely.Polygon()
    padded = np.pad(mask, ((0, 0), (1, 1))).astype(np.int8)
    d = np.diff(padded, axis=1)
    r_start, c_start = np.nonzero(d == 1)
    _, c_end = np.nonzero(d == -1)  # the same rows in the same order: each run starts before it ends
    half = step / 2.0
    boxes = shapely.box(gx[c_start] - half, gy[r_start] - half, gx[c_end - 1] + half, gy[r_start] + half)
    return shapely.union_all(boxes)
