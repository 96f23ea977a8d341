"""Idempotency keys: a phone's action or photo upload, sent again (a lost answer, a replayed offline queue), is
applied once and answered the same.

The phone gives every action a key (``Idempotency-Key`` header, a random UUID made when the action was taken).
The first request with a key *claims* it (its own small transaction), runs, and stores its answer: the
status and the JSON body, also for a refusal (409: the event was reassigned meanwhile; 403; 404; 422), so that
a replay of a refused action is refused with the same reason. Answers that say "try again" (401, 429, 503) and
unexpected errors are not stored: the claim is released and a retry runs the action again.

Exactly once: the action marks the key *applied* inside its own transaction (``mark`` below), so the effect and
the mark commit together. If the process dies after that commit but before the answer is stored, a retry
(once the claim is ``stale_after_s`` old) does not run the action again: it answers with ``recover()`` (the
current state). A retry while the first request is still running gets a 409 "still being processed".
A key reused with a different request (method, path or body) is refused (422). Keys are per user and kept
``keep`` (7 days), far longer than any offline queue waits.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from gridmap.core.encode import dumps
from gridmap.errors import Conflict, GridmapError, InvalidInput
from gridmap.services.auth import Principal
from gridmap.storage import idempotency as store

KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-]{8,100}$")
#: statuses that mean "not now": never stored, the claim is released
TRANSIENT = frozenset({401, 408, 429, 500, 502, 503, 504})

Mark = Callable[[Connection], None]


@dataclass(frozen=True)
class Answer:
    """What to send back: a status and a JSON-ready body; ``replayed`` when it is the stored answer."""

    status: int
    body: Any
    replayed: bool = False


class Idempotency:
    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime], *, stale_after_s: float = 30.0,
                 keep: dt.timedelta = dt.timedelta(days=7)) -> None:
        self.engine = engine
        self.clock = clock
        self.stale_after = dt.timedelta(seconds=stale_after_s)
        self.keep = keep
        self._runs = 0

    @staticmethod
    def check_key(key: str | None) -> str | None:
        if key is None:
            return None
        if not KEY_RE.match(key):
            raise InvalidInput(f"Idempotency-Key {key[:40]!r} is not 8 to 100 letters, digits or _.:-",
                               field="Idempotency-Key", fix="send a random UUID, made once per action")
        return key

    def run(self, session: Session, p: Principal, key: str | None, fingerprint: str,
            action: Callable[[Mark], Any], *, status_of: Callable[[GridmapError], int],
            recover: Callable[[], Any] | None = None) -> Answer:
        """Run ``action(mark)`` once per (user, key); ``mark(conn)`` must be called inside the action's transaction.
        Without a key, the action just runs (``mark`` does nothing)."""
        if self.check_key(key) is None:
            return Answer(200, _json_ready(action(lambda conn: None)))
        assert key is not None
        now = self.clock()
        recovering = False
        with session.begin():
            conn = session.connection()
            if not store.claim(conn, p.user_id, key, fingerprint, now):
                row = store.find(conn, p.user_id, key, lock=True)
                if row is None:  # released meanwhile: claim it now
                    store.claim(conn, p.user_id, key, fingerprint, now)
                elif row["fingerprint"] != fingerprint:
                    raise InvalidInput("this Idempotency-Key was used for a different request", field="Idempotency-Key",
                                       fix="make a new key for each new action; reuse a key only to retry the very "
                                           "same request")
                elif row["completed_at"] is not None:
                    return Answer(int(row["status_code"]), row["response"], replayed=True)
                elif row["created_at"] > now - self.stale_after:
                    raise Conflict("the request with this Idempotency-Key is still being processed",
                                   field="Idempotency-Key", fix="retry in a few seconds")
                elif row["applied_at"] is not None:
                    recovering = True  # answered below, outside this transaction: recover() opens its own
                else:
                    store.reclaim(conn, p.user_id, key, now)
            if not recovering and self._runs % 500 == 0:
                store.purge(conn, now - self.keep)
            self._runs += 1
        if recovering:
            body = _json_ready(recover()) if recover is not None else {"applied": True}
            with session.begin():
                store.complete(session.connection(), p.user_id, key, 200, _text(body), now)
            return Answer(200, body, replayed=True)

        def mark(c: Connection) -> None:
            store.mark_applied(c, p.user_id, key, self.clock())

        try:
            body = _json_ready(action(mark))
        except GridmapError as exc:
            status = status_of(exc)
            with session.begin():
                if status in TRANSIENT:
                    store.release(session.connection(), p.user_id, key)
                else:
                    store.complete(session.connection(), p.user_id, key, status, _text(exc.to_dict()), self.clock())
            raise
        except BaseException:
            if session.in_transaction():
                session.rollback()
            with session.begin():
                store.release(session.connection(), p.user_id, key)
            raise
        with session.begin():
            store.complete(session.connection(), p.user_id, key, 200, _text(body), self.clock())
        return Answer(200, body)


def _json_ready(obj: Any) -> Any:
    """The body as JSON would carry it (datetimes as ISO text ...): the stored answer and the first are equal."""
    return json.loads(dumps(obj))


def _text(body: Any) -> str:
    return dumps(body).decode()
