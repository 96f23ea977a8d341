"""gridmap.storage.areas: polygons leave storage as shapely geometries / GeoDataFrames, never as WKB."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from gridmap.storage import areas
from tests.storage.conftest import T0

pytestmark = [pytest.mark.db]


def test_current_polygons_are_geometries(conn):
    for code, level, parent, x0 in (("D", "district", None, 120.0), ("S", "street", "D", 120.0),
                                    ("C", "community", "S", 120.0), ("G", "grid", "C", 120.0)):
        conn.execute(text("INSERT INTO areas (code, level, name, parent_code, valid_from, geom) VALUES "
                          "(:c, :l, :c, :p, :f, ST_Multi(ST_MakeEnvelope(:x0, 30.2, :x0 + 0.1, 30.3, 4326)))"),
                     {"c": code, "l": level, "p": parent, "f": T0 - dt.timedelta(days=1), "x0": x0})
    streets = areas.current_streets(conn)
    assert list(streets["code"]) == ["S"] and streets.crs.to_epsg() == 4326
    assert streets.geometry.iloc[0].bounds == pytest.approx((120.0, 30.2, 120.1, 30.3))
    grids = areas.current_grids(conn)
    assert [(g["code"], g["community_code"], g["street_code"], g["district_code"]) for g in grids] == \
        [("G", "C", "S", "D")]
    assert grids[0]["geometry"].geom_type == "MultiPolygon" and "wkb" not in grids[0]
    b = areas.boundaries(conn, "S")
    assert list(b["code"]) == ["D", "S", "C"] and "wkb" not in b.columns
    assert b.geometry.iloc[1].equals(streets.geometry.iloc[0])
    shapes = areas.grid_shapes(conn, "S")
    assert list(shapes["code"]) == ["G"] and shapes.geometry.iloc[0].area == pytest.approx(0.01)
