"""The simulated teams: where each one is at any instant, and how it patrols, waits, drives and walks.

A :class:`TeamAgent` owns its movement as a list of :class:`~gridmap.simulation.roads.Leg` s, generated as
time goes on: a patrolling team rides its own grids' roads from junction to junction (never straight back unless
the road ends there, stopping now and then), a team that waits (a fire crew) stands at its base, a team that got
an offer stops where it is to read it, one that accepted drives its route and walks to the door, and after the
job walks back to its vehicle and returns to its grids (or base). Its decisions (answer, time on site) are drawn
by the engine from streams keyed by the event and the team, so they do not depend on the order of other events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gridmap.routing.roadgraph import walk_time
from gridmap.simulation.model import Behaviour
from gridmap.simulation.roads import Leg, RoadPos, SimRoads

INF = math.inf


@dataclass
class Job:
    """The assignment a team holds: its id, event, status as the team knows it, and the event's place."""

    assignment_id: int
    event_id: int
    event_code: str
    category: str
    status: str  # offered | accepted | on_site
    xy: tuple[float, float]  # the event's point (EPSG:4549)
    route: list[list[float]] | None = None  # the API's route (lon/lat)
    eta_s: float | None = None
    offered_at: float = 0.0
    answer_at: float | None = None


@dataclass
class TeamAgent:
    code: str
    kind: str
    grids: tuple[str, ...]
    zone: np.ndarray  # bool per road node: inside the team's own grids
    base: RoadPos
    patrols: bool
    username: str
    rng_patrol: np.random.Generator
    rng_gps: np.random.Generator
    roads: SimRoads
    behaviour: Behaviour
    on_duty: bool = False
    job: Job | None = None
    going_off: bool = False
    legs: list[Leg] = field(default_factory=list)
    travelled_m: float = 0.0  # driven to events (the study's distance)
    returned_m: float = 0.0  # driven back to its grids or base
    patrolled_m: float = 0.0
    jobs_done: int = 0

    # -- where ---------------------------------------------------------------------------------------------
    def _extend(self, t: float) -> None:
        """Make sure the legs cover time ``t``."""
        if not self.legs:
            self.legs = [self._stop(t, self.base, INF)]
        guard = 0
        while self.legs[-1].t1 < t:
            guard += 1
            if guard > 100_000:
                raise RuntimeError(f"team {self.code}: its patrol does not advance")
            self.legs += self._next_legs(self.legs[-1])

    def _trim(self, t: float) -> None:
        i = 0
        while i < len(self.legs) - 1 and self.legs[i].t1 < t:
            i += 1
        if i:
            del self.legs[:i]

    def at(self, t: float) -> tuple[tuple[float, float], RoadPos, Leg]:
        """(x, y) at ``t``, the road place it belongs to, and the leg it is on."""
        self._extend(t)
        self._trim(t)
        leg = self.legs[0]
        for leg in self.legs:
            if leg.t1 >= t:
                break
        r = 0.0 if leg.t1 <= leg.t0 or not math.isfinite(leg.t1) else min(max((t - leg.t0) / (leg.t1 - leg.t0), 0.0), 1.0)
        if leg.on_road:
            pos = RoadPos(leg.edge, leg.f0 + (leg.f1 - leg.f0) * r)
            return self.roads.point(pos), pos, leg
        x = leg.xy0[0] + (leg.xy1[0] - leg.xy0[0]) * r
        y = leg.xy0[1] + (leg.xy1[1] - leg.xy0[1]) * r
        assert leg.anchor is not None
        return (x, y), leg.anchor, leg

    def road_place(self, t: float) -> tuple[RoadPos, float]:
        """Where the team can set off from at ``t``: its road place, and when (a team walking back to its
        vehicle gets there first)."""
        _, pos, leg = self.at(t)
        if leg.kind == "walk" and leg.anchor is not None:
            return leg.anchor, max(leg.t1, t)
        return pos, t

    # -- plans ---------------------------------------------------------------------------------------------
    def _stop(self, t0: float, pos: RoadPos, t1: float, kind: str = "stop") -> Leg:
        xy = self.roads.point(pos)
        return Leg(t0, t1, xy0=xy, xy1=xy, anchor=pos, kind=kind)

    def _next_legs(self, last: Leg) -> list[Leg]:
        """What follows ``last`` when nothing else is planned: patrol on, or stand (at the base, or where it is)."""
        pos = last.anchor if not last.on_road else RoadPos(last.edge, last.f1)
        assert pos is not None
        t = last.t1
        if not self.patrols or not self.on_duty:
            return [self._stop(t, pos, INF)]
        if pos.frac < 1.0 - 1e-9:  # finish the edge first
            legs = self.roads.legs_along(pos, [pos.edge], None, t, self.behaviour.patrol_speed_factor, "patrol")
            self.patrolled_m += (1.0 - pos.frac) * self.roads.g.length_m[pos.edge]
            return legs
        node = int(self.roads.g.edge_v[pos.edge])
        out: list[Leg] = []
        b = self.behaviour
        if self.rng_patrol.random() < b.patrol_pause_share:
            pause = float(self.rng_patrol.lognormal(math.log(b.patrol_pause_median_s), 0.5))
            out.append(self._stop(t, pos, t + pause, "pause"))
            t += pause
        came_back = int(self.roads.g.twin[pos.edge])
        options = [int(e) for e in self.roads.out_edges[node] if self.zone[int(self.roads.g.edge_v[int(e)])]]
        forward = [e for e in options if e != came_back]
        choice = forward or options
        if not choice:  # outside its grids (after a job elsewhere): back to the nearest of its own junctions
            return out + self._return_home(RoadPos(pos.edge, 1.0), t)
        e = choice[int(self.rng_patrol.integers(len(choice)))]
        out += self.roads.legs_along(RoadPos(e, 0.0), [e], None, t, b.patrol_speed_factor, "patrol")
        self.patrolled_m += float(self.roads.g.length_m[e])
        return out

    def _return_home(self, pos: RoadPos, t: float) -> list[Leg]:
        """Drive back: to the base (a team that waits there), or to the nearest junction of its own grids."""
        search = self.roads.search(pos)
        if not self.patrols:
            plan = search.plan_to(self.base)
        else:
            d = np.where(self.zone, search.dist, np.inf)
            node = int(np.argmin(d))
            if not np.isfinite(d[node]):
                return [self._stop(t, pos, INF)]
            into = [int(e) for e in self.roads.out_edges[node]]
            plan = search.plan_to(RoadPos(into[0], 0.0)) if into else None
        if plan is None:
            return [self._stop(t, pos, INF)]
        legs = search.legs(plan, t, 1.0, "return")
        self.returned_m += sum((lg.f1 - lg.f0) * self.roads.g.length_m[lg.edge] for lg in legs)
        if not self.patrols:
            legs.append(self._stop(legs[-1].t1 if legs else t, self.base, INF))
        return legs

    def hold(self, t: float) -> None:
        """Stop where it is at ``t`` (to read an offer), and stay until told otherwise."""
        pos, t_free = self.road_place(t)
        self._extend(t)
        keep = [lg for lg in self.legs if lg.t0 < t]
        if keep and keep[-1].t1 > t:
            last = keep[-1]
            if last.on_road:
                r = (t - last.t0) / (last.t1 - last.t0) if last.t1 > last.t0 else 1.0
                keep[-1] = Leg(last.t0, t, edge=last.edge, f0=last.f0, f1=last.f0 + (last.f1 - last.f0) * r,
                               kind=last.kind)
            elif last.kind == "walk":
                keep[-1] = last  # finish walking back to the vehicle
                t = max(t, last.t1)
            else:
                keep[-1] = Leg(last.t0, t, xy0=last.xy0, xy1=last.xy1, anchor=last.anchor, kind=last.kind)
        self.legs = keep + [self._stop(max(t, t_free), pos, INF, "hold")]

    def resume(self, t: float) -> None:
        """Back to its routine from where it stands at ``t`` (patrol, or back to the base)."""
        pos, t0 = self.road_place(t)
        self.hold(t)
        if not self.on_duty:
            return
        if self.patrols and self.zone[int(self.roads.g.edge_v[pos.edge])]:
            self.legs[-1].t1 = t0  # the patrol goes on from here
            self.legs = [lg for lg in self.legs if lg.t1 > lg.t0 or lg is self.legs[-1]]
            return
        home = self._return_home(pos, t0)
        self.legs[-1].t1 = t0
        self.legs += home

    def drive(self, legs: list[Leg], walk_to: tuple[float, float], t: float) -> float:
        """Set off at ``t`` along ``legs`` (the route), then walk to ``walk_to``; returns the arrival time."""
        self.hold(t)
        self.legs[-1].t1 = t
        self.legs += legs
        end_t = legs[-1].t1 if legs else t
        foot_pos = RoadPos(legs[-1].edge, legs[-1].f1) if legs else self.road_place(t)[0]
        foot = self.roads.point(foot_pos)
        w = walk_time(math.hypot(walk_to[0] - foot[0], walk_to[1] - foot[1]))
        self.legs.append(Leg(end_t, end_t + w, xy0=foot, xy1=walk_to, anchor=foot_pos, kind="walk"))
        self.legs.append(Leg(end_t + w, INF, xy0=walk_to, xy1=walk_to, anchor=foot_pos, kind="site"))
        self.travelled_m += sum((lg.f1 - lg.f0) * self.roads.g.length_m[lg.edge] for lg in legs)
        return end_t + w

    def leave_site(self, t: float) -> None:
        """Walk back from the door to the vehicle, then carry on with the routine."""
        self._extend(t)
        self._trim(t)
        leg = self.legs[-1]
        if leg.kind == "site" and leg.anchor is not None:
            foot = self.roads.point(leg.anchor)
            w = walk_time(math.hypot(leg.xy0[0] - foot[0], leg.xy0[1] - foot[1]))
            leg.t1 = t
            self.legs.append(Leg(t, t + w, xy0=leg.xy0, xy1=foot, anchor=leg.anchor, kind="walk"))
            self.legs.append(self._stop(t + w, leg.anchor, INF, "hold"))
            t = t + w
        self.resume(t)

    def go_on_duty(self, t: float) -> None:
        self.on_duty = True
        self.going_off = False
        if self.job is None:
            self.resume(t)

    def go_off_duty(self, t: float) -> None:
        self.on_duty = False
        self.going_off = False
        self.hold(t)

    def state(self, t: float) -> str:
        """What the team is doing, as the run log records it."""
        if not self.on_duty and self.job is None:
            return "off_duty"
        _, _, leg = self.at(t)
        if leg.kind == "walk":
            return "walking"
        if self.job is not None:
            return {"offered": "offered", "accepted": "driving", "on_site": "on_site"}.get(self.job.status, "busy")
        return {"patrol": "patrol", "return": "returning", "walk": "walking", "pause": "patrol"}.get(leg.kind, "waiting")

    # -- the phone's fix ---------------------------------------------------------------------------------------
    def fix(self, t: float) -> tuple[float, float, tuple[float, float]]:
        """A GPS fix at ``t``: the true place plus noise (per axis, clipped as a phone's filter would)."""
        (x, y), _, _ = self.at(t)
        b = self.behaviour
        noise = self.rng_gps.normal(0.0, b.gps_sigma_m, 2)
        n = float(np.hypot(*noise))
        limit = b.gps_clip_sigmas * b.gps_sigma_m
        if n > limit:
            noise = noise * (limit / n)
        return x + float(noise[0]), y + float(noise[1]), (x, y)
