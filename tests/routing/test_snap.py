"""Snapping points to their nearest road edge: the compiled grid kernel against shapely's answers.

The reference is ``RoadGraph._snap_shapely``: the STRtree ``query_nearest`` + ``line_locate_point`` +
``line_interpolate_point`` code that ``snap`` ran before the kernel. Every comparison holds the kernel to
the same edge (or, in a genuine tie, |d1 - d2| <= 1e-9 m, to an edge that is as near, and then to
shapely's own answer *on that edge*), the same distance and foot within 1e-9 m and the same fraction
within 1e-12. The points come from seeded generators (near roads, anywhere, on vertices, on the roads,
far away, on grid lines) on the real OSM street network and on hand-made and random polyline graphs.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from gridmap.routing._kernels import snap as _snap
from gridmap.routing.many_to_one import network_times
from gridmap.routing.roadgraph import RoadGraph
from tests.graphs import lines_graph

TIE_M = 1e-9  # two distances this close are a tie: either edge is right
TOL_M = 1e-9  # distance and foot
TOL_FRAC = 1e-12


def assert_matches_reference(g: RoadGraph, x, y, max_distance=1000.0):
    """``g.snap`` equals shapely's answer (see the module docstring); returns (kernel, reference)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    new, ref = g.snap(x, y, max_distance), g._snap_shapely(x, y, max_distance)
    assert len(new) == len(ref) == len(x)
    assert new.edge.dtype == new.twin.dtype == np.int64
    assert all(a.dtype == np.float64 for a in (new.fraction, new.distance_m, new.x, new.y))
    reach = ref.edge >= 0
    assert np.array_equal(new.edge >= 0, reach), np.flatnonzero((new.edge >= 0) != reach)[:5]
    # out of reach: edge -1, distance inf, the point itself as the foot
    out = ~reach
    assert (new.twin[out] == -1).all() and np.isinf(new.distance_m[out]).all() and (new.fraction[out] == 0).all()
    assert np.array_equal(new.x[out], x[out]) and np.array_equal(new.y[out], y[out])
    # in reach: as near as shapely's edge (the same edge, or a tie)
    d_gap = np.abs(new.distance_m[reach] - ref.distance_m[reach])
    assert d_gap.max(initial=0.0) <= TIE_M
    same = reach & (new.edge == ref.edge)
    assert np.abs(new.fraction[same] - ref.fraction[same]).max(initial=0.0) <= TOL_FRAC
    assert np.abs(new.x[same] - ref.x[same]).max(initial=0.0) <= TOL_M
    assert np.abs(new.y[same] - ref.y[same]).max(initial=0.0) <= TOL_M
    assert np.array_equal(new.twin[same], ref.twin[same])
    # a tie went to another edge: the answer must be shapely's on *that* edge
    tie = reach & ~same
    if tie.any():
        e = new.edge[tie]
        pts = shapely.points(x[tie], y[tie])
        assert np.abs(shapely.distance(pts, g.geoms[e]) - new.distance_m[tie]).max() <= TOL_M
        along = shapely.line_locate_point(g.geoms[e], pts)
        glen = g.lengths_geom[e]
        frac = np.clip(np.where(glen > 0, along / np.where(glen > 0, glen, 1.0), 0.0), 0.0, 1.0)
        assert np.abs(frac - new.fraction[tie]).max() <= TOL_FRAC
        foot = shapely.get_coordinates(shapely.line_interpolate_point(g.geoms[e], along))
        assert np.abs(foot[:, 0] - new.x[tie]).max() <= TOL_M and np.abs(foot[:, 1] - new.y[tie]).max() <= TOL_M
        assert np.array_equal(new.twin[tie], g.twin[e])
    return new, ref


def near_roads(g: RoadGraph, n: int, rng: np.random.Generator, spread_m: float = 40.0):
    """Points along the roads (uniform by length), each moved up to ``spread_m`` off the road."""
    e = rng.choice(g.n_edges, n, p=g.lengths_geom / g.lengths_geom.sum())
    foot = shapely.get_coordinates(shapely.line_interpolate_point(g.geoms[e], rng.random(n), normalized=True))
    r, a = spread_m * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
    return foot[:, 0] + r * np.cos(a), foot[:, 1] + r * np.sin(a)


def bounds(g: RoadGraph):
    return shapely.total_bounds(g.geoms)


# -- the real street network --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_street_points_near_roads_match_shapely(street, seed):
    rng = np.random.default_rng(seed)
    x, y = near_roads(street, 4000, rng)
    for max_distance in (500.0, 15.0, None):
        new, _ = assert_matches_reference(street, x, y, max_distance)
    assert (new.edge >= 0).all()


@pytest.mark.parametrize("seed", [5, 6])
def test_street_points_anywhere_match_shapely(street, seed):
    # uniform over the network's box and 2 km around it: many points far from any road
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = bounds(street)
    x, y = rng.uniform(x0 - 2000, x1 + 2000, 4000), rng.uniform(y0 - 2000, y1 + 2000, 4000)
    for max_distance in (1.0, 60.0, 400.0, None):
        new, _ = assert_matches_reference(street, x, y, max_distance)
    assert (new.edge >= 0).all()  # no limit: everything snaps


def test_points_exactly_on_vertices_and_on_the_roads(street):
    coords = shapely.get_coordinates(street.geoms)
    new, _ = assert_matches_reference(street, coords[:, 0], coords[:, 1], 10.0)
    assert (new.distance_m == 0).all()
    assert np.array_equal(new.x, coords[:, 0]) and np.array_equal(new.y, coords[:, 1])
    rng = np.random.default_rng(8)
    e = rng.integers(0, street.n_edges, 3000)
    on = shapely.get_coordinates(shapely.line_interpolate_point(street.geoms[e], rng.random(3000), normalized=True))
    new, _ = assert_matches_reference(street, on[:, 0], on[:, 1], 10.0)
    assert new.distance_m.max() <= 1e-6


def test_feet_a_hair_before_and_after_a_vertex(street):
    # 1 m beside a segment, 1 µm to 1 mm short of its end or past its start: where the walk along the edge
    # that places the foot must stop on the right segment
    coords, part = shapely.get_coordinates(street.geoms, return_index=True)
    inner = np.flatnonzero(part[:-1] == part[1:])[::3]
    a, b = coords[inner], coords[inner + 1]
    d = b - a
    unit = d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-300)[:, None]
    normal = np.column_stack([-unit[:, 1], unit[:, 0]])
    for eps in (1e-6, 1e-4, 1e-3):
        for p in (b - eps * unit + normal, a + eps * unit - normal, b + eps * unit + 0.5 * normal):
            assert_matches_reference(street, p[:, 0], p[:, 1], 50.0)


def test_points_far_outside_the_network(street):
    rng = np.random.default_rng(9)
    x0, y0, x1, y1 = bounds(street)
    a = rng.uniform(0, 2 * np.pi, 500)
    r = rng.choice([1e4, 1e5, 1e6], 500)
    x, y = (x0 + x1) / 2 + r * np.cos(a), (y0 + y1) / 2 + r * np.sin(a)
    far, _ = assert_matches_reference(street, x, y, None)
    assert (far.edge >= 0).all() and far.distance_m.min() > 5000
    none, _ = assert_matches_reference(street, x, y, 1000.0)
    assert (none.edge == -1).all()
    inf, _ = assert_matches_reference(street, [np.inf, 1e300], [0.0, 1e300], None)  # overflow: nothing is near
    assert (inf.edge == -1).all()


def test_points_on_the_grid_lines(street):
    # every point exactly on a cell boundary, corners included: the ring bounds must still hold
    gx, gy, cell, nx, ny = street._snap_index.params[:5]
    i, j = np.meshgrid(np.arange(0, int(nx) + 1, 3), np.arange(0, int(ny) + 1, 3))
    x, y = gx + i.ravel() * cell, gy + j.ravel() * cell
    assert_matches_reference(street, x, y, 300.0)
    assert_matches_reference(street, x + cell / 2, y, 300.0)


def test_the_answer_does_not_depend_on_the_grid(street):
    # the grid is an index, not an approximation: any cell size gives the very same answers
    rng = np.random.default_rng(10)
    x, y = near_roads(street, 3000, rng, spread_m=150.0)
    base = street.snap(x, y, 500.0)
    coords, part = shapely.get_coordinates(street.geoms, return_index=True)
    for cell in (3.0, 7.0, 333.0, 1e5):
        idx = _snap.SnapIndex(coords, part, street.n_edges, street.twin, cell=cell)
        got = _snap.snap_points(x, y, 500.0, *idx.args)
        for a, b in zip(got, (base.edge, base.twin, base.fraction, base.distance_m, base.x, base.y), strict=True):
            assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="cell"):
        _snap.SnapIndex(coords, part, street.n_edges, street.twin, cell=0.1)  # 5 billion cells


def test_one_point_takes_the_scalar_path_to_the_same_answer(street):
    rng = np.random.default_rng(11)
    x, y = near_roads(street, 300, rng, spread_m=300.0)
    many = street.snap(x, y, 200.0)
    for j in range(len(x)):
        for one in (street.snap([x[j]], [y[j]], 200.0), street.snap(x[j], y[j], 200.0),
                    street.snap(x[j:j + 1], y[j:j + 1], 200.0), street.snap(np.float64(x[j]), [y[j]], 200.0)):
            assert len(one) == 1 and one.edge.dtype == one.twin.dtype == np.int64
            got = (one.edge[0], one.twin[0], one.fraction[0], one.distance_m[0], one.x[0], one.y[0])
            want = (many.edge[j], many.twin[j], many.fraction[j], many.distance_m[j], many.x[j], many.y[j])
            assert got == want
        ref = street._snap_shapely([x[j]], [y[j]], 200.0)
        assert one.edge[0] == ref.edge[0] == -1 or abs(one.distance_m[0] - ref.distance_m[0]) <= TIE_M


def test_edge_lengths_are_shapelys(street):
    assert np.array_equal(street._snap_index.edge_len, street.lengths_geom)


def test_network_times_do_not_depend_on_which_direction_a_tie_took(street):
    # a two-way road's two directions are equally near; the kernel takes the lower-numbered one, shapely
    # either: the travel times (coverage, isochrones, siting) must come out the same
    rng = np.random.default_rng(12)
    sx, sy = near_roads(street, 25, rng)
    bx, by = near_roads(street, 3000, rng)
    mine = network_times(street, sx, sy, bx, by, horizon_s=240.0)

    class Reference(RoadGraph):
        def snap(self, x, y, max_distance=1000.0):
            return self._snap_shapely(x, y, max_distance)

    ref_graph = object.__new__(Reference)
    ref_graph.__dict__.update(street.__dict__)
    theirs = network_times(ref_graph, sx, sy, bx, by, horizon_s=240.0)
    assert np.array_equal(np.isfinite(mine), np.isfinite(theirs)) and np.isfinite(mine).sum() > 100
    fin = np.isfinite(mine)
    assert np.abs(mine[fin] - theirs[fin]).max() <= 1e-9


# -- hand-made graphs with known answers --------------------------------------------------------------
def test_nearest_edge_not_nearest_node_and_the_fraction_along_a_bent_edge():
    # 0: a bent edge (0,0) -> (0,100) -> (100,100), 200 m; 1: a straight edge far below
    g = lines_graph([[(0, 0), (0, 100), (100, 100)], [(-500, -300), (500, -300)]])
    s, _ = assert_matches_reference(g, [50.0, 0.0], [120.0, -250.0])
    assert s.edge.tolist() == [0, 1]
    assert s.fraction[0] == 0.75 and s.distance_m[0] == 20.0 and (s.x[0], s.y[0]) == (50.0, 100.0)
    assert s.fraction[1] == 0.5 and s.distance_m[1] == 50.0 and (s.x[1], s.y[1]) == (0.0, -300.0)


def test_equidistant_segments_of_one_edge_take_the_first_like_geos():
    # a U: (0,0) -> (0,10) -> (10,10) -> (10,0), 30 m; (5,5) is 5 m from all three segments
    g = lines_graph([[(0, 0), (0, 10), (10, 10), (10, 0)]])
    s, ref = assert_matches_reference(g, [5.0, 5.0, 10.0], [5.0, 8.0, 10.0])
    assert s.distance_m[0] == 5.0 and s.fraction[0] == pytest.approx(5 / 30, abs=1e-15)
    assert (s.x[0], s.y[0]) == (0.0, 5.0)
    assert s.distance_m[1] == 2.0 and (s.x[1], s.y[1]) == (5.0, 10.0) and s.fraction[1] == 0.5
    assert s.distance_m[2] == 0.0 and s.fraction[2] == pytest.approx(2 / 3, abs=1e-15)  # on the vertex
    assert np.array_equal(s.fraction, ref.fraction)


def test_max_distance_is_inclusive():
    g = lines_graph([[(0, 0), (10, 0)]])
    assert g.snap([5.0], [10.0], 10.0).edge[0] == 0  # exactly 10 m away, limit 10 m
    assert g.snap([5.0], [10.0], np.nextafter(10.0, 0)).edge[0] == -1
    s, _ = assert_matches_reference(g, [5.0, 5.0, 5.0], [10.0, -10.0, 10.5], 10.0)
    assert s.edge.tolist() == [0, 0, -1]
    assert (s.x[2], s.y[2], s.distance_m[2], s.fraction[2], s.twin[2]) == (5.0, 10.5, np.inf, 0.0, -1)


def test_zero_length_edges_and_segments():
    lines = [
        [(0, 0), (0, 0)],  # 0: a zero-length edge (a point)
        [(10, 0), (20, 0), (20, 0), (30, 0)],  # 1: a repeated vertex inside: a zero-length segment
        [(40, 0), (40, 0), (40, 0), (50, 0)],  # 2: zero-length segments at the start
        [(60, 0), (70, 0), (70, 0)],  # 3: ... and at the end
    ]
    g = lines_graph(lines)
    assert g.lengths_geom.tolist() == [0.0, 20.0, 10.0, 10.0]
    s, _ = assert_matches_reference(g, [0.0, -1.0, 20.0, 20.0, 40.0, 39.0, 70.0, 72.0, 25.0],
                                    [3.0, 0.0, 0.0, 4.0, 0.0, 1.0, 0.0, 2.0, -1.0])
    assert s.edge.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 1]
    assert s.fraction.tolist()[:8] == [0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 1.0, 1.0]
    assert s.distance_m[0] == 3.0 and (s.x[0], s.y[0]) == (0.0, 0.0)
    assert (s.x[3], s.y[3]) == (20.0, 0.0) and (s.x[7], s.y[7]) == (70.0, 0.0)
    assert s.fraction[8] == 0.75 and (s.x[8], s.y[8]) == (25.0, 0.0)
    rng = np.random.default_rng(13)
    assert_matches_reference(g, rng.uniform(-10, 80, 2000), rng.uniform(-10, 10, 2000), 8.0)


def test_ties_go_to_the_lowest_edge():
    # 0 and 1 are the same one-way street drawn twice; 2 -> reversed as 4 (two-way); 3 meets them at (10, 0)
    lines = [[(0, 0), (10, 0)], [(0, 0), (10, 0)], [(0, 5), (10, 5)], [(10, 0), (10, -10)]]
    g = lines_graph(lines, two_way=[2])
    assert g.twin[2] == 4 and g.twin[4] == 2
    s, _ = assert_matches_reference(g, [5.0, 5.0, 10.0, 5.0], [-1.0, 6.0, 0.0, 2.5])
    assert s.edge.tolist()[:3] == [0, 2, 0]  # the duplicate 1, the twin 4, the corner edge 3 lose their ties
    assert s.twin[1] == 4 and s.fraction[1] == 0.5
    assert s.edge[3] in (0, 2) and s.distance_m[3] == 2.5  # halfway between: a tie either way


def test_two_way_twins_name_both_directions():
    g = lines_graph([[(0, 0), (100, 0), (100, 50)]], two_way=[0])
    s, _ = assert_matches_reference(g, [30.0, 120.0], [-5.0, 40.0])
    assert s.edge.tolist() == [0, 0] and s.twin.tolist() == [1, 1]
    assert s.fraction[0] == 30 / 150 and s.fraction[1] == 140 / 150
    assert (s.x[1], s.y[1]) == (100.0, 40.0)


@pytest.mark.parametrize("seed", [21, 22, 23, 24, 25])
def test_random_polyline_graphs_match_shapely(seed):
    # random walks of 1-12 segments (some zero-length, some doubling back, some edges repeated or reversed)
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(int(rng.integers(5, 80))):
        n = int(rng.integers(2, 14))
        steps = rng.normal(0, 30, (n - 1, 2)) * (rng.random((n - 1, 1)) > 0.1)
        start = rng.uniform(0, 1000, 2)
        pts = np.vstack([start, start + np.cumsum(steps, axis=0)])
        lines.append([tuple(p) for p in np.round(pts, int(rng.integers(0, 4)))])
    lines += [lines[i] for i in rng.integers(0, len(lines), 3)]
    two_way = sorted({int(i) for i in rng.integers(0, len(lines), len(lines) // 2)})
    g = lines_graph(lines, two_way=two_way)
    for spread, max_distance in ((1200.0, None), (1500.0, 50.0), (100.0, 5.0)):
        x, y = rng.uniform(500 - spread, 500 + spread, (2, 1500))
        assert_matches_reference(g, x, y, max_distance)
    coords = shapely.get_coordinates(g.geoms)
    assert_matches_reference(g, coords[:, 0], coords[:, 1], 1.0)


def test_degenerate_extents_one_line_and_one_point():
    flat = lines_graph([[(0, 0), (50, 0)], [(50, 0), (80, 0), (200, 0)]], two_way=[1])
    rng = np.random.default_rng(14)
    assert_matches_reference(flat, rng.uniform(-100, 300, 1000), rng.uniform(-50, 50, 1000), None)
    dot = lines_graph([[(7, 7), (7, 7)]])
    s, _ = assert_matches_reference(dot, rng.uniform(-100, 100, 200), rng.uniform(-100, 100, 200), 60.0)
    assert ((s.edge == 0) == (np.hypot(s.x - 7, s.y - 7) == 0)).all()


def test_edges_without_geometry_are_never_snapped_to():
    geoms = [shapely.LineString([(0, 0), (10, 0)]), None, shapely.LineString()]
    g = RoadGraph([1, 2], [(0, 0), (10, 0)], [0, 1, 0], [1, 0, 1], [10.0, 10.0, 10.0], [1.0, 1.0, 1.0], geoms)
    s, _ = assert_matches_reference(g, [5.0, 50.0], [1.0, 50.0], None)
    assert s.edge.tolist() == [0, 0]


def test_empty_input():
    g = lines_graph([[(0, 0), (10, 0)]])
    s = g.snap([], [])
    assert len(s) == 0 and s.edge.dtype == s.twin.dtype == np.int64 and s.x.dtype == np.float64
    assert len(g._snap_shapely([], [])) == 0


def test_bad_input_is_refused_with_the_field_named():
    g = lines_graph([[(0, 0), (10, 0)]])
    for bad in (0.0, -5.0, float("nan")):
        with pytest.raises(ValueError, match="max_distance"):
            g.snap([1.0, 2.0], [1.0, 2.0], bad)
        with pytest.raises(ValueError, match="max_distance"):
            g.snap([1.0], [1.0], bad)
    with pytest.raises(ValueError, match="x, y"):
        g.snap([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="x, y"):
        g.snap([np.nan], [2.0])
    with pytest.raises(ValueError, match="x, y"):
        g.snap([1.0, 2.0, 3.0], [1.0, 2.0])
    multi = shapely.MultiLineString([[(0, 0), (1, 0)], [(2, 0), (3, 0)]])
    with pytest.raises(ValueError, match="geoms: edge 0 is a MultiLineString"):
        RoadGraph([1, 2], [(0, 0), (3, 0)], [0], [1], [2.0], [1.0], [multi])
