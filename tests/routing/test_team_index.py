"""TeamIndex (k-nearest teams by road) and network_times on small hand-made graphs with known answers.

The reference for the random cases is independent of the router's slot bookkeeping: every snapped point
is inserted into the graph as a real node (splitting its edge and the twin), then networkx Dijkstra runs
on that subdivided graph.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import shapely

from gridmap.routing.hierarchy import Hierarchy
from gridmap.routing.many_to_one import network_times
from gridmap.routing.roadgraph import WALK_SPEED, RoadGraph
from gridmap.routing.team_index import FALLBACK_SPEED, TeamIndex
from tests.graphs import make_graph, ring

NOW = 1_800_000_000.0
SKILLS = ["fire", "mediation", "patrol"]


def router_with(g, teams: dict[str, tuple], **kw) -> TeamIndex:
    """teams: code -> (x, y[, status[, skills[, age_s[, grid[, workload]]]]])."""
    r = TeamIndex(g, SKILLS, **kw)
    for code, spec in teams.items():
        x, y, status, skills, age, grid, workload = (*spec, *("available", ["fire"], 0.0, None, 0)[len(spec) - 2:])
        r.set_team(code, status=status, skills=skills, grid=grid, workload=workload)
        r.move_teams([code], [x], [y], NOW - age)
    return r


def by_team(ranking):
    return {c.team: c for c in ranking.picked}


# -- the independent reference ---------------------------------------------------------------------------
def subdivided_etas(g: RoadGraph, ox, oy, dx, dy, max_snap_m: float = 500.0) -> np.ndarray:
    """ETA (s) from each origin to each destination on the graph with every snapped point made a node."""
    so, sd = g.snap(ox, oy, max_snap_m), g.snap(dx, dy, max_snap_m)
    on_edge: dict[int, list[tuple[float, tuple]]] = {}
    for tag, s in (("o", so), ("d", sd)):
        for j in range(len(s)):
            e = int(s.edge[j])
            if e < 0:
                continue
            on_edge.setdefault(e, []).append((float(s.fraction[j]), (tag, j)))
            if s.twin[j] >= 0:
                on_edge.setdefault(int(s.twin[j]), []).append((1.0 - float(s.fraction[j]), (tag, j)))
    h = nx.DiGraph()
    h.add_nodes_from(range(g.n_nodes))

    def add(a, b, w):
        if not h.has_edge(a, b) or h[a][b]["w"] > w:
            h.add_edge(a, b, w=w)

    for e in range(g.n_edges):
        pts = sorted(on_edge.get(e, []))
        chain = [(0.0, int(g.edge_u[e])), *pts, (1.0, int(g.edge_v[e]))]
        for (fa, a), (fb, b) in zip(chain, chain[1:], strict=False):
            add(a, b, (fb - fa) * g.time_s[e])
    out = np.full((len(so), len(sd)), np.inf)
    for i in range(len(so)):
        if so.edge[i] < 0:
            continue
        dist = nx.single_source_dijkstra_path_length(h, ("o", i), weight="w")
        for j in range(len(sd)):
            if sd.edge[j] >= 0 and ("d", j) in dist:
                out[i, j] = so.distance_m[i] / WALK_SPEED + dist[("d", j)] + sd.distance_m[j] / WALK_SPEED
    return out


def random_city(seed: int, n: int = 7, spacing: float = 200.0, one_way: float = 0.35):
    """An n x n street grid with jittered nodes, some one-way links (random direction) and a diagonal."""
    rng = np.random.default_rng(seed)
    nodes = {f"{i},{j}": (i * spacing + rng.uniform(-30, 30), j * spacing + rng.uniform(-30, 30))
             for i in range(n) for j in range(n)}
    roads = []
    for i in range(n):
        for j in range(n):
            for di, dj in ((1, 0), (0, 1)):
                if i + di < n and j + dj < n:
                    a, b = f"{i},{j}", f"{i + di},{j + dj}"
                    if rng.random() < 0.5:
                        a, b = b, a
                    roads.append((a, b, bool(rng.random() >= one_way)))
    roads.append(("0,0", f"{n - 1},{n - 1}", False, [(spacing * 2.5, spacing * 3.5)]))
    g, _ = make_graph(nodes, roads, speed=8.0)
    return g, rng


def check_slot_lists(r: TeamIndex) -> None:
    """The per-node slot lists are well-formed and hold exactly the hung slots of every placed team."""
    g = r.g
    n = len(r.codes)
    seen = []
    for node in range(g.n_nodes):
        s, prev = int(r.head[node]), -1
        while s >= 0:
            assert r.slot_node[s] == node and r.slot_prev[s] == prev
            seen.append(s)
            prev, s = s, int(r.slot_next[s])
    assert len(seen) == len(set(seen))
    assert set(seen) == {s for s in range(2 * n) if r.slot_node[s] >= 0}
    for i in range(n):
        e = int(r.edge[i])
        if e < 0:
            assert r.slot_node[2 * i] == -1 and r.slot_node[2 * i + 1] == -1
            continue
        walk = r.walk_s[i]
        assert r.slot_node[2 * i] == g.edge_v[e]
        assert r.slot_cost[2 * i] == pytest.approx(walk + (1 - r.frac[i]) * g.time_s[e])
        t = int(g.twin[e])
        if t >= 0:
            assert r.slot_node[2 * i + 1] == g.edge_v[t]
            assert r.slot_cost[2 * i + 1] == pytest.approx(walk + r.frac[i] * g.time_s[t])
        else:
            assert r.slot_node[2 * i + 1] == -1
    for e, members in r._edge_teams.items():
        expect = {i for i in range(n) if r.edge[i] >= 0 and (r.edge[i] == e or g.twin[r.edge[i]] == e)}
        assert members == expect, e


def summary(ranking):
    return sorted((round(c.eta_s, 6), c.team) for c in ranking.picked)


# -- one-way and two-way, on the same edge ---------------------------------------------------------------
def test_team_past_the_event_on_a_one_way_street_drives_around():
    r = router_with(ring(), {"T": (600.0, 0.0)})
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"])
    assert rk.method == "road" and rk.event_snap_m == pytest.approx(0.0)
    c = rk.picked[0]
    assert c.team == "T" and c.method == "road" and c.rank == 1
    # 0.4 of A->B (40 s), B->C->D->A (300 s), 0.3 of A->B (30 s)
    assert c.eta_s == pytest.approx(370.0)
    assert c.distance_m == pytest.approx(3700.0)
    assert c.route.coords[0] == pytest.approx((600.0, 0.0)) and c.route.coords[-1] == pytest.approx((300.0, 0.0))
    assert c.route.length == pytest.approx(3700.0)
    assert shapely.Point(1000, 1000).distance(c.route) < 1e-6  # it really went round the block


def test_team_on_the_twin_of_a_two_way_street_turns_back():
    r = router_with(ring(two_way_ab=True), {"T": (600.0, 0.0)})
    c = r.rank(300.0, 0.0, now=NOW, skills=["fire"]).picked[0]
    assert c.eta_s == pytest.approx(30.0)
    assert c.distance_m == pytest.approx(300.0)
    assert c.route.length == pytest.approx(300.0)


def test_same_edge_team_before_the_event_drives_straight_on_with_walks_added():
    r = router_with(ring(), {"before": (100.0, 50.0), "after": (600.0, 0.0)})
    rk = r.rank(300.0, -25.0, now=NOW, skills=["fire"])
    assert [c.team for c in rk.picked] == ["before", "after"]
    before, after = rk.picked
    # walk 50 m (40 s) + 200 m of road (20 s) + walk 25 m (20 s)
    assert before.eta_s == pytest.approx(80.0)
    assert before.distance_m == pytest.approx(200.0)
    assert after.eta_s == pytest.approx(370.0 + 20.0)
    assert rk.event_snap_m == pytest.approx(25.0)


def test_team_exactly_at_the_event_and_teams_on_nodes():
    r = router_with(ring(), {"here": (300.0, 0.0), "atB": (1000.0, 0.0), "atA": (0.0, 0.0)})
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=3)
    etas = {c.team: c.eta_s for c in rk.picked}
    assert etas["here"] == pytest.approx(0.0)
    assert etas["atA"] == pytest.approx(30.0)
    assert etas["atB"] == pytest.approx(330.0)


# -- the awkward parts of a real network -------------------------------------------------------------------
def test_team_in_a_one_way_stub_cannot_reach_the_event_and_the_note_says_so():
    g = ring(extra=[("B", "E", False)])
    assert g.n_scc == 2
    r = router_with(g, {"stuck": (1500.0, 0.0)})
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=2, max_eta_s=1e9)
    assert rk.picked == [] and rk.method == "road"
    assert "cannot reach the event by road" in rk.note
    # with a reachable team as well: the stub team is still never picked
    r.set_team("ring", status="available", skills=["fire"])
    r.move_teams(["ring"], [0.0], [500.0], NOW)
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=2, max_eta_s=1e9)
    assert [c.team for c in rk.picked] == ["ring"]
    assert rk.picked[0].eta_s == pytest.approx(80.0)
    assert "1 other eligible team" in rk.note
    # the other way round works: an event in the stub is reached from the ring
    rk = r.rank(1500.0, 10.0, now=NOW, skills=["fire"], k=2)
    assert rk.picked[0].team == "stuck" and rk.picked[0].eta_s == pytest.approx(10.0 / WALK_SPEED)
    assert rk.picked[1].eta_s == pytest.approx(50 + 100 + 50 + 10 / WALK_SPEED)


def test_event_far_from_any_road_falls_back_to_straight_line_with_a_label():
    r = router_with(ring(), {"near": (900.0, 900.0), "far": (0.0, 0.0), "busy": (1000.0, 1000.0, "assigned")},
                    max_snap_m=500.0)
    rk = r.rank(2000.0, 2000.0, now=NOW, skills=["fire"], k=5, max_eta_s=1e9)
    assert rk.method == "straight_line"
    assert "500 m from any road" in rk.note and np.isinf(rk.event_snap_m)
    assert [c.team for c in rk.picked] == ["near", "far"]
    for c in rk.picked:
        assert c.method == "straight_line" and "straight-line" in c.reasons[0]
    d = np.hypot(1100.0, 1100.0)
    assert rk.picked[0].distance_m == pytest.approx(d)
    assert rk.picked[0].eta_s == pytest.approx(d / FALLBACK_SPEED)
    # the same router answers by road for an event on the ring
    assert r.rank(300.0, 0.0, now=NOW, skills=["fire"]).method == "road"


def test_no_teams_at_all():
    rk = TeamIndex(ring(), SKILLS).rank(300.0, 0.0, now=NOW)
    assert rk.picked == [] and "no teams" in rk.note


# -- eligibility and the reasons ---------------------------------------------------------------------------
def test_stale_busy_and_wrong_skill_are_passed_over_with_reasons():
    teams = {
        "stale": (0.0, 100.0, "available", ["fire"], 400.0),  # D->A, 10 s from A: 40 s
        "busy": (0.0, 200.0, "on_site"),  # 50 s
        "mediator": (0.0, 300.0, "available", ["mediation"]),  # 60 s
        "ok": (500.0, 1000.0),  # C->D: 50 + 100 + 30 = 180 s
        "busy_far": (1000.0, 500.0, "assigned"),  # beyond the picked team: not worth a mention
    }
    r = router_with(ring(), teams, stale_after_s=300.0)
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=1)
    assert [c.team for c in rk.picked] == ["ok"] and rk.picked[0].eta_s == pytest.approx(180.0)
    passed = {c.team: c for c in rk.passed_over}
    assert set(passed) == {"stale", "busy", "mediator"}
    assert [c.team for c in rk.passed_over] == ["stale", "busy", "mediator"]  # nearest first
    assert passed["stale"].eta_s == pytest.approx(40.0)
    assert any(s.startswith("stale") for s in passed["stale"].reasons)
    assert any("busy (on_site)" in s for s in passed["busy"].reasons)
    assert any("wrong skill" in s for s in passed["mediator"].reasons)
    assert all(not c.picked for c in rk.passed_over)
    # the stale team becomes eligible again when its position is fresh
    r.move_teams(["stale"], [0.0], [100.0], NOW)
    assert r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=1).picked[0].team == "stale"
    # skills are any-of; no skill needed means everyone qualifies
    assert r.rank(300.0, 0.0, now=NOW, skills=["mediation", "patrol"], k=1).picked[0].team == "mediator"
    assert r.rank(300.0, 0.0, now=NOW, k=1).picked[0].team == "stale"


def test_an_ineligible_team_on_the_events_own_edge_is_explained_too():
    # 5 s before the event on its own one-way edge, but stale: it must be named as passed over
    r = router_with(ring(), {"stale": (250.0, 0.0, "available", ["fire"], 400.0), "ok": (0.0, 500.0)},
                    stale_after_s=300.0)
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=1)
    assert [c.team for c in rk.picked] == ["ok"]
    passed = {c.team: c for c in rk.passed_over}
    assert "stale" in passed, "a nearer stale team on the event's own street was not explained"
    assert passed["stale"].eta_s == pytest.approx(5.0)
    assert any(s.startswith("stale") for s in passed["stale"].reasons)


def test_maximum_eta_is_honoured():
    r = router_with(ring(), {"near": (100.0, 0.0), "far": (600.0, 0.0)})
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=2, max_eta_s=300.0)
    assert [c.team for c in rk.picked] == ["near"]
    assert "beyond the maximum ETA" in rk.note and "5 min" in rk.note
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=2, max_eta_s=371.0)
    assert [c.team for c in rk.picked] == ["near", "far"] and rk.note is None
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=2, max_eta_s=10.0)
    assert rk.picked == []


LINE = {f"P{i}": (1000.0 * i, 0.0) for i in range(5)}
LINE_ROADS = [(f"P{i}", f"P{i + 1}", True) for i in range(4)]


def test_tie_break_prefers_own_grid_then_lighter_workload():
    g = make_graph(LINE, LINE_ROADS)[0]
    # event at 2050 m; ETAs: A 10 s, B 15 s, C 25 s
    teams = {"A": (1950.0, 0.0, "available", ["fire"], 0.0, "G2", 2),
             "B": (2200.0, 0.0, "available", ["fire"], 0.0, "G1", 3),
             "C": (1800.0, 0.0, "available", ["fire"], 0.0, "G1", 0)}
    r = router_with(g, teams)
    plain = r.rank(2050.0, 0.0, now=NOW, skills=["fire"], k=3)
    assert [c.team for c in plain.picked] == ["A", "B", "C"]
    assert [c.eta_s for c in plain.picked] == pytest.approx([10.0, 15.0, 25.0])
    assert [c.rank for c in plain.picked] == [1, 2, 3]
    # B is in the event's grid, though busier than A: it goes first; C is 15 s behind A, outside the window
    own = r.rank(2050.0, 0.0, now=NOW, skills=["fire"], k=3, grid="G1", tie_window_s=10.0)
    assert [c.team for c in own.picked] == ["B", "A", "C"]
    assert "in the event's own grid" in own.picked[0].reasons
    assert "in the event's own grid" not in own.picked[1].reasons
    assert [c.rank for c in own.picked] == [1, 2, 3]
    # no own-grid team in the window: the lighter workload goes first
    light = r.rank(2050.0, 0.0, now=NOW, skills=["fire"], k=3, grid="G9", tie_window_s=10.0)
    assert [c.team for c in light.picked] == ["A", "B", "C"]
    r.set_team("A", workload=5)
    light = r.rank(2050.0, 0.0, now=NOW, skills=["fire"], k=3, grid="G9", tie_window_s=10.0)
    assert [c.team for c in light.picked] == ["B", "A", "C"]
    assert "workload 3" in light.picked[0].reasons
    wide = r.rank(2050.0, 0.0, now=NOW, skills=["fire"], k=3, grid="G9", tie_window_s=20.0)
    assert [c.team for c in wide.picked] == ["C", "B", "A"]
    wide_own = r.rank(2050.0, 0.0, now=NOW, skills=["fire"], k=3, grid="G2", tie_window_s=20.0)
    assert [c.team for c in wide_own.picked] == ["A", "C", "B"]


def test_event_grid_is_accepted_when_no_team_has_a_home_grid():
    g = make_graph(LINE, LINE_ROADS)[0]
    r = router_with(g, {"A": (1950.0, 0.0), "B": (2200.0, 0.0)})
    rk = r.rank(2050.0, 0.0, now=NOW, skills=["fire"], k=2, grid="G1", tie_window_s=10.0)
    assert [c.team for c in rk.picked] == ["A", "B"]
    rk = r.rank(2050.0, 0.0, now=NOW, skills=["fire"], k=2, grid="G1")
    assert [c.team for c in rk.picked] == ["A", "B"]


def test_k_is_respected_and_ranks_are_in_eta_order():
    g = make_graph(LINE, LINE_ROADS)[0]
    xs = [2100.0, 1500.0, 3900.0, 600.0, 2650.0, 3000.0]
    r = router_with(g, {f"T{j}": (x, 0.0) for j, x in enumerate(xs)})
    for k in (1, 3, 6):
        rk = r.rank(2050.0, 0.0, now=NOW, skills=["fire"], k=k, max_eta_s=1e9)
        expect = sorted((abs(x - 2050.0) / 10.0, f"T{j}") for j, x in enumerate(xs))[:k]
        assert [(c.team, c.rank) for c in rk.picked] == [(t, i + 1) for i, (_, t) in enumerate(expect)]
        assert [c.eta_s for c in rk.picked] == pytest.approx([e for e, _ in expect])
        assert len(rk.picked) == k


# -- against the subdivided-graph reference ----------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rank_equals_the_subdivided_graph_reference(seed):
    g, rng = random_city(seed)
    assert g.n_scc >= 1
    n_teams = 25
    tx, ty = rng.uniform(-50, 1250, n_teams), rng.uniform(-50, 1250, n_teams)
    r = TeamIndex(g, SKILLS, max_snap_m=500.0)
    for j in range(n_teams):
        r.set_team(f"T{j}", status="available", skills=["fire"])
    r.move_teams([f"T{j}" for j in range(n_teams)], tx, ty, NOW)
    check_slot_lists(r)
    ex, ey = rng.uniform(-50, 1250, 40), rng.uniform(-50, 1250, 40)
    # half the events on a team's own edge, just behind or ahead of it
    ex[:20] = tx[:20] + rng.uniform(-60, 60, 20)
    ey[:20] = ty[:20] + rng.uniform(-5, 5, 20)
    ref = subdivided_etas(g, tx, ty, ex, ey)
    for j in range(len(ex)):
        rk = r.rank(ex[j], ey[j], now=NOW, skills=["fire"], k=4, max_eta_s=1e9)
        expect = np.sort(ref[:, j])[:4]
        expect = expect[np.isfinite(expect)]
        got = [c.eta_s for c in rk.picked]
        assert got == pytest.approx(expect.tolist(), abs=1e-6), j
        for c in rk.picked:  # the ETA is that team's own
            assert c.eta_s == pytest.approx(ref[int(c.team[1:]), j], abs=1e-6)
            assert c.distance_m >= 0 and c.route.coords[0] == pytest.approx((tx[int(c.team[1:])],
                                                                             ty[int(c.team[1:])]))


def test_route_distance_is_the_road_length_of_the_path():
    g, rng = random_city(11, one_way=0.0)  # all two-way, speed 8 m/s everywhere: distance = 8 * road time
    tx, ty = rng.uniform(0, 1200, 10), rng.uniform(0, 1200, 10)
    r = TeamIndex(g, SKILLS)
    for j in range(10):
        r.set_team(f"T{j}", status="available")
    r.move_teams([f"T{j}" for j in range(10)], tx, ty, NOW)
    snaps = g.snap(tx, ty)
    for x, y in rng.uniform(0, 1200, (20, 2)):
        ev = g.snap([x], [y])
        for c in r.rank(x, y, now=NOW, k=3).picked:
            j = int(c.team[1:])
            road_s = c.eta_s - snaps.distance_m[j] / WALK_SPEED - ev.distance_m[0] / WALK_SPEED
            assert c.distance_m == pytest.approx(8.0 * road_s, abs=1e-3)
            # the drawn route: walk to the road, the road, and it ends at the event's foot on the road
            assert c.route.length == pytest.approx(c.distance_m + snaps.distance_m[j], abs=1e-3)
            assert c.route.coords[-1] == pytest.approx((ev.x[0], ev.y[0]))


# -- the live index ----------------------------------------------------------------------------------------
def _fresh_copy(r: TeamIndex, capacity: int = 256) -> TeamIndex:
    """A TeamIndex rebuilt from scratch with r's current state (positions, status, skills, grid, workload)."""
    g = r.g
    n = len(r.codes)
    r2 = TeamIndex(g, SKILLS, stale_after_s=r.stale_after_s, max_snap_m=r.max_snap_m, capacity=capacity)
    skills_of = {bit: s for s, bit in r.skill_bit.items()}
    placed = []
    for i, code in enumerate(r.codes):
        sk = [skills_of[b] for b in skills_of if r.skills[i] & b]
        r2.set_team(code, status=r.status_of(code),
                    skills=sk, workload=int(r.workload[i]),
                    grid=r.grid_codes[r.grid[i]] if r.grid[i] >= 0 else None)
        if np.isfinite(r.x[i]) and r.edge[i] >= 0:
            placed.append(i)
    r2.move_teams([r.codes[i] for i in placed], r.x[placed], r.y[placed], r.pos_at[placed])
    assert n == len(r2.codes)
    return r2


def test_incremental_moves_and_removals_equal_a_router_built_from_scratch():
    g, rng = random_city(5)
    r = TeamIndex(g, SKILLS, capacity=8)
    codes = [f"T{j}" for j in range(30)]
    for c in codes:
        r.set_team(c, status="available", skills=["fire"] if rng.random() < 0.7 else ["patrol"])
    for _ in range(6):  # every team moves several times, in batches and one by one
        pick = rng.choice(30, 12, replace=False)
        r.move_teams([codes[j] for j in pick], rng.uniform(-50, 1250, 12), rng.uniform(-50, 1250, 12), NOW)
        j = int(rng.integers(30))
        r.move_teams([codes[j]], [rng.uniform(0, 1200)], [rng.uniform(0, 1200)], NOW)
        r.move_teams([codes[j]], [rng.uniform(0, 1200)], [rng.uniform(0, 1200)], NOW)  # twice in a row
        check_slot_lists(r)
    for c in ("T3", "T17", "T29"):
        r.remove_team(c)
    r.remove_team("nobody")  # unknown: a no-op
    check_slot_lists(r)
    # a removed team can come back
    r.set_team("T17", status="available")
    r.move_teams(["T17"], [600.0], [600.0], NOW)
    check_slot_lists(r)
    fresh = _fresh_copy(r)
    check_slot_lists(fresh)
    for x, y in rng.uniform(-50, 1250, (60, 2)):
        for skills in (["fire"], []):
            a = r.rank(x, y, now=NOW, skills=skills, k=30, max_eta_s=1e9, with_routes=False)
            b = fresh.rank(x, y, now=NOW, skills=skills, k=30, max_eta_s=1e9, with_routes=False)
            assert summary(a) == summary(b)
            assert "T3" not in {c.team for c in a.picked} and "T29" not in {c.team for c in a.picked}


def test_removed_team_is_no_longer_found_and_moved_team_leaves_its_old_edge():
    r = router_with(ring(), {"T": (100.0, 0.0), "U": (0.0, 500.0)})
    assert r.rank(300.0, 0.0, now=NOW, k=1).picked[0].team == "T"
    r.move_teams(["T"], [1000.0], [500.0], NOW)  # now on B->C: must drive round (50 + 200 + 30 s)
    rk = r.rank(300.0, 0.0, now=NOW, k=2)
    assert [(c.team, round(c.eta_s, 6)) for c in rk.picked] == [("U", 80.0), ("T", 280.0)]
    assert r._edge_teams.get(0, set()) == set()
    r.remove_team("U")
    assert [c.team for c in r.rank(300.0, 0.0, now=NOW, k=2).picked] == ["T"]
    r.move_teams(["T"], [5000.0], [5000.0], NOW)  # off the map: unhung, never found by road
    assert r.rank(300.0, 0.0, now=NOW, k=2).picked == []
    check_slot_lists(r)


def test_capacity_grows_beyond_the_initial_size():
    g, rng = random_city(8)
    small = TeamIndex(g, SKILLS, capacity=1)
    big = TeamIndex(g, SKILLS, capacity=1024)
    codes = [f"T{j}" for j in range(70)]
    x, y = rng.uniform(0, 1200, 70), rng.uniform(0, 1200, 70)
    for lo, hi in ((0, 1), (1, 3), (3, 40), (40, 70)):  # growth inside set_team and inside move_teams
        for r in (small, big):
            for c in codes[lo:hi:2]:
                r.set_team(c, status="available", skills=["fire"], workload=len(c))
            r.move_teams(codes[lo:hi], x[lo:hi], y[lo:hi], NOW)
            for c in codes[lo + 1:hi:2]:
                r.set_team(c, status="available", skills=["fire"], workload=len(c))
    assert small._cap >= 70 and len(small.slot_node) == 2 * small._cap
    check_slot_lists(small)
    assert list(small.workload[:70]) == list(big.workload[:70])
    for ex, ey in rng.uniform(0, 1200, (40, 2)):
        a = small.rank(ex, ey, now=NOW, skills=["fire"], k=10, with_routes=False)
        b = big.rank(ex, ey, now=NOW, skills=["fire"], k=10, with_routes=False)
        assert summary(a) == summary(b) and len(a.picked) > 0


# -- batch many-to-one -------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [21, 22])
def test_network_times_equals_the_brute_force_reference(seed):
    g, rng = random_city(seed)
    ox, oy = rng.uniform(0, 1200, 6), rng.uniform(0, 1200, 6)
    dx, dy = rng.uniform(-100, 1300, 150), rng.uniform(-100, 1300, 150)
    dx[:30], dy[:30] = np.repeat(ox, 5) + rng.uniform(-80, 80, 30), np.repeat(oy, 5) + rng.uniform(-3, 3, 30)
    dx[-1], dy[-1] = 9000.0, 9000.0  # far from every road
    got = network_times(g, ox, oy, dx, dy, max_snap_m=500.0)
    ref = subdivided_etas(g, ox, oy, dx, dy, max_snap_m=500.0).min(axis=0)
    assert np.isinf(got[-1]) and np.isinf(ref[-1])
    fin = np.isfinite(ref)
    assert (np.isfinite(got) == fin).all()
    assert np.allclose(got[fin], ref[fin], atol=1e-6)
    # a horizon cuts off (to +inf) whatever lies beyond it and leaves the rest alone
    vals = np.sort(ref[fin])
    h = float(vals[len(vals) // 2] + vals[len(vals) // 2 + 1]) / 2  # halfway between two answers
    cut = network_times(g, ox, oy, dx, dy, max_snap_m=500.0, horizon_s=h)
    assert np.allclose(cut[ref <= h], ref[ref <= h], atol=1e-6)
    assert np.isinf(cut[ref > h]).all()


def test_network_times_known_answers_on_the_ring():
    g = ring()
    # a station 100 m before the event on its one-way edge, another just after it
    t = network_times(g, [100.0, 350.0], [0.0, 0.0], [300.0, 300.0, 0.0], [0.0, -25.0, 1000.0])
    assert t.tolist() == pytest.approx([20.0, 40.0, 65.0 + 200.0])
    assert np.isinf(network_times(g, [9000.0], [9000.0], [300.0], [0.0])).all()  # no origin on the map


def test_teams_beyond_the_maximum_are_named_with_that_reason():
    r = router_with(ring(), {"near": (100.0, 0.0), "far": (600.0, 0.0), "busy": (650.0, 0.0, "assigned")})
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=2, max_eta_s=300.0)
    assert [c.team for c in rk.picked] == ["near"]
    beyond = [c for c in rk.passed_over if any("beyond the maximum ETA" in why for why in c.reasons)]
    assert [c.team for c in beyond] == ["far"]  # the eligible one; a busy team is never "beyond"
    assert beyond[0].eta_s == float("inf")


def test_an_eligible_team_off_the_road_network_is_explained_not_silently_dropped():
    # "onroad" must drive round the one-way ring (320 s); "field" is 600 m from any road (120 s as the crow flies)
    r = router_with(ring(), {"onroad": (1000.0, 100.0), "field": (300.0, -600.0)}, max_snap_m=500.0)
    rk = r.rank(300.0, 0.0, now=NOW, skills=["fire"], k=1)
    assert [c.team for c in rk.picked] == ["onroad"]
    off = {c.team: c for c in rk.passed_over}
    assert "field" in off and "from any road" in off["field"].reasons[0]
    assert off["field"].method == "straight_line"


# -- the public interface: exclude, statuses by name ---------------------------------------------------------
def test_exclude_takes_teams_out_of_one_ranking_and_says_why():
    g = ring(two_way_ab=True)
    r = router_with(g, {"near": (400.0, 0.0), "far": (1000.0, 600.0)})
    ev = (600.0, 0.0)
    assert [c.team for c in r.rank(*ev, now=NOW, skills=["fire"], k=1).picked] == ["near"]
    rk = r.rank(*ev, now=NOW, skills=["fire"], k=1, exclude=["near", "nobody"], exclude_reason="declined it")
    assert [c.team for c in rk.picked] == ["far"]
    assert [(c.team, c.reasons) for c in rk.passed_over] == [("near", ["declined it"])]
    # the index itself is untouched: the next ranking picks the team again, and it is still available
    assert r.status_of("near") == "available"
    assert [c.team for c in r.rank(*ev, now=NOW, skills=["fire"], k=1).picked] == ["near"]
    ok, *_ = r.eligibility(NOW, r.skill_mask(["fire"]), exclude=["near"])
    assert ok.tolist() == [False, True]


def test_exclude_gives_the_same_answer_with_either_search():
    g, _ = random_city(3)
    r = TeamIndex(g, SKILLS)
    rng = np.random.default_rng(3)
    codes = [f"T{i}" for i in range(30)]
    for c in codes:
        r.set_team(c, status="available", skills=["fire"])
    r.move_teams(codes, rng.uniform(0, 1200, 30), rng.uniform(0, 1200, 30), NOW)
    r.use_hierarchy(Hierarchy(g))
    for x, y in rng.uniform(0, 1200, (10, 2)):
        plain = r.rank(x, y, now=NOW, k=3, method="dijkstra")
        out = [c.team for c in plain.picked[:2]]
        answers = [r.rank(x, y, now=NOW, k=3, method=m, exclude=out) for m in ("dijkstra", "hierarchy")]
        for rk in answers:
            assert not {c.team for c in rk.picked} & set(out)
        a, b = answers
        assert [(c.team, round(c.eta_s, 9)) for c in a.picked] == [(c.team, round(c.eta_s, 9)) for c in b.picked]


def test_statuses_cross_the_interface_as_names():
    r = router_with(ring(), {"a": (400.0, 0.0, "on_site")})
    assert r.status_of("a") == "on_site"
    r.set_team("a", status="off_duty")
    assert r.status_of("a") == "off_duty"
    with pytest.raises(ValueError, match="not one of available, assigned, on_site, off_duty"):
        r.set_team("a", status="busy")
    assert r.status_of("a") == "off_duty"
    with pytest.raises(KeyError):
        r.status_of("nobody")
