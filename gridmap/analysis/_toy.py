"""Tiny hand-made road graphs for the docstring examples (EPSG:4549 metres, 10 m/s)."""

from __future__ import annotations

from gridmap.routing.roadgraph import RoadGraph


def toy_graph(length_m: float = 1000.0, speed: float = 10.0) -> RoadGraph:
    """One two-way road from (0, 0) to (length_m, 0) in two halves: nodes A (0), B (middle), C (end), ids 1-3."""
    nodes = {"A": (0.0, 0.0), "B": (length_m / 2, 0.0), "C": (length_m, 0.0)}
    return RoadGraph.from_roads(nodes, [("A", "B", True), ("B", "C", True)], speed_mps=speed, node_ids=[1, 2, 3])
