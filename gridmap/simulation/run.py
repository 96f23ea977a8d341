"""Running the simulation: fast (a simulation database and its own API, on the simulation's clock) and live
(the demo's API, in real time). ``gridmap simulate`` calls these; tests call :func:`simulate` with an
in-process client."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from gridmap.config import Settings
from gridmap.core.vocabulary import LOCAL_TZ
from gridmap.services import auth
from gridmap.simulation.clock import Clock, FastClock, LiveClock
from gridmap.simulation.driver import CallStats, Driver
from gridmap.simulation.engine import RunConfig, RunSummary, Simulation
from gridmap.simulation.model import Behaviour
from gridmap.simulation.runlog import RunLog
from gridmap.simulation.server import SimulationServer
from gridmap.simulation.world import (
    ADMIN,
    USERS_FILE,
    World,
    ensure_template,
    ensure_users,
    fresh_copy,
    housekeeping,
    load_world,
    read_credentials,
    user_plan,
    write_credentials,
)
from gridmap.storage.db import database_url, make_engine

#: the first day after the sample street's year of events (2025-11-01 to 2026-11-01), a Monday
DEFAULT_DAY = dt.date(2026, 11, 2)
Say = Callable[[str], None]


def simulate(world: World, client: httpx.Client, credentials: dict[str, str], config: RunConfig, log: RunLog, *,
             behaviour: Behaviour | None = None, stop: threading.Event | None = None, say: Say = lambda m: None,
             stats: CallStats | None = None, housekeeping: Callable[[], None] | None = None) -> RunSummary:
    """Play ``config`` against the API behind ``client`` (fast: moves its clock as ``sim-admin``)."""
    driver = Driver(client, credentials, stats=stats)
    clock: Clock
    if config.mode == "fast":
        def move(at: dt.datetime) -> None:
            driver.call(ADMIN, "clock", "PUT", "/v1/simulation/clock", json={"at": at.isoformat()})

        clock = FastClock(config.start, move)
    else:
        clock = LiveClock(config.start, sleep=_sleeper(stop))
    sim = Simulation(world, driver, clock, log, behaviour or Behaviour(), config, stop=stop, say=say,
                     housekeeping=housekeeping)
    return sim.run()


def _sleeper(stop: threading.Event | None) -> Callable[[float], None]:
    if stop is None:
        return time.sleep

    def sleep(s: float) -> None:
        stop.wait(s)

    return sleep


@dataclass
class FastResult:
    summary: RunSummary
    database: str
    log_path: Path | None
    wall_s: float
    setup_s: float


def run_fast(settings: Settings, *, day: dt.date = DEFAULT_DAY, days: int = 1, seed: int = 1,
             rule: str | None = None, database: str = "gridmap_sim", log_path: Path | None = None,
             drain_h: float = 2.0, behaviour: Behaviour | None = None, log_fixes: bool = True,
             api_url: str | None = None, say: Say = lambda m: None, stats: CallStats | None = None,
             start_hour: float = 0.0, hours: float | None = None) -> FastResult:
    """Replay ``days`` days from ``day`` in simulated time, in a fresh simulation database ``database`` (a copy of
    the simulation template) served by its own API process (or ``api_url``'s, already serving it)."""
    t0 = time.perf_counter()
    start = dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ) + dt.timedelta(hours=start_hour)
    end = start + (dt.timedelta(days=days) if hours is None else dt.timedelta(hours=hours))
    template, creds = ensure_template(settings, say)
    say(f"copying {template} to {database} (dispatch rule: {rule or 'road_eta'})")
    engine = fresh_copy(settings, template, database, start=start, seed=seed, rule=rule)
    try:
        world = load_world(engine, start)
    finally:
        engine.dispose()
    log = RunLog(log_path, fixes=log_fixes)
    upkeep = housekeeping(settings, database)
    setup_s = time.perf_counter() - t0
    try:
        if api_url is None:
            server = SimulationServer(settings, database, Path(settings.data_dir) / "simulation-api.log")
            with server as url, httpx.Client(base_url=url, timeout=60.0) as client:
                say(f"the simulation's API is up on {url}; playing {days} day(s) from {start:%Y-%m-%d}")
                t1 = time.perf_counter()
                summary = simulate(world, client, creds, RunConfig(start, end, seed, "fast", drain_h * 3600.0), log,
                                   behaviour=behaviour, say=say, stats=stats, housekeeping=upkeep)
        else:
            with httpx.Client(base_url=api_url, timeout=60.0) as client:
                t1 = time.perf_counter()
                summary = simulate(world, client, creds, RunConfig(start, end, seed, "fast", drain_h * 3600.0), log,
                                   behaviour=behaviour, say=say, stats=stats, housekeeping=upkeep)
    finally:
        log.close()
    return FastResult(summary, database, log_path, time.perf_counter() - t1, setup_s + (t1 - t0 - setup_s))


def run_live(settings: Settings, *, api_url: str, seed: int = 1, stop: threading.Event | None = None,
             log_path: Path | None = None, behaviour: Behaviour | None = None, say: Say = lambda m: None,
             first_event_within_s: float | None = 30.0, database_url_: str | None = None,
             users_file: Path | None = None) -> RunSummary:
    """Drive the demo's API in real time until ``stop`` is set: its teams patrol, report, get offers, drive and
    settle events; reports arrive at the sample year's rates and hours. The street is read from the settings'
    database (or ``database_url_``); the simulator's users and passwords are kept in ``users_file`` (default
    ``<data_dir>/simulation_users.txt``, mode 600)."""
    engine = make_engine(database_url_ or database_url(settings), pool_size=2, max_overflow=2)
    try:
        now = dt.datetime.now(LOCAL_TZ).replace(microsecond=0)
        world = load_world(engine, now)
        path = users_file or Path(settings.data_dir) / USERS_FILE
        known = read_credentials(path)
        plan = user_plan(engine, world, admin=False)
        say(f"the simulation's users ({len(plan)}): checking, creating the missing ones (Argon2, once)")
        creds = ensure_users(engine, plan, known, auth.Passwords.from_settings(settings))
        if any(known.get(k) != v for k, v in creds.items()):
            write_credentials(path, {**known, **creds}, {k: v[0] for k, v in plan.items()})
    finally:
        engine.dispose()
    log = RunLog(log_path, fixes=False)
    try:
        with httpx.Client(base_url=api_url, timeout=60.0) as client:
            say(f"driving {api_url} live from {now:%Y-%m-%d %H:%M:%S}")
            return simulate(world, client, creds, RunConfig(now, None, seed, "live",
                                                            first_event_within_s=first_event_within_s),
                            log, behaviour=behaviour, stop=stop, say=say)
    finally:
        log.close()
