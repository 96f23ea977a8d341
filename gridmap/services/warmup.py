"""Compile the routing kernels once, before the API's workers need them.

The dispatch searches run compiled kernels (``ch.py``, ``dijkstra.py``, ``routes.py`` and ``snap.py`` in
``gridmap/routing/_kernels``; numba ``@njit(cache=True)``). The first process that calls a kernel with a given
signature compiles it — about 40 s of CPU for all of them, minutes on a busy 2-core machine — and writes the machine
code next to the module (``__pycache__/*.nbi`` and ``*.nbc``). Every later process loads it from there in
well under a second, as long as the module's source file is unchanged (numba's cache index keys on the
file's modification time and size).

:func:`compile_kernels` calls every kernel on a small hand-made road graph, with the argument types the
dispatcher uses, so that a process started afterwards compiles nothing: ``gridmap setup`` runs it (with
:func:`warm_dispatch`, the real thing on the loaded street) and the API's supervisor runs it once before it
starts its workers, instead of each worker compiling the same kernels at the same time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import importlib.metadata
import importlib.util
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import shapely

from gridmap.core.vocabulary import WGS84

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gridmap.routing.roadgraph import RoadGraph

KERNEL_MODULES = ("gridmap.routing._kernels.ch", "gridmap.routing._kernels.dijkstra",
                  "gridmap.routing._kernels.routes", "gridmap.routing._kernels.snap")


@dataclass
class KernelReport:
    """What a warm-up did: kernel signatures compiled now, signatures loaded from the disk cache."""

    compiled: int
    loaded: int
    seconds: float

    @property
    def message(self) -> str:
        if self.compiled:
            return (f"compiled {self.compiled} routing kernel(s) in {self.seconds:.1f} s (cached on disk: later "
                    "starts load them in about a second)")
        return f"routing kernels loaded from the disk cache ({self.loaded} signatures, {self.seconds:.1f} s)"


def _dispatchers() -> list:
    from numba.core.registry import CPUDispatcher

    out = []
    for name in KERNEL_MODULES:
        mod = importlib.import_module(name)
        out += [v for v in vars(mod).values() if isinstance(v, CPUDispatcher)]
    return out


def kernel_counts() -> tuple[int, int]:
    """(signatures compiled, signatures loaded from the disk cache) by the kernels in this process so far."""
    compiled = loaded = 0
    for d in _dispatchers():
        s = d.stats
        compiled += sum(s.cache_misses.values())
        loaded += sum(s.cache_hits.values())
    return compiled, loaded


def _grid_graph(n: int = 6, block_m: float = 120.0, speed: float = 8.0, *, read_only: bool = False) -> RoadGraph:
    """A small two-way street grid (EPSG:4549 metres around Hangzhou) with one one-way street.

    ``read_only``: the edge lengths as a read-only array, as a pandas column from the database gives them
    (numba compiles a kernel separately for read-only and writable arrays)."""
    from gridmap.routing.roadgraph import RoadGraph

    x0, y0 = 500_000.0, 3_350_000.0
    ids = np.arange(1, n * n + 1, dtype=np.int64)
    xy = np.array([[x0 + (i % n) * block_m, y0 + (i // n) * block_m] for i in range(n * n)], dtype=float)
    pairs = []
    for i in range(n * n):
        r, c = divmod(i, n)
        if c + 1 < n:
            pairs += [(i, i + 1), (i + 1, i)] if r != 2 else [(i, i + 1)]  # row 2 is one-way
        if r + 1 < n:
            pairs += [(i, i + n), (i + n, i)]
    geoms = np.array([shapely.LineString([xy[a], xy[b]]) for a, b in pairs], dtype=object)
    length = shapely.length(geoms)
    length.setflags(write=not read_only)
    return RoadGraph.from_arrays(ids, xy, ids[[a for a, _ in pairs]], ids[[b for _, b in pairs]], length,
                                 length / speed, geoms, np.arange(1, len(pairs) + 1, dtype=np.int64))


def _origin(module: str) -> Path:
    """The source file of the (installed) module ``module``."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"cannot find the source file of {module}")
    return Path(spec.origin)


def _sources() -> dict[str, list[int]]:
    """The kernel modules' source files: (mtime in ns, size), which numba's cache index keys on."""
    out = {}
    for name in KERNEL_MODULES:
        st = _origin(name).stat()
        out[name] = [st.st_mtime_ns, st.st_size]
    return out


def _stamp_path() -> Path:
    return _origin(KERNEL_MODULES[0]).parent / "__pycache__" / "gridmap-kernels.json"


def _stamp() -> dict:
    return {"sources": _sources(), "numba": importlib.metadata.version("numba"), "python": sys.version}


def _index_files() -> list[str]:
    """numba's cache index files of the kernel modules (``__pycache__/ch.contract-203.py311.nbi``, ...)."""
    d = _stamp_path().parent
    return sorted(p.name for name in KERNEL_MODULES for p in d.glob(f"{name.rsplit('.', 1)[1]}.*.nbi"))


def kernels_cached() -> bool:
    """True if :func:`compile_kernels` ran to the end since the kernel sources, numba and Python last changed
    (a stamp it leaves next to numba's cache files) and the cache files it saw are all still there; checked
    without importing numba, so that the API's supervisor starts its workers at once instead of loading the
    cache in a child process first (a few seconds)."""
    try:
        stamp = json.loads(_stamp_path().read_text())
    except (OSError, ValueError):
        return False
    files = stamp.pop("index_files", None)
    return bool(files) and stamp == _stamp() and set(files) <= set(_index_files())


def compile_kernels() -> KernelReport:
    """Call every routing kernel once on a small graph (compiling it, or loading it from the disk cache).

    Covers what the dispatcher runs: snapping (one point and many), the team index and its hierarchy
    buckets, both searches with routes, and the many-to-one ETA of ``POST /v1/dispatch/eta``.
    """
    t0 = time.perf_counter()
    c0, l0 = kernel_counts()
    for read_only in (True, False):  # the dispatcher's graph (from the database), and one built in Python
        _exercise(_grid_graph(read_only=read_only))
    c1, l1 = kernel_counts()
    with contextlib.suppress(OSError):  # numba caches next to the modules; where it cannot, no stamp is left
        _stamp_path().write_text(json.dumps({**_stamp(), "index_files": _index_files()}))
    return KernelReport(c1 - c0, l1 - l0, time.perf_counter() - t0)


def _exercise(g: RoadGraph) -> None:
    from gridmap.routing.hierarchy import Hierarchy
    from gridmap.routing.many_to_one import network_times
    from gridmap.routing.team_index import TeamIndex

    team_index = TeamIndex(g, ["fire", "patrol"], capacity=16)
    xs = g.node_xy[:, 0] + 7.0
    ys = g.node_xy[:, 1] + 3.0
    codes = [f"W{i}" for i in range(5)]
    for c in codes:
        team_index.set_team(c, status="available", skills=["patrol"], workload=0, grid="g")
    pick = np.array([1, 8, 15, 22, 29])
    team_index.move_teams(codes, xs[pick], ys[pick], np.full(5, 100.0))
    team_index.move_teams(codes[:1], xs[[3]], ys[[3]], 101.0)  # one team alone: the scalar-time path
    px, py = float(g.node_xy[20, 0] + 30.0), float(g.node_xy[20, 1] + 2.0)
    team_index.rank(px, py, now=200.0, skills=["patrol"], k=2, method="dijkstra")
    team_index.use_hierarchy(Hierarchy(g))
    team_index.refresh_buckets()
    team_index.rank(px, py, now=200.0, skills=["patrol"], k=2, method="hierarchy")
    team_index.rank(px, py, now=200.0, k=1, method="auto")
    network_times(g, xs[pick], ys[pick], xs[:10], ys[:10])


def warm_dispatch(engine: Engine, now: dt.datetime) -> KernelReport:
    """Build the dispatcher on the loaded street and run what the API runs at start and on its first
    requests (a ranking with equipment, a many-to-one ETA), so that every kernel signature is on disk."""
    from gridmap.config import MEASURE_CRS
    from gridmap.core.crs import transformer
    from gridmap.services.dispatch import Dispatcher

    t0 = time.perf_counter()
    c0, l0 = kernel_counts()
    d = Dispatcher.from_database(engine, now=now)
    assert d.graph is not None  # from_database() builds it
    x, y = d.graph.node_xy[len(d.graph.node_xy) // 2]
    lon, lat = transformer(MEASURE_CRS, WGS84).transform(x, y)
    d.recommend(float(lon), float(lat), with_equipment=True, now=now)
    d.recommend(float(lon), float(lat), category="fire_hazard", now=now)
    d.eta_to_nearest([float(lon)], [float(lat)], kind="micro_fire_station", now=now)
    d.eta_to_nearest([float(lon)], [float(lat)], kind="team", now=now)
    c1, l1 = kernel_counts()
    return KernelReport(c1 - c0, l1 - l0, time.perf_counter() - t0)
