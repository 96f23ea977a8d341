"""The operations simulator: a living street driven through the real HTTP API (``gridmap simulate``).

* :mod:`~gridmap.simulation.model` — every behaviour figure (:class:`Behaviour`) and the year of events the
  arrivals are drawn from (:class:`StreetProfile`);
* :mod:`~gridmap.simulation.arrivals` — what is reported, where and when;
* :mod:`~gridmap.simulation.agents` and :mod:`~gridmap.simulation.roads` — the teams and how they move;
* :mod:`~gridmap.simulation.clock` — the agenda and the two clocks (fast, live);
* :mod:`~gridmap.simulation.driver` — the HTTP calls (httpx);
* :mod:`~gridmap.simulation.runlog` — the run log;
* :mod:`~gridmap.simulation.engine` — the simulation itself;
* :mod:`~gridmap.simulation.world`, :mod:`~gridmap.simulation.server`, :mod:`~gridmap.simulation.run` — reading
  the street, simulation databases, the simulation's API, and running it;
* :mod:`~gridmap.simulation.study` — the dispatch-policy study.

It may read the street through ``gridmap.services``/``storage``/``core``, and talks to the API only over HTTP;
nothing below it imports it (the import-linter contract in pyproject.toml).
"""

from gridmap.simulation.model import Behaviour, Shift, StreetProfile

__all__ = ["Behaviour", "Shift", "StreetProfile"]
