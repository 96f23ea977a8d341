"""CRS discipline for the analyses: every frame in must say its CRS; measuring happens in EPSG:4549."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from gridmap.config import MEASURE_CRS
from gridmap.core.vocabulary import TIME_ZONE
from gridmap.errors import InvalidInput

#: Time zone in which months and hours are counted.


def require(gdf: object, name: str, columns: tuple[str, ...] = ()) -> gpd.GeoDataFrame:
    """Check that ``gdf`` is a GeoDataFrame with a CRS and the given columns; name the fix otherwise."""
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InvalidInput(f"{name} is a {type(gdf).__name__}, not a GeoDataFrame", field=name,
                           fix="pass a GeoDataFrame, e.g. db.layer(...) or gpd.GeoDataFrame(df, geometry=..., crs=...)")
    if gdf.crs is None:
        raise InvalidInput(f"{name} has no CRS", field=name,
                           fix="set it, e.g. frame.set_crs('EPSG:4326') for lon/lat or 'EPSG:4549' for metres")
    missing = [c for c in columns if c not in gdf.columns]
    if missing:
        raise InvalidInput(f"{name} lacks column(s) {', '.join(missing)}", field=name,
                           fix=f"{name} needs {', '.join(columns)}")
    return gdf


def to_measure(gdf: gpd.GeoDataFrame, name: str) -> gpd.GeoDataFrame:
    """``gdf`` in EPSG:4549 (metres), after checking it has a CRS."""
    require(gdf, name)
    return gdf if gdf.crs == MEASURE_CRS else gdf.to_crs(MEASURE_CRS)


def point_xy(gdf: gpd.GeoDataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """x, y (EPSG:4549) of each feature: the point itself, or a point inside a polygon/line."""
    g = to_measure(gdf, name).geometry
    if len(g) and not (g.geom_type == "Point").all():
        g = g.representative_point()
    return g.x.to_numpy(dtype=float), g.y.to_numpy(dtype=float)


def local_month(times: pd.Series) -> pd.Series:
    """First day of the local (Asia/Shanghai) month of each timestamp, as naive datetimes."""
    t = pd.to_datetime(times)
    if t.dt.tz is None:
        raise InvalidInput("timestamps have no time zone", field="reported_at",
                           fix="read events with db.layer('events') or load_events (timestamptz)")
    return t.dt.tz_convert(TIME_ZONE).dt.tz_localize(None).dt.to_period("M").dt.to_timestamp()  # type: ignore[return-value]  # stubs: .dt.to_timestamp() of a Series is a Series
