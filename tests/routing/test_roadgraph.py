"""RoadGraph on small hand-made graphs with known answers: snapping to the nearest edge, twins, SCCs, CSR."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import shapely

from gridmap.routing.roadgraph import RoadGraph, along_time, leave_costs, reach_costs, walk_time
from tests import graphs
from tests.graphs import SQUARE


def make_graph(nodes: dict[str, tuple[float, float]], roads: list[tuple], speed: float = 10.0):
    """:func:`tests.graphs.make_graph` with edge ids 5000, 5001, ... (ids and indexes kept apart)."""
    return graphs.make_graph(nodes, roads, speed, edge_ids=np.arange(sum(2 if r[2] else 1 for r in roads)) + 5000)


def edge_between(g: RoadGraph, u: int, v: int) -> int:
    hits = np.flatnonzero((g.edge_u == u) & (g.edge_v == v))
    assert len(hits) == 1, (u, v, hits)
    return int(hits[0])



def test_snap_picks_the_nearest_edge_not_the_nearest_node():
    # the point is 200 m from node C, but only 100 m from the middle of the long edge A->B
    g, ix = make_graph({"A": (0, 0), "B": (1000, 0), "C": (300, 200), "D": (300, 1200)},
                       [("A", "B", False), ("C", "D", False)])
    s = g.snap([300.0], [100.0 - 1e-6])
    e = int(s.edge[0])
    assert (g.edge_u[e], g.edge_v[e]) == (ix["A"], ix["B"])
    assert s.fraction[0] == pytest.approx(0.3)
    assert s.distance_m[0] == pytest.approx(100.0, abs=1e-4)
    assert (s.x[0], s.y[0]) == pytest.approx((300.0, 0.0))
    assert s.twin[0] == -1  # one-way: nothing to turn back on


def test_snap_fraction_is_measured_along_the_edge_geometry():
    # a bent edge A -> (0,100) -> B=(100,100), 200 m long; the foot of (50,120) is 150 m along it
    g, ix = make_graph({"A": (0, 0), "B": (100, 100)}, [("A", "B", False, [(0, 100)])])
    s = g.snap([50.0], [120.0])
    assert s.edge[0] == 0
    assert s.fraction[0] == pytest.approx(0.75)
    assert s.distance_m[0] == pytest.approx(20.0)
    assert (s.x[0], s.y[0]) == pytest.approx((50.0, 100.0))
    assert g.time_s[0] == pytest.approx(20.0)  # 200 m at 10 m/s, from the geometry's length


def test_snap_on_a_two_way_road_names_both_directions_consistently():
    g, ix = make_graph(SQUARE, [("A", "B", True)])
    s = g.snap([300.0], [-40.0])
    e, t = int(s.edge[0]), int(s.twin[0])
    assert t >= 0 and g.twin[t] == e and g.twin[e] == t
    assert {(g.edge_u[e], g.edge_v[e]), (g.edge_u[t], g.edge_v[t])} == {(ix["A"], ix["B"]), (ix["B"], ix["A"])}
    # whichever direction came back, the fraction is measured from that edge's start node
    expected = 0.3 if g.edge_u[e] == ix["A"] else 0.7
    assert s.fraction[0] == pytest.approx(expected)
    foot = shapely.line_interpolate_point(g.geoms[e], s.fraction[0], normalized=True)
    assert (foot.x, foot.y) == pytest.approx((300.0, 0.0))
    assert s.distance_m[0] == pytest.approx(40.0)


def test_point_far_from_any_road_is_not_snapped():
    g, _ = make_graph(SQUARE, [("A", "B", True)])
    s = g.snap([500.0, 500.0], [600.0, 10.0], max_distance=500.0)
    assert s.edge.tolist()[0] == -1 and s.twin[0] == -1
    assert np.isinf(s.distance_m[0])
    assert (s.x[0], s.y[0]) == (500.0, 600.0)  # the point itself, untouched
    assert s.edge[1] >= 0 and s.distance_m[1] == pytest.approx(10.0)
    assert len(s) == 2


def test_vectorised_snap_equals_one_by_one():
    rng = np.random.default_rng(7)
    g, _ = make_graph(SQUARE, [("A", "B", True), ("B", "C", False), ("C", "D", True), ("D", "A", False),
                               ("A", "C", False, [(700, 300)])])
    x, y = rng.uniform(-200, 1200, 200), rng.uniform(-200, 1200, 200)
    many = g.snap(x, y, 300.0)
    for j in range(len(x)):
        one = g.snap(x[j], y[j], 300.0)
        assert one.distance_m[0] == pytest.approx(many.distance_m[j])
        if one.edge[0] >= 0:
            assert (one.x[0], one.y[0]) == pytest.approx((many.x[j], many.y[j]))
            # the foot lies on the snapped edge, at the stated fraction, and is the nearest road point
            foot = shapely.line_interpolate_point(g.geoms[many.edge[j]], many.fraction[j], normalized=True)
            assert (foot.x, foot.y) == pytest.approx((many.x[j], many.y[j]), abs=1e-6)
            nearest = min(shapely.distance(shapely.Point(x[j], y[j]), geom) for geom in g.geoms)
            assert many.distance_m[j] == pytest.approx(nearest)
        else:
            assert many.edge[j] == -1


def test_twins_pair_two_way_roads_and_leave_one_way_alone():
    g, ix = make_graph(SQUARE, [("A", "B", True), ("B", "C", False), ("C", "D", True)])
    ab, ba = edge_between(g, ix["A"], ix["B"]), edge_between(g, ix["B"], ix["A"])
    cd, dc = edge_between(g, ix["C"], ix["D"]), edge_between(g, ix["D"], ix["C"])
    assert g.twin[ab] == ba and g.twin[ba] == ab and g.twin[cd] == dc and g.twin[dc] == cd
    assert g.twin[edge_between(g, ix["B"], ix["C"])] == -1


def test_a_parallel_road_of_another_length_is_not_a_twin():
    # A->B straight (1000 m) and A->B by a detour (about 1600 m); B->A straight
    g, ix = make_graph(SQUARE, [("A", "B", True), ("A", "B", False, [(500, 600)])])
    ab = [int(e) for e in np.flatnonzero((g.edge_u == ix["A"]) & (g.edge_v == ix["B"]))]
    straight, detour = sorted(ab, key=lambda e: g.length_m[e])
    ba = edge_between(g, ix["B"], ix["A"])
    assert g.twin[straight] == ba and g.twin[ba] == straight
    assert g.twin[detour] == -1


def test_strongly_connected_components_of_a_ring_with_a_one_way_stub():
    nodes = {**SQUARE, "E": (2000.0, 0.0), "F": (5000.0, 0.0), "G": (6000.0, 0.0)}
    g, ix = make_graph(nodes, [("A", "B", False), ("B", "C", False), ("C", "D", False), ("D", "A", False),
                               ("B", "E", False), ("F", "G", True)])
    assert g.n_scc == 3  # the ring, the dead-end stub node E, the isolated two-way pair F-G
    ring = {g.scc[ix[n]] for n in "ABCD"}
    assert len(ring) == 1 and g.main_scc in ring
    assert g.scc[ix["E"]] not in ring
    assert g.scc[ix["F"]] == g.scc[ix["G"]] != g.scc[ix["E"]]


def test_csr_adjacency_both_ways():
    rng = np.random.default_rng(3)
    pts = {f"n{i}": (float(x), float(y)) for i, (x, y) in enumerate(rng.uniform(0, 1000, (12, 2)))}
    names = list(pts)
    roads = [(names[i], names[j], bool(rng.random() < 0.5)) for i, j in rng.integers(0, 12, (30, 2)) if i != j]
    g, _ = make_graph(pts, roads)
    for v in range(g.n_nodes):
        out = sorted(zip(g.adj[g.indptr[v]:g.indptr[v + 1]].tolist(),
                         g.adj_edge[g.indptr[v]:g.indptr[v + 1]].tolist(), strict=True))
        expect = sorted((int(g.edge_v[e]), int(e)) for e in np.flatnonzero(g.edge_u == v))
        assert out == expect
        assert np.allclose(g.adj_w[g.indptr[v]:g.indptr[v + 1]], g.time_s[[e for _, e in out]]
                           if out else [])
        into = sorted(zip(g.radj[g.rindptr[v]:g.rindptr[v + 1]].tolist(),
                          g.radj_edge[g.rindptr[v]:g.rindptr[v + 1]].tolist(), strict=True))
        assert into == sorted((int(g.edge_u[e]), int(e)) for e in np.flatnonzero(g.edge_v == v))
        for idx in range(g.rindptr[v], g.rindptr[v + 1]):
            assert g.radj_w[idx] == g.time_s[g.radj_edge[idx]]


def test_to_networkx_keeps_every_edge_and_its_time():
    g, ix = make_graph(SQUARE, [("A", "B", True), ("A", "B", False, [(500, 600)]), ("B", "C", False),
                                ("C", "D", False), ("D", "A", False)])
    h = g.to_networkx()
    assert h.number_of_nodes() == 4 and h.number_of_edges() == g.n_edges == 6
    assert nx.shortest_path_length(h, ix["B"], ix["A"], weight="time") == pytest.approx(100.0)
    assert nx.shortest_path_length(h, ix["A"], ix["D"], weight="time") == pytest.approx(300.0)


def test_ids_and_validation():
    g, ix = make_graph(SQUARE, [("A", "B", True)])
    assert g.node_index([102, 100, 999]).tolist() == [ix["C"], ix["A"], -1]
    assert g.n_nodes == 4 and g.n_edges == 2
    assert g.edge_ids.tolist() == [5000, 5001]
    line = [shapely.LineString([(0, 0), (1, 0)])]
    with pytest.raises(ValueError, match="not in the node list"):
        RoadGraph.from_arrays([1, 2], [(0, 0), (1, 0)], [1], [3], [1.0], [1.0], line)
    with pytest.raises(ValueError, match="non-negative"):
        RoadGraph.from_arrays([1, 2], [(0, 0), (1, 0)], [1], [2], [1.0], [-1.0], line)
    with pytest.raises(ValueError, match="finite"):
        RoadGraph.from_arrays([1, 2], [(0, 0), (1, 0)], [1], [2], [1.0], [np.nan], line)


def test_from_roads_equals_the_same_graph_built_from_arrays():
    nodes = {"A": (0.0, 0.0), "B": (300.0, 0.0), "C": (300.0, 400.0)}
    g = RoadGraph.from_roads(nodes, [("A", "B", True), ("B", "C", False, [(350.0, 200.0)])], speed_mps=5.0,
                             node_ids=[7, 8, 9])
    lines = [shapely.LineString([(0, 0), (300, 0)]), shapely.LineString([(300, 0), (0, 0)]),
             shapely.LineString([(300, 0), (350, 200), (300, 400)])]
    length = shapely.length(np.array(lines, dtype=object))
    ref = RoadGraph.from_arrays([7, 8, 9], list(nodes.values()), [7, 8, 8], [8, 7, 9], length, length / 5.0, lines)
    for name in ("node_ids", "node_xy", "edge_u", "edge_v", "length_m", "time_s", "twin", "edge_ids"):
        assert np.array_equal(getattr(g, name), getattr(ref, name)), name
    assert all(a.equals_exact(b, 0.0) for a, b in zip(g.geoms, ref.geoms, strict=True))
    given = RoadGraph.from_roads(nodes, [("A", "B", True)], travel_time_s=[1.0, 2.0])
    assert given.time_s.tolist() == [1.0, 2.0] and given.node_ids.tolist() == [0, 1, 2]


def test_the_seeding_arithmetic_of_a_point_on_a_road():
    # a point 30 % along a 100 s edge (its twin takes 120 s), 10 s off the road
    assert leave_costs(100.0, 120.0, 0.3, 10.0) == pytest.approx((80.0, 46.0))
    assert reach_costs(100.0, 120.0, 0.3, 10.0) == pytest.approx((40.0, 94.0))
    assert along_time(100.0, 0.3, 0.8) == pytest.approx(50.0)
    assert walk_time(12.5) == pytest.approx(10.0)
    # arrays give the same bits as floats, element by element (the batch and the per-query paths agree)
    rng = np.random.default_rng(0)
    te, tt, f, w = rng.uniform(0, 200, (4, 50))
    for fn in (leave_costs, reach_costs):
        arr = fn(te, tt, f, w)
        one = [fn(float(a), float(b), float(c), float(d)) for a, b, c, d in zip(te, tt, f, w, strict=True)]
        assert arr[0].tolist() == [o[0] for o in one] and arr[1].tolist() == [o[1] for o in one]
