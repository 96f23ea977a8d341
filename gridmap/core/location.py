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
#: A box in degrees: (min_lon, min_lat, max_lon, max_lat).
BBox = tuple[float, float, float, float]
_BBOX_FIX = "give min_lon,min_lat,max_lon,max_lat in degrees, min < max, e.g. 120.09,30.27,120.10,30.28"


def parse_bbox(text: str | None, *, field: str = "bbox") -> BBox | None:
    """A box written ``min_lon,min_lat,max_lon,max_lat`` (a query parameter, a command-line option), checked
    by :func:`check_bbox`; None stays None. ``field`` names the parameter in the error.

    Examples
    --------
    >>> parse_bbox("120.09,30.27,120.10,30.28")
    (120.09, 30.27, 120.1, 30.28)
    >>> parse_bbox("30.27,120.09,30.28,120.10")
    Traceback (most recent call last):
    ...
    gridmap.errors.InvalidInput: bbox: bbox (30.27, 120.09, 30.28, 120.1) looks lat/lon swapped; write longitude first: min_lon,min_lat,max_lon,max_lat
    """
    if text is None:
        return None
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise InvalidInput(f"{text!r} is not four numbers", field=field, fix=_BBOX_FIX)
    return check_bbox(box, field=field)


def check_bbox(bbox: BBox | None, *, field: str = "bbox") -> BBox | None:
    """``bbox`` as four finite degrees with min < max, or InvalidInput naming ``field`` (lat/lon swapped is
    told apart); None stays None."""
    if bbox is None:
        return None
    if len(bbox) != 4 or not all(np.isfinite(bbox)):
        raise InvalidInput(f"bbox {bbox} is not four numbers", field=field, fix=_BBOX_FIX)
    minx, miny, maxx, maxy = bbox
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        if -90 <= minx <= 90 and -180 <= miny <= 180 and abs(miny) > 90:
            raise InvalidInput(f"bbox {bbox} looks lat/lon swapped", field=field,
                               fix="write longitude first: min_lon,min_lat,max_lon,max_lat")
        raise InvalidInput(f"bbox {bbox} is empty or out of range", field=field, fix=_BBOX_FIX)
    return (float(minx), float(miny), float(maxx), float(maxy))


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
