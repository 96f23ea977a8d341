"""The simulation: a street's day (or a live stream of days) played against the real API.

One :class:`Simulation` holds the teams (:mod:`~gridmap.simulation.agents`), the planned reports
(:mod:`~gridmap.simulation.arrivals`) and an :class:`~gridmap.simulation.clock.Agenda`, and plays the agenda in
time order through a clock (fast: it moves the API's clock; live: it waits for the wall clock). Everything the
API is told goes through the :class:`~gridmap.simulation.driver.Driver`, as the field app, the intake gateway
and the command room would send it:

* every ``fix_every_s`` the on-duty teams' GPS fixes (one batch, as a fleet gateway relays them);
* each report (``POST /v1/events``); the team it is offered to reads its feed (``GET /v1/me/assignments``),
  stops, and answers after a while (accept, decline) or never (the offer times out);
* a team that accepted drives the API's route at the roads' speeds (joining it from where it really is),
  walks to the door, reports ``arrive``, stays for its time on site and reports ``resolve`` (or ``hand-up``);
* shifts begin and end (``PUT /v1/teams/{code}/status``); the command room closes resolved events after its
  review, settles what was handed up at the rung it went to, and re-dispatches escalated events left waiting;
* fast mode runs the escalation sweep itself every ``sweep_every_s`` (the API's own sweeper is off); live mode
  reads the open events every ``discover_every_s`` to see what the API's sweeper did.

Every fact goes to the :class:`~gridmap.simulation.runlog.RunLog`; the run ends with every event of the run
closed or named open with the reason.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import httpx
import numpy as np

from gridmap.core.vocabulary import LOCAL_TZ, OPEN_EVENT_STATUSES
from gridmap.simulation.agents import Job, TeamAgent
from gridmap.simulation.arrivals import PlannedEvent, plan_events, stable_seed
from gridmap.simulation.clock import Agenda, Clock, instant
from gridmap.simulation.driver import Driver
from gridmap.simulation.model import Behaviour
from gridmap.simulation.roads import Leg, Plan, RoadPos, SearchResult
from gridmap.simulation.runlog import RunLog
from gridmap.simulation.world import INTAKE, OPERATOR, World

OPEN = OPEN_EVENT_STATUSES


@dataclass
class RunConfig:
    """What to run: from ``start`` to ``end`` (None: until stopped), then ``drain_s`` more with no new reports."""

    start: dt.datetime
    end: dt.datetime | None
    seed: int
    mode: str  # "fast" | "live"
    drain_s: float = 0.0
    first_event_within_s: float | None = None


@dataclass
class SimEvent:
    """What the simulation knows of an event it reported."""

    id: int
    code: str
    external_id: str
    category: str
    grid: str | None
    reported_t: float
    duplicate_of: int | None
    rung: int = 0
    settling: bool = False  # the command room is settling it at a higher rung
    offers: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class RunSummary:
    events: int
    final: dict[str, int]
    digest: str
    log_records: int
    logins: int
    calls: list[dict]
    teams_on_duty_max: int
    driven_km: float
    first_offer_eta_s_mean: float | None
    open_reasons: dict[str, int]


class Simulation:
    def __init__(self, world: World, driver: Driver, clock: Clock, log: RunLog, behaviour: Behaviour,
                 config: RunConfig, *, stop: threading.Event | None = None,
                 say: Callable[[str], None] = lambda msg: None,
                 housekeeping: Callable[[], None] | None = None, housekeeping_every_s: float = 300.0) -> None:
        self.w, self.api, self.clock, self.log, self.b, self.cfg = world, driver, clock, log, behaviour, config
        self.stop = stop or threading.Event()
        self.say = say
        self.housekeeping, self.housekeeping_every_s = housekeeping, housekeeping_every_s
        self.agenda = Agenda()
        self.origin = clock.origin
        self.events: dict[int, SimEvent] = {}
        self.teams: dict[str, TeamAgent] = {}
        self.claims: dict[str, int] = {}
        self.first_offer_eta: list[float] = []
        self.on_duty_max = 0
        self._reported = 0
        self._t_end = math.inf if config.end is None else (config.end - self.origin).total_seconds()
        for info in world.teams:
            if info.username not in driver.credentials:
                continue  # a team without a member has no phone: it is never dispatched a job it can answer
            base = self._base(info.lon, info.lat)
            self.teams[info.code] = TeamAgent(
                code=info.code, kind=info.kind, grids=info.grids, zone=world.zones[info.code], base=base,
                patrols=info.kind in behaviour.patrolling_kinds, username=info.username,
                rng_patrol=np.random.default_rng(stable_seed(config.seed, "patrol", info.code)),
                rng_gps=np.random.default_rng(stable_seed(config.seed, "gps", info.code)), roads=world.roads,
                behaviour=behaviour)
        self._db_status = {t.code: t.status for t in world.teams}

    # -- helpers ----------------------------------------------------------------------------------------------
    def _base(self, lon: float | None, lat: float | None) -> RoadPos:
        if lon is None or lat is None:
            x, y = self.w.roads.g.node_xy[0]
        else:
            x, y = self.w.to_local.transform(lon, lat)
        return self.w.roads.snap(x, y)[0]

    def _lonlat(self, xy: tuple[float, float]) -> tuple[float, float]:
        lon, lat = self.w.to_lonlat.transform(xy[0], xy[1])
        return round(float(lon), 7), round(float(lat), 7)

    def _now(self, t: float) -> str:
        return instant(self.origin, t).isoformat()

    def _rng(self, *key: object) -> np.random.Generator:
        return np.random.default_rng(stable_seed(self.cfg.seed, *key))

    # -- running --------------------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        self.log.write(0.0, "run", start=self.origin, end=self.cfg.end, seed=self.cfg.seed, mode=self.cfg.mode,
                       behaviour=dict(self.b.table()), teams=len(self.teams))
        self._begin(0.0)
        t_stop = self._t_end + self.cfg.drain_s
        while len(self.agenda) and not self.stop.is_set():
            t_next = self.agenda.next_time()
            assert t_next is not None
            if t_next > t_stop:
                break
            self.clock.advance(t_next)
            if self.stop.is_set():
                break
            t, action = self.agenda.pop()
            action(t)
        t_fin = min(t_stop, self.agenda.next_time() or t_stop) if math.isfinite(t_stop) else self._elapsed()
        if math.isfinite(t_stop) and not self.stop.is_set():
            self.clock.advance(t_stop)
            t_fin = t_stop
        return self._finish(t_fin)

    def _elapsed(self) -> float:
        return (dt.datetime.now(dt.UTC) - self.origin).total_seconds()

    def _begin(self, t: float) -> None:
        """Shifts as they stand, open jobs adopted, then the agenda: fixes, reports, shifts, sweeps."""
        day = self.origin.astimezone(LOCAL_TZ).date()
        for code in sorted(self.teams):
            self.claims[code] = 0
            for d in (day - dt.timedelta(days=1), day):
                self._plan_shifts(code, d, t)
        for code in sorted(self.teams):
            team = self.teams[code]
            want = self.claims[code] > 0
            db = self._db_status.get(code)
            if want and db == "off_duty":
                self._put_status(code, "available", t)
            elif not want and db == "available":
                self._put_status(code, "off_duty", t)
            if want:
                team.go_on_duty(t)
            else:
                team.on_duty = False
        self.log.write(t, "on_duty", teams=[c for c in sorted(self.teams) if self.teams[c].on_duty])
        r = self.api.call(OPERATOR, "events", "GET", "/v1/events",
                          params={"status": ["dispatched", "accepted"], "limit": 500})
        for ev in r.json():  # jobs left open by an earlier run (live mode restarted): the teams carry on
            if ev["team"] in self.teams:
                self._feed(ev["team"], t)
        self._plan_day(day, t)
        self.agenda.at(t, "fixes", self._fixes)
        if self.cfg.mode == "fast":
            self.agenda.at(t + self.b.sweep_every_s, "sweep", self._sweep)
            if self.housekeeping is not None:
                self.agenda.at(t + self.housekeeping_every_s, "end", self._housekeep)
        else:
            self.agenda.at(t + self.b.discover_every_s, "discover", self._discover)

    def _plan_day(self, day: dt.date, t_now: float) -> None:
        """The reports and shift changes of a local day; the next day is planned just before it starts."""
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
        lo = max(midnight, self.origin)
        hi = midnight + dt.timedelta(days=1)
        if self.cfg.end is not None:
            hi = min(hi, self.cfg.end)
        if lo < hi:
            first = self.cfg.first_event_within_s if lo == self.origin else None
            planned = plan_events(self.w.profile, self.b, lo, hi, self.cfg.seed, first_within_s=first)
            for ev in planned:
                self.agenda.at((ev.at - self.origin).total_seconds(), "report", partial(self._report, ev))
            self.log.write(t_now, "plan", day=day.isoformat(), reports=len(planned))
        if day > self.origin.astimezone(LOCAL_TZ).date():
            for code in sorted(self.teams):
                self._plan_shifts(code, day, t_now)
        nxt = hi if self.cfg.end is None else (hi if hi < self.cfg.end else None)
        if nxt is not None:
            t_next = (nxt - self.origin).total_seconds() - 1.0
            self.agenda.at(max(t_next, t_now), "shift", partial(self._plan_day, day + dt.timedelta(days=1)))

    # -- shifts ---------------------------------------------------------------------------------------------
    def _plan_shifts(self, code: str, day: dt.date, t_now: float) -> None:
        """The team's duty intervals starting on ``day``: each adds a claim on duty while it lasts."""
        team = self.teams[code]
        rng = self._rng("shift", code, day.isoformat())
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
        s = self.b.shift_for(team.kind)
        intervals = []
        jitter = rng.normal(0, self.b.shift_jitter_min * 60, 4)
        works = rng.random() < s.days_share
        if s.start_h <= 0 and s.end_h >= 24:
            intervals.append((midnight, midnight + dt.timedelta(days=1, seconds=1)))
        elif works:
            end_h = s.end_h if s.end_h > s.start_h else s.end_h + 24
            intervals.append((midnight + dt.timedelta(hours=s.start_h, seconds=float(jitter[0])),
                              midnight + dt.timedelta(hours=end_h, seconds=float(jitter[1]))))
        if team.kind == "grid_patrol" and rng.random() < self.b.night_cover_share:
            intervals.append((midnight + dt.timedelta(hours=20, seconds=float(jitter[2])),
                              midnight + dt.timedelta(hours=32, seconds=float(jitter[3]))))
        for a, b in intervals:
            ta, tb = (a - self.origin).total_seconds(), (b - self.origin).total_seconds()
            if tb <= t_now:
                continue
            if ta <= t_now:
                self.claims[code] += 1
            else:
                self.agenda.at(ta, "shift", partial(self._shift, code, +1))
            self.agenda.at(tb, "shift", partial(self._shift, code, -1))

    def _shift(self, code: str, delta: int, t: float) -> None:
        self.claims[code] += delta
        team = self.teams[code]
        want = self.claims[code] > 0
        if want and not team.on_duty:
            if self._put_status(code, "available", t):
                team.go_on_duty(t)
        elif not want and team.on_duty:
            if team.job is not None:
                team.going_off = True  # after this job
            else:
                self._go_off(team, t)

    def _go_off(self, team: TeamAgent, t: float) -> None:
        if self._put_status(team.code, "off_duty", t):
            team.go_off_duty(t)
        else:
            team.going_off = True

    def _put_status(self, code: str, status: str, t: float) -> bool:
        r = self.api.call(OPERATOR, "status", "PUT", f"/v1/teams/{code}/status", json={"status": status},
                          ok=(200, 409))
        done = r.status_code == 200
        self.log.write(t, "duty", team=code, status=status, done=done)
        return done

    # -- positions ------------------------------------------------------------------------------------------
    def _fixes(self, t: float) -> None:
        rows = []
        for code in sorted(self.teams):
            team = self.teams[code]
            if not team.on_duty and team.job is None:
                continue
            x, y, _ = team.fix(t)
            rows.append((code, x, y, team.state(t)))
        self.on_duty_max = max(self.on_duty_max, len(rows))
        if rows:
            lon, lat = self.w.to_lonlat.transform(np.array([r[1] for r in rows]), np.array([r[2] for r in rows]))
            acc = round(2 * self.b.gps_sigma_m, 1)
            at = self._now(t)
            for i in range(0, len(rows), 2000):
                batch = [{"team": r[0], "lon": round(float(lo), 7), "lat": round(float(la), 7), "at": at,
                          "accuracy_m": acc} for r, lo, la in zip(rows[i:i + 2000], lon[i:i + 2000], lat[i:i + 2000],
                                                                   strict=True)]
                out = self.api.call(OPERATOR, "positions", "POST", "/v1/teams/positions", json={"positions": batch},
                                    items=len(batch)).json()
                for f in out.get("flagged", []):
                    self.log.write(t, "flagged", team=f["team"], reason=f["reason"])
            if self.log.fixes:
                self.log.write(t, "fixes", fixes=[[r[0], round(float(lo), 7), round(float(la), 7), r[3]]
                                                  for r, lo, la in zip(rows, lon, lat, strict=True)])
        if t + self.b.fix_every_s <= self._t_end + self.cfg.drain_s:
            self.agenda.at(t + self.b.fix_every_s, "fixes", self._fixes)

    # -- reports --------------------------------------------------------------------------------------------
    def _report(self, ev: PlannedEvent, t: float) -> None:
        r = self.api.call(INTAKE, "report", "POST", "/v1/events", json=ev.body(), ok=(200, 201, 404, 409, 422))
        body = r.json()
        if r.status_code >= 400:
            self.log.write(t, "report_refused", seq=ev.seq, external_id=ev.external_id, status=r.status_code,
                           error=body.get("message"))
            return
        e, d, dup = body["event"], body.get("dispatch"), body.get("duplicate")
        self._reported += 1
        self.events[e["id"]] = SimEvent(e["id"], e["code"], ev.external_id, ev.category, e["area"]["grid"], t,
                                        dup["id"] if dup else None)
        self.log.write(t, "report", seq=ev.seq, external_id=ev.external_id, event=e["id"], code=e["code"],
                       channel=ev.channel, category=ev.category, severity=ev.severity, grid=e["area"]["grid"],
                       lon=e["location"]["lon"], lat=e["location"]["lat"], status=e["status"],
                       duplicate_of=dup["id"] if dup else None,
                       team=d.get("team") if d else None, assignment=d.get("assignment_id") if d else None,
                       eta_s=d.get("eta_s") if d else None)
        if d and d.get("eta_s") is not None:
            self.first_offer_eta.append(float(d["eta_s"]))
        if d and d.get("team") in self.teams:
            self._feed(d["team"], t)

    # -- a team's phone -------------------------------------------------------------------------------------
    def _feed(self, code: str, t: float) -> None:
        """The team's phone reads its feed (it was pushed something): a new offer, or a job it holds."""
        team = self.teams[code]
        r = self.api.call(team.username, "feed", "GET", "/v1/me/assignments")
        for a in r.json():
            if team.job is not None and team.job.assignment_id == a["id"]:
                continue
            if a["status"] == "offered":
                self._offer(team, a, t)
            elif a["status"] == "accepted":  # adopted (an earlier run's job)
                self._take_on(team, a, t)

    def _job(self, a: dict, t: float, status: str) -> Job:
        ev = a["event"]
        x, y = self.w.to_local.transform(ev["lon"], ev["lat"])
        return Job(a["id"], ev["id"], ev["code"], ev["category"], status, (float(x), float(y)),
                   route=(a.get("route") or {}).get("coordinates"), eta_s=a.get("eta_s"), offered_at=t)

    def _offer(self, team: TeamAgent, a: dict, t: float) -> None:
        job = self._job(a, t, "offered")
        sim_ev = self.events.get(job.event_id)
        n = 0
        if sim_ev is not None:
            sim_ev.offers[team.code] += 1
            n = sim_ev.offers[team.code]
        rng = self._rng("answer", job.event_code, team.code, n)
        u, delay = rng.random(), float(rng.lognormal(math.log(self.b.answer_median_s), self.b.answer_sigma))
        decision = ("no_answer" if u < self.b.no_answer_share else
                    "decline" if u < self.b.no_answer_share + self.b.decline_share else "accept")
        team.job = job
        self.log.write(t, "offer", team=team.code, assignment=job.assignment_id, event=job.event_id,
                       eta_s=job.eta_s, rank=a.get("rank"), decision=decision,
                       answer_in_s=None if decision == "no_answer" else round(delay, 3))
        respond_by = dt.datetime.fromisoformat(a["respond_by"]) if a.get("respond_by") else None
        if decision == "no_answer":  # the phone stays in a pocket: the patrol goes on, the offer lapses
            lapse = (respond_by - self.origin).total_seconds() if respond_by else t + 120.0
            self.agenda.at(lapse, "answer", partial(self._lapse, team.code, job.assignment_id))
            return
        team.hold(t)
        self.agenda.at(t + delay, "answer",
                       partial(self._answer, team.code, job.assignment_id, decision))

    def _lapse(self, code: str, aid: int, t: float) -> None:
        team = self.teams[code]
        if team.job is not None and team.job.assignment_id == aid and team.job.status == "offered":
            team.job = None
            self.log.write(t, "lapsed", team=code, assignment=aid)
            self._free(team, t)

    def _free(self, team: TeamAgent, t: float) -> None:
        if team.going_off and self.claims[team.code] <= 0:
            self._go_off(team, t)
        else:
            team.going_off = False
            team.resume(t)

    def _post_action(self, code: str, aid: int, action: str, t: float) -> tuple[TeamAgent, Job, httpx.Response] | None:
        """Send a team's ``action`` on assignment ``aid`` with its current fix (as the phone does); None when the
        team has moved on from that assignment meanwhile."""
        team = self.teams[code]
        job = team.job
        if job is None or job.assignment_id != aid:
            return None
        lon, lat = self._lonlat(team.fix(t)[:2])
        kind = "arrive" if action == "arrive" else "answer"
        r = self.api.call(team.username, kind, "POST", f"/v1/assignments/{aid}/{action}",
                          json={"lon": lon, "lat": lat}, ok=(200, 404, 409))
        return team, job, r

    def _answer(self, code: str, aid: int, action: str, t: float) -> None:
        if (sent := self._post_action(code, aid, action, t)) is None:
            return
        team, job, r = sent
        if r.status_code != 200:  # too late: the offer lapsed and went to the next team
            self.log.write(t, "answer_refused", team=code, assignment=aid, action=action, status=r.status_code,
                           error=r.json().get("message"))
            team.job = None
            self._free(team, t)
            return
        body = r.json()
        self.log.write(t, "answer", team=code, assignment=aid, action=action, event=job.event_id)
        if action == "decline":
            team.job = None
            self._free(team, t)
            d = body.get("dispatch")
            if d and d.get("team") in self.teams:
                self._feed(d["team"], t)
            return
        job.status = "accepted"
        self._set_off(team, job, t)

    def _take_on(self, team: TeamAgent, a: dict, t: float) -> None:
        job = self._job(a, t, "accepted")
        team.job = job
        self.log.write(t, "adopt", team=team.code, assignment=job.assignment_id, event=job.event_id)
        if a["event"]["status"] == "on_site":
            job.status = "on_site"
            team.drive([], job.xy, t)
            self._plan_finish(team, job, t)
        else:
            self._set_off(team, job, t)

    def _set_off(self, team: TeamAgent, job: Job, t: float) -> None:
        """Drive to the event: join the API's route from where the team really is, follow it, walk in."""
        pos, t_dep = team.road_place(t)
        search = self.w.roads.search(pos)
        ev_pos, ev_walk_m, _ = self.w.roads.snap(*job.xy)
        shortest = search.plan_to(ev_pos)
        legs, joined = self._route_legs(search, job, t_dep)
        if legs is None:
            if shortest is None:
                self.log.write(t, "unreachable", team=team.code, event=job.event_id)
                legs = []
            else:
                legs = search.legs(shortest, t_dep)
        start_xy = self.w.roads.point(pos)
        t_arr = team.drive(legs, job.xy, t_dep)
        drive_s = (legs[-1].t1 - t_dep) if legs else 0.0
        dist = sum((lg.f1 - lg.f0) * float(self.w.roads.g.length_m[lg.edge]) for lg in legs)
        self.log.write(t, "drive", team=team.code, assignment=job.assignment_id, event=job.event_id,
                       depart_t=round(t_dep, 3), arrive_t=round(t_arr, 3), start=self._lonlat(start_xy),
                       start_road=[int(self.w.roads.g.edge_ids[pos.edge]), round(pos.frac, 9)],
                       to=self._lonlat(job.xy), drive_s=round(drive_s, 3), walk_s=round(t_arr - t_dep - drive_s, 3),
                       distance_m=round(dist, 1), api_eta_s=job.eta_s, follows_api_route=joined,
                       shortest_s=None if shortest is None else round(shortest.seconds + ev_walk_m / 1.25, 3))
        self.agenda.at(t_arr, "arrive", partial(self._arrive, team.code, job.assignment_id))

    def _route_legs(self, search: SearchResult, job: Job, t0: float) -> tuple[list[Leg] | None, bool]:
        """The API's route as legs, joined from the team's true place (the quickest way onto it)."""
        if not job.route or len(job.route) < 3:
            return None, False
        lon = np.array([c[0] for c in job.route])
        lat = np.array([c[1] for c in job.route])
        x, y = self.w.to_local.transform(lon, lat)
        parts = self.w.roads.route_edges(np.column_stack([x, y])[1:-1])
        if not parts:
            return None, False
        roads = self.w.roads
        times = [(fb - fa) * roads.edge_time(e) for e, fa, fb in parts]
        rest = np.cumsum(times[::-1])[::-1].tolist() + [0.0]  # rest[i]: from part i's start fraction on
        best: tuple[float, int, Plan | None, float] | None = None
        for i, (e, fa, fb) in enumerate(parts):
            entry = RoadPos(e, 0.0) if i == 0 or fa < 1e-6 else None
            if entry is not None:
                plan = search.plan_to(entry)
                if plan is not None:
                    cost = plan.seconds + fb * roads.edge_time(e) + rest[i + 1]
                    if best is None or cost < best[0]:
                        best = (cost, i, plan, 0.0)
        e0, fa0, fb0 = parts[0]
        for st in (search.start, roads.twin_pos(search.start)):  # already on the route's first edge
            if st is not None and st.edge == e0 and st.frac <= fb0:
                cost = (fb0 - st.frac) * roads.edge_time(e0) + rest[1]
                if best is None or cost < best[0]:
                    best = (cost, 0, Plan(0.0, st, None, st), st.frac)
        if best is None:
            return None, False
        _, i, plan, f_first = best
        assert plan is not None
        legs = search.legs(plan, t0) if plan.seconds > 0 or plan.via_node is not None else []
        t = legs[-1].t1 if legs else t0
        for j in range(i, len(parts)):
            e, fa, fb = parts[j]
            f0 = f_first if j == i else fa
            d = max(fb - f0, 0.0) * roads.edge_time(e)
            legs.append(Leg(t, t + d, edge=e, f0=f0, f1=fb, kind="drive"))
            t += d
        return legs, True

    def _arrive(self, code: str, aid: int, t: float) -> None:
        if (sent := self._post_action(code, aid, "arrive", t)) is None:
            return
        team, job, r = sent
        if r.status_code != 200:
            self.log.write(t, "arrive_refused", team=code, assignment=aid, error=r.json().get("message"))
            team.job = None
            team.leave_site(t)
            self._free(team, t)
            return
        job.status = "on_site"
        self.log.write(t, "arrive", team=code, assignment=aid, event=job.event_id)
        self._plan_finish(team, job, t)

    def _plan_finish(self, team: TeamAgent, job: Job, t: float) -> None:
        rng = self._rng("site", job.event_code)
        b = self.b
        median = b.on_site_median_min.get(job.category, 60.0)
        minutes = float(rng.lognormal(math.log(median), b.on_site_sigma))
        if rng.random() < b.slow_share:
            minutes *= b.slow_factor
        other = rng.random() < b.hand_up_share
        action = "hand-up" if other or minutes > b.on_site_cap_min else "resolve"
        stay = min(minutes, b.hand_up_after_min if action == "hand-up" else minutes)
        self.agenda.at(t + stay * 60.0, "finish",
                       partial(self._finish_job, team.code, job.assignment_id, action))

    def _finish_job(self, code: str, aid: int, action: str, t: float) -> None:
        team = self.teams[code]
        job = team.job
        if job is None or job.assignment_id != aid:
            return
        lon, lat = self._lonlat(team.fix(t)[:2])
        note = "处置完毕 settled on site" if action == "resolve" else "需上级处置 needs the next rung"
        r = self.api.call(team.username, "finish", "POST", f"/v1/assignments/{aid}/{action}",
                          json={"lon": lon, "lat": lat, "note": note}, ok=(200, 404, 409))
        team.job = None
        team.leave_site(t)
        if r.status_code == 200:
            team.jobs_done += 1
            ev = r.json()["event"]
            self.log.write(t, action.replace("-", "_"), team=code, assignment=aid, event=job.event_id,
                           rung=ev["escalation"]["rung"])
            sim_ev = self.events.get(job.event_id)
            if action == "resolve":
                self._plan_close(job.event_id, t)
            elif sim_ev is not None:
                sim_ev.rung = ev["escalation"]["rung"]
                self._plan_higher_rung(sim_ev, ev["escalation"]["rung"], t)
        else:
            self.log.write(t, "finish_refused", team=code, assignment=aid, action=action, error=r.json().get("message"))
        self._free(team, t)

    # -- the command room -----------------------------------------------------------------------------------
    def _plan_close(self, event_id: int, t: float) -> None:
        ev = self.events.get(event_id)
        key = ev.code if ev else event_id
        hours = float(self._rng("review", key).lognormal(math.log(self.b.review_median_h), self.b.review_sigma))
        self.agenda.at(t + hours * 3600.0, "operator", partial(self._close, event_id))

    def _close(self, event_id: int, t: float) -> None:
        r = self.api.call(OPERATOR, "operator", "POST", f"/v1/events/{event_id}/transitions",
                          json={"action": "close", "note": "回访确认 verified with the reporter"}, ok=(200, 409))
        self.log.write(t, "close", event=event_id, done=r.status_code == 200)

    def _plan_higher_rung(self, ev: SimEvent, rung: int, t: float) -> None:
        limit = self.w.rungs.get((ev.category, rung), (240, "", False))[0]
        minutes = float(self._rng("rung", ev.code, rung).lognormal(
            math.log(max(limit * self.b.higher_rung_share_of_limit, 1.0)), 0.5))
        ev.settling = True
        self.agenda.at(t + minutes * 60.0, "operator", partial(self._settle, ev.id, rung))

    def _settle(self, event_id: int, rung: int, t: float) -> None:
        """The rung the event went up to settles it (the command room records it: arrive, resolve)."""
        ev = self.events[event_id]
        if any(tm.job is not None and tm.job.event_id == event_id for tm in self.teams.values()):
            ev.settling = False
            return  # a team holds it again
        r = self.api.call(OPERATOR, "operator", "GET", f"/v1/events/{event_id}")
        status = r.json()["status"]
        handler = self.w.rungs.get((ev.category, rung), (0, "the next rung", False))[1]
        steps = {"dispatched": ["accept", "arrive", "resolve"], "accepted": ["arrive", "resolve"],
                 "on_site": ["resolve"]}.get(status, [])
        done = status
        for action in steps:
            rr = self.api.call(OPERATOR, "operator", "POST", f"/v1/events/{event_id}/transitions",
                               json={"action": action, "note": f"由{handler}处置 settled by {handler}"}, ok=(200, 409))
            if rr.status_code != 200:
                break
            done = rr.json()["event"]["status"]
        ev.settling = False
        self.log.write(t, "settled", event=event_id, rung=rung, handler=handler, status=done)
        if done == "resolved":
            self._plan_close(event_id, t)

    def _escalated(self, event_id: int, rung: int, t: float) -> None:
        ev = self.events.get(event_id)
        if ev is None or rung <= ev.rung:
            return
        ev.rung = rung
        self.log.write(t, "escalated", event=event_id, rung=rung)
        self.agenda.at(t + self.b.redispatch_escalated_min * 60.0, "operator",
                       partial(self._look_after, event_id))

    def _look_after(self, event_id: int, t: float) -> None:
        """An escalated event: nobody holds it and it waits -> dispatch it again; handed up -> its rung settles."""
        ev = self.events[event_id]
        if ev.settling or any(tm.job is not None and tm.job.event_id == event_id for tm in self.teams.values()):
            return
        status = self.api.call(OPERATOR, "operator", "GET", f"/v1/events/{event_id}").json()["status"]
        if status == "reported" and ev.duplicate_of is None:
            r = self.api.call(OPERATOR, "operator", "POST", f"/v1/events/{event_id}/dispatch", ok=(200, 409))
            d = r.json() if r.status_code == 200 else {}
            self.log.write(t, "redispatch", event=event_id, team=d.get("team"), waiting=d.get("waiting", True))
            if d.get("team") in self.teams:
                self._feed(d["team"], t)
            else:
                self.agenda.at(t + self.b.redispatch_escalated_min * 60.0, "operator",
                               partial(self._look_after, event_id))
        elif status in ("dispatched", "accepted", "on_site"):
            self._plan_higher_rung(ev, ev.rung, t)

    def _sweep(self, t: float) -> None:
        body = self.api.call(OPERATOR, "sweep", "POST", "/v1/escalation/sweep").json()
        for item in body.get("timeouts", []) + body.get("offered", []):
            if item.get("team") in self.teams:
                self._feed(item["team"], t)
        for item in body.get("escalated", []):
            self._escalated(item["event_id"], item["to_rung"], t)
        if body.get("timeouts") or body.get("offered") or body.get("escalated"):
            self.log.write(t, "sweep", timeouts=[[i["event_id"], i.get("team")] for i in body.get("timeouts", [])],
                           offered=[[i["event_id"], i.get("team")] for i in body.get("offered", [])],
                           escalated=[[i["event_id"], i["to_rung"]] for i in body.get("escalated", [])])
        if t + self.b.sweep_every_s <= self._t_end + self.cfg.drain_s:
            self.agenda.at(t + self.b.sweep_every_s, "sweep", self._sweep)

    def _housekeep(self, t: float) -> None:
        """Fast mode: the database's upkeep that simulated time outruns (nothing the API sees changes)."""
        assert self.housekeeping is not None
        self.housekeeping()
        if t + self.housekeeping_every_s <= self._t_end + self.cfg.drain_s:
            self.agenda.at(t + self.housekeeping_every_s, "end", self._housekeep)

    def _discover(self, t: float) -> None:
        """Live mode: what the API's own sweep did (offers after a time-out, escalations)."""
        rows = self._open_events()
        for ev in rows:
            team = ev.get("team")
            if ev["status"] == "dispatched" and team in self.teams:
                tm = self.teams[team]
                if tm.job is None or tm.job.event_id != ev["id"]:
                    self._feed(team, t)
            if ev["id"] in self.events:
                self._escalated(ev["id"], ev["escalation"]["rung"], t)
        self.agenda.at(t + self.b.discover_every_s, "discover", self._discover)

    def _open_events(self) -> list[dict]:
        r = self.api.call(OPERATOR, "events", "GET", "/v1/events",
                          params={"status": list(OPEN), "since": self.origin.isoformat(), "limit": 500})
        return list(r.json())

    # -- the end --------------------------------------------------------------------------------------------
    def _finish(self, t: float) -> RunSummary:
        rows: list[dict] = []
        offset = 0
        while True:
            r = self.api.call(OPERATOR, "events", "GET", "/v1/events",
                              params={"since": self.origin.isoformat(), "limit": 500, "offset": offset})
            page = r.json()
            rows += page
            if len(page) < 500:
                break
            offset += 500
        final: dict[str, int] = defaultdict(int)
        reasons: dict[str, int] = defaultdict(int)
        holders = {tm.job.event_id: tm for tm in self.teams.values() if tm.job is not None}
        by_id = {e["id"]: e for e in rows}
        for e in sorted(rows, key=lambda e: e["id"]):
            if e["id"] not in self.events:
                continue
            final[e["status"]] += 1
            reason = None if e["status"] == "closed" else self._reason(e, holders.get(e["id"]), by_id, t)
            if reason:
                reasons[reason.split(":")[0]] += 1
            self.log.write(t, "final", event=e["id"], code=e["code"], status=e["status"],
                           rung=e["escalation"]["rung"], reason=reason,
                           reported_at=e["reported_at"], on_site_at=e["milestones"]["on_site"])
        driven = sum(tm.travelled_m for tm in self.teams.values()) / 1000.0
        eta = float(np.mean(self.first_offer_eta)) if self.first_offer_eta else None
        self.log.write(t, "end", events=self._reported, final=dict(sorted(final.items())), driven_km=round(driven, 3),
                       first_offer_eta_s_mean=None if eta is None else round(eta, 3))
        self.log.flush()
        return RunSummary(self._reported, dict(final), self.log.digest, self.log.count, self.api.logins,
                          self.api.stats.summary(), self.on_duty_max, driven, eta, dict(reasons))

    def _reason(self, e: dict, holder: TeamAgent | None, by_id: dict[int, dict], t: float) -> str:
        """Why an event of the run is not closed at the end (every one gets a reason)."""
        status, rung = e["status"], e["escalation"]["rung"]
        if e["duplicate_of"] is not None:
            master = by_id.get(e["duplicate_of"]["id"])
            return f"near-duplicate: of {e['duplicate_of']['code']} ({master['status'] if master else 'earlier'}); " \
                   "it closes with it"
        if status == "resolved":
            return "resolved: the command room closes it after its review and call-back (median " \
                   f"{self.b.review_median_h / 24:.1f} days)"
        if holder is not None and holder.job is not None:
            what = {"offered": "offered to", "accepted": "on the way:", "on_site": "on site:"}[holder.job.status]
            return f"in hand: {what} {holder.code}"
        if rung > 0:
            return f"escalated: at rung {rung} ({self.w.rungs.get((e['category'], rung), (0, '?', 0))[1]}), " \
                   "being settled there"
        if status == "reported":
            return "waiting: no team could take it yet (the sweep offers it again every " \
                   f"{self.b.sweep_every_s:.0f} s)"
        return f"in hand: {status} by {e['team']}"
