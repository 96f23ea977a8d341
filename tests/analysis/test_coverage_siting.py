"""Coverage, isochrones and siting on hand-made road graphs whose answers are known by hand."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gridmap.analysis import (
    GREEDY_GUARANTEE,
    building_coverage,
    coverage_by_area,
    coverage_matrix,
    coverage_summary,
    isochrones,
    maximal_covering,
    road_node_candidates,
    travel_times,
)
from gridmap.errors import InvalidInput
from gridmap.routing.many_to_one import Targets, edge_samples, network_times, origin_seeds
from gridmap.routing.roadgraph import WALK_SPEED
from tests.analysis.analysis_helpers import CRS, lattice, make_graph, points

# A T of streets at 10 m/s: a two-way main street W-O-E (0..2000 m along y = 0) and a one-way side street
# O -> N (north, 1000 m). A station at O reaches 600 m in 1 minute along the two-way street, but nothing
# back down the one-way side street from its far end.
T_NODES = {"W": (0.0, 0.0), "O": (1000.0, 0.0), "E": (2000.0, 0.0), "N": (1000.0, 1000.0)}
T_ROADS = [("W", "O", True), ("O", "E", True), ("O", "N", False)]


@pytest.fixture
def tee():
    return make_graph(T_NODES, T_ROADS)[0]


def homes_on_tee():
    # name: (x, y): positions 10 m off the road (1 s walk at 1.25 m/s is 8 s: counted)
    spots = {
        "east_400": (1400.0, 10.0),   # 40 s drive + 8 s walk = 48 s
        "west_550": (450.0, -10.0),   # 55 s + 8 s = 63 s
        "north_300": (1010.0, 300.0),  # along the one-way street, with the flow: 30 s + 8 s = 38 s
        "east_900": (1900.0, 10.0),   # 90 s + 8 s = 98 s
        "far_field": (1000.0, 3000.0),  # 2 km from any road: never reached
    }
    return points(list(spots.values()), code=list(spots), residents=[10, 20, 30, 40, 50])


def test_a_station_covers_exactly_the_buildings_it_reaches_in_time(tee):
    station = points([(1000.0, 0.0)], code=["S1"])
    b = homes_on_tee()
    cov = building_coverage(tee, station, b, minutes=1.0)
    assert cov.set_index("code")["covered"].to_dict() == {
        "east_400": True, "west_550": False, "north_300": True, "east_900": False, "far_field": False}
    walk = 10.0 / WALK_SPEED
    assert cov.set_index("code")["eta_s"].to_dict() == pytest.approx(
        {"east_400": 40 + walk, "west_550": 55 + walk, "north_300": 30 + walk, "east_900": 90 + walk,
         "far_field": np.inf})
    s = coverage_summary(cov)
    assert (s.buildings_covered, s.residents_covered, s.residents_outside) == (2, 40.0, 110.0)
    assert s.unreachable_buildings == 1
    # a 64 s reach picks up the west home too, and nothing else
    assert building_coverage(tee, station, b, minutes=64 / 60).covered.sum() == 3


def test_one_way_streets_are_respected(tee):
    # a station at the far end of the one-way side street cannot drive back against it
    station = points([(1000.0, 1000.0)])
    t = travel_times(tee, station, homes_on_tee())
    assert np.isinf(t).all()


def test_frames_keep_their_crs_and_need_one(tee):
    b4326 = homes_on_tee().to_crs("EPSG:4326")
    cov = building_coverage(tee, points([(1000.0, 0.0)]).to_crs("EPSG:4326"), b4326, minutes=1.0)
    assert cov.crs == b4326.crs
    assert cov.covered.sum() == 2  # the same answer from lon/lat input
    with pytest.raises(InvalidInput, match="no CRS"):
        building_coverage(tee, points([(1000.0, 0.0)]), homes_on_tee().set_crs(None, allow_override=True))


def test_coverage_by_area_sums_residents_per_grid(tee):
    b = homes_on_tee()
    b["grid_code"] = ["G1", "G1", "G2", "G2", "G3"]
    cov = building_coverage(tee, points([(1000.0, 0.0)]), b, minutes=1.0)
    areas = gpd.GeoDataFrame({"code": ["G1", "G2", "G3", "G4"]}, geometry=[shapely.box(0, 0, 1, 1)] * 4, crs=CRS)
    out = coverage_by_area(cov, areas).set_index("code")
    assert out.loc["G1", ["residents", "residents_covered"]].tolist() == [30.0, 10.0]
    assert out.loc["G2", "share_covered"] == pytest.approx(30 / 70)
    assert out.loc["G3", "share_covered"] == 0.0
    assert np.isnan(out.loc["G4", "share_covered"]) and out.loc["G4", "buildings"] == 0


def test_isochrone_polygons_grow_with_time_and_agree_with_building_etas(tee):
    station = points([(1000.0, 0.0)], code=["S1"])
    iso = isochrones(tee, station, [0.5, 1.0], spacing_m=10.0)
    small, big = iso.geometry.to_list()
    assert small.within(big) and small.area < big.area
    assert iso.area_km2.tolist() == pytest.approx([small.area / 1e6, big.area / 1e6])
    b = homes_on_tee().set_index("code")
    assert big.contains(b.geometry["east_400"]) and big.contains(b.geometry["north_300"])
    assert not big.contains(b.geometry["east_900"]) and not big.contains(b.geometry["far_field"])
    # inside the polygon <=> covered by building_coverage's rule, up to one grid step from the boundary
    rng = np.random.default_rng(0)
    probe = points(np.column_stack([rng.uniform(300, 1700, 3000), rng.uniform(-100, 500, 3000)]))
    covered = building_coverage(tee, station, probe, minutes=1.0).covered.to_numpy()
    inside = probe.within(big).to_numpy()
    clear = (probe.distance(big.boundary) > 10.0).to_numpy()
    assert covered.sum() > 300 and np.array_equal(inside[clear], covered[clear])
    # along the two-way street the reach is 600 m each way (less the walk from a cell centre to the road)
    minx, _, maxx, _ = big.bounds
    assert 1000 - 600 - 10 <= minx <= 1000 - 560 and 1000 + 560 <= maxx <= 1000 + 600 + 10


def test_a_station_at_a_dead_end_reaches_only_on_foot(tee):
    # from the north end of the one-way side street nothing is reached by road: only the points whose own
    # road is that end of the street, within a minute's walk (75 m): a half disc beyond the end
    stuck = isochrones(tee, points([(1000.0, 1000.0)]), 1.0, spacing_m=5.0).geometry.iloc[0]
    assert stuck.area == pytest.approx(np.pi * (60 * WALK_SPEED) ** 2 / 2, rel=0.1)
    assert stuck.bounds[1] >= 1000.0 - 5.0
    each = isochrones(tee, points([(0.0, 0.0), (2000.0, 0.0)], code=["A", "B"]), 0.5, each=True)
    assert each.code.tolist() == ["A", "B"] and not each.geometry.iloc[0].intersects(each.geometry.iloc[1])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_presnapped_targets_equal_network_times(seed):
    """The siting/isochrone inner loop gives the same times as gridmap.routing.team_index.network_times."""
    g = lattice(side=7, one_way_every=4)
    rng = np.random.default_rng(seed)
    ox, oy = rng.uniform(-50, 1250, 5), rng.uniform(-50, 1250, 5)
    tx, ty = rng.uniform(-50, 1250, 400), rng.uniform(-50, 1250, 400)
    # origins and targets on the same edges too (the on-edge shortcut)
    tx[:5], ty[:5] = ox + 3.0, oy
    for horizon in (np.inf, 120.0):
        ref = network_times(g, ox, oy, tx, ty, horizon_s=horizon)
        got = Targets(g, tx, ty).times(g, origin_seeds(g, ox, oy), horizon)
        assert np.array_equal(ref, got)
        assert np.isfinite(ref).sum() > 50


def test_edge_samples_cover_every_road_once_at_the_spacing():
    g = lattice(side=3)
    edge, frac, xy = edge_samples(g, 50.0)
    roads = {tuple(sorted((int(g.edge_u[e]), int(g.edge_v[e])))) for e in range(g.n_edges)}
    assert len(set(edge.tolist())) == len(roads) == 12
    assert len(edge) == 12 * 5  # 200 m roads: 0, 50, ..., 200
    assert frac.min() == 0.0 and frac.max() == 1.0 and xy.shape == (60, 2)


# -- siting -------------------------------------------------------------------------------------------------
def village_scene():
    """A 1.4 km x 1.4 km lattice; a dense estate of 900 residents in the north-east corner, a few homes
    scattered elsewhere, an existing station in the south-west corner."""
    g = lattice(side=8)
    rng = np.random.default_rng(7)
    estate = rng.uniform(1320, 1400, (30, 2))  # within 40 m of the corner roads
    scattered = rng.uniform(0, 1400, (20, 2))
    demand = points(np.vstack([estate, scattered]), residents=np.r_[np.full(30, 30), np.full(20, 5)])
    existing = points([(0.0, 0.0)])
    return g, demand, existing


def test_siting_picks_the_obviously_best_site():
    g, demand, existing = village_scene()
    cands = points([(1400.0, 1400.0), (0.0, 200.0), (700.0, 0.0), (0.0, 1400.0)], code=["NE", "SW", "S", "NW"])
    for method in ("mip", "greedy"):
        r = maximal_covering(g, cands, demand, k=1, minutes=1.0, existing=existing, method=method)
        assert r.sites.code.tolist() == ["NE"], method
        assert r.sites.gain.iloc[0] >= 900  # the whole estate
        assert r.covered_after - r.covered_before == pytest.approx(r.sites.gain.sum())
        assert r.demand.covered_after.sum() >= r.demand.covered_before.sum()
    # what the existing station covers earns a candidate next to it nothing
    r = maximal_covering(g, points([(0.0, 20.0)], code=["next_door"]), demand, k=1, minutes=1.0, existing=existing)
    assert r.sites.empty and r.covered_after == r.covered_before and r.notes


def brute_force(a, w, k):
    best = 0.0
    for combo in itertools.combinations(range(a.shape[1]), k):
        best = max(best, float(w[np.asarray(a[:, list(combo)].sum(axis=1)).ravel() > 0].sum()))
    return best


@pytest.mark.parametrize("k", [2, 3])
def test_mip_is_optimal_and_greedy_within_its_bound(k):
    g = lattice(side=8)
    rng = np.random.default_rng(k)
    demand = points(rng.uniform(0, 1400, (120, 2)), residents=rng.integers(1, 60, 120))
    cands = road_node_candidates(g, min_spacing_m=390.0)
    assert 8 <= len(cands) <= 20
    a = coverage_matrix(g, cands, demand, minutes=0.4)
    w = demand.residents.to_numpy(float)
    opt = brute_force(a, w, k)
    mip = maximal_covering(g, cands, demand, k=k, minutes=0.4)
    greedy = maximal_covering(g, cands, demand, k=k, minutes=0.4, method="greedy")
    assert mip.optimal and mip.covered_after == pytest.approx(opt)
    assert greedy.covered_after <= opt + 1e-9
    assert greedy.covered_after >= GREEDY_GUARANTEE * opt
    assert greedy.upper_bound >= opt - 1e-9  # the data-dependent bound really bounds
    assert list(mip.sites["rank"]) == list(range(1, len(mip.sites) + 1))
    assert (np.diff(mip.sites.gain.to_numpy()) <= 1e-9).all()  # shown largest gain first


def test_coverage_matrix_matches_single_station_coverage():
    g = lattice(side=6)
    rng = np.random.default_rng(3)
    demand = points(rng.uniform(0, 1000, (80, 2)), residents=np.ones(80))
    cands = points(rng.uniform(0, 1000, (6, 2)))
    a = coverage_matrix(g, cands, demand, minutes=0.5).toarray()
    for j in range(len(cands)):
        cov = building_coverage(g, cands.iloc[[j]], demand, minutes=0.5)
        assert np.array_equal(a[:, j], cov.covered.to_numpy())


def test_siting_refuses_nonsense():
    g, demand, _ = village_scene()
    cands = points([(0.0, 0.0)])
    with pytest.raises(InvalidInput, match="k"):
        maximal_covering(g, cands, demand, k=0)
    with pytest.raises(InvalidInput, match="method"):
        maximal_covering(g, cands, demand, k=1, method="annealing")
    with pytest.raises(InvalidInput, match="lacks"):
        maximal_covering(g, cands, demand.drop(columns="residents"), k=1)
