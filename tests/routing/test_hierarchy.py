"""The contraction hierarchy and the team buckets: exact distances and paths, and the router's two searches
giving the same answers.

References are scipy's Dijkstra (distances) and the router's own plain Dijkstra (rankings), on hand-made
graphs with known answers, on random digraphs (one-way arcs, parallel arcs, loops, zero weights,
disconnected parts) and on the sample street's real OSM network.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from gridmap.routing.hierarchy import Buckets, Hierarchy
from gridmap.routing.roadgraph import RoadGraph
from gridmap.routing.team_index import TeamIndex
from tests.graphs import arcs_graph as graph

SKILLS = ["fire", "mediation", "patrol"]


def min_csr(g: RoadGraph) -> csr_matrix:
    """The graph for scipy: parallel arcs at their minimum, loops dropped, zero weights kept as arcs."""
    keep = g.edge_u != g.edge_v
    u, v, w = g.edge_u[keep], g.edge_v[keep], g.time_s[keep]
    o = np.lexsort((w, v, u))
    u, v, w = u[o], v[o], w[o]
    first = np.r_[True, (u[1:] != u[:-1]) | (v[1:] != v[:-1])]
    u, v, w = u[first], v[first], w[first]
    indptr = np.zeros(g.n_nodes + 1, dtype=np.int64)
    np.add.at(indptr, u + 1, 1)
    return csr_matrix((w, v, np.cumsum(indptr)), shape=(g.n_nodes, g.n_nodes))  # explicit zeros stay arcs


def check_paths(g: RoadGraph, h: Hierarchy, pairs, ref: np.ndarray, sources) -> None:
    row = {int(s): i for i, s in enumerate(sources)}
    for s, t in pairs:
        want = ref[row[s], t]
        got = h.distance(s, t)
        if np.isinf(want):
            assert np.isinf(got), (s, t)
            assert len(h.path_edges(s, t)) == 0
            continue
        assert got == pytest.approx(want, abs=1e-9), (s, t)
        p = h.path_edges(s, t)
        if s == t:
            continue
        assert g.edge_u[p[0]] == s and g.edge_v[p[-1]] == t
        assert (g.edge_v[p[:-1]] == g.edge_u[p[1:]]).all(), "the unpacked edges form one path"
        assert g.time_s[p].sum() == pytest.approx(want, abs=1e-9), "and it is a shortest one"


# -- hand-made graphs with known answers --------------------------------------------------------------------
def test_line_with_one_way_and_a_detour():
    # 0 <-> 1 <-> 2 on a straight street, 1 -> 2 slow; a one-way bypass 1 -> 3 -> 2 that is faster
    xy = [(0, 0), (100, 0), (200, 0), (150, 50)]
    arcs = [(0, 1), (1, 0), (1, 2), (2, 1), (1, 3), (3, 2)]
    g = graph(xy, arcs, times=[10, 10, 30, 30, 5, 5])
    h = Hierarchy(g)
    assert h.distance(0, 2) == 20.0  # 0 -> 1 -> 3 -> 2
    assert h.distance(2, 0) == 40.0  # back: the bypass is one-way, so 2 -> 1 -> 0
    assert h.distance(3, 0) == 45.0  # 3 -> 2 -> 1 -> 0
    assert list(h.path_edges(0, 2)) == [0, 4, 5]
    assert list(h.path_edges(2, 0)) == [3, 1]


def test_parallel_arcs_loops_zero_weights_and_unreachable_parts():
    xy = [(0, 0), (100, 0), (200, 0), (300, 0), (900, 900), (1000, 900)]
    arcs = [(0, 1), (0, 1), (1, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 4)]
    g = graph(xy, arcs, times=[9, 4, 0, 0, 3, 1, 2, 2])
    h = Hierarchy(g)
    assert h.distance(0, 3) == 7.0  # the faster of the two parallel arcs, the zero-weight arc, no loop
    assert list(h.path_edges(0, 3)) == [1, 3, 4]
    assert h.distance(3, 1) == 5.0
    assert np.isinf(h.distance(0, 4)) and np.isinf(h.distance(5, 2))  # another component
    assert h.distance(4, 5) == 2.0
    assert h.distance(2, 2) == 0.0 and len(h.path_edges(2, 2)) == 0
    assert h.stats.arcs == 6  # the loop and the slower parallel arc are gone


@pytest.mark.parametrize("seed", range(6))
def test_random_digraphs_equal_scipy_everywhere(seed):
    """All pairs on random one-way-rich digraphs: distances equal scipy's, paths are real shortest paths."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 160))
    xy = rng.uniform(0, 2000, (n, 2))
    m = int(n * rng.uniform(1.5, 4.0))
    u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    two = rng.random(m) < 0.5  # half the links are two-way
    arcs = list(zip(u.tolist(), v.tolist(), strict=True)) + list(zip(v[two].tolist(), u[two].tolist(), strict=True))
    times = rng.uniform(0, 60, len(arcs))
    times[rng.random(len(arcs)) < 0.05] = 0.0
    g = graph(xy, arcs, times)
    h = Hierarchy(g, max_settle=int(rng.integers(5, 500)), sim_settle=int(rng.integers(2, 100)))
    sources = np.arange(n)
    ref = dijkstra(min_csr(g), indices=sources)
    check_paths(g, h, [(s, t) for s in range(n) for t in range(n)], ref, sources)


# -- the real network ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def street_h(street) -> Hierarchy:
    return Hierarchy(street)


def test_real_street_distances_and_paths_equal_scipy(street, street_h):
    g, h = street, street_h
    assert g.n_scc > 1  # stubs and one-way pockets: not everything reaches everything
    rng = np.random.default_rng(7)
    sources = rng.integers(0, g.n_nodes, 25)
    ref = dijkstra(min_csr(g), indices=sources)
    pairs = [(int(s), int(t)) for s in sources for t in rng.integers(0, g.n_nodes, 80)]
    check_paths(g, h, pairs, ref, sources)
    assert np.isinf(ref).any()  # unreachable pairs were among them


def test_search_spaces_are_small(street_h):
    """The point of the hierarchy: an upward search settles a few dozen nodes, not the network."""
    h = street_h
    sizes = [len(h.search_up([v], [0.0], forward=True)[0]) for v in range(0, h.graph.n_nodes, 7)]
    assert np.median(sizes) < h.graph.n_nodes / 10


# -- the router: the hierarchy search gives the Dijkstra's answers --------------------------------------------
def near_roads(g: RoadGraph, n: int, rng, spread=40.0):
    e = rng.choice(g.n_edges, n, p=g.length_m / g.length_m.sum())
    foot = shapely.line_interpolate_point(g.geoms[e], rng.random(n), normalized=True)
    r, a = spread * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
    return shapely.get_x(foot) + r * np.cos(a), shapely.get_y(foot) + r * np.sin(a)


def random_router(g: RoadGraph, n: int, rng, now: float) -> TeamIndex:
    r = TeamIndex(g, SKILLS, stale_after_s=300.0)
    x, y = near_roads(g, n, rng)
    x[: n // 20] += 5000.0  # a few far from any road
    codes = [f"T{i:03d}" for i in range(n)]
    for i, c in enumerate(codes):
        r.set_team(c, status=str(rng.choice(["available", "available", "available", "assigned", "on_site"])),
                   skills=[s for s in SKILLS if rng.random() < 0.6], workload=int(rng.integers(0, 4)),
                   grid=f"G{i % 7}")
    at = np.where(rng.random(n) < 0.1, now - 900.0, now - 30.0)  # some stale
    r.move_teams(codes, x, y, at)
    return r


def same(a, b) -> None:
    assert a.method == b.method and a.note == b.note
    assert [(c.team, c.rank) for c in a.picked] == [(c.team, c.rank) for c in b.picked]
    assert np.allclose([c.eta_s for c in a.picked], [c.eta_s for c in b.picked], rtol=0, atol=1e-6)
    assert np.allclose([c.distance_m for c in a.picked], [c.distance_m for c in b.picked], rtol=0, atol=1e-6)
    for ca, cb in zip(a.picked, b.picked, strict=True):
        assert ca.reasons == cb.reasons
        if ca.route is not None:
            assert ca.route.equals_exact(cb.route, 1e-6), ca.team
    assert [(c.team, c.reasons) for c in a.passed_over] == [(c.team, c.reasons) for c in b.passed_over]
    assert np.allclose([c.eta_s for c in a.passed_over], [c.eta_s for c in b.passed_over], atol=1e-6)


@pytest.mark.parametrize("n_teams", [8, 40, 150])
def test_router_hierarchy_equals_dijkstra_on_the_real_street(street, street_h, n_teams):
    rng = np.random.default_rng(n_teams)
    now = 1.75e9
    r = random_router(street, n_teams, rng, now)
    r.use_hierarchy(street_h)
    lo, hi = street.node_xy.min(axis=0), street.node_xy.max(axis=0)
    searched = set()
    for q in range(150):
        x, y = rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])
        skills = [SKILLS[q % 3]] if q % 4 else []
        kw = dict(now=now, skills=skills, k=int(rng.integers(1, 7)), max_eta_s=float(rng.choice([300.0, 1800.0])),
                  grid=f"G{q % 7}", tie_window_s=15.0 if q % 2 else 0.0, with_routes=q % 3 == 0)
        a = r.rank(x, y, method="dijkstra", **kw)
        b = r.rank(x, y, method="hierarchy", **kw)
        same(a, b)
        searched.add(b.search)
        if q % 10 == 0:  # teams move, change state, come and go: the buckets must follow
            movers = rng.choice(n_teams, max(1, n_teams // 5), replace=False)
            mx, my = near_roads(street, len(movers), rng)
            r.move_teams([r.codes[i] for i in movers], mx, my, now - 10.0)
            r.set_team(r.codes[int(rng.integers(n_teams))], status="available")
            if q == 50:
                r.remove_team(r.codes[0])
    assert "hierarchy" in searched and searched <= {"hierarchy", "none"}  # "none": off-road, straight line


def test_buckets_follow_moves_and_survive_compaction(street, street_h):
    rng = np.random.default_rng(3)
    now = 1.75e9
    r = random_router(street, 60, rng, now)
    r.use_hierarchy(street_h)
    bk = r.buckets
    assert bk.pending > 0
    r.refresh_buckets()
    assert bk.pending == 0 and bk.entries > 0
    before = bk.searches
    r.set_team("T001", status="assigned")  # a status change needs no search
    assert bk.pending == 0
    x, y = near_roads(street, 1, rng)
    r.move_teams(["T001"], x, y, now)
    assert 1 <= bk.pending <= 2  # its one or two slots
    q = near_roads(street, 30, rng)
    ref = [r.rank(q[0][j], q[1][j], now=now, method="dijkstra") for j in range(30)]
    got = [r.rank(q[0][j], q[1][j], now=now, method="hierarchy") for j in range(30)]
    assert bk.searches - before == 2 or bk.searches - before == 1
    for a, b in zip(ref, got, strict=True):
        same(a, b)
    bk.compact()
    assert bk.ov_n == 0
    for j, a in enumerate(ref):
        same(a, r.rank(q[0][j], q[1][j], now=now, method="hierarchy"))
    # many moves fill the overlay past its threshold and trigger compaction inside refresh
    for _ in range(12):
        mx, my = near_roads(street, 60, rng)
        r.move_teams(r.codes, mx, my, now)
        r.refresh_buckets()
    live = (bk.bk_gen == bk.slot_gen[bk.bk_slot]).sum() + (bk.ov_gen[: bk.ov_n] == bk.slot_gen[bk.ov_slot[: bk.ov_n]]).sum()
    assert live == bk.entries - ((bk.bk_gen != bk.slot_gen[bk.bk_slot]).sum()
                                 + (bk.ov_gen[: bk.ov_n] != bk.slot_gen[bk.ov_slot[: bk.ov_n]]).sum())
    for j in range(30):
        same(r.rank(q[0][j], q[1][j], now=now, method="dijkstra"), r.rank(q[0][j], q[1][j], now=now, method="hierarchy"))


def test_searches_that_outgrow_their_heap_grow_it_and_search_again(street):
    """The buckets' query and the upward searches share one heap; a full heap is grown and the search
    restarted, not written past (the bucket query once had no check at all)."""
    h = Hierarchy(street)
    rng = np.random.default_rng(5)
    now = 1.75e9
    r = random_router(street, 12, rng, now)
    r.use_hierarchy(h)
    r.refresh_buckets()
    q = near_roads(street, 20, rng)
    ref = [r.rank(q[0][j], q[1][j], now=now, k=3, method="dijkstra", with_routes=True) for j in range(20)]
    h._hk, h._hv = np.zeros(2), np.zeros(2, dtype=np.int64)  # room for two heap entries
    for j, a in enumerate(ref):
        same(a, r.rank(q[0][j], q[1][j], now=now, k=3, method="hierarchy", with_routes=True))
    assert len(h._hk) > 2


def test_auto_picks_the_hierarchy_for_sparse_teams_and_dijkstra_for_dense(street, street_h):
    rng = np.random.default_rng(11)
    now = 1.75e9
    sparse = random_router(street, 6, rng, now)
    dense = random_router(street, 400, rng, now)
    for r in (sparse, dense):
        r.use_hierarchy(street_h)
        r.refresh_buckets()
    x, y = near_roads(street, 1, rng)
    assert sparse.rank(x[0], y[0], now=now).search == "hierarchy"
    assert dense.rank(x[0], y[0], now=now).search == "dijkstra"
    plain = random_router(street, 6, np.random.default_rng(11), now)
    assert plain.rank(x[0], y[0], now=now).search == "dijkstra"  # no hierarchy attached
    with pytest.raises(ValueError, match="use_hierarchy"):
        plain.rank(x[0], y[0], now=now, method="hierarchy")
    with pytest.raises(ValueError, match="another road graph"):
        plain.use_hierarchy(Hierarchy(graph([(0, 0), (10, 0)], [(0, 1), (1, 0)])))


def test_buckets_standalone_generation_retires_old_entries(street_h):
    bk = Buckets(street_h, 4)
    bk.set(0, 10, 5.0)
    bk.set(3, 20, 1.0)
    bk.ensure_slots(9)
    bk.set(8, 30, 0.0)
    assert bk.refresh() == 3 and bk.pending == 0
    n0 = bk.entries
    bk.set(0, 11, 5.0)  # moved: the old entries stay in the arrays but no longer count
    bk.clear(3)
    bk.refresh()
    bk.compact()
    assert bk.entries < n0 + 200
    assert set(np.unique(bk.bk_slot).tolist()) == {0, 8}
