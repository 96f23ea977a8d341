"""Route geometry (gridmap.routing._kernels.routes) against the same route cut with shapely's substring, on the real
street network (multi-vertex OSM edges) and on hand-made edges with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.ops import substring

from gridmap.routing._kernels import routes as _routes
from gridmap.routing.roadgraph import RoadGraph


def reference(g, tx, ty, team_edge, f_team, path, last, f_last, ex, ey):
    """The route as the router used to build it: shapely substrings and whole edges."""
    parts = [np.array([[tx, ty]]), shapely.get_coordinates(substring(g.geoms[team_edge], f_team, 1.0, normalized=True))]
    dist = (1.0 - f_team) * g.length_m[team_edge]
    for e in path:
        parts.append(shapely.get_coordinates(g.geoms[e])[1:])
        dist += g.length_m[e]
    if last >= 0:
        parts.append(shapely.get_coordinates(substring(g.geoms[last], 0.0, f_last, normalized=True))[1:])
        dist += f_last * g.length_m[last]
    parts.append(np.array([[ex, ey]]))
    return np.concatenate(parts), dist


def build(g, *args):
    ec = _routes.EdgeCoords.of(g)
    team_edge, path, last = args[2], np.asarray(args[4], dtype=np.int64), args[5]
    out = np.empty((_routes.route_size(ec, team_edge, path, last), 2))
    n, dist = _routes.route_coords(ec.xy, ec.along, ec.ptr, ec.length, g.length_m, args[0], args[1], team_edge,
                                   args[3], path, len(path), last, args[6], args[7], args[8], out)
    return out[:n], dist


def test_random_walks_on_the_real_street_equal_shapely(street):
    g = street
    rng = np.random.default_rng(1)
    assert (shapely.get_num_coordinates(g.geoms) > 2).mean() > 0.3  # many edges bend: the parts are real cuts
    for q in range(400):
        e0 = int(rng.integers(g.n_edges))
        path, node = [], int(g.edge_v[e0])
        for _ in range(int(rng.integers(0, 12))):
            out = g.adj_edge[g.indptr[node]:g.indptr[node + 1]]
            if not len(out):
                break
            e = int(rng.choice(out))
            path.append(e)
            node = int(g.edge_v[e])
        nxt = g.adj_edge[g.indptr[node]:g.indptr[node + 1]]
        last = int(rng.choice(nxt)) if len(nxt) and q % 7 else -1
        f_team = float(rng.choice([0.0, 1.0, rng.random()])) if q % 5 == 0 else float(rng.random())
        f_last = float(rng.choice([0.0, 1.0, rng.random()])) if q % 3 == 0 else float(rng.random())
        args = (float(rng.normal(0, 1e3)), float(rng.normal(0, 1e3)), e0, f_team, path, last, f_last,
                float(rng.normal(0, 1e3)), float(rng.normal(0, 1e3)))
        want, want_d = reference(g, *args)
        got, got_d = build(g, *args)
        assert got.shape == want.shape, q
        assert np.allclose(got, want, rtol=0, atol=1e-6), q
        assert got_d == pytest.approx(want_d, rel=1e-12, abs=1e-9)


def test_hand_made_edge_cuts():
    xy = np.array([[0.0, 0.0], [30.0, 0.0], [30.0, 40.0]])  # an L: 30 m east then 40 m north
    geoms = np.array([shapely.LineString(xy), shapely.LineString(xy[::-1]), shapely.LineString([(30, 40), (30, 100)])])
    g = RoadGraph(np.arange(4), np.array([[0, 0], [30, 40], [30, 100], [99, 99]]), np.array([0, 1, 1]),
                  np.array([1, 0, 2]), np.array([70.0, 70.0, 60.0]), np.array([7.0, 7.0, 6.0]), geoms)
    # from half-way along the L (35 m: 5 m up the north leg) to 10 m into the next edge
    got, d = build(g, -1.0, -1.0, 0, 0.5, [], 2, 10 / 60, 31.0, 50.0)
    assert np.allclose(got, [[-1, -1], [30, 5], [30, 40], [30, 50], [31, 50]])
    assert d == pytest.approx(35 + 10)
    # the whole of the first edge, no last edge: every vertex
    got, d = build(g, 0.0, 0.0, 0, 0.0, [], -1, 0.0, 30.0, 40.0)
    assert np.allclose(got, [[0, 0], [0, 0], [30, 0], [30, 40], [30, 40]]) and d == pytest.approx(70)
    # a cut exactly at the corner vertex keeps it once
    got, _ = build(g, 0.0, 0.0, 0, 30 / 70, [2], -1, 0.0, 30.0, 100.0)
    assert np.allclose(got, [[0, 0], [30, 0], [30, 40], [30, 100], [30, 100]])
