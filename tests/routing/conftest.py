"""Fixtures of the routing tests: the sample street's real OSM drive network as a RoadGraph (read only)."""

from __future__ import annotations

import pytest

from gridmap.routing.roadgraph import RoadGraph
from tests.graphs import osm_street


@pytest.fixture(scope="session")
def street() -> RoadGraph:
    """The sample street's OSM drive network in EPSG:4549, built as ``scripts/bench_dispatch.py`` builds it."""
    return osm_street()
