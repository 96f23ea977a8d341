"""Fixtures of the analysis tests: the whole sample street in its own database, loaded once per session.

The database is named after the suite's test database (``GRIDMAP_TEST_DB_NAME``, default ``gridmap_test``)
with ``_street`` appended, so suites run side by side never share it; it is dropped and re-created.
"""

from __future__ import annotations

import pytest

from gridmap.services.registry import Registry
from tests.analysis.analysis_helpers import STREET_SUFFIX


@pytest.fixture(scope="session")
def street_engine(sample_street_db):
    engine = sample_street_db(STREET_SUFFIX)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def street(street_engine, settings) -> Registry:
    """A registry on the loaded sample street (read only: tests must not change it)."""
    return Registry(street_engine, settings)
