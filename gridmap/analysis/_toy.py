"""Tiny hand-made road graphs for the docstring examples (EPSG:4549 metres, 10 m/s)."""

from __future__ import annotations

import numpy as np
import shapely

from gridmap.routing.roadgraph import RoadGraph


def toy_graph(length_m: float = 1000.0, speed: float = 10.0) -> RoadGraph:
    """One two-way road from (0, 0) to (length_m, 0) in two halves: nodes A (0), B (middle), C (end)."""
    xy = np.array([[0.0, 0.0], [length_m / 2, 0.0], [length_m, 0.0]])
    pairs = [(0, 1), (1, 0), (1, 2), (2, 1)]
    geoms = np.array([shapely.LineString([xy[a], xy[b]]) for a, b in pairs], dtype=object)
    length = shapely.length(geoms)
    return RoadGraph.from_arrays([1, 2, 3], xy, [p[0] + 1 for p in pairs], [p[1] + 1 for p in pairs], length,
                                 length / speed, geoms)
