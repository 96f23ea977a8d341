"""Loading the same file again changes nothing; a changed file updates only the rows that changed."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from sqlalchemy import text

from tests.services._loading import box, buildings, by_code, same_geometry, snapshot, write


# -- idempotent reloads and updates ----------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "parquet"])
def test_loading_the_same_file_twice_changes_nothing(db, tmp_path, fmt):
    path = write(buildings(), tmp_path / f"b.{fmt}")
    first = db.load("buildings", path)
    state = snapshot(db.engine)
    second = db.load("buildings", path)
    assert (first.inserted, first.updated, first.unchanged) == (5, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 5)
    after = snapshot(db.engine)
    assert after["buildings"] == state["buildings"]  # not even rewritten
    assert after["load_batches"][0] == 2
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT inserted, updated, unchanged, rows_in, sha256 FROM load_batches ORDER BY id")).all()
    assert [r[:4] for r in rows] == [(5, 0, 0, 5), (0, 0, 5, 5)]
    assert rows[0][4] == rows[1][4] and len(rows[0][4]) == 64


def test_changed_file_updates_only_changed_rows(db, tmp_path):
    src = buildings()
    db.load("buildings", write(src, tmp_path / "v1.geojson"))
    ids = dict(db.layer("buildings")[["code", "id"]].itertuples(index=False))
    changed = src.copy()
    changed.loc[changed.code == "B2", "floors"] = 18
    changed.loc[changed.code == "B4", "geometry"] = box(120.2, 30.2)
    extra = buildings(6).iloc[[5]]
    changed = pd.concat([changed, extra], ignore_index=True)
    rep = db.load("buildings", write(changed, tmp_path / "v2.geojson"))
    assert (rep.inserted, rep.updated, rep.unchanged) == (1, 2, 3)
    got = by_code(db.layer("buildings"))
    assert got.loc["B2", "floors"] == 18
    assert same_geometry(got.geometry["B4"], box(120.2, 30.2))
    assert got.loc["B6", "floors"] == extra["floors"].iloc[0]
    assert all(got.loc[c, "id"] == i for c, i in ids.items())  # upserted in place, ids kept


def test_reloading_areas_is_idempotent(db, tmp_path):
    """Versioned areas: a reload trips the (code, validity) exclusion constraint before the unique key."""
    grids = gpd.GeoDataFrame({"code": ["G1", "G2"], "name": ["一网格", "二网格"]},
                             geometry=[box(120.10, 30.28, 0.01, 0.01), box(120.11, 30.28, 0.01, 0.01)],
                             crs="EPSG:4326")
    path = write(grids, tmp_path / "grids.geojson")
    assert db.load("grids", path).inserted == 2
    rep = db.load("grids", path)
    assert (rep.inserted, rep.updated, rep.unchanged) == (0, 0, 2)
    grids.loc[1, "name"] = "第二网格"
    rep = db.load("grids", write(grids, tmp_path / "grids2.geojson"))
    assert (rep.inserted, rep.updated, rep.unchanged) == (0, 1, 1)
    assert db.layer("grids")["name"].tolist() == ["一网格", "第二网格"]
