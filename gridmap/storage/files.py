"""Reading and writing geodata files: GeoJSON, GeoPackage, Shapefile, GeoParquet and CSV with lon/lat.

Vector formats go through pyogrio (GDAL, Arrow batches); GeoParquet through geopandas/pyarrow; CSV
through pandas with every column read as text (the loader converts each column to its table's type,
so a code like "007" keeps its zeros).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gridmap.core.vocabulary import WGS84
from gridmap.errors import InvalidInput, LoadRejected

READ_SUFFIXES = {
    ".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".zip": "ESRI Shapefile",
    ".parquet": "GeoParquet", ".geoparquet": "GeoParquet", ".csv": "CSV",
}
WRITE_SUFFIXES = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".parquet": "GeoParquet",
                  ".geoparquet": "GeoParquet"}
LON_NAMES = ("lon", "lng", "longitude", "long", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")


def _pick(columns: list[str], wanted: str | None, names: tuple[str, ...], what: str, path: Path) -> str:
    if wanted:
        if wanted not in columns:
            raise InvalidInput(f"column {wanted!r} is not in {path.name} (it has {', '.join(columns)})",
                               field=f"{what}_col", fix="pass the name of the column that holds " + what)
        return wanted
    lower = {c.lower().strip(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    raise InvalidInput(
        f"{path.name} has no {what} column (looked for {', '.join(names)}; it has {', '.join(columns)})",
        field=f"{what}_col", fix=f"name the column with --{what}-col",
    )


def read_csv_points(path: Path, *, lon_col: str | None, lat_col: str | None, crs: str | None) -> gpd.GeoDataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    cols = list(df.columns)
    lon_name = _pick(cols, lon_col, LON_NAMES, "lon", path)
    lat_name = _pick(cols, lat_col, LAT_NAMES, "lat", path)
    lon = pd.to_numeric(df[lon_name], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(df[lat_name], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(np.isnan(lon) | np.isnan(lat))
    if len(bad):
        from gridmap.errors import FeatureProblem

        problems = [
            FeatureProblem(int(i), None, "rejected",
                           f"{lon_name}={df[lon_name].iloc[i]!r}, {lat_name}={df[lat_name].iloc[i]!r} are not numbers")
            for i in bad
        ]
        raise LoadRejected(path.name, f"{len(bad)} rows have no usable coordinates", problems,
                           "fill in numeric lon/lat (decimal degrees) for every row")
    geom = shapely.points(lon, lat)
    return gpd.GeoDataFrame(df.drop(columns=[lon_name, lat_name]), geometry=geom, crs=crs or WGS84)


def read_file(
    path: str | Path, *, file_layer: str | None = None, target_layer: str | None = None,
    crs: str | None = None, lon_col: str | None = None, lat_col: str | None = None,
) -> gpd.GeoDataFrame:
    """Read one layer of a geodata file into a GeoDataFrame (its CRS as the file says, or ``crs``)."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"no such file: {path}", field="file", fix="check the path")
    suffix = path.suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise InvalidInput(
            f"cannot tell the format of {path.name}", field="file",
            fix=f"use one of {', '.join(sorted(READ_SUFFIXES))}",
        )
    if path.stat().st_size == 0:
        raise LoadRejected(path.name, "the file is empty (0 bytes)", fix_hint="export the layer again")
    try:
        if suffix == ".csv":
            return read_csv_points(path, lon_col=lon_col, lat_col=lat_col, crs=crs)
        if READ_SUFFIXES[suffix] == "GeoParquet":
            gdf = gpd.read_parquet(path)
        else:
            layers = [name for name, _ in pyogrio.list_layers(path)]
            if file_layer is None and len(layers) > 1:
                if target_layer in layers:
                    file_layer = target_layer
                else:
                    raise InvalidInput(
                        f"{path.name} has several layers ({', '.join(layers)})", field="file_layer",
                        fix="choose one with --file-layer",
                    )
            gdf = pyogrio.read_dataframe(path, layer=file_layer, use_arrow=True)
    except (InvalidInput, LoadRejected):
        raise
    except Exception as exc:  # GDAL/Arrow say "truncated", "unexpected end", "not recognized" in many ways
        raise LoadRejected(
            path.name, f"cannot read the file: {str(exc).strip().splitlines()[0][:300]}",
            fix_hint="the file is damaged or truncated; export it again",
        ) from exc
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None:
        raise LoadRejected(path.name, "the file has no geometry column", fix_hint="use a spatial format or CSV with lon/lat")
    if crs:
        gdf = gdf.set_crs(crs, allow_override=True)
    return gdf


def write_file(gdf: gpd.GeoDataFrame, path: str | Path, *, layer: str) -> Path:
    """Write a GeoDataFrame as GeoJSON, GeoPackage or GeoParquet (by the file's suffix)."""
    path = Path(path)
    driver = WRITE_SUFFIXES.get(path.suffix.lower())
    if driver is None:
        raise InvalidInput(f"cannot write {path.name}", field="file",
                           fix=f"use a name ending in {', '.join(sorted(WRITE_SUFFIXES))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")  # keep the suffix: GDAL checks it (GPKG)
    tmp.unlink(missing_ok=True)
    if driver == "GeoParquet":
        gdf.to_parquet(tmp, index=False)
    else:
        out = gdf.copy()
        for col in out.columns:
            if col != out.geometry.name and out[col].map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
                out[col] = out[col].map(lambda v: ";".join(map(str, v)) if v is not None else None)
        pyogrio.write_dataframe(out, tmp, layer=layer, driver=driver)
    tmp.replace(path)  # a failed export never leaves half a file behind
    return path
