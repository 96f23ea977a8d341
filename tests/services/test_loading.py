"""Loading files into PostGIS and exporting them again, against the real database (the ``db`` fixture).

Every refused load is checked twice: it names the bad field/feature and the fix, and it writes
nothing (the content of every registry table and of ``load_batches`` is compared before and after,
both on an empty registry and on one that already holds rows with the same keys).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from sqlalchemy import text

from gridmap.core import crs
from gridmap.errors import InvalidInput, LoadRejected, NotFound
from gridmap.services import loading
from gridmap.storage.layers import LAYERS

ROOT = Path(__file__).resolve().parent.parent
ROADS = ROOT / "data" / "roads" / "hz_xihu_gongshu_osm_drive.gpkg"
AMAP_GCJ = ROOT / "data" / "boundaries" / "hangzhou_districts_2020_amap_gcj02.geojson"
AMAP_WGS = ROOT / "data" / "boundaries" / "hangzhou_districts_2020_amap_wgs84.geojson"
GEOD = Geod(ellps="WGS84")

TABLES = ("areas", "buildings", "households", "residents", "resident_pii", "businesses", "fire_equipment", "teams",
          "road_nodes", "road_edges", "events", "load_batches", "pii_access_log")
TZ = dt.timezone(dt.timedelta(hours=8))


# -- helpers ------------------------------------------------------------------------------------------
def snapshot(engine) -> dict[str, tuple[int, str | None]]:
    """Row count and a digest of the full content of every table a load could touch."""
    out = {}
    with engine.connect() as conn:
        for t in TABLES:
            n, digest = conn.execute(
                text(f"SELECT count(*), md5(string_agg(x::text, '|' ORDER BY x::text)) FROM {t} x")
            ).one()
            out[t] = (n, digest)
    return out


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def write(gdf: gpd.GeoDataFrame, path: Path, **kw) -> Path:
    if path.suffix in (".parquet", ".geoparquet"):
        gdf.to_parquet(path)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GDAL's notes on field-name truncation, files without a CRS
            gdf.to_file(path, **kw)
    return path


def read(path: Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)


def box(x: float, y: float, w: float = 0.0004, h: float = 0.0003) -> shapely.Polygon:
    return shapely.box(x, y, x + w, y + h)


def equipment(n: int = 6) -> gpd.GeoDataFrame:
    kinds = ["hydrant", "micro_fire_station", "extinguisher_cabinet", "smart_alarm", "micro_fire_truck"]
    rng = np.random.default_rng(11)
    lon = rng.uniform(120.06, 120.13, n)
    lat = rng.uniform(30.26, 30.31, n)
    return gpd.GeoDataFrame(
        {
            "code": [f"FE{i:03d}" for i in range(n)],
            "kind": [kinds[i % len(kinds)] for i in range(n)],
            "name": [f"消防设施{i}号" if i % 3 else None for i in range(n)],
            "status": ["in_service", "faulty", "out_of_service"] * (n // 3) + ["in_service"] * (n % 3),
            "last_inspected": [f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}" if i % 2 else None for i in range(n)],
            "station_code": ["ST01" if i % 2 else None for i in range(n)],
        },
        geometry=shapely.points(lon, lat), crs="EPSG:4326",
    )


def buildings(n: int = 5, x0: float = 120.10, y0: float = 30.28) -> gpd.GeoDataFrame:
    geoms = [box(x0 + 0.001 * i, y0) for i in range(n)]
    # one with a courtyard and one in two parts, to exercise rings and multi-polygons
    geoms[0] = shapely.Polygon(geoms[0].exterior.coords,
                               [[(x0 + 0.0001, y0 + 0.0001), (x0 + 0.0002, y0 + 0.0001), (x0 + 0.0002, y0 + 0.0002),
                                 (x0 + 0.0001, y0 + 0.0002)]])
    if n > 1:
        geoms[1] = shapely.MultiPolygon([geoms[1], box(x0 + 0.001, y0 + 0.0005, 0.0002, 0.0002)])
    uses = ["residential", "commercial", "mixed", "public", "industrial"]
    return gpd.GeoDataFrame(
        {
            "code": [f"B{i + 1}" for i in range(n)],
            "name": [f"{i + 1}号楼" for i in range(n)],
            "address": [f"文一西路{i + 100}号" if i % 2 == 0 else None for i in range(n)],
            "floors": [3 + 2 * i for i in range(n)],
            "height_m": [9.5 + 6.25 * i if i != 2 else None for i in range(n)],
            "use": [uses[i % len(uses)] for i in range(n)],
            "units": [1 + i % 3 for i in range(n)],
            "year_built": [1990 + 3 * i for i in range(n)],
        },
        geometry=geoms, crs="EPSG:4326",
    )


def _norm(v):
    """A value in a comparable form: None for missing, dates as ISO dates, numbers as float."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, dt.datetime | pd.Timestamp | dt.date):
        return v.isoformat()[:10]
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | float | np.integer | np.floating):
        return float(v)
    return str(v)


def _as_multi(g):
    return shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g


def same_geometry(a, b, tol: float = 1e-9) -> bool:
    """Same vertices within ``tol`` degrees (a Polygon and its one-part MultiPolygon are the same)."""
    return bool(shapely.equals_exact(shapely.normalize(_as_multi(a)), shapely.normalize(_as_multi(b)), tolerance=tol))


def assert_same_geometries(got: gpd.GeoSeries, want: gpd.GeoSeries, tol: float = 1e-9) -> None:
    assert len(got) == len(want)
    for code, a, b in zip(want.index, got.to_numpy(), want.to_numpy(), strict=True):
        assert same_geometry(a, b, tol), f"{code}: {a.wkt[:120]} != {b.wkt[:120]}"


def assert_same_attributes(got: pd.DataFrame, want: pd.DataFrame, columns) -> None:
    for col in columns:
        g = [_norm(v) for v in got[col].tolist()]
        w = [_norm(v) for v in want[col].tolist()]
        assert g == w, f"column {col}: {g} != {w}"


def by_code(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gdf.set_index("code").sort_index()


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


# -- idempotent reloads and updates ----------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "parquet"])
def test_loading_the_same_file_twice_changes_nothing(db, tmp_path, fmt):
    path = write(buildings(), tmp_path / f"b.{fmt}")
    first = db.load("buildings", path)
    state = snapshot(db.engine)
    second = db.load("buildings", path)
    assert (first.inserted, first.updated, first.unchanged) == (5, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 5)
    after = snapshot(db.engine)
    assert after["buildings"] == state["buildings"]  # not even rewritten
    assert after["load_batches"][0] == 2
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT inserted, updated, unchanged, rows_in, sha256 FROM load_batches ORDER BY id")).all()
    assert [r[:4] for r in rows] == [(5, 0, 0, 5), (0, 0, 5, 5)]
    assert rows[0][4] == rows[1][4] and len(rows[0][4]) == 64


def test_changed_file_updates_only_changed_rows(db, tmp_path):
    src = buildings()
    db.load("buildings", write(src, tmp_path / "v1.geojson"))
    ids = dict(db.layer("buildings")[["code", "id"]].itertuples(index=False))
    changed = src.copy()
    changed.loc[changed.code == "B2", "floors"] = 18
    changed.loc[changed.code == "B4", "geometry"] = box(120.2, 30.2)
    extra = buildings(6).iloc[[5]]
    changed = pd.concat([changed, extra], ignore_index=True)
    rep = db.load("buildings", write(changed, tmp_path / "v2.geojson"))
    assert (rep.inserted, rep.updated, rep.unchanged) == (1, 2, 3)
    got = by_code(db.layer("buildings"))
    assert got.loc["B2", "floors"] == 18
    assert same_geometry(got.geometry["B4"], box(120.2, 30.2))
    assert got.loc["B6", "floors"] == extra["floors"].iloc[0]
    assert all(got.loc[c, "id"] == i for c, i in ids.items())  # upserted in place, ids kept


def test_reloading_areas_is_idempotent(db, tmp_path):
    """Versioned areas: a reload trips the (code, validity) exclusion constraint before the unique key."""
    grids = gpd.GeoDataFrame({"code": ["G1", "G2"], "name": ["一网格", "二网格"]},
                             geometry=[box(120.10, 30.28, 0.01, 0.01), box(120.11, 30.28, 0.01, 0.01)],
                             crs="EPSG:4326")
    path = write(grids, tmp_path / "grids.geojson")
    assert db.load("grids", path).inserted == 2
    rep = db.load("grids", path)
    assert (rep.inserted, rep.updated, rep.unchanged) == (0, 0, 2)
    grids.loc[1, "name"] = "第二网格"
    rep = db.load("grids", write(grids, tmp_path / "grids2.geojson"))
    assert (rep.inserted, rep.updated, rep.unchanged) == (0, 1, 1)
    assert db.layer("grids")["name"].tolist() == ["一网格", "第二网格"]


# -- the real OSM road network --------------------------------------------------------------------
def test_real_osm_roads_load_nodes_then_edges(db):
    nodes = db.load("road_nodes", ROADS, file_layer="nodes")
    edges = db.load("road_edges", ROADS, file_layer="edges")
    assert (nodes.rows_in, nodes.inserted) == (1407, 1407)
    assert (edges.rows_in, edges.inserted) == (3166, 3166)
    assert nodes.outside_area == edges.outside_area == 0 and nodes.problems == edges.problems == []
    counts = db.counts()
    assert counts["road_nodes"] == 1407 and counts["road_edges"] == 3166
    # SOURCES.md: 592.5 km of directed edge length, 36 % one-way, extent 120.0600–120.1349 E, 30.2550–30.3149 N
    assert scalar(db.engine, "SELECT sum(length_m) FROM road_edges") / 1000 == pytest.approx(592.5, abs=0.1)
    assert float(scalar(db.engine, "SELECT avg(oneway::int) FROM road_edges")) == pytest.approx(0.36, abs=0.01)
    ext = db.layer("road_nodes").total_bounds
    np.testing.assert_allclose(ext, [120.0600, 30.2550, 120.1349, 30.3149], atol=1e-3)
    # every edge starts and ends at its nodes
    assert scalar(db.engine, """
        SELECT count(*) FROM road_edges e JOIN road_nodes s ON s.id = e.source JOIN road_nodes t ON t.id = e.target
        WHERE ST_DWithin(ST_StartPoint(e.geom), s.geom, 1e-7)
          AND ST_DWithin(ST_EndPoint(e.geom), t.geom, 1e-7)""") == 3166
    again = db.load("road_edges", ROADS, file_layer="edges")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3166)


def test_gpkg_with_several_layers_needs_file_layer(db):
    before = snapshot(db.engine)
    with pytest.raises(InvalidInput) as exc:
        db.load("buildings", ROADS)
    assert exc.value.field == "file_layer" and "nodes, edges" in str(exc.value) and "--file-layer" in str(exc.value)
    assert snapshot(db.engine) == before


def test_edges_before_nodes_is_refused_and_writes_nothing(db):
    before = snapshot(db.engine)
    with pytest.raises(LoadRejected) as exc:
        db.load("road_edges", ROADS, file_layer="edges")
    msg = str(exc.value)
    assert "refers to something that is not loaded" in msg and 'not present in table "road_nodes"' in msg
    assert "road_nodes before road_edges" in msg
    assert snapshot(db.engine) == before


def test_edges_referring_to_one_missing_node_write_nothing(db, tmp_path):
    """Most edges fit, one does not: the COPY that already went through is rolled back too."""
    nodes = gpd.read_file(ROADS, layer="nodes")
    edges = gpd.read_file(ROADS, layer="edges")
    missing = int(edges["v"].iloc[-1])
    db.load("road_nodes", write(nodes[nodes.osmid != missing], tmp_path / "nodes.gpkg"))
    db.load("road_edges", write(edges.iloc[:100], tmp_path / "edges_a.gpkg"))
    before = snapshot(db.engine)
    with pytest.raises(LoadRejected) as exc:
        db.load("road_edges", write(edges, tmp_path / "edges_all.gpkg"))
    assert str(missing) in str(exc.value)
    assert snapshot(db.engine) == before


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


# -- personal data ------------------------------------------------------------------------------
PII = {"name": "欧阳震华", "id_card": "330106198001011234", "phone": "13812345678"}


@pytest.fixture
def residents(db):
    """A building with one household of three residents; two of them have personal data, one a phone."""
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO buildings (code, name, floors, use, geom) VALUES "
            "('B1', '1号楼', 6, 'residential', ST_Multi(ST_MakeEnvelope(120.1, 30.28, 120.1004, 30.2803, 4326)))"))
        conn.execute(text("INSERT INTO households (code, building_id, unit, floor, room, size) "
                          "VALUES ('HH1', 1, 1, 2, '201', 3)"))
        conn.execute(text("INSERT INTO residents (household_id, building_id, sex, birth_year, flags) VALUES "
                          "(1, 1, 'M', 1980, '{elderly_alone}'), (1, 1, 'F', 1982, '{}'), (1, 1, 'F', 2012, '{}')"))
        conn.execute(text("INSERT INTO resident_pii (resident_id, name, id_card, phone) VALUES "
                          "(1, :name, :id_card, :phone), (2, '李四', NULL, NULL)"), PII)
    return db


def test_residents_have_no_personal_data_by_default(residents):
    df = residents.residents()
    assert len(df) == 3
    assert not {"name", "id_card", "phone"} & set(df.columns)
    assert df["building_code"].tolist() == ["B1"] * 3 and df["room"].tolist() == ["201"] * 3
    assert PII["name"] not in df.to_string() and PII["id_card"] not in df.to_string()
    assert scalar(residents.engine, "SELECT count(*) FROM pii_access_log") == 0


def test_personal_data_is_masked_and_logged(residents):
    df = residents.residents(personal=True, actor="王网格员", purpose="household visit")
    rows = df.set_index("id")[["name", "id_card", "phone"]]
    assert rows.loc[1].tolist() == ["欧***", "330106********1234", "138****5678"]
    assert rows.loc[2, "name"] == "李*" and rows.loc[2, ["id_card", "phone"]].isna().all()
    assert rows.loc[3].isna().all()  # a resident without personal data
    with residents.engine.connect() as conn:
        log = conn.execute(text("SELECT actor, purpose, table_name, row_count, detail FROM pii_access_log")).all()
    assert len(log) == 1
    actor, purpose, table, n, detail = log[0]
    assert (actor, purpose, table, n) == ("王网格员", "household visit", "resident_pii", 3)
    assert detail["unmasked"] is False


def test_unmasked_personal_data_is_logged_as_unmasked(residents):
    df = residents.residents(unmasked=True, actor="auditor", purpose="court order 2026-17")
    assert df.set_index("id").loc[1, ["name", "id_card", "phone"]].tolist() == list(PII.values())
    assert scalar(residents.engine, "SELECT (detail->>'unmasked')::bool FROM pii_access_log") is True


@pytest.mark.parametrize("who", [{}, {"actor": "someone"}, {"purpose": "curiosity"}, {"actor": "", "purpose": "x"}])
def test_personal_data_without_actor_and_purpose_is_refused(residents, who):
    for flags in ({"personal": True}, {"unmasked": True}):
        with pytest.raises(InvalidInput) as exc:
            residents.residents(**flags, **who)
        assert exc.value.field == "actor/purpose" and "actor=" in str(exc.value)
    assert scalar(residents.engine, "SELECT count(*) FROM pii_access_log") == 0


def test_pii_access_log_is_append_only(residents):
    residents.residents(personal=True, actor="a", purpose="p")
    with residents.engine.begin() as conn:
        conn.execute(text("UPDATE pii_access_log SET actor = 'nobody'"))
        conn.execute(text("DELETE FROM pii_access_log"))
    assert scalar(residents.engine, "SELECT actor FROM pii_access_log") == "a"


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "parquet"])
def test_no_export_contains_personal_data(residents, tmp_path, fmt):
    db = residents
    db.load("fire_equipment", write(equipment(), tmp_path / "fe.geojson"))
    grid = gpd.GeoDataFrame({"code": ["G1"], "name": ["一网格"]}, geometry=[box(120.09, 30.27, 0.03, 0.02)],
                            crs="EPSG:4326")
    db.load("grids", write(grid, tmp_path / "g.geojson"))
    sensitive = {c.name for t in LAYERS.values() for c in t.table.columns if c.info.get("sensitive")}
    sensitive |= {"id_card", "phone"}
    for name in db.layers():
        out = tmp_path / f"{name}.{fmt}"
        db.export(name, out)
        cols = set(read(out).columns)
        assert not cols & sensitive, f"{name} exports {cols & sensitive}"
        blob = out.read_bytes()
        for value in PII.values():
            assert value.encode() not in blob, f"{name}.{fmt} contains {value}"
    with pytest.raises(NotFound):
        db.export("resident_pii", tmp_path / f"pii.{fmt}")
    with pytest.raises(NotFound):
        db.export("residents", tmp_path / f"residents.{fmt}")


def test_sensitive_columns_are_never_loadable_or_readable():
    from gridmap.storage import models as m
    from gridmap.storage.layers import LayerSpec

    spec = LayerSpec("team_members", m.TeamMember, "point", ("code",))
    assert spec.sensitive_columns == ["phone"]
    assert "phone" not in [c.name for c in spec.writable] and "phone" not in spec.public_columns


def test_restricted_column_cannot_be_selected(db):
    with pytest.raises(InvalidInput) as exc:
        db.layer("buildings", columns=["code", "phone"])
    assert exc.value.field == "columns" and "phone" in str(exc.value)


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


def test_duplicate_edges_without_key_column_are_named(db, tmp_path):
    """road_edges is keyed on (source, target, key); a file without `key` takes the default 0 for all."""
    nodes = gpd.GeoDataFrame({"osmid": [1, 2, 3]}, geometry=shapely.points([120.10, 120.11, 120.12], [30.28] * 3),
                             crs="EPSG:4326")
    db.load("road_nodes", write(nodes, tmp_path / "n.geojson"))
    line = shapely.LineString([(120.10, 30.28), (120.11, 30.28)])
    edges = gpd.GeoDataFrame({"u": [1, 2, 1], "v": [2, 3, 2], "oneway": [True, True, False], "length": [960.0] * 3,
                              "speed_kph": [30.0] * 3, "travel_time": [115.2] * 3},
                             geometry=[line, shapely.LineString([(120.11, 30.28), (120.12, 30.28)]), line],
                             crs="EPSG:4326")
    before = snapshot(db.engine)
    with pytest.raises(LoadRejected) as exc:
        db.load("road_edges", write(edges, tmp_path / "e.geojson"))
    assert "feature #2" in str(exc.value) and "duplicate key source/target=(1, 2)" in str(exc.value)
    assert snapshot(db.engine) == before
    rep = db.load("road_edges", write(edges, tmp_path / "e.geojson"), skip_invalid=True)
    assert (rep.inserted, rep.skipped) == (2, 1)


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


def test_shapefile_truncated_field_names_are_mapped_back(db, tmp_path):
    b = buildings(3)[["code", "floors", "use", "geometry"]].assign(community_code=["C1", "C1", "C2"])
    path = write(b, tmp_path / "b.shp")
    assert "community_" in read(path).columns  # the Shapefile really cut the name
    report = db.load("buildings", path)
    assert "community_" not in report.ignored_columns
    got = db.layer("buildings").set_index("code")
    assert got.loc["B3", "community_code"] == "C2"


def _index_and_constraint_defs(engine, table: str) -> tuple[set, set]:
    with engine.connect() as conn:
        idx = set(conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"), {"t": table}))
        con = set(conn.execute(text("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                    "WHERE conrelid = CAST(:t AS regclass)"), {"t": table}))
    return idx, con


@pytest.mark.parametrize("layer", ["fire_equipment", "grids"])
def test_bulk_load_into_an_empty_table_rebuilds_every_index(db, tmp_path, monkeypatch, layer):
    from gridmap.storage import bulk

    monkeypatch.setattr(bulk, "BULK_REBUILD_ROWS", 3)  # take the drop/COPY/rebuild path with a small file
    table = "areas" if layer == "grids" else layer
    before = _index_and_constraint_defs(db.engine, table)
    if layer == "grids":
        frame = gpd.GeoDataFrame({"code": [f"G{i}" for i in range(6)], "name": [f"{i}网格" for i in range(6)]},
                                 geometry=[box(120.09 + 0.002 * i, 30.27, 0.001, 0.001) for i in range(6)],
                                 crs="EPSG:4326")
    else:
        frame = equipment(12)
    report = db.load(layer, write(frame, tmp_path / "f.geojson"))
    assert report.inserted == len(frame)
    assert _index_and_constraint_defs(db.engine, table) == before  # same indexes and constraints, same definitions
    again = db.load(layer, write(frame, tmp_path / "g.geojson"))  # not empty now: the upsert path
    assert again.inserted == 0 and again.unchanged == len(frame)


def test_bulk_load_with_duplicate_keys_is_refused_and_indexes_survive(db, monkeypatch):
    from gridmap.storage import bulk

    monkeypatch.setattr(bulk, "BULK_REBUILD_ROWS", 3)
    before = _index_and_constraint_defs(db.engine, "fire_equipment")
    frame = equipment(8)
    prepared = loading.prepare(frame, "fire_equipment", settings=db.settings)
    codes = prepared.columns[prepared.names.index("code")]
    codes[5] = codes[0]  # a duplicate the per-file check did not see (it ran before)
    with pytest.raises(LoadRejected, match="duplicate"), db.engine.begin() as sa:
        loading.write_prepared(sa.connection.driver_connection, "fire_equipment", prepared)
    assert _index_and_constraint_defs(db.engine, "fire_equipment") == before
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM fire_equipment")).scalar_one() == 0
