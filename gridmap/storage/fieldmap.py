"""SQL of the field app's map and context: a street's roads and buildings as compact GeoJSON (coordinates
rounded to ~1 m, shapes simplified, one feature per two-way road), event categories, the street of a team."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, RowMapping, text


def street_of_grid(conn: Connection, grid_code: str | None) -> str | None:
    if grid_code is None:
        return None
    return conn.execute(text(
        "SELECT c.parent_code FROM areas g JOIN areas c ON c.code = g.parent_code AND c.valid_to IS NULL "
        "WHERE g.code = :g AND g.level = 'grid' AND g.valid_to IS NULL"), {"g": grid_code}).scalar()


def street_of_area(conn: Connection, area_code: str | None) -> str | None:
    """The street of an operator's area: the street itself, a community's street, or a district's first street
    (by code)."""
    if area_code is None:
        return None
    return conn.execute(text(
        "SELECT s.code FROM areas s WHERE s.level = 'street' AND s.valid_to IS NULL AND (s.code = :a "
        "OR s.parent_code = :a OR s.code = (SELECT c.parent_code FROM areas c WHERE c.code = :a "
        "AND c.level = 'community' AND c.valid_to IS NULL)) ORDER BY s.code LIMIT 1"), {"a": area_code}).scalar()


def streets(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL ORDER BY code"))
                .scalars())


def street_extent(conn: Connection, street_code: str) -> tuple[float, float, float, float] | None:
    row = conn.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e "
                            "FROM areas WHERE code = :s AND level = 'street' AND valid_to IS NULL) s"),
                       {"s": street_code}).first()
    if row is None or row[0] is None:
        return None
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def map_geojson(conn: Connection, street_code: str) -> str:
    """One FeatureCollection (text) of the street's roads (kind 'road', with highway class and name) and
    buildings (kind 'building'), clipped to the street's extent plus ~300 m, coordinates to 5 decimals."""
    return conn.execute(text("""
        WITH box AS (SELECT ST_Expand(ST_Extent(geom), 0.003) AS b FROM areas
                     WHERE code = :s AND level = 'street' AND valid_to IS NULL),
        roads AS (
            SELECT DISTINCT ON (LEAST(e.source, e.target), GREATEST(e.source, e.target), e.key)
                   e.name, e.highway, e.geom
            FROM road_edges e, box WHERE e.geom && box.b
            ORDER BY LEAST(e.source, e.target), GREATEST(e.source, e.target), e.key, e.id),
        feats AS (
            SELECT json_build_object('type', 'Feature', 'properties',
                       json_build_object('k', 'r', 'h', r.highway, 'n', r.name),
                       'geometry', ST_AsGeoJSON(ST_SimplifyPreserveTopology(r.geom, 0.00001), 5)::json) AS f
            FROM roads r
            UNION ALL
            SELECT json_build_object('type', 'Feature', 'properties', json_build_object('k', 'b'),
                       'geometry', ST_AsGeoJSON(ST_SimplifyPreserveTopology(ST_ExteriorRing(
                           ST_GeometryN(b.geom, 1)), 0.00001), 5)::json)
            FROM buildings b, box WHERE b.geom && box.b)
        SELECT json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(f), '[]'::json))::text
        FROM feats"""), {"s": street_code}).scalar_one()


def categories(conn: Connection) -> list[RowMapping]:
    return list(conn.execute(text("SELECT code, name, name_zh, default_severity FROM event_categories ORDER BY code"))
                .mappings())


def ladders(conn: Connection) -> list[RowMapping]:
    return list(conn.execute(text("SELECT category, rung, name, name_zh, time_limit_min FROM escalation_ladders "
                                  "ORDER BY category, rung")).mappings())


def team_row(conn: Connection, team_id: int) -> RowMapping | None:
    return conn.execute(text(
        "SELECT t.id, t.code, t.name, t.kind, t.status, t.home_grid_code, t.position_at, t.position_accuracy_m, "
        "ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat FROM teams t WHERE t.id = :t"), {"t": team_id}).mappings().first()


# -- offers the notifier chases ----------------------------------------------------------------------------
def unanswered_offers(conn: Connection, older_than: dt.datetime, limit: int = 100) -> list[RowMapping]:
    """Offers still open, made before ``older_than``, that no notifier was asked about yet."""
    return list(conn.execute(text("""
        SELECT a.id, a.event_id, a.team_id, t.code AS team_code, a.offered_at, a.respond_by, e.code AS event_code,
               e.category, e.severity
        FROM assignments a JOIN teams t ON t.id = a.team_id JOIN events e ON e.id = a.event_id
        WHERE a.status = 'offered' AND a.offered_at < :t
          AND NOT EXISTS (SELECT 1 FROM offer_notifications n WHERE n.assignment_id = a.id)
        ORDER BY a.offered_at LIMIT :n"""), {"t": older_than, "n": limit}).mappings())


def claim_notification(conn: Connection, assignment_id: int, channel: str, at: dt.datetime) -> bool:
    """Record that this offer is being chased (one process wins: the others see the row)."""
    return conn.execute(text(
        "INSERT INTO offer_notifications (assignment_id, channel, at) VALUES (:a, :c, :at) "
        "ON CONFLICT DO NOTHING RETURNING assignment_id"), {"a": assignment_id, "c": channel, "at": at}).first() \
        is not None


def set_notification_outcome(conn: Connection, assignment_id: int, outcome: str) -> None:
    conn.execute(text("UPDATE offer_notifications SET outcome = :o WHERE assignment_id = :a"),
                 {"a": assignment_id, "o": outcome})


def team_member_phones(conn: Connection, team_id: int) -> list[RowMapping]:
    """Who to call for a team's offer: its members' codes and phones (personal data: only for the notifier)."""
    return list(conn.execute(text("SELECT code, phone FROM team_members WHERE team_id = :t AND phone IS NOT NULL "
                                  "ORDER BY code"), {"t": team_id}).mappings())
