"""Hand-made road graphs and frames for the analysis tests (EPSG:4549 metres)."""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
import shapely

from gridmap.routing.roadgraph import RoadGraph

CRS = "EPSG:4549"


def make_graph(nodes: dict[str, tuple[float, float]], roads: list[tuple], speed: float = 10.0):
    """A RoadGraph from named nodes and roads ``(a, b, two_way)``; travel time = length / speed."""
    names = list(nodes)
    ids = {n: 100 + i for i, n in enumerate(names)}
    src, dst, geoms = [], [], []
    for a, b, two_way in roads:
        line = shapely.LineString([nodes[a], nodes[b]])
        src.append(ids[a]), dst.append(ids[b]), geoms.append(line)
        if two_way:
            src.append(ids[b]), dst.append(ids[a]), geoms.append(shapely.reverse(line))
    length = shapely.length(np.array(geoms, dtype=object))
    g = RoadGraph.from_arrays([ids[n] for n in names], [nodes[n] for n in names], src, dst, length,
                              length / speed, geoms)
    return g, {n: i for i, n in enumerate(names)}


def lattice(side: int = 8, step: float = 200.0, speed: float = 10.0, one_way_every: int = 0) -> RoadGraph:
    """A side x side street lattice; every ``one_way_every``-th road is one-way (0: none)."""
    nodes = {f"{i},{j}": (i * step, j * step) for i in range(side) for j in range(side)}
    roads, k = [], 0
    for i in range(side):
        for j in range(side):
            for di, dj in ((1, 0), (0, 1)):
                if i + di < side and j + dj < side:
                    k += 1
                    two_way = not (one_way_every and k % one_way_every == 0)
                    roads.append((f"{i},{j}", f"{i + di},{j + dj}", two_way))
    return make_graph(nodes, roads, speed)[0]


def points(xy, crs: str = CRS, **columns) -> gpd.GeoDataFrame:
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    return gpd.GeoDataFrame(columns, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=crs)
STREET = "330106900"  # the sample street (示例街道)
#: The sample street's database: the suite's test database name (as tests/conftest.py reads it) + "_street",
#: so suites run side by side (GRIDMAP_TEST_DB_NAME) never share it.
STREET_SUFFIX = "street"
STREET_DB = f"{os.environ.get('GRIDMAP_TEST_DB_NAME', 'gridmap_test')}_{STREET_SUFFIX}"
