"""The in-memory directed road graph: a cache of PostGIS's ``road_nodes``/``road_edges``, rebuilt at will.

Nodes and edges are numbered 0..n-1 / 0..m-1; adjacency is kept as CSR arrays in both directions
(forward for "from here", reverse for "to here" searches), weights are travel times in seconds.
Geometry is held in EPSG:4549 metres for snapping and measuring.

A point is snapped to the nearest road *edge* (not node): the edge, the fraction along it, the foot of
the perpendicular and the walk from the point to the road. A two-way street is two directed edges
with the same geometry (``twin``); a one-way street has no twin, so a point on it can only move on in
the edge's direction. Snapping runs in a compiled kernel over a grid of the edges' segments
(:mod:`gridmap.routing._kernels.snap`, which says why it is hand-written: ~0.2 µs a point where shapely's STRtree
takes ~7); shapely's answer is kept as ``RoadGraph._snap_shapely``, the reference it is tested against.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from gridmap.routing._kernels import snap as _snap

if TYPE_CHECKING:
    import networkx as nx

#: Walking speed between a point and its road (m/s), e.g. from a parked truck to a doorway.
WALK_SPEED = 1.25

_Time = TypeVar("_Time", float, np.ndarray)


# -- the travel-time arithmetic of a point on a road: the one place every search seeds from -------------
# A point snapped ``fraction`` of the way along directed edge u -> v (``walk_s`` seconds off the road) is
# left towards v, or towards u along the twin v -> u (which it sits 1 - fraction along); it is reached
# from u along the edge, or from v along the twin. These work on floats (the per-query hot path) and on
# arrays (batches) alike, in the same order of operations, so that every caller gets the same bits.
def leave_costs(edge_time: _Time, twin_time: _Time, fraction: _Time, walk_s: _Time) -> tuple[_Time, _Time]:
    """Travel time from a point on a road to its edge's end node, and to its twin's end node (the edge's
    start; meaningless where there is no twin).

    Examples
    --------
    >>> leave_costs(100.0, 100.0, 0.25, 8.0)   # a quarter along a 100 s road, 10 m off it
    (83.0, 33.0)
    """
    return walk_s + (1.0 - fraction) * edge_time, walk_s + fraction * twin_time


def reach_costs(edge_time: _Time, twin_time: _Time, fraction: _Time, walk_s: _Time) -> tuple[_Time, _Time]:
    """Travel time to a point on a road from its edge's start node, and from its twin's start node (the
    edge's end; meaningless where there is no twin).

    Examples
    --------
    >>> reach_costs(100.0, 100.0, 0.25, 8.0)
    (33.0, 83.0)
    """
    return walk_s + fraction * edge_time, walk_s + (1.0 - fraction) * twin_time


def along_time(edge_time: _Time, from_fraction: _Time, to_fraction: _Time) -> _Time:
    """Travel time along one edge from one fraction to a later one (the caller checks the order)."""
    return (to_fraction - from_fraction) * edge_time


def walk_time(distance_m: _Time) -> _Time:
    """Walking time (s) between a point and its road, at :data:`WALK_SPEED`."""
    return distance_m / WALK_SPEED


@dataclass(frozen=True)
class Snaps:
    """Snaps of many points (arrays of the same length; ``edge == -1`` where no road was within reach)."""

    edge: np.ndarray  # directed edge index (u -> v)
    twin: np.ndarray  # the reverse edge v -> u on the same road, or -1 (one-way)
    fraction: np.ndarray  # position along the edge from u, 0..1
    distance_m: np.ndarray  # from the point to the road
    x: np.ndarray  # the foot on the road (EPSG:4549)
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.edge)


def _max_distance(max_distance: float | None) -> float:
    if max_distance is None:
        return np.inf
    md = float(max_distance)
    if not md > 0:  # also NaN
        raise ValueError(f"max_distance: {max_distance!r} is not a distance; give metres > 0, or None for no limit")
    return md


def _snap_index(geoms: np.ndarray, twin: np.ndarray) -> _snap.SnapIndex:
    """The segment grid of the edges' LineStrings (None or empty: an edge never snapped to)."""
    kinds = shapely.get_type_id(geoms)  # 1: LineString (empty or not), -1: None
    bad = np.flatnonzero((kinds != 1) & (kinds != -1))
    if len(bad):
        raise ValueError(f"geoms: edge {bad[0]} is a {geoms[bad[0]].geom_type}, not a LineString; split multi-part "
                         "roads into one edge per part (shapely.line_merge, get_parts)")
    coords, part = shapely.get_coordinates(geoms, return_index=True)
    return _snap.SnapIndex(coords, part, len(geoms), twin)


def _csr(n: int, src: np.ndarray, dst: np.ndarray, edge: np.ndarray,
         w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = np.lexsort((dst, src))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(indptr, src + 1, 1)
    np.cumsum(indptr, out=indptr)
    return indptr, dst[order].astype(np.int64), edge[order].astype(np.int64), w[order].astype(np.float64)


class RoadGraph:
    """A directed road graph with travel times, snapping and strongly-connected-component labels.

    Parameters
    ----------
    node_ids : database ids of the nodes (any int64), in index order.
    node_xy : (n, 2) node coordinates in EPSG:4549.
    edge_u, edge_v : node *indexes* of each directed edge.
    length_m, travel_time_s : per edge.
    geoms : per edge LineString in EPSG:4549, drawn from u to v.
    edge_ids : database ids of the edges (default 0..m-1).
    """

    def __init__(self, node_ids: npt.ArrayLike, node_xy: npt.ArrayLike, edge_u: npt.ArrayLike, edge_v: npt.ArrayLike,
                 length_m: npt.ArrayLike, travel_time_s: npt.ArrayLike, geoms: npt.ArrayLike,
                 edge_ids: npt.ArrayLike | None = None) -> None:
        self.node_ids = np.asarray(node_ids, dtype=np.int64)
        self.node_xy = np.asarray(node_xy, dtype=np.float64)
        self.edge_u = np.asarray(edge_u, dtype=np.int64)
        self.edge_v = np.asarray(edge_v, dtype=np.int64)
        self.length_m = np.asarray(length_m, dtype=np.float64)
        self.time_s = np.asarray(travel_time_s, dtype=np.float64)
        self.geoms = np.asarray(geoms, dtype=object)
        self.edge_ids = np.arange(len(self.edge_u), dtype=np.int64) if edge_ids is None else np.asarray(edge_ids)
        n, m = len(self.node_ids), len(self.edge_u)
        if np.any(self.time_s < 0) or not np.all(np.isfinite(self.time_s)):
            raise ValueError("edge travel times must be finite and non-negative")
        eidx = np.arange(m, dtype=np.int64)
        self.indptr, self.adj, self.adj_edge, self.adj_w = _csr(n, self.edge_u, self.edge_v, eidx, self.time_s)
        self.rindptr, self.radj, self.radj_edge, self.radj_w = _csr(n, self.edge_v, self.edge_u, eidx, self.time_s)
        self.twin = self._twins()
        self.lengths_geom = shapely.length(self.geoms)
        self._snap_index = _snap_index(self.geoms, self.twin)
        graph = csr_matrix((np.ones(m), (self.edge_u, self.edge_v)), shape=(n, n))
        self.n_scc, self.scc = connected_components(graph, directed=True, connection="strong")
        sizes = np.bincount(self.scc)
        self.main_scc = int(np.argmax(sizes))
        self._index = pd.Index(self.node_ids)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, node_ids: npt.ArrayLike, node_xy: npt.ArrayLike, src_ids: npt.ArrayLike,
                    dst_ids: npt.ArrayLike, length_m: npt.ArrayLike, travel_time_s: npt.ArrayLike,
                    geoms: npt.ArrayLike, edge_ids: npt.ArrayLike | None = None) -> RoadGraph:
        """Build from database ids of the edge end nodes (edges to unknown nodes are an error)."""
        index = pd.Index(np.asarray(node_ids, dtype=np.int64))
        u = index.get_indexer(pd.Index(np.asarray(src_ids, dtype=np.int64)))
        v = index.get_indexer(pd.Index(np.asarray(dst_ids, dtype=np.int64)))
        if (u < 0).any() or (v < 0).any():
            raise ValueError("an edge refers to a node that is not in the node list")
        return cls(node_ids, node_xy, u, v, length_m, travel_time_s, geoms, edge_ids)

    @classmethod
    def from_roads(cls, nodes: Mapping[Any, Sequence[float]], roads: Iterable[Sequence[Any]], *,
                   speed_mps: float = 10.0, travel_time_s: npt.ArrayLike | None = None,
                   node_ids: npt.ArrayLike | None = None, edge_ids: npt.ArrayLike | None = None) -> RoadGraph:
        """A graph of hand-drawn roads between named points (EPSG:4549 metres): for docstrings, notebooks
        and tests.

        Each road is ``(a, b, two_way)`` or ``(a, b, two_way, via_points)``: a line from point ``a`` through
        ``via_points`` to point ``b``; a two-way road is two directed edges, the reverse one (reversed
        geometry) right after it. Travel time is length / ``speed_mps`` unless ``travel_time_s`` gives one
        per directed edge, in that order. Nodes are indexed in the order of ``nodes``; their database ids
        are ``node_ids`` (default 0..n-1).

        Examples
        --------
        >>> g = RoadGraph.from_roads({"A": (0, 0), "B": (100, 0), "C": (100, 50)},
        ...                          [("A", "B", True), ("B", "C", False)])
        >>> g.n_nodes, g.n_edges, g.time_s.tolist(), g.twin.tolist()
        (3, 3, [10.0, 10.0, 5.0], [1, 0, -1])
        """
        index = {name: i for i, name in enumerate(nodes)}
        src, dst, geoms = [], [], []
        for road in roads:
            a, b, two_way = road[:3]
            via = road[3] if len(road) > 3 else []
            line = shapely.LineString([nodes[a], *via, nodes[b]])
            src.append(index[a])
            dst.append(index[b])
            geoms.append(line)
            if two_way:
                src.append(index[b])
                dst.append(index[a])
                geoms.append(shapely.reverse(line))
        geom_arr = np.array(geoms, dtype=object)
        length = shapely.length(geom_arr)
        times = length / speed_mps if travel_time_s is None else np.asarray(travel_time_s, dtype=np.float64)
        ids = np.arange(len(index)) if node_ids is None else node_ids
        xy = np.array([nodes[name] for name in index], dtype=np.float64).reshape(-1, 2)
        return cls(ids, xy, src, dst, length, times, geom_arr, edge_ids)

    def _twins(self) -> np.ndarray:
        """For each edge u->v, the edge v->u with the closest length (same road, other way), else -1."""
        m = len(self.edge_u)
        fwd = pd.DataFrame({"a": self.edge_u, "b": self.edge_v, "e": np.arange(m), "len": self.length_m})
        rev = fwd.rename(columns={"a": "b", "b": "a", "e": "t", "len": "tlen"})
        pairs = fwd.merge(rev, on=["a", "b"])
        pairs = pairs[pairs.e != pairs.t]
        pairs["d"] = (pairs["len"] - pairs["tlen"]).abs()
        pairs = pairs[pairs["d"] <= np.maximum(1.0, 0.02 * pairs["len"])]
        best = pairs.sort_values(["e", "d"]).drop_duplicates("e")
        twin = np.full(m, -1, dtype=np.int64)
        twin[best.e.to_numpy()] = best.t.to_numpy()
        return twin

    # -- queries --------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        return len(self.edge_u)

    def node_index(self, ids: npt.ArrayLike) -> np.ndarray:
        return self._index.get_indexer(pd.Index(np.asarray(ids, dtype=np.int64)))

    def snap(self, x: npt.ArrayLike, y: npt.ArrayLike, max_distance: float | None = 1000.0) -> Snaps:
        """Snap points (EPSG:4549) to their nearest road edge within ``max_distance`` metres.

        One compiled pass over a grid of the edges' segments (:mod:`gridmap.routing._kernels.snap`): per point the
        nearest edge, the distance, the fraction along the whole edge and the foot, equal to what shapely's
        ``STRtree.query_nearest`` + ``line_locate_point`` + ``line_interpolate_point`` give
        (:meth:`_snap_shapely`, kept as the reference). Equally near edges (a two-way road's pair): the
        lowest edge index. ``max_distance`` is inclusive; ``None`` means no limit. A point with no edge in
        reach gets edge -1, distance inf and itself as the foot; so does an infinite coordinate.
        """
        md = _max_distance(max_distance)
        if isinstance(x, list) and isinstance(y, list) and len(x) == len(y) == 1:  # the dispatch hot path: g.snap([x], [y])
            return self._snap_one(float(x[0]), float(y[0]), md)
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.size == 1 and y.size == 1 and x.ndim <= 1 and y.ndim <= 1:
            return self._snap_one(float(x.reshape(1)[0]), float(y.reshape(1)[0]), md)
        x, y = np.atleast_1d(x), np.atleast_1d(y)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(f"x, y: need two 1-D arrays of the same length, got shapes {x.shape} and {y.shape}")
        edge, twin, frac, dist, fx, fy = _snap.snap_points(x, y, md, *self._snap_index.args)
        if len(x) and edge.min() < 0:
            bad = np.flatnonzero(np.isnan(x) | np.isnan(y))
            if len(bad):
                raise ValueError(f"x, y: point {bad[0]} is ({x[bad[0]]}, {y[bad[0]]}), not a point: give finite "
                                 "EPSG:4549 coordinates")
        return Snaps(edge, twin, frac, dist, fx, fy)

    def _snap_one(self, px: float, py: float, md: float) -> Snaps:
        """:meth:`snap` of one point: the same values, dtypes and shapes, without array set-up (~3 µs)."""
        e, t, f, d, fx, fy = _snap.snap_point(px, py, md, *self._snap_index.args)
        if e < 0 and (px != px or py != py):
            raise ValueError(f"x, y: ({px}, {py}) is not a point: give finite EPSG:4549 coordinates")
        return Snaps(np.array([e], dtype=np.int64), np.array([t], dtype=np.int64), np.array([f]), np.array([d]),
                     np.array([fx]), np.array([fy]))

    @functools.cached_property
    def _strtree(self) -> shapely.STRtree:
        return shapely.STRtree(self.geoms)

    def _snap_shapely(self, x: npt.ArrayLike, y: npt.ArrayLike, max_distance: float | None = 1000.0) -> Snaps:
        """:meth:`snap` as shapely answers it: the reference the compiled kernel is tested and timed against.

        One STRtree nearest query for all points, then one ``line_locate_point`` and one
        ``line_interpolate_point``; one point takes a scalar route. This is the code :meth:`snap` ran
        before the kernel (~7 µs a point, ~35 µs for one), kept so that the comparison keeps running.
        """
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        y = np.atleast_1d(np.asarray(y, dtype=np.float64))
        if x.shape == y.shape == (1,):
            return self._snap_shapely_one(x, y, max_distance)
        pts = cast("npt.NDArray[np.object_]", shapely.points(x, y))
        k = len(pts)
        edge = np.full(k, -1, dtype=np.int64)
        dist = np.full(k, np.inf)
        if k:
            (pi, ei), d = self._strtree.query_nearest(pts, max_distance=max_distance, return_distance=True,
                                                      all_matches=False)
            edge[pi] = ei
            dist[pi] = d
        frac = np.zeros(k)
        fx, fy = x.copy(), y.copy()
        ok = edge >= 0
        if ok.any():
            g = self.geoms[edge[ok]]
            along = shapely.line_locate_point(g, pts[ok])
            glen = self.lengths_geom[edge[ok]]
            frac[ok] = np.where(glen > 0, along / np.where(glen > 0, glen, 1.0), 0.0)
            foot = shapely.line_interpolate_point(g, along)
            fx[ok], fy[ok] = shapely.get_x(foot), shapely.get_y(foot)
        twin = np.where(ok, self.twin[np.maximum(edge, 0)], -1)
        return Snaps(edge, twin, np.clip(frac, 0.0, 1.0), dist, fx, fy)

    def _snap_shapely_one(self, x: np.ndarray, y: np.ndarray, max_distance: float | None) -> Snaps:
        """:meth:`_snap_shapely` of one point (``x``, ``y`` of shape (1,)): the same values, dtypes and shapes."""
        pts = np.empty(1, dtype=object)
        pts[0] = shapely.Point(x[0], y[0])
        (_, ei), d = self._strtree.query_nearest(pts, max_distance=max_distance, return_distance=True,
                                                 all_matches=False)
        if len(ei) == 0:
            none = np.full(1, -1, dtype=np.int64)
            return Snaps(none, none.copy(), np.zeros(1), np.full(1, np.inf), x.copy(), y.copy())
        e = int(ei[0])
        geom = self.geoms[e]
        along = shapely.line_locate_point(geom, pts[0])
        glen = self.lengths_geom[e]
        frac = along / glen if glen > 0 else 0.0
        foot = shapely.get_coordinates(shapely.line_interpolate_point(geom, along))
        return Snaps(np.array([e], dtype=np.int64), self.twin[ei], np.array([min(max(frac, 0.0), 1.0)]), d,
                     foot[:, 0].copy(), foot[:, 1].copy())

    def to_networkx(self) -> nx.MultiDiGraph[int]:
        """A networkx MultiDiGraph of the same edges (weights ``time``): the reference for tests and benchmarks."""
        import networkx as nx

        g: nx.MultiDiGraph[int] = nx.MultiDiGraph()
        g.add_nodes_from(range(self.n_nodes))
        g.add_weighted_edges_from(zip(self.edge_u.tolist(), self.edge_v.tolist(), self.time_s.tolist(), strict=True),
                                  weight="time")
        return g
