"""Fixtures of the routing tests: the sample street's real OSM drive network as a RoadGraph (read only)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from gridmap.config import MEASURE_CRS
from gridmap.core.crs import to_measure_crs, transformer
from gridmap.routing.roadgraph import RoadGraph

ROADS = Path(__file__).resolve().parents[2] / "data" / "roads" / "hz_xihu_gongshu_osm_drive.gpkg"


@pytest.fixture(scope="session")
def street() -> RoadGraph:
    """The sample street's OSM drive network in EPSG:4549, built as ``scripts/bench_dispatch.py`` builds it."""
    nodes = gpd.read_file(ROADS, layer="nodes", columns=["osmid", "x", "y"])
    edges = gpd.read_file(ROADS, layer="edges", columns=["u", "v", "length", "travel_time"])
    t = transformer("EPSG:4326", MEASURE_CRS)
    x, y = t.transform(nodes.geometry.x.to_numpy(), nodes.geometry.y.to_numpy())
    return RoadGraph.from_arrays(nodes["osmid"], np.column_stack([x, y]), edges["u"], edges["v"], edges["length"],
                                 edges["travel_time"], to_measure_crs(edges.geometry.to_numpy()),
                                 np.arange(1, len(edges) + 1))
