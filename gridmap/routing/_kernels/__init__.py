"""Compiled (numba ``@njit``) kernels of the routing engine: snapping, Dijkstra, contraction hierarchy, routes.

Private: the public entry points are :class:`~gridmap.routing.roadgraph.RoadGraph`,
:class:`~gridmap.routing.team_index.TeamIndex`, :class:`~gridmap.routing.hierarchy.Hierarchy` and
:func:`~gridmap.routing.many_to_one.network_times`. They are written by hand because no maintained library
offers a k-nearest search over *moving* points part-way along edges with per-team eligibility (see each
module's docstring and docs/benchmarks.md for the comparisons with networkx, igraph, scipy and pgRouting).
"""
