"""SQL for the command-centre dashboard: vector tiles of buildings, per-viewport reads, drill-down, figures.

Every function runs on the caller's psycopg connection (and transaction) and returns plain rows,
DataFrames or bytes; geometries leave as WKB (EPSG:4326) or, for tiles, as Mapbox Vector Tiles.
Bounding boxes are ``(min_lon, min_lat, max_lon, max_lat)``; every spatial filter uses the GiST indexes.

``street`` confines a read to one area (an operator's screen): a street, or any area code of the levels of
command — a district (its streets) or a community (its grids) — through :mod:`gridmap.storage.scopes`: grids
and buildings by their community, teams by their home grid, events and routes by the event's street (or
community), fire equipment by the area's current boundary. ``None`` reads everywhere. The filter is in the
SQL: rows outside the area never leave PostGIS.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import psycopg

from gridmap.storage import scopes
from gridmap.storage._rows import column_names, one

OPEN_STATUSES = ("reported", "dispatched", "accepted", "on_site")
ACTIVE_ASSIGNMENT_STATUSES = ("offered", "accepted")

_ENVELOPE = "ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4326)"


#: The current communities / grids / polygons of area %(street)s (NULL: no confinement, the caller tests that first).
_AREA = "%(street)s"
_STREET_COMMUNITIES = scopes.communities_of(_AREA)
_STREET_GRIDS = scopes.grids_of(_AREA)
_STREET_SHAPE = scopes.shapes_of(_AREA)


def _in_street(column: str, what: str = "communities") -> str:
    """``column`` lies in street %(street)s (or no street is given)."""
    sub = _STREET_COMMUNITIES if what == "communities" else _STREET_GRIDS
    return f"(%(street)s::text IS NULL OR {column} IN ({sub}))"


def _bbox(bbox: tuple[float, float, float, float] | None) -> dict:
    if bbox is None:
        return {"minx": -180.0, "miny": -90.0, "maxx": 180.0, "maxy": 90.0}
    minx, miny, maxx, maxy = bbox
    return {"minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy}


def _frame(cur: psycopg.Cursor, rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=column_names(cur))


# -- buildings as tiles -----------------------------------------------------------------------------------
def building_tile(conn: psycopg.Connection, z: int, x: int, y: int, street: str | None = None) -> bytes:
    """GeoJSON (a FeatureCollection, serialised by PostGIS) of the buildings of web-mercator tile z/x/y.

    A building belongs to exactly one tile, the one its point-on-surface falls in (half-open bounds), and
    is never clipped. Properties: ``code``, ``address``, ``floors``, ``height`` (metres; from ``height_m``
    or 3 m a floor), ``use``, ``residents`` and ``businesses`` (counts: no personal data). With ``street``,
    only the buildings of that street's communities.
    """
    sql = """
    WITH box AS (SELECT ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326) AS g),
    lim AS (SELECT g, ST_XMin(g) AS x0, ST_YMin(g) AS y0, ST_XMax(g) AS x1, ST_YMax(g) AS y1 FROM box),
    b AS (
        SELECT b.id, b.code, b.address, b.floors, COALESCE(b.height_m, b.floors * 3.0) AS height, b.use, b.geom,
               ST_PointOnSurface(b.geom) AS pos
        FROM buildings b, lim WHERE b.geom && lim.g AND {in_street}
    ),
    mine AS (SELECT b.* FROM b, lim WHERE ST_X(b.pos) >= lim.x0 AND ST_X(b.pos) < lim.x1
                                      AND ST_Y(b.pos) >= lim.y0 AND ST_Y(b.pos) < lim.y1),
    r AS (SELECT building_id, count(*) AS n FROM residents WHERE building_id IN (SELECT id FROM mine) GROUP BY 1),
    s AS (SELECT building_id, count(*) AS n FROM businesses WHERE building_id IN (SELECT id FROM mine) GROUP BY 1),
    q AS (
        SELECT m.code, m.address, m.floors, round(m.height::numeric, 1)::float8 AS height, m.use,
               COALESCE(r.n, 0)::int AS residents, COALESCE(s.n, 0)::int AS businesses, m.geom
        FROM mine m LEFT JOIN r ON r.building_id = m.id LEFT JOIN s ON s.building_id = m.id ORDER BY m.id
    )
    SELECT '{"type":"FeatureCollection","features":[' || COALESCE(string_agg(ST_AsGeoJSON(q.*, 'geom', 6), ','), '')
           || ']}' FROM q
    """.replace("{in_street}", _in_street("b.community_code"))
    row = one(conn.execute(sql, {"z": z, "x": x, "y": y, "street": street}))
    return row[0].encode()


def data_version(conn: psycopg.Connection) -> tuple:
    """A cheap fingerprint of the static layers (buildings, residents, businesses): it changes on a load."""
    return one(conn.execute(
        "SELECT (SELECT COALESCE(max(id), 0) FROM load_batches), "
        "(SELECT COALESCE(max(updated_at), 'epoch') FROM dataset_info), "
        "(SELECT COALESCE(max(id), 0) FROM buildings)"
    ))


def extent(conn: psycopg.Connection, area: str | None = None) -> tuple[float, float, float, float] | None:
    """Bounding box of an area's current boundary, or of the buildings when no area is given."""
    if area is None:
        row = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT COALESCE(ST_Extent(geom), (SELECT ST_Extent(geom) FROM areas WHERE level = 'street' "
            "AND valid_to IS NULL)) AS e FROM buildings) s").fetchone()
    else:  # the area's polygons: a district's streets (not the whole district), a street, a community
        row = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM "
            f"({_STREET_SHAPE}) a) s", {"street": area}).fetchone()
    return None if row is None or row[0] is None else (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def main_street(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL "
                       "ORDER BY population DESC NULLS LAST, code LIMIT 1").fetchone()
    return row[0] if row else None


# -- areas -------------------------------------------------------------------------------------------------
def boundaries(conn: psycopg.Connection, street: str | None) -> pd.DataFrame:
    """The street, its communities and the district(s) that contain it (current boundaries), as WKB."""
    cur = conn.execute(
        """
        WITH st AS (SELECT code, parent_code, geom FROM areas
                    WHERE level = 'street' AND valid_to IS NULL AND (%(street)s::text IS NULL OR code IN ({streets})
                          OR code = (SELECT parent_code FROM areas WHERE code = %(street)s AND level = 'community'
                                     AND valid_to IS NULL)))
        SELECT a.code, a.level, a.name, a.name_zh, a.parent_code, ST_AsBinary(a.geom) AS wkb
        FROM areas a
        WHERE a.valid_to IS NULL AND (
              (a.level = 'street' AND a.code IN (SELECT code FROM st))
           OR (a.level = 'community' AND a.parent_code IN (SELECT code FROM st)
               AND (%(street)s::text IS NULL OR a.code IN ({communities})))
           OR (a.level = 'district' AND (a.code IN (SELECT parent_code FROM st)
                OR EXISTS (SELECT 1 FROM st WHERE ST_Intersects(st.geom, a.geom)
                           AND ST_Area(ST_Intersection(st.geom, a.geom)) > 0.2 * ST_Area(st.geom)))))
        ORDER BY CASE a.level WHEN 'district' THEN 0 WHEN 'street' THEN 1 ELSE 2 END, a.code"""
        .replace("{streets}", scopes.streets_of(_AREA)).replace("{communities}", _STREET_COMMUNITIES),
        {"street": street})
    return _frame(cur, cur.fetchall())


def _grids_cte() -> str:
    return """
        WITH g AS (
            SELECT a.code, a.name, a.name_zh, a.parent_code, a.geom FROM areas a
            WHERE a.level = 'grid' AND a.valid_to IS NULL
              AND (%(street)s::text IS NULL OR a.parent_code IN (""" + _STREET_COMMUNITIES + """))
        )"""


def grid_shapes(conn: psycopg.Connection, street: str | None) -> pd.DataFrame:
    """The current grids of the street with what changes only on a load: population and key places
    without a smart fire alarm (``key_places_unprotected``)."""
    cur = conn.execute(
        _grids_cte() + """,
        pop AS (SELECT b.grid_code, count(r.id) AS n FROM buildings b JOIN residents r ON r.building_id = b.id
                WHERE b.grid_code IN (SELECT code FROM g) GROUP BY 1),
        kp AS (SELECT b.grid_code, count(*) AS n FROM businesses z JOIN buildings b ON b.id = z.building_id
               WHERE z.is_key_place AND NOT z.has_smart_fire_alarm AND b.grid_code IN (SELECT code FROM g)
               GROUP BY 1)
        SELECT g.code, g.name, g.name_zh, g.parent_code AS community_code,
               COALESCE(pop.n, 0)::int AS residents, COALESCE(kp.n, 0)::int AS key_places_unprotected,
               ST_AsBinary(g.geom) AS wkb
        FROM g LEFT JOIN pop ON pop.grid_code = g.code LEFT JOIN kp ON kp.grid_code = g.code
        ORDER BY g.code""",
        {"street": street})
    return _frame(cur, cur.fetchall())


def grid_events(conn: psycopg.Connection, *, now: dt.datetime, since: dt.datetime,
                street: str | None = None) -> pd.DataFrame:
    """Per grid code: open events, and ``recent_weighted``, the summed severity (1–4) of events reported in
    [since, now). Every grid with such events (of ``street`` if given); the caller keeps those it shows."""
    cur = conn.execute(
        f"""SELECT grid_code AS code,
                   count(*) FILTER (WHERE status IN {OPEN_STATUSES})::int AS open_events,
                   COALESCE(sum(severity) FILTER (WHERE reported_at >= %(since)s), 0)::int AS recent_weighted
            FROM events WHERE grid_code IS NOT NULL AND reported_at <= %(now)s
              AND (status IN {OPEN_STATUSES} OR reported_at >= %(since)s)
              AND (%(street)s::text IS NULL OR {scopes.events("", _AREA)})
            GROUP BY 1""",
        {"now": now, "since": since, "street": street})
    return _frame(cur, cur.fetchall())


# -- per-viewport point layers ------------------------------------------------------------------------------
def equipment(conn: psycopg.Connection, bbox: tuple[float, float, float, float] | None, *, limit: int, street: str | None = None) -> pd.DataFrame:
    """Fire equipment in the bbox (and inside the current boundary of ``street``, if given)."""
    cur = conn.execute(
        f"""SELECT f.id, f.code, f.kind, f.status, f.name, f.last_inspected, ST_X(f.geom) AS lon, ST_Y(f.geom) AS lat
            FROM fire_equipment f WHERE f.geom && {_ENVELOPE}
              AND (%(street)s::text IS NULL OR EXISTS (SELECT 1 FROM ({_STREET_SHAPE}) s
                                                       WHERE ST_Intersects(s.geom, f.geom)))
            ORDER BY f.id LIMIT %(limit)s""",
        _bbox(bbox) | {"limit": limit, "street": street})
    return _frame(cur, cur.fetchall())


def teams(conn: psycopg.Connection, bbox: tuple[float, float, float, float] | None, *, limit: int, street: str | None = None) -> pd.DataFrame:
    """Teams with a known position in the bbox, with their active assignment (if any); with ``street``, only
    the teams whose home grid is in that street (where they are now does not matter)."""
    cur = conn.execute(
        f"""SELECT t.id, t.code, t.name, t.kind, t.status, t.position_at, t.home_grid_code,
                   ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat, a.id AS assignment_id, a.event_id,
                   a.status AS assignment_status
            FROM teams t
            LEFT JOIN assignments a ON a.team_id = t.id AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES}
            WHERE t.geom IS NOT NULL AND t.geom && {_ENVELOPE} AND {_in_street("t.home_grid_code", "grids")}
            ORDER BY t.id LIMIT %(limit)s""",
        _bbox(bbox) | {"limit": limit, "street": street})
    return _frame(cur, cur.fetchall())


def events(conn: psycopg.Connection, bbox: tuple[float, float, float, float] | None, *, now: dt.datetime, resolved_since: dt.datetime,
           limit: int, street: str | None = None) -> pd.DataFrame:
    """Open events (and those resolved since ``resolved_since``, not yet closed) reported by ``now`` (in
    ``street``, if given). No reporter and no free text: the title only."""
    cur = conn.execute(
        f"""SELECT e.id, e.code, e.channel, e.category, c.name_zh AS category_zh, e.severity, e.status, e.title,
                   e.reported_at, e.dispatched_at, e.on_site_at, e.grid_code, t.code AS team,
                   ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat
            FROM events e LEFT JOIN teams t ON t.id = e.team_id
            LEFT JOIN event_categories c ON c.code = e.category
            WHERE e.geom && {_ENVELOPE} AND e.reported_at <= %(now)s
              AND (e.status IN {OPEN_STATUSES} OR (e.status = 'resolved' AND e.resolved_at >= %(since)s))
              AND (%(street)s::text IS NULL OR {scopes.events("e.", _AREA)})
            ORDER BY e.reported_at DESC, e.id DESC LIMIT %(limit)s""",
        _bbox(bbox) | {"now": now, "since": resolved_since, "limit": limit, "street": street})
    return _frame(cur, cur.fetchall())


def routes(conn: psycopg.Connection, bbox: tuple[float, float, float, float] | None, *, limit: int, street: str | None = None) -> pd.DataFrame:
    """Routes of the active dispatches (offered or accepted assignments) that touch the bbox (to events of
    ``street``, if given)."""
    cur = conn.execute(
        f"""SELECT a.id AS assignment_id, a.event_id, t.code AS team, a.status, a.eta_s, a.distance_m,
                   a.offered_at, e.severity, ST_AsBinary(a.route) AS wkb
            FROM assignments a JOIN teams t ON t.id = a.team_id JOIN events e ON e.id = a.event_id
            WHERE a.status IN {ACTIVE_ASSIGNMENT_STATUSES} AND a.route IS NOT NULL AND a.route && {_ENVELOPE}
              AND (%(street)s::text IS NULL OR {scopes.events("e.", _AREA)})
            ORDER BY a.id LIMIT %(limit)s""",
        _bbox(bbox) | {"limit": limit, "street": street})
    return _frame(cur, cur.fetchall())


# -- drill-down --------------------------------------------------------------------------------------------
def building(conn: psycopg.Connection, building_id: int) -> dict | None:
    """One building: address, floors, use, resident and household COUNTS, a point on it (no personal data)."""
    cur = conn.execute(
        """SELECT b.id, b.code, b.name, b.address, b.floors, COALESCE(b.height_m, b.floors * 3.0) AS height,
                  b.use, b.units, b.year_built, b.grid_code, b.community_code,
                  (SELECT count(*) FROM residents r WHERE r.building_id = b.id)::int AS residents,
                  (SELECT count(*) FROM households h WHERE h.building_id = b.id)::int AS households,
                  ST_X(ST_PointOnSurface(b.geom)) AS lon, ST_Y(ST_PointOnSurface(b.geom)) AS lat
           FROM buildings b WHERE b.id = %s""", (building_id,))
    row = cur.fetchone()
    return None if row is None else dict(zip(column_names(cur), row, strict=True))


def building_id_by_code(conn: psycopg.Connection, code: str, street: str | None = None) -> int | None:
    row = conn.execute(f"SELECT id FROM buildings WHERE code = %(code)s AND {_in_street('community_code')}",
                       {"code": code, "street": street}).fetchone()
    return row[0] if row else None


def businesses_in(conn: psycopg.Connection, building_id: int, *, limit: int) -> pd.DataFrame:
    cur = conn.execute(
        """SELECT code, name, kind, is_key_place, has_smart_fire_alarm, employees FROM businesses
           WHERE building_id = %s ORDER BY is_key_place DESC, name LIMIT %s""", (building_id, limit))
    return _frame(cur, cur.fetchall())


def event(conn: psycopg.Connection, event_id: int, street: str | None = None) -> dict | None:
    """One event for the map's drill-down. Never the reporter (``event_reporters``) nor the free-text
    description, where callers write names and phone numbers: the title only."""
    cur = conn.execute(
        f"""SELECT e.id, e.code, e.channel, e.category, c.name_zh AS category_zh, e.severity, e.status, e.title,
                  e.reported_at, e.dispatched_at, e.accepted_at, e.on_site_at, e.resolved_at,
                  e.closed_at, e.grid_code, e.community_code, t.code AS team, t.name AS team_name,
                  ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat
           FROM events e LEFT JOIN teams t ON t.id = e.team_id LEFT JOIN event_categories c ON c.code = e.category
           WHERE e.id = %(id)s AND (%(street)s::text IS NULL OR {scopes.events("e.", _AREA)})""",
        {"id": event_id, "street": street})
    row = cur.fetchone()
    return None if row is None else dict(zip(column_names(cur), row, strict=True))


def assignments_of_event(conn: psycopg.Connection, event_id: int) -> pd.DataFrame:
    cur = conn.execute(
        """SELECT a.id, t.code AS team, t.name AS team_name, a.status, a.rank, a.eta_s, a.distance_m, a.method,
                  a.offered_at, a.respond_by, a.responded_at, ST_AsBinary(a.route) AS wkb
           FROM assignments a JOIN teams t ON t.id = a.team_id WHERE a.event_id = %s ORDER BY a.offered_at, a.id""",
        (event_id,))
    return _frame(cur, cur.fetchall())


def team(conn: psycopg.Connection, code: str, street: str | None = None) -> dict | None:
    """One team: its members as a COUNT (never who they are)."""
    cur = conn.execute(
        """SELECT t.id, t.code, t.name, t.kind, t.status, t.skills, t.home_grid_code, t.position_at,
                  ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat,
                  (SELECT count(*) FROM team_members m WHERE m.team_id = t.id)::int AS members
           FROM teams t WHERE t.code = %(code)s AND """ + _in_street("t.home_grid_code", "grids"),
        {"code": code, "street": street})
    row = cur.fetchone()
    return None if row is None else dict(zip(column_names(cur), row, strict=True))


def team_assignment(conn: psycopg.Connection, team_id: int, street: str | None = None) -> dict | None:
    """The team's active assignment with its event, else the event it is on site at (status on_site); with
    ``street``, only an event of that street."""
    cur = conn.execute(
        f"""SELECT a.id AS assignment_id, a.status AS assignment_status, a.eta_s, a.distance_m, a.offered_at,
                   a.respond_by, e.id AS event_id, e.code AS event_code, e.category, e.severity, e.status AS event_status,
                   e.title, e.reported_at, ST_AsBinary(a.route) AS wkb
            FROM assignments a JOIN events e ON e.id = a.event_id
            WHERE a.team_id = %(t)s AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES} AND {_street_events(street, False, "e.")}
            UNION ALL
            SELECT NULL, NULL, NULL, NULL, NULL, NULL, e.id, e.code, e.category, e.severity, e.status, e.title,
                   e.reported_at, NULL
            FROM events e WHERE e.team_id = %(t)s AND e.status IN {OPEN_STATUSES} AND {_street_events(street, False, "e.")}
            ORDER BY 1 NULLS LAST LIMIT 1""", {"t": team_id, "street": street})
    row = cur.fetchone()
    return None if row is None else dict(zip(column_names(cur), row, strict=True))


# -- the side panel ------------------------------------------------------------------------------------------
def _street_events(street: str | None, unplaced: bool, alias: str = "") -> str:
    """Events of ``street`` (and, when ``unplaced``, those placed in no street, e.g. outside every grid)."""
    also = f" OR {alias}street_code IS NULL" if unplaced else ""
    return f"(%(street)s::text IS NULL OR {scopes.events(alias, _AREA)}{also})"


def open_events(conn: psycopg.Connection, street: str | None, *, now: dt.datetime, limit: int,
                unplaced: bool = True) -> pd.DataFrame:
    """Open events of ``street`` (all streets if None), oldest first; ``unplaced``: with those of no street."""
    cur = conn.execute(
        f"""SELECT e.id, e.code, e.category, c.name_zh AS category_zh, e.severity, e.status, e.title,
                   e.reported_at, e.dispatched_at, e.on_site_at, e.grid_code, t.code AS team
            FROM events e LEFT JOIN teams t ON t.id = e.team_id LEFT JOIN event_categories c ON c.code = e.category
            WHERE e.status IN {OPEN_STATUSES} AND e.reported_at <= %(now)s AND {_street_events(street, unplaced, "e.")}
            ORDER BY e.reported_at, e.id LIMIT %(limit)s""",
        {"now": now, "street": street, "limit": limit})
    return _frame(cur, cur.fetchall())


def figures(conn: psycopg.Connection, street: str | None, *, now: dt.datetime, day_start: dt.datetime,
            period_start: dt.datetime, unplaced: bool = True) -> dict:
    """Open events, response times (reported → on site) today, and closure in the period, in one pass."""
    cur = conn.execute(
        f"""SELECT
              count(*) FILTER (WHERE status IN {OPEN_STATUSES}) AS open_events,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM on_site_at - reported_at))
                  FILTER (WHERE reported_at >= %(day)s AND on_site_at IS NOT NULL AND on_site_at <= %(now)s)
                  AS median_response_s_today,
              count(*) FILTER (WHERE reported_at >= %(day)s) AS reported_today,
              count(*) FILTER (WHERE reported_at >= %(period)s) AS reported_period,
              count(*) FILTER (WHERE reported_at >= %(period)s AND status = 'closed') AS closed_period
            FROM events
            WHERE reported_at <= %(now)s AND (status IN {OPEN_STATUSES} OR reported_at >= %(period)s)
              AND {_street_events(street, unplaced)}""",
        {"now": now, "day": day_start, "period": period_start, "street": street})
    row = one(cur)
    return dict(zip(column_names(cur), row, strict=True))


def latest_activity(conn: psycopg.Connection) -> dt.datetime | None:
    """The latest time anything happened (an event reported or a team position): the sample's 'now'."""
    return one(conn.execute("SELECT GREATEST((SELECT max(reported_at) FROM events), "
                            "(SELECT max(position_at) FROM teams))"))[0]


def equipment_by_codes(conn: psycopg.Connection, codes: list[str], street: str | None = None) -> dict[str, dict]:
    """Kind, name and status of the given equipment (of those inside ``street``, if given)."""
    cur = conn.execute(
        f"""SELECT f.code, f.kind, f.name, f.status FROM fire_equipment f WHERE f.code = ANY(%(codes)s)
              AND (%(street)s::text IS NULL OR EXISTS (SELECT 1 FROM ({_STREET_SHAPE}) s
                                                       WHERE ST_Intersects(s.geom, f.geom)))""",
        {"codes": codes, "street": street})
    return {r[0]: {"kind": r[1], "name": r[2], "status": r[3]} for r in cur.fetchall()}


def business_count(conn: psycopg.Connection, building_id: int) -> int:
    return one(conn.execute("SELECT count(*) FROM businesses WHERE building_id = %s", (building_id,)))[0]


def building_counts(conn: psycopg.Connection, ids: list[int]) -> pd.DataFrame:
    """Residents and businesses per building (counts only)."""
    cur = conn.execute(
        """SELECT b.id, (SELECT count(*) FROM residents r WHERE r.building_id = b.id)::int AS residents,
                  (SELECT count(*) FROM businesses z WHERE z.building_id = b.id)::int AS businesses
           FROM unnest(%s::bigint[]) AS b(id)""", (ids,))
    return _frame(cur, cur.fetchall())
