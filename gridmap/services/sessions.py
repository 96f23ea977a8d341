"""The per-process view of sessions: a short-lived cache, emptied at once by what the database announces.

Every request's token names a session; whether it may still be served (session neither revoked nor expired,
user present and active, token version current) and who it is now (role, street, team: the user's current
row) come from :class:`SessionCache`. An entry is trusted for ``ttl_s`` seconds (GRIDMAP_SESSION_CACHE_TTL_S,
3 s by default), then read again.

Revocation does not wait for that: every change that ends sessions NOTIFYs ``gridmap_sessions`` in its own
transaction (:func:`gridmap.storage.users.notify`), and one listener thread per API process
(:class:`SessionListener`, the same LISTEN loop as the live feed in :mod:`gridmap.services.feed`) drops the
entries named, so the next request reads the database. The TTL is the safety net for what the listener
cannot see: a change made by hand in SQL, or notifications sent while its connection was down (on every
(re)connect the whole cache is dropped).

A load that raced with a notification is not cached (a generation count), so a stale row read just before a
revocation committed cannot outlive it. Open live feeds register a queue (:meth:`SessionCache.watch`) and
get a ``{"kind": "session_check"}`` message when their session or user changes, so they re-check at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from gridmap.services.listener import Listener
from gridmap.storage import users as users_sql
from gridmap.storage.db import libpq_url

log = logging.getLogger(__name__)
SESSION_CHECK = {"kind": "session_check"}


@dataclass(frozen=True)
class CachedSession:
    """What a request needs to know about its session, read from the database at ``loaded`` (monotonic)."""

    user_id: int
    state: Any  # the row of users_sql.session_state, as a dict (None: no such session, or its user is gone)
    principal: Any  # the Principal built from the user's current row, or the GridmapError to answer with
    loaded: float


class SessionCache:
    """Thread-safe, bounded, short-TTL cache of session states, keyed by session id."""

    def __init__(self, ttl_s: float, max_entries: int = 20_000, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = monotonic
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, CachedSession] = OrderedDict()
        self._by_user: dict[int, set[str]] = {}
        self._generation = 0
        self._watchers: dict[int, list[tuple[str, asyncio.AbstractEventLoop, asyncio.Queue]]] = {}
        self.loads = 0  # how many times a request had to read the database (for tests and metrics)

    # -- reading and filling ----------------------------------------------------------------------------
    def get(self, sid: str) -> CachedSession | None:
        with self._lock:
            entry = self._entries.get(sid)
            if entry is None:
                return None
            if self._clock() - entry.loaded >= self.ttl_s:
                self._drop(sid)
                return None
            return entry

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def put(self, sid: str, user_id: int, state: Any, principal: Any, generation: int) -> None:
        """Cache a state read from the database, unless a notification arrived since ``generation``."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            self.loads += 1
            if generation != self._generation:
                return
            self._entries[sid] = CachedSession(user_id, state, principal, self._clock())
            self._entries.move_to_end(sid)
            self._by_user.setdefault(user_id, set()).add(sid)
            while len(self._entries) > self.max_entries:
                self._drop(next(iter(self._entries)))

    # -- invalidation -----------------------------------------------------------------------------------
    def _drop(self, sid: str) -> None:
        entry = self._entries.pop(sid, None)
        if entry is not None:
            sids = self._by_user.get(entry.user_id)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._by_user[entry.user_id]

    def forget_session(self, sid: str, user_id: int | None = None) -> None:
        with self._lock:
            self._generation += 1
            self._drop(sid)
            watchers = [w for w in self._watchers.get(user_id, ()) if w[0] == sid] if user_id is not None else \
                [w for ws in self._watchers.values() for w in ws if w[0] == sid]
        self._wake(watchers)

    def forget_user(self, user_id: int) -> None:
        with self._lock:
            self._generation += 1
            for sid in self._by_user.pop(user_id, set()):
                self._entries.pop(sid, None)
            watchers = list(self._watchers.get(user_id, ()))
        self._wake(watchers)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._by_user.clear()
            watchers = [w for ws in self._watchers.values() for w in ws]
        self._wake(watchers)

    def handle(self, msg: dict) -> None:
        """A notification from ``gridmap_sessions``."""
        if msg.get("kind") == "session" and msg.get("sid"):
            self.forget_session(str(msg["sid"]), msg.get("user_id"))
        elif msg.get("kind") == "user" and msg.get("user_id") is not None:
            self.forget_user(int(msg["user_id"]))
        else:
            self.clear()

    # -- live feeds -------------------------------------------------------------------------------------
    def watch(self, sid: str, user_id: int, q: asyncio.Queue) -> None:
        """Put SESSION_CHECK on ``q`` (from any thread) whenever this session or its user changes."""
        with self._lock:
            self._watchers.setdefault(user_id, []).append((sid, asyncio.get_running_loop(), q))

    def unwatch(self, user_id: int, q: asyncio.Queue) -> None:
        with self._lock:
            left = [w for w in self._watchers.get(user_id, ()) if w[2] is not q]
            if left:
                self._watchers[user_id] = left
            else:
                self._watchers.pop(user_id, None)

    @staticmethod
    def _wake(watchers: list[tuple[str, asyncio.AbstractEventLoop, asyncio.Queue]]) -> None:
        for _sid, loop, q in watchers:
            with contextlib.suppress(RuntimeError):  # that loop has closed: the feed is gone
                loop.call_soon_threadsafe(q.put_nowait, SESSION_CHECK)


class SessionListener(Listener):
    """One thread per API process: LISTEN gridmap_sessions and drop what each notification names."""

    channel = users_sql.CHANNEL
    thread_name = "gridmap-sessions"

    def __init__(self, libpq: str, cache: SessionCache) -> None:
        super().__init__(libpq)
        self.cache = cache

    @classmethod
    def for_engine(cls, engine: Engine, cache: SessionCache) -> SessionListener:
        return cls(libpq_url(engine.url.render_as_string(hide_password=False)), cache)

    def _listening(self) -> None:
        self.cache.clear()  # whatever was announced while we were not listening is unknown: read everything again
        super()._listening()

    def _handle(self, msg: dict[str, Any]) -> None:
        self.cache.handle(msg)
