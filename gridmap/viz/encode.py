"""GeoDataFrames to the compact JSON that deck.gl layers draw: features, points and paths.

The same encoders feed a notebook (data inlined in the deck) and the dashboard's HTTP endpoints (data
fetched per viewport), so a layer's accessors see the same fields either way. Coordinates are rounded
to 6 decimals (about 0.1 m). Values and JSON come from the one encoder, :mod:`gridmap.core.encode`
(datetimes as ISO 8601; NaN, NA, NaT and None as null; numpy, Decimal, geometries).
"""

from __future__ import annotations

from collections.abc import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gridmap.core import encode
from gridmap.core.vocabulary import WGS84
from gridmap.errors import InvalidInput

#: deck.gl draws lon/lat: every frame is brought to WGS84 before it is encoded.
DRAW_CRS = WGS84
PRECISION = 6


def check_crs(gdf: gpd.GeoDataFrame, what: str = "frame") -> gpd.GeoDataFrame:
    """Return ``gdf`` in EPSG:4326, reprojecting it if needed; a frame without a CRS is refused.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame(geometry=[shapely.Point(500000, 3350000)], crs="EPSG:4549")
    >>> round(check_crs(g).geometry.x[0], 3)
    120.0
    """
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InvalidInput(f"{what} is a {type(gdf).__name__}, not a GeoDataFrame", field=what,
                           fix="pass a GeoDataFrame, e.g. gm.connect().layer(...)")
    if gdf.crs is None:
        raise InvalidInput(f"{what} has no CRS", field=f"{what}.crs",
                           fix="set it with gdf.set_crs('EPSG:4326') (or the CRS the coordinates are really in)")
    if not gdf.crs.equals(DRAW_CRS):
        gdf = gdf.to_crs(DRAW_CRS)
    return gdf


def _columns(gdf: gpd.GeoDataFrame, columns: Iterable[str] | None) -> list[str]:
    geom = gdf.geometry.name
    cols = [c for c in (columns if columns is not None else gdf.columns) if c != geom]
    missing = [c for c in cols if c not in gdf.columns]
    if missing:
        raise InvalidInput(f"column(s) {', '.join(missing)} are not in the frame", field="columns",
                           fix=f"choose from {', '.join(c for c in gdf.columns if c != geom)}")
    return cols


def _records(df: pd.DataFrame, cols: list[str]) -> list[dict]:
    return encode.records(df, cols)


def features(gdf: gpd.GeoDataFrame, columns: Iterable[str] | None = None, *, what: str = "frame") -> dict:
    """A GeoJSON FeatureCollection (dict) of ``gdf`` with ``columns`` as properties."""
    gdf = check_crs(gdf, what)
    return encode.feature_collection(gdf, _columns(gdf, columns), precision=PRECISION)


def points(gdf: gpd.GeoDataFrame, columns: Iterable[str] | None = None, *, what: str = "frame") -> list[dict]:
    """One record per point: ``{"position": [lon, lat], <columns>...}`` (rows without a geometry dropped)."""
    gdf = check_crs(gdf, what)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    cols = _columns(gdf, columns)
    if len(gdf) and not (gdf.geom_type == "Point").all():
        raise InvalidInput(f"{what} has {', '.join(sorted(set(gdf.geom_type) - {'Point'}))} geometries",
                           field=what, fix="pass points (e.g. gdf.representative_point()) for a point layer")
    xy = np.round(shapely.get_coordinates(gdf.geometry.to_numpy()), PRECISION).tolist()
    recs = _records(gdf, cols)
    for r, p in zip(recs, xy, strict=True):
        r["position"] = p
    return recs


def line_coords(geom: BaseGeometry | None) -> list[list[float]] | None:
    """The vertices of a (Multi)LineString as ``[[lon, lat], ...]`` (parts joined), rounded."""
    if geom is None or geom.is_empty:
        return None
    if isinstance(geom, shapely.MultiLineString):
        parts = [np.asarray(g.coords) for g in geom.geoms]
        xy = np.concatenate(parts) if parts else np.empty((0, 2))
    else:
        xy = np.asarray(geom.coords)
    return np.round(xy[:, :2], PRECISION).tolist()


def paths(gdf: gpd.GeoDataFrame, columns: Iterable[str] | None = None, *, what: str = "frame") -> list[dict]:
    """One record per line: ``{"path": [[lon, lat], ...], <columns>...}``."""
    gdf = check_crs(gdf, what)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    cols = _columns(gdf, columns)
    recs = _records(gdf, cols)
    for r, g in zip(recs, gdf.geometry, strict=True):
        r["path"] = line_coords(g)
    return recs


def dumps(obj: object) -> bytes:
    """JSON bytes by the one encoder (:func:`gridmap.core.encode.dumps`)."""
    return encode.dumps(obj)
