"""SQL for access: users, their sessions (one row per login), the failed-login counters of the throttle, and
the NOTIFY that tells every API process at once that a session or a user changed.

Every function runs on the caller's SQLAlchemy connection, inside the caller's transaction; a NOTIFY is
delivered when that transaction commits (and never if it rolls back).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy import Connection, RowMapping, text

#: The channel the API processes LISTEN on (gridmap.services.sessions).
CHANNEL = "gridmap_sessions"
USER_COLUMNS = ("id, username, password_hash, role, street_code, member_code, district_code, community_code, unit_code, "
                "active, token_version, created_at")


# -- users --------------------------------------------------------------------------------------------------
def insert_user(conn: Connection, *, username: str, password_hash: str, role: str, street_code: str | None,
                member_code: str | None, district_code: str | None = None, community_code: str | None = None,
                unit_code: str | None = None) -> int | None:
    return conn.execute(text(
        "INSERT INTO users (username, password_hash, role, street_code, member_code, district_code, community_code, "
        "unit_code) VALUES (:u, :h, :r, :s, :m, :d, :c, :un) ON CONFLICT (username) DO NOTHING RETURNING id"),
        {"u": username, "h": password_hash, "r": role, "s": street_code, "m": member_code, "d": district_code,
         "c": community_code, "un": unit_code}).scalar_one_or_none()


def user(conn: Connection, username: str, *, lock: bool = False) -> RowMapping | None:
    return conn.execute(text(f"SELECT {USER_COLUMNS} FROM users WHERE username = :u" + (" FOR UPDATE" if lock else "")),
                        {"u": username}).mappings().first()


def user_by_id(conn: Connection, user_id: int, *, lock: bool = False) -> RowMapping | None:
    return conn.execute(text(f"SELECT {USER_COLUMNS} FROM users WHERE id = :id" + (" FOR UPDATE" if lock else "")),
                        {"id": user_id}).mappings().first()


def users(conn: Connection, now: dt.datetime) -> list[RowMapping]:
    """Every user, with how many sessions are open now and when one was last used."""
    return list(conn.execute(text("""
        SELECT u.id, u.username, u.role, u.street_code, u.member_code, u.district_code, u.community_code, u.unit_code,
               u.active, u.created_at,
               count(s.id) FILTER (WHERE s.revoked_at IS NULL AND s.expires_at > :now) AS open_sessions,
               max(s.last_seen_at) AS last_seen_at
        FROM users u LEFT JOIN sessions s ON s.user_id = u.id
        GROUP BY u.id ORDER BY u.username"""), {"now": now}).mappings())


def set_password_hash(conn: Connection, user_id: int, password_hash: str) -> None:
    """Store a new hash of the same password (a rehash with today's parameters): no session ends."""
    conn.execute(text("UPDATE users SET password_hash = :h WHERE id = :id"), {"h": password_hash, "id": user_id})


def update_user(conn: Connection, user_id: int, values: dict) -> None:
    """Set some of active, role, street_code, member_code, district_code, community_code, unit_code,
    password_hash (the caller bumps the version)."""
    allowed = {"active", "role", "street_code", "member_code", "district_code", "community_code", "unit_code",
               "password_hash"}
    cols = [k for k in values if k in allowed]
    if len(cols) != len(values):
        raise ValueError(f"not user columns: {sorted(set(values) - allowed)}")
    if cols:
        conn.execute(text(f"UPDATE users SET {', '.join(f'{c} = :{c}' for c in cols)} WHERE id = :id"),
                     {**values, "id": user_id})


def bump_token_version(conn: Connection, user_id: int) -> int:
    """End every token of the user: the version they carry no longer matches. Returns the new version."""
    return conn.execute(text("UPDATE users SET token_version = token_version + 1 WHERE id = :id "
                             "RETURNING token_version"), {"id": user_id}).scalar_one()


def delete_user(conn: Connection, user_id: int) -> None:
    """Delete a user; their sessions go with them (ON DELETE CASCADE). ``pii_access_log`` names readers by
    username (text, no foreign key): what they read stays logged under their name."""
    conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": user_id})


def active_admins(conn: Connection) -> int:
    return conn.execute(text("SELECT count(*) FROM users WHERE role = 'admin' AND active")).scalar_one()


def demo_members(conn: Connection) -> RowMapping | None:
    """A street, a grid worker who staffs a grid, and a volunteer with a team (for the demo users); the second
    street, the district and a community of the first, and the units of the first street's mall ladder and a
    mediation room."""
    return conn.execute(text("""
        SELECT (SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL ORDER BY code LIMIT 1) AS street,
               (SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL ORDER BY code OFFSET 1 LIMIT 1)
                 AS street_b,
               (SELECT parent_code FROM areas WHERE level = 'street' AND valid_to IS NULL ORDER BY code LIMIT 1)
                 AS district,
               (SELECT c.code FROM areas c WHERE c.level = 'community' AND c.valid_to IS NULL AND c.parent_code =
                  (SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL ORDER BY code LIMIT 1)
                ORDER BY c.code LIMIT 1) AS community,
               ARRAY(SELECT u.code FROM units u WHERE u.active AND u.kind IN ('mall_merchants', 'mall_front_desk',
                       'mall_floor_management') ORDER BY u.code) AS mall_units,
               (SELECT u.code FROM units u JOIN areas s ON s.code = u.area_code AND s.valid_to IS NULL
                WHERE u.active AND u.kind = 'consumer_rights_station' ORDER BY u.code LIMIT 1) AS consumer_rights,
               (SELECT u.code FROM units u WHERE u.active AND u.kind = 'community_mediation' ORDER BY u.code LIMIT 1)
                 AS mediation_room,
               (SELECT m.code FROM grid_staff s JOIN team_members m ON m.id = s.member_id
                WHERE s.role = 'primary' AND m.team_id IS NOT NULL ORDER BY s.grid_code LIMIT 1) AS grid_worker,
               (SELECT m.code FROM team_members m JOIN teams t ON t.id = m.team_id
                WHERE m.role IN ('volunteer', 'party_volunteer') ORDER BY m.code LIMIT 1) AS volunteer""")).mappings().first()


# -- sessions -----------------------------------------------------------------------------------------------
def insert_session(conn: Connection, *, sid: uuid.UUID, user_id: int, kind: str, token_version: int,
                   now: dt.datetime, expires_at: dt.datetime, user_agent: str | None,
                   client_address: str | None) -> None:
    conn.execute(text(
        "INSERT INTO sessions (id, user_id, kind, token_version, created_at, expires_at, last_seen_at, user_agent, "
        "client_address) VALUES (:id, :u, :k, :v, :now, :exp, :now, :ua, :addr)"),
        {"id": sid, "u": user_id, "k": kind, "v": token_version, "now": now, "exp": expires_at, "ua": user_agent,
         "addr": client_address})


def session_state(conn: Connection, sid: uuid.UUID) -> RowMapping | None:
    """A session and its user as they are now (None: no such session, or its user was deleted)."""
    return conn.execute(text("""
        SELECT s.id AS session_id, s.user_id, s.kind, s.expires_at, s.last_seen_at, s.revoked_at, s.revoked_reason,
               u.username, u.role, u.street_code, u.member_code, u.district_code, u.community_code, u.unit_code,
               u.active, u.token_version
        FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = :sid"""), {"sid": sid}).mappings().first()


def touch_session(conn: Connection, sid: uuid.UUID, now: dt.datetime, every_s: int) -> None:
    """Record use, at most once per ``every_s`` (a session read on every request is written once a minute)."""
    conn.execute(text("UPDATE sessions SET last_seen_at = :now WHERE id = :sid "
                      "AND last_seen_at < :now - make_interval(secs => :every)"),
                 {"sid": sid, "now": now, "every": every_s})


def revoke_session(conn: Connection, sid: uuid.UUID, now: dt.datetime, reason: str) -> bool:
    """End one session; False when it had ended already (or never was)."""
    done = conn.execute(text("UPDATE sessions SET revoked_at = :now, revoked_reason = :r "
                             "WHERE id = :sid AND revoked_at IS NULL RETURNING user_id"),
                        {"sid": sid, "now": now, "r": reason}).first()
    if done is not None:
        notify(conn, {"kind": "session", "sid": str(sid), "user_id": done[0]})
    return done is not None


def revoke_user_sessions(conn: Connection, user_id: int, now: dt.datetime, reason: str) -> int:
    """End every session of a user not ended already; returns how many."""
    n = conn.execute(text("UPDATE sessions SET revoked_at = :now, revoked_reason = :r "
                          "WHERE user_id = :u AND revoked_at IS NULL"),
                     {"u": user_id, "now": now, "r": reason}).rowcount
    notify(conn, {"kind": "user", "user_id": user_id})
    return n


def user_sessions(conn: Connection, user_id: int) -> list[RowMapping]:
    return list(conn.execute(text(
        "SELECT id, kind, created_at, expires_at, last_seen_at, user_agent, client_address, revoked_at, "
        "revoked_reason FROM sessions WHERE user_id = :u ORDER BY created_at DESC"), {"u": user_id}).mappings())


def purge_sessions(conn: Connection, before: dt.datetime) -> int:
    """Forget sessions that expired before ``before`` (kept until then as a record of who logged in when)."""
    return conn.execute(text("DELETE FROM sessions WHERE expires_at < :t"), {"t": before}).rowcount


def notify(conn: Connection, payload: dict) -> None:
    """Tell every API process (on commit) that a session or a user changed: their caches drop it at once."""
    conn.execute(text("SELECT pg_notify(:ch, :p)"), {"ch": CHANNEL, "p": json.dumps(payload)})


# -- the login throttle -------------------------------------------------------------------------------------
def throttle_locks(conn: Connection, keys: list[str], now: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """The locks still in force on any of ``keys``: (key, locked until)."""
    return [tuple(r) for r in conn.execute(text(
        "SELECT key, locked_until FROM login_throttle WHERE key = ANY(:k) AND locked_until > :now"),
        {"k": keys, "now": now})]


def add_failure(conn: Connection, key: str, now: dt.datetime, window_s: int) -> int:
    """Count one failed login against ``key`` (atomically: concurrent failures all count). Failures are
    forgotten once neither a failure nor a lock touched the key for ``window_s``. Returns the count."""
    return conn.execute(text("""
        INSERT INTO login_throttle AS t (key, failures, last_failure_at) VALUES (:k, 1, :now)
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN GREATEST(t.last_failure_at, COALESCE(t.locked_until, t.last_failure_at))
                                 < :now - make_interval(secs => :w) THEN 1 ELSE t.failures + 1 END,
            last_failure_at = :now
        RETURNING failures"""), {"k": key, "now": now, "w": window_s}).scalar_one()


def lock(conn: Connection, key: str, until: dt.datetime) -> None:
    conn.execute(text("UPDATE login_throttle SET locked_until = :t WHERE key = :k"), {"k": key, "t": until})


def clear_failures(conn: Connection, key: str) -> None:
    conn.execute(text("DELETE FROM login_throttle WHERE key = :k"), {"k": key})


def purge_throttle(conn: Connection, now: dt.datetime, window_s: int) -> int:
    """Drop the counters that have nothing left to say (no lock in force, nothing within the window)."""
    return conn.execute(text(
        "DELETE FROM login_throttle WHERE GREATEST(last_failure_at, COALESCE(locked_until, last_failure_at)) "
        "< :now - make_interval(secs => :w)"), {"now": now, "w": window_s}).rowcount
