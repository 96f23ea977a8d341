"""The road network as the simulated teams drive it: places on edges, shortest paths, and the API's routes
read back as edges.

A team on the road is at an edge and a fraction along it (:class:`RoadPos`). Moving is a list of
:class:`Leg` s: part of an edge from one fraction to another at a speed (the edge's travel time scaled),
a walk in a straight line (from the road to a door and back), or a stop. Times are seconds of simulation
time. Shortest paths come from scipy's Dijkstra on the same graph, weights and one-way streets as the
dispatcher's (:class:`gridmap.routing.roadgraph.RoadGraph`); a team may turn round on a two-way road, as the
dispatcher assumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from gridmap.routing.roadgraph import RoadGraph, along_time, leave_costs, reach_costs


@dataclass(frozen=True)
class RoadPos:
    """A place on a directed edge: ``frac`` of the way from its start node."""

    edge: int
    frac: float


@dataclass
class Leg:
    """A piece of movement from ``t0`` to ``t1``: along ``edge`` from ``f0`` to ``f1`` (f0 <= f1), or (edge -1) a
    straight walk from ``xy0`` to ``xy1`` (a stop when they are equal). ``anchor`` is the road place a walk or
    stop belongs to (where the team left the road, or stands)."""

    t0: float
    t1: float
    edge: int = -1
    f0: float = 0.0
    f1: float = 0.0
    xy0: tuple[float, float] = (0.0, 0.0)
    xy1: tuple[float, float] = (0.0, 0.0)
    anchor: RoadPos | None = None
    kind: str = "drive"  # drive | patrol | walk | stop

    @property
    def on_road(self) -> bool:
        return self.edge >= 0


class SimRoads:
    """The dispatcher's road graph, with what the teams need to move on it."""

    def __init__(self, graph: RoadGraph) -> None:
        g = self.g = graph
        xy, which = shapely.get_coordinates(graph.geoms, return_index=True)
        counts = np.bincount(which, minlength=g.n_edges)
        self.ptr = np.zeros(g.n_edges + 1, dtype=np.int64)
        np.cumsum(counts, out=self.ptr[1:])
        self.xy = xy
        seg = np.r_[0.0, np.hypot(*np.diff(xy, axis=0).T)]
        seg[self.ptr[:-1]] = 0.0
        cum = np.cumsum(seg)
        self.along = cum - np.repeat(cum[self.ptr[:-1]], counts)
        self.length = np.where(counts > 0, self.along[np.maximum(self.ptr[1:] - 1, 0)], 0.0)
        # the cheapest edge of each (u, v) pair: scipy's graph keeps one weight per pair
        order = np.lexsort((g.time_s, g.edge_v, g.edge_u))
        u, v = g.edge_u[order], g.edge_v[order]
        first = np.r_[True, (u[1:] != u[:-1]) | (v[1:] != v[:-1])]
        best = order[first]
        self.pair_edge = {(int(a), int(b)): int(e) for a, b, e in zip(g.edge_u[best], g.edge_v[best], best, strict=True)}
        w = np.maximum(g.time_s[best], 1e-6)  # scipy drops explicit zeros: a zero-time edge would vanish
        self.csr = csr_matrix((w, (g.edge_u[best], g.edge_v[best])), shape=(g.n_nodes, g.n_nodes))
        self.out_edges = [g.adj_edge[g.indptr[i]:g.indptr[i + 1]] for i in range(g.n_nodes)]

    # -- places ---------------------------------------------------------------------------------------------
    def point(self, pos: RoadPos) -> tuple[float, float]:
        """EPSG:4549 coordinates of a road place."""
        a, b = int(self.ptr[pos.edge]), int(self.ptr[pos.edge + 1])
        d = min(max(pos.frac, 0.0), 1.0) * self.length[pos.edge]
        al = self.along[a:b]
        i = int(np.searchsorted(al, d, side="right")) - 1
        i = min(max(i, 0), b - a - 2)
        seg = al[i + 1] - al[i]
        r = (d - al[i]) / seg if seg > 0 else 0.0
        p, q = self.xy[a + i], self.xy[a + i + 1]
        return float(p[0] + r * (q[0] - p[0])), float(p[1] + r * (q[1] - p[1]))

    def snap(self, x: float, y: float) -> tuple[RoadPos, float, tuple[float, float]]:
        """The nearest road place to (x, y), the distance to it and its coordinates."""
        s = self.g.snap([float(x)], [float(y)], None)
        return RoadPos(int(s.edge[0]), float(s.fraction[0])), float(s.distance_m[0]), (float(s.x[0]), float(s.y[0]))

    def twin_pos(self, pos: RoadPos) -> RoadPos | None:
        t = int(self.g.twin[pos.edge])
        return None if t < 0 else RoadPos(t, 1.0 - pos.frac)

    def edge_time(self, e: int) -> float:
        return float(self.g.time_s[e])

    # -- paths ----------------------------------------------------------------------------------------------
    def seeds(self, pos: RoadPos) -> list[tuple[int, float, int]]:
        """The nodes a team at ``pos`` reaches first: (node, seconds, edge taken), along its edge or turning."""
        tw = int(self.g.twin[pos.edge])
        to_end, to_start = leave_costs(self.edge_time(pos.edge), self.edge_time(tw), pos.frac, 0.0)
        out = [(int(self.g.edge_v[pos.edge]), to_end, pos.edge)]
        if tw >= 0:
            out.append((int(self.g.edge_v[tw]), to_start, tw))
        return out

    def search(self, pos: RoadPos) -> SearchResult:
        """Shortest times from ``pos`` to every node (one Dijkstra per direction the team can set off in)."""
        seeds = self.seeds(pos)
        dist, pred = dijkstra(self.csr, indices=[s[0] for s in seeds], return_predecessors=True)
        total = dist + np.array([s[1] for s in seeds])[:, None]
        which = np.argmin(total, axis=0)
        return SearchResult(self, pos, seeds, total[which, np.arange(total.shape[1])], pred, which)

    def legs_along(self, pos: RoadPos, nodes_edges: list[int], end: RoadPos | None, t0: float,
                   speed_factor: float = 1.0, kind: str = "drive") -> list[Leg]:
        """Legs from ``pos``: the rest of its first edge (``nodes_edges[0]`` is ``pos.edge`` or its twin), then
        whole edges, then the part of ``end``'s edge up to ``end`` (None: stop at the last node)."""
        legs: list[Leg] = []
        t = t0
        for i, e in enumerate(nodes_edges):
            f0 = 0.0
            if i == 0:
                f0 = pos.frac if e == pos.edge else 1.0 - pos.frac
            dt_ = along_time(self.edge_time(e), f0, 1.0) / speed_factor
            legs.append(Leg(t, t + dt_, edge=e, f0=f0, f1=1.0, kind=kind))
            t += dt_
        if end is not None:
            f0 = 0.0
            if not nodes_edges:  # on the same edge, ahead
                f0 = pos.frac
            dt_ = max(along_time(self.edge_time(end.edge), f0, end.frac), 0.0) / speed_factor
            legs.append(Leg(t, t + dt_, edge=end.edge, f0=f0, f1=end.frac, kind=kind))
        return legs

    def route_edges(self, coords: np.ndarray) -> list[tuple[int, float, float]] | None:
        """A route's polyline (EPSG:4549, from the road foot to the road foot) read back as (edge, from, to)
        parts, merged per edge, in driving order; None if it does not follow connected edges."""
        parts: list[tuple[int, float, float]] = []
        for a, b in zip(coords[:-1], coords[1:], strict=True):
            if np.hypot(*(b - a)) < 0.05:
                continue
            mid = (a + b) / 2
            s = self.g.snap([float(mid[0])], [float(mid[1])], 2.0)
            e = int(s.edge[0])
            if e < 0:
                return None
            best = None
            for cand in (e, int(s.twin[0])):
                if cand < 0:
                    continue
                geom = self.g.geoms[cand]
                fa = shapely.line_locate_point(geom, shapely.Point(a), normalized=True)
                fb = shapely.line_locate_point(geom, shapely.Point(b), normalized=True)
                if fb > fa and (best is None or fb - fa > best[2] - best[1]):
                    best = (cand, float(fa), float(fb))
            if best is None:
                return None
            if parts and parts[-1][0] == best[0]:
                parts[-1] = (best[0], parts[-1][1], best[2])
            else:
                parts.append(best)
        for (e1, _, t1), (e2, f2, _) in zip(parts[:-1], parts[1:], strict=True):
            if t1 < 0.999 or f2 > 0.001 or self.g.edge_v[e1] != self.g.edge_u[e2]:
                return None
        return parts


@dataclass
class SearchResult:
    roads: SimRoads
    start: RoadPos
    seeds: list[tuple[int, float, int]]
    dist: np.ndarray
    pred: np.ndarray
    which: np.ndarray

    def edges_to(self, node: int) -> list[int]:
        """The edges from the start place to ``node``: the start's edge (or its twin), then whole edges."""
        k = int(self.which[node])
        pred = self.pred[k]
        nodes = [node]
        while nodes[-1] != self.seeds[k][0]:
            p = int(pred[nodes[-1]])
            if p < 0:
                raise ValueError(f"node {node} is not reachable")
            nodes.append(p)
        nodes.reverse()
        edges = [self.seeds[k][2]]
        edges += [self.roads.pair_edge[(a, b)] for a, b in zip(nodes[:-1], nodes[1:], strict=True)]
        return edges

    def plan_to(self, pos: RoadPos) -> Plan | None:
        """The quickest way from the start to a road place (on its edge or, on a two-way road, its twin)."""
        roads = self.roads
        best: Plan | None = None
        targets = [pos] + ([t] if (t := roads.twin_pos(pos)) is not None else [])
        starts = [self.start] + ([t] if (t := roads.twin_pos(self.start)) is not None else [])
        for end in targets:
            u = int(roads.g.edge_u[end.edge])
            via = float(self.dist[u] + reach_costs(roads.edge_time(end.edge), 0.0, end.frac, 0.0)[0])
            if np.isfinite(via) and (best is None or via < best.seconds):
                k = int(self.which[u])
                best = Plan(via, self.start if self.seeds[k][2] == self.start.edge else starts[-1], u, end)
            for st in starts:
                if st.edge == end.edge and st.frac <= end.frac:
                    direct = along_time(roads.edge_time(end.edge), st.frac, end.frac)
                    if best is None or direct < best.seconds:
                        best = Plan(direct, st, None, end)
        return best

    def legs(self, plan: Plan, t0: float, speed_factor: float = 1.0, kind: str = "drive") -> list[Leg]:
        edges = [] if plan.via_node is None else self.edges_to(plan.via_node)
        return self.roads.legs_along(plan.start, edges, plan.end, t0, speed_factor, kind)


@dataclass(frozen=True)
class Plan:
    """The quickest way to a road place: seconds, the direction the team sets off in (its place on its edge or
    the twin), the node it enters the target's edge from (None: straight along its own edge), the target."""

    seconds: float
    start: RoadPos
    via_node: int | None
    end: RoadPos
