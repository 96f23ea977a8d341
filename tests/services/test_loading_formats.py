"""Loading every file format and exporting it again; CRS on the way in (reprojection, GCJ-02, swapped
axes); timestamps in any ISO form; Shapefile field names cut to ten characters."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from sqlalchemy import text

from gridmap.core import crs
from gridmap.errors import InvalidInput, LoadRejected
from gridmap.storage.layers import LAYERS
from tests.services._loading import (
    AMAP_GCJ,
    AMAP_WGS,
    GEOD,
    _norm,
    assert_same_attributes,
    assert_same_geometries,
    buildings,
    by_code,
    equipment,
    read,
    scalar,
    snapshot,
    write,
)

# -- round trips ----------------------------------------------------------------------------------
LAYER_FRAMES = {"fire_equipment": equipment, "buildings": buildings}


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "parquet"])
@pytest.mark.parametrize("layer", ["fire_equipment", "buildings"])
def test_load_export_round_trip(db, tmp_path, layer, fmt):
    src = LAYER_FRAMES[layer]()
    path = write(src, tmp_path / f"{layer}.{fmt}")
    rep = db.load(layer, path)
    assert (rep.rows_in, rep.inserted, rep.updated, rep.unchanged, rep.skipped) == (len(src), len(src), 0, 0, 0)
    assert rep.source_crs == "EPSG:4326" and rep.problems == [] and rep.ignored_columns == []

    out = tmp_path / f"out.{fmt}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert db.export(layer, out) == len(src)
    # e.g. GDAL: "The filename extension should be 'gpkg' instead of 'part'" (for the temporary file)
    assert not [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not list(tmp_path.glob(".*part*")), "the export left its temporary file behind"
    back = read(out)
    assert back.crs.to_epsg() == 4326
    assert set(back.columns) - {back.geometry.name} == set(LAYERS[layer].public_columns) - {"geom"}
    want, got = by_code(src), by_code(back)
    assert got.index.tolist() == want.index.tolist()
    assert_same_geometries(got.geometry, want.geometry)
    assert_same_attributes(got, want, [c for c in src.columns if c not in ("code", "geometry")])
    if layer == "buildings":
        assert set(got.geom_type) == {"MultiPolygon"}  # stored (and exported) as multi-polygons


def test_exported_file_loads_back_unchanged(db, tmp_path):
    """An export is a valid input: loading it again finds every row unchanged."""
    db.load("buildings", write(buildings(), tmp_path / "b.gpkg"))
    db.export("buildings", tmp_path / "out.gpkg")
    rep = db.load("buildings", tmp_path / "out.gpkg")
    assert (rep.inserted, rep.updated, rep.unchanged) == (0, 0, 5)
    assert "id" in rep.ignored_columns  # the surrogate key is not loadable


def test_shapefile_input(db, tmp_path):
    src = buildings().rename(columns={"height_m": "height", "year_built": "year"})  # 10-char dbf names
    path = write(src, tmp_path / "buildings.shp", encoding="utf-8")
    rep = db.load("buildings", path)
    assert rep.inserted == 5 and rep.ignored_columns == ["year"]
    got = by_code(db.layer("buildings"))
    want = by_code(src)
    assert_same_geometries(got.geometry, want.geometry)  # rings may be re-oriented, vertices are the same
    assert_same_attributes(got, want.rename(columns={"height": "height_m"}),
                           ["name", "address", "floors", "height_m", "use", "units"])
    db.export("buildings", tmp_path / "out.geojson")
    assert_same_geometries(by_code(read(tmp_path / "out.geojson")).geometry, want.geometry)


def test_csv_with_lon_lat(db, tmp_path):
    csv = tmp_path / "hydrants.csv"
    csv.write_text(
        "code,kind,name,lng,lat,last_inspected\n"
        "007,hydrant,文一西路消火栓,120.1012345,30.2809876,2025-03-01\n"
        "008,smart_alarm,,120.1100001,30.2900002,\n"
        "010,micro_fire_station,古墩路微型消防站,120.0801,30.2702,2024-12-31\n",
        encoding="utf-8",
    )
    rep = db.load("fire_equipment", csv)
    assert rep.inserted == 3 and rep.source_crs == "EPSG:4326"
    db.export("fire_equipment", tmp_path / "out.gpkg")
    got = by_code(read(tmp_path / "out.gpkg"))
    assert got.index.tolist() == ["007", "008", "010"]  # codes keep their leading zeros
    np.testing.assert_allclose(got.geometry.x, [120.1012345, 120.1100001, 120.0801], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.geometry.y, [30.2809876, 30.2900002, 30.2702], rtol=0, atol=1e-9)
    assert [_norm(v) for v in got["name"]] == ["文一西路消火栓", None, "古墩路微型消防站"]
    assert [_norm(v) for v in got["last_inspected"]] == ["2025-03-01", None, "2024-12-31"]
    assert got["status"].tolist() == ["in_service"] * 3  # the column's default


def test_csv_with_unusable_coordinates_is_refused(db, tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("code,kind,lon,lat\nH1,hydrant,120.1,30.28\nH2,hydrant,东经120度,30.29\n", encoding="utf-8")
    before = snapshot(db.engine)
    with pytest.raises(LoadRejected) as exc:
        db.load("fire_equipment", csv)
    msg = str(exc.value)
    assert "feature #1" in msg and "'东经120度'" in msg and "decimal degrees" in msg
    assert snapshot(db.engine) == before


# -- reprojection, GCJ-02, swapped axes -------------------------------------------------------------
@pytest.mark.parametrize("epsg", [4549, 32651])
@pytest.mark.parametrize("layer", ["fire_equipment", "buildings"])
def test_projected_file_is_reprojected(db, tmp_path, layer, epsg):
    src = LAYER_FRAMES[layer]()
    path = write(src.to_crs(epsg), tmp_path / f"projected_{epsg}.gpkg")
    rep = db.load(layer, path)
    assert rep.source_crs == f"EPSG:{epsg}" and rep.inserted == len(src)
    got, want = by_code(db.layer(layer)), by_code(src)
    assert_same_geometries(got.geometry, want.geometry, tol=1e-7)


def test_projected_file_without_crs_loads_with_crs_option(db, tmp_path):
    src = buildings()
    path = write(src.to_crs(4549), tmp_path / "b.shp")
    path.with_suffix(".prj").unlink()
    rep = db.load("buildings", path, crs="EPSG:4549")
    assert rep.source_crs == "EPSG:4549"
    assert_same_geometries(by_code(db.layer("buildings")).geometry, by_code(src).geometry, tol=1e-7)


def test_gcj02_points_are_converted(db, tmp_path):
    src = equipment(40)
    wgs = shapely.get_coordinates(src.geometry.to_numpy())
    glon, glat = crs.wgs84_to_gcj02(wgs[:, 0], wgs[:, 1])
    gcj = src.set_geometry(shapely.points(glon, glat))
    rep = db.load("fire_equipment", write(gcj, tmp_path / "amap.geojson"), gcj02=True)
    assert rep.inserted == 40
    got = by_code(db.layer("fire_equipment")).loc[src["code"]]
    ex, ey = crs.gcj02_to_wgs84(glon, glat)
    np.testing.assert_allclose(got.geometry.x, ex, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.geometry.y, ey, rtol=0, atol=1e-9)
    _, _, d = GEOD.inv(got.geometry.x.to_numpy(), got.geometry.y.to_numpy(), wgs[:, 0], wgs[:, 1])
    assert d.max() < 0.01  # back where the points really are


def test_gcj02_amap_districts_land_on_the_wgs84_reference(db, tmp_path):
    """The real Amap (GCJ-02) district polygons, loaded with gcj02=True, match the committed WGS84
    conversion vertex by vertex within 1 m."""
    gcj = gpd.read_file(AMAP_GCJ).rename(columns={"adcode": "code"})
    gcj["code"] = gcj["code"].astype(str)
    rep = db.load("districts", write(gcj, tmp_path / "districts_gcj.geojson"), gcj02=True)
    assert rep.inserted == 13 and rep.repaired == 0 and rep.outside_area == 0
    got = by_code(db.layer("districts"))
    ref = gpd.read_file(AMAP_WGS)
    ref = ref.set_index(ref["adcode"].astype(str)).sort_index()
    assert got.index.tolist() == ref.index.tolist()
    assert (got["level"] == "district").all()
    for code in ref.index:
        a = shapely.get_coordinates(got.geometry[code])
        b = shapely.get_coordinates(ref.geometry[code])
        assert a.shape == b.shape, code
        _, _, d = GEOD.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
        assert d.max() < 1.0, f"district {code}: a vertex is {d.max():.2f} m from the reference"


def test_gcj02_with_a_projected_file_is_refused(db, tmp_path):
    path = write(equipment().to_crs(4549), tmp_path / "p.gpkg")
    before = snapshot(db.engine)
    with pytest.raises(InvalidInput) as exc:
        db.load("fire_equipment", path, gcj02=True)
    assert exc.value.field == "gcj02" and "EPSG:4549" in str(exc.value) and "drop --gcj02" in str(exc.value)
    assert snapshot(db.engine) == before


def test_swapped_file_loads_with_swap(db, tmp_path):
    src = buildings()
    swapped = src.set_geometry(crs.swap_xy(src.geometry.to_numpy()))
    path = write(swapped, tmp_path / "latlon.geojson")
    rep = db.load("buildings", path, swap=True)
    assert rep.inserted == 5
    assert_same_geometries(by_code(db.layer("buildings")).geometry, by_code(src).geometry)


def test_swap_on_a_lon_lat_file_is_refused(db, tmp_path):
    path = write(buildings(), tmp_path / "b.geojson")
    with pytest.raises(LoadRejected) as exc:
        db.load("buildings", path, swap=True)
    assert "lat/lon swapped" in str(exc.value) and "drop --swap-xy" in str(exc.value)
    assert scalar(db.engine, "SELECT count(*) FROM buildings") == 0


def test_timestamps_in_any_iso_form(db, tmp_path):
    """One file may mix ISO 8601 forms: date only, local time, an offset, UTC "Z"."""
    forms = ["2024-05-06", "2024-05-06 11:00", "2024-05-06T11:00:00+08:00", "2024-05-06T03:00:00Z",
             "2024-05-06T11:00:00.250+08:00"]
    ev = gpd.GeoDataFrame({"code": [f"E{i}" for i in range(5)], "channel": "patrol", "category": "parking",
                           "reported_at": forms}, geometry=[shapely.Point(120.1, 30.28)] * 5, crs="EPSG:4326")
    for fmt in ("geojson", "gpkg"):
        db.load("events", write(ev, tmp_path / f"ev.{fmt}"))
    with db.engine.connect() as conn:
        got = dict(conn.execute(text(
            "SELECT code, to_char(reported_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI:SS.MS') "
            "FROM events")).all())
    assert got == {"E0": "2024-05-06 00:00:00.000", "E1": "2024-05-06 11:00:00.000", "E2": "2024-05-06 11:00:00.000",
                   "E3": "2024-05-06 11:00:00.000", "E4": "2024-05-06 11:00:00.250"}
    csv = tmp_path / "ev.csv"
    csv.write_text("code,channel,category,reported_at,lon,lat\n"
                   "E10,patrol,parking,2024-05-07,120.1,30.28\n"
                   "E11,patrol,parking,2024-05-07T09:30:00+08:00,120.1,30.28\n"
                   "E12,patrol,parking,2024-05-07T01:30:00Z,120.1,30.28\n", encoding="utf-8")
    assert db.load("events", csv).inserted == 3
    assert scalar(db.engine, "SELECT count(DISTINCT reported_at) FROM events WHERE code IN ('E11', 'E12')") == 1


def test_shapefile_truncated_field_names_are_mapped_back(db, tmp_path):
    b = buildings(3)[["code", "floors", "use", "geometry"]].assign(community_code=["C1", "C1", "C2"])
    path = write(b, tmp_path / "b.shp")
    assert "community_" in read(path).columns  # the Shapefile really cut the name
    report = db.load("buildings", path)
    assert "community_" not in report.ignored_columns
    got = db.layer("buildings").set_index("code")
    assert got.loc["B3", "community_code"] == "C2"

