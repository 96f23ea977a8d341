"""Live push: what the database announces on commit (LISTEN gridmap_feed) fanned out inside one process.

Triggers on ``assignments`` and ``teams`` (migration 0003) NOTIFY every change on commit, whichever
process made it. One listener thread per API process receives them and

* hands each assignment change to the subscribers of that team (a volunteer's WebSocket / SSE feed), and
  each change of a unit's rung stints (an event entered, taken, left) to the subscribers of that unit
  (its members' inbox feeds; key :func:`unit_key`);
* applies each team status change and position report to this process's dispatch cache, so that several
  API processes agree on who is free and where. Announcements are handled a moment after the commits that made
  them, and this process has already updated its own cache for its own changes: a status is therefore read
  again from the database (the announced one may be outdated by then), and a position older than the cached
  one is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridmap.services.events import set_cached_team_position, set_cached_team_status
from gridmap.services.listener import Listener
from gridmap.storage import teams as teams_sql
from gridmap.storage.db import libpq_url

if TYPE_CHECKING:
    from gridmap.services.dispatch import Dispatcher

log = logging.getLogger(__name__)
CHANNEL = "gridmap_feed"


def unit_key(code: str) -> str:
    """The subscription key of a unit's inbox feed (teams are keyed by their integer id)."""
    return f"unit:{code}"


class FeedHub(Listener):
    """The live feed's fan-out in one API process (see the module's docstring)."""

    channel = CHANNEL
    thread_name = "gridmap-feed"

    def __init__(self, libpq_url: str, dispatcher: Dispatcher | None = None, engine: Engine | None = None) -> None:
        super().__init__(libpq_url)
        self.dispatcher = dispatcher
        self.engine = engine  # to read a team's status as it is now (without one: as announced)
        self._subs: dict[int | str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = defaultdict(set)
        self._lock = threading.Lock()

    @classmethod
    def for_engine(cls, engine: Engine, dispatcher: Dispatcher | None = None) -> FeedHub:
        return cls(libpq_url(engine.url.render_as_string(hide_password=False)), dispatcher, engine)

    # -- fan-out ----------------------------------------------------------------------------------------
    def _handle(self, msg: dict[str, Any]) -> None:
        # every key of a kind is in its message (the trigger's json_build_object), null or not
        if msg.get("kind") == "team" and self.dispatcher is not None:
            set_cached_team_status(self.dispatcher, msg["team"], self._status_now(msg))
            return
        if msg.get("kind") == "position" and self.dispatcher is not None:
            set_cached_team_position(self.dispatcher, msg["team"], msg["lon"], msg["lat"], msg["at"])
            return
        key: int | str
        if msg.get("kind") == "unit":
            key = unit_key(str(msg.get("unit")))
        elif msg.get("kind") == "assignment" and isinstance(msg.get("team_id"), int):
            key = msg["team_id"]
        else:
            return
        with self._lock:
            subs = list(self._subs.get(key, ()))
        for loop, q in subs:
            with contextlib.suppress(RuntimeError):  # that loop has closed: the subscriber is gone
                loop.call_soon_threadsafe(q.put_nowait, msg)

    def _status_now(self, msg: dict[str, Any]) -> str:
        """The team's status in the database now: a status change announced before a later one (made, and
        cached, by this process meanwhile) must not undo it."""
        if self.engine is None:
            return str(msg["status"])
        with Session(self.engine) as session, session.begin():
            row = teams_sql.team(session.connection(), msg["team"])
        return str(row["status"] if row is not None else msg["status"])

    def subscribe(self, team_id: int | str) -> asyncio.Queue:
        """A queue of the changes of a team (its id) or a unit (:func:`unit_key`)."""
        q: asyncio.Queue = asyncio.Queue()
        with self._lock:
            self._subs[team_id].add((asyncio.get_running_loop(), q))
        return q

    def unsubscribe(self, team_id: int | str, q: asyncio.Queue) -> None:
        with self._lock:
            self._subs[team_id] = {s for s in self._subs.get(team_id, set()) if s[1] is not q}
            if not self._subs[team_id]:
                del self._subs[team_id]

    def subscribers(self, team_id: int | str) -> int:
        with self._lock:
            return len(self._subs.get(team_id, ()))
