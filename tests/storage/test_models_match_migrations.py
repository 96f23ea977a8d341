"""The ORM models and the migrations agree: on a fresh database migrated to head, Alembic's autogenerate
(configured as ``gridmap/storage/migrations/env.py`` configures it, with GeoAlchemy2's helpers) finds
nothing to do. A model that drifts from what the migrations built is a wrong description of the database:
fix the model (shipped migrations are never edited), or write a new migration if the model is right.

What autogenerate does not compare, and so this test does not check: CHECK constraints, server defaults,
partial indexes' WHERE clauses, triggers and functions.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import Column, MetaData, Text

from gridmap.storage import migrate
from gridmap.storage.db import make_engine
from gridmap.storage.models import Base
from tests.conftest import TEST_DB, _fresh_database

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def migrated(settings, db_url):
    """A database of its own, migrated from empty to head: nothing else has touched its schema."""
    engine = make_engine(_fresh_database(settings, f"{TEST_DB}_drift"))
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _drift(engine, metadata: MetaData) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_object": alembic_helpers.include_object,  # PostGIS's own tables and spatial indexes
            "render_item": alembic_helpers.render_item,
            "compare_type": True,
        })
        return compare_metadata(ctx, metadata)


def test_autogenerate_finds_nothing_to_do(migrated):
    tables = set(Base.metadata.tables)
    # every module of models is on the metadata (Alembic's env.py reads only this one)
    assert {"teams", "units", "mediation_cases", "event_photos", "idempotency_keys", "receipts"} <= tables
    assert _drift(migrated, Base.metadata) == []


def test_a_column_only_the_model_has_is_found(migrated):
    """The comparison can fail: a column added to a copy of the models shows up as an ``add_column``."""
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    metadata.tables["teams"].append_column(Column("nickname", Text))
    diff = _drift(migrated, metadata)
    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "teams", "nickname")]
