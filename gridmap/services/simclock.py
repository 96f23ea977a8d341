"""Simulation databases: their mark, their clock and their dispatch rule.

A *simulation database* is a copy of the sample street that ``gridmap simulate`` made and marked with the one
row of ``simulation_mark``. Two things are allowed there and nowhere else:

* **the simulation's clock.** With ``GRIDMAP_CLOCK=simulation`` the API reads "now" from the mark
  (``clock_at``) instead of the wall clock, and the simulator moves it with ``PUT /v1/simulation/clock``
  (admins), step by step, never backwards. Each HTTP request reads the clock once when it starts and uses that
  instant throughout (:class:`SimulationClock` pins it), so every process serving the database agrees and a
  request never straddles a step. The API refuses to start with ``GRIDMAP_CLOCK=simulation`` on a database
  without the mark (:class:`~gridmap.errors.ConfigError`), and refuses to move the clock of an API on the
  system clock (409).
* **another dispatch rule** (``dispatch_rule``: one of :class:`~gridmap.services.dispatch.DispatchRule`), for the
  dispatch-policy study. There is no setting for it: it is read from the mark, so a database without the mark
  always dispatches by gridmap's own rule.

Nothing else changes: a simulation database holds events, assignments and positions like any other, so the
metrics, the dashboard and the notebooks read it unchanged (point ``GRIDMAP_DB_NAME`` at it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import psycopg
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridmap.config import Settings
from gridmap.errors import ConfigError, Conflict, InvalidInput
from gridmap.services.auth import Principal
from gridmap.services.dispatch import DispatchPolicy, DispatchRule
from gridmap.storage import simulation as simulation_sql
from gridmap.storage.db import libpq_url

Clock = Callable[[], dt.datetime]
_PINNED: ContextVar[dt.datetime | None] = ContextVar("gridmap_simulation_now", default=None)
NOT_SIMULATION_FIX = ("make a simulation database with `gridmap simulate fast` (it copies the sample street and "
                      "marks the copy), point GRIDMAP_DB_NAME at it, or unset GRIDMAP_CLOCK")


@dataclass(frozen=True)
class SimulationInfo:
    """The mark of a simulation database."""

    source: str
    seed: int | None
    clock_at: dt.datetime
    dispatch_rule: str | None
    created_at: dt.datetime
    note: str | None


def simulation_info(engine: Engine) -> SimulationInfo | None:
    """The database's simulation mark, or None for an ordinary database."""
    with Session(engine) as session, session.begin():
        row = simulation_sql.mark(session.connection())
    if row is None:
        return None
    return SimulationInfo(row["source"], row["seed"], row["clock_at"], row["dispatch_rule"], row["created_at"],
                          row["note"])


def dispatch_policy(info: SimulationInfo | None) -> DispatchPolicy:
    """The dispatch policy of a database: gridmap's own, unless its simulation mark names another rule."""
    if info is None or info.dispatch_rule is None:
        return DispatchPolicy()
    try:
        return DispatchPolicy(rule=DispatchRule(info.dispatch_rule))
    except ValueError:
        raise ConfigError(f"the simulation mark names an unknown dispatch rule {info.dispatch_rule!r}",
                          field="simulation_mark.dispatch_rule",
                          fix=f"use one of {', '.join(r.value for r in DispatchRule)}") from None


class SimulationClock:
    """'Now' of a simulation database: the instant pinned for the current request, else the mark's clock.

    Every request reads the clock, so it is read on a connection of its own (one short statement, ~0.2 ms,
    where a pooled SQLAlchemy round trip costs about 1 ms), reopened when it breaks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._url = libpq_url(engine.url.render_as_string(hide_password=False))
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        pinned = _PINNED.get()
        return pinned if pinned is not None else self.read()

    def read(self) -> dt.datetime:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._url, autocommit=True)
                at = simulation_sql.read_clock(self._conn)
            except psycopg.OperationalError:
                self.close()
                raise
        if at is None:
            raise ConfigError("the simulation mark is gone from the database", field="simulation_mark",
                              fix="restart the API (it runs on a simulation database no more)")
        return at

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def pinned(self, at: dt.datetime) -> Iterator[None]:
        """Within the block (and the threads it hands work to), ``self()`` is ``at``."""
        token = _PINNED.set(at)
        try:
            yield
        finally:
            _PINNED.reset(token)

    def move(self, at: dt.datetime) -> dt.datetime:
        """Move the clock to ``at`` (not backwards); returns it."""
        if at.tzinfo is None:
            raise InvalidInput(f"time {at.isoformat()} has no time zone", field="at",
                               fix="send ISO 8601 with an offset, e.g. 2026-11-02T09:30:00+08:00")
        with Session(self.engine) as session, session.begin():
            now, moved = simulation_sql.move_clock(session.connection(), at)
        if now is None:
            raise ConfigError("the simulation mark is gone from the database", field="simulation_mark",
                              fix="restart the API (it runs on a simulation database no more)")
        if not moved:
            raise Conflict(f"the simulation clock is at {now.isoformat()}, later than {at.isoformat()}", field="at",
                           fix="a simulation's clock only moves forward: send a time at or after it")
        return now


def app_clock(settings: Settings, engine: Engine, clock: Clock | None, system: Clock
              ) -> tuple[Clock, SimulationClock | None, SimulationInfo | None]:
    """The API's clock for these settings and this database: (clock, the simulation clock or None, the mark).

    ``clock`` is one given by the caller (tests); ``system`` the wall clock. ``GRIDMAP_CLOCK=simulation`` needs a
    simulation database, and no clock of the caller's."""
    info = simulation_info(engine)
    if settings.clock != "simulation":
        return clock or system, None, info
    url = engine.url.render_as_string(hide_password=True)
    if clock is not None:
        raise ConfigError("GRIDMAP_CLOCK=simulation and a clock given to create_app", field="GRIDMAP_CLOCK",
                          fix="give one of them")
    if info is None:
        raise ConfigError(f"GRIDMAP_CLOCK=simulation, but {url} is not a simulation database (it has no "
                          "simulation_mark row): the simulation may drive the clock of a simulation database only",
                          field="GRIDMAP_CLOCK", fix=NOT_SIMULATION_FIX)
    sim = SimulationClock(engine)
    return sim, sim, info


class SimulationService:
    """What ``/v1/simulation`` shows and does."""

    def __init__(self, engine: Engine, sim_clock: SimulationClock | None, clock: Clock) -> None:
        self.engine = engine
        self.sim_clock = sim_clock
        self.clock = clock

    def state(self, p: Principal) -> dict:
        p.require("admin", "operator", "planner", what="read the simulation state")
        info = simulation_info(self.engine)
        return {"simulation_database": info is not None, "clock": "simulation" if self.sim_clock else "system",
                "now": self.clock(), "source": info.source if info else None, "seed": info.seed if info else None,
                "dispatch_rule": (info.dispatch_rule or DispatchRule.ROAD_ETA.value) if info else DispatchRule.ROAD_ETA.value,
                "created_at": info.created_at if info else None}

    def move_clock(self, p: Principal, at: dt.datetime) -> dict:
        p.require("admin", what="move the simulation clock")
        if self.sim_clock is None:
            raise Conflict("this API runs on the system clock", field="at",
                           fix="start it with GRIDMAP_CLOCK=simulation on a simulation database (gridmap simulate "
                               "fast does)")
        return {"now": self.sim_clock.move(at)}
