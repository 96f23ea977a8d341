"""Benchmark: snapping points to their nearest road edge, gridmap's compiled grid against shapely and geopandas.

What is timed is the whole answer ``RoadGraph.snap`` gives for N points (N = 1, 100, 10,000, 100,000,
1,000,000): the nearest edge within 500 m (as coverage, siting and dispatch snap), the distance, the
fraction along the edge and the foot on it. The points lie along the roads (uniform by length), each up
to 40 m off the road, like buildings, teams and events. Methods, on the same graph and the same points:

  gridmap             ``RoadGraph.snap``: one compiled pass over a uniform grid of the edges' segments
                      (gridmap/routing/_kernels/snap.py); one point takes its scalar route (the dispatch call)
  shapely STRtree     ``RoadGraph._snap_shapely``, the code ``snap`` ran before: ``STRtree.query_nearest``
                      + ``line_locate_point`` + ``line_interpolate_point`` (one point: its scalar route)
  geopandas           ``geopandas.sjoin_nearest(points, edges, max_distance=500, distance_col=...)``, one row
                      per point kept (ties), then ``line_locate_point`` + ``line_interpolate_point``

Graphs (EPSG:4549, built as scripts/bench_dispatch.py builds them):
  street   the sample street's OSM drive network (data/roads/hz_xihu_gongshu_osm_drive.gpkg)
  city     the generated 500 x 500 lattice city (scripts/_synthetic_city.py, 250,000 nodes)

Indexes (gridmap's segment grid, shapely's STRtree, the GeoDataFrame's sindex) are built before timing
and their build times are shown apart. Before a method is timed on a graph and N, its answer must agree
with gridmap's: the same edge, or a tie (distances within 1e-9 m: a two-way road's two directions, a
junction); distances within 1e-9 m; fraction (1e-12) and foot (1e-9 m) where the edge is the same. A
mismatch stops the run. At N = 1,000,000 the peers run once; that run is checked and timed.

The run prints the table (p50 wall time per call, µs per point by wall and by CPU time, × gridmap by both:
on a shared machine the CPU time is the steadier measure), how many answers were bit-identical,
the set-up times and the load average before and after (the machine may be shared).

usage: python scripts/bench_snap.py [--quick] [--peer-max-n N] [--seed N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/_synthetic_city.py, bench_dispatch.py
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # a checkout without the package installed

from _synthetic_city import make_city  # noqa: E402
from bench_dispatch import points_near_roads, street_graph  # noqa: E402

from gridmap.config import MEASURE_CRS  # noqa: E402
from gridmap.routing import roadgraph  # noqa: E402
from gridmap.routing.roadgraph import RoadGraph, Snaps  # noqa: E402

MAX_SNAP_M = 500.0
SIZES = (1, 100, 10_000, 100_000, 1_000_000)
TIE_M = 1e-9
MIN_TIME_S = 0.5  # repeat a method until it has run this long (at least 3 runs, at most 200)


def city_graph() -> RoadGraph:
    c = make_city()
    return RoadGraph.from_arrays(c.node_ids, c.node_xy, c.source, c.target, c.length_m, c.travel_time_s, c.geoms,
                                 c.edge_ids)


def geopandas_snapper(g: RoadGraph):
    """``sjoin_nearest`` against the edges (their spatial index built here, once), then the position along
    and the foot with shapely's linear referencing: the same answer as ``RoadGraph.snap``."""
    edges = gpd.GeoDataFrame({"edge": np.arange(g.n_edges)}, geometry=g.geoms, crs=MEASURE_CRS)
    edges.sindex  # noqa: B018 -- build the tree now, not in the first timed call

    def snap(x, y, max_distance):
        x, y = np.atleast_1d(np.asarray(x, dtype=float)), np.atleast_1d(np.asarray(y, dtype=float))
        pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=MEASURE_CRS)
        j = gpd.sjoin_nearest(pts, edges, how="left", max_distance=max_distance, distance_col="d")
        j = j[~j.index.duplicated(keep="first")].sort_index()
        edge = j["edge"].fillna(-1).to_numpy(dtype=np.int64)
        dist = j["d"].fillna(np.inf).to_numpy(dtype=float)
        ok = edge >= 0
        frac, fx, fy = np.zeros(len(x)), x.copy(), y.copy()
        if ok.any():
            geom = g.geoms[edge[ok]]
            along = shapely.line_locate_point(geom, pts.geometry.array[ok])
            glen = g.lengths_geom[edge[ok]]
            frac[ok] = np.clip(np.where(glen > 0, along / np.where(glen > 0, glen, 1.0), 0.0), 0.0, 1.0)
            foot = shapely.get_coordinates(shapely.line_interpolate_point(geom, along))
            fx[ok], fy[ok] = foot[:, 0], foot[:, 1]
        twin = np.where(ok, g.twin[np.maximum(edge, 0)], -1)
        return Snaps(edge, twin, frac, dist, fx, fy)

    return snap


def check(name: str, mine: Snaps, theirs: Snaps) -> tuple[int, int]:
    """Stop unless ``theirs`` agrees with ``mine`` (see the module docstring); returns (same edge, bit-identical)."""
    reach = mine.edge >= 0
    if not np.array_equal(reach, theirs.edge >= 0):
        raise SystemExit(f"{name}: {int((reach != (theirs.edge >= 0)).sum())} points reach a road in one answer only")
    gap = np.abs(mine.distance_m[reach] - theirs.distance_m[reach]).max(initial=0.0)
    if gap > TIE_M:
        raise SystemExit(f"{name}: distances differ by up to {gap:.3g} m")
    same = reach & (mine.edge == theirs.edge)
    worst = max(np.abs(mine.fraction[same] - theirs.fraction[same]).max(initial=0.0) * 1e3,  # 1e-12 -> 1e-9
                np.abs(mine.x[same] - theirs.x[same]).max(initial=0.0),
                np.abs(mine.y[same] - theirs.y[same]).max(initial=0.0))
    if worst > 1e-9:
        raise SystemExit(f"{name}: fraction or foot differ on the same edge (worst {worst:.3g})")
    exact = same & (mine.distance_m == theirs.distance_m) & (mine.fraction == theirs.fraction) & \
        (mine.x == theirs.x) & (mine.y == theirs.y)
    return int(same.sum()), int(exact.sum())


def time_method(fn, x, y, n: int, single: bool, max_runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU times in ms of ``fn`` on the n points (single: one call per point, each timed; CPU time is
    then the mean over all the calls, its clock being too coarse for one)."""
    ts: list[float] = []
    if single:
        c0 = time.process_time()
        for i in range(min(len(x), 2000)):
            xi, yi = [float(x[i])], [float(y[i])]
            t0 = time.perf_counter()
            fn(xi, yi, MAX_SNAP_M)
            ts.append((time.perf_counter() - t0) * 1e3)
        return ts, [(time.process_time() - c0) * 1e3 / len(ts)]
    xs, ys = x[:n], y[:n]
    cpu: list[float] = []
    spent = 0.0
    while len(ts) < max_runs and (len(ts) < 3 or spent < MIN_TIME_S):
        c0, t0 = time.process_time(), time.perf_counter()
        fn(xs, ys, MAX_SNAP_M)
        ts.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
        spent += ts[-1] / 1e3
    return ts, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="stop at 100,000 points")
    ap.add_argument("--peer-max-n", type=int, default=max(SIZES), help="largest N the peers are run on")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    console = Console(width=150)
    sizes = [n for n in SIZES if not args.quick or n <= 100_000]
    load_before = os.getloadavg()

    table = Table(title=f"snapping N points to their nearest road edge (≤ {MAX_SNAP_M:.0f} m), wall time")
    for col in ("graph", "N", "method", "runs", "p50 ms", "µs / point", "CPU µs / point", "× gridmap", "× (CPU)",
                "same edge / bit-identical"):
        table.add_column(col, justify="left" if col in ("graph", "method") else "right")
    setup = []
    for gname, build in (("street", street_graph), ("city", city_graph)):
        t0 = time.perf_counter()
        g = build()
        graph_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = roadgraph._snap_index(g.geoms, g.twin)
        grid_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        g._strtree  # noqa: B018 -- the reference's tree, built once
        tree_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sjoin = geopandas_snapper(g)
        gpd_s = time.perf_counter() - t0
        setup.append(f"{gname}: {g.n_nodes:,} nodes, {g.n_edges:,} edges, {index.n_segments:,} segments in the grid "
                     f"({index.n_mirrored:,} mirrored ones left out; {index.nbytes / 1e6:.1f} MB); graph {graph_s:.2f} s; "
                     f"index build: grid {grid_s * 1e3:.1f} ms, STRtree {tree_s * 1e3:.1f} ms, "
                     f"GeoDataFrame + sindex {gpd_s * 1e3:.1f} ms")
        rng = np.random.default_rng(args.seed)
        x, y = points_near_roads(g, max(sizes), rng)
        methods = {"gridmap": g.snap, "shapely STRtree": g._snap_shapely, "geopandas sjoin_nearest": sjoin}
        for n in sizes:
            single = n == 1
            xs, ys = (x[:2000], y[:2000]) if single else (x[:n], y[:n])
            base = g.snap(xs, ys, MAX_SNAP_M)  # warm-up (compilation, caches) and the answer to agree with
            p50, cpu50 = {}, {}
            for mname, fn in methods.items():
                peer = mname != "gridmap"
                if peer and n > args.peer_max_n:
                    continue
                once = peer and n >= 1_000_000
                if single:
                    answers = [fn([float(a)], [float(b)], MAX_SNAP_M) for a, b in zip(xs, ys, strict=True)]
                    got = Snaps(*(np.concatenate([getattr(s, f) for s in answers]) for f in
                                  ("edge", "twin", "fraction", "distance_m", "x", "y")))
                    ts, cpu = time_method(fn, xs, ys, 1, True, 1)
                elif once:
                    c0, t0 = time.process_time(), time.perf_counter()
                    got = fn(xs, ys, MAX_SNAP_M)
                    ts, cpu = [(time.perf_counter() - t0) * 1e3], [(time.process_time() - c0) * 1e3]
                else:
                    got = fn(xs, ys, MAX_SNAP_M)
                    ts, cpu = time_method(fn, xs, ys, n, False, 200)
                same, exact = check(f"{gname}, N={n:,}, {mname}", base, got)
                p50[mname] = statistics.median(ts)
                cpu50[mname] = statistics.median(cpu)
                ratio = p50[mname] / p50["gridmap"]
                cpu_ratio = cpu50[mname] / cpu50["gridmap"]
                table.add_row(gname, f"{n:,}", mname, str(len(ts)), f"{p50[mname]:.3f}",
                              f"{p50[mname] * 1e3 / n:.3f}", f"{cpu50[mname] * 1e3 / n:.3f}",
                              "1.0" if not peer else f"{ratio:,.1f}", "1.0" if not peer else f"{cpu_ratio:,.1f}",
                              "-" if not peer else f"{same / len(xs):.1%} / {exact / max(same, 1):.1%}")
        table.add_section()
    load_after = os.getloadavg()
    console.print(table)
    console.print("N = 1: one call per point (the dispatch call g.snap(\\[x], \\[y])), 2,000 points; "
                  "'same edge' is the share of points where the peer chose gridmap's edge (the rest are ties), "
                  "'bit-identical' the share of those where distance, fraction and foot are equal to the bit")
    for line in setup:
        console.print(line)
    console.print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (2 cores; the machine may be "
                  "shared)")


if __name__ == "__main__":
    main()
