"""The test suite's road graphs, built in one place: hand-drawn roads, lattices, rings, bare arcs, polylines,
and the sample street's real OSM drive network.

Every graph but the OSM one is built by the public :meth:`gridmap.routing.roadgraph.RoadGraph.from_roads`
(the constructor the docstring examples use too, see ``gridmap.analysis._toy``); the OSM one is read as
``scripts/bench_dispatch.py`` reads it. All in EPSG:4549 metres.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt

from gridmap.config import MEASURE_CRS
from gridmap.core.crs import to_measure_crs, transformer
from gridmap.routing.roadgraph import RoadGraph

#: The sample street's OSM drive network (nodes and edges layers, EPSG:4326).
OSM_ROADS = Path(__file__).resolve().parents[1] / "data" / "roads" / "hz_xihu_gongshu_osm_drive.gpkg"

#: A 1 km square A-B-C-D and its one-way ring (100 s a side at 10 m/s).
SQUARE = {"A": (0.0, 0.0), "B": (1000.0, 0.0), "C": (1000.0, 1000.0), "D": (0.0, 1000.0)}
RING = [("A", "B", False), ("B", "C", False), ("C", "D", False), ("D", "A", False)]


def make_graph(nodes: dict[str, tuple[float, float]], roads: list[tuple], speed: float = 10.0, *,
               edge_ids: npt.ArrayLike | None = None) -> tuple[RoadGraph, dict[str, int]]:
    """A graph from named nodes and roads ``(a, b, two_way[, via_points])`` (see ``RoadGraph.from_roads``),
    and the index of each name. Node database ids are 100, 101, ... to keep ids and indexes apart."""
    g = RoadGraph.from_roads(nodes, roads, speed_mps=speed, node_ids=100 + np.arange(len(nodes)), edge_ids=edge_ids)
    return g, {name: i for i, name in enumerate(nodes)}


def ring(two_way_ab: bool = False, extra: Sequence[tuple] = ()) -> RoadGraph:
    """The one-way ring of :data:`SQUARE` (A-B two-way if asked); with ``extra`` roads, a node E at (2000, 0)."""
    roads = [("A", "B", two_way_ab), *RING[1:], *extra]
    nodes = {**SQUARE, "E": (2000.0, 0.0)} if extra else SQUARE
    return make_graph(nodes, roads)[0]


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


def arcs_graph(xy: npt.ArrayLike, arcs: Sequence[tuple[int, int]], times: npt.ArrayLike | None = None) -> RoadGraph:
    """A graph from node coordinates and directed arcs (u, v) between their indexes (parallel arcs and loops
    allowed); travel time = length / 10 m/s unless ``times`` gives one per arc."""
    xy = np.asarray(xy, dtype=float)
    return RoadGraph.from_roads(dict(enumerate(map(tuple, xy))), [(u, v, False) for u, v in arcs],
                                travel_time_s=times)


def lines_graph(lines: Sequence[Sequence[tuple[float, float]]], two_way: Sequence[int] = ()) -> RoadGraph:
    """A graph whose directed edges are the given polylines, in order (one node per distinct end point,
    numbered in sorted order); the lines whose index is in ``two_way`` also get their reverse, appended
    after all of them."""
    ends = [(tuple(c[0]), tuple(c[-1])) for c in lines]
    ends += [ends[i][::-1] for i in two_way]
    points = sorted({p for pair in ends for p in pair})
    roads = [(tuple(c[0]), tuple(c[-1]), False, [tuple(p) for p in c[1:-1]]) for c in lines]
    roads += [(tuple(lines[i][-1]), tuple(lines[i][0]), False, [tuple(p) for p in lines[i][-2:0:-1]])
              for i in two_way]
    return RoadGraph.from_roads({p: p for p in points}, roads)


def osm_street() -> RoadGraph:
    """The sample street's real OSM drive network (1,407 nodes), edge ids 1..m."""
    nodes = gpd.read_file(OSM_ROADS, layer="nodes", columns=["osmid", "x", "y"])
    edges = gpd.read_file(OSM_ROADS, layer="edges", columns=["u", "v", "length", "travel_time"])
    t = transformer("EPSG:4326", MEASURE_CRS)
    x, y = t.transform(nodes.geometry.x.to_numpy(), nodes.geometry.y.to_numpy())
    return RoadGraph.from_arrays(nodes["osmid"], np.column_stack([x, y]), edges["u"], edges["v"], edges["length"],
                                 edges["travel_time"], to_measure_crs(edges.geometry.to_numpy()),
                                 np.arange(1, len(edges) + 1))
