"""The whole sample street, generated and loaded into a real PostGIS, as `make demo` does."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import shapely
from sqlalchemy import text

from gridmap.errors import Conflict
from gridmap.services import sample
from gridmap.services.registry import Registry
from gridmap.storage import migrate
from gridmap.storage.db import make_engine
from tests.conftest import TEST_DB, new_database

pytestmark = [pytest.mark.db, pytest.mark.slow]
SAMPLE_DB = f"{TEST_DB}_sample_street"  # per suite: suites may run side by side
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample_engine(settings, db_url):
    engine = make_engine(new_database(settings, SAMPLE_DB))
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def loaded(sample_engine, settings):
    result = sample.load_sample_street(sample_engine, settings=settings)
    assert result.loaded
    return result


def test_counts_match_the_generator(loaded, sample_engine, settings):
    reg = Registry(sample_engine, settings)
    counts = reg.counts()
    expected = loaded.counts
    assert counts["road_nodes"] == 1407 and counts["road_edges"] == 3166  # the real OSM network, whole
    for layer in ("buildings", "households", "residents", "businesses", "fire_equipment", "teams", "team_members",
                  "events"):
        assert counts[layer] == expected[layer], layer
    assert counts["areas.grid"] == 149
    assert counts["areas.street"] == 2  # the main street and the smaller 330106901 (its south-east corner)
    assert counts["areas.district"] == 13
    assert 15 <= counts["areas.community"] <= 30
    assert counts["residents"] == 260_000
    assert 120 <= counts["teams"] <= 180


def test_reload_is_a_no_op_and_foreign_data_is_protected(loaded, sample_engine, settings, engine, db):
    again = sample.load_sample_street(sample_engine, settings=settings)
    assert not again.loaded and "already loaded" in again.message
    # a database holding other registry data is not wiped without --replace
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO buildings (code, floors, use, geom) VALUES "
                          "('X1', 3, 'residential', ST_Multi(ST_Buffer(ST_Point(120.1, 30.28, 4326), 0.0001)))"))
    with pytest.raises(Conflict, match="--replace"):
        sample.load_sample_street(engine, settings=settings)


def test_everything_is_placed_in_its_grid(loaded, sample_engine):
    with sample_engine.connect() as conn:
        stray = conn.execute(text("""
            SELECT count(*) FROM buildings b JOIN areas g ON g.code = b.grid_code AND g.valid_to IS NULL
            WHERE NOT ST_Intersects(g.geom, ST_PointOnSurface(b.geom))""")).scalar_one()
        assert stray == 0
        assert conn.execute(text("SELECT count(*) FROM buildings WHERE grid_code IS NULL")).scalar_one() == 0
        unplaced = conn.execute(text("SELECT count(*) FROM events WHERE grid_area_id IS NULL")).scalar_one()
        assert unplaced == 0
        # grids do not overlap (more than a square metre) and lie inside the street
        overlap = conn.execute(text("""
            SELECT coalesce(max(ST_Area(ST_Intersection(a.geom, b.geom)::geography)), 0)
            FROM areas a JOIN areas b ON a.level = 'grid' AND b.level = 'grid' AND a.id < b.id
             AND a.geom && b.geom AND ST_Intersects(a.geom, b.geom)""")).scalar_one()
        assert overlap < 1.0
        pop = conn.execute(text("""
            SELECT sum(population) FROM areas WHERE level = 'grid' AND valid_to IS NULL""")).scalar_one()
        assert pop == 260_000


def test_redrawn_grid_keeps_old_events(loaded, sample_engine, settings):
    reg = Registry(sample_engine, settings)
    grids = reg.layer("grids")
    code = grids.code.iloc[0]
    old = grids.geometry.iloc[0]
    with sample_engine.connect() as conn:
        before = conn.execute(text("SELECT count(*), min(grid_area_id), max(grid_area_id) FROM events "
                                   "WHERE grid_code = :c"), {"c": code}).one()
    assert before[0] > 0 and before[1] == before[2]
    when = dt.datetime(2026, 11, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    new_id = reg.redraw(code, shapely.buffer(old, -0.0001).geoms[0] if old.geom_type == "MultiPolygon" else old,
                        when)
    try:
        with sample_engine.connect() as conn:
            after = conn.execute(text("SELECT count(*), min(grid_area_id), max(grid_area_id) FROM events "
                                      "WHERE grid_code = :c"), {"c": code}).one()
        assert after == before  # past events still point at the version they fell in
        assert new_id != before[1]
        assert len(reg.layer("grids", at=when - dt.timedelta(days=1)).query("code == @code")) == 1
        current = reg.layer("grids").set_index("code").geometry[code]
        assert current.area < old.area
    finally:
        with sample_engine.begin() as conn:  # restore for the other tests
            conn.execute(text("DELETE FROM areas WHERE id = :i"), {"i": new_id})
            conn.execute(text("UPDATE areas SET valid_to = NULL WHERE code = :c"), {"c": code})


def test_default_reads_have_no_personal_data(loaded, sample_engine, settings, tmp_path):
    reg = Registry(sample_engine, settings)
    some_grid = reg.layer("grids").code.iloc[3]
    people = reg.residents(area=some_grid)
    assert len(people) > 0
    assert not {"name", "id_card", "phone"} & set(people.columns)
    masked = reg.residents(area=some_grid, personal=True, actor="test", purpose="checking masks")
    assert masked.id_card.str.fullmatch(r"\d{6}\*{8}[\dX]{4}").all()
    assert masked.phone.str.fullmatch(r"\d{3}\*{4}\d{4}").all()


def test_readme_python_example_runs(loaded, monkeypatch, settings):
    """The README's Python block is a runnable example: run it on the sample street."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.setenv("GRIDMAP_DB_NAME", SAMPLE_DB)
    from gridmap.config import get_settings

    get_settings.cache_clear()
    try:
        block = block.replace('db.load("fire_equipment", "hydrants.geojson")', "pass")
        block = block.replace('"buildings.gpkg"', repr(str(ROOT / "artifacts" / "readme-buildings.gpkg")))
        ns: dict = {}
        exec(compile(block, "README.md", "exec"), ns)
        assert len(ns["grids"]) == 149
        assert len(ns["community"]) >= 3
        assert len(ns["people"]) > 0 and "id_card" not in ns["people"].columns
        assert set(ns["hydrants"].kind) == {"hydrant"}
    finally:
        get_settings.cache_clear()



def test_the_live_state_is_consistent(loaded, sample_engine):
    """No team is busy without an assignment (the sample holds none): teams are generated on or off duty."""
    from gridmap.storage import teams as teams_sql
    with sample_engine.connect() as conn:
        assert teams_sql.busy_teams_without_assignment(conn) == []
        statuses = set(conn.execute(text("SELECT DISTINCT status FROM teams")).scalars())
    assert statuses == {"available", "off_duty"}


def test_refresh_brings_the_on_duty_teams_to_now(loaded, sample_engine, db):
    now = dt.datetime(2027, 3, 1, 8, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    with sample_engine.begin() as conn:  # old data: a team marked busy that holds no assignment
        busy = conn.execute(text("SELECT code FROM teams WHERE status = 'available' ORDER BY code LIMIT 1")).scalar_one()
        conn.execute(text("UPDATE teams SET status = 'on_site' WHERE code = :c"), {"c": busy})
        where_before = conn.execute(text("SELECT code, ST_AsText(geom) FROM teams ORDER BY code")).all()
        off = conn.execute(text("SELECT code, position_at FROM teams WHERE status = 'off_duty' ORDER BY code")).all()
    try:
        result = sample.refresh_live_state(sample_engine, now)
        assert result.freed == 1 and result.stamped > 100
        with sample_engine.connect() as conn:
            on_duty = conn.execute(text("SELECT DISTINCT position_at FROM teams WHERE status <> 'off_duty'")).all()
            assert on_duty == [(now,)]
            assert conn.execute(text("SELECT status FROM teams WHERE code = :c"), {"c": busy}).scalar_one() == "available"
            assert conn.execute(text("SELECT code, ST_AsText(geom) FROM teams ORDER BY code")).all() == where_before
            assert conn.execute(text("SELECT code, position_at FROM teams WHERE status = 'off_duty' "
                                     "ORDER BY code")).all() == off
        # never backwards
        assert sample.refresh_live_state(sample_engine, now - dt.timedelta(days=1)).stamped == 0
    finally:
        with sample_engine.begin() as conn:
            conn.execute(text("UPDATE teams SET status = 'available' WHERE code = :c"), {"c": busy})
    # a database that is not the sample street: its teams report their own positions
    with pytest.raises(Conflict, match="sample street"):
        sample.refresh_live_state(db.engine, now)
