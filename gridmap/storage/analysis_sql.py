"""SQL for the planner analyses (:mod:`gridmap.analysis`): every filter and every aggregation runs in PostGIS.

Each function takes the caller's SQLAlchemy :class:`~sqlalchemy.Connection` and reads only what it is
asked for: an area (a street, community or grid code, at its current boundary) and/or a lon/lat bbox
restrict the rows through the GiST indexes, time windows through ``ix_events_reported_at``, and counts
(residents per building, events per area and month) are aggregated on the server, so a province-sized
registry never crosses the wire row by row. Frames come back in EPSG:4326.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, text

from gridmap.errors import InvalidInput, NotFound
from gridmap.storage.queries import AreaFilter, area_exists

#: Time zone of the months the analyses count in (dates in the registry are timestamptz).
LOCAL_TZ = "Asia/Shanghai"
#: Columns whose delay after ``reported_at`` a window may measure (a whitelist: they are spliced into SQL).
MILESTONES = ("dispatched_at", "accepted_at", "on_site_at", "resolved_at", "closed_at")
#: Area levels an event is attributed to by its own code columns (the grid version it fell in).
EVENT_LEVEL_COLUMN = {"grid": "grid_code", "community": "community_code", "street": "street_code"}


def _bbox_cond(alias: str, bbox: tuple[float, float, float, float], bind: dict) -> str:
    minx, miny, maxx, maxy = bbox
    if not (minx < maxx and miny < maxy):
        raise InvalidInput(f"bbox {bbox} is empty", field="bbox", fix="give (min_lon, min_lat, max_lon, max_lat)")
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


def area_bounds(conn: Connection, code: str) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of an area's current boundary."""
    bind: dict = {}
    ag = _area_geom(conn, code, bind)
    row = conn.execute(text(f"SELECT ST_XMin(g), ST_YMin(g), ST_XMax(g), ST_YMax(g) FROM {ag} AS x(g)"), bind).one()
    return tuple(float(v) for v in row)  # type: ignore[return-value]


def road_network(conn: Connection, bbox: tuple[float, float, float, float] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Directed road edges touching ``bbox`` (all when None) and every node they end at.

    Returns nodes (id, lon, lat) and edges (id, source, target, length_m, travel_time_s, highway, wkb).
    """
    bind: dict = {}
    cond = _sql_where([_bbox_cond("e", bbox, bind)] if bbox is not None else [])
    edges = pd.DataFrame(
        conn.execute(text(
            "SELECT e.id, e.source, e.target, e.length_m, e.travel_time_s, e.highway, ST_AsBinary(e.geom) "
            f"FROM road_edges e{cond} ORDER BY e.id"), bind).all(),
        columns=["id", "source", "target", "length_m", "travel_time_s", "highway", "wkb"],
    )
    nodes = pd.DataFrame(
        conn.execute(text(
            f"WITH e AS (SELECT e.source, e.target FROM road_edges e{cond}) "
            "SELECT n.id, ST_X(n.geom), ST_Y(n.geom) FROM road_nodes n "
            "WHERE n.id IN (SELECT source FROM e UNION SELECT target FROM e) ORDER BY n.id"), bind).all(),
        columns=["id", "lon", "lat"],
    )
    return nodes, edges


def buildings_with_people(conn: Connection, flt: AreaFilter) -> gpd.GeoDataFrame:
    """Buildings (footprints) with their households and residents counted on the server.

    The counts are correlated subqueries on the ``building_id`` indexes, run only for the buildings
    the filter keeps: O(buildings kept · log n), whatever the size of the registry.
    """
    bind: dict = {}
    conds = _where(conn, "b", flt, bind, polygon=True)
    q = (
        "SELECT b.id, b.code, b.use, b.floors, b.grid_code, b.community_code, "
        "(SELECT count(*) FROM households h WHERE h.building_id = b.id) AS households, "
        "(SELECT count(*) FROM residents r WHERE r.building_id = b.id) AS residents, "
        f"ST_AsBinary(b.geom) AS geom FROM buildings b{_sql_where(conds)} ORDER BY b.id"
    )
    return gpd.read_postgis(text(q), conn, geom_col="geom", params=bind, crs="EPSG:4326")  # type: ignore[call-overload]  # stubs: sql is str only; geopandas takes a TextClause


def equipment(conn: Connection, flt: AreaFilter, kinds: Sequence[str], statuses: Sequence[str] | None
              ) -> gpd.GeoDataFrame:
    """Fire equipment of the given kinds (and statuses; None: any)."""
    bind: dict = {"kinds": list(kinds)}
    conds = ["t.kind = ANY(:kinds)", *_where(conn, "t", flt, bind)]
    if statuses is not None:
        conds.append("t.status = ANY(:statuses)")
        bind["statuses"] = list(statuses)
    q = ("SELECT t.id, t.code, t.kind, t.name, t.status, t.building_id, ST_AsBinary(t.geom) AS geom "
         f"FROM fire_equipment t{_sql_where(conds)} ORDER BY t.id")
    return gpd.read_postgis(text(q), conn, geom_col="geom", params=bind, crs="EPSG:4326")  # type: ignore[call-overload]  # stubs: sql is str only; geopandas takes a TextClause


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


EVENT_COLUMNS = ("id", "code", "channel", "category", "severity", "reported_at", "street_code", "community_code",
                 "grid_code", "building_id", "team_id", "status", "dispatched_at", "accepted_at", "on_site_at",
                 "resolved_at", "closed_at")


def events(conn: Connection, flt: AreaFilter, *, start: dt.datetime | None = None, end: dt.datetime | None = None,
           categories: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> gpd.GeoDataFrame:
    """Events reported in [start, end), of the given categories, inside the area/bbox (points)."""
    cols = list(columns or EVENT_COLUMNS)
    unknown = [c for c in cols if c not in EVENT_COLUMNS]
    if unknown:
        raise InvalidInput(f"unknown event column(s) {', '.join(unknown)}", field="columns",
                           fix=f"choose from {', '.join(EVENT_COLUMNS)}")
    bind: dict = {}
    conds = [*_where(conn, "e", flt, bind), *_time_conds("e", start, end, bind)]
    if categories is not None:
        conds.append("e.category = ANY(:cats)")
        bind["cats"] = list(categories)
    sel = ", ".join(f"e.{c}" for c in cols)
    q = f"SELECT {sel}, ST_AsBinary(e.geom) AS geom FROM events e{_sql_where(conds)} ORDER BY e.id"
    return gpd.read_postgis(text(q), conn, geom_col="geom", params=bind, crs="EPSG:4326")  # type: ignore[call-overload]  # stubs: sql is str only; geopandas takes a TextClause


def event_month_counts(conn: Connection, flt: AreaFilter, *, level: str = "grid", start: dt.datetime | None = None,
                       end: dt.datetime | None = None, categories: Sequence[str] | None = None,
                       windows: Mapping[str, tuple[str, float]] | None = None,
                       as_of: dt.datetime | None = None) -> pd.DataFrame:
    """Events per (area code, local month, category), counted in PostGIS.

    ``windows`` maps a name to (milestone column, seconds): for each it adds ``done_<name>`` (events
    whose milestone came within that many seconds of the report) and ``due_<name>`` (events reported
    at least that long before ``as_of``: the ones whose outcome is known). Returns columns ``code,
    month`` (first day of the local month, naive), ``category, events`` and the window counts.
    """
    if level not in EVENT_LEVEL_COLUMN:
        raise InvalidInput(f"unknown level {level!r}", field="level", fix=f"use one of {', '.join(EVENT_LEVEL_COLUMN)}")
    code_col = EVENT_LEVEL_COLUMN[level]
    bind: dict = {"tz": LOCAL_TZ}
    conds = [*_where(conn, "e", flt, bind), *_time_conds("e", start, end, bind), f"e.{code_col} IS NOT NULL"]
    if categories is not None:
        conds.append("e.category = ANY(:cats)")
        bind["cats"] = list(categories)
    extra = []
    names = []
    for i, (name, (column, seconds)) in enumerate((windows or {}).items()):
        if column not in MILESTONES:
            raise InvalidInput(f"window {name!r} measures {column!r}", field="windows",
                               fix=f"use one of {', '.join(MILESTONES)}")
        if not name.isidentifier():
            raise InvalidInput(f"window name {name!r} is not an identifier", field="windows", fix="use letters, digits, _")
        bind[f"w{i}"] = float(seconds)
        extra.append(f"count(*) FILTER (WHERE e.{column} IS NOT NULL AND "
                     f"e.{column} <= e.reported_at + make_interval(secs => :w{i})) AS done_{name}")
        if as_of is not None:
            extra.append(f"count(*) FILTER (WHERE e.reported_at + make_interval(secs => :w{i}) <= :as_of) AS due_{name}")
        else:
            extra.append(f"count(*) AS due_{name}")
        names.append(name)
    if as_of is not None:
        if as_of.tzinfo is None:
            raise InvalidInput(f"as_of {as_of} has no time zone", field="as_of", fix="pass an aware datetime")
        bind["as_of"] = as_of
    sel = ", ".join(["count(*) AS events", *extra])
    q = (f"SELECT e.{code_col} AS code, date_trunc('month', e.reported_at AT TIME ZONE :tz) AS month, "
         f"e.category, {sel} FROM events e{_sql_where(conds)} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    cols = ["code", "month", "category", "events"] + [f"{p}_{n}" for n in names for p in ("done", "due")]
    out = pd.DataFrame(conn.execute(text(q), bind).all(), columns=cols)
    out["month"] = pd.to_datetime(out["month"])
    for c in cols[3:]:
        out[c] = out[c].astype("int64")
    return out


def grid_registry(conn: Connection, flt: AreaFilter) -> gpd.GeoDataFrame:
    """Current grids (those of the area, or touching the bbox) with buildings, households, residents and
    grid workers counted on the server."""
    bind: dict = {}
    conds = ["g.level = 'grid'", "g.valid_to IS NULL"]
    if flt.bbox is not None:
        conds.append(_bbox_cond("g", flt.bbox, bind))
    if flt.area is not None:
        if not area_exists(conn, flt.area):
            raise NotFound(f"no area with code {flt.area!r}", field="area", fix="list areas with db.layer('areas')")
        bind["area_code"] = flt.area
        conds.append("(g.code = :area_code OR g.parent_code = :area_code OR g.parent_code IN "
                     "(SELECT c.code FROM areas c WHERE c.parent_code = :area_code AND c.valid_to IS NULL))")
    q = f"""
        WITH g AS (SELECT g.code, g.name, g.name_zh, g.parent_code, g.population, g.geom FROM areas g{_sql_where(conds)}),
        b AS (SELECT b.grid_code, count(*) AS buildings,
                     sum((SELECT count(*) FROM households h WHERE h.building_id = b.id)) AS households,
                     sum((SELECT count(*) FROM residents r WHERE r.building_id = b.id)) AS residents
              FROM buildings b WHERE b.grid_code IN (SELECT code FROM g) GROUP BY b.grid_code),
        s AS (SELECT grid_code, count(*) AS workers FROM grid_staff WHERE grid_code IN (SELECT code FROM g)
              GROUP BY grid_code)
        SELECT g.code, g.name, g.name_zh, g.parent_code AS community_code, g.population,
               coalesce(b.buildings, 0) AS buildings, coalesce(b.households, 0) AS households,
               coalesce(b.residents, 0) AS residents, coalesce(s.workers, 0) AS workers,
               ST_AsBinary(g.geom) AS geom
        FROM g LEFT JOIN b ON b.grid_code = g.code LEFT JOIN s ON s.grid_code = g.code ORDER BY g.code"""
    out = gpd.read_postgis(text(q), conn, geom_col="geom", params=bind, crs="EPSG:4326")  # type: ignore[call-overload]  # stubs: sql is str only; geopandas takes a TextClause
    for c in ("buildings", "households", "residents", "workers"):
        out[c] = out[c].astype("int64")
    return out


def area_population(conn: Connection, flt: AreaFilter, level: str) -> pd.DataFrame:
    """Current areas of one level inside the area filter: code, name, parent code, population."""
    bind: dict = {"level": level}
    conds = ["t.level = :level", "t.valid_to IS NULL", *_where(conn, "t", flt, bind, polygon=True)]
    q = ("SELECT t.code, t.name, t.name_zh, t.parent_code, t.population "
         f"FROM areas t{_sql_where(conds)} ORDER BY t.code")
    return pd.DataFrame(conn.execute(text(q), bind).all(), columns=["code", "name", "name_zh", "parent_code",
                                                                    "population"])
