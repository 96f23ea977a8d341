"""A short seeded simulation against the real API on a copy of the sample street, and what must hold whatever
the figures: every event ends closed or open with a reason; no team ever holds two active assignments; no team
arrives sooner than the road allows from where it was; every position lies on a road (or at the event the team
is at) within the GPS noise.

One run serves every test of this module: half an hour of a busy Monday morning (the sample year's reports,
eight times as many) and half an hour more with no new reports.
"""

from __future__ import annotations

import math
from collections import defaultdict

import networkx as nx
import numpy as np
import pytest
from sqlalchemy import text

from gridmap.routing.roadgraph import WALK_SPEED

from .conftest import BUSY, short_run

pytestmark = [pytest.mark.db]


@pytest.fixture(scope="module")
def run(sim_copy, sim_settings):
    engine, world, creds = sim_copy("sim_invariants")
    r = short_run(engine, world, creds, sim_settings, seed=7, minutes=30, drain_min=30)
    yield r
    engine.dispose()


def _by(log, kind):
    return [r for r in log if r["kind"] == kind]


def test_the_run_did_what_a_street_does(run):
    """Not tuned figures: only that the run exercised intake, dispatch, answers, drives, arrivals, settling."""
    kinds = {r["kind"] for r in run.log}
    assert {"report", "offer", "answer", "drive", "arrive", "resolve", "fixes", "final", "end"} <= kinds, kinds
    assert len(_by(run.log, "report")) >= 10
    assert run.summary.events == len(_by(run.log, "report"))


def test_every_event_ends_closed_or_open_with_a_reason(run):
    with run.engine.connect() as conn:
        db = dict(conn.execute(text("SELECT id, status FROM events WHERE external_id LIKE 'SIM-%'")).all())
    finals = {r["event"]: r for r in _by(run.log, "final")}
    assert set(finals) == set(db) and db, "every event the run reported is accounted for at the end"
    for eid, rec in finals.items():
        assert rec["status"] == db[eid]
        if rec["status"] != "closed":
            assert rec["reason"], f"event {eid} is {rec['status']} with no reason"
            head = rec["reason"].split(":")[0]
            assert head in {"resolved", "in hand", "escalated", "waiting", "near-duplicate"}, rec["reason"]
            if head == "resolved":
                assert rec["status"] == "resolved"
            if head == "waiting":
                assert rec["status"] == "reported"


def test_no_team_ever_holds_two_active_assignments(run):
    """In the run (an offer while the team still held another is a bug of the simulator or of dispatch) and in
    the database (each team's assignments, offered to settled, never overlap)."""
    holding: dict[str, int | None] = defaultdict(lambda: None)
    for r in run.log:
        k = r["kind"]
        if k == "offer":
            assert holding[r["team"]] is None, f"{r['team']} got {r['assignment']} holding {holding[r['team']]}"
            holding[r["team"]] = r["assignment"]
        elif k in ("lapsed", "answer_refused", "resolve", "hand_up", "arrive_refused", "finish_refused") or \
                (k == "answer" and r["action"] == "decline"):
            assert holding[r["team"]] == r["assignment"]
            holding[r["team"]] = None
    with run.engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT a.team_id, a.offered_at,
                   COALESCE(CASE WHEN a.status IN ('offered', 'accepted') THEN '9999-01-01'::timestamptz END,
                            (SELECT min(t.at) FROM event_transitions t WHERE t.event_id = a.event_id
                              AND t.at >= COALESCE(a.responded_at, a.offered_at)
                              AND t.action IN ('resolve', 'hand_up', 'decline', 'timeout')),
                            a.responded_at, a.offered_at) AS until
            FROM assignments a ORDER BY a.team_id, a.offered_at""")).all()
    last: dict[int, object] = {}
    for team, offered, until in rows:
        if team in last:
            assert offered >= last[team], f"team {team}: an assignment offered at {offered} overlaps the one before"
        last[team] = until


def _quickest(g, nxg, edge: int, frac: float, ex: float, ey: float) -> float:
    """The quickest road time from a place on a directed edge (either way on a two-way road, as dispatch assumes)
    to a door, computed apart from the simulator: networkx's Dijkstra from the place's two ways off its edge, to
    the door's road place (its edge or twin, as gridmap snaps it) and the walk from there."""
    seeds = {int(g.edge_v[edge]): (1.0 - frac) * g.time_s[edge]}
    tw = int(g.twin[edge])
    if tw >= 0:
        v = int(g.edge_v[tw])
        seeds[v] = min(seeds.get(v, np.inf), frac * g.time_s[tw])
    nxg.add_weighted_edges_from([("src", n, c) for n, c in seeds.items()], weight="time")
    try:
        dist = nx.single_source_dijkstra_path_length(nxg, "src", weight="time")
    finally:
        nxg.remove_node("src")
    door = g.snap([ex], [ey], None)
    best = np.inf
    e, f = int(door.edge[0]), float(door.fraction[0])
    for de, df in ((e, f), (int(door.twin[0]), 1.0 - f)):
        if de < 0:
            continue
        best = min(best, dist.get(int(g.edge_u[de]), np.inf) + df * g.time_s[de])
        for se, sf in ((edge, frac), (tw, 1.0 - frac)):  # on the door's own edge, before it
            if se == de and sf <= df:
                best = min(best, (df - sf) * g.time_s[de])
    return float(best + float(door.distance_m[0]) / WALK_SPEED)


def test_no_arrival_is_sooner_than_the_road_allows(run):
    """Each drive took at least the quickest road time from where the team really was to the door (computed
    here, apart from the simulator), and the simulator's own figure of it agrees."""
    t = run.world.to_local
    drives = _by(run.log, "drive")
    assert drives
    g = run.world.roads.g
    nxg = nx.DiGraph()
    for u, v, w in zip(g.edge_u.tolist(), g.edge_v.tolist(), g.time_s.tolist(), strict=True):
        if not nxg.has_edge(u, v) or nxg[u][v]["time"] > w:
            nxg.add_edge(u, v, time=w)
    index = {int(i): k for k, i in enumerate(g.edge_ids.tolist())}
    for d in drives:
        ex, ey = t.transform(*d["to"])
        quickest = _quickest(g, nxg, index[d["start_road"][0]], d["start_road"][1], ex, ey)
        took = d["arrive_t"] - d["depart_t"]
        assert math.isfinite(quickest)
        assert took >= quickest - 0.05, f"{d['team']} took {took:.1f} s where the road needs {quickest:.1f} s: {d}"
        assert d["shortest_s"] == pytest.approx(quickest, abs=0.05)
    arrivals = {(r["team"], r["assignment"]): r["t"] for r in _by(run.log, "arrive")}
    for d in drives:
        if (d["team"], d["assignment"]) in arrivals:  # the API heard of the arrival when the team got there
            assert arrivals[(d["team"], d["assignment"])] == pytest.approx(d["arrive_t"], abs=0.002)


def test_positions_lie_on_roads_within_the_gps_noise(run):
    """Every fix sent lies within the phone's clipped noise of a road; while on site, of the event's door."""
    clip = BUSY.gps_sigma_m * BUSY.gps_clip_sigmas + 0.01
    t = run.world.to_local
    g = run.world.roads.g
    door: dict[str, tuple[float, float]] = {}
    checked = 0
    for r in run.log:
        if r["kind"] == "drive":
            door[r["team"]] = t.transform(*r["to"])
        if r["kind"] != "fixes":
            continue
        x, y = t.transform(np.array([f[1] for f in r["fixes"]]), np.array([f[2] for f in r["fixes"]]))
        snap = g.snap(x, y, None)
        for i, (code, _, _, state) in enumerate(r["fixes"]):
            if state == "on_site":
                dx, dy = door[code]
                assert math.hypot(x[i] - dx, y[i] - dy) <= clip, (r["t"], code)
            elif state == "walking":  # between the road and the door: within noise of that line
                dx, dy = door[code]
                foot = g.snap([dx], [dy], None)
                reach = float(foot.distance_m[0]) + clip
                assert math.hypot(x[i] - dx, y[i] - dy) <= reach + 1e-6 or snap.distance_m[i] <= clip
            else:
                assert snap.distance_m[i] <= clip, f"{code} ({state}) is {snap.distance_m[i]:.1f} m off the road"
            checked += 1
    assert checked > 1000
    # and the positions the API stored are those fixes: on a road (or at a door) within the noise
    with run.engine.connect() as conn:
        stored = conn.execute(text("SELECT code, ST_X(geom), ST_Y(geom) FROM teams WHERE status <> 'off_duty'")).all()
    x, y = t.transform(np.array([s[1] for s in stored]), np.array([s[2] for s in stored]))
    off = g.snap(x, y, None).distance_m
    doors = [door.get(s[0]) for s in stored]
    for i, code in enumerate(s[0] for s in stored):
        near_door = doors[i] is not None and math.hypot(x[i] - doors[i][0], y[i] - doors[i][1]) <= \
            float(g.snap([doors[i][0]], [doors[i][1]], None).distance_m[0]) + clip
        assert off[i] <= clip or near_door, f"{code} stored {off[i]:.1f} m off the road"


def test_walks_are_at_walking_speed(run):
    """The last metres, from the road to the door, at gridmap's walking speed (the ETA's own)."""
    t = run.world.to_local
    g = run.world.roads.g
    for d in _by(run.log, "drive"):
        ex, ey = t.transform(*d["to"])
        walk_m = float(g.snap([ex], [ey], None).distance_m[0])
        assert d["walk_s"] == pytest.approx(walk_m / WALK_SPEED, abs=0.01)
