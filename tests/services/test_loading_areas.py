"""Area filters (by level, by area, by bbox) and versioned areas (a grid's version at a time)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import text

from gridmap.errors import InvalidInput, LoadRejected, NotFound
from tests.services._loading import TZ, box, buildings, by_code, read, same_geometry, snapshot, write


# -- area filters and versioned areas ------------------------------------------------------------
@pytest.fixture
def areas(db, tmp_path):
    """Two communities of one street, three grids, buildings and hydrants inside them."""
    a = gpd.GeoDataFrame(
        {
            "code": ["S1", "C1", "C2", "G11", "G12", "G21"],
            "level": ["street", "community", "community", "grid", "grid", "grid"],
            "name": ["示例街道", "一社区", "二社区", "一社区一网格", "一社区二网格", "二社区一网格"],
            "parent_code": [None, "S1", "S1", "C1", "C1", "C2"],
            "population": [30000, 12000, 18000, 6000, 6000, 18000],
        },
        geometry=[box(120.10, 30.28, 0.04, 0.02), box(120.10, 30.28, 0.02, 0.02), box(120.12, 30.28, 0.02, 0.02),
                  box(120.10, 30.28, 0.01, 0.02), box(120.11, 30.28, 0.01, 0.02), box(120.12, 30.28, 0.02, 0.02)],
        crs="EPSG:4326",
    )
    assert db.load("areas", write(a, tmp_path / "areas.gpkg")).inserted == 6
    b = buildings(3).set_geometry([box(120.104, 30.29), box(120.114, 30.29), box(120.125, 30.29)],
                                  crs="EPSG:4326")  # in G11, G12 and G21
    db.load("buildings", write(b, tmp_path / "b.geojson"))
    fe = gpd.GeoDataFrame({"code": ["H1", "H2", "H3", "H4"], "kind": "hydrant"},
                          geometry=shapely.points([120.105, 120.115, 120.13, 120.16], [30.285] * 4),
                          crs="EPSG:4326")
    db.load("fire_equipment", write(fe, tmp_path / "fe.geojson"))
    return db


def codes(gdf) -> list[str]:
    return sorted(gdf["code"])


def test_area_layers_by_level(areas):
    assert codes(areas.layer("grids")) == ["G11", "G12", "G21"]
    assert codes(areas.layer("communities")) == ["C1", "C2"]
    assert codes(areas.layer("streets")) == ["S1"]
    assert areas.layer("districts").empty
    assert codes(areas.layer("areas")) == ["C1", "C2", "G11", "G12", "G21", "S1"]
    counts = areas.counts()
    assert (counts["areas.grid"], counts["areas.community"], counts["areas.street"]) == (3, 2, 1)


def test_area_filter_on_area_layers_follows_the_hierarchy(areas):
    assert codes(areas.layer("grids", area="C1")) == ["G11", "G12"]
    assert codes(areas.layer("grids", area="S1")) == ["G11", "G12", "G21"]
    assert codes(areas.layer("areas", area="C1")) == ["C1", "G11", "G12"]
    assert codes(areas.layer("communities", area="S1")) == ["C1", "C2"]
    assert codes(areas.layer("grids", area="G12")) == ["G12"]


def test_area_filter_on_features(areas):
    assert codes(areas.layer("buildings", area="G11")) == ["B1"]
    assert codes(areas.layer("buildings", area="C1")) == ["B1", "B2"]
    assert codes(areas.layer("buildings", area="S1")) == ["B1", "B2", "B3"]
    assert codes(areas.layer("fire_equipment", area="G12")) == ["H2"]
    assert codes(areas.layer("fire_equipment", area="C2")) == ["H3"]
    assert codes(areas.layer("fire_equipment", area="S1")) == ["H1", "H2", "H3"]  # H4 is outside the street


def test_buildings_get_their_grid_and_community_on_load(areas):
    got = by_code(areas.layer("buildings"))
    assert got["grid_code"].tolist() == ["G11", "G12", "G21"]
    assert got["community_code"].tolist() == ["C1", "C1", "C2"]


def test_bbox_filter(areas):
    assert codes(areas.layer("fire_equipment", bbox=(120.10, 30.28, 120.12, 30.29))) == ["H1", "H2"]
    assert codes(areas.layer("buildings", bbox=(120.11, 30.28, 120.13, 30.30))) == ["B2", "B3"]
    assert codes(areas.layer("grids", bbox=(120.125, 30.281, 120.126, 30.282))) == ["G21"]
    # bbox and area together
    assert codes(areas.layer("fire_equipment", area="C1", bbox=(120.11, 30.28, 120.2, 30.3))) == ["H2"]
    assert areas.layer("buildings", bbox=(100.0, 20.0, 100.1, 20.1)).empty


def test_bad_area_and_bbox(areas):
    with pytest.raises(NotFound) as exc:
        areas.layer("buildings", area="C9")
    assert exc.value.field == "area" and "'C9'" in str(exc.value)
    with pytest.raises(InvalidInput) as exc:
        areas.layer("buildings", bbox=(120.2, 30.3, 120.1, 30.2))
    assert exc.value.field == "bbox"
    with pytest.raises(InvalidInput, match="lat/lon swapped") as exc:  # the notebook surface checks as the API does
        areas.layer("buildings", bbox=(30.28, 120.10, 30.29, 120.12))
    assert exc.value.field == "bbox" and "longitude first" in exc.value.fix
    with pytest.raises(NotFound):
        areas.layer("parks")


def test_export_with_area_filter(areas, tmp_path):
    assert areas.export("buildings", tmp_path / "c1.gpkg", area="C1") == 2
    assert codes(read(tmp_path / "c1.gpkg")) == ["B1", "B2"]
    assert areas.export("grids", tmp_path / "g.parquet", bbox=(120.0, 30.0, 120.115, 30.5)) == 2


def _versions(tmp: Path, name: str, rows: list[tuple]) -> Path:
    """rows: (code, name, parent_code, valid_from, valid_to, geometry)."""
    gdf = gpd.GeoDataFrame(
        {"code": [r[0] for r in rows], "name": [r[1] for r in rows], "parent_code": [r[2] for r in rows],
         "valid_from": [r[3] for r in rows], "valid_to": [r[4] for r in rows]},
        geometry=[r[5] for r in rows], crs="EPSG:4326",
    )
    return write(gdf, tmp / name)


# G9 was redrawn on 2023-07-01 (and moved from C1 to C2); it lies north of the other grids
V1 = ("G9", "旧网格", "C1", "2020-01-01T00:00:00+08:00", "2023-07-01T00:00:00+08:00", box(120.10, 30.30, 0.01, 0.01))
V2 = ("G9", "新网格", "C2", "2023-07-01T00:00:00+08:00", None, box(120.12, 30.30, 0.01, 0.01))


def test_two_versions_of_a_grid(areas, tmp_path):
    rep = areas.load("grids", _versions(tmp_path, "g9.geojson", [V1, V2]))
    assert rep.inserted == 2
    now = by_code(areas.layer("grids"))
    assert now.loc["G9", "name"] == "新网格"
    past = by_code(areas.layer("grids", at=dt.datetime(2021, 6, 1, tzinfo=TZ)))
    assert past.loc["G9", "name"] == "旧网格" and same_geometry(past.geometry["G9"], V1[5])
    # the hierarchy as it was: in 2021 G9 belonged to C1, now to C2
    assert "G9" in codes(areas.layer("grids", area="C1", at=dt.datetime(2021, 6, 1, tzinfo=TZ)))
    assert "G9" not in codes(areas.layer("grids", area="C1"))
    assert "G9" in codes(areas.layer("grids", area="C2"))
    # and a feature filtered by the old boundary
    h9 = gpd.GeoDataFrame({"code": ["H9"], "kind": ["hydrant"]}, geometry=[shapely.Point(120.105, 30.305)],
                          crs="EPSG:4326")
    areas.load("fire_equipment", write(h9, tmp_path / "h9.geojson"))
    assert codes(areas.layer("fire_equipment", area="G9", at=dt.datetime(2021, 6, 1, tzinfo=TZ))) == ["H9"]
    assert areas.layer("fire_equipment", area="G9").empty
    again = areas.load("grids", _versions(tmp_path, "g9b.geojson", [V1, V2]))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)


@pytest.mark.parametrize("preloaded", [False, True], ids=["same_file", "against_loaded"])
def test_overlapping_versions_are_refused(areas, tmp_path, preloaded):
    overlapping = ("G9", "新网格", "C2", "2022-01-01T00:00:00+08:00", None, V2[5])
    if preloaded:
        areas.load("grids", _versions(tmp_path, "v1.geojson", [V1]))
        rows = [overlapping]
    else:
        rows = [V1, overlapping]
    before = snapshot(areas.engine)
    with pytest.raises(LoadRejected) as exc:
        areas.load("grids", _versions(tmp_path, "overlap.geojson", rows))
    msg = str(exc.value)
    assert "ex_areas_code_validity" in msg and "G9" in msg and "2022-01-01" in msg
    assert snapshot(areas.engine) == before


def test_events_are_placed_in_the_grid_version_of_their_time(areas, tmp_path):
    areas.load("grids", _versions(tmp_path, "g9.geojson", [V1, V2]))
    ev = gpd.GeoDataFrame(
        {"code": ["E1", "E2"], "channel": ["hotline_12345", "patrol"], "category": ["fire_hazard", "parking"],
         "reported_at": ["2021-03-04T10:00:00+08:00", "2024-05-06T11:00:00+08:00"]},
        geometry=shapely.points([120.105, 120.125], [30.305, 30.305]), crs="EPSG:4326")
    assert areas.load("events", write(ev, tmp_path / "ev.geojson")).inserted == 2
    with areas.engine.connect() as conn:
        rows = dict(conn.execute(text(
            "SELECT e.code, a.name FROM events e JOIN areas a ON a.id = e.grid_area_id ORDER BY e.code")).all())
    assert rows == {"E1": "旧网格", "E2": "新网格"}
