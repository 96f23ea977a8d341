"""gridmap.storage.roads: the one read of the road graph (dispatch's router and the analyses)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gridmap.storage import roads

pytestmark = [pytest.mark.db]


def _network(conn) -> None:
    """Nodes 1-2-3 on a line (two directed edges 1->2, 2->3) and node 9 far away, on no edge."""
    for nid, lon in ((1, 120.10), (2, 120.11), (3, 120.12), (9, 121.0)):
        conn.execute(text("INSERT INTO road_nodes (id, geom) VALUES (:i, ST_SetSRID(ST_MakePoint(:x, 30.28), 4326))"),
                     {"i": nid, "x": lon})
    for s, t, x0, x1 in ((1, 2, 120.10, 120.11), (2, 3, 120.11, 120.12)):
        conn.execute(text(
            "INSERT INTO road_edges (source, target, key, oneway, length_m, speed_kph, travel_time_s, highway, geom) "
            "VALUES (:s, :t, 0, true, 960, 36, 96, 'residential', "
            "ST_SetSRID(ST_MakeLine(ST_MakePoint(:x0, 30.28), ST_MakePoint(:x1, 30.28)), 4326))"),
            {"s": s, "t": t, "x0": x0, "x1": x1})


def test_road_graph_whole_network_has_every_node_and_edge_geometries(conn):
    _network(conn)
    nodes, edges = roads.road_graph(conn)
    assert list(nodes["id"]) == [1, 2, 3, 9]  # the whole network: the isolated node too
    assert list(zip(edges["source"], edges["target"], strict=True)) == [(1, 2), (2, 3)]
    assert list(edges.columns) == ["id", "source", "target", "length_m", "travel_time_s", "highway", "geometry"]
    assert edges.crs.to_epsg() == 4326
    assert edges.geometry.iloc[0].geom_type == "LineString"  # decoded here, not by the callers
    assert edges.geometry.iloc[1].coords[-1] == pytest.approx((120.12, 30.28))


def test_road_graph_in_a_bbox_has_the_edges_touching_it_and_their_ends(conn):
    _network(conn)
    nodes, edges = roads.road_graph(conn, (120.115, 30.27, 120.13, 30.29))
    assert list(zip(edges["source"], edges["target"], strict=True)) == [(2, 3)]
    assert list(nodes["id"]) == [2, 3]


def test_dispatcher_and_analysis_build_the_same_graph(db, conn):
    """Both callers build their RoadGraph from the same read: the same nodes and edges."""
    from gridmap.analysis.load import load_road_graph
    from gridmap.services.dispatch import Dispatcher

    _network(conn)
    conn.commit()
    d = Dispatcher(db.engine)
    d.rebuild()
    g = load_road_graph(db.engine)
    assert d.graph is not None
    assert (g.n_nodes, g.n_edges) == (d.graph.n_nodes, d.graph.n_edges) == (4, 2)
