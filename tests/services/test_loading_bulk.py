"""The bulk path (drop indexes, COPY, rebuild) into an empty table: every index and constraint comes back,
and a refused bulk load leaves them in place."""

from __future__ import annotations

import geopandas as gpd
import pytest
from sqlalchemy import text

from gridmap.errors import LoadRejected
from gridmap.services import loading
from tests.services._loading import box, equipment, write


def _index_and_constraint_defs(engine, table: str) -> tuple[set, set]:
    with engine.connect() as conn:
        idx = set(conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"), {"t": table}))
        con = set(conn.execute(text("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                    "WHERE conrelid = CAST(:t AS regclass)"), {"t": table}))
    return idx, con


@pytest.mark.parametrize("layer", ["fire_equipment", "grids"])
def test_bulk_load_into_an_empty_table_rebuilds_every_index(db, tmp_path, monkeypatch, layer):
    from gridmap.storage import bulk

    monkeypatch.setattr(bulk, "BULK_REBUILD_ROWS", 3)  # take the drop/COPY/rebuild path with a small file
    table = "areas" if layer == "grids" else layer
    before = _index_and_constraint_defs(db.engine, table)
    if layer == "grids":
        frame = gpd.GeoDataFrame({"code": [f"G{i}" for i in range(6)], "name": [f"{i}网格" for i in range(6)]},
                                 geometry=[box(120.09 + 0.002 * i, 30.27, 0.001, 0.001) for i in range(6)],
                                 crs="EPSG:4326")
    else:
        frame = equipment(12)
    report = db.load(layer, write(frame, tmp_path / "f.geojson"))
    assert report.inserted == len(frame)
    assert _index_and_constraint_defs(db.engine, table) == before  # same indexes and constraints, same definitions
    again = db.load(layer, write(frame, tmp_path / "g.geojson"))  # not empty now: the upsert path
    assert again.inserted == 0 and again.unchanged == len(frame)


def test_bulk_load_with_duplicate_keys_is_refused_and_indexes_survive(db, monkeypatch):
    from gridmap.storage import bulk

    monkeypatch.setattr(bulk, "BULK_REBUILD_ROWS", 3)
    before = _index_and_constraint_defs(db.engine, "fire_equipment")
    frame = equipment(8)
    prepared = loading.prepare(frame, "fire_equipment", settings=db.settings)
    codes = prepared.columns[prepared.names.index("code")]
    codes[5] = codes[0]  # a duplicate the per-file check did not see (it ran before)
    with pytest.raises(LoadRejected, match="duplicate"), db.engine.begin() as sa:
        loading.write_prepared(sa, "fire_equipment", prepared)
    assert _index_and_constraint_defs(db.engine, "fire_equipment") == before
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM fire_equipment")).scalar_one() == 0
