"""Many-to-one travel times over the road network: from the nearest of many origins to each destination.

The planners' coverage, siting and response-time questions (:mod:`gridmap.analysis`) ask this for thousands
of buildings at once; one multi-source Dijkstra answers all of them. :class:`Targets` holds the
destinations snapped once (siting evaluates every candidate site against the same buildings: the cost is
then the snapping, not the search), :func:`origin_seeds` seeds the search at both ends of each origin's
edge, and :func:`network_times` is the one-call form of the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from gridmap.routing._kernels import dijkstra as _dijkstra
from gridmap.routing.roadgraph import RoadGraph, Snaps, along_time, leave_costs, reach_costs, walk_time

__all__ = ["Seeds", "Targets", "edge_samples", "network_times", "node_times", "origin_seeds", "seeds_from_snap"]


def network_times(graph: RoadGraph, from_x: npt.ArrayLike, from_y: npt.ArrayLike, to_x: npt.ArrayLike,
                  to_y: npt.ArrayLike, *, max_snap_m: float = 500.0,
                  horizon_s: float = np.inf) -> np.ndarray:
    """Travel time (s) from the nearest of many origins to each of many destinations, by road (many-to-one).

    One multi-source Dijkstra over the forward graph, seeded at every origin's position along its edge,
    then one vectorised lookup per destination: O((V + E) log V + P), not a loop of one-to-one searches.
    Destinations more than ``max_snap_m`` from a road, or not reachable within ``horizon_s``, get +inf.

    Examples
    --------
    >>> # times = network_times(g, stations_x, stations_y, buildings_x, buildings_y)   # seconds
    """
    seeds = origin_seeds(graph, from_x, from_y, max_snap_m)
    return Targets(graph, to_x, to_y, max_snap_m).times(graph, seeds, horizon_s)


@dataclass(frozen=True)
class Seeds:
    """Where a search starts: graph nodes with their start costs, and the origins' own edges."""

    nodes: np.ndarray
    costs: np.ndarray
    edge: np.ndarray  # snapped edge of each origin that reached a road
    twin: np.ndarray
    fraction: np.ndarray
    walk_s: np.ndarray


def origin_seeds(g: RoadGraph, x: npt.ArrayLike, y: npt.ArrayLike, max_snap_m: float = 500.0) -> Seeds:
    """Snap origins (EPSG:4549) to their road edges and seed both ends, as ``network_times`` does."""
    src = g.snap(x, y, max_snap_m)
    ok = src.edge >= 0
    e, f, tw = src.edge[ok], src.fraction[ok], src.twin[ok]
    walk = walk_time(src.distance_m[ok])
    has = tw >= 0
    to_end, to_start = leave_costs(g.time_s[e], g.time_s[np.maximum(tw, 0)], f, walk)
    nodes = np.concatenate([g.edge_v[e], g.edge_v[tw[has]]]).astype(np.int64)
    return Seeds(nodes, np.concatenate([to_end, to_start[has]]), e, tw, f, walk)


def seeds_from_snap(g: RoadGraph, snaps: Snaps, j: int) -> Seeds | None:
    """The seeds of origin ``j`` of a :class:`~gridmap.routing.roadgraph.Snaps` (None if it found no road):
    snap many candidate sites at once, search from each alone."""
    e = int(snaps.edge[j])
    if e < 0:
        return None
    f = float(snaps.fraction[j])
    tw = int(snaps.twin[j])
    walk = walk_time(float(snaps.distance_m[j]))
    to_end, to_start = leave_costs(float(g.time_s[e]), float(g.time_s[tw]), f, walk)
    nodes = [int(g.edge_v[e])]
    costs = [to_end]
    if tw >= 0:
        nodes.append(int(g.edge_v[tw]))
        costs.append(to_start)
    return Seeds(np.array(nodes, dtype=np.int64), np.array(costs), np.array([e]), np.array([tw]), np.array([f]),
                 np.array([walk]))


def node_times(g: RoadGraph, seeds: Seeds, horizon_s: float = np.inf) -> np.ndarray:
    """Travel time (s) from the nearest seed to every node: one multi-source Dijkstra, O((V + E) log V)."""
    dist = np.full(g.n_nodes, np.inf)
    size = g.n_edges + len(seeds.nodes) + 8
    _dijkstra.multi_source_times(g.indptr, g.adj, g.adj_w, seeds.nodes, seeds.costs, float(horizon_s), dist,
                                 np.zeros(size), np.zeros(size, dtype=np.int64))
    return dist


class Targets:
    """Destinations snapped to their road edges once, then timed against any number of origin sets.

    Parameters
    ----------
    g : the road graph (EPSG:4549).
    x, y : destination coordinates (EPSG:4549).
    max_snap_m : destinations farther than this from a road are unreachable (+inf).
    """

    def __init__(self, g: RoadGraph, x: npt.ArrayLike, y: npt.ArrayLike, max_snap_m: float = 500.0) -> None:
        s = g.snap(x, y, max_snap_m)
        self._init(g, s.edge, s.twin, s.fraction, s.distance_m)

    @classmethod
    def on_edges(cls, g: RoadGraph, edge: np.ndarray, fraction: np.ndarray) -> Targets:
        """Destinations lying on given edges at given fractions (no snapping, no walk)."""
        self = cls.__new__(cls)
        edge = np.asarray(edge, dtype=np.int64)
        self._init(g, edge, g.twin[edge], np.asarray(fraction, dtype=np.float64), np.zeros(len(edge)))
        return self

    def _init(self, g: RoadGraph, edge: np.ndarray, twin: np.ndarray, fraction: np.ndarray,
              distance_m: np.ndarray) -> None:
        self.n = len(edge)
        self.ok = edge >= 0
        self.edge = edge[self.ok]
        self.fraction = fraction[self.ok]
        self.twin = twin[self.ok]
        self.walk_s = walk_time(distance_m[self.ok])
        self.u = g.edge_u[self.edge]
        has = self.twin >= 0
        # the road parts only: the walk is added after the search (ETA = node time + part + walk)
        self.part, tw_part = reach_costs(g.time_s[self.edge], g.time_s[np.maximum(self.twin, 0)], self.fraction, 0.0)
        self.tw_u = np.where(has, g.edge_u[np.maximum(self.twin, 0)], 0)
        self.tw_part = np.where(has, tw_part, np.inf)
        self.has_twin = has
        # targets grouped by their edge and by their twin (CSR over edge ids): the targets on an origin's own
        # road are then found in O(1) per origin, not by a scan of all targets
        m = g.n_edges
        self._groups = []
        for key, frac in ((self.edge, self.fraction), (self.twin, 1.0 - self.fraction)):
            sel = np.flatnonzero(key >= 0)
            order = sel[np.argsort(key[sel], kind="stable")]
            ptr = np.zeros(m + 1, dtype=np.int64)
            np.cumsum(np.bincount(key[sel], minlength=m), out=ptr[1:])
            self._groups.append((order, ptr, frac))

    def times(self, g: RoadGraph, seeds: Seeds, horizon_s: float = np.inf) -> np.ndarray:
        """Travel time (s) from the nearest origin to each destination (+inf beyond ``horizon_s``)."""
        dist = node_times(g, seeds, horizon_s)
        return self.times_from(g, dist, seeds, horizon_s)

    def times_from(self, g: RoadGraph, dist: np.ndarray, seeds: Seeds, horizon_s: float = np.inf) -> np.ndarray:
        """As :meth:`times`, given the node times of ``seeds`` (to reuse one search for several target sets)."""
        best = dist[self.u] + self.part
        alt = np.where(self.has_twin, dist[self.tw_u] + self.tw_part, np.inf)
        best = np.minimum(best, alt)
        if len(seeds.edge):  # an origin on the destination's own edge, before it in the driving direction
            self._on_own_edge(g, seeds, best)
        out = np.full(self.n, np.inf)
        out[self.ok] = best + self.walk_s
        out[out > horizon_s] = np.inf
        return out

    def _on_own_edge(self, g: RoadGraph, seeds: Seeds, best: np.ndarray) -> None:
        """Lower ``best`` where an origin sits on a target's own edge (or twin) before it.

        O(S + H) for S origins and H targets sharing a road with one (vectorised over both)."""
        has = seeds.twin >= 0
        oe = np.concatenate([seeds.edge, seeds.twin[has]])
        of = np.concatenate([seeds.fraction, 1.0 - seeds.fraction[has]])
        ow = np.concatenate([seeds.walk_s, seeds.walk_s[has]])
        for order, ptr, tfrac in self._groups:
            lo = ptr[oe]
            cnt = ptr[oe + 1] - lo
            if not cnt.any():
                continue
            k = np.repeat(np.arange(len(oe)), cnt)
            pos = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(len(k))
            tgt = order[pos]
            fd = tfrac[tgt]
            cand = np.where(of[k] <= fd, ow[k] + along_time(g.time_s[oe[k]], of[k], fd), np.inf)
            np.minimum.at(best, tgt, cand)


def edge_samples(g: RoadGraph, spacing_m: float = 25.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points every ``spacing_m`` metres along each road (one of each two-way pair), both ends included.

    Returns (edge index, fraction along it, point coordinates (k, 2) in EPSG:4549).
    """
    keep = np.flatnonzero((g.twin < 0) | (np.arange(g.n_edges) < g.twin))
    n_pts = np.maximum(np.ceil(g.lengths_geom[keep] / spacing_m).astype(np.int64), 1) + 1
    edge = np.repeat(keep, n_pts)
    starts = np.repeat(np.cumsum(n_pts) - n_pts, n_pts)
    k = np.arange(len(edge)) - starts
    frac = k / np.repeat(n_pts - 1, n_pts)
    pts = shapely.line_interpolate_point(g.geoms[edge], frac, normalized=True)
    return edge, frac, shapely.get_coordinates(pts)
