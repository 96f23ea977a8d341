"""A contraction hierarchy of the road graph, and the team buckets that make k-nearest queries cheap.

The :class:`Hierarchy` is a cache of a :class:`~gridmap.routing.roadgraph.RoadGraph` (itself a cache of
PostGIS): built from the graph's edges at any time (0.04 s for the sample street, 18-20 s of CPU for
the 250,000-node benchmark city; docs/benchmarks.md), never stored. :class:`Buckets` keeps, for each team
slot (a team's position seen from one end of its road edge, see :mod:`gridmap.routing.team_index`), the
nodes its upward search reaches and at what cost; a position update only marks the slot, and the search
is run, in one compiled batch, the next time a hierarchy query needs it.

The search API a team index uses: :meth:`Buckets.nearest` (the k nearest eligible teams of a point),
:meth:`Hierarchy.path_via` (the route of a team it met), :meth:`Hierarchy.search_up`, :meth:`Hierarchy.distance`
and :meth:`Hierarchy.path_edges`. The kernels are in :mod:`gridmap.routing._kernels.ch`, with why they are
written here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmap.routing._kernels import ch as _ch
from gridmap.routing.roadgraph import RoadGraph


def _csr(n: int, key: np.ndarray, *cols: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.argsort(key, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(ptr, key + 1, 1)
    np.cumsum(ptr, out=ptr)
    return (ptr, *(np.ascontiguousarray(c[order]) for c in cols))


@dataclass(frozen=True)
class HierarchyStats:
    nodes: int
    arcs: int  # original arcs after removing loops and parallel duplicates
    shortcuts: int
    upward_arcs: int
    build_s: float


class Hierarchy:
    """Contraction hierarchy of a road graph's travel times (EPSG:4549 graph, seconds).

    Parameters
    ----------
    graph : the road graph.
    max_settle, sim_settle : witness-search limits while contracting / estimating priorities (bigger
        limits: fewer shortcuts, slower build; the answers are exact either way).
    max_update_degree : after a contraction, re-estimate the priorities only of neighbours with at most
        this many arcs; denser ones are re-estimated lazily when they come up. The defaults build the
        250,000-node benchmark city in ~20 s of CPU with the same search spaces as limits 5x larger
        (~30 s; measured with scripts/bench_dispatch.py's city).

    Examples
    --------
    >>> import numpy as np, shapely
    >>> from gridmap.routing.roadgraph import RoadGraph
    >>> xy = np.array([[0.0, 0.0], [100.0, 0.0], [200.0, 0.0]])
    >>> u, v = np.array([0, 1, 1, 2]), np.array([1, 2, 0, 1])
    >>> geoms = shapely.linestrings(np.stack([xy[u], xy[v]], axis=1))
    >>> g = RoadGraph(np.arange(3), xy, u, v, np.full(4, 100.0), np.array([10.0, 10.0, 12.0, 12.0]), geoms)
    >>> h = Hierarchy(g)
    >>> h.distance(0, 2), h.distance(2, 0)
    (20.0, 24.0)
    >>> [int(e) for e in h.path_edges(0, 2)]
    [0, 1]
    """

    def __init__(self, graph: RoadGraph, *, max_settle: int = 100, sim_settle: int = 30,
                 max_update_degree: int = 8) -> None:
        t0 = time.perf_counter()
        g = graph
        n = g.n_nodes
        keep = g.edge_u != g.edge_v  # a loop never shortens a path
        eidx = np.flatnonzero(keep)
        u, v, w = g.edge_u[eidx], g.edge_v[eidx], g.time_s[eidx]
        order = np.lexsort((w, v, u))  # parallel arcs: keep the fastest
        u, v, w, eidx = u[order], v[order], w[order], eidx[order]
        first = np.r_[True, (u[1:] != u[:-1]) | (v[1:] != v[:-1])]
        u, v, w, eidx = u[first], v[first], w[first], eidx[first]
        (rank, fwd_tail, fwd_head, fwd_arc, bwd_node, bwd_from, bwd_arc,
         arc_tail, arc_head, arc_w, arc_c1, arc_c2, arc_orig, arc_hops) = _ch.contract(
            n, u.astype(np.int64), v.astype(np.int64), w.astype(np.float64), eidx.astype(np.int64),
            max_settle, sim_settle, max_update_degree)
        self.graph = g
        self.rank = rank
        self.arc_tail, self.arc_head, self.arc_w = arc_tail, arc_head, arc_w
        self.arc_c1, self.arc_c2, self.arc_orig, self.arc_hops = arc_c1, arc_c2, arc_orig, arc_hops
        # The searches number nodes by rank, highest first: every upward search ends among the top few
        # thousand nodes, whose arcs then sit together in memory (2x faster searches on the 250,000-node
        # city than in the road graph's order). ``inner[v]`` is road-graph node v's number here.
        self.inner = (n - 1 - rank).astype(np.int64)
        inn = self.inner
        # upward arcs from v (v -> head, rank up) and into v (from -> v, rank up), as CSR on v
        self.f_ptr, self.f_nbr, self.f_arc = _csr(n, inn[fwd_tail], inn[fwd_head].astype(np.int32), fwd_arc)
        self.f_w = arc_w[self.f_arc]
        self.b_ptr, self.b_nbr, self.b_arc = _csr(n, inn[bwd_node], inn[bwd_from].astype(np.int32), bwd_arc)
        self.b_w = arc_w[self.b_arc]
        self.stats = HierarchyStats(n, len(u), len(arc_tail) - len(u), len(fwd_tail) + len(bwd_node),
                                    time.perf_counter() - t0)
        # scratch for the searches (one query at a time: callers hold a lock)
        self._dist = np.zeros(n)
        self._stamp = np.zeros(n, dtype=np.int64)
        self._pred_arc = np.full(n, -1, dtype=np.int64)
        self._pred_node = np.full(n, -1, dtype=np.int64)
        self._dist2 = np.zeros(n)
        self._stamp2 = np.zeros(n, dtype=np.int64)
        self._pred_arc2 = np.full(n, -1, dtype=np.int64)
        self._pred_node2 = np.full(n, -1, dtype=np.int64)
        self._cur = 0
        self._cur2 = 0
        heap = max(1024, 4 * int(max(np.diff(self.f_ptr).max(initial=0), np.diff(self.b_ptr).max(initial=0))) * 64)
        self._hk = np.zeros(heap)
        self._hv = np.zeros(heap, dtype=np.int64)
        self._space_node = np.zeros(max(1024, n // 4 + 16), dtype=np.int64)
        self._space_d = np.zeros(max(1024, n // 4 + 16))

    # -- upward searches ---------------------------------------------------------------------------
    def search_up(self, nodes: npt.ArrayLike, costs: npt.ArrayLike, *, forward: bool, horizon: float = np.inf,
                  second: bool = False, stop: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """Upward search (from road-graph nodes if ``forward``, else to them); returns (nodes, distances)
        settled, the nodes in the hierarchy's own numbering. With ``stop`` (in the hierarchy's numbering)
        the search ends once that node is settled. ``second`` keeps the search in the second set of
        scratch arrays, so that a forward and a backward search can be read together (:meth:`up_arcs`,
        :meth:`down_arcs`)."""
        nodes = self.inner[np.asarray(nodes, dtype=np.int64)]
        costs = np.asarray(costs, dtype=np.float64)
        dist, stamp, cur, pa, pn = self._new_search(second=second)
        rel = (self.f_ptr, self.f_nbr, self.f_w, self.f_arc) if forward else (self.b_ptr, self.b_nbr, self.b_w, self.b_arc)
        stall = (self.b_ptr, self.b_nbr, self.b_w) if forward else (self.f_ptr, self.f_nbr, self.f_w)
        while True:
            got = _ch.up_search(*rel, *stall, nodes, costs, horizon, dist, stamp, cur, pa, pn,
                                self._hk, self._hv, self._space_node, self._space_d, stop)
            if got >= 0:
                return self._space_node[:got].copy(), self._space_d[:got].copy()
            self._grow_scratch()

    def _new_search(self, *, second: bool = False) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
        """Scratch of a new search: (dist, stamp, stamp value of this search, pred_arc, pred_node); a node's
        dist and preds are valid where its stamp equals the search's (no clearing between searches)."""
        if second:
            self._cur2 += 1
            return self._dist2, self._stamp2, self._cur2, self._pred_arc2, self._pred_node2
        self._cur += 1
        return self._dist, self._stamp, self._cur, self._pred_arc, self._pred_node

    def _grow_scratch(self) -> None:
        self._hk = np.zeros(2 * len(self._hk))
        self._hv = np.zeros(2 * len(self._hv), dtype=np.int64)
        self._space_node = np.zeros(2 * len(self._space_node), dtype=np.int64)
        self._space_d = np.zeros(2 * len(self._space_d))

    def distance(self, s: int, t: int) -> float:
        """Shortest travel time from node s to node t (inf if there is no path): a test and notebook aid."""
        fn, fd = self.search_up([s], [0.0], forward=True)
        bn, bd = self.search_up([t], [0.0], forward=False)
        common, i, j = np.intersect1d(fn, bn, assume_unique=True, return_indices=True)
        return float((fd[i] + bd[j]).min()) if len(common) else float("inf")

    def path_edges(self, s: int, t: int) -> np.ndarray:
        """The original road edges of a shortest path from node s to node t (empty if s == t or none)."""
        fn, fd = self.search_up([s], [0.0], forward=True, second=True)
        bn, bd = self.search_up([t], [0.0], forward=False)
        common, i, j = np.intersect1d(fn, bn, assume_unique=True, return_indices=True)
        if not len(common):
            return np.empty(0, dtype=np.int64)
        meet = int(common[np.argmin(fd[i] + bd[j])])
        return self.unpack(self.up_arcs(meet, second=True) + self.down_arcs(meet))

    def path_via(self, source: int, source_cost: float, meet: int) -> np.ndarray:
        """The original road edges from road-graph node ``source`` up to ``meet`` (hierarchy numbering) and
        down to the target of the last backward search (e.g. :meth:`Buckets.nearest`'s): the route of a
        team that search met at ``meet``. The forward half is searched again, with predecessors."""
        self.search_up([source], [source_cost], forward=True, second=True, stop=meet)
        return self.unpack(self.up_arcs(meet, second=True) + self.down_arcs(meet))

    def up_arcs(self, meet: int, *, second: bool = True) -> list[int]:
        """CH arcs from the last forward search's source up to ``meet`` (hierarchy numbering), in order."""
        pa, pn = (self._pred_arc2, self._pred_node2) if second else (self._pred_arc, self._pred_node)
        arcs = []
        node = meet
        while pa[node] >= 0:
            arcs.append(int(pa[node]))
            node = int(pn[node])
        arcs.reverse()
        return arcs

    def down_arcs(self, meet: int) -> list[int]:
        """CH arcs from ``meet`` (hierarchy numbering) down to the last backward search's target, in order."""
        pa, pn = self._pred_arc, self._pred_node
        arcs = []
        node = meet
        while pa[node] >= 0:
            arcs.append(int(pa[node]))
            node = int(pn[node])
        return arcs

    def unpack(self, arcs: npt.ArrayLike) -> np.ndarray:
        """The original road edges of a sequence of CH arcs, in order."""
        arcs = np.asarray(arcs, dtype=np.int64)
        out = np.empty(int(self.arc_hops[arcs].sum()), dtype=np.int64)
        got = _ch.unpack(arcs, len(arcs), self.arc_c1, self.arc_c2, self.arc_orig, out)
        assert got == len(out)
        return out


class MetTeams:
    """Per team, what the last :meth:`Buckets.nearest` query met: its best ETA, by which slot, at which
    meeting node (hierarchy numbering). Only teams with ``stamp == query`` were met by that query."""

    def __init__(self, capacity: int) -> None:
        self.eta = np.zeros(capacity)
        self.slot = np.full(capacity, -1, dtype=np.int64)
        self.meet = np.full(capacity, -1, dtype=np.int64)
        self.stamp = np.zeros(capacity, dtype=np.int64)
        self.query = 0

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` teams (what was met is kept)."""
        for name, fill in (("eta", 0.0), ("slot", -1), ("meet", -1), ("stamp", 0)):
            old = getattr(self, name)
            if capacity > len(old):
                arr = np.full(capacity, fill, dtype=old.dtype)
                arr[: len(old)] = old
                setattr(self, name, arr)

    def met(self, n: int) -> np.ndarray:
        """Mask of the teams 0..n-1 the last query met."""
        return self.stamp[:n] == self.query


class Buckets:
    """Per team slot, the nodes its upward search settles and the cost to each (Knopp et al.'s buckets).

    A slot is set (``set``) or cleared (``clear``) in O(1): its generation goes up, which retires its old
    entries, and it is queued. :meth:`refresh` runs the queued searches in one compiled batch and hangs
    the entries on an overlay (linked lists per node); when the overlay grows past a share of the
    static part, everything still current is packed into a CSR again (sorted by node, scanned
    contiguously by the queries).
    """

    # The overlay's entries, (re)allocated by _ov_alloc.
    ov_next: npt.NDArray[np.int64]
    ov_slot: npt.NDArray[np.int64]
    ov_d: npt.NDArray[np.float64]
    ov_gen: npt.NDArray[np.int64]
    ov_node: npt.NDArray[np.int64]

    def __init__(self, hierarchy: Hierarchy, n_slots: int = 512) -> None:
        self.h = hierarchy
        n = hierarchy.graph.n_nodes
        self.slot_gen = np.zeros(n_slots, dtype=np.int64)
        self._pending: dict[int, tuple[int, float]] = {}
        self.bk_ptr = np.zeros(n + 1, dtype=np.int64)
        self.bk_slot = np.zeros(0, dtype=np.int64)
        self.bk_d = np.zeros(0)
        self.bk_gen = np.zeros(0, dtype=np.int64)
        self.bk_node = np.zeros(0, dtype=np.int64)
        self.ov_head = np.full(n, -1, dtype=np.int64)
        self._ov_alloc(4096)
        self.ov_n = 0
        self.searches = 0  # slots searched so far (for the benchmark and the tests)
        #: measured cost of one slot's search (µs, a moving average): the team index's cost model reads it
        self.us_per_search = 20.0

    def _ov_alloc(self, cap: int) -> None:
        old = getattr(self, "ov_n", 0)
        for name, dtype in (("ov_next", np.int64), ("ov_slot", np.int64), ("ov_d", np.float64),
                            ("ov_gen", np.int64), ("ov_node", np.int64)):
            arr = np.zeros(cap, dtype=dtype)
            if old:
                arr[:old] = getattr(self, name)[:old]
            setattr(self, name, arr)

    def ensure_slots(self, n_slots: int) -> None:
        if n_slots > len(self.slot_gen):
            gen = np.zeros(max(n_slots, 2 * len(self.slot_gen)), dtype=np.int64)
            gen[: len(self.slot_gen)] = self.slot_gen
            self.slot_gen = gen

    def set(self, slot: int, node: int, cost: float) -> None:
        """Slot ``slot`` now hangs at road-graph node ``node`` with start cost ``cost``."""
        self.ensure_slots(slot + 1)
        self.slot_gen[slot] += 1
        self._pending[slot] = (int(self.h.inner[node]), cost)

    def clear(self, slot: int) -> None:
        if slot < len(self.slot_gen):
            self.slot_gen[slot] += 1
        self._pending.pop(slot, None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def entries(self) -> int:
        return len(self.bk_slot) + self.ov_n

    def refresh(self) -> int:
        """Run the queued slots' searches; returns how many were run."""
        if not self._pending:
            return 0
        slots = np.fromiter(self._pending, dtype=np.int64, count=len(self._pending))
        nodes = np.array([self._pending[s][0] for s in slots.tolist()], dtype=np.int64)
        costs = np.array([self._pending[s][1] for s in slots.tolist()], dtype=np.float64)
        h = self.h
        t0 = time.perf_counter()
        cap = max(4096, 512 * len(slots))
        while True:
            out_node = np.empty(cap, dtype=np.int64)
            out_slot = np.empty(cap, dtype=np.int64)
            out_d = np.empty(cap)
            # one search per slot, each with its own stamp: the kernel counts the stamps on from h._cur
            got, h._cur = _ch.fill_buckets(h.f_ptr, h.f_nbr, h.f_w, h.f_arc, h.b_ptr, h.b_nbr, h.b_w,
                                           slots, nodes, costs, np.inf, h._dist, h._stamp, h._cur,
                                           h._pred_arc, h._pred_node, h._hk, h._hv, h._space_node, h._space_d,
                                           out_node, out_slot, out_d)
            if got >= 0:
                break
            cap *= 4
            h._grow_scratch()
        self._pending.clear()
        self.searches += len(slots)
        per = (time.perf_counter() - t0) * 1e6 / len(slots)
        self.us_per_search += (per - self.us_per_search) * min(1.0, len(slots) / 256)
        if self.ov_n + got > len(self.ov_next):
            self._ov_alloc(max(2 * len(self.ov_next), self.ov_n + got))
        a, b = self.ov_n, self.ov_n + got
        self.ov_node[a:b] = out_node[:got]
        self.ov_slot[a:b] = out_slot[:got]
        self.ov_d[a:b] = out_d[:got]
        self.ov_gen[a:b] = self.slot_gen[out_slot[:got]]
        _ch.link_overlay(self.ov_head, self.ov_next, self.ov_node, a, got)
        self.ov_n = b
        if self.ov_n > max(20_000, len(self.bk_slot) // 2):
            self.compact()
        return len(slots)

    def nearest(self, seed_nodes: np.ndarray, seed_costs: np.ndarray, team_ok: np.ndarray, k: int,
                horizon_s: float, met: MetTeams, top_team: np.ndarray, top_eta: np.ndarray) -> tuple[int, int]:
        """The ``k`` nearest teams with ``team_ok`` (indexed by team: slot // 2) of a point reached from
        ``seed_nodes`` (road-graph nodes) at ``seed_costs``, up to ``horizon_s``: one backward upward search
        reading the buckets (queued slots are searched first).

        Writes the teams and ETAs, nearest first, to ``top_team``/``top_eta`` (length ``k``, -1/inf where
        fewer were found) and every team met, eligible or not, to ``met``. Returns (teams found, nodes
        settled). :meth:`Hierarchy.path_via` then gives a met team's route.
        """
        self.refresh()
        h = self.h
        while True:
            dist, stamp, cur, pred_arc, pred_node = h._new_search()
            found, settled = _ch.nearest_by_buckets(
                h.b_ptr, h.b_nbr, h.b_w, h.b_arc, h.f_ptr, h.f_nbr, h.f_w,
                h.inner[seed_nodes], seed_costs,
                self.bk_ptr, self.bk_slot, self.bk_d, self.bk_gen,
                self.ov_head, self.ov_next, self.ov_slot, self.ov_d, self.ov_gen,
                self.slot_gen, team_ok, k, horizon_s,
                dist, stamp, cur, pred_arc, pred_node, h._hk, h._hv,
                met.eta, met.slot, met.meet, met.stamp,
                top_team, top_eta,
            )
            if found >= 0:
                met.query = cur
                return int(found), int(settled)
            h._grow_scratch()  # the search outgrew its heap: again with twice the room, from the start

    def compact(self) -> None:
        """Pack every current entry (static and overlay) into the static CSR; empty the overlay."""
        n = self.h.graph.n_nodes
        live_s = self.bk_gen == self.slot_gen[self.bk_slot]
        o = slice(0, self.ov_n)
        live_o = self.ov_gen[o] == self.slot_gen[self.ov_slot[o]]
        node = np.concatenate([self.bk_node[live_s], self.ov_node[o][live_o]])
        slot = np.concatenate([self.bk_slot[live_s], self.ov_slot[o][live_o]])
        d = np.concatenate([self.bk_d[live_s], self.ov_d[o][live_o]])
        gen = np.concatenate([self.bk_gen[live_s], self.ov_gen[o][live_o]])
        self.bk_ptr, self.bk_node, self.bk_slot, self.bk_d, self.bk_gen = _csr(n, node, node, slot, d, gen)
        self.ov_head.fill(-1)
        self.ov_n = 0
