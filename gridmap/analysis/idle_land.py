"""Idle land near parking pressure: open parcels a street could turn into parking (the Xianlin parking case).

Xianlin's street office answered its residents' parking complaints (停车难) by turning idle plots next to
the worst-hit communities into temporary car parks. The same question, in three steps:

1. :func:`open_land`: the parts of the area with no building and no road: the area minus every
   footprint grown by ``building_clearance_m`` and every road grown by its half-width (by road class),
   opened by ``min_width_m`` (slivers narrower than that are dropped) and kept from ``min_area_m2`` to
   ``max_area_m2``. A registry without land use cannot tell a park, a hill or a lake from a vacant lot:
   the open tracts above ``max_area_m2`` (default 5 ha) are most likely those and are left out, and
   every candidate is a lead to check on imagery or on foot, not a finding;
2. :func:`parking_pressure`: parking complaints per community, per 1,000 residents;
3. :func:`rank_idle_land`: the parcels within ``max_distance_m`` of the ``top`` communities by complaint
   rate, ranked by ``score = area_m2 · exp(-distance_m / decay_m)``, where ``distance_m`` is the median
   distance from the parcel to that community's complaints (a bigger plot is better, a farther one
   worse: 300 m farther weighs e ≈ 2.7 times less).

Everything is measured in EPSG:4549; frames come back in the CRS of the area input. Cost: a union of
the buffered buildings and roads (O(n log n)) and one difference per area.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridmap.config import MEASURE_CRS
from gridmap.errors import InvalidInput

from ._frames import require, to_measure

#: Half-width (m) of the road corridor by OSM highway class (first class listed wins).
ROAD_HALF_WIDTH_M = {
    "motorway": 18.0, "trunk": 15.0, "primary": 12.0, "secondary": 10.0, "tertiary": 8.0,
    "trunk_link": 8.0, "primary_link": 7.0, "secondary_link": 7.0, "tertiary_link": 6.0,
    "residential": 6.0, "unclassified": 5.0, "living_street": 4.0, "service": 4.0,
}
DEFAULT_HALF_WIDTH_M = 6.0


def _half_width(highway: object) -> float:
    if not isinstance(highway, str):
        return DEFAULT_HALF_WIDTH_M
    return ROAD_HALF_WIDTH_M.get(highway.split(";")[0].strip(), DEFAULT_HALF_WIDTH_M)


def open_land(areas: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, *,
              building_clearance_m: float = 10.0, min_width_m: float = 25.0, min_area_m2: float = 2000.0,
              max_area_m2: float | None = 50_000.0, key: str = "code") -> gpd.GeoDataFrame:
    """Find the open parcels (no building, no road) inside each area.

    The area minus every footprint grown by ``building_clearance_m`` and every road grown by its
    half-width (by OSM ``highway`` class, ``ROAD_HALF_WIDTH_M``), opened by ``min_width_m`` (slivers
    narrower than that are dropped) and kept from ``min_area_m2`` to ``max_area_m2``. Every parcel is a
    lead to check on imagery or on foot (see the module's notes).

    Parameters
    ----------
    areas : geopandas.GeoDataFrame
        The areas searched (polygons, any CRS), with the ``key`` column (e.g. grids or communities).
    buildings : geopandas.GeoDataFrame
        Building footprints (any CRS).
    roads : geopandas.GeoDataFrame
        Road lines (any CRS), with ``highway`` where known (e.g. :func:`gridmap.analysis.load_roads`).
    building_clearance_m : float, default 10
        The clearance kept around every building.
    min_width_m : float, default 25
        Parts narrower than this are dropped.
    min_area_m2 : float, default 2000
        The smallest parcel kept.
    max_area_m2 : float or None, default 50000
        The largest parcel kept (larger open tracts are most likely parks, hills or water); None: no limit.
    key : str, default "code"
        The column of ``areas`` naming each area.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per parcel: ``area_code`` (the area's ``key``), ``area_m2`` (measured in EPSG:4549) and the
        polygon, in the CRS of ``areas``; sorted by area code, then largest first.

    Examples
    --------
    A 200 m square block with one building in a corner and a road along its south edge leaves the
    rest open:

    >>> import geopandas as gpd, shapely
    >>> crs = "EPSG:4549"
    >>> block = gpd.GeoDataFrame({"code": ["G1"]}, geometry=[shapely.box(0, 0, 200, 200)], crs=crs)
    >>> blds = gpd.GeoDataFrame(geometry=[shapely.box(150, 150, 190, 190)], crs=crs)
    >>> roads = gpd.GeoDataFrame({"highway": ["residential"]}, geometry=[shapely.LineString([(0, 0), (200, 0)])],
    ...                          crs=crs)
    >>> land = open_land(block, blds, roads)
    >>> len(land), round(float(land.area_m2.iloc[0]), -2)
    (1, 35000.0)
    """
    require(areas, "areas", (key,))
    require(buildings, "buildings")
    require(roads, "roads")
    if min_width_m <= 0 or min_area_m2 < 0 or building_clearance_m < 0:
        raise InvalidInput("min_width_m must be positive, min_area_m2 and building_clearance_m non-negative",
                           field="open_land", fix="e.g. min_width_m=25, min_area_m2=2000, building_clearance_m=10")
    a = to_measure(areas, "areas")
    b = to_measure(buildings, "buildings").geometry.to_numpy()
    r = to_measure(roads, "roads")
    hw = np.array([_half_width(h) for h in (r["highway"] if "highway" in r else [None] * len(r))])
    obstacles = np.concatenate([
        shapely.buffer(b, building_clearance_m, quad_segs=2) if building_clearance_m else b,
        shapely.buffer(r.geometry.to_numpy(), hw, quad_segs=2, cap_style="flat"),
    ])
    tree = shapely.STRtree(obstacles)
    rows = []
    for code, poly in zip(a[key], a.geometry, strict=True):
        near = obstacles[tree.query(poly)]
        free = shapely.difference(poly, shapely.union_all(near)) if len(near) else poly
        opened = shapely.buffer(shapely.buffer(free, -min_width_m / 2.0, quad_segs=4), min_width_m / 2.0, quad_segs=4)
        opened = shapely.intersection(opened, free)  # the re-grown corners never leave the free land
        for part in shapely.get_parts(opened):
            if part.geom_type == "Polygon" and min_area_m2 <= part.area <= (max_area_m2 or np.inf):
                rows.append({"area_code": code, "area_m2": float(part.area), "geometry": part})
    out = gpd.GeoDataFrame(rows, columns=["area_code", "area_m2", "geometry"], geometry="geometry", crs=MEASURE_CRS)
    out = out.sort_values(["area_code", "area_m2"], ascending=[True, False], kind="stable").reset_index(drop=True)
    return out.to_crs(areas.crs) if areas.crs is not None and areas.crs != MEASURE_CRS else out


def parking_pressure(events: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, *, category: str = "parking",
                     key: str = "community_code") -> gpd.GeoDataFrame:
    """Count parking complaints per community, per 1,000 residents, and rank the communities.

    Parameters
    ----------
    events : geopandas.GeoDataFrame
        Events with ``category`` and the ``key`` column (e.g. :func:`gridmap.analysis.load_events`).
    communities : geopandas.GeoDataFrame
        The communities, with ``code`` and ``population``.
    category : str, default "parking"
        The complaints counted.
    key : str, default "community_code"
        The column of ``events`` naming each event's community.

    Returns
    -------
    geopandas.GeoDataFrame
        ``communities`` with ``complaints``, ``per_1000`` (NaN without residents) and ``pressure_rank`` (1:
        the highest rate), sorted by that rank.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> comm = gpd.GeoDataFrame({"code": ["C1", "C2"], "population": [2000, 500]}, crs="EPSG:4549",
    ...                         geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    >>> ev = gpd.GeoDataFrame({"category": ["parking"] * 3, "community_code": ["C1", "C1", "C2"]},
    ...                       geometry=[shapely.Point(0.5, 0.5)] * 3, crs="EPSG:4549")
    >>> parking_pressure(ev, comm)[["code", "complaints", "per_1000"]].values.tolist()
    [['C2', 1, 2.0], ['C1', 2, 1.0]]
    """
    require(events, "events", ("category", key))
    require(communities, "communities", ("code", "population"))
    n = events.loc[events["category"] == category].groupby(key).size()
    out = communities.copy()
    out["complaints"] = out["code"].map(n).fillna(0).astype(int)
    pop = out["population"].astype(float)
    out["per_1000"] = (out["complaints"] / (pop / 1000.0)).where(pop > 0)
    out["pressure_rank"] = out["per_1000"].rank(ascending=False, method="min").astype("Int64")
    return out.sort_values("pressure_rank", kind="stable").reset_index(drop=True)


def rank_idle_land(parcels: gpd.GeoDataFrame, pressure: gpd.GeoDataFrame, events: gpd.GeoDataFrame, *,
                   top: int = 5, max_distance_m: float = 500.0, decay_m: float = 300.0, walk_m: float = 300.0,
                   category: str = "parking", key: str = "community_code") -> gpd.GeoDataFrame:
    """Rank the parcels near the ``top`` communities by parking pressure, by area and distance.

    Keeps the parcels within ``max_distance_m`` of one of those communities (0 inside it) and gives
    each the nearest one as ``community``; ``distance_m`` is the median straight-line distance from the
    parcel to that community's complaints (how far its complainants would walk). ``score = area_m2 ·
    exp(-distance_m / decay_m)``: a bigger plot is better, a farther one worse.

    Parameters
    ----------
    parcels : geopandas.GeoDataFrame
        Candidate parcels with ``area_m2`` (e.g. :func:`open_land`), any CRS.
    pressure : geopandas.GeoDataFrame
        The communities with ``code`` and ``per_1000`` (and ``pressure_rank``), e.g.
        :func:`parking_pressure`.
    events : geopandas.GeoDataFrame
        The complaints, with ``category`` and the ``key`` column.
    top : int, default 5
        How many of the highest-pressure communities are served.
    max_distance_m : float, default 500
        Parcels farther than this from all of them are left out.
    decay_m : float, default 300
        The distance at which the score falls by a factor e.
    walk_m : float, default 300
        ``complaints_nearby`` counts the complaints (of any community) within this distance.
    category : str, default "parking"
        The complaints' category.
    key : str, default "community_code"
        The column of ``events`` naming each complaint's community.

    Returns
    -------
    geopandas.GeoDataFrame
        The parcels kept, in the CRS of ``parcels``, with ``community``, ``distance_m``,
        ``complaints_nearby``, ``score`` and ``rank`` (1 is the best), best first.

    Examples
    --------
    Two equal plots, one beside the complaints, one 600 m away; the near one ranks first:

    >>> import geopandas as gpd, shapely
    >>> crs = "EPSG:4549"
    >>> comm = gpd.GeoDataFrame({"code": ["C1"], "per_1000": [50.0]}, geometry=[shapely.box(0, 0, 1000, 1000)],
    ...                         crs=crs)
    >>> plots = gpd.GeoDataFrame({"area_m2": [5000.0, 5000.0]}, crs=crs,
    ...                          geometry=[shapely.box(100, 100, 170, 170), shapely.box(700, 700, 770, 770)])
    >>> ev = gpd.GeoDataFrame({"category": ["parking"] * 3, "community_code": ["C1"] * 3}, crs=crs,
    ...                       geometry=[shapely.Point(90, 90), shapely.Point(80, 120), shapely.Point(120, 80)])
    >>> r = rank_idle_land(plots, comm, ev)
    >>> r.geometry.iloc[0].bounds[0], r["rank"].tolist()
    (100.0, [1, 2])
    """
    require(parcels, "parcels", ("area_m2",))
    require(pressure, "pressure", ("code", "per_1000"))
    require(events, "events", ("category", key))
    hot = pressure.nsmallest(top, "pressure_rank") if "pressure_rank" in pressure else pressure.nlargest(top, "per_1000")
    hot = to_measure(hot, "pressure").reset_index(drop=True)
    p = to_measure(parcels, "parcels").reset_index(drop=True)
    cols = ["community", "distance_m", "complaints_nearby", "score", "rank"]
    if p.empty or hot.empty:
        return gpd.GeoDataFrame(parcels.iloc[:0].assign(**{c: [] for c in cols}), crs=parcels.crs)
    d_comm = np.column_stack([shapely.distance(p.geometry.to_numpy(), g) for g in hot.geometry])
    j = np.argmin(d_comm, axis=1)
    out = p.copy()
    out["community"] = hot["code"].to_numpy()[j]
    out = out[d_comm[np.arange(len(p)), j] <= max_distance_m].copy()
    ev = to_measure(events[events["category"] == category], "events")
    pts = ev.geometry.to_numpy()
    dist = np.full(len(out), np.nan)
    for code in out["community"].unique():
        mine = pts[(ev[key] == code).to_numpy()]
        rows = np.flatnonzero((out["community"] == code).to_numpy())
        if len(mine):
            d = shapely.distance(out.geometry.to_numpy()[rows][:, None], mine[None, :])
            dist[rows] = np.median(d, axis=1)
    out["distance_m"] = dist
    tree = shapely.STRtree(pts)
    hits = tree.query(out.geometry.to_numpy(), predicate="dwithin", distance=walk_m)
    out["complaints_nearby"] = np.bincount(hits[0], minlength=len(out)) if len(out) else np.zeros(0, dtype=int)
    out["score"] = out["area_m2"] * np.exp(-out["distance_m"].fillna(np.inf) / decay_m)
    out = out.sort_values(["score", "area_m2"], ascending=False, kind="stable").reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=MEASURE_CRS)
    return out.to_crs(parcels.crs) if parcels.crs is not None and parcels.crs != MEASURE_CRS else out


def idle_land_summary(ranked: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """Show the ``n`` best parcels as a plain table (no geometry), areas in hectares.

    Parameters
    ----------
    ranked : pandas.DataFrame
        :func:`rank_idle_land`'s frame (or :func:`open_land`'s).
    n : int, default 10
        How many rows.

    Returns
    -------
    pandas.DataFrame
        The first ``n`` rows, with whichever of ``rank``, ``community``, ``area_code``, ``area_m2``,
        ``distance_m``, ``complaints_nearby`` and ``score`` it has, plus ``area_ha``.

    Examples
    --------
    >>> import pandas as pd
    >>> ranked = pd.DataFrame({"rank": [1, 2], "community": ["C1", "C1"], "area_m2": [25_000.0, 4_000.0],
    ...                        "score": [20_000.0, 1_000.0]})
    >>> idle_land_summary(ranked, n=1)[["rank", "area_ha"]].values.tolist()
    [[1.0, 2.5]]
    """
    cols = [c for c in ("rank", "community", "area_code", "area_m2", "distance_m", "complaints_nearby", "score")
            if c in ranked]
    t = pd.DataFrame(ranked[cols]).head(n).copy()
    t["area_ha"] = t["area_m2"] / 10_000.0
    return t
