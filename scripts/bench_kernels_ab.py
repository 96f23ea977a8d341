"""A/B of the compiled search kernels: this tree's against another commit's, in one process, on the same queries.

    .venv/bin/python scripts/bench_kernels_ab.py [--rev HEAD~1] [--side 200] [--teams 100] [--rounds 12]

For a change inside ``gridmap/routing/_kernels`` (the reverse Dijkstra and the contraction hierarchy's
searches), whose effect is a few per cent to tens of per cent of a query that takes 0.1-1 ms: two runs of
``bench_dispatch`` on this 2-core machine differ by more than that (the same code measured 630 and 970 µs
minutes apart). So both versions are loaded into one process (``--rev``'s kernel files from git, as
modules of their own, each with its numba cache) and ``TeamIndex.rank`` is timed with each in turn,
``--rounds`` rounds of 500 queries, alternating, on one synthetic city (``scripts/_synthetic_city.py``,
``--side`` × ``--side`` nodes) with ``--teams`` teams. Only the kernel module differs between the two.

Printed: CPU µs per query (min and median of the rounds) for the reverse Dijkstra and for the hierarchy's
bucket query, each version; the answers (teams and ETAs) of both versions must be the same, or the run stops.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # scripts/_synthetic_city.py

from _synthetic_city import make_city  # noqa: E402

from gridmap.routing import hierarchy as hierarchy_mod  # noqa: E402
from gridmap.routing import team_index as team_index_mod  # noqa: E402
from gridmap.routing._kernels import ch as ch_now  # noqa: E402
from gridmap.routing._kernels import dijkstra as dijkstra_now  # noqa: E402
from gridmap.routing.hierarchy import Hierarchy  # noqa: E402
from gridmap.routing.roadgraph import RoadGraph  # noqa: E402
from gridmap.routing.team_index import TeamIndex  # noqa: E402

NOW = 1.75e9
QUERIES = 500


def kernels_at(rev: str, scratch: Path) -> tuple[ModuleType, ModuleType]:
    """``rev``'s dijkstra and ch kernel modules, loaded under names of their own (ch imports dijkstra by its
    package path, so its import line is pointed at the old dijkstra)."""
    tag = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True, capture_output=True,
                         text=True).stdout.strip()
    pkg = scratch / f"kernels_{tag}"
    pkg.mkdir(parents=True, exist_ok=True)
    for name in ("dijkstra", "ch"):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:gridmap/routing/_kernels/{name}.py"],
                              check=True, capture_output=True, text=True).stdout
        text = text.replace("from gridmap.routing._kernels.dijkstra import", f"from kernels_{tag}_dijkstra import")
        (pkg / f"kernels_{tag}_{name}.py").write_text(text)
    sys.path.insert(0, str(pkg))
    mods = []
    for name in ("dijkstra", "ch"):
        spec = importlib.util.spec_from_file_location(f"kernels_{tag}_{name}", pkg / f"kernels_{tag}_{name}.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods[0], mods[1]


def use(dijkstra: ModuleType, ch: ModuleType) -> None:
    team_index_mod._dijkstra = dijkstra  # the modules' own references to their kernels
    hierarchy_mod._ch = ch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rev", default="HEAD~1", help="the commit to compare with (default HEAD~1)")
    ap.add_argument("--side", type=int, default=200)
    ap.add_argument("--teams", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=12)
    args = ap.parse_args()
    console = Console()
    old = kernels_at(args.rev, Path("/tmp/gridmap_bench_kernels_ab"))
    versions = {"this tree": (dijkstra_now, ch_now), args.rev: old}

    c = make_city(args.side, 100.0, 2024)
    g = RoadGraph.from_arrays(c.node_ids, c.node_xy, c.source, c.target, c.length_m, c.travel_time_s, c.geoms,
                              c.edge_ids)
    rng = np.random.default_rng(1)
    r = TeamIndex(g, ["fire", "patrol"], stale_after_s=300.0, capacity=max(256, args.teams))
    codes = [f"T{i}" for i in range(args.teams)]
    for code in codes:
        r.set_team(code, status="available", skills=["fire"] if rng.random() < 0.7 else ["patrol"])
    lo, hi = c.node_xy.min(axis=0), c.node_xy.max(axis=0)
    r.move_teams(codes, rng.uniform(lo[0], hi[0], args.teams), rng.uniform(lo[1], hi[1], args.teams),
                 np.full(args.teams, NOW))
    r.use_hierarchy(Hierarchy(g))
    r.refresh_buckets()
    ex, ey = rng.uniform(lo[0], hi[0], QUERIES), rng.uniform(lo[1], hi[1], QUERIES)

    def answers(method: str) -> list:
        out = []
        for j in range(QUERIES):
            res = r.rank(ex[j], ey[j], now=NOW, skills=["fire"], k=5, method=method, with_routes=False)
            out.append([(p.team, round(p.eta_s, 6)) for p in res.picked])
        return out

    times: dict[tuple[str, str], list[float]] = {}
    for method in ("dijkstra", "hierarchy"):
        ref = None
        for name, mods in versions.items():  # compile, warm, and check both give the same answers
            use(*mods)
            got = answers(method)
            if ref is not None and got != ref:
                raise SystemExit(f"{method}: {name} answers differently from this tree")
            ref = got
        for _ in range(args.rounds):
            for name, mods in versions.items():
                use(*mods)
                t0 = time.process_time()
                for j in range(QUERIES):
                    r.rank(ex[j], ey[j], now=NOW, skills=["fire"], k=5, method=method, with_routes=False)
                times.setdefault((method, name), []).append((time.process_time() - t0) / QUERIES * 1e6)

    table = Table(title=f"TeamIndex.rank, city {args.side}×{args.side}, {args.teams} teams, "
                        f"{args.rounds}×{QUERIES} queries (CPU µs per query)")
    for col in ("search", "kernels", "min", "median", "median / this tree's"):
        table.add_column(col, justify="right" if col[0] in "m" else "left")
    for (method, name), ts in times.items():
        base = float(np.median(times[(method, "this tree")]))
        table.add_row(method, name, f"{min(ts):.0f}", f"{np.median(ts):.0f}", f"{np.median(ts) / base:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
