"""Tests of the sample-street generator on the real OSM network shipped in data/."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridmap.sample.street import (
    SAMPLE_STREET_CODE,
    SECOND_STREET_CODE,
    SampleStreet,
    generate_sample_street,
    grid_workloads,
)

REPO = Path(__file__).resolve().parents[2]
EDGES = REPO / "data/roads/hz_xihu_gongshu_osm_drive.gpkg"
DISTRICTS = REPO / "data/boundaries/hangzhou_districts_tianditu.geojson"
SMALL = {"n_residents": 20_000, "n_grids": 30, "n_events": 2_000}
START = datetime(2025, 11, 1, tzinfo=ZoneInfo("Asia/Shanghai"))

COLUMNS = {
    "areas": ["code", "level", "name", "name_zh", "parent_code", "population", "geometry"],
    "grid_staff": ["grid_code", "member_code", "role"],
    "buildings": ["id", "code", "name", "address", "floors", "height_m", "use", "units",
                  "year_built", "community_code", "grid_code", "geometry"],
    "households": ["id", "code", "building_id", "unit", "floor", "room", "size"],
    "residents": ["id", "household_id", "building_id", "sex", "birth_year", "is_party_member",
                  "flags"],
    "resident_pii": ["resident_id", "name", "id_card", "phone"],
    "businesses": ["id", "code", "name", "kind", "building_id", "address", "is_key_place",
                   "has_smart_fire_alarm", "employees", "geometry"],
    "fire_equipment": ["id", "code", "kind", "name", "status", "last_inspected", "station_code",
                       "building_id", "business_id", "geometry"],
    "teams": ["id", "code", "name", "kind", "home_grid_code", "skills", "status", "position_at",
              "geometry"],
    "team_members": ["id", "code", "team_id", "role", "name", "phone", "is_party_member",
                     "skills"],
    "events": ["id", "code", "channel", "external_id", "category", "severity", "title",
               "description", "reported_at", "street_code", "community_code", "grid_code",
               "building_id", "team_id", "status", "dispatched_at", "accepted_at", "on_site_at",
               "resolved_at", "closed_at", "geometry"],
}
STAGES = ["reported_at", "dispatched_at", "accepted_at", "on_site_at", "resolved_at", "closed_at"]


@pytest.fixture(scope="module")
def inputs() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    return gpd.read_file(EDGES, layer="edges"), gpd.read_file(DISTRICTS)


@pytest.fixture(scope="module")
def small(inputs) -> SampleStreet:
    return generate_sample_street(*inputs, **SMALL)


@pytest.fixture(scope="module")
def full(inputs) -> SampleStreet:
    return generate_sample_street(*inputs)


def _digest(street: SampleStreet) -> str:
    """SHA-256 over the Parquet bytes of every layer."""
    h = hashlib.sha256()
    for name, frame in street.layers().items():
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        h.update(name.encode() + buf.getvalue())
    return h.hexdigest()


def _local(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return frame.to_crs("EPSG:4549")


def _grids(street: SampleStreet) -> gpd.GeoDataFrame:
    return _local(street.areas[street.areas["level"] == "grid"]).set_index("code")


# --- determinism --------------------------------------------------------------------------


def test_same_seed_gives_identical_frames(inputs, small):
    again = generate_sample_street(*inputs, **SMALL)
    for name, frame in small.layers().items():
        other = again.layers()[name]
        if isinstance(frame, gpd.GeoDataFrame):
            assert (frame.geometry.to_wkb() == other.geometry.to_wkb()).all(), name
            frame, other = pd.DataFrame(frame.drop(columns="geometry")), pd.DataFrame(
                other.drop(columns="geometry"))
        pd.testing.assert_frame_equal(frame, other, obj=name)
    assert _digest(small) == _digest(again)


def test_same_seed_is_byte_identical_in_another_process(small):
    code = (
        "import geopandas as gpd, sys; sys.path.insert(0, 'tests/sample');"
        "from test_street import _digest, EDGES, DISTRICTS, SMALL;"
        "from gridmap.sample.street import generate_sample_street;"
        "print(_digest(generate_sample_street(gpd.read_file(EDGES, layer='edges'),"
        " gpd.read_file(DISTRICTS), **SMALL)))")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == _digest(small)


def test_other_seed_gives_other_street(inputs, small):
    other = generate_sample_street(*inputs, seed=7, **SMALL)
    assert _digest(other) != _digest(small)
    assert set(other.buildings.geometry.to_wkb()) != set(small.buildings.geometry.to_wkb())
    assert not other.resident_pii["id_card"].equals(small.resident_pii["id_card"])
    assert not other.events["reported_at"].equals(small.events["reported_at"])


# --- contract -----------------------------------------------------------------------------


def test_layers_have_exactly_the_contract_columns(small):
    assert list(small.layers()) == list(COLUMNS)
    for name, frame in small.layers().items():
        assert list(frame.columns) == COLUMNS[name], name
        if "id" in frame:
            assert frame["id"].tolist() == list(range(1, len(frame) + 1)), name
            assert frame["id"].dtype == np.int64
        if "code" in frame:
            assert frame["code"].is_unique, name


def test_spatial_layers_are_in_epsg_4326(small):
    for name, frame in small.layers().items():
        if isinstance(frame, gpd.GeoDataFrame):
            assert frame.crs.to_epsg() == 4326, name
            assert frame.geometry.is_valid.all(), name
            assert frame.total_bounds[0] > 118 and frame.total_bounds[2] < 121, name


def test_layer_vocabularies(small):
    assert set(small.buildings["use"]) <= {"residential", "commercial", "industrial", "public",
                                           "mixed"}
    assert set(small.fire_equipment["kind"]) == {"micro_fire_station", "micro_fire_truck",
                                                 "hydrant", "extinguisher_cabinet", "smart_alarm"}
    assert set(small.teams["kind"]) == {"grid_patrol", "volunteer", "micro_fire_crew",
                                        "mediation", "auxiliary_police"}
    assert set(small.events.loc[small.events["channel"] == "smart_alarm", "category"]) == {
        "fire_hazard"}
    assert small.events["severity"].between(1, 4).all()
    flags = {f for fl in small.residents["flags"] for f in fl}
    assert flags <= {"elderly_alone", "disabled", "low_income", "key_care"}
    assert small.residents["flags"].map(len).eq(0).mean() > 0.8
    assert all(isinstance(s, list) for s in small.teams["skills"])


def test_rejects_a_naive_events_start(inputs):
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_sample_street(*inputs, events_start=datetime(2025, 11, 1), **SMALL)


# --- referential integrity ----------------------------------------------------------------


def test_every_referenced_id_exists(small):
    s = small
    building_ids = set(s.buildings["id"])
    assert set(s.households["building_id"]) <= building_ids
    assert set(s.residents["household_id"]) <= set(s.households["id"])
    hh_building = s.households.set_index("id")["building_id"]
    assert (s.residents["building_id"].to_numpy()
            == hh_building.loc[s.residents["household_id"]].to_numpy()).all()
    assert s.resident_pii["resident_id"].tolist() == s.residents["id"].tolist()
    assert set(s.businesses["building_id"]) <= building_ids
    fe = s.fire_equipment
    assert set(fe["building_id"].dropna()) <= building_ids
    assert set(fe["business_id"].dropna()) <= set(s.businesses["id"])
    stations = set(fe.loc[fe["kind"] == "micro_fire_station", "code"])
    trucks = fe["kind"] == "micro_fire_truck"
    assert set(fe.loc[trucks, "station_code"]) <= stations
    assert fe.loc[~trucks, "station_code"].isna().all()
    alarms = fe[fe["kind"] == "smart_alarm"]
    assert len(alarms) == s.businesses["has_smart_fire_alarm"].sum()
    assert set(alarms["business_id"]) == set(s.businesses.loc[s.businesses["has_smart_fire_alarm"],
                                                              "id"])
    grids = set(s.areas.loc[s.areas["level"] == "grid", "code"])
    communities = set(s.areas.loc[s.areas["level"] == "community", "code"])
    assert set(s.teams["home_grid_code"]) <= grids
    assert set(s.team_members["team_id"].dropna()) <= set(s.teams["id"])
    assert set(s.events["team_id"].dropna()) <= set(s.teams["id"])
    assert set(s.events["building_id"].dropna()) <= building_ids
    assert set(s.events["grid_code"]) <= grids and set(s.events["community_code"]) <= communities
    parent = s.areas.set_index("code")["parent_code"]
    for frame in (s.buildings, s.events):
        assert (parent.loc[frame["grid_code"]].to_numpy() == frame["community_code"]).all()
    assert (parent.loc[s.events["community_code"]].to_numpy() == s.events["street_code"]).all()
    assert set(parent.loc[list(communities)]) == {SAMPLE_STREET_CODE, SECOND_STREET_CODE}
    assert parent.loc[SAMPLE_STREET_CODE] == parent.loc[SECOND_STREET_CODE] == "330106"


def test_every_grid_has_a_primary_grid_worker(small):
    staff = small.grid_staff.merge(small.team_members, left_on="member_code", right_on="code")
    assert len(staff) == len(small.grid_staff)
    assert (staff["role_y"] == "grid_worker").all()
    primaries = staff.loc[staff["role_x"] == "primary", "grid_code"]
    grids = small.areas.loc[small.areas["level"] == "grid", "code"]
    assert set(primaries) == set(grids)


# --- geometry -----------------------------------------------------------------------------


def test_grids_tile_the_street_and_nest_in_communities(small):
    areas = _local(small.areas)
    grids = areas[areas["level"] == "grid"]
    assert len(grids) == SMALL["n_grids"]
    assert (areas.geom_type == "MultiPolygon").all()
    geoms = grids.geometry.values
    i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = i < j
    overlap = shapely.area(shapely.intersection(geoms[i[keep]], geoms[j[keep]]))
    assert overlap.max(initial=0.0) < 1.0
    streets = areas.loc[areas["level"] == "street"].set_index("code").geometry
    area = streets.area.sum()
    assert shapely.area(shapely.union_all(geoms)) == pytest.approx(area, rel=1e-6)
    assert grids.area.sum() == pytest.approx(area, rel=1e-6)
    parent = areas.set_index("code")["parent_code"]
    for code, street in streets.items():  # each street is the union of its communities' grids
        mine = grids[parent.loc[grids["parent_code"]].to_numpy() == code]
        assert mine.area.sum() == pytest.approx(street.area, rel=1e-6)
    for code, community in areas[areas["level"] == "community"].set_index("code").geometry.items():
        members = grids[grids["parent_code"] == code]
        assert 4 <= len(members) <= 9
        assert members.area.sum() == pytest.approx(community.area, rel=1e-6)
    # Grids are contiguous and not slivers.
    assert (grids.geometry.map(lambda g: len(g.geoms)) == 1).all()
    assert grids.area.min() > 10_000


def test_buildings_do_not_overlap_and_stay_off_the_roads(small, inputs):
    geoms = _local(small.buildings).geometry.values
    i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    assert (i == j).all()
    roads = inputs[0].to_crs("EPSG:4549").geometry.values
    near = shapely.STRtree(roads).query(geoms, predicate="dwithin", distance=7.5)
    assert len(near[0]) == 0


def test_points_lie_inside_their_grid(small):
    grids = _grids(small).geometry
    b = _local(small.buildings)
    assert (shapely.distance(b.geometry.centroid.values, grids.loc[b["grid_code"]].values)
            <= 1.0).all()
    assert shapely.covers(grids.loc[b["grid_code"]].values.buffer(1.0), b.geometry.values).all()
    biz = _local(small.businesses).merge(small.buildings[["id", "grid_code"]],
                                         left_on="building_id", right_on="id")
    assert (shapely.distance(biz.geometry.values, grids.loc[biz["grid_code"]].values) <= 1.0).all()
    footprints = b.set_index("id").geometry
    assert shapely.covers(footprints.loc[biz["building_id"]].values, biz.geometry.values).all()
    ev = _local(small.events)
    assert (shapely.distance(ev.geometry.values, grids.loc[ev["grid_code"]].values) <= 1.0).all()
    teams = _local(small.teams)
    assert (shapely.distance(teams.geometry.values, grids.loc[teams["home_grid_code"]].values)
            <= 1.0).all()


def test_grid_workloads_are_balanced(small):
    w = grid_workloads(small)
    assert len(w) == SMALL["n_grids"]
    assert w.max() / w.min() < 1.6


def test_population_is_the_residents_of_the_grid_buildings(small):
    per_grid = small.residents.merge(small.buildings[["id", "grid_code"]],
                                     left_on="building_id", right_on="id").groupby(
        "grid_code").size()
    areas = small.areas.set_index("code")
    grids = areas[areas["level"] == "grid"]
    assert (grids["population"] == per_grid.reindex(grids.index, fill_value=0)).all()
    communities = areas[areas["level"] == "community"]
    summed = grids.groupby("parent_code")["population"].sum()
    assert (communities["population"] == summed.loc[communities.index]).all()
    streets = areas[areas["level"] == "street"]
    assert streets["population"].sum() == SMALL["n_residents"]
    assert (streets["population"] == communities.groupby("parent_code")["population"].sum().loc[streets.index]).all()


# --- people -------------------------------------------------------------------------------


def test_households_hold_exactly_the_residents(small):
    hh, b = small.households, small.buildings.set_index("id")
    assert hh["size"].sum() == SMALL["n_residents"] == len(small.residents)
    assert hh["size"].between(1, 6).all()
    assert (small.residents.groupby("household_id").size() == hh.set_index("id")["size"]).all()
    assert not hh.duplicated(["building_id", "unit", "room"]).any()
    assert (hh["floor"] <= b.loc[hh["building_id"], "floors"].to_numpy()).all()
    assert (hh["unit"] <= b.loc[hh["building_id"], "units"].to_numpy()).all()
    assert set(b.loc[hh["building_id"], "use"]) <= {"residential", "mixed"}


def test_id_cards_are_valid(small):
    pii = small.resident_pii.merge(small.residents, left_on="resident_id", right_on="id")
    ids = pii["id_card"]
    assert ids.str.fullmatch(r"3301\d{13}[\dX]").all() and ids.is_unique
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    digits = np.array([[int(c) for c in s[:17]] for s in ids])
    expected = np.array(list("10X98765432"))[(digits @ weights) % 11]
    assert (ids.str[17].to_numpy() == expected).all()
    assert (ids.str[6:10].astype(int) == pii["birth_year"]).all()
    assert pd.to_datetime(ids.str[6:14], format="%Y%m%d").notna().all()
    male = ids.str[16].astype(int) % 2 == 1
    assert (male == (pii["sex"] == "M")).all()


def test_phones_and_names_look_real(small):
    phones = pd.concat([small.resident_pii["phone"], small.team_members["phone"]])
    assert phones.str.fullmatch(r"1[3-9]\d{9}").all() and phones.is_unique
    names = small.resident_pii["name"]
    assert names.str.len().between(2, 4).all()
    assert names.str[0].value_counts().index[0] in {"陈", "王"}


# --- events -------------------------------------------------------------------------------


def test_events_walk_through_their_stages_in_order(small):
    ev = small.events
    assert ev["reported_at"].dt.tz is not None
    assert (ev["reported_at"] >= START).all()
    assert (ev["reported_at"] < START + timedelta(days=365)).all()
    assert ev["reported_at"].is_monotonic_increasing
    stamps = ev[STAGES]
    for a, b in pairwise(STAGES):
        both = stamps[a].notna() & stamps[b].notna()
        assert (stamps.loc[both, a] <= stamps.loc[both, b]).all(), (a, b)
        assert (stamps[b].isna() | stamps[a].notna()).all()
    closed = ev["status"] == "closed"
    assert ev.loc[closed, "closed_at"].notna().all()
    assert 0.95 < closed.mean() < 0.995
    minutes = (ev["on_site_at"] - ev["reported_at"]).dt.total_seconds() / 60
    assert 4.0 < minutes.median() < 9.0
    assert minutes.quantile(0.99) > 3 * minutes.median()
    assert not ev.duplicated(["channel", "external_id"]).any()


def test_fire_hazards_peak_in_winter(small):
    fire = small.events.loc[small.events["category"] == "fire_hazard", "reported_at"].dt.month
    assert fire.isin([12, 1, 2]).sum() > 1.5 * fire.isin([6, 7, 8]).sum()


# --- the default Xianlin-sized street -----------------------------------------------------


@pytest.mark.slow
def test_default_street_has_xianlin_counts(full):
    c = full.counts()
    assert c["residents"] == c["resident_pii"] == 260_000
    assert c["events"] == 36_000 and c["teams"] == 150
    levels = full.areas["level"].value_counts()
    assert levels["grid"] == 149 and levels["district"] == 13 and levels["street"] == 2
    assert 20 <= levels["community"] <= 24
    assert 6_000 <= c["buildings"] <= 12_000
    assert 4_000 <= c["businesses"] <= 8_000
    fe = full.fire_equipment["kind"].value_counts()
    assert 25 <= fe["micro_fire_station"] <= 35 and 35 <= fe["micro_fire_truck"] <= 45
    roles = full.team_members["role"].value_counts()
    assert roles["grid_worker"] >= 149
    assert roles["party_volunteer"] == 2_400 and roles["volunteer"] == 1_000
    kinds = full.teams["kind"].value_counts()
    assert kinds["micro_fire_crew"] == fe["micro_fire_station"]
    w = grid_workloads(full)
    assert w.max() / w.min() < 1.6
    assert full.areas.loc[full.areas["level"] == "grid", "population"].sum() == 260_000


@pytest.mark.slow
def test_the_second_street_is_the_south_east_corner_of_the_first(full):
    """Street B is three whole communities of the south-east corner, in the same district, 15.2 % of the
    residents; street A keeps the rest and every community code it had."""
    areas = full.areas.set_index("code")
    a, b = areas.loc[SAMPLE_STREET_CODE], areas.loc[SECOND_STREET_CODE]
    assert (a["population"], b["population"]) == (220_557, 39_443)
    comms = areas[areas["level"] == "community"]
    assert sorted(comms.index[comms["parent_code"] == SECOND_STREET_CODE]) == [
        "330106901001", "330106901002", "330106901003"]
    assert list(comms.loc[comms["parent_code"] == SECOND_STREET_CODE, "name_zh"]) == ["枫林社区", "荷塘社区", "清泉村"]
    # A keeps its community codes (B's three leave gaps at 003, 004 and 012), and stays in one piece
    assert sorted(comms.index[comms["parent_code"] == SAMPLE_STREET_CODE]) == [
        f"{SAMPLE_STREET_CODE}{i:03d}" for i in range(1, 23) if i not in (3, 4, 12)]
    local = _local(full.areas).set_index("code").geometry
    assert len(local[SAMPLE_STREET_CODE].geoms) == 1 and len(local[SECOND_STREET_CODE].geoms) == 1
    xihu = _local(full.areas[full.areas["code"] == "330106"]).geometry.iloc[0]
    assert local[SECOND_STREET_CODE].difference(xihu).area < 0.01 * local[SECOND_STREET_CODE].area
    grids = full.areas[full.areas["level"] == "grid"]
    assert grids["code"].str.startswith(SECOND_STREET_CODE).sum() == 21
    assert (full.events["street_code"] == SECOND_STREET_CODE).sum() == 5_720


def test_the_split_changes_nothing_but_the_codes(inputs, small):
    """With and without the second street the registry is the same: buildings, people, places, teams and
    events; only the codes of the corner's areas (and what refers to them) differ."""
    one = generate_sample_street(*inputs, second_street_share=0, **SMALL)
    assert (one.areas["level"] == "street").sum() == 1 and (small.areas["level"] == "street").sum() == 2
    assert set(one.events["street_code"]) == {SAMPLE_STREET_CODE}
    codes = {"community_code", "grid_code", "street_code", "home_grid_code"}
    for name in ("buildings", "households", "residents", "resident_pii", "businesses", "fire_equipment",
                 "teams", "team_members", "events"):
        f1, f2 = one.layers()[name], small.layers()[name]
        keep = [c for c in f1.columns if c not in codes]
        pd.testing.assert_frame_equal(pd.DataFrame(f1[keep]), pd.DataFrame(f2[keep]), obj=name)
    moved = small.areas["code"].str.startswith(SECOND_STREET_CODE)
    same = small.areas.loc[~moved & (small.areas["level"] != "street"), "code"]
    assert set(same) <= set(one.areas["code"])  # the first street's areas keep their codes


def test_teams_are_on_or_off_duty_only(small):
    """"assigned" and "on_site" come from an active assignment, which the sample does not hold."""
    assert set(small.teams["status"]) <= {"available", "off_duty"}
    assert (small.teams["status"] == "available").mean() > 0.5
