"""Load test of the API by the operations simulator: the sample street made ten times denser, played in fast mode.

    .venv/bin/python scripts/bench_simulation.py [--factor 10] [--hours 2] [--start-hour 8] [--workers 1] [--seed 1]

The street is the sample street (its roads, grids, ladders and year of events) with each team cloned ``factor - 1``
times (same kind, skills, home grid and staffed grids, its own member and phone user), so 150 teams become 1,500,
and the reports arrive ``factor`` times as often as in the sample year (about 1,000 a day instead of about 100).
The simulator then plays ``--hours`` of a weekday in simulated time against the simulation's own API process
(``python -m api.serve`` on the simulation clock), as fast as the API answers: every team's phone reports a fix
every 30 s (batched per clock step), reports come in from every channel, teams are offered, accept or decline,
drive, arrive and settle.

It prints the sustained rates (events reported per wall second, positions stored per wall second) and, per kind of
call, how many, p50 and p99 latency (ms, measured by the client over loopback), beside the peer on the same run:
the sample street itself (``factor`` 1) over the same hours. ``scripts/bench_api.py`` is the closed-loop peer of
the intake alone (its figures are in docs/benchmarks.md). Uses the cluster of the settings (GRIDMAP_DATA_DIR,
GRIDMAP_DB_PORT) and two scratch databases ``gridmap_bench_sim_x1`` and ``gridmap_bench_sim_x<factor>``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gridmap.config import get_settings  # noqa: E402
from gridmap.core.vocabulary import LOCAL_TZ as TZ  # noqa: E402
from gridmap.services import auth  # noqa: E402
from gridmap.simulation.driver import CallStats  # noqa: E402
from gridmap.simulation.engine import RunConfig  # noqa: E402
from gridmap.simulation.model import Behaviour  # noqa: E402
from gridmap.simulation.run import simulate  # noqa: E402
from gridmap.simulation.runlog import RunLog  # noqa: E402
from gridmap.simulation.server import SimulationServer  # noqa: E402
from gridmap.simulation.world import (  # noqa: E402
    SIM_ARGON2,
    ensure_template,
    ensure_users,
    fresh_copy,
    housekeeping,
    load_world,
    user_plan,
)

DAY = dt.date(2026, 11, 2)  # a Monday, the day after the sample year

# Clone every original team (factor - 1) times: the team, its first member (its phone's user) and that member's
# grids. Original codes hold no "-X"; clones are <code>-X<k>.
DENSIFY = """
INSERT INTO teams (code, name, kind, home_grid_code, skills, status, position_at, geom)
SELECT t.code || '-X' || k, t.name || ' #' || k, t.kind, t.home_grid_code, t.skills, t.status, t.position_at, t.geom
FROM teams t CROSS JOIN generate_series(1, :n) k WHERE t.code NOT LIKE '%-X%';

INSERT INTO team_members (code, team_id, role, name, phone, is_party_member, skills)
SELECT m.code || '-X' || k, c.id, m.role, m.name || ' #' || k, NULL, m.is_party_member, m.skills
FROM teams t CROSS JOIN generate_series(1, :n) k
JOIN teams c ON c.code = t.code || '-X' || k
JOIN LATERAL (SELECT * FROM team_members m WHERE m.team_id = t.id ORDER BY m.code LIMIT 1) m ON true
WHERE t.code NOT LIKE '%-X%';

INSERT INTO grid_staff (grid_code, member_id, role)
SELECT s.grid_code, c.id, 'assistant'
FROM grid_staff s JOIN team_members m ON m.id = s.member_id CROSS JOIN generate_series(1, :n) k
JOIN team_members c ON c.code = m.code || '-X' || k;
"""


def play(settings, factor: int, hours: float, start_hour: float, seed: int, workers: int) -> dict:
    template, creds = ensure_template(settings, lambda m: print(m, file=sys.stderr))
    database = f"gridmap_bench_sim_x{factor}"
    start = dt.datetime(DAY.year, DAY.month, DAY.day, tzinfo=TZ) + dt.timedelta(hours=start_hour)
    engine = fresh_copy(settings, template, database, start=start, seed=seed, rule=None)
    try:
        if factor > 1:
            with engine.begin() as conn:
                for stmt in DENSIFY.split(";"):
                    if stmt.strip():
                        conn.execute(text(stmt), {"n": factor - 1})
        world = load_world(engine, start)
        cheap = auth.Passwords(time_cost=SIM_ARGON2["argon2_time_cost"], memory_kib=SIM_ARGON2["argon2_memory_kib"],
                               parallelism=SIM_ARGON2["argon2_parallelism"])
        t0 = time.perf_counter()
        creds = {**creds, **ensure_users(engine, user_plan(engine, world, admin=True), creds, cheap)}
        print(f"x{factor}: {len(world.teams)} teams, users ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    finally:
        engine.dispose()
    stats = CallStats()
    log = RunLog(None, fixes=False)
    behaviour = Behaviour(arrival_rate_factor=float(factor))
    cfg = RunConfig(start, start + dt.timedelta(hours=hours), seed, "fast", 0.0)
    server = SimulationServer(settings, database, Path(settings.data_dir) / f"bench-simulation-x{factor}.log",
                              workers=workers)
    load0 = os.getloadavg()[0]
    with server as url, httpx.Client(base_url=url, timeout=120.0) as client:
        t1 = time.perf_counter()
        summary = simulate(world, client, creds, cfg, log, behaviour=behaviour, stats=stats,
                           housekeeping=housekeeping(settings, database))
        wall = time.perf_counter() - t1
    calls = stats.summary()
    fixes = sum(c["items"] for c in calls if c["call"].startswith("position"))
    return {"factor": factor, "teams": len(world.teams), "events": summary.events, "wall_s": wall,
            "events_s": summary.events / wall, "positions_s": fixes / wall, "positions": fixes,
            "calls": calls, "load": load0, "final": summary.final}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--hours", type=float, default=2.0, help="simulated hours played (default 2)")
    ap.add_argument("--start-hour", type=float, default=8.0, help="local hour the run starts (default 8)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="API worker processes (default 1)")
    args = ap.parse_args()
    settings = get_settings()
    rows = [play(settings, f, args.hours, args.start_hour, args.seed, args.workers) for f in (1, args.factor)]
    print(f"\n{args.hours:g} simulated hours from {args.start_hour:02.0f}:00 of {DAY} (seed {args.seed}), "
          f"API workers {args.workers}, client and API on this machine ({os.cpu_count()} cores)\n")
    print("| street | teams | reports | wall s | sim-time x | events/s | positions/s | load avg at start |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| x{r['factor']} | {r['teams']:,} | {r['events']:,} | {r['wall_s']:.0f} | "
              f"{args.hours * 3600 / r['wall_s']:.1f} | {r['events_s']:.2f} | {r['positions_s']:.0f} | {r['load']:.2f} |")
    kinds = sorted({c["call"] for r in rows for c in r["calls"]})
    print("\n| call | " + " | ".join(f"x{r['factor']} n | x{r['factor']} p50 ms | x{r['factor']} p99 ms"
                                       for r in rows) + " |")
    print("|---|" + "---:|---:|---:|" * len(rows))
    for k in kinds:
        cells = []
        for r in rows:
            c = next((c for c in r["calls"] if c["call"] == k), None)
            cells.append("– | – | –" if c is None else f"{c['n']:,} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f}")
        print(f"| {k} | " + " | ".join(cells) + " |")
    for r in rows:
        print(f"\nx{r['factor']} final states: {dict(sorted(r['final'].items()))}")


if __name__ == "__main__":
    main()
