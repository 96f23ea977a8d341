"""Checks on a reported lon/lat before it is placed: degrees, the configured area, lat/lon swapped, GCJ-02.

Examples
--------
>>> check_lonlat(120.1, 30.28, (118.3, 29.15, 120.8, 30.6))
(120.1, 30.28)
>>> check_lonlat(30.28, 120.1, (118.3, 29.15, 120.8, 30.6))
Traceback (most recent call last):
...
gridmap.errors.InvalidInput: location.lon/lat: (30.28, 120.1) looks like lat/lon swapped; send longitude first: lon=120.1, lat=30.28
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from gridmap.core.crs import gcj02_to_wgs84, placement
from gridmap.errors import InvalidInput

FIELD = "location.lon/lat"


def check_lonlat(lon: float, lat: float, bbox: tuple[float, float, float, float], *,
                 gcj02: bool = False) -> tuple[float, float]:
    """Validate (lon, lat) against the area's bbox and return WGS84 lon/lat (converted from GCJ-02 if asked)."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidInput(f"({lon}, {lat}) is not a pair of finite numbers", field=FIELD,
                           fix="send decimal degrees, e.g. lon=120.1, lat=30.28")
    summary, _ = placement(np.array([shapely.Point(lon, lat)]), bbox)
    if summary.looks_swapped:
        raise InvalidInput(f"({lon}, {lat}) looks like lat/lon swapped", field=FIELD,
                           fix=f"send longitude first: lon={lat}, lat={lon}")
    if summary.looks_projected:
        raise InvalidInput(f"({lon}, {lat}) are not degrees (projected metres?)", field=FIELD,
                           fix="send WGS84 decimal degrees (or GCJ-02 with coords='gcj02')")
    if not summary.inside:
        minx, miny, maxx, maxy = bbox
        raise InvalidInput(f"({lon}, {lat}) is outside the configured area "
                           f"(lon {minx}..{maxx}, lat {miny}..{maxy})", field=FIELD,
                           fix="check the coordinates; events are taken only inside the managed area")
    if gcj02:
        x, y = gcj02_to_wgs84(lon, lat)
        return float(x), float(y)
    return float(lon), float(lat)
