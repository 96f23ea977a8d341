"""The street as the simulator sees it (read once from PostGIS), the simulation's users, and simulation
databases (copies of the sample street with the simulation mark).

The simulator reads the street through gridmap's own services and storage (the road graph exactly as the
dispatcher builds it, the teams, the grids, the year of events its arrivals are drawn from) and then talks to
the API only over HTTP, as a field app and a hotline gateway would.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import shapely
from pyproj import Transformer
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gridmap.config import MEASURE_CRS, Settings
from gridmap.core.crs import transformer
from gridmap.core.vocabulary import WGS84
from gridmap.errors import ConfigError, NotFound
from gridmap.services import auth, sample
from gridmap.services import users as users_service
from gridmap.services.dispatch import Dispatcher, DispatchPolicy
from gridmap.simulation.model import StreetProfile
from gridmap.simulation.roads import SimRoads
from gridmap.storage import areas as areas_sql
from gridmap.storage import escalation as escalation_sql
from gridmap.storage import events as events_sql
from gridmap.storage import migrate
from gridmap.storage import simulation as simulation_sql
from gridmap.storage import teams as teams_sql
from gridmap.storage import users as users_sql
from gridmap.storage.db import cluster_for, database_url, libpq_url, make_engine

USERS_FILE = "simulation_users.txt"
INTAKE, OPERATOR, ADMIN = "sim-intake", "sim-operator", "sim-admin"
#: Argon2 of the simulation databases' users and of the API serving them (gridmap simulate fast): the simulator
#: logs 150 phones in per run, and these databases hold no real account
SIM_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1}
#: zone of a patrolling team: its grids and this margin (a junction just across the grid's edge is its own too)
ZONE_MARGIN_M = 30.0


@dataclass(frozen=True)
class TeamInfo:
    code: str
    kind: str
    status: str
    grids: tuple[str, ...]
    lon: float | None
    lat: float | None
    member_code: str | None

    @property
    def username(self) -> str:
        return f"sim-{self.code.lower()}"


@dataclass
class World:
    roads: SimRoads
    teams: list[TeamInfo]
    zones: dict[str, np.ndarray]
    street: str
    rungs: dict[tuple[str, int], tuple[int, str, bool]]
    history: pd.DataFrame
    profile: StreetProfile
    to_local: Transformer
    to_lonlat: Transformer
    #: the area of the simulation's command room (its operator): the district when the street's grids lie in
    #: several streets of one district (the sample has two), else the street
    command_area: str = ""


def load_world(engine: Engine, history_end: dt.datetime, history_days: int = 365) -> World:
    """Read the street: roads (as the dispatcher builds them), teams, grids, ladders, and the year of events
    before ``history_end``."""
    d = Dispatcher(engine, DispatchPolicy(hierarchy=False))
    d.rebuild(history_end)
    assert d.graph is not None
    roads = SimRoads(d.graph)
    with Session(engine) as session, session.begin():
        conn = session.connection()
        team_rows = teams_sql.teams_for_simulation(conn)
        grid_rows = areas_sql.current_grids(conn)
        rungs = escalation_sql.rungs(conn)
        history = events_sql.event_history(conn, history_end - dt.timedelta(days=history_days), history_end)
    if not grid_rows:
        raise NotFound("the database has no grids", field="areas", fix="load the sample street (gridmap setup)")
    streets = sorted({r["street_code"] for r in grid_rows if r["street_code"]})
    districts = sorted({r["district_code"] for r in grid_rows if r["district_code"]})
    command = districts[0] if len(streets) > 1 and len(districts) == 1 else (streets[0] if streets else "")
    to_local = transformer(WGS84, MEASURE_CRS)
    to_lonlat = transformer(MEASURE_CRS, WGS84)
    polys = {r["code"]: shapely.transform(r["geometry"],
                                          lambda c: np.column_stack(to_local.transform(c[:, 0], c[:, 1])))
             for r in grid_rows}
    nx, ny = roads.g.node_xy[:, 0], roads.g.node_xy[:, 1]
    teams, zones = [], {}
    for r in team_rows:
        info = TeamInfo(r["code"], r["kind"], r["status"], tuple(r["grids"] or ()), r["lon"], r["lat"],
                        r["member_code"])
        teams.append(info)
        own = [polys[g] for g in info.grids if g in polys]
        if own:
            zone = shapely.buffer(shapely.union_all(own), ZONE_MARGIN_M)
            zones[info.code] = shapely.contains_xy(zone, nx, ny)
        else:
            zones[info.code] = np.ones(roads.g.n_nodes, dtype=bool)
    return World(roads, teams, zones, streets[0] if streets else "", rungs, history,
                 StreetProfile.from_history(history), to_local, to_lonlat, command)


# -- users ----------------------------------------------------------------------------------------------------
def read_credentials(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            out[parts[0]] = parts[2]
    return out


def write_credentials(path: Path, creds: dict[str, str], roles: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# gridmap simulator users (username role password): one phone per team, the intake gateway and "
                "the command room. Made by `gridmap simulate`; used only by it.\n")
        for name in sorted(creds):
            f.write(f"{name} {roles.get(name, '-')} {creds[name]}\n")
    os.chmod(path, 0o600)


def user_plan(engine: Engine, world: World, *, admin: bool) -> dict[str, tuple[str, str | None, str | None]]:
    """username -> (role, area, member) of every user the simulation needs (the operator's area: the command
    room's, a district or a street)."""
    with Session(engine) as session, session.begin():
        roles = teams_sql.member_roles(session.connection(), [t.member_code for t in world.teams if t.member_code])
    plan: dict[str, tuple[str, str | None, str | None]] = {
        INTAKE: ("intake", None, None), OPERATOR: ("operator", world.command_area or world.street, None)}
    if admin:
        plan[ADMIN] = ("admin", None, None)
    for t in world.teams:
        if t.member_code is None:
            continue
        role = "grid_worker" if roles.get(t.member_code) == "grid_worker" else "volunteer"
        plan[t.username] = (role, None, t.member_code)
    return plan


def ensure_users(engine: Engine, plan: dict[str, tuple[str, str | None, str | None]], known: dict[str, str],
                 passwords: auth.Passwords) -> dict[str, str]:
    """Make every planned user exist with a password the simulator knows: ``known`` ones are kept when they
    still log in, the others created (or their password reset). Returns username -> password."""
    creds = {}
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session:
        for name, (role, area, member) in sorted(plan.items()):
            with session.begin():
                row = users_sql.user(session.connection(), name)
                level = areas_sql.area_level(session.connection(), area) if area else None
            areas: dict[str, str | None] = {"street_code": None, "district_code": None, "community_code": None}
            if level is not None:
                areas[f"{level}_code"] = area
            pw = known.get(name)
            if row is not None and pw is not None and row["active"] and row["role"] == role \
                    and all(row[k] == v for k, v in areas.items()) and passwords.verify_held(row["password_hash"], pw):
                creds[name] = pw
                continue
            pw = secrets.token_urlsafe(18)
            if row is None:
                auth.create_user(session, username=name, password=pw, role=role, member_code=member,
                                 passwords=passwords, street_code=areas["street_code"],
                                 district_code=areas["district_code"], community_code=areas["community_code"])
            else:
                users_service.update_user(session, None, name, {"active": True, "role": role, **areas,
                                                                "member_code": member}, now)
                users_service.reset_password(session, None, name, pw, now=now, passwords=passwords)
            creds[name] = pw
    return creds


# -- simulation databases ---------------------------------------------------------------------------------------
def _admin_url(settings: Settings) -> str:
    if settings.database_url:
        return libpq_url(make_url(database_url(settings)).set(database="postgres").render_as_string(hide_password=False))
    cluster = cluster_for(settings)
    cluster.start()
    return libpq_url(cluster.url("postgres"))


def db_url(settings: Settings, name: str) -> str:
    if settings.database_url:
        return make_url(database_url(settings)).set(database=name).render_as_string(hide_password=False)
    return database_url(settings, dbname=name)


def template_name(settings: Settings) -> str:
    return f"{settings.db_name}_sim_template"


def _fingerprint() -> str:
    return f"sample v{sample.SAMPLE_VERSION}, schema {migrate.head_revision()}, users 2"


def ensure_template(settings: Settings,
                    say: Callable[[str], None] = lambda msg: None) -> tuple[str, dict[str, str]]:
    """The simulation template (a freshly loaded sample street, marked, with the simulator's users), made once
    and reused while the generator, the schema and the users file still match it. Returns (name, credentials)."""
    name = template_name(settings)
    path = Path(settings.data_dir) / USERS_FILE
    known = read_credentials(path)
    with psycopg.connect(_admin_url(settings), autocommit=True) as admin:
        exists = simulation_sql.database_exists(admin, name)
    engine = make_engine(db_url(settings, name), pool_size=2, max_overflow=2) if exists else None
    try:
        if engine is not None:
            with Session(engine) as session, session.begin():
                mark = simulation_sql.mark(session.connection())
            if mark is None or mark["note"] != _fingerprint():
                engine.dispose()
                engine = None
        if engine is None:
            say(f"making the simulation template {name}: the sample street, loaded fresh (a minute, once)")
            with psycopg.connect(_admin_url(settings), autocommit=True) as admin:
                simulation_sql.drop_database(admin, name)
                admin.execute(f'CREATE DATABASE "{name}"')
            engine = make_engine(db_url(settings, name), pool_size=2, max_overflow=2)
            migrate.upgrade(engine)
            sample.load_sample_street(engine, settings=settings)
            with engine.begin() as conn:
                simulation_sql.put_mark(conn, source=f"{settings.db_name} sample street", seed=None,
                                        clock_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), note=_fingerprint())
        world = load_world(engine, dt.datetime.now(dt.UTC))
        plan = user_plan(engine, world, admin=True)
        cheap = auth.Passwords(time_cost=SIM_ARGON2["argon2_time_cost"], memory_kib=SIM_ARGON2["argon2_memory_kib"],
                               parallelism=SIM_ARGON2["argon2_parallelism"])
        creds = ensure_users(engine, plan, known, cheap)
        if creds != {k: known.get(k) for k in creds}:
            roles = {k: v[0] for k, v in plan.items()}
            write_credentials(path, {**known, **creds}, {**{k: "-" for k in known}, **roles})
    finally:
        if engine is not None:
            engine.dispose()
    return name, creds


def fresh_copy(settings: Settings, template: str, target: str, *, start: dt.datetime, seed: int,
               rule: str | None) -> Engine:
    """``target``: a fresh copy of the template, its clock at ``start``, its dispatch rule ``rule``, and its
    on-duty teams' positions reported at ``start`` (returns an engine on it; the caller disposes it)."""
    if target == settings.db_name:
        raise ConfigError(f"{target} is the main database", field="--database",
                          fix="give the simulation database another name (default gridmap_sim)")
    with psycopg.connect(_admin_url(settings), autocommit=True) as admin:
        simulation_sql.copy_database(admin, template, target)
        simulation_sql.tune_for_simulation(admin, target)
    engine = make_engine(db_url(settings, target))
    with engine.begin() as conn:
        simulation_sql.put_mark(conn, source=template, seed=seed, clock_at=start, dispatch_rule=rule, note=_fingerprint())
    sample.refresh_live_state(engine, start)
    housekeeping(settings, target)()
    return engine


def housekeeping(settings: Settings, name: str) -> Callable[[], None]:
    """A function that vacuums the simulation database's hot tables (fast mode calls it every few simulated
    minutes: see :func:`gridmap.storage.simulation.vacuum_hot_tables`)."""
    url = libpq_url(db_url(settings, name))

    def run() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            simulation_sql.vacuum_hot_tables(conn)

    return run
