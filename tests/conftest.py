"""Test fixtures: a real PostGIS (never SQLite, never a mock).

The suite uses its own database, ``gridmap_test``, in the embedded cluster (started if needed), created
fresh and migrated once per session, and copies of it named ``gridmap_test_<suffix>`` (the sample street,
the simulation's databases, ...). A session that passes drops every database it made (they take about 5 GB
of the user's data directory); one that fails keeps them to be looked at, and the next run replaces them.
With ``GRIDMAP_DATABASE_URL`` set, tests refuse to touch that server unless ``GRIDMAP_TEST_DATABASE_URL``
names a scratch database. A DB test never skips: if the database cannot be had, it fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from gridmap.config import Settings, get_settings
from gridmap.services import sample
from gridmap.services.registry import Registry
from gridmap.storage import migrate
from gridmap.storage.db import cluster_for, database_url, libpq_url, make_engine

TEST_DB = os.environ.get("GRIDMAP_TEST_DB_NAME", "gridmap_test")  # several suites may run side by side
KEEP_TABLES = {"event_categories", "spatial_ref_sys", "alembic_version"}


#: The databases this session made in the embedded cluster, by name (see :func:`pytest_sessionfinish`). Names,
#: not a prefix: suites with other ``GRIDMAP_TEST_DB_NAME``s may be running beside this one.
MADE: set[str] = set()


def new_database(settings: Settings, name: str, *, template: str | None = None) -> str:
    """Drop and create database ``name`` (a copy of ``template``) in the embedded cluster; its URL. It is
    dropped at the end of a session that passes."""
    with _admin(settings) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        MADE.add(name)
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return database_url(settings, dbname=name)


def _fresh_database(settings: Settings, name: str) -> str:
    if os.environ.get("GRIDMAP_TEST_DATABASE_URL"):
        return os.environ["GRIDMAP_TEST_DATABASE_URL"]
    if settings.database_url:
        pytest.fail("GRIDMAP_DATABASE_URL is set: point GRIDMAP_TEST_DATABASE_URL at a scratch database for tests")
    return new_database(settings, name)


def _admin(settings: Settings) -> psycopg.Connection:
    cluster = cluster_for(settings)
    cluster.start()
    return psycopg.connect(libpq_url(cluster.url("postgres")), autocommit=True)


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down: nothing is connected any more
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A passing session drops the databases it made; a failing one keeps them to be looked at."""
    if exitstatus != 0 or not MADE:
        return
    with _admin(get_settings()) as conn:
        for name in sorted(MADE):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    MADE.clear()


@pytest.fixture(scope="session")
def sample_template(settings, db_url) -> str:
    """A database holding the whole sample street, migrated and loaded once per session: the template
    that :func:`sample_street_db` copies (``CREATE DATABASE ... TEMPLATE``, a file copy of about a second,
    where a load takes 15-25 s). Nothing may stay connected to it, so its engine is disposed at once."""
    name = f"{TEST_DB}_sample_template"
    engine = make_engine(new_database(settings, name))
    try:
        migrate.upgrade(engine)
        result = sample.load_sample_street(engine, settings=settings)
        assert result.loaded, result.message
    finally:
        engine.dispose()
    return name


def sample_db_name(suffix: str) -> str:
    return f"{TEST_DB}_{suffix}"


@pytest.fixture(scope="session")
def sample_street_db(settings, sample_template):
    """``sample_street_db(suffix, **engine_kw)``: a fresh database ``<test db>_<suffix>`` with the whole
    sample street (a copy of the template), and an engine on it. Each suite that writes to the sample
    street gets its own copy; the caller disposes the engine."""

    def make(suffix: str, **engine_kw):
        return make_engine(new_database(settings, sample_db_name(suffix), template=sample_template), **engine_kw)

    return make


@pytest.fixture(scope="session")
def settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def db_url(settings) -> str:
    return _fresh_database(settings, TEST_DB)


@pytest.fixture(scope="session")
def engine(db_url):
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


def truncate_all(engine) -> None:
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
        victims = [t for t in tables if t not in KEEP_TABLES]
        if victims:
            conn.execute(text(f"TRUNCATE {', '.join(victims)} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db(engine, settings) -> Registry:
    """A registry on the test database, emptied after the test."""
    reg = Registry(engine, settings)
    truncate_all(engine)
    yield reg
    truncate_all(engine)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session, shared by the dashboard's and the field app's browser tests:
    Playwright's sync API runs one instance per thread (a second ``sync_playwright()`` while the first is open
    fails with "using Playwright Sync API inside the asyncio loop"). ``browser.devices`` holds Playwright's
    device descriptors (the field app's phone)."""
    from playwright.sync_api import sync_playwright

    from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        b.devices = p.devices  # type: ignore[attr-defined]
        yield b
        b.close()
