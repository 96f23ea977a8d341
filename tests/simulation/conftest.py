"""Fixtures of the simulator's tests: simulation databases (copies of the sample street with the simulation mark
and the simulator's users, cheap Argon2), the real app on each (in-process, Starlette's TestClient, on the
simulation's clock) and short seeded runs through it."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from gridmap.core.vocabulary import LOCAL_TZ as TZ
from gridmap.services import auth, sample
from gridmap.services.registry import Registry
from gridmap.simulation.engine import RunConfig, RunSummary
from gridmap.simulation.model import Behaviour
from gridmap.simulation.run import simulate
from gridmap.simulation.runlog import RunLog
from gridmap.simulation.world import SIM_ARGON2, World, ensure_users, load_world, user_plan
from gridmap.storage import simulation as simulation_sql
from gridmap.storage.db import database_url, make_engine
from tests.conftest import MADE, _admin, sample_db_name

pytestmark = [pytest.mark.db]
DAY = dt.datetime(2026, 11, 2, 9, 0, tzinfo=TZ)  # a Monday morning, the day after the sample year
#: short runs: the sample year's reports, eight times as many (a busy half hour)
BUSY = Behaviour(arrival_rate_factor=8.0)
CHEAP = auth.Passwords(time_cost=SIM_ARGON2["argon2_time_cost"], memory_kib=SIM_ARGON2["argon2_memory_kib"],
                       parallelism=SIM_ARGON2["argon2_parallelism"])


@dataclass
class Run:
    summary: RunSummary
    log: list[dict]
    world: World
    engine: object


@pytest.fixture(scope="session")
def sim_settings(settings):
    return settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0,
                                       "token_ttl_s": 30 * 86400, "clock": "simulation", **SIM_ARGON2})


@pytest.fixture(scope="session")
def sim_template(sample_street_db, settings):
    """A simulation database made once per session (the sample street, marked, its live state at ``DAY``, the
    simulator's users with cheap Argon2), the street as the simulator reads it, and the users' passwords. Nothing
    stays connected to it: :func:`sim_copy` copies it."""
    engine = sample_street_db("sim_template", pool_size=2, max_overflow=2)
    try:
        with engine.begin() as conn:
            simulation_sql.put_mark(conn, source="tests", seed=None, clock_at=DAY)
        sample.refresh_live_state(engine, DAY)
        world = load_world(engine, DAY)
        creds = ensure_users(engine, user_plan(engine, world, admin=True), {}, CHEAP)
    finally:
        engine.dispose()
    return sample_db_name("sim_template"), world, creds


@pytest.fixture(scope="session")
def sim_copy(sim_template, settings):
    """``sim_copy(suffix, rule=None)``: a fresh copy of the simulation template (its dispatch rule set), an engine
    on it, the street and the users' passwords."""
    template, world, creds = sim_template

    def make(suffix: str, *, rule: str | None = None):
        name = sample_db_name(suffix)
        with _admin(settings) as conn:
            MADE.add(name)
            simulation_sql.copy_database(conn, template, name)
        engine = make_engine(database_url(settings, dbname=name), pool_size=10, max_overflow=10)
        with engine.begin() as conn:
            simulation_sql.put_mark(conn, source="tests", seed=None, clock_at=DAY, dispatch_rule=rule)
        return engine, world, creds

    return make


def module_copy(suffix: str):
    """A module-scoped fixture: ``sim_copy(suffix)``'s (engine, world, creds), the engine disposed after the
    module. ``name = module_copy("sim_x")`` in a test module."""
    @pytest.fixture(scope="module")
    def copy(sim_copy):
        engine, world, creds = sim_copy(suffix)
        yield engine, world, creds
        engine.dispose()

    return copy


@contextmanager
def sim_client(engine, sim_settings) -> Iterator[TestClient]:
    app = create_app(sim_settings, Registry(engine, sim_settings))
    with TestClient(app) as client:
        yield client


def short_run(engine, world: World, creds: dict[str, str], sim_settings, *, seed: int, minutes: float,
              drain_min: float = 0.0, behaviour: Behaviour = BUSY, start: dt.datetime = DAY,
              fixes: bool = True) -> Run:
    log = RunLog(keep=True, fixes=fixes)
    with sim_client(engine, sim_settings) as client:
        cfg = RunConfig(start, start + dt.timedelta(minutes=minutes), seed, "fast", drain_s=drain_min * 60.0)
        summary = simulate(world, client, creds, cfg, log, behaviour=behaviour)
    return Run(summary, log.records, world, engine)


def with_behaviour(**kw) -> Behaviour:
    return replace(BUSY, **kw)
