"""Planner analyses: GeoDataFrames in, GeoDataFrames out.

Coverage and siting of fire stations, response times, hot spots, the safety index, grid workloads and
idle land. Every function takes GeoDataFrames that carry a CRS, measures in EPSG:4549 and returns frames
with a CRS. Only :mod:`gridmap.analysis.load` reads the database, with its filters pushed down to
PostGIS. Each public function's docstring has its Parameters, Returns and Examples, run by the tests
where they need no database (``tests/analysis/test_docstrings.py`` and ``test_analysis_doctests.py``).

>>> import gridmap as gm
>>> from gridmap import analysis as ga
>>> db = gm.connect()                                                    # doctest: +SKIP
>>> g = ga.load_road_graph(db, area="330106900")                         # doctest: +SKIP
>>> stations = ga.load_equipment(db, "micro_fire_station", area="330106900")  # doctest: +SKIP
>>> b = ga.building_coverage(g, stations, ga.load_buildings(db, area="330106900"), minutes=3)  # doctest: +SKIP
>>> ga.coverage_summary(b)["share_covered"]                              # doctest: +SKIP
"""

from gridmap.analysis.coverage import (
    FIRE_STATION_MINUTES,
    MICRO_STATION_MINUTES,
    building_coverage,
    coverage_by_area,
    coverage_summary,
    isochrones,
    travel_times,
)
from gridmap.analysis.hotspots import cell_polygons, cells_for, getis_ord, hex_counts, hotspot_table, hotspots
from gridmap.analysis.idle_land import idle_land_summary, open_land, parking_pressure, rank_idle_land
from gridmap.analysis.load import (
    area_bounds,
    load_buildings,
    load_equipment,
    load_event_month_counts,
    load_events,
    load_grid_registry,
    load_population,
    load_road_graph,
    load_roads,
)
from gridmap.analysis.response import (
    DEFAULT_TARGETS_MIN,
    response_by_area,
    response_summary,
    response_times,
    worst,
)
from gridmap.analysis.safety import DIMENSIONS, WINDOWS, Dimension, count_events, index_table, safety_index
from gridmap.analysis.siting import (
    GREEDY_GUARANTEE,
    SitingResult,
    coverage_matrix,
    maximal_covering,
    road_node_candidates,
)
from gridmap.analysis.workload import grid_workload, workload_summary

__all__ = [
    "DEFAULT_TARGETS_MIN",
    "DIMENSIONS",
    "FIRE_STATION_MINUTES",
    "GREEDY_GUARANTEE",
    "MICRO_STATION_MINUTES",
    "WINDOWS",
    "Dimension",
    "SitingResult",
    "area_bounds",
    "building_coverage",
    "cell_polygons",
    "cells_for",
    "count_events",
    "coverage_by_area",
    "coverage_matrix",
    "coverage_summary",
    "getis_ord",
    "grid_workload",
    "hex_counts",
    "hotspot_table",
    "hotspots",
    "idle_land_summary",
    "index_table",
    "isochrones",
    "load_buildings",
    "load_equipment",
    "load_event_month_counts",
    "load_events",
    "load_grid_registry",
    "load_population",
    "load_road_graph",
    "load_roads",
    "maximal_covering",
    "open_land",
    "parking_pressure",
    "rank_idle_land",
    "response_by_area",
    "response_summary",
    "response_times",
    "road_node_candidates",
    "safety_index",
    "travel_times",
    "workload_summary",
    "worst",
]
