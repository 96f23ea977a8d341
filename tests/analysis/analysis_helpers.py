"""Hand-made road graphs and frames for the analysis tests (EPSG:4549 metres)."""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np

from tests.graphs import lattice, make_graph

__all__ = ["CRS", "STREET", "STREET_DB", "STREET_SUFFIX", "lattice", "make_graph", "points"]

CRS = "EPSG:4549"


def points(xy, crs: str = CRS, **columns) -> gpd.GeoDataFrame:
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    return gpd.GeoDataFrame(columns, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=crs)
STREET = "330106900"  # the sample street (示例街道)
#: The sample street's database: the suite's test database name (as tests/conftest.py reads it) + "_street",
#: so suites run side by side (GRIDMAP_TEST_DB_NAME) never share it.
STREET_SUFFIX = "street"
STREET_DB = f"{os.environ.get('GRIDMAP_TEST_DB_NAME', 'gridmap_test')}_{STREET_SUFFIX}"
