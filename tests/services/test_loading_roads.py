"""The real OSM road network: nodes before edges, several layers in one GeoPackage, edges that refer to
missing nodes, duplicate edges."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gridmap.errors import InvalidInput, LoadRejected
from tests.services._loading import ROADS, scalar, snapshot, write


# -- the real OSM road network --------------------------------------------------------------------
def test_real_osm_roads_load_nodes_then_edges(db):
    nodes = db.load("road_nodes", ROADS, file_layer="nodes")
    edges = db.load("road_edges", ROADS, file_layer="edges")
    assert (nodes.rows_in, nodes.inserted) == (1407, 1407)
    assert (edges.rows_in, edges.inserted) == (3166, 3166)
    assert nodes.outside_area == edges.outside_area == 0 and nodes.problems == edges.problems == []
    counts = db.counts()
    assert counts["road_nodes"] == 1407 and counts["road_edges"] == 3166
    # SOURCES.md: 592.5 km of directed edge length, 36 % one-way, extent 120.0600–120.1349 E, 30.2550–30.3149 N
    assert scalar(db.engine, "SELECT sum(length_m) FROM road_edges") / 1000 == pytest.approx(592.5, abs=0.1)
    assert float(scalar(db.engine, "SELECT avg(oneway::int) FROM road_edges")) == pytest.approx(0.36, abs=0.01)
    ext = db.layer("road_nodes").total_bounds
    np.testing.assert_allclose(ext, [120.0600, 30.2550, 120.1349, 30.3149], atol=1e-3)
    # every edge starts and ends at its nodes
    assert scalar(db.engine, """
        SELECT count(*) FROM road_edges e JOIN road_nodes s ON s.id = e.source JOIN road_nodes t ON t.id = e.target
        WHERE ST_DWithin(ST_StartPoint(e.geom), s.geom, 1e-7)
          AND ST_DWithin(ST_EndPoint(e.geom), t.geom, 1e-7)""") == 3166
    again = db.load("road_edges", ROADS, file_layer="edges")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3166)


def test_gpkg_with_several_layers_needs_file_layer(db):
    before = snapshot(db.engine)
    with pytest.raises(InvalidInput) as exc:
        db.load("buildings", ROADS)
    assert exc.value.field == "file_layer" and "nodes, edges" in str(exc.value) and "--file-layer" in str(exc.value)
    assert snapshot(db.engine) == before


def test_edges_before_nodes_is_refused_and_writes_nothing(db):
    before = snapshot(db.engine)
    with pytest.raises(LoadRejected) as exc:
        db.load("road_edges", ROADS, file_layer="edges")
    msg = str(exc.value)
    assert "refers to something that is not loaded" in msg and 'not present in table "road_nodes"' in msg
    assert "road_nodes before road_edges" in msg
    assert snapshot(db.engine) == before


def test_edges_referring_to_one_missing_node_write_nothing(db, tmp_path):
    """Most edges fit, one does not: the COPY that already went through is rolled back too."""
    nodes = gpd.read_file(ROADS, layer="nodes")
    edges = gpd.read_file(ROADS, layer="edges")
    missing = int(edges["v"].iloc[-1])
    db.load("road_nodes", write(nodes[nodes.osmid != missing], tmp_path / "nodes.gpkg"))
    db.load("road_edges", write(edges.iloc[:100], tmp_path / "edges_a.gpkg"))
    before = snapshot(db.engine)
    with pytest.raises(LoadRejected) as exc:
        db.load("road_edges", write(edges, tmp_path / "edges_all.gpkg"))
    assert str(missing) in str(exc.value)
    assert snapshot(db.engine) == before


def test_duplicate_edges_without_key_column_are_named(db, tmp_path):
    """road_edges is keyed on (source, target, key); a file without `key` takes the default 0 for all."""
    nodes = gpd.GeoDataFrame({"osmid": [1, 2, 3]}, geometry=shapely.points([120.10, 120.11, 120.12], [30.28] * 3),
                             crs="EPSG:4326")
    db.load("road_nodes", write(nodes, tmp_path / "n.geojson"))
    line = shapely.LineString([(120.10, 30.28), (120.11, 30.28)])
    edges = gpd.GeoDataFrame({"u": [1, 2, 1], "v": [2, 3, 2], "oneway": [True, True, False], "length": [960.0] * 3,
                              "speed_kph": [30.0] * 3, "travel_time": [115.2] * 3},
                             geometry=[line, shapely.LineString([(120.11, 30.28), (120.12, 30.28)]), line],
                             crs="EPSG:4326")
    before = snapshot(db.engine)
    with pytest.raises(LoadRejected) as exc:
        db.load("road_edges", write(edges, tmp_path / "e.geojson"))
    assert "feature #2" in str(exc.value) and "duplicate key source/target=(1, 2)" in str(exc.value)
    assert snapshot(db.engine) == before
    rep = db.load("road_edges", write(edges, tmp_path / "e.geojson"), skip_invalid=True)
    assert (rep.inserted, rep.skipped) == (2, 1)
