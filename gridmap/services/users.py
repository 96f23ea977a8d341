"""Managing users (admins, and the CLI): list, change (active, role, area — district, street or community —,
team member, unit), reset a password, end every session, delete.

Every change that alters what a user may do or how they prove who they are ends all of their sessions at
once, in the same transaction: the user's token version is bumped, their open sessions are revoked with the
reason, and every API process hears of it by NOTIFY (:func:`gridmap.services.auth.end_all_sessions`).
Deleting a user deletes their sessions (ON DELETE CASCADE); the personal-data access log keeps naming what
they read, by username. The last active admin can be neither deactivated, demoted nor deleted.

``actor`` is the calling Principal (an admin, checked here), or None for the command line (whoever can run
it can reach the database anyway). ``cache`` is the calling process's session cache: it forgets the user at
once (other processes hear the NOTIFY a moment later).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, RowMapping
from sqlalchemy.orm import Session

from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.services.auth import (
    TEAM_ROLES,
    Passwords,
    Principal,
    check_role_scope,
    check_scope_exists,
    end_all_sessions,
    scope_columns,
)
from gridmap.services.sessions import SessionCache
from gridmap.storage import users as users_sql

log = logging.getLogger(__name__)
CHANGEABLE = ("active", "role", "street_code", "member_code", "district_code", "community_code", "unit_code")
#: An operator's area: one of these (setting one clears the others).
AREA_COLUMNS = ("district_code", "street_code", "community_code")


def _admin(actor: Principal | None, what: str) -> str:
    if actor is not None:
        actor.require("admin", what=what)
        return actor.username
    return "the command line"


def _user(conn: Connection, username: str) -> RowMapping:
    row = users_sql.user(conn, username, lock=True)
    if row is None:
        raise NotFound(f"no user {username!r}", field="username", fix="list users: GET /v1/users or `gridmap users list`")
    return row


@contextmanager
def _on_user(session: Session, username: str, cache: SessionCache | None) -> Iterator[tuple[Connection, RowMapping]]:
    """One transaction on ``username``'s row (locked: NotFound if there is none); once it has committed, the
    process's session cache forgets the user."""
    with session.begin():
        conn = session.connection()
        row = _user(conn, username)
        yield conn, row
    _forget(cache, row["id"])


def _keep_an_admin(conn: Connection, row: RowMapping, what: str) -> None:
    if row["role"] == "admin" and row["active"] and users_sql.active_admins(conn) <= 1:
        raise Conflict(f"{row['username']} is the last active admin: {what} would leave nobody to manage users",
                       field="username", fix="make another user admin first")


def _forget(cache: SessionCache | None, user_id: int) -> None:
    if cache is not None:
        cache.forget_user(user_id)


def _out(row: RowMapping, open_sessions: int | None = None) -> dict:
    return {"id": row["id"], "username": row["username"], "role": row["role"], "street_code": row["street_code"],
            "member_code": row["member_code"], "district_code": row["district_code"],
            "community_code": row["community_code"], "unit_code": row["unit_code"], "active": row["active"],
            "created_at": row["created_at"],
            "open_sessions": open_sessions if open_sessions is not None else row.get("open_sessions", 0),
            "last_seen_at": row.get("last_seen_at")}


def list_users(session: Session, actor: Principal | None, now: dt.datetime) -> list[dict]:
    _admin(actor, "list users")
    with session.begin():
        return [_out(r) for r in users_sql.users(session.connection(), now)]


def update_user(session: Session, actor: Principal | None, username: str, changes: dict,
                now: dt.datetime, cache: SessionCache | None = None) -> dict:
    """Change some of active, role, street_code, district_code, community_code (an operator's area: giving one
    clears the other two), member_code, unit_code. Any real change ends all the user's sessions."""
    who = _admin(actor, "change users")
    unknown = set(changes) - set(CHANGEABLE)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0],
                           fix=f"change only {', '.join(CHANGEABLE)}")
    with session.begin():
        conn = session.connection()
        row = _user(conn, username)
        want = {k: row[k] for k in CHANGEABLE}
        if any(changes.get(k) for k in AREA_COLUMNS):  # a new area replaces the old one (another level)
            want.update(dict.fromkeys(AREA_COLUMNS))
        want |= changes
        if want["role"] not in TEAM_ROLES:
            want["member_code"] = None
        want |= scope_columns(want["role"], {k: want[k] for k in (*AREA_COLUMNS, "unit_code")})
        check_role_scope(want["role"], want["street_code"], want["member_code"], district_code=want["district_code"],
                         community_code=want["community_code"], unit_code=want["unit_code"])
        diff = {k: v for k, v in want.items() if v != row[k]}
        if not diff:
            return _out(row, len([s for s in users_sql.user_sessions(conn, row["id"]) if s["revoked_at"] is None
                                  and s["expires_at"] > now]))
        if (diff.get("active") is False or "role" in diff) and row["role"] == "admin":
            _keep_an_admin(conn, row, "this change")
        check_scope_exists(conn, diff.get("street_code"), diff.get("member_code"),
                           district_code=diff.get("district_code"), community_code=diff.get("community_code"),
                           unit_code=diff.get("unit_code"))
        users_sql.update_user(conn, row["id"], diff)
        reason = _reason(diff, who)
        n = end_all_sessions(conn, row["id"], now, reason)
        row = users_sql.user_by_id(conn, row["id"])
        assert row is not None  # updated just above, in this transaction
    _forget(cache, row["id"])
    log.info("user %s: %s (%d session(s) ended)", username, reason, n)
    return _out(row, 0)


def _reason(diff: dict, who: str) -> str:
    parts = []
    if "active" in diff:
        parts.append("deactivated" if not diff["active"] else "reactivated")
    if "role" in diff:
        parts.append(f"role changed to {diff['role']}")
    for column, what in (("district_code", "district"), ("street_code", "street"), ("community_code", "community"),
                         ("unit_code", "unit")):
        if column in diff:
            parts.append(f"{what} changed to {diff[column]}")
    if "member_code" in diff:
        parts.append(f"team member changed to {diff['member_code']}")
    return f"{', '.join(parts)} by {who}"


def reset_password(session: Session, actor: Principal | None, username: str, password: str, now: dt.datetime,
                   passwords: Passwords, cache: SessionCache | None = None) -> int:
    """Set a user's password (an admin's reset); every session of theirs ends. Returns how many were open."""
    who = _admin(actor, "reset passwords")
    pw_hash = passwords.hash(password)
    with _on_user(session, username, cache) as (conn, row):
        users_sql.update_user(conn, row["id"], {"password_hash": pw_hash})
        n = end_all_sessions(conn, row["id"], now, f"password reset by {who}")
    log.info("user %s: password reset by %s (%d session(s) ended)", username, who, n)
    return n


def end_sessions(session: Session, actor: Principal | None, username: str, now: dt.datetime,
                 cache: SessionCache | None = None) -> int:
    """Log a user out everywhere. Returns how many sessions were open."""
    who = _admin(actor, "end other users' sessions")
    with _on_user(session, username, cache) as (conn, row):
        n = end_all_sessions(conn, row["id"], now, f"logged out by {who}")
    return n


def delete_user(session: Session, actor: Principal | None, username: str, now: dt.datetime,
                cache: SessionCache | None = None) -> None:
    """Delete a user and their sessions. What they read stays in the access log under their name."""
    who = _admin(actor, "delete users")
    with _on_user(session, username, cache) as (conn, row):
        _keep_an_admin(conn, row, "deleting them")
        end_all_sessions(conn, row["id"], now, f"user deleted by {who}")  # NOTIFY: every process forgets them now
        users_sql.delete_user(conn, row["id"])
    log.info("user %s deleted by %s", username, who)
