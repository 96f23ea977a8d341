"""What the loading tests share: the tables a load could touch and their snapshot, small frames of
buildings and fire equipment, writing them in any format, and comparisons of geometries and attributes."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Geod
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
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
