"""SQL of the places that carry a QR code (余安码): a community's businesses and buildings."""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, text


def community(conn: Connection, code: str) -> RowMapping | None:
    return conn.execute(text("SELECT code, name, name_zh FROM areas WHERE code = :c AND level = 'community' "
                             "AND valid_to IS NULL"), {"c": code}).mappings().first()


def in_community(conn: Connection, code: str, limit: int) -> list[RowMapping]:
    """Businesses, then buildings, of a community, by code: (kind, code, name, address)."""
    return list(conn.execute(text("""
        SELECT * FROM (
            SELECT 'business' AS kind, s.code, s.name, s.address, 0 AS ord FROM businesses s
            JOIN buildings b ON b.id = s.building_id WHERE b.community_code = :c
            UNION ALL
            SELECT 'building', b.code, b.name, b.address, 1 FROM buildings b WHERE b.community_code = :c) p
        ORDER BY ord, code LIMIT :n"""), {"c": code, "n": limit}).mappings())
