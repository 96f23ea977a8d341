"""Build the sample street and load it into PostGIS in one transaction.

The road network and the district boundaries are real (OpenStreetMap, Tianditu; see data/README.md);
grids, buildings, residents, businesses, fire equipment, teams and a year of events are generated
deterministically by :mod:`gridmap.sample.street` from a fixed seed, at load time.

The generated street is a snapshot at the end of its year of events; :func:`refresh_live_state` brings its
live part (where the on-duty teams are, and when they said so) to the present, so that a demo started weeks
later dispatches as if the teams' phones had just reported. ``gridmap setup`` runs it every time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import psycopg
import shapely
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridmap.config import Settings, get_settings
from gridmap.errors import Conflict, InvalidInput
from gridmap.sample import street as samplegen
from gridmap.services import loading
from gridmap.services.units import load_units_in
from gridmap.storage import bulk, files
from gridmap.storage import dataset as dataset_sql
from gridmap.storage import events as events_sql
from gridmap.storage import teams as teams_sql
from gridmap.storage.dataset import REGISTRY_TABLES
from gridmap.storage.db import driver_connection
from gridmap.storage.layers import pg_type
from gridmap.storage.models import Base

#: Bump when the generator's output changes, so `gridmap setup` reloads an older sample.
#: 2: teams are generated on or off duty only (no "assigned"/"on_site" team without an assignment).
#: 3: a second, smaller street (330106901, the south-east corner's three communities) in the same district.
SAMPLE_VERSION = 3
ROADS_FILE = "roads/hz_xihu_gongshu_osm_drive.gpkg"
#: The units behind the escalation rungs of the sample's two streets and their district (and a mall).
UNITS_FILE = "units.csv"
DISTRICTS_FILE = "boundaries/hangzhou_districts_tianditu.geojson"
Step = Callable[[str, int, int], None]


@dataclass
class SampleResult:
    loaded: bool
    seed: int
    counts: dict[str, int]
    seconds: float
    message: str


def _paths(settings: Settings) -> tuple[Path, Path]:
    roads, districts = settings.sample_data_dir / ROADS_FILE, settings.sample_data_dir / DISTRICTS_FILE
    for p in (roads, districts):
        if not p.exists():
            raise InvalidInput(f"sample data file {p} is missing", field="GRIDMAP_SAMPLE_DATA_DIR",
                               fix="point it at the repository's data/ folder")
    return roads, districts


def build(seed: int | None = None, settings: Settings | None = None) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, samplegen.SampleStreet]:
    """Read the real roads and districts and generate the street (no database)."""
    settings = settings or get_settings()
    roads, districts = _paths(settings)
    nodes = files.read_file(roads, file_layer="nodes")
    edges = files.read_file(roads, file_layer="edges")
    dist = files.read_file(districts)
    street = samplegen.generate_sample_street(edges, dist, seed=samplegen.DEFAULT_SEED if seed is None else seed)
    return nodes, edges, street


def write_sample_files(out_dir: str | Path, seed: int | None = None) -> dict[str, int]:
    """Generate the street into one (Geo)Parquet file per layer; returns the row counts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _, _, street = build(seed)
    for name, frame in _frames(street).items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    return street.counts()


def _frames(street: samplegen.SampleStreet) -> dict[str, pd.DataFrame]:
    """The generated layers in load order (parents first), shaped like their tables."""
    frames = {name: getattr(street, name) for name in (
        "areas", "buildings", "households", "residents", "resident_pii", "businesses", "fire_equipment", "teams",
        "team_members", "grid_staff", "events")}
    buildings = street.buildings.copy()
    buildings["geometry"] = [shapely.MultiPolygon([g]) if isinstance(g, shapely.Polygon) else g  # type: ignore[assignment]  # stubs: no geometry values
                             for g in buildings.geometry]
    frames["buildings"] = buildings
    member_ids = street.team_members.set_index("code")["id"]
    staff = street.grid_staff
    frames["grid_staff"] = pd.DataFrame(
        {"grid_code": staff["grid_code"], "member_id": staff["member_code"].map(member_ids), "role": staff["role"]}
    )
    return frames


def _copy_frame(conn: psycopg.Connection, table: str, df: pd.DataFrame) -> int:
    """COPY a generated frame into ``table`` (columns by name, geometry as EWKB)."""
    tbl = Base.metadata.tables[table]
    names, types, columns = [], [], []
    geom_name = df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None
    for col in df.columns:
        if col == geom_name:
            continue
        values, problems = bulk.coerce_column(df[col], pg_type(tbl.columns[col]), col, None)
        if problems:  # the generator is ours: any problem is a bug, say which
            raise ValueError(f"sample {table}: {problems[0]}")
        names.append(col)
        types.append(pg_type(tbl.columns[col]))
        columns.append(values)
    if geom_name is not None:
        names.append("geom")
        types.append("bytea")
        columns.append(bulk.ewkb(df.geometry.to_numpy()))
    return bulk.copy_columns(conn, table, names, types, columns)


def load_sample_street(engine: Engine, *, seed: int | None = None, replace: bool = False,
                       settings: Settings | None = None, progress: Step | None = None) -> SampleResult:
    """Load the sample street, all or nothing.

    Does nothing when the same sample (seed and generator version) is already loaded. Refuses to wipe a
    database that holds other data unless ``replace`` is True.
    """
    t0 = time.perf_counter()
    settings = settings or get_settings()
    seed = samplegen.DEFAULT_SEED if seed is None else seed
    step = progress or (lambda *_: None)
    with engine.connect() as conn:
        info = dataset_sql.get_info(conn, "sample_street")
        if info and info.get("seed") == seed and info.get("version") == SAMPLE_VERSION and not replace:
            return SampleResult(False, seed, info["counts"], time.perf_counter() - t0,
                                f"the sample street (seed {seed}) is already loaded; --replace reloads it")
        occupied = dataset_sql.registry_occupied(conn)
        conn.rollback()
    if occupied and not info and not replace:
        raise Conflict("the database already holds registry data that is not the sample street",
                       field="replace", fix="pass --replace to wipe it and load the sample street")

    step("generating the sample street", 0, 3)
    nodes, edges, street = build(seed, settings)
    step("loading", 1, 3)
    prep_nodes = loading.prepare(nodes, "road_nodes", settings=settings, source=ROADS_FILE)
    prep_edges = loading.prepare(edges, "road_edges", settings=settings, source=ROADS_FILE)
    counts = {"road_nodes": len(nodes), "road_edges": len(edges), **street.counts()}
    with engine.begin() as sa_conn:
        raw = driver_connection(sa_conn)  # COPY only
        dataset_sql.truncate_registry(sa_conn)
        loading.write_prepared(sa_conn, "road_nodes", prep_nodes)
        loading.write_prepared(sa_conn, "road_edges", prep_edges)
        for name, frame in _frames(street).items():
            _copy_frame(raw, name, frame)
        for table in ("buildings", "households", "residents", "businesses", "fire_equipment", "teams",
                      "team_members", "events"):
            bulk.reset_identity(raw, table)
        events_sql.place_events(sa_conn)
        units = settings.sample_data_dir / UNITS_FILE
        if units.exists():
            counts["units"] = load_units_in(sa_conn, units)["units"]
        value = {"seed": seed, "version": SAMPLE_VERSION, "counts": counts,
                 "sources": {"roads": "© OpenStreetMap contributors, ODbL 1.0", "districts": "天地图 Tianditu"}}
        dataset_sql.put_info(sa_conn, "sample_street", value)
    with engine.connect() as sa_conn:  # fresh statistics for the planner
        dataset_sql.analyze(sa_conn, REGISTRY_TABLES)
        sa_conn.commit()
    step("done", 3, 3)
    secs = time.perf_counter() - t0
    return SampleResult(True, seed, counts, secs,
                        f"loaded the sample street (seed {seed}) in {secs:.1f} s: "
                        + ", ".join(f"{v:,} {k}" for k, v in counts.items()))


@dataclass
class LiveState:
    at: dt.datetime
    stamped: int  # on-duty teams whose last position now dates from ``at``
    freed: int  # teams marked busy without an active assignment, made available
    message: str


def refresh_live_state(engine: Engine, now: dt.datetime) -> LiveState:
    """Bring the sample street's live state to ``now``: every on-duty team reports its last position again at
    ``now`` (dispatch ignores positions older than 5 minutes), and a team marked assigned or on site without
    an active assignment (which only old data can hold) becomes available.

    The teams keep where they are; only the time of the fix moves (never backwards). Running API processes
    follow at once (the database announces each change: LISTEN gridmap_feed). Refuses a database that does
    not hold the sample street: real teams' positions are their phones' to report.
    """
    if now.tzinfo is None:
        raise InvalidInput(f"time {now.isoformat()} has no time zone", field="now", fix="use an aware datetime")
    with Session(engine) as session, session.begin():
        conn = session.connection()
        if dataset_sql.get_info(conn, "sample_street") is None:
            raise Conflict("this database does not hold the sample street: its teams report their own positions",
                           field="database", fix="load the sample street first (gridmap sample load)")
        freed = teams_sql.free_idle_busy_teams(conn)
        stamped = teams_sql.restamp_on_duty_positions(conn, now)
    msg = (f"live state at {now.isoformat(timespec='seconds')}: {stamped} on-duty team(s) report their position now"
           + (f"; {freed} team(s) marked busy without an assignment made available" if freed else ""))
    return LiveState(now, stamped, freed, msg)
