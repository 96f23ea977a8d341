"""Test fixtures: a real PostGIS (never SQLite, never a mock).

The suite uses its own database, ``gridmap_test``, in the embedded cluster (started if needed), created
fresh and migrated once per session. With ``GRIDMAP_DATABASE_URL`` set, tests refuse to touch that
server unless ``GRIDMAP_TEST_DATABASE_URL`` names a scratch database. A DB test never skips: if the
database cannot be had, it fails.
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


def _fresh_database(settings: Settings, name: str) -> str:
    if os.environ.get("GRIDMAP_TEST_DATABASE_URL"):
        return os.environ["GRIDMAP_TEST_DATABASE_URL"]
    if settings.database_url:
        pytest.fail("GRIDMAP_DATABASE_URL is set: point GRIDMAP_TEST_DATABASE_URL at a scratch database for tests")
    cluster = cluster_for(settings)
    cluster.start()
    with psycopg.connect(libpq_url(cluster.url("postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(settings, dbname=name)


def _admin(settings: Settings) -> psycopg.Connection:
    cluster = cluster_for(settings)
    cluster.start()
    return psycopg.connect(libpq_url(cluster.url("postgres")), autocommit=True)


@pytest.fixture(scope="session")
def sample_template(settings, db_url) -> str:
    """A database holding the whole sample street, migrated and loaded once per session: the template
    that :func:`sample_street_db` copies (``CREATE DATABASE ... TEMPLATE``, a file copy of about a second,
    where a load takes 15-25 s). Nothing may stay connected to it, so its engine is disposed at once."""
    name = f"{TEST_DB}_sample_template"
    with _admin(settings) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(database_url(settings, dbname=name))
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
        name = sample_db_name(suffix)
        with _admin(settings) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{sample_template}"')
        return make_engine(database_url(settings, dbname=name), **engine_kw)

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
