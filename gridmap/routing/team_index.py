"""Nearest-responder ranking over the road network: who gets there first, and why.

The :class:`TeamIndex` keeps, next to a :class:`~gridmap.routing.roadgraph.RoadGraph`, the live state of every
team (position snapped to a road edge, status, skills, workload, grid) in flat arrays, plus the team
"slots" hung on graph nodes as doubly linked lists, so a position update costs one snap and O(1) list
surgery, never a rebuild. A query runs one of two compiled searches, both stopping as soon as the k best
teams are certain:

- a reverse Dijkstra from the event (:mod:`gridmap.routing._kernels.dijkstra`): cheapest when eligible
  teams are dense, since it settles only the nodes nearer than the k-th team;
- with a :class:`~gridmap.routing.hierarchy.Hierarchy` attached (:meth:`TeamIndex.use_hierarchy`), a
  backward upward search of the contraction hierarchy that reads the teams' buckets
  (:meth:`~gridmap.routing.hierarchy.Buckets.nearest`): its cost does not grow with the k-th team's
  distance, so it wins when eligible teams are few and spread thin.

Statuses cross the index's public methods as names (:data:`TEAM_STATUSES`); the small integers it stores
for its kernels (:data:`STATUS_CODES`) stay inside.

``method="auto"`` picks by the expected work of each (see :meth:`TeamIndex.rank`); both give the same
teams and ETAs (the tests check it on the real network).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import shapely
from shapely.ops import substring

from gridmap.core.vocabulary import TEAM_STATUSES
from gridmap.routing._kernels import dijkstra as _dijkstra
from gridmap.routing._kernels import routes as _routes
from gridmap.routing.hierarchy import Buckets, Hierarchy, MetTeams
from gridmap.routing.roadgraph import RoadGraph, Snaps, along_time, leave_costs, reach_costs, walk_time

#: A team's status, by name: what the index's public methods take and return.
#: The same statuses as the small integers the index stores and its compiled kernels compare (0 = available):
#: internal to the index (and to benchmarks that build their own arrays), never passed across layers.
STATUS_CODES = {name: code for code, name in enumerate(TEAM_STATUSES)}
STATUS_NAMES = dict(enumerate(TEAM_STATUSES))
#: Speed assumed for the straight-line fallback (points far from any road), m/s (≈ 18 km/h through town).
FALLBACK_SPEED = 5.0
#: How many ineligible teams met by a search are kept, nearest first, to be named as passed over.
_MAX_PASSED_OVER = 32


@dataclass
class Candidate:
    team: str
    eta_s: float
    distance_m: float
    method: str  # "road" | "straight_line"
    rank: int | None = None
    picked: bool = False
    reasons: list[str] = field(default_factory=list)
    route: shapely.LineString | None = None  # EPSG:4549


@dataclass
class Ranking:
    picked: list[Candidate]
    passed_over: list[Candidate]
    event_snap_m: float
    method: str
    settled_nodes: int
    note: str | None = None
    search: str = "dijkstra"  # "dijkstra" | "hierarchy" | "none" (straight-line fallback)


class TeamIndex:
    """Live team positions on a road graph, and the k-nearest-team query.

    Parameters
    ----------
    graph : the road graph (EPSG:4549).
    skills : the skill vocabulary (at most 63 names).
    stale_after_s : a position older than this is stale (default 5 minutes).
    max_snap_m : points farther than this from any road use the straight-line fallback.
    """

    # Per-team state (index i) and per-slot state (2 i and 2 i + 1), flat arrays (re)allocated by _alloc.
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    pos_at: npt.NDArray[np.float64]
    status: npt.NDArray[np.int8]
    skills: npt.NDArray[np.int64]
    workload: npt.NDArray[np.int64]
    grid: npt.NDArray[np.int64]
    edge: npt.NDArray[np.int64]
    frac: npt.NDArray[np.float64]
    walk_s: npt.NDArray[np.float64]
    slot_node: npt.NDArray[np.int64]
    slot_cost: npt.NDArray[np.float64]
    slot_next: npt.NDArray[np.int64]
    slot_prev: npt.NDArray[np.int64]
    _team_eta: npt.NDArray[np.float64]
    _team_slot: npt.NDArray[np.int64]
    _team_stamp: npt.NDArray[np.int64]

    def __init__(self, graph: RoadGraph, skills: list[str], *, stale_after_s: float = 300.0,
                 max_snap_m: float = 500.0, capacity: int = 256) -> None:
        if len(skills) > 63:
            raise ValueError("at most 63 skills")
        self.g = graph
        self.skill_bit = {s: 1 << i for i, s in enumerate(sorted(set(skills)))}
        self.stale_after_s = stale_after_s
        self.max_snap_m = max_snap_m
        n, m = graph.n_nodes, graph.n_edges
        self.head = np.full(n, -1, dtype=np.int64)
        self._dist = np.zeros(n)
        self._stamp = np.zeros(n, dtype=np.int64)
        self._pred = np.full(n, -1, dtype=np.int64)
        self._heap_k = np.zeros(m + n + 8)
        self._heap_v = np.zeros(m + n + 8, dtype=np.int64)
        self._cur = 0
        self.codes: list[str] = []
        self.index: dict[str, int] = {}
        self._edge_teams: dict[int, set[int]] = {}
        self._grid_ids: dict[str, int] = {}
        self.hierarchy: Hierarchy | None = None
        self.buckets: Buckets | None = None
        self._off_road: np.ndarray | None = None
        self._met = MetTeams(capacity)  # what the last hierarchy query met, per team
        self._alloc(capacity)

    # -- team state -----------------------------------------------------------------------------
    def _alloc(self, cap: int) -> None:
        old = getattr(self, "_cap", 0)

        def grow(name: str, fill: float, dtype: npt.DTypeLike) -> None:
            arr = np.full(cap if not name.startswith("slot") else 2 * cap, fill, dtype=dtype)
            if old:
                prev = getattr(self, name)
                arr[: len(prev)] = prev
            setattr(self, name, arr)

        grow("x", np.nan, np.float64)
        grow("y", np.nan, np.float64)
        grow("pos_at", -np.inf, np.float64)  # epoch seconds
        grow("status", STATUS_CODES["off_duty"], np.int8)
        grow("skills", 0, np.int64)
        grow("workload", 0, np.int64)
        grow("grid", -1, np.int64)
        grow("edge", -1, np.int64)
        grow("frac", 0.0, np.float64)
        grow("walk_s", 0.0, np.float64)
        grow("slot_node", -1, np.int64)
        grow("slot_cost", 0.0, np.float64)
        grow("slot_next", -1, np.int64)
        grow("slot_prev", -1, np.int64)
        grow("_team_eta", 0.0, np.float64)
        grow("_team_slot", -1, np.int64)
        grow("_team_stamp", 0, np.int64)
        self._met.grow(cap)
        self._cap = cap
        if self.buckets is not None:
            self.buckets.ensure_slots(2 * cap)
        self.grid_codes: list[str] = getattr(self, "grid_codes", [])

    def _grid_id(self, code: str | None) -> int:
        if code is None:
            return -1
        if not hasattr(self, "_grid_ids"):
            self._grid_ids = {}
        if code not in self._grid_ids:
            self._grid_ids[code] = len(self.grid_codes)
            self.grid_codes.append(code)
        return self._grid_ids[code]

    def use_hierarchy(self, hierarchy: Hierarchy | None) -> None:
        """Attach a contraction hierarchy of this index's graph (None detaches it): every team slot is
        queued for its bucket search, run on the first hierarchy query."""
        if hierarchy is not None and hierarchy.graph is not self.g:
            raise ValueError("the hierarchy was built for another road graph")
        self.hierarchy = hierarchy
        self.buckets = Buckets(hierarchy, 2 * self._cap) if hierarchy is not None else None
        if self.buckets is not None:
            for slot in np.flatnonzero(self.slot_node >= 0).tolist():
                self.buckets.set(slot, int(self.slot_node[slot]), float(self.slot_cost[slot]))

    def refresh_buckets(self) -> int:
        """Run the bucket searches of the slots moved since the last refresh (a no-op without a
        hierarchy); a hierarchy query does it anyway, this moves the cost out of the query."""
        return self.buckets.refresh() if self.buckets is not None else 0

    def skill_mask(self, skills: Iterable[str] | None) -> int:
        mask = 0
        for s in skills or ():
            bit = self.skill_bit.get(s)
            if bit is None:
                raise KeyError(f"unknown skill {s!r}; known: {', '.join(self.skill_bit)}")
            mask |= bit
        return mask

    def team_index(self, code: str) -> int:
        i = self.index.get(code)
        if i is None:
            i = len(self.codes)
            if i >= self._cap:
                self._alloc(self._cap * 2)
            self.codes.append(code)
            self.index[code] = i
        return i

    def _unhang(self, i: int) -> None:
        for s in (2 * i, 2 * i + 1):
            node = self.slot_node[s]
            if node < 0:
                continue
            p, nx = self.slot_prev[s], self.slot_next[s]
            if p >= 0:
                self.slot_next[p] = nx
            else:
                self.head[node] = nx
            if nx >= 0:
                self.slot_prev[nx] = p
            self.slot_node[s] = self.slot_next[s] = self.slot_prev[s] = -1
            if self.buckets is not None:
                self.buckets.clear(s)
        e = self.edge[i]
        if e >= 0:
            for ee in (e, self.g.twin[e]):
                if ee >= 0 and ee in self._edge_teams:
                    self._edge_teams[ee].discard(i)

    def _hang(self, s: int, node: int, cost: float) -> None:
        self.slot_node[s] = node
        self.slot_cost[s] = cost
        first = self.head[node]
        self.slot_next[s] = first
        self.slot_prev[s] = -1
        if first >= 0:
            self.slot_prev[first] = s
        self.head[node] = s
        if self.buckets is not None:
            self.buckets.set(s, node, cost)

    def set_team(self, code: str, *, status: str | None = None, skills: Iterable[str] | None = None,
                 workload: int | None = None,
                 grid: str | None = None) -> int:
        """Create or update a team's non-spatial state."""
        if status is not None and status not in STATUS_CODES:
            raise ValueError(f"status {status!r} is not one of {', '.join(TEAM_STATUSES)}")
        i = self.team_index(code)
        if status is not None:
            self.status[i] = STATUS_CODES[status]
        if skills is not None:
            self.skills[i] = self.skill_mask(skills)
        if workload is not None:
            self.workload[i] = workload
        if grid is not None:
            self.grid[i] = self._grid_id(grid)
        return i

    def status_of(self, code: str) -> str:
        """A known team's status, by name (KeyError for an unknown code)."""
        return STATUS_NAMES[int(self.status[self.index[code]])]

    def workload_of(self, code: str) -> int:
        """A known team's workload (KeyError for an unknown code)."""
        return int(self.workload[self.index[code]])

    def move_teams(self, codes: Iterable[str], x: npt.ArrayLike, y: npt.ArrayLike, at: npt.ArrayLike) -> None:
        """Update positions (EPSG:4549) of many teams at once (one vectorised snap)."""
        idx = np.array([self.team_index(c) for c in codes], dtype=np.int64)
        if len(idx) == 0:
            return
        self._off_road = None
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        at = np.asarray(at)  # one time for all, or one per team
        snaps = self.g.snap(x, y, self.max_snap_m)
        time_s, edge_v = self.g.time_s, self.g.edge_v
        for j, i in enumerate(idx.tolist()):
            self._unhang(i)
            self.x[i], self.y[i], self.pos_at[i] = x[j], y[j], float(at[j] if at.ndim else at)
            e = int(snaps.edge[j])
            self.edge[i] = e
            if e < 0:
                continue
            f = float(snaps.fraction[j])
            walk = walk_time(float(snaps.distance_m[j]))
            self.frac[i] = f
            self.walk_s[i] = walk
            t = int(snaps.twin[j])
            # slot 2i: the team seen from its edge's end; slot 2i + 1: from its twin's end (two-way roads)
            to_end, to_start = leave_costs(time_s[e], time_s[t], f, walk)
            self._hang(2 * i, int(edge_v[e]), to_end)
            self._edge_teams.setdefault(e, set()).add(i)
            if t >= 0:
                self._hang(2 * i + 1, int(edge_v[t]), to_start)
                self._edge_teams.setdefault(t, set()).add(i)

    def remove_team(self, code: str) -> None:
        i = self.index.get(code)
        if i is not None:
            self._unhang(i)
            self.edge[i] = -1
            self.status[i] = STATUS_CODES["off_duty"]
            self._off_road = None

    def off_road(self) -> np.ndarray:
        """Teams with a position too far from any road to be routed (cached until a team moves)."""
        if self._off_road is None:
            n = len(self.codes)
            self._off_road = np.flatnonzero((self.edge[:n] < 0) & np.isfinite(self.x[:n]))
        return self._off_road

    # -- the query ------------------------------------------------------------------------------
    def eligibility(self, now: float, required: int, *,
                    exclude: Iterable[str] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Masks over the team indexes: (eligible, available, fresh position, skill match) at ``now`` for the
        skill mask ``required`` (:meth:`skill_mask`; 0: any); the ``exclude`` codes are not eligible."""
        n = len(self.codes)
        available = self.status[:n] == STATUS_CODES["available"]
        fresh = (now - self.pos_at[:n]) <= self.stale_after_s
        skilled = (self.skills[:n] & required) != 0 if required else np.ones(n, dtype=bool)
        return _restricted(available & fresh & skilled, None, self._mask_of(exclude)), available, fresh, skilled

    def nearest_by_distance(self, x: float, y: float, ok: np.ndarray, k: int) -> np.ndarray:
        """Indexes of the ``k`` teams of ``ok`` (a mask) nearest to (x, y) in a straight line, nearest first
        (ties by index): the candidates of a straight-line dispatch rule (Resgrid's ClosestUnit, TicketsCAD's
        distance sort), which then takes their road ETAs and routes from :meth:`rank` with ``only``."""
        n = len(self.codes)
        cand = np.flatnonzero(ok[:n] & np.isfinite(self.x[:n]))
        d = np.hypot(self.x[cand] - x, self.y[cand] - y)
        return cand[np.lexsort((cand, d))[:k]]

    def _team_on_edge_eta(self, e: int, f_event: float, walk_event: float) -> dict[int, tuple[float, int, float, float]]:
        """Teams on the event's own edge (or its twin), before the event in the driving direction.

        Returns team -> (ETA, edge, team fraction, event fraction) along that edge.
        """
        out: dict[int, tuple[float, int, float, float]] = {}
        for edge, fe in ((e, f_event), (int(self.g.twin[e]), 1.0 - f_event)):
            if edge < 0:
                continue
            for i in self._edge_teams.get(edge, ()):
                f_team = self.frac[i] if self.edge[i] == edge else 1.0 - self.frac[i]
                if f_team <= fe:
                    eta = self.walk_s[i] + along_time(self.g.time_s[edge], f_team, fe) + walk_event
                    if i not in out or eta < out[i][0]:
                        out[i] = (eta, edge, f_team, fe)
        return out

    #: Cost model of the automatic choice between the two searches (µs; measured by bench_dispatch on this
    #: machine: a Dijkstra settles a node in ~0.2 µs, a hierarchy query without routes takes ~50-150 µs; the
    #: cost of a queued bucket search is measured as it runs, see ``Buckets.us_per_search``). Only the
    #: choice depends on them, never an answer.
    DIJKSTRA_US_PER_NODE = 0.2
    HIERARCHY_QUERY_US = 150.0

    def choose_search(self, n_eligible: int, k: int) -> str:
        """'dijkstra' or 'hierarchy' for a query wanting k of ``n_eligible`` teams (see the class doc).

        A Dijkstra settles about ``nodes * k / eligible`` nodes before the k-th team (teams spread
        evenly); the hierarchy costs a near-constant query plus the searches of the slots moved since
        the last one.
        """
        if self.hierarchy is None or self.buckets is None:  # both set, or both None, by use_hierarchy()
            return "dijkstra"
        nodes = self.g.n_nodes * k / max(n_eligible, 1)
        hier = self.HIERARCHY_QUERY_US + self.buckets.us_per_search * self.buckets.pending
        return "hierarchy" if hier < self.DIJKSTRA_US_PER_NODE * nodes else "dijkstra"

    def rank(self, x: float, y: float, *, now: float, skills: Sequence[str] = (), k: int = 5,
             max_eta_s: float = 1800.0,
             grid: str | None = None, tie_window_s: float = 0.0, with_routes: bool = True,
             method: str = "auto", only: np.ndarray | None = None, only_reason: str = "not a candidate",
             exclude: Iterable[str] = (), exclude_reason: str = "excluded") -> Ranking:
        """The k teams that reach (x, y) first by road, with the reasons for each pick and pass.

        ``skills`` is any-of: a team qualifies with at least one. Within ``tie_window_s`` of each
        other, teams of the event's own ``grid`` come first, then lighter workloads. ``method`` is the
        search: "dijkstra", "hierarchy" (needs :meth:`use_hierarchy`) or "auto" (:meth:`choose_search`).
        ``only`` (a boolean mask over the team indexes) restricts the candidates further, for a dispatch
        rule that picks its candidates another way (straight-line nearest, the event's own grid); a team
        it leaves out is passed over with ``only_reason``. ``exclude`` (team codes; unknown ones are
        ignored) takes teams out of this ranking alone, e.g. those that declined the event already; one
        met on the way is passed over with ``exclude_reason``.
        """
        n = len(self.codes)
        required = self.skill_mask(skills)
        excluded = self._mask_of(exclude)
        snap = self.g.snap([x], [y], self.max_snap_m)
        if int(snap.edge[0]) < 0 or n == 0:
            ok, available, fresh, skilled = self.eligibility(now, required)
            ok = _restricted(ok, only, excluded)
            return self._straight_line(x, y, ok, k, max_eta_s, grid, tie_window_s, available, fresh, skilled,
                                       note=None if n else "no teams are known")
        ok = np.empty(n, dtype=bool)  # = eligibility()[0], in one compiled pass
        n_ok = _dijkstra.eligible(self.status, self.pos_at, self.skills, n, float(now), float(self.stale_after_s),
                                  required, ok)
        if only is not None or excluded is not None:
            ok = _restricted(ok, only, excluded)
            n_ok = int(ok.sum())
        event = _EventOnRoad.of(self.g, snap)
        k_search = k + (8 if tie_window_s > 0 else 0)  # room for the tie window's reordering
        method = self._method(method, n_ok, k_search)
        found = self._search(method, event, ok, k_search, max_eta_s)
        order = sorted((eta, i) for i, eta in found.etas.items() if eta <= max_eta_s)
        order = self._tie_break(order, grid, tie_window_s)[:k]
        picked = [self._picked(r, eta, i, grid, event, found, method, with_routes)
                  for r, (eta, i) in enumerate(order, 1)]
        worst = picked[-1].eta_s if picked else max_eta_s
        why_out = _Exclusions(only, only_reason, excluded, exclude_reason)
        passed = [self._passed_over(i, eta, now, required, skills, why_out)
                  for i, eta in found.ineligible.items() if eta <= worst]
        passed += self._off_road_nearby(x, y, ok, worst)
        note = None
        if len(picked) < k:
            passed += self._unreached(x, y, ok, picked, k, max_eta_s)
            beyond = n_ok - len(picked)
            note = (f"only {len(picked)} eligible team(s) within {max_eta_s / 60:.0f} min by road; "
                    f"{beyond} other eligible team(s) are beyond the maximum ETA or cannot reach the event by road")
        return Ranking(picked, sorted(passed, key=lambda c: c.eta_s), event.distance_m, "road", found.settled, note,
                       search=method)

    # -- the steps of a query -------------------------------------------------------------------------
    def _mask_of(self, codes: Iterable[str]) -> np.ndarray | None:
        """A mask over the team indexes, True for the known ``codes`` (None when none is known)."""
        if not codes:  # the usual case, kept cheap (a generator is never falsy: it takes the loop)
            return None
        idx = [i for i in (self.index.get(c) for c in codes) if i is not None]
        if not idx:
            return None
        mask = np.zeros(len(self.codes), dtype=bool)
        mask[idx] = True
        return mask

    def _method(self, method: str, n_ok: int, k: int) -> str:
        """The search a query runs: ``method`` checked, or :meth:`choose_search`'s pick for "auto"."""
        if method == "auto":
            return self.choose_search(n_ok, k)
        if method == "hierarchy" and self.hierarchy is None:
            raise ValueError("method='hierarchy' needs a hierarchy: call use_hierarchy() first")
        if method not in ("dijkstra", "hierarchy"):
            raise ValueError(f"method must be 'auto', 'dijkstra' or 'hierarchy', not {method!r}")
        return method

    def _search(self, method: str, event: _EventOnRoad, ok: np.ndarray, k: int, max_eta_s: float) -> _Found:
        """The k nearest eligible teams by the chosen search, the nearest ineligible ones it met, and the
        teams on the event's own road (they may drive along it, without a node in between)."""
        n = len(self.codes)
        top_team = np.empty(k, dtype=np.int64)
        top_eta = np.empty(k)
        if method == "hierarchy":
            assert self.buckets is not None  # _method() refuses "hierarchy" without one
            _, settled = self.buckets.nearest(event.seed_nodes, event.seed_costs, ok, k, max_eta_s, self._met,
                                              top_team, top_eta)
            # buckets meet teams in no particular order: take the nearest ineligible ones met, not the first
            met_bad = np.flatnonzero(self._met.met(n) & ~ok)
            bad = met_bad[np.argsort(self._met.eta[met_bad], kind="stable")][:_MAX_PASSED_OVER]
            team_eta, team_slot = self._met.eta, self._met.slot
        else:
            bad = np.empty(_MAX_PASSED_OVER, dtype=np.int64)
            self._cur += 1
            _, n_bad, settled = _dijkstra.nearest_teams(
                self.g.rindptr, self.g.radj, self.g.radj_edge, self.g.radj_w,
                event.seed_nodes, event.seed_costs,
                self.head, self.slot_next, self.slot_cost,
                ok, k, max_eta_s,
                self._dist, self._stamp, self._pred, self._cur,
                self._heap_k, self._heap_v,
                self._team_eta, self._team_slot, self._team_stamp,
                top_team, top_eta, bad, len(bad),
            )
            bad = bad[:n_bad]
            team_eta, team_slot = self._team_eta, self._team_slot
        found = _Found(etas={i: t for i, t in zip(top_team.tolist(), top_eta.tolist(), strict=True) if i >= 0},
                       ineligible=dict(zip(bad.tolist(), team_eta[bad].tolist(), strict=True)),
                       team_slot=team_slot, settled=int(settled), via_edge={})
        for i, hit in self._team_on_edge_eta(event.edge, event.fraction, event.walk_s).items():
            if ok[i] and hit[0] < found.etas.get(i, np.inf):
                found.etas[i] = hit[0]
                found.via_edge[i] = hit
            elif not ok[i] and hit[0] < found.ineligible.get(i, np.inf):
                found.ineligible[i] = hit[0]  # an ineligible team on the event's own street, nearer than by the block
        return found

    def _picked(self, rank: int, eta: float, i: int, grid: str | None, event: _EventOnRoad, found: _Found,
                method: str, with_routes: bool) -> Candidate:
        c = Candidate(self.codes[i], eta, 0.0, "road", rank=rank, picked=True)
        c.reasons.append(f"available, fresh position, skill match; ETA {eta / 60:.1f} min by road")
        if grid is not None and self.grid[i] == self._grid_ids.get(grid, -2):
            c.reasons.append("in the event's own grid")
        c.reasons.append(f"workload {int(self.workload[i])}")
        if with_routes:
            direct = found.via_edge.get(i)
            path = self._hierarchy_path(i) if method == "hierarchy" and direct is None else None
            c.route, c.distance_m = self._route(i, event, direct, int(found.team_slot[i]), path)
        return c

    def _passed_over(self, i: int, eta: float, now: float, required: int, skills: Sequence[str],
                     why_out: _Exclusions) -> Candidate:
        """A team met before the last pick but not eligible, with every reason it was not."""
        c = Candidate(self.codes[i], eta, 0.0, "road")
        if self.status[i] != STATUS_CODES["available"]:
            c.reasons.append(f"busy ({STATUS_NAMES[int(self.status[i])]})")
        if not (now - self.pos_at[i]) <= self.stale_after_s:
            c.reasons.append(f"stale: last position {(now - self.pos_at[i]) / 60:.0f} min ago")
        if required and not self.skills[i] & required:
            c.reasons.append(f"wrong skill (needs one of {', '.join(skills)})")
        c.reasons += why_out.reasons(i)
        return c

    def _off_road_nearby(self, x: float, y: float, ok: np.ndarray, worst: float) -> list[Candidate]:
        """Eligible teams whose position is too far from any road to be routed: said when they are close."""
        off_road = self.off_road()
        if len(off_road):
            off_road = off_road[ok[off_road]]
        if not len(off_road):
            return []
        crow = np.hypot(self.x[off_road] - x, self.y[off_road] - y) / FALLBACK_SPEED
        return [Candidate(self.codes[i], float(np.hypot(self.x[i] - x, self.y[i] - y) / FALLBACK_SPEED), 0.0,
                          "straight_line",
                          reasons=[f"position more than {self.max_snap_m:.0f} m from any road: "
                                   "cannot be routed (straight-line estimate shown)"])
                for i in off_road[crow <= worst].tolist()]

    def _unreached(self, x: float, y: float, ok: np.ndarray, picked: list[Candidate], k: int,
                   max_eta_s: float) -> list[Candidate]:
        """The nearest eligible teams (straight line) that the search did not reach: beyond the maximum ETA,
        or with no road path to the event."""
        n = len(self.codes)
        chosen = {self.index[c.team] for c in picked}
        rest = np.array([i for i in np.flatnonzero(ok & (self.edge[:n] >= 0)).tolist() if i not in chosen],
                        dtype=np.int64)
        if not len(rest):
            return []
        crow = np.hypot(self.x[rest] - x, self.y[rest] - y)
        return [Candidate(self.codes[i], float("inf"), 0.0, "road",
                          reasons=[f"beyond the maximum ETA of {max_eta_s / 60:.0f} min by road, "
                                   "or no road path to the event"])
                for i in rest[np.argsort(crow)][: k - len(picked)].tolist()]

    def _tie_break(self, order: list[tuple[float, int]], grid: str | None, window: float) -> list[tuple[float, int]]:
        if window <= 0 or not order:
            return order
        gid = self._grid_ids.get(grid, -2) if grid is not None and hasattr(self, "_grid_ids") else -2
        out, group = [], [order[0]]
        for item in order[1:]:
            if item[0] - group[0][0] <= window:
                group.append(item)
            else:
                out += sorted(group, key=lambda t: (self.grid[t[1]] != gid, self.workload[t[1]], t[0]))
                group = [item]
        out += sorted(group, key=lambda t: (self.grid[t[1]] != gid, self.workload[t[1]], t[0]))
        return out

    def _hierarchy_path(self, i: int) -> np.ndarray:
        """Original edges of team i's route found by the last hierarchy query: up from the team's slot
        node to the meeting node (a forward upward search, re-run with predecessors), then down to the
        event's seed node (the query's own predecessors), shortcuts unpacked."""
        h = self.hierarchy
        assert h is not None  # called right after a hierarchy query
        s = int(self._met.slot[i])
        return h.path_via(int(self.slot_node[s]), float(self.slot_cost[s]), int(self._met.meet[i]))

    def _route(self, i: int, event: _EventOnRoad, direct: tuple[float, int, float, float] | None,
               slot: int, path: np.ndarray | list[int] | None = None) -> tuple[shapely.LineString, float]:
        """Route geometry (EPSG:4549) and road distance for team i to the event.

        ``path`` is the original edges from the team's edge end to the event's edge start (the
        hierarchy's unpacked path); without it the path is read from the last Dijkstra's predecessors.
        The line is built in one compiled pass over the edges' flat vertices (``_routes.py``); the tests
        check it against the same route cut with ``shapely.ops.substring``.
        """
        g = self.g
        e_event, f_event = event.edge, event.fraction
        team_xy = np.array([[self.x[i], self.y[i]]])
        event_xy = np.array([[event.x, event.y]])
        e_team = int(self.edge[i])
        if direct is not None:
            _, edge, fa, fb = direct
            coords = np.concatenate([team_xy, _part_coords(g.geoms[edge], fa, fb), event_xy])
            return shapely.LineString(coords), float((fb - fa) * g.length_m[edge])
        team_edge = e_team if slot % 2 == 0 else int(g.twin[e_team])
        f_team = float(self.frac[i] if slot % 2 == 0 else 1.0 - self.frac[i])
        node = int(g.edge_v[team_edge])
        if path is None:
            pred, edge_v = self._pred.data, g.edge_v.data  # memoryviews: item access without numpy scalars
            path = []
            for _ in range(g.n_edges):
                pe = int(pred[node])
                if pe < 0:
                    break
                path.append(pe)
                node = int(edge_v[pe])
        elif len(path):
            node = int(g.edge_v[path[-1]])
        path = np.asarray(path, dtype=np.int64)
        last = e_event if int(g.edge_u[e_event]) == node else int(g.twin[e_event])
        fb = f_event if last == e_event else 1.0 - f_event
        ec = _routes.EdgeCoords.of(g)
        out = np.empty((_routes.route_size(ec, team_edge, path, last), 2))
        n, dist_m = _routes.route_coords(ec.xy, ec.along, ec.ptr, ec.length, g.length_m, float(self.x[i]),
                                         float(self.y[i]), team_edge, f_team, path, len(path), last, float(fb),
                                         event.x, event.y, out)
        return shapely.LineString(out[:n]), float(dist_m)

    def _straight_line(self, x: float, y: float, ok: np.ndarray, k: int, max_eta_s: float, grid: str | None,
                       window: float, available: np.ndarray, fresh: np.ndarray, skilled: np.ndarray,
                       note: str | None = None) -> Ranking:
        """Fallback when the event is far from any road: straight-line distance at FALLBACK_SPEED."""
        n = len(self.codes)
        d = np.hypot(self.x[:n] - x, self.y[:n] - y)
        eta = d / FALLBACK_SPEED
        cand = np.flatnonzero(ok & np.isfinite(eta) & (eta <= max_eta_s))
        order = sorted(zip(eta[cand].tolist(), cand.tolist(), strict=True))
        order = self._tie_break(order, grid, window)[:k]
        picked = [Candidate(self.codes[i], t, float(d[i]), "straight_line", rank=r, picked=True,
                            reasons=["no road within reach of the event: straight-line estimate"],
                            route=shapely.LineString([(self.x[i], self.y[i]), (x, y)]))
                  for r, (t, i) in enumerate(order, 1)]
        return Ranking(picked, [], float("inf"), "straight_line", 0,
                       note or f"the event is more than {self.max_snap_m:.0f} m from any road", search="none")


def _part_coords(geom: shapely.LineString, a: float, b: float) -> np.ndarray:
    """Coordinates of ``substring(geom, a, b, normalized=True)``: the part of a road from fraction a to b.

    For the usual case (0 <= a < b <= 1, a 2D line) this repeats shapely's own steps (GEOS interpolation
    of both ends, the vertices strictly between them by Python-float distances along the line), so the
    result is identical, at a fraction of the cost of ``substring``'s generic Python. Anything else (a
    point-like part, a 3D line) goes to ``substring`` itself.
    """
    if not 0.0 <= a < b <= 1.0 or geom.has_z:
        return shapely.get_coordinates(substring(geom, a, b, normalized=True))
    length = geom.length
    start, end = a * length, b * length
    first, last = geom.interpolate(start), geom.interpolate(end)
    out = [(first.x, first.y)]
    pts = shapely.get_coordinates(geom).tolist()
    along = 0
    for p1, p2 in zip(pts, pts[1:], strict=False):
        if start < along < end:
            out.append(p1)
        elif along >= end:
            break
        along += ((p2[0] - p1[0]) ** 2 + (p2[1] - p1[1]) ** 2) ** 0.5
    out.append((last.x, last.y))
    return np.array(out)


def _restricted(ok: np.ndarray, only: np.ndarray | None, excluded: np.ndarray | None) -> np.ndarray:
    """``ok`` narrowed to ``only`` and without ``excluded`` (masks over the team indexes; None: no limit)."""
    n = len(ok)
    if only is not None:
        ok = ok & only[:n]
    if excluded is not None:
        ok = ok & ~excluded[:n]
    return ok


class _EventOnRoad(NamedTuple):
    """An event snapped to its road edge, and the seeds of the search towards it (the starts of its edge
    and of its twin, each with the time from there to the event). The per-query helpers of :meth:`TeamIndex.rank`
    are named tuples, not dataclasses: a frozen dataclass costs microseconds to build, a query tens of them."""

    edge: int
    fraction: float
    walk_s: float
    distance_m: float
    x: float  # the foot on the road (EPSG:4549)
    y: float
    seed_nodes: np.ndarray
    seed_costs: np.ndarray

    @classmethod
    def of(cls, g: RoadGraph, snap: Snaps) -> _EventOnRoad:
        e, t = int(snap.edge[0]), int(snap.twin[0])
        f = float(snap.fraction[0])
        distance_m = float(snap.distance_m[0])
        walk = walk_time(distance_m)
        time_s = g.time_s.data  # a memoryview: Python floats, the same bits as numpy's, without its scalars
        from_start, from_end = reach_costs(time_s[e], time_s[t], f, walk)
        if t >= 0:
            nodes, costs = [int(g.edge_u[e]), int(g.edge_u[t])], [from_start, from_end]
        else:
            nodes, costs = [int(g.edge_u[e])], [from_start]
        return cls(e, f, walk, distance_m, float(snap.x[0]), float(snap.y[0]), np.array(nodes, dtype=np.int64),
                   np.array(costs))


class _Found(NamedTuple):
    """What a search found: the eligible teams' ETAs, the nearest ineligible ones met (to say why they were
    passed over), by which slot each team was reached, and the teams that drive along the event's own road."""

    etas: dict[int, float]
    ineligible: dict[int, float]
    team_slot: np.ndarray
    settled: int
    via_edge: dict[int, tuple[float, int, float, float]]


class _Exclusions(NamedTuple):
    """The caller's restrictions of a ranking (``only``, ``exclude``) and the reasons they give."""

    only: np.ndarray | None
    only_reason: str
    excluded: np.ndarray | None
    exclude_reason: str

    def reasons(self, i: int) -> list[str]:
        out = []
        if self.only is not None and not self.only[i]:
            out.append(self.only_reason)
        if self.excluded is not None and self.excluded[i]:
            out.append(self.exclude_reason)
        return out
