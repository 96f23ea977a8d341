"""SQL of the road network (``road_nodes``, ``road_edges``): the graph the router and the analyses build on,
and a street's roads and buildings as compact GeoJSON for the field app's map.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, text

from gridmap.core.vocabulary import WGS84
from gridmap.storage._filters import _bbox_cond, _geoms, _sql_where


def road_graph(conn: Connection, bbox: tuple[float, float, float, float] | None = None
               ) -> tuple[pd.DataFrame, gpd.GeoDataFrame]:
    """The road graph as stored: the one read of it (dispatch's router and the planners' analyses both use it).

    Returns ``nodes`` (id, lon, lat) and ``edges`` (id, source, target, length_m, travel_time_s, highway and
    the line as ``geometry``, EPSG:4326), both ordered by id. With ``bbox``, the directed edges touching it and
    the nodes they end at; without, every node and every edge.
    """
    bind: dict = {}
    cond = _sql_where([_bbox_cond("e", bbox, bind)] if bbox is not None else [])
    rows = conn.execute(text(
        "SELECT e.id, e.source, e.target, e.length_m, e.travel_time_s, e.highway, ST_AsBinary(e.geom) AS wkb "
        f"FROM road_edges e{cond} ORDER BY e.id"), bind).all()
    cols = ["id", "source", "target", "length_m", "travel_time_s", "highway"]
    edges = gpd.GeoDataFrame(pd.DataFrame([r[:6] for r in rows], columns=cols),
                             geometry=_geoms([r[6] for r in rows]), crs=WGS84)
    which = ("" if bbox is None else
             f"WHERE n.id IN (SELECT source FROM road_edges e{cond} UNION SELECT target FROM road_edges e{cond}) ")
    nodes = pd.DataFrame(
        conn.execute(text(f"SELECT n.id, ST_X(n.geom), ST_Y(n.geom) FROM road_nodes n {which}ORDER BY n.id"),
                     bind).all(),
        columns=["id", "lon", "lat"],
    )
    return nodes, edges


def street_map_geojson(conn: Connection, street_code: str) -> str:
    """One FeatureCollection (text) of the street's roads (kind 'road', with highway class and name) and
    buildings (kind 'building'), clipped to the street's extent plus ~300 m, coordinates to 5 decimals."""
    return conn.execute(text("""
        WITH box AS (SELECT ST_Expand(ST_Extent(geom), 0.003) AS b FROM areas
                     WHERE code = :s AND level = 'street' AND valid_to IS NULL),
        roads AS (
            SELECT DISTINCT ON (LEAST(e.source, e.target), GREATEST(e.source, e.target), e.key)
                   e.name, e.highway, e.geom
            FROM road_edges e, box WHERE e.geom && box.b
            ORDER BY LEAST(e.source, e.target), GREATEST(e.source, e.target), e.key, e.id),
        feats AS (
            SELECT json_build_object('type', 'Feature', 'properties',
                       json_build_object('k', 'r', 'h', r.highway, 'n', r.name),
                       'geometry', ST_AsGeoJSON(ST_SimplifyPreserveTopology(r.geom, 0.00001), 5)::json) AS f
            FROM roads r
            UNION ALL
            SELECT json_build_object('type', 'Feature', 'properties', json_build_object('k', 'b'),
                       'geometry', ST_AsGeoJSON(ST_SimplifyPreserveTopology(ST_ExteriorRing(
                           ST_GeometryN(b.geom, 1)), 0.00001), 5)::json)
            FROM buildings b, box WHERE b.geom && box.b)
        SELECT json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(f), '[]'::json))::text
        FROM feats"""), {"s": street_code}).scalar_one()
