"""Fixtures of the analysis tests: the whole sample street in its own database, loaded once per session.

The database is named after the suite's test database (``GRIDMAP_TEST_DB_NAME``, default ``gridmap_test``)
with ``_street`` appended, so suites run side by side never share it; it is dropped and re-created.
"""

from __future__ import annotations

import psycopg
import pytest
from analysis_helpers import STREET_DB

from gridmap.services import sample
from gridmap.services.registry import Registry
from gridmap.storage import migrate
from gridmap.storage.db import cluster_for, database_url, libpq_url, make_engine


@pytest.fixture(scope="session")
def street_engine(settings, db_url):
    cluster = cluster_for(settings)
    with psycopg.connect(libpq_url(cluster.url("postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{STREET_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{STREET_DB}"')
    engine = make_engine(database_url(settings, dbname=STREET_DB))
    migrate.upgrade(engine)
    result = sample.load_sample_street(engine, settings=settings)
    assert result.loaded, result.message
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def street(street_engine, settings) -> Registry:
    """A registry on the loaded sample street (read only: tests must not change it)."""
    return Registry(street_engine, settings)
