"""The embedded cluster, the external-URL mode and the migrations, against real PostgreSQL + PostGIS."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect, text

from gridmap.config import Settings
from gridmap.errors import DatabaseError
from gridmap.services import database
from gridmap.storage import migrate
from gridmap.storage.cluster import EmbeddedCluster
from gridmap.storage.db import cluster_for, database_url, libpq_url, make_engine
from tests.conftest import TEST_DB, new_database

pytestmark = pytest.mark.db


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def scratch_dir() -> Path:
    # not under /tmp/pytest-of-root (inside /tmp it is fine: the postgres user can traverse /tmp)
    d = Path("/tmp") / f"gridmap-cluster-test-{os.getpid()}"
    shutil.rmtree(d, ignore_errors=True)
    yield d
    EmbeddedCluster(d, 1).stop() if (d / "pgdata" / "PG_VERSION").exists() else None
    shutil.rmtree(d, ignore_errors=True)


def test_embedded_cluster_lifecycle(scratch_dir):
    port = _free_port()
    settings = Settings(data_dir=scratch_dir, db_port=port, database_url=None)
    cluster = cluster_for(settings)
    assert not cluster.status().initialised

    info = database.up(settings)  # init + start + migrate
    assert info.created and info.started and info.revision == migrate.head_revision()
    st = cluster.status()
    assert st.running and st.pid and st.pg_version == "15"
    assert (scratch_dir / "credentials").stat().st_mode & 0o077 == 0  # password file private
    if os.geteuid() == 0:
        assert (scratch_dir / "pgdata").stat().st_uid != 0  # the server runs as `postgres`, not root

    # loopback only, password required
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"host=127.0.0.1 port={port} user=gridmap password=wrong dbname=gridmap", connect_timeout=5)
    again = database.up(settings)
    assert not again.created and not again.started  # idempotent

    assert cluster.stop()
    assert not cluster.status().running
    assert not cluster.stop()
    # a command that needs the database starts it
    url = database_url(settings)
    with psycopg.connect(libpq_url(url)) as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3.")
    assert cluster.stop()


def test_external_url_never_starts_a_cluster(db_url, tmp_path):
    settings = Settings(database_url=db_url, data_dir=tmp_path / "nothing-here", db_port=_free_port())
    info = database.up(settings)
    assert info.revision == migrate.head_revision()
    assert not (tmp_path / "nothing-here").exists()
    assert database.status(settings)["mode"] == "external"
    assert "nothing to stop" in database.down(settings)


def test_external_url_must_be_postgres():
    with pytest.raises(DatabaseError, match="GRIDMAP_DATABASE_URL"):
        database_url(Settings(database_url="sqlite:///x.db"))


def test_migrations_upgrade_and_downgrade(settings, db_url):
    engine = make_engine(new_database(settings, f"{TEST_DB}_migrations"))  # per suite: suites may run side by side
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        insp = inspect(engine)
        tables = set(insp.get_table_names())
        expected = {"areas", "buildings", "households", "residents", "resident_pii", "businesses", "fire_equipment",
                    "teams", "team_members", "grid_staff", "road_nodes", "road_edges", "events", "event_categories"}
        assert expected <= tables
        with engine.connect() as conn:
            geoms = conn.execute(text(
                "SELECT f_table_name, f_geometry_column, srid FROM geometry_columns WHERE f_table_schema = 'public'"
            )).fetchall()
            assert {g[0] for g in geoms} >= {"areas", "buildings", "businesses", "fire_equipment", "teams",
                                             "road_nodes", "road_edges", "events"}
            for table, column, srid in geoms:
                assert srid == 4326, table
                gist = conn.execute(text(
                    "SELECT count(*) FROM pg_indexes WHERE tablename = :t AND indexdef ILIKE '%USING gist%' "
                    "AND indexdef LIKE '%' || :c || '%'"), {"t": table, "c": column}).scalar_one()
                assert gist >= 1, f"{table}.{column} has no GiST index"
            assert conn.execute(text("SELECT count(*) FROM event_categories")).scalar_one() >= 10
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert not (expected & set(inspect(engine).get_table_names()))
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_area_versions_cannot_overlap(engine, db):
    square = "ST_Multi(ST_MakeEnvelope(120.08, 30.26, 120.09, 30.27, 4326))"
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO areas (code, level, name, valid_from, valid_to, geom) VALUES "
                          f"('G1', 'grid', 'g', '2025-01-01', '2026-01-01', {square}), "
                          f"('G1', 'grid', 'g', '2026-01-01', NULL, {square})"))
    # a closed version inside the first one's years: only the exclusion constraint can refuse it (an open one
    # also meets the one-current-version index, which the server may check first)
    with pytest.raises(Exception, match="ex_areas_code_validity"), engine.begin() as conn:
        conn.execute(text(f"INSERT INTO areas (code, level, name, valid_from, valid_to, geom) VALUES "
                          f"('G1', 'grid', 'g', '2025-06-01', '2025-09-01', {square})"))



def test_pii_access_log_is_append_only(engine, db):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO pii_access_log (actor, purpose, table_name, row_count) VALUES ('a', 'b', 'c', 1)"))
        conn.execute(text("UPDATE pii_access_log SET actor = 'x'"))
        conn.execute(text("DELETE FROM pii_access_log"))
        assert conn.execute(text("SELECT actor FROM pii_access_log")).scalars().all() == ["a"]


def test_every_foreign_key_leads_an_index(engine):
    """Deleting a building (or a team, a resident...) must not scan the tables that refer to it: every
    foreign key's first column leads some index of its table (migration 0004 added the six that did not)."""
    with engine.connect() as conn:
        bare = conn.execute(text(
            "SELECT c.conrelid::regclass::text || '.' || a.attname FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace AND NOT EXISTS ("
            "  SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])")).scalars().all()
        n_fk = conn.execute(text("SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                                 "AND connamespace = 'public'::regnamespace")).scalar_one()
    assert n_fk >= 20  # the check looked at the real schema
    assert bare == []
