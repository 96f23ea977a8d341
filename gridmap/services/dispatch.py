"""Nearest-responder dispatch: rank teams by road ETA, assign atomically, re-dispatch on decline/timeout.

PostGIS is the truth; the :class:`Dispatcher` holds caches (the road graph, the live-team index) that
:meth:`Dispatcher.rebuild` recreates from it at any time. Every write goes to the database first, in
one transaction, and only then to the cache. Assignment is safe under concurrency: a team is claimed
with a conditional ``UPDATE ... WHERE status = 'available'`` (row lock and re-check), and partial unique
indexes on ``assignments`` forbid a second active assignment for a team or an event.
"""

from __future__ import annotations

import datetime as dt
import enum
import gc
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Engine

from gridmap.config import MEASURE_CRS
from gridmap.core.crs import to_measure_crs, transformer
from gridmap.core.vocabulary import LOCAL_TZ, WGS84
from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.routing.hierarchy import Hierarchy
from gridmap.routing.many_to_one import network_times
from gridmap.routing.roadgraph import RoadGraph
from gridmap.routing.team_index import Candidate, Ranking, TeamIndex
from gridmap.storage import assignments as assignments_sql
from gridmap.storage import events as events_sql
from gridmap.storage import registry as registry_sql
from gridmap.storage import roads as roads_sql
from gridmap.storage import teams as teams_sql

ALL_SKILLS = ["patrol", "fire", "first_aid", "mediation", "law", "elderly_care", "traffic", "security"]
RESPONDER_KINDS = ("micro_fire_station", "micro_fire_truck")
#: Why a team that declined an event is not offered it again (a passed-over reason).
DECLINED = "declined this event already"


class DispatchRule(enum.StrEnum):
    """How the responder is chosen. gridmap's own is ``road_eta``; the others exist for the dispatch-policy
    study (``gridmap simulate study``) and are used only where a simulation database says so
    (``simulation_mark.dispatch_rule``, see :mod:`gridmap.services.simclock`)."""

    #: (a) the k first by road ETA; within ``tie_window_s`` of each other, the event's own grid, then the
    #: lighter workload, first (today's rule)
    ROAD_ETA = "road_eta"
    #: (b) the k first by road ETA, no tie window
    ROAD_ETA_NO_TIE = "road_eta_no_tie"
    #: (c) the k nearest in a straight line, in that order (Resgrid's ClosestUnit, TicketsCAD's distance sort);
    #: their road ETAs and routes are still computed, for the team's phone
    STRAIGHT_LINE = "straight_line"
    #: (d) the ``straight_line_candidates`` nearest in a straight line, re-ranked by road ETA (Resgrid's
    #: UseRoutedEta)
    STRAIGHT_LINE_THEN_ROAD = "straight_line_then_road"
    #: (e) only the teams of the event's own grid (its grid workers' team, or a team based there), by road
    #: ETA, whatever their skills: a grid-bound manual practice
    OWN_GRID = "own_grid"


@dataclass
class DispatchPolicy:
    """Tunable dispatch rules (defaults are what the 数智闲林 command room asks for)."""

    #: how the responder is chosen (:class:`DispatchRule`); anything but ``road_eta`` only in a simulation
    rule: DispatchRule = DispatchRule.ROAD_ETA
    #: rule ``straight_line_then_road``: how many straight-line nearest teams are re-ranked by road ETA
    straight_line_candidates: int = 5
    k: int = 5
    max_eta_s: float = 1800.0
    stale_after_s: float = 300.0
    offer_timeout_s: float = 120.0
    tie_window_s: float = 15.0
    max_snap_m: float = 500.0
    workload_window_h: float = 24.0
    #: Build a contraction hierarchy of the road graph, so that sparse teams (and the few micro fire
    #: stations) are found without settling every node within their ETA. Graphs of more than
    #: ``hierarchy_background_nodes`` nodes get it built in a background thread; until it is ready the
    #: plain Dijkstra answers (the same answers, a little slower).
    hierarchy: bool = True
    hierarchy_background_nodes: int = 50_000


@dataclass
class Recommendation:
    lon: float
    lat: float
    skills: list[str]
    method: str
    picked: list[dict]
    passed_over: list[dict]
    note: str | None
    equipment: dict[str, list[dict]] = field(default_factory=dict)
    search: str = "dijkstra"  # which search ranked the teams: "dijkstra", "hierarchy" or "none"


@dataclass
class DispatchResult:
    event_id: int
    assignment_id: int | None
    team: str | None
    waiting: bool
    recommendation: Recommendation | None
    message: str


#: The team index and the graph are built by rebuild(), which from_database() runs.
_NOT_BUILT = "the dispatcher has no road graph yet: build it with Dispatcher.from_database() or rebuild()"


def _now(now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(LOCAL_TZ)
    if now.tzinfo is None:
        raise InvalidInput(f"time {now} has no time zone", field="now", fix="use an aware datetime")
    return now


def _to_4326(geom: BaseGeometry | None) -> BaseGeometry | None:
    if geom is None:
        return None
    t = transformer(MEASURE_CRS, WGS84)
    return shapely.transform(geom, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))


class Dispatcher:
    """The dispatch service. Build it with :meth:`from_database`; it is thread-safe."""

    def __init__(self, engine: Engine, policy: DispatchPolicy | None = None) -> None:
        self.engine = engine
        self.policy = policy or DispatchPolicy()
        self._lock = threading.RLock()
        self.graph: RoadGraph | None = None
        self.teams: TeamIndex | None = None
        self.equipment: dict[str, TeamIndex] = {}
        self.team_ids: dict[str, int] = {}
        self.category_skills: dict[str, list[str]] = {}
        self.grid_teams: dict[str, np.ndarray] = {}  # grid -> indexes of the teams whose grid it is (rule own_grid)
        self.hierarchy: Hierarchy | None = None
        self._hierarchy_thread: threading.Thread | None = None

    @classmethod
    def from_database(cls, engine: Engine, policy: DispatchPolicy | None = None,
                      now: dt.datetime | None = None) -> Dispatcher:
        d = cls(engine, policy)
        d.rebuild(now)
        return d

    # -- cache ----------------------------------------------------------------------------------
    def _conn(self) -> Connection:
        return self.engine.connect()

    def rebuild(self, now: dt.datetime | None = None) -> None:
        """(Re)build the road graph, the team index and the equipment indexes from PostGIS."""
        now = _now(now)
        with self._conn() as conn:
            nodes, edges = roads_sql.road_graph(conn)
            teams = teams_sql.teams_for_dispatch(conn, now - dt.timedelta(hours=self.policy.workload_window_h))
            equipment = registry_sql.equipment_of_kinds(conn, (*RESPONDER_KINDS, "hydrant"))
            categories = events_sql.category_skills(conn)
            conn.rollback()
        if nodes.empty or edges.empty:
            raise NotFound("the road network is empty", field="road_edges",
                           fix="load road_nodes and road_edges (gridmap sample load, or gridmap load)")
        t = transformer(WGS84, MEASURE_CRS)
        nx_, ny_ = t.transform(nodes.lon.to_numpy(), nodes.lat.to_numpy())
        geoms = to_measure_crs(edges.geometry.to_numpy())
        graph = RoadGraph.from_arrays(nodes.id, np.column_stack([nx_, ny_]), edges.source, edges.target,
                                      edges.length_m, edges.travel_time_s, geoms, edges.id)
        skills = sorted({*ALL_SKILLS, *(s for v in categories.values() for s in v),
                         *(s for v in teams.skills for s in (v or []))})
        team_index = TeamIndex(graph, skills, stale_after_s=self.policy.stale_after_s, max_snap_m=self.policy.max_snap_m,
                        capacity=max(256, len(teams)))
        row: Any  # a frame's row: one attribute per column (pandas cannot type them)
        for row in teams.itertuples():
            team_index.set_team(row.code, status=row.status, skills=row.skills or [], workload=int(row.workload),
                            grid=row.grid)
        placed = teams.dropna(subset=["lon", "lat", "position_at"])
        if len(placed):
            x, y = t.transform(placed.lon.to_numpy(), placed.lat.to_numpy())
            at = np.array([p.timestamp() for p in placed.position_at])
            team_index.move_teams(placed.code.tolist(), x, y, at)
        equipment_indexes = {}
        for group, kinds in (("responders", RESPONDER_KINDS), ("hydrants", ("hydrant",))):
            sub = equipment[equipment.kind.isin(kinds)]
            r = TeamIndex(graph, [*kinds], stale_after_s=np.inf, max_snap_m=self.policy.max_snap_m,
                       capacity=max(256, len(sub)))
            for row in sub.itertuples():
                r.set_team(row.code, status="available" if row.status == "in_service" else "off_duty",
                           skills=[row.kind])
            if len(sub):
                x, y = t.transform(sub.lon.to_numpy(), sub.lat.to_numpy())
                r.move_teams(sub.code.tolist(), x, y, 0.0)
            equipment_indexes[group] = r
        # The graph holds ~1 shapely object per edge; keep them out of the cyclic GC's full collections
        # (100+ ms pauses on a large city, measured in scripts/bench_dispatch.py). Refcounting still frees them.
        gc.collect()
        gc.freeze()
        grid_teams: dict[str, list[int]] = {}
        for row in teams.itertuples():
            for g in row.grids or ([row.grid] if row.grid else []):
                grid_teams.setdefault(g, []).append(team_index.index[row.code])
        with self._lock:
            self.graph, self.teams, self.equipment = graph, team_index, equipment_indexes
            self.grid_teams = {g: np.array(idx, dtype=np.int64) for g, idx in grid_teams.items()}
            self.team_ids = dict(zip(teams.code, teams.id, strict=True))
            self.equipment_kind = dict(zip(equipment.code, equipment.kind, strict=True))
            self.category_skills = categories
            self.hierarchy = None
        if self.policy.hierarchy:
            if graph.n_nodes > self.policy.hierarchy_background_nodes:
                self._hierarchy_thread = threading.Thread(target=self._attach_hierarchy, args=(graph,),
                                                          name="gridmap-hierarchy", daemon=True)
                self._hierarchy_thread.start()
            else:
                self._attach_hierarchy(graph)

    def _attach_hierarchy(self, graph: RoadGraph) -> None:
        """Build the contraction hierarchy of ``graph`` and give it to every team index, unless the cache was
        rebuilt meanwhile (then this graph is gone and the hierarchy is dropped)."""
        h = Hierarchy(graph)
        with self._lock:
            if self.graph is not graph:
                return
            self.hierarchy = h
            assert self.teams is not None  # set with self.graph by rebuild()
            for r in (self.teams, *self.equipment.values()):
                r.use_hierarchy(h)
                r.refresh_buckets()
            if graph.n_nodes:  # load the query kernels now (numba's disk cache), not in the first request
                x, y = graph.node_xy[0]
                self.teams.rank(float(x), float(y), now=0.0, k=1, method="hierarchy")

    def wait_for_hierarchy(self, timeout: float | None = None) -> bool:
        """Block until a background hierarchy build has finished; True if a hierarchy is attached."""
        t = self._hierarchy_thread
        if t is not None:
            t.join(timeout)
        return self.hierarchy is not None

    # -- positions and status ---------------------------------------------------------------------
    def report_positions(self, updates: list[tuple[str, float, float, dt.datetime]]) -> int:
        """Record team positions (code, lon, lat, time), single or batched. Returns how many were newer.

        A report older than the stored position is ignored (out-of-order delivery from phones).
        """
        if not updates:
            return 0
        codes = [u[0] for u in updates]
        lon = np.array([u[1] for u in updates], dtype=float)
        lat = np.array([u[2] for u in updates], dtype=float)
        at = [u[3] for u in updates]
        bad = np.flatnonzero(~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lon) > 180) | (np.abs(lat) > 90))
        if len(bad):
            i = int(bad[0])
            raise InvalidInput(f"position #{i} of team {codes[i]} is ({lon[i]}, {lat[i]})", field="lon/lat",
                               fix="send WGS84 decimal degrees, longitude first")
        if any(a.tzinfo is None for a in at):
            raise InvalidInput("a position time has no time zone", field="at", fix="send ISO 8601 with an offset")
        latest: dict[str, int] = {}  # one report per team and batch: its newest (phones deliver out of order)
        for j, (c, a) in enumerate(zip(codes, at, strict=True)):
            if c not in latest or a >= at[latest[c]]:
                latest[c] = j
        if len(latest) < len(codes):
            sel = sorted(latest.values())
            codes, lon, lat, at = [codes[j] for j in sel], lon[sel], lat[sel], [at[j] for j in sel]
        with self.engine.begin() as conn:  # one statement; an unknown code rolls the whole batch back
            saved, unknown = teams_sql.save_positions(conn, codes, lon, lat, at)
            if unknown:
                raise NotFound(f"unknown team(s) {', '.join(sorted(set(unknown)))}", field="team",
                               fix="check the codes")
            updated = set(saved)
        keep = [j for j, c in enumerate(codes) if c in updated]
        if keep:
            x, y = transformer(WGS84, MEASURE_CRS).transform(lon[keep], lat[keep])
            with self._lock:
                assert self.teams is not None, _NOT_BUILT
                self.teams.move_teams([codes[j] for j in keep], x, y, np.array([at[j].timestamp() for j in keep]))
                self.teams.refresh_buckets()  # the hierarchy's team buckets: one compiled batch, here, not in a query
        return len(keep)

    def set_team_status(self, code: str, status: str) -> None:
        with self.engine.begin() as sa:
            team = teams_sql.team(sa, code)
            if team is None:
                raise NotFound(f"unknown team {code!r}", field="team", fix="check the code")
            teams_sql.set_team_status(sa, team["id"], status)
        with self._lock:
            assert self.teams is not None, _NOT_BUILT
            self.teams.set_team(code, status=status)

    # -- the cache alone (the database already holds the change) ---------------------------------
    def cached_status_changed(self, code: str, status: str) -> None:
        """A team's status changed in the database (by another service or process): update the index.

        A team the index does not know (built before the team existed), or no index yet, is left alone:
        the next :meth:`rebuild` reads it."""
        with self._lock:
            if self.teams is not None and code in self.teams.index:
                self.teams.set_team(code, status=status)

    def cached_position_changed(self, code: str, lon: float | None, lat: float | None, at_epoch: float) -> bool:
        """A team's position was stored (by another process): move the team in the index, unless the index
        holds a newer fix already (an older announcement handled late must not move the team back) or
        that very fix. Returns whether the team moved."""
        if lon is None or lat is None:
            return False
        x, y = transformer(WGS84, MEASURE_CRS).transform(lon, lat)
        at = float(at_epoch)
        with self._lock:
            teams = self.teams
            if teams is None or code not in teams.index:
                return False
            i = teams.index[code]
            if at < teams.pos_at[i] or (at == teams.pos_at[i] and abs(teams.x[i] - x) < 1e-6
                                         and abs(teams.y[i] - y) < 1e-6):
                return False  # older than the cached fix, or that very fix (this process stored it)
            teams.move_teams([code], np.array([x]), np.array([y]), np.array([at]))
            return True

    # -- ranking --------------------------------------------------------------------------------
    def skills_for(self, category: str | None, skills: list[str] | None) -> list[str]:
        if skills:
            return list(skills)
        if category is None:
            return []
        if category not in self.category_skills:
            raise InvalidInput(f"unknown category {category!r}", field="category",
                               fix=f"use one of {', '.join(sorted(self.category_skills))}")
        return self.category_skills[category]

    @staticmethod
    def _candidate(c: Candidate) -> dict:
        eta = round(c.eta_s, 1) if np.isfinite(c.eta_s) else None  # None: not reached (beyond the maximum)
        return {"team": c.team, "rank": c.rank, "eta_s": eta, "distance_m": round(c.distance_m, 1),
                "method": c.method, "reasons": c.reasons, "route": _to_4326(c.route)}

    def recommend(self, lon: float, lat: float, *, category: str | None = None, skills: list[str] | None = None,
                  k: int | None = None, max_eta_s: float | None = None, grid: str | None = None,
                  now: dt.datetime | None = None, exclude: set[str] | None = None,
                  with_equipment: bool | None = None) -> Recommendation:
        """Rank the teams that can reach (lon, lat) first, with routes and reasons; for fire, also equipment."""
        now = _now(now)
        need = self.skills_for(category, skills)
        x, y = transformer(WGS84, MEASURE_CRS).transform(lon, lat)
        with self._lock:
            assert self.teams is not None, _NOT_BUILT
            ranking: Ranking = self._rank(x, y, now=now.timestamp(), skills=need, k=k or self.policy.k,
                                          max_eta_s=max_eta_s or self.policy.max_eta_s, grid=grid,
                                          exclude=sorted(exclude or ()))
            fire = with_equipment if with_equipment is not None else ("fire" in need)
            eq = {}
            if fire:
                eq = {name: [self._candidate(c) | {"kind": self.equipment_kind.get(c.team)} for c in
                             self.equipment[name].rank(x, y, now=0.0, k=3 if name == "hydrants" else 2,
                                                       max_eta_s=self.policy.max_eta_s).picked]
                      for name in ("responders", "hydrants")}
        return Recommendation(lon, lat, need, ranking.method, [self._candidate(c) for c in ranking.picked],
                              [self._candidate(c) for c in ranking.passed_over], ranking.note, eq, ranking.search)

    def _rank(self, x: float, y: float, *, now: float, skills: list[str], k: int, max_eta_s: float,
              grid: str | None, exclude: list[str]) -> Ranking:
        """The ranking under the policy's :class:`DispatchRule` (the caller holds the lock); the ``exclude``
        teams (those that declined the event) are left out."""
        rule, teams = self.policy.rule, self.teams
        assert teams is not None, _NOT_BUILT
        if rule == DispatchRule.ROAD_ETA:
            return teams.rank(x, y, now=now, skills=skills, k=k, max_eta_s=max_eta_s, grid=grid,
                              tie_window_s=self.policy.tie_window_s, exclude=exclude, exclude_reason=DECLINED)
        if rule == DispatchRule.ROAD_ETA_NO_TIE:
            return teams.rank(x, y, now=now, skills=skills, k=k, max_eta_s=max_eta_s, grid=grid, tie_window_s=0.0,
                              exclude=exclude, exclude_reason=DECLINED)
        if rule == DispatchRule.OWN_GRID:
            own = np.zeros(len(teams.codes), dtype=np.bool_)
            own[self.grid_teams.get(grid, np.empty(0, dtype=np.int64)) if grid is not None else []] = True
            return teams.rank(x, y, now=now, skills=(), k=k, max_eta_s=max_eta_s, grid=grid,
                              tie_window_s=self.policy.tie_window_s, only=own,
                              only_reason="not a team of the event's grid (rule own_grid)", exclude=exclude,
                              exclude_reason=DECLINED)
        ok, *_ = teams.eligibility(now, teams.skill_mask(skills), exclude=exclude)
        straight = rule == DispatchRule.STRAIGHT_LINE
        near = teams.nearest_by_distance(x, y, ok, k if straight else self.policy.straight_line_candidates)
        mask = np.zeros(len(teams.codes), dtype=np.bool_)
        mask[near] = True
        why = (f"not among the {k} nearest in a straight line (rule straight_line)" if straight else
               f"not among the {self.policy.straight_line_candidates} nearest in a straight line "
               "(rule straight_line_then_road)")
        ranking = teams.rank(x, y, now=now, skills=skills, k=max(k, len(near)), max_eta_s=max_eta_s, grid=grid,
                             tie_window_s=0.0, only=mask, only_reason=why, exclude=exclude, exclude_reason=DECLINED)
        if straight:  # the straight-line order, not the road's
            order = {teams.codes[i]: r for r, i in enumerate(near.tolist())}
            ranking.picked.sort(key=lambda c: order[c.team])
            for r, c in enumerate(ranking.picked, 1):
                c.rank = r
                c.reasons.insert(0, f"straight-line nearest #{order[c.team] + 1}")
        ranking.picked = ranking.picked[:k]
        return ranking

    # -- assignment -----------------------------------------------------------------------------
    def dispatch(self, event_id: int, *, now: dt.datetime | None = None,
                 ranked: Recommendation | None = None) -> DispatchResult:
        """Offer the event to the best available team (atomically), or report it as waiting.

        ``ranked`` is a :meth:`recommend` for the event's own point, category and grid at ``now`` that the
        caller has already made (e.g. to see whether anyone can take it); it is used unless some team has
        declined the event. A team it lists that was taken meanwhile is skipped, as always.
        """
        now = _now(now)
        assert self.teams is not None, _NOT_BUILT
        with self.engine.begin() as conn:
            row = events_sql.event_for_dispatch(conn, event_id)
            if row is None:
                raise NotFound(f"no event {event_id}", field="event_id", fix="check the id")
            _, lon, lat, category, severity, grid, status = row
            if status in ("resolved", "closed"):
                raise Conflict(f"event {event_id} is {status}", field="event_id", fix="reopen it first")
            current, exclude = assignments_sql.dispatch_state(conn, event_id)  # active assignment, declined teams
            if current is not None:
                return DispatchResult(event_id, current[0], current[1], False, None,
                                      f"event {event_id} is already {current[2]} by team {current[1]}")
            rec = ranked if ranked is not None and not exclude else \
                self.recommend(lon, lat, category=category, grid=grid, now=now, exclude=exclude)
            queue = list(rec.picked)
            while queue:
                cand = queue.pop(0)
                explanation = {"picked": cand["reasons"], "eta_s": cand["eta_s"], "rank": cand["rank"],
                               "passed_over": [{"team": p["team"], "eta_s": p["eta_s"], "reasons": p["reasons"]}
                                               for p in rec.passed_over],
                               "alternatives": [p["team"] for p in rec.picked if p["team"] != cand["team"]]}
                try:  # claim the team, insert the offer, mark the event dispatched: one statement
                    aid = assignments_sql.offer(conn, team=cand["team"], event_id=event_id, rank=cand["rank"],
                                                eta_s=cand["eta_s"], distance_m=cand["distance_m"], method=cand["method"],
                                                explanation=explanation, route=cand["route"],
                                                respond_by=now + dt.timedelta(seconds=self.policy.offer_timeout_s), now=now)
                except psycopg.errors.UniqueViolation:
                    raise Conflict(f"event {event_id} was dispatched concurrently", field="event_id",
                                   fix="read its assignment") from None
                if aid is None:  # the team was taken meanwhile by a concurrent dispatch (or another process)
                    with self._lock:
                        self.teams.set_team(cand["team"], status="assigned")
                    if not queue:  # all taken: rank again, the cache now knows they are busy
                        rec = self.recommend(lon, lat, category=category, grid=grid, now=now, exclude=exclude)
                        queue = list(rec.picked)
                    continue
                with self._lock:
                    self.teams.set_team(cand["team"], status="assigned",
                                        workload=self.teams.workload_of(cand["team"]) + 1)
                return DispatchResult(event_id, aid, cand["team"], False, rec,
                                      f"event {event_id} offered to {cand['team']} (ETA {cand['eta_s'] / 60:.1f} min)")
        return DispatchResult(event_id, None, None, True, rec,
                              f"event {event_id} is waiting: no available team can take it now"
                              + (f" ({rec.note})" if rec.note else ""))

    def respond(self, assignment_id: int, *, accept: bool, now: dt.datetime | None = None) -> DispatchResult:
        """The team accepts or declines an offer. A decline frees the team and re-dispatches the event."""
        now = _now(now)
        with self.engine.begin() as conn:
            row = assignments_sql.assignment(conn, assignment_id, lock=True)
            if row is None:
                raise NotFound(f"no assignment {assignment_id}", field="assignment_id", fix="check the id")
            event_id, team, status = row["event_id"], row["team_code"], row["status"]
            if status != "offered":
                raise Conflict(f"assignment {assignment_id} is {status}, not offered", field="assignment_id",
                               fix="only an open offer can be accepted or declined")
            if accept:
                assignments_sql.close_assignment(conn, assignment_id, "accepted", now)
                events_sql.set_status(conn, event_id, "accepted", at=now)
                return DispatchResult(event_id, assignment_id, team, False, None, f"{team} accepted event {event_id}")
            assignments_sql.close_assignment(conn, assignment_id, "declined", now)
            teams_sql.set_team_status(conn, row["team_id"], "available")
            events_sql.set_status(conn, event_id, "reported", at=now)
        with self._lock:
            assert self.teams is not None, _NOT_BUILT
            self.teams.set_team(team, status="available")
        return self.dispatch(event_id, now=now)

    def expire_offers(self, *, now: dt.datetime | None = None, street: str | None = None) -> list[DispatchResult]:
        """Offers not answered in time (of the events of ``street``, or all): mark them timed out, free the
        team, re-dispatch each event."""
        now = _now(now)
        events = []
        with self.engine.begin() as conn:
            for aid in assignments_sql.overdue_offers(conn, now, street):
                row = assignments_sql.assignment(conn, aid, lock=True)
                assert row is not None  # overdue_offers() has just found and locked it
                event_id, team = row["event_id"], row["team_code"]
                assignments_sql.close_assignment(conn, aid, "timeout", now)
                teams_sql.set_team_status(conn, row["team_id"], "available")
                events_sql.set_status(conn, event_id, "reported", at=now)
                events.append((event_id, team))
        with self._lock:
            assert self.teams is not None, _NOT_BUILT
            for _, team in events:
                self.teams.set_team(team, status="available")
        return [self.dispatch(event_id, now=now) for event_id, _ in events]

    # -- batch ----------------------------------------------------------------------------------
    def eta_to_nearest(self, lon: npt.ArrayLike, lat: npt.ArrayLike, *, kind: str,
                       now: dt.datetime | None = None) -> np.ndarray:
        """Road ETA (s) from the nearest team/equipment of ``kind`` to each point (many-to-one).

        ``kind`` is a team skill (e.g. ``fire``), ``team`` for any available team, or an equipment kind
        (``micro_fire_station``, ``micro_fire_truck``, ``hydrant``).
        """
        now = _now(now)
        t = transformer(WGS84, MEASURE_CRS)
        px, py = t.transform(np.asarray(lon, float), np.asarray(lat, float))
        with self._lock:
            if kind in (*RESPONDER_KINDS, "hydrant"):  # equipment (none of the kind loaded: all +inf)
                group = "hydrants" if kind == "hydrant" else "responders"
                r = self.equipment[group]
                sel, *_ = r.eligibility(0.0, r.skill_mask([kind]))  # in service, of the kind (never stale)
            else:
                assert self.teams is not None, _NOT_BUILT
                r = self.teams
                ok, *_ = r.eligibility(now.timestamp(), 0 if kind == "team" else r.skill_mask([kind]))
                sel = ok
            fx, fy = r.x[: len(sel)][sel], r.y[: len(sel)][sel]
            graph = self.graph
            assert graph is not None, _NOT_BUILT
        if len(fx) == 0:
            return np.full(len(px), np.inf)
        return network_times(graph, fx, fy, px, py, max_snap_m=self.policy.max_snap_m)
