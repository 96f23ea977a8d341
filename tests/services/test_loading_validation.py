"""Refused loads name the bad field or feature and the fix, and write nothing; skip-invalid, repair and
the configured area.

Every refused load is checked twice: it names the bad field/feature and the fix, and it writes
nothing (the content of every registry table and of ``load_batches`` is compared before and after,
both on an empty registry and on one that already holds rows with the same keys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from gridmap.core import crs
from gridmap.errors import InvalidInput, LoadRejected
from tests.services._loading import box, buildings, by_code, equipment, scalar, snapshot, write


# -- refused loads: each names the problem and the fix, and writes nothing --------------------------
@dataclass
class Bad:
    make: Callable[[Path], Path]
    says: list[str]
    layer: str = "buildings"
    opts: dict = field(default_factory=dict)
    error: type = LoadRejected
    never: list[str] = field(default_factory=list)


def _with(gdf, changes: dict):
    out = gdf.copy()
    for (row, col), value in changes.items():
        out.loc[row, col] = value
    return out


def _bowtie(tmp: Path) -> Path:
    b = buildings()
    x, y = 120.101, 30.28
    b.loc[1, "geometry"] = shapely.Polygon([(x, y), (x + 0.0004, y + 0.0003), (x + 0.0004, y), (x, y + 0.0003)])
    return write(b, tmp / "bowtie.geojson")


def _type_mismatch(tmp: Path) -> Path:
    b = buildings()
    b.loc[2, "geometry"] = shapely.Point(120.102, 30.28)
    return write(b, tmp / "mixed.geojson")


def _points_for_polygons(tmp: Path) -> Path:
    return write(equipment().assign(floors=3, use="residential"), tmp / "points.geojson")


def _projected_labelled_4326(tmp: Path) -> Path:
    return write(buildings().to_crs(4549).set_crs(4326, allow_override=True), tmp / "labelled_4326.geojson")


def _no_crs(tmp: Path) -> Path:
    path = write(buildings().to_crs(4549), tmp / "no_crs.shp")
    path.with_suffix(".prj").unlink()
    return path


def _no_crs_gpkg(tmp: Path) -> Path:
    b = buildings().to_crs(4549)
    return write(gpd.GeoDataFrame(b.drop(columns="geometry"), geometry=list(b.geometry)), tmp / "no_crs.gpkg")


def _swapped(tmp: Path) -> Path:
    b = buildings()
    return write(b.set_geometry(crs.swap_xy(b.geometry.to_numpy())), tmp / "latlon.geojson")


def _zero_bytes(suffix: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / f"empty{suffix}"
        path.write_bytes(b"")
        return path

    return make


def _zero_features(suffix: str) -> Callable[[Path], Path]:
    return lambda tmp: write(buildings().iloc[:0], tmp / f"none{suffix}")


def _truncated(suffix: str, keep: float) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        full = write(buildings(40), tmp / f"full{suffix}").read_bytes()
        path = tmp / f"truncated{suffix}"
        path.write_bytes(full[: int(len(full) * keep)])
        return path

    return make


def _bad_floors(tmp: Path) -> Path:
    b = buildings()
    b["floors"] = b["floors"].astype(object)
    b.loc[1, "floors"] = "abc"
    return write(b, tmp / "floors.geojson")


def _missing_use(tmp: Path) -> Path:
    return write(buildings().drop(columns=["use"]), tmp / "no_use.geojson")


def _duplicate_codes(tmp: Path) -> Path:
    return write(_with(buildings(), {(3, "code"): "B1"}), tmp / "dupes.geojson")


def _all_outside(tmp: Path) -> Path:
    b = buildings()
    return write(b.set_geometry(b.geometry.translate(3.0, 1.0)), tmp / "shanghai_ish.geojson")


def _one_outside(tmp: Path) -> Path:
    b = buildings()
    b.loc[4, "geometry"] = box(121.5, 31.2)
    return write(b, tmp / "one_outside.geojson")


def _duplicate_grid_codes(tmp: Path) -> Path:
    grids = gpd.GeoDataFrame({"code": ["G1", "G2", "G1"], "name": ["a", "b", "c"]},
                             geometry=[box(120.1, 30.28, 0.01, 0.01), box(120.11, 30.28, 0.01, 0.01),
                                       box(120.12, 30.28, 0.01, 0.01)], crs="EPSG:4326")
    return write(grids, tmp / "grids.geojson")


def _bad_use(tmp: Path) -> Path:
    return write(_with(buildings(), {(2, "use"): "castle"}), tmp / "castle.geojson")


def _empty_status(tmp: Path) -> Path:
    return write(_with(equipment(), {(4, "status"): None}), tmp / "status.geojson")


def _bad_date(tmp: Path) -> Path:
    return write(_with(equipment(), {(2, "last_inspected"): "last spring"}), tmp / "date.geojson")


BAD = {
    "invalid_geometry_no_repair": Bad(_bowtie, ["feature #1 (B2)", "invalid geometry: Self-intersection",
                                                "--skip-invalid"], opts={"repair": False}),
    "geometry_type_mismatch": Bad(_type_mismatch, ["feature #2 (B3)", "geometry is Point, this layer takes polygons",
                                                   "--skip-invalid"]),
    "points_into_polygon_layer": Bad(_points_for_polygons, ["6 of 6 features", "geometry is Point, this layer takes "
                                                            "polygons"]),
    "projected_metres_labelled_4326": Bad(_projected_labelled_4326, ["EPSG:4326", "projected metres", "--crs"],
                                          never=["swapped"]),
    "shapefile_without_crs": Bad(_no_crs, ["no_crs.shp has no CRS", "--crs"]),
    "geopackage_without_crs": Bad(_no_crs_gpkg, ["no_crs.gpkg has no CRS", "--crs"]),
    "lat_lon_swapped": Bad(_swapped, ["5 of 5 features", "lat/lon swapped", "--swap-xy"], never=["projected"]),
    "zero_bytes_geojson": Bad(_zero_bytes(".geojson"), ["empty.geojson", "empty (0 bytes)", "export"]),
    "zero_bytes_gpkg": Bad(_zero_bytes(".gpkg"), ["empty.gpkg", "empty (0 bytes)", "export"]),
    "zero_bytes_csv": Bad(_zero_bytes(".csv"), ["empty.csv", "empty (0 bytes)"], layer="fire_equipment"),
    "zero_features_geojson": Bad(_zero_features(".geojson"), ["none.geojson has no features", "exported the right"]),
    "zero_features_gpkg": Bad(_zero_features(".gpkg"), ["none.gpkg has no features", "exported the right"]),
    "truncated_geojson": Bad(_truncated(".geojson", 0.6), ["truncated.geojson", "cannot read the file",
                                                           "damaged or truncated"]),
    "truncated_gpkg": Bad(_truncated(".gpkg", 0.6), ["truncated.gpkg", "cannot read the file",
                                                     "damaged or truncated"]),
    "truncated_gpkg_last_page": Bad(_truncated(".gpkg", 0.98), ["truncated.gpkg", "cannot read the file"]),
    "truncated_parquet": Bad(_truncated(".parquet", 0.9), ["truncated.parquet", "cannot read the file"]),
    "bad_attribute_value": Bad(_bad_floors, ["feature #1 (B2)", "column floors: 'abc' is not a number",
                                             "--skip-invalid"], never=["required but empty"]),
    "bad_date": Bad(_bad_date, ["feature #2 (FE002)", "last_inspected", "'last spring'", "ISO 8601"],
                    layer="fire_equipment"),
    "missing_required_column": Bad(_missing_use, ["lacks the required column(s) use", "add them"]),
    "empty_not_null_column": Bad(_empty_status, ["feature #4 (FE004)", "column status is empty",
                                                 "leave the column out"], layer="fire_equipment"),
    "duplicate_keys": Bad(_duplicate_codes, ["feature #3 (B1)", "duplicate key code='B1'", "also feature #0"]),
    # the key is (code, valid_from) and the file has no valid_from: every row gets the same default
    "duplicate_keys_partial": Bad(_duplicate_grid_codes, ["feature #2 (G1)", "duplicate key code='G1'"],
                                  layer="grids"),
    "all_outside_the_area": Bad(_all_outside, ["no feature lies in the configured area", "--crs",
                                               "GRIDMAP_AREA_BBOX"]),
    "outside_with_fail": Bad(_one_outside, ["1 features lie outside", "feature #4 (B5)", "--outside report"],
                             opts={"outside": "fail"}),
    "value_the_database_refuses": Bad(_bad_use, ["column use", "castle", "B3", "not one of residential"]),
    "unknown_format": Bad(lambda tmp: write(buildings(), tmp / "b.geojson").rename(tmp / "b.kml"),
                          ["cannot tell the format of b.kml", "use one of"], error=InvalidInput),
    "no_such_file": Bad(lambda tmp: tmp / "nope.gpkg", ["no such file", "check the path"], error=InvalidInput),
}


def _preload(db, tmp: Path) -> None:
    """Rows with the same keys as the bad files, so a load that got through would update them."""
    pre = tmp / "preload"
    pre.mkdir()
    db.load("buildings", write(buildings(), pre / "b.geojson"))
    db.load("fire_equipment", write(equipment(), pre / "fe.geojson"))
    db.load("grids", write(gpd.GeoDataFrame({"code": ["G1"], "name": ["一网格"]},
                                            geometry=[box(120.09, 30.27, 0.03, 0.02)], crs="EPSG:4326"),
                           pre / "g.geojson"))


@pytest.mark.parametrize("preloaded", [False, True], ids=["empty", "preloaded"])
@pytest.mark.parametrize("case", list(BAD))
def test_refused_load_names_the_problem_and_writes_nothing(db, tmp_path, case, preloaded):
    bad = BAD[case]
    if preloaded:
        _preload(db, tmp_path)
    path = bad.make(tmp_path)
    before = snapshot(db.engine)
    with pytest.raises(bad.error) as exc:
        db.load(bad.layer, path, **bad.opts)
    msg = str(exc.value)
    for s in bad.says:
        assert s in msg, f"{s!r} not in the message:\n{msg}"
    for s in bad.never:
        assert s not in msg, f"{s!r} should not be in the message:\n{msg}"
    assert "Traceback" not in msg and len(msg.splitlines()[0]) < 400
    assert snapshot(db.engine) == before
    assert snapshot(db.engine)["buildings"][0] == (5 if preloaded else 0)


def test_load_rejected_lists_every_bad_feature(db, tmp_path):
    b = buildings()
    b["floors"] = b["floors"].astype(object)
    b.loc[[0, 2, 4], "floors"] = ["x", "7.5", "-"]
    with pytest.raises(LoadRejected) as exc:
        db.load("buildings", write(b, tmp_path / "f.geojson"))
    err = exc.value
    assert err.layer == "buildings" and "3 of 5 features" in err.reason
    assert [(p.index, p.key) for p in err.problems] == [(0, "B1"), (2, "B3"), (4, "B5")]
    assert "'7.5' is not a whole number" in str(err)


# -- skip-invalid and the configured area -----------------------------------------------------------
def test_skip_invalid_loads_the_good_features_and_reports_the_rest(db, tmp_path):
    b = buildings(6)
    b["floors"] = b["floors"].astype(object)
    x, y = 120.101, 30.28
    b.loc[1, "geometry"] = shapely.Polygon([(x, y), (x + 0.0004, y + 0.0003), (x + 0.0004, y), (x, y + 0.0003)])
    b.loc[2, "floors"] = "abc"
    b.loc[3, "code"] = "B1"
    b.loc[4, "geometry"] = shapely.Point(120.1, 30.28)
    rep = db.load("buildings", write(b, tmp_path / "mixed.geojson"), repair=False, skip_invalid=True)
    assert (rep.rows_in, rep.inserted, rep.skipped) == (6, 2, 4)
    assert sorted(db.layer("buildings")["code"]) == ["B1", "B6"]
    rejected = {(p.index, p.action) for p in rep.problems}
    assert rejected == {(1, "rejected"), (2, "rejected"), (3, "rejected"), (4, "rejected")}
    assert scalar(db.engine, "SELECT inserted FROM load_batches") == 2


def test_invalid_polygon_is_repaired_by_default(db, tmp_path):
    rep = db.load("buildings", _bowtie(tmp_path))
    assert rep.repaired == 1 and rep.inserted == 5
    assert [(p.index, p.key, p.action) for p in rep.problems] == [(1, "B2", "repaired")]
    g = by_code(db.layer("buildings")).geometry["B2"]
    assert g.is_valid and len(g.geoms) == 2
    assert scalar(db.engine, "SELECT count(*) FROM buildings WHERE NOT ST_IsValid(geom)") == 0
    assert scalar(db.engine, "SELECT repaired FROM load_batches") == 1


@pytest.mark.parametrize(("outside", "loaded", "skipped"), [("report", 5, 0), ("skip", 4, 1)])
def test_features_outside_the_area(db, tmp_path, outside, loaded, skipped):
    rep = db.load("buildings", _one_outside(tmp_path), outside=outside)
    assert (rep.inserted, rep.skipped, rep.outside_area) == (loaded, skipped, 1)
    [p] = rep.problems
    assert (p.index, p.key, p.action) == (4, "B5", "outside_area") and "outside the configured area" in p.reason
    assert len(db.layer("buildings")) == loaded
    assert scalar(db.engine, "SELECT outside_area FROM load_batches") == 1


def test_configured_area_comes_from_settings(db, tmp_path):
    """With another area configured, Hangzhou data is "all outside" and that area's data loads."""
    from gridmap.config import Settings
    from gridmap.services.registry import Registry

    elsewhere = Settings(**{**db.settings.model_dump(), "area_bbox": (122.5, 30.8, 123.6, 31.8)})
    reg = Registry(db.engine, elsewhere)
    with pytest.raises(LoadRejected, match="no feature lies in the configured area"):
        reg.load("buildings", write(buildings(), tmp_path / "hz.geojson"))
    rep = reg.load("buildings", _all_outside(tmp_path))
    assert rep.inserted == 5 and rep.outside_area == 0


def test_loading_grids_forces_the_level(db, tmp_path):
    grids = gpd.GeoDataFrame({"code": ["G1", "G2"], "name": ["一网格", "二网格"], "level": ["grid", "community"]},
                             geometry=[box(120.09, 30.27, 0.01, 0.01), box(120.10, 30.27, 0.01, 0.01)],
                             crs="EPSG:4326")
    with pytest.raises(LoadRejected) as exc:
        db.load("grids", write(grids, tmp_path / "g.geojson"))
    assert "feature #1 (G2)" in str(exc.value) and "'community' is not one of grid" in str(exc.value)
    assert len(db.layer("areas")) == 0
    grids["level"] = "grid"
    db.load("grids", write(grids, tmp_path / "g2.geojson"))
    assert set(db.layer("grids").code) == {"G1", "G2"}
