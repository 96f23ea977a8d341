"""Response times, grid workloads and idle land on small frames whose answers are worked out by hand."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridmap.analysis import (
    grid_workload,
    idle_land_summary,
    open_land,
    parking_pressure,
    rank_idle_land,
    response_by_area,
    response_summary,
    response_times,
    workload_summary,
    worst,
)
from gridmap.errors import InvalidInput

TZ = "Asia/Shanghai"
CRS = "EPSG:4549"


def events_with_delays(minutes: list[float | None], categories: list[str], grids: list[str], month: str = "2026-03"):
    t0 = pd.Timestamp(f"{month}-05 10:00", tz=TZ)
    n = len(minutes)
    return gpd.GeoDataFrame({
        "category": categories, "grid_code": grids, "reported_at": [t0] * n,
        "on_site_at": [t0 + pd.Timedelta(minutes=m) if m is not None else pd.NaT for m in minutes],
    }, geometry=[shapely.Point(120.1, 30.28)] * n, crs="EPSG:4326")


def test_response_times_against_targets():
    ev = events_with_delays([4, 9, 12, None, 14, 16], ["fire_hazard", "fire_hazard", "fire_hazard", "fire_hazard",
                                                       "parking", "parking"], ["A", "A", "B", "B", "A", "B"])
    rt = response_times(ev)
    assert rt.response_min.tolist()[:3] == [4.0, 9.0, 12.0] and np.isnan(rt.response_min.iloc[3])
    assert rt.within_target.tolist() == [True, True, False, False, True, False]
    assert rt.open.tolist() == [False, False, False, True, False, False]
    s = response_summary(rt, "category").set_index("category")
    assert s.loc["fire_hazard", "share_within"] == 0.5  # the open one counts as late
    assert s.loc["fire_hazard", "median_min"] == 9.0 and s.loc["fire_hazard", "open"] == 1
    assert s.loc["parking", "target_min"] == 15.0
    by = response_summary(rt, ["grid_code", "category"])
    assert len(by) == 4 and by.events.sum() == 6
    # custom targets
    assert response_times(ev, targets={"parking": 20}).within_target.tolist()[-2:] == [True, True]
    assert worst(response_summary(rt, "grid_code"), 1, min_events=1).grid_code.tolist() == ["B"]


def test_response_month_is_local_and_maps_join():
    # 23:30 local on 31 March is 15:30 UTC: still March locally
    ev = events_with_delays([5, 5], ["fraud", "fraud"], ["A", "B"])
    ev["reported_at"] = pd.Timestamp("2026-03-31 23:30", tz=TZ)
    ev["on_site_at"] = ev["reported_at"] + pd.Timedelta(minutes=5)
    rt = response_times(ev)
    assert (rt.month == pd.Timestamp("2026-03-01")).all()
    areas = gpd.GeoDataFrame({"code": ["A", "B", "C"]}, geometry=[shapely.box(0, 0, 1, 1)] * 3, crs="EPSG:4326")
    m = response_by_area(rt, areas)
    assert m.events.tolist() == [1, 1, 0] and m.crs == areas.crs
    with pytest.raises(InvalidInput, match="lacks"):
        response_summary(rt.drop(columns="within_target"))


def grids_frame(**cols) -> gpd.GeoDataFrame:
    n = len(cols["code"])
    return gpd.GeoDataFrame(cols, geometry=[shapely.box(0, 0, 1, 1)] * n, crs=CRS)


def test_grid_workload_flags_the_outliers():
    g = grids_frame(code=["A", "B", "C", "D", "E"], workers=[1, 2, 1, 1, 0],
                    residents=[1000, 2000, 950, 3100, 500], households=[400, 800, 380, 1250, 200],
                    buildings=[40, 80, 38, 120, 10])
    ev = pd.DataFrame({"grid_code": ["A"] * 10 + ["B"] * 20 + ["C"] * 10 + ["D"] * 35 + ["E"] * 3})
    w = grid_workload(g, ev, months=1).set_index("code")
    assert w.loc["B", "residents_per_worker"] == 1000  # two workers share the load
    assert w.loc["D", "events_per_worker"] == 35
    assert w.flag.to_dict() == {"A": "typical", "B": "typical", "C": "typical", "D": "high", "E": "no_worker"}
    assert "residents 3.1× median" in w.loc["D", "flag_reason"]
    assert w.loc["A", "load_index"] == pytest.approx(1.0)
    # low: a quarter of everything
    g2 = grids_frame(code=["A", "B", "C"], workers=[1, 1, 1], residents=[1000, 1000, 200],
                     households=[400, 400, 90], buildings=[40, 40, 9])
    assert grid_workload(g2).flag.tolist() == ["typical", "typical", "low"]
    s = workload_summary(w.reset_index())
    assert s.set_index("measure").loc["residents", "median"] == 1000
    with pytest.raises(InvalidInput, match="grid_code"):
        grid_workload(g, pd.DataFrame({"x": [1]}))


def test_events_per_month_use_the_distinct_local_months():
    g = grids_frame(code=["A"], workers=[1], residents=[1000], households=[400], buildings=[40])
    t = pd.Timestamp("2026-01-10", tz=TZ)
    ev = pd.DataFrame({"grid_code": ["A"] * 6, "reported_at": [t, t, t + pd.Timedelta(days=31)] * 2})
    assert grid_workload(g, ev).events_per_worker.iloc[0] == 3.0  # 6 events over 2 months


def test_open_land_leaves_out_buildings_roads_slivers_and_huge_tracts():
    block = gpd.GeoDataFrame({"code": ["G1"]}, geometry=[shapely.box(0, 0, 300, 200)], crs=CRS)
    blds = gpd.GeoDataFrame(geometry=[shapely.box(10, 20, 290, 100)], crs=CRS)  # a long building
    roads = gpd.GeoDataFrame({"highway": ["primary"]}, geometry=[shapely.LineString([(0, 200), (300, 200)])], crs=CRS)
    land = open_land(block, blds, roads, building_clearance_m=10, min_width_m=20, min_area_m2=1000)
    # what stays: the strip y in [110, 188] (building + 10 m clearance below, 12 m road corridor above),
    # 300 m long; the 10 m strip under the building is a sliver (narrower than 20 m) and goes
    assert len(land) == 1
    minx, miny, maxx, maxy = land.geometry.iloc[0].bounds
    assert (minx, maxx) == pytest.approx((0, 300), abs=0.5) and (miny, maxy) == pytest.approx((110, 188), abs=0.5)
    assert land.area_m2.iloc[0] == pytest.approx(300 * 78, rel=0.01)
    assert land.area_code.tolist() == ["G1"] and land.crs == CRS
    # tracts above max_area_m2 (a park, a lake: the registry cannot tell) are left out
    assert open_land(block, blds, roads, min_width_m=20, max_area_m2=20_000).empty


def test_idle_land_is_ranked_by_area_and_distance_near_the_pressed_community():
    comms = gpd.GeoDataFrame({"code": ["C1", "C2"], "population": [1000, 10_000]},
                             geometry=[shapely.box(0, 0, 1000, 1000), shapely.box(3000, 0, 4000, 1000)], crs=CRS)
    rng = np.random.default_rng(1)
    pts = np.vstack([rng.uniform(100, 300, (40, 2)), rng.uniform(3100, 3900, (20, 2))])
    ev = gpd.GeoDataFrame({"category": ["parking"] * 60, "community_code": ["C1"] * 40 + ["C2"] * 20},
                          geometry=gpd.points_from_xy(pts[:, 0], pts[:, 1]), crs=CRS)
    pressure = parking_pressure(ev, comms)
    assert pressure.code.tolist() == ["C1", "C2"] and pressure.per_1000.tolist() == [40.0, 2.0]
    plots = gpd.GeoDataFrame({"area_m2": [4000.0, 9000.0, 4000.0, 9000.0]}, crs=CRS, geometry=[
        shapely.box(150, 150, 210, 210),    # small, among the complaints
        shapely.box(700, 700, 790, 790),    # big, 600 m from them
        shapely.box(1600, 100, 1660, 160),  # 600 m outside C1: beyond max_distance_m
        shapely.box(3400, 400, 3490, 490),  # in C2: not a top community when top=1
    ])
    r = rank_idle_land(plots, pressure, ev, top=1)
    assert len(r) == 2 and r.community.tolist() == ["C1", "C1"]
    assert r.geometry.iloc[0].bounds[0] == 150  # near beats big when 600 m away (exp(-600/300) < 4/9)
    assert r.distance_m.iloc[0] < 150 < 400 < r.distance_m.iloc[1]
    assert r.complaints_nearby.iloc[0] == 40 and r.complaints_nearby.iloc[1] < 40
    # with a slow decay the bigger plot wins
    assert rank_idle_land(plots, pressure, ev, top=1, decay_m=5000).geometry.iloc[0].bounds[0] == 700
    t = idle_land_summary(r)
    assert t["rank"].tolist() == [1, 2] and t.area_ha.tolist() == [0.4, 0.9]
