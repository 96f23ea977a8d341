"""The road network and who gets where first: gridmap's routing engine.

- :mod:`~gridmap.routing.roadgraph`: the directed road graph (CSR arrays) and snapping points to edges;
- :mod:`~gridmap.routing.team_index`: the live index of teams on that graph and the k-nearest ranking of
  responders by road (:class:`~gridmap.routing.team_index.TeamIndex`);
- :mod:`~gridmap.routing.hierarchy`: the contraction hierarchy that answers sparse-team queries fast;
- :mod:`~gridmap.routing.many_to_one`: travel times from the nearest of many origins to many destinations
  (the planners' coverage and response-time questions);
- :mod:`gridmap.routing._kernels`: the compiled (numba) searches behind all of them.

Pure numpy/scipy/shapely: routing never opens the database (import-linter forbids it); the graph is read
from PostGIS by :mod:`gridmap.storage` and kept as a cache by :mod:`gridmap.services.dispatch`.
"""
