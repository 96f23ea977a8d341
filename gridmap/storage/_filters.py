"""Private helpers shared by the storage modules: area/bbox/time conditions, the viewport envelope
and the scope placeholder of the map reads, and result rows as frames.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, CursorResult, text

from gridmap.core.location import check_bbox
from gridmap.core.vocabulary import OPEN_EVENT_STATUSES, TIME_ZONE, WGS84
from gridmap.errors import InvalidInput, NotFound
from gridmap.storage import scopes

#: Time zone of the months the analyses count in (dates in the registry are timestamptz).
LOCAL_TZ = TIME_ZONE


#: Columns whose delay after ``reported_at`` a window may measure (a whitelist: they are spliced into SQL).
MILESTONES = ("dispatched_at", "accepted_at", "on_site_at", "resolved_at", "closed_at")


#: Area levels an event is attributed to by its own code columns (the grid version it fell in).
EVENT_LEVEL_COLUMN = {"grid": "grid_code", "community": "community_code", "street": "street_code"}


@dataclass(frozen=True)
class AreaFilter:
    """Where to read: an area code (street, community or grid, at its current boundary) and/or a bbox."""

    area: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    at: dt.datetime | None = None  # boundary version (default: current)


def _validity(alias: str, at_param: bool) -> str:
    if at_param:
        return f"{alias}.valid_from <= :at AND ({alias}.valid_to IS NULL OR :at < {alias}.valid_to)"
    return f"{alias}.valid_to IS NULL"


def area_exists(conn: Connection, code: str, at: dt.datetime | None = None) -> bool:
    q = f"SELECT 1 FROM areas a WHERE a.code = :code AND {_validity('a', at is not None)}"
    return conn.execute(text(q), {"code": code, "at": at}).first() is not None


def _bbox_cond(alias: str, bbox: tuple[float, float, float, float], bind: dict) -> str:
    box = check_bbox(bbox)  # four finite degrees, min < max, not lat/lon swapped: the one bbox check
    assert box is not None  # a bbox was given
    minx, miny, maxx, maxy = box
    bind.update(minx=minx, miny=miny, maxx=maxx, maxy=maxy)
    return f"{alias}.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)"


def _area_geom(conn: Connection, code: str, bind: dict) -> str:
    if not area_exists(conn, code):
        raise NotFound(f"no area with code {code!r}", field="area", fix="list areas with db.layer('areas')")
    bind["area_code"] = code
    return "(SELECT a.geom FROM areas a WHERE a.code = :area_code AND a.valid_to IS NULL)"


def _where(conn: Connection, alias: str, flt: AreaFilter, bind: dict, *, polygon: bool = False) -> list[str]:
    """Area and bbox conditions on ``alias.geom`` (a polygon counts where its point-on-surface falls)."""
    conds = []
    if flt.bbox is not None:
        conds.append(_bbox_cond(alias, flt.bbox, bind))
    if flt.area is not None:
        ag = _area_geom(conn, flt.area, bind)
        if polygon:
            conds.append(f"{alias}.geom && {ag} AND ST_Intersects(ST_PointOnSurface({alias}.geom), {ag})")
        else:
            conds.append(f"ST_Intersects({alias}.geom, {ag})")
    return conds


def _sql_where(conds: list[str]) -> str:
    return (" WHERE " + " AND ".join(f"({c})" for c in conds)) if conds else ""


def _time_conds(alias: str, start: dt.datetime | None, end: dt.datetime | None, bind: dict) -> list[str]:
    conds = []
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} time {value} has no time zone", field=name,
                               fix="pass an aware datetime, e.g. datetime(2026, 1, 1, tzinfo=ZoneInfo('Asia/Shanghai'))")
    if start is not None:
        conds.append(f"{alias}.reported_at >= :start")
        bind["start"] = start
    if end is not None:
        conds.append(f"{alias}.reported_at < :end")
        bind["end"] = end
    return conds


#: Spliced into SQL as ``IN {OPEN_STATUSES}`` (the tuple's repr is the SQL list): constants, never input.
OPEN_STATUSES = OPEN_EVENT_STATUSES

_ENVELOPE = "ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)"


#: The current communities / grids / polygons of area :street (NULL: no confinement, the caller tests that first).
_AREA = ":street"


_STREET_COMMUNITIES = scopes.communities_of(_AREA)


_STREET_GRIDS = scopes.grids_of(_AREA)


_STREET_SHAPE = scopes.shapes_of(_AREA)


def _in_street(column: str, what: str = "communities") -> str:
    """``column`` lies in street :street (or no street is given)."""
    sub = _STREET_COMMUNITIES if what == "communities" else _STREET_GRIDS
    return f"(CAST(:street AS text) IS NULL OR {column} IN ({sub}))"


def _bbox(bbox: tuple[float, float, float, float] | None) -> dict:
    if bbox is None:
        return {"minx": -180.0, "miny": -90.0, "maxx": 180.0, "maxy": 90.0}
    minx, miny, maxx, maxy = bbox
    return {"minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy}


def _frame(result: CursorResult) -> pd.DataFrame:
    """The rows of a result as a DataFrame with its column names."""
    return pd.DataFrame(result.all(), columns=list(result.keys()))


def _q(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> CursorResult:
    """Run one SQL statement (a string with ``:name`` placeholders) on the caller's connection."""
    return conn.execute(text(sql), dict(params or {}))


def _geo_frame(result: CursorResult, column: str = "wkb") -> gpd.GeoDataFrame:
    """The rows of a result as a GeoDataFrame in EPSG:4326, its WKB ``column`` decoded into ``geometry``."""
    df = _frame(result)
    return gpd.GeoDataFrame(df.drop(columns=column), geometry=_geoms(df[column]), crs=WGS84)


def _geoms(values: Any) -> np.ndarray:
    """WKB values (bytes, memoryview or None) as shapely geometries (None stays None)."""
    return shapely.from_wkb([None if v is None else bytes(v) for v in values])



# -- the side panel ------------------------------------------------------------------------------------------
def _street_events(street: str | None, unplaced: bool, alias: str = "") -> str:
    """Events of ``street`` (and, when ``unplaced``, those placed in no street, e.g. outside every grid)."""
    also = f" OR {alias}street_code IS NULL" if unplaced else ""
    return f"(CAST(:street AS text) IS NULL OR {scopes.events(alias, _AREA)}{also})"


def _postgis_frame(conn: Connection, sql: str, params: dict) -> gpd.GeoDataFrame:
    """The rows of ``sql`` (its geometry column named ``geom``) as a GeoDataFrame in WGS 84."""
    return gpd.read_postgis(text(sql), conn, geom_col="geom", params=params, crs=WGS84)  # type: ignore[call-overload]  # stubs: sql is str only; geopandas takes a TextClause
