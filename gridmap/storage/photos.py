"""SQL of ``event_photos`` (what a photo is, whose, of which event and action) and ``photo_blobs`` (the
re-encoded bytes and a thumbnail, keyed by the SHA-256 of the bytes: content-addressed, stored once)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, RowMapping, text

PHOTO_COLUMNS = ("p.id, p.event_id, p.assignment_id, p.sha256, p.media_type, p.width, p.height, p.bytes, "
                 "p.original_bytes, p.lon, p.lat, p.source, p.uploaded_by, p.uploader_role, p.uploaded_at, "
                 "p.action, p.attached_at")


def put_blob(conn: Connection, sha256: str, data: bytes, thumb: bytes) -> None:
    """Store the bytes once (a second photo with the same content points at the same row)."""
    conn.execute(text("INSERT INTO photo_blobs (sha256, data, thumb) VALUES (:h, :d, :t) ON CONFLICT DO NOTHING"),
                 {"h": sha256, "d": data, "t": thumb})


def insert(conn: Connection, *, event_id: int, assignment_id: int | None, sha256: str, media_type: str, width: int,
           height: int, size: int, original_size: int, lon: float | None, lat: float | None, source: str,
           uploaded_by: str, role: str | None, at: dt.datetime, action: str | None = None) -> RowMapping:
    return conn.execute(text(f"""
        INSERT INTO event_photos AS p (event_id, assignment_id, sha256, media_type, width, height, bytes, original_bytes,
                                       lon, lat, source, uploaded_by, uploader_role, uploaded_at, action, attached_at)
        VALUES (:e, :a, :h, :m, :w, :ht, :b, :ob, :lon, :lat, :src, :by, :role, :at, :action,
                CASE WHEN CAST(:action AS text) IS NULL THEN NULL ELSE CAST(:at AS timestamptz) END)
        RETURNING {PHOTO_COLUMNS}"""),
        {"e": event_id, "a": assignment_id, "h": sha256, "m": media_type, "w": width, "ht": height, "b": size,
         "ob": original_size, "lon": lon, "lat": lat, "src": source, "by": uploaded_by, "role": role, "at": at,
         "action": action}).mappings().one()


def pending(conn: Connection, assignment_id: int, *, lock: bool = False) -> list[RowMapping]:
    """Photos uploaded for an assignment and not yet attached to one of its actions, oldest first."""
    q = (f"SELECT {PHOTO_COLUMNS} FROM event_photos p WHERE p.assignment_id = :a AND p.attached_at IS NULL "
         "ORDER BY p.id")
    if lock:
        q += " FOR UPDATE"
    return list(conn.execute(text(q), {"a": assignment_id}).mappings())


def attach(conn: Connection, ids: Sequence[int], action: str, at: dt.datetime) -> None:
    conn.execute(text("UPDATE event_photos SET action = :act, attached_at = :at WHERE id = ANY(:ids)"),
                 {"act": action, "at": at, "ids": list(ids)})


def set_transition_detail(conn: Connection, detail_json: str) -> None:
    """Transaction-local: the next audit rows of this transaction take this detail (trigger of migration 0006)."""
    conn.execute(text("SELECT set_config('gridmap.detail', :d, true)"), {"d": detail_json})


def of_event(conn: Connection, event_id: int) -> list[RowMapping]:
    return list(conn.execute(text(f"SELECT {PHOTO_COLUMNS} FROM event_photos p WHERE p.event_id = :e ORDER BY p.id"),
                             {"e": event_id}).mappings())


def photo(conn: Connection, photo_id: int) -> RowMapping | None:
    """A photo with the street and community of its event (for the reader's scope)."""
    return conn.execute(text(f"SELECT {PHOTO_COLUMNS}, e.street_code, e.community_code FROM event_photos p "
                             "JOIN events e ON e.id = p.event_id WHERE p.id = :id"), {"id": photo_id}).mappings().first()


def blob(conn: Connection, sha256: str, *, thumb: bool = False) -> bytes | None:
    col = "thumb" if thumb else "data"
    row = conn.execute(text(f"SELECT {col} FROM photo_blobs WHERE sha256 = :h"), {"h": sha256}).first()
    return None if row is None else bytes(row[0])


def inside_street(conn: Connection, street_code: str | None, lon: float, lat: float) -> bool:
    """Whether the point lies inside the current polygon of the street (where a photo's location may be kept)."""
    if street_code is None:
        return False
    return bool(conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM areas WHERE code = :s AND level = 'street' AND valid_to IS NULL "
        "AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)))"),
        {"s": street_code, "lon": lon, "lat": lat}).scalar_one())
