"""The one JSON encoder: every JSON gridmap writes (API responses, the dashboard, GeoJSON layers, the live feed,
exports) goes through :func:`dumps`.

orjson writes the plain types (str, int, float, bool, None, dict, list, tuple, ``datetime``/``date``/``time``,
UUID, enums, dataclasses). :func:`jsonable` turns what it does not know into one of those:

* missing values — ``None``, ``pd.NA``, ``pd.NaT``, ``NaN`` and ``±inf`` (Python, numpy or pandas) — as ``null``;
* ``pd.Timestamp`` and ``numpy.datetime64`` as ISO 8601 (with the offset when the value has one);
* ``timedelta`` / ``pd.Timedelta`` / ``numpy.timedelta64`` as seconds (a float);
* ``Decimal`` as a float, numpy scalars as Python numbers, numpy arrays and pandas Series as lists
  (element by element, so NaN and timestamps inside them are handled too), sets as sorted lists;
* shapely geometries as GeoJSON geometry objects; ``bytes`` as UTF-8 text when they are, else refused.

Anything else raises ``TypeError`` naming the type: a bug to fix here, never data silently turned into
``str(value)``.

>>> import pandas as pd, numpy as np, decimal, shapely
>>> dumps({"t": pd.Timestamp("2026-11-02 09:00", tz="Asia/Shanghai"), "na": pd.NA, "nat": pd.NaT,
...        "nan": float("nan"), "d": decimal.Decimal("1.5"), "n": np.int64(3), "p": shapely.Point(120.1, 30.2)})
b'{"t":"2026-11-02T09:00:00+08:00","na":null,"nat":null,"nan":null,"d":1.5,"n":3,"p":{"type":"Point","coordinates":[120.1,30.2]}}'
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

if TYPE_CHECKING:
    import geopandas as gpd

# OPT_NON_STR_KEYS: int/date keys (e.g. by rung, by day). Not OPT_SERIALIZE_NUMPY: orjson would write a NaT
# inside a datetime64 array as the year 1677; numpy values come to ``jsonable`` instead.
_OPTS = orjson.OPT_NON_STR_KEYS
_MISSING = (None, pd.NA, pd.NaT)


def _float(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def jsonable(v: object) -> Any:
    """``v`` as something orjson writes; raises ``TypeError`` for a kind of value it does not know."""
    if any(v is m for m in _MISSING):
        return None
    out = _scalar(v)
    if out is _UNKNOWN:
        out = _container(v)
    if out is _UNKNOWN:
        raise TypeError(f"gridmap.core.encode cannot write a {type(v).__module__}.{type(v).__qualname__} as JSON")
    return out


#: What :func:`_scalar` and :func:`_container` return for a value that is not of their kinds (None is a value).
_UNKNOWN = object()


def _scalar(v: object) -> Any:
    """A single value (number, text, time, geometry) as JSON, or ``_UNKNOWN``; the order of the checks
    matters (a bool is an int, a pandas Timestamp a datetime, numpy's timedelta64 an integer type)."""
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, np.datetime64):  # (numpy's timedelta64 is an integer type: before the integers)
        return None if np.isnat(v) else pd.Timestamp(v).isoformat()
    if isinstance(v, np.timedelta64):
        return None if np.isnat(v) else pd.Timedelta(v).total_seconds()
    if isinstance(v, float | np.floating):
        return _float(float(v))
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, str):
        return v
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, pd.Timedelta | dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):
        return _float(float(v)) if v.is_finite() else None
    if isinstance(v, BaseGeometry):  # every shapely geometry class derives from it
        return None if v.is_empty else orjson.loads(shapely.to_geojson(v))
    return _UNKNOWN


def _container(v: object) -> Any:
    """Arrays, series, sets, bytes, dicts and sequences as JSON, or ``_UNKNOWN``."""
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return v.tolist()  # Python numbers; orjson writes NaN and inf as null
    if isinstance(v, np.ndarray) and v.dtype.kind in "Mm":  # datetime64/timedelta64: through pandas (NaT kept)
        return [jsonable(x) for x in pd.Series(v.ravel(), dtype=v.dtype)]
    if isinstance(v, np.ndarray | pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
        return _deep(np.asarray(v, dtype=object).tolist())
    if isinstance(v, set | frozenset):
        return sorted((_deep(x) for x in v), key=lambda x: (str(type(x)), str(x)))
    if isinstance(v, bytes | bytearray | memoryview):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError("binary data (bytes that are not UTF-8 text) is not JSON") from None
    if isinstance(v, dict):
        return {k: _deep(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_deep(x) for x in v]
    return _UNKNOWN


def _deep(v: object) -> Any:
    """``jsonable`` for values inside a container orjson hands us (lists of arrays, arrays of timestamps)."""
    if isinstance(v, dict):
        return {k: _deep(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_deep(x) for x in v]
    if isinstance(v, str | bool) or (isinstance(v, int) and not isinstance(v, np.integer)):
        return v
    return jsonable(v)


def _default(v: object) -> Any:
    out = jsonable(v)
    if out is v:  # jsonable handed back the same object: orjson would call us again for ever
        raise TypeError(f"cannot write a {type(v).__qualname__} as JSON")
    return out


def dumps(obj: object) -> bytes:
    """``obj`` as UTF-8 JSON bytes (orjson; missing values as null; see the module for every kind).
    Raises ``TypeError`` for a value of a kind it does not know."""
    return orjson.dumps(obj, default=_default, option=_OPTS)


def records(df: pd.DataFrame, columns: Iterable[str] | None = None) -> list[dict]:
    """The rows of ``df`` as dicts of JSON-ready values (NaN/NA/NaT as None, timestamps as ISO 8601)."""
    cols = list(df.columns if columns is None else columns)
    if not cols:
        return [{} for _ in range(len(df))]
    values = [[_cell(v) for v in df[c].tolist()] for c in cols]
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)]


def _cell(v: object) -> Any:
    if isinstance(v, str | bool) or v is None:
        return v
    if isinstance(v, int) and not isinstance(v, np.integer):
        return v
    if isinstance(v, shapely.Geometry):
        return v  # a geometry column that is not the frame's geometry: written as GeoJSON by dumps
    if isinstance(v, dict | list | tuple):
        return _deep(v)
    return jsonable(v)


def feature_collection(gdf: gpd.GeoDataFrame, columns: Iterable[str] | None = None, *,
                       precision: int | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (a dict for :func:`dumps`) of a GeoDataFrame: ``columns`` (default all but
    the geometry) as properties, coordinates rounded to ``precision`` decimals when given. The frame's
    coordinates are written as they are: bring it to EPSG:4326 first (GeoJSON is lon/lat)."""
    geom_col = gdf.geometry.name
    cols = [c for c in (gdf.columns if columns is None else columns) if c != geom_col]
    geoms = gdf.geometry.to_numpy()
    if precision is not None:
        geoms = shapely.transform(geoms, lambda c: np.round(c, precision))
    gj = shapely.to_geojson(geoms)
    props = records(gdf, cols)
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "geometry": orjson.loads(g) if g is not None else None, "properties": p}
                         for g, p in zip(gj, props, strict=True)]}
