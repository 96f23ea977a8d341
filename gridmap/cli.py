"""The `gridmap` command line: a thin Typer app. The only place that prints or draws progress bars."""

from __future__ import annotations

import datetime as dt
import errno
import functools
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, ParamSpec, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from gridmap.config import Settings, get_settings
from gridmap.core.location import parse_bbox
from gridmap.errors import GridmapError, InvalidInput

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gridmap.services.dispatch import Dispatcher
    from gridmap.services.registry import Registry

P = ParamSpec("P")
R = TypeVar("R")

try:  # recent typer carries its own copy of click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click import exceptions as _cx  # type: ignore[no-redef]  # the same module, from click

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_state = {"verbose": False}


def _error_line(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)


class _OneLineErrors(TyperGroup):
    """A bad option or argument is one red line that names it, exit code 2 (click's default prints the usage
    and a boxed message); `--help` and a command without arguments still show the help."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **kwargs)
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **kwargs)
        except _cx.NoArgsIsHelpError as exc:  # the help, printed (by rich) when the message was made
            if exc.format_message().strip():
                exc.show()
            sys.exit(exc.exit_code)
        except _cx.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "gridmap"
            _error_line(f"{escape(exc.format_message())} (see `{escape(where)} --help`)")
            sys.exit(exc.exit_code)
        except _cx.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            _error_line("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(help="gridmap: grid-management GIS backend (网格化管理) on PostGIS.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=_OneLineErrors)
db_app = typer.Typer(help="The database: embedded PostgreSQL + PostGIS, or GRIDMAP_DATABASE_URL.", no_args_is_help=True)
sample_app = typer.Typer(help="The sample street (real OSM roads + generated registry).", no_args_is_help=True)
users_app = typer.Typer(help="API users (passwords hashed with Argon2).", no_args_is_help=True)
secret_app = typer.Typer(help="The secret key that signs API tokens.", no_args_is_help=True)
ladders_app = typer.Typer(help="Escalation ladders (分级分流) per event category.", no_args_is_help=True)
qr_app = typer.Typer(help="Places' QR codes (余安码) for the resident's report page.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sample_app, name="sample")
app.add_typer(users_app, name="users")
app.add_typer(secret_app, name="secret")
app.add_typer(ladders_app, name="ladders")
units_app = typer.Typer(help="The units behind the ladders' rungs (mediation rooms, centres, stations, a mall's "
                             "desks).", no_args_is_help=True)
app.add_typer(units_app, name="units")
app.add_typer(qr_app, name="qr")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks.")] = False) -> None:
    _state["verbose"] = verbose


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Errors become one red line and exit code 1 (a traceback only with --verbose): domain errors say the
    field and the fix; a file or network error says what the system said; anything else is a bug, named as
    such, with the way to see its traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, _cx.ClickException, KeyboardInterrupt):
            raise
        except GridmapError as exc:
            if _state["verbose"]:
                raise
            _error_line(escape(str(exc)))
            raise typer.Exit(1) from None
        except OSError as exc:
            if _state["verbose"]:
                raise
            what = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            _error_line(escape(f"{what}{exc.strerror or exc}"))
            raise typer.Exit(1) from None
        except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback with --verbose
            if _state["verbose"]:
                raise
            _error_line(escape(f"unexpected {type(exc).__name__}: {exc}") + " (a bug: run `gridmap --verbose "
                        "...` for the traceback and report it)")
            raise typer.Exit(1) from None
        finally:
            _close_registries()

    return wrapper


_opened: list[Registry] = []


def _registry() -> Registry:
    """The registry of this command; its connections are closed when the command ends (see ``friendly``)."""
    from gridmap.services.registry import connect

    reg = connect()
    _opened.append(reg)
    return reg


def _close_registries() -> None:
    while _opened:
        _opened.pop().dispose()


# -- db ---------------------------------------------------------------------------------------------
@db_app.command("up")
@friendly
def db_up() -> None:
    """Initialise (first time) and start the embedded PostgreSQL + PostGIS, then run the migrations."""
    from gridmap.services import database

    info = database.up(get_settings())
    out.print(info.message)


@db_app.command("down")
@friendly
def db_down() -> None:
    """Stop the embedded database server."""
    from gridmap.services import database

    out.print(database.down(get_settings()))


@db_app.command("status")
@friendly
def db_status() -> None:
    """Where the database is, whether it runs, and its schema revision."""
    from gridmap.services import database

    st = database.status(get_settings())
    table = Table(show_header=False, box=None)
    for k, v in st.items():
        table.add_row(f"[bold]{k}[/]", str(v))
    out.print(table)
    if not st.get("running", True):
        raise typer.Exit(3)


@db_app.command("upgrade")
@friendly
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Run the Alembic migrations up to REVISION (default: head)."""
    from gridmap.services import database

    out.print(_migration(database.upgrade, revision))


@db_app.command("downgrade")
@friendly
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base.")) -> None:
    """Migrate down to REVISION (``base`` drops every gridmap table)."""
    from gridmap.services import database

    out.print(_migration(database.downgrade, revision))


def _migration(step: Callable[[Settings, str], str], revision: str) -> str:
    """Run an Alembic step; an unknown revision is the caller's mistake, said as one line."""
    from alembic.util import CommandError

    try:
        return step(get_settings(), revision)
    except CommandError as exc:
        raise InvalidInput(str(exc), field="REVISION", fix="give head, base or a revision id such as 0004 "
                                                           "(`gridmap db status` shows the current one)") from None


# -- load / export ----------------------------------------------------------------------------------
def _progress_bar(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                    transient=True, disable=not sys.stderr.isatty())


@app.command("load")
@friendly
def load(
    layer: Annotated[str, typer.Argument(help="buildings, businesses, fire_equipment, teams, events, road_nodes, "
                                         "road_edges, areas, districts, streets, communities or grids")],
    file: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, Shapefile, GeoParquet or CSV (lon/lat).")],
    file_layer: Annotated[str | None, typer.Option(help="Layer inside a multi-layer file (GeoPackage).")] = None,
    crs: Annotated[str | None, typer.Option(help="The file's CRS if it has none (or to override it).")] = None,
    gcj02: Annotated[bool, typer.Option("--gcj02", help="Coordinates are GCJ-02 (Amap/Tencent): convert to WGS84.")] = False,
    swap_xy: Annotated[bool, typer.Option("--swap-xy", help="The file has lat/lon order.")] = False,
    lon_col: Annotated[str | None, typer.Option(help="CSV: longitude column.")] = None,
    lat_col: Annotated[str | None, typer.Option(help="CSV: latitude column.")] = None,
    no_repair: Annotated[bool, typer.Option("--no-repair", help="Reject invalid polygons instead of repairing.")] = False,
    outside: Annotated[str, typer.Option(help="Features outside the area: report | skip | fail.")] = "report",
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Load the good features, skip bad ones.")] = False,
) -> None:
    """Load FILE into LAYER (all or nothing; loading the same file twice adds nothing)."""
    if outside not in ("report", "skip", "fail"):
        raise typer.BadParameter("use report, skip or fail", param_hint="--outside")
    db = _registry()
    with _progress_bar(f"loading {layer}") as bar:
        task = bar.add_task("copy", total=None)
        rep = db.load(
            layer, file, file_layer=file_layer, crs=crs, gcj02=gcj02, swap=swap_xy, lon_col=lon_col, lat_col=lat_col,
            repair=not no_repair, outside=cast(Literal["report", "skip", "fail"], outside),  # checked above
            skip_invalid=skip_invalid,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    out.print(
        f"[green]loaded[/] {rep.source} → {rep.layer}: {rep.rows_in} features, {rep.inserted} new, "
        f"{rep.updated} updated, {rep.unchanged} unchanged, {rep.repaired} repaired, {rep.skipped} skipped, "
        f"{rep.outside_area} outside the area ({rep.seconds:.2f} s)", highlight=False,
    )
    if rep.ignored_columns:
        out.print(f"ignored columns: {', '.join(rep.ignored_columns)}", highlight=False)
    for p in rep.problems[:50]:
        out.print(f"  {p}", highlight=False)
    if len(rep.problems) > 50:
        out.print(f"  … and {len(rep.problems) - 50} more", highlight=False)


@app.command("export")
@friendly
def export(
    layer: Annotated[str, typer.Argument(help="A layer name (see `gridmap load --help`).")],
    file: Annotated[Path, typer.Argument(help="Output .geojson, .gpkg or .parquet (GeoParquet).")],
    area: Annotated[str | None, typer.Option(help="Only inside this street/community/grid code.")] = None,
    bbox: Annotated[str | None, typer.Option(help="min_lon,min_lat,max_lon,max_lat")] = None,
) -> None:
    """Export LAYER to FILE (public columns only: personal data is never exported)."""
    n = _registry().export(layer, file, area=area, bbox=parse_bbox(bbox, field="--bbox"))
    out.print(f"[green]exported[/] {n} features of {layer} to {file}", highlight=False)


@app.command("info")
@friendly
def info() -> None:
    """Row counts of every layer."""
    table = Table("layer", "rows")
    for k, v in _registry().counts().items():
        table.add_row(k, f"{v:,}")
    out.print(table)


# -- sample street ----------------------------------------------------------------------------------
@sample_app.command("load")
@friendly
def sample_load(
    seed: Annotated[int | None, typer.Option(min=0, help="Generator seed (default: the documented fixed seed).")]
    = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a loaded sample street.")] = False,
) -> None:
    """Build the sample street (real OSM roads + generated registry) and load it, in one transaction."""
    from gridmap.services import sample

    db = _registry()
    with _progress_bar("sample street") as bar:
        task = bar.add_task("sample", total=None)
        result = sample.load_sample_street(
            db.engine, seed=seed, replace=replace,
            progress=lambda step, done, total: bar.update(task, description=step, completed=done, total=total),
        )
    out.print(result.message, highlight=False)


@sample_app.command("refresh")
@friendly
def sample_refresh(
    at: Annotated[str | None, typer.Option(help="The time to bring the live state to (ISO 8601); default now.")]
    = None,
    every: Annotated[float | None, typer.Option(min=5, help="Keep doing it every SECONDS (Ctrl-C stops), as the "
                                                            "teams' phones would report.")] = None,
) -> None:
    """Bring the sample street's live state to now: the on-duty teams report their last position again (dispatch
    passes over teams not heard from for 5 minutes), busy teams without an assignment become available."""
    import time

    from gridmap.services import sample

    when = _parse_time(at, "--at")
    if every is not None and at is not None:
        raise InvalidInput("--at and --every together", field="--every", fix="give one of them")
    engine = _registry().engine
    while True:
        out.print(sample.refresh_live_state(engine, when).message, highlight=False)
        if every is None:
            return
        time.sleep(every)
        when = _parse_time(None, "--at")


@sample_app.command("generate")
@friendly
def sample_generate(
    out_dir: Annotated[Path, typer.Argument(help="Folder for one GeoParquet/Parquet file per layer.")],
    seed: Annotated[int | None, typer.Option(min=0, help="Generator seed.")] = None,
) -> None:
    """Generate the sample street into files (no database), e.g. to inspect it in QGIS."""
    from gridmap.services import sample

    counts = sample.write_sample_files(out_dir, seed=seed)
    for k, v in counts.items():
        out.print(f"{k:16s} {v:>9,}")


# -- dispatch -------------------------------------------------------------------------------------
dispatch_app = typer.Typer(help="Nearest-responder dispatch over the road network.", no_args_is_help=True)
app.add_typer(dispatch_app, name="dispatch")


def _parse_time(value: str | None, option: str) -> dt.datetime:
    """An ISO 8601 time from the command line (local time, Asia/Shanghai, when it has no offset); now if None."""
    from gridmap.core.vocabulary import LOCAL_TZ

    if value is None:
        return dt.datetime.now(LOCAL_TZ)
    try:
        t = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{value!r} is not a time", field=option,
                           fix="give ISO 8601, e.g. 2026-11-22T09:30 or 2026-11-22T09:30:00+08:00 "
                               "(no offset: Asia/Shanghai time); leave it out for now") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=LOCAL_TZ)


def _dispatcher(now: dt.datetime) -> Dispatcher:
    from gridmap.services.dispatch import Dispatcher

    return Dispatcher.from_database(_registry().engine, now=now)


@dispatch_app.command("recommend")
@friendly
def dispatch_recommend(
    lon: Annotated[float, typer.Argument(help="Longitude (WGS84).")],
    lat: Annotated[float, typer.Argument(help="Latitude (WGS84).")],
    category: Annotated[str | None, typer.Option(help="Event category, e.g. fire_hazard.")] = None,
    k: Annotated[int, typer.Option(min=1, max=100, help="How many teams.")] = 5,
    at: Annotated[str | None, typer.Option(help="Evaluate at this time (ISO 8601); default now.")] = None,
) -> None:
    """The teams that reach LON LAT first by road, why each was picked or passed over, and (fire) equipment."""
    from gridmap.core.location import check_lonlat

    now = _parse_time(at, "--at")  # before the database: a typo costs nothing
    lon, lat = check_lonlat(lon, lat, get_settings().area_bbox)
    d = _dispatcher(now)
    rec = d.recommend(lon, lat, category=category, k=k, now=now)
    table = Table("rank", "team", "ETA (min)", "road (m)", "why", title=f"{rec.method} ETA to ({lon}, {lat})")
    for p in rec.picked:
        table.add_row(str(p["rank"]), p["team"], f"{p['eta_s'] / 60:.1f}", f"{p['distance_m']:.0f}", "; ".join(p["reasons"]))
    out.print(table)
    for p in rec.passed_over[:10]:
        eta = "not reached" if p["eta_s"] is None else f"{p['eta_s'] / 60:.1f} min"
        out.print(f"passed over {p['team']} ({eta}): {'; '.join(p['reasons'])}", highlight=False)
    for group, items in rec.equipment.items():
        for e in items:
            out.print(f"{group}: {e['team']} ({e['kind']}) {e['eta_s'] / 60:.1f} min by road", highlight=False)
    if rec.note:
        out.print(rec.note, highlight=False)


# -- demo / serve -----------------------------------------------------------------------------------
Host = Annotated[str, typer.Option(envvar="GRIDMAP_HOST", help="Address to listen on.")]
Port = Annotated[int, typer.Option(envvar="GRIDMAP_PORT", min=1, max=65535, help="Port to listen on.")]
Workers = Annotated[int, typer.Option(min=1, max=64, help="worker processes; the connections are dealt out to "
                                                          "them in turn (api/serve.py)")]


@app.command("setup")
@friendly
def setup(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the API afterwards.")] = False,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Workers = 2,
) -> None:
    """Everything for the demo: database up, migrations, the sample street and its live state brought to now,
    the routing kernels compiled; then where to go next."""
    from gridmap.services import database, sample

    settings = get_settings()
    out.print(database.up(settings).message)
    db = _registry()
    result = sample.load_sample_street(db.engine, seed=None, replace=False)
    out.print(result.message, highlight=False)
    table = Table("layer", "rows", title="The sample street in PostGIS")
    for k, v in db.counts().items():
        table.add_row(k, f"{v:,}")
    out.print(table)
    out.print(sample.refresh_live_state(db.engine, _parse_time(None, "now")).message, highlight=False)
    _api_access(settings, db.engine)
    _warm_up(db.engine)
    out.print(
        "\n[bold]Next:[/]\n"
        "  gridmap info                          # counts\n"
        "  gridmap export buildings out.gpkg     # open it in QGIS\n"
        "  python -c 'import gridmap as gm; print(gm.connect().layer(\"grids\").head())'\n"
        f"  API + docs: http://{host}:{port}/docs  (gridmap serve)\n"
        f"  dashboard:  http://{host}:{port}/dashboard  (users and passwords: {settings.data_dir / 'demo_users.txt'})\n"
        f"  field app:  http://{host}:{port}/field/  (grid workers, volunteers: users gridworker, volunteer)\n"
        "  tests:      make test",
        highlight=False,
    )
    if serve_after:
        _serve(host, port, workers)


def _warm_up(engine: Engine) -> None:
    """Compile the routing kernels now (numba caches them on disk), so that the API's workers start in
    seconds instead of each compiling them, for minutes on a busy machine, at the same time."""
    from gridmap.services import warmup

    err.print("routing kernels: compiling them if needed (first time only: a minute or more) ...", highlight=False)
    report = warmup.compile_kernels()
    live = warmup.warm_dispatch(engine, _parse_time(None, "now"))
    report = warmup.KernelReport(report.compiled + live.compiled, report.loaded + live.loaded,
                                 report.seconds + live.seconds)
    out.print(report.message, highlight=False)


def _api_access(settings: Settings, engine: Engine) -> None:
    """What the API needs to start: a secret key (never a default one) and one demo user per role."""
    from gridmap.services import auth

    path, created = auth.write_secret(settings)
    out.print(f"API secret key: {path} ({'created' if created else 'kept'})", highlight=False)
    users_file, made = auth.ensure_demo_users(engine, settings)
    if made:
        table = Table("user", "role", "password", title=f"Demo API users (also saved in {users_file}, mode 600)")
        for name, role, password in made:
            table.add_row(name, role, password)
        out.print(table)
    else:
        out.print(f"demo API users exist already; their passwords are in {users_file}", highlight=False)


# -- API access -------------------------------------------------------------------------------------
@secret_app.command("init")
@friendly
def secret_init(rotate: Annotated[bool, typer.Option("--rotate", help="Replace an existing key (logs everyone "
                                                     "out).")] = False) -> None:
    """Write a random secret key to <data_dir>/secret_key (mode 600) unless one is there."""
    from gridmap.services import auth

    path, created = auth.write_secret(get_settings(), overwrite=rotate)
    out.print(f"{'wrote' if created else 'kept'} {path}", highlight=False)


ROLES_HELP = "admin, operator, planner, grid_worker, volunteer, intake or unit."
StreetOpt = Annotated[str | None, typer.Option(help="Operators of a street: its area code.")]
MemberOpt = Annotated[str | None, typer.Option(help="Grid workers/volunteers: the team member's code.")]
DistrictOpt = Annotated[str | None, typer.Option(help="Operators of a district (all its streets): its area code.")]
CommunityOpt = Annotated[str | None, typer.Option(help="Operators of a community (its grids only): its area code.")]
UnitOpt = Annotated[str | None, typer.Option(help="Unit members: the unit's code (gridmap units show).")]
#: The scope options each role takes (an operator exactly one of its three levels; see check_scope_options).
ROLE_OPTIONS = {"operator": ("--district", "--street", "--community"), "unit": ("--unit",),
                "grid_worker": ("--member",), "volunteer": ("--member",)}


def _scope_columns(role: str, *, district: str | None, street: str | None, community: str | None,
                   unit: str | None, member: str | None) -> dict[str, Any]:
    """The user columns of the scope options given (``--street`` -> ``street_code``, …), checked against the
    role by :func:`check_scope_options`: ``users add`` and ``users set-role`` take the same five options."""
    given = {"--district": district, "--street": street, "--community": community, "--unit": unit,
             "--member": member}
    check_scope_options(role, given)
    return {f"{o[2:]}_code": v for o, v in given.items() if v is not None}


def check_scope_options(role: str, given: dict[str, str | None]) -> None:
    """Refuse a scope option the role does not take (``given``: option name -> value), before the database is
    touched: the service would quietly drop it. What each role needs is the service's check."""
    wrong = [o for o, v in given.items() if v is not None and o not in ROLE_OPTIONS.get(role, ())]
    if wrong:
        takes = ROLE_OPTIONS.get(role)
        fix = (f"a {role} takes {' or '.join(takes)}" if takes else f"a {role} takes no scope option") + \
            f"; leave out {', '.join(wrong)}"
        raise InvalidInput(f"{', '.join(wrong)} does not apply to role {role!r}", field=wrong[0].lstrip("-"), fix=fix)
    if role == "operator":
        levels = [o for o in ROLE_OPTIONS["operator"] if given.get(o) is not None]
        if len(levels) > 1:
            raise InvalidInput(f"an operator works at one level, not {' and '.join(levels)}", field=levels[1].lstrip("-"),
                               fix="give only one of --district, --street, --community")


@users_app.command("add")
@friendly
def users_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help=ROLES_HELP)],
    street: StreetOpt = None,
    member: MemberOpt = None,
    district: DistrictOpt = None,
    community: CommunityOpt = None,
    unit: UnitOpt = None,
    password: Annotated[str | None, typer.Option(help="Default: a random one, printed once.",
                                                 envvar="GRIDMAP_NEW_PASSWORD")] = None,
) -> None:
    """Create an API user: an operator with one of --district/--street/--community, a unit member with --unit,
    a grid worker or volunteer with --member."""
    import secrets as _secrets

    from sqlalchemy.orm import Session

    from gridmap.services import auth

    scope = _scope_columns(role, district=district, street=street, community=community, unit=unit, member=member)
    pw = password or _secrets.token_urlsafe(12)
    with Session(_registry().engine) as session:
        auth.create_user(session, username=username, password=pw, role=role, **scope)
    out.print(f"created {role} {username}" + ("" if password else f" with password {pw}"), highlight=False)


def _users_do(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run a gridmap.services.users function as the command line (no principal), at the wall clock."""
    import datetime as _dt

    from sqlalchemy.orm import Session

    with Session(_registry().engine) as session:
        return fn(session, None, *args, now=_dt.datetime.now(_dt.UTC), **kwargs)


@users_app.command("list")
@friendly
def users_list() -> None:
    """Users: role, scope (an operator's district, street or community, a unit member's unit, a team role's
    member), active, open sessions, last seen."""
    from datetime import UTC

    from gridmap.services import users

    table = Table()
    table.add_column("user", no_wrap=True, min_width=12)
    for name in ("role", "scope", "active", "sessions", "last seen (UTC)"):
        table.add_column(name)
    for u in _users_do(users.list_users):
        seen = u["last_seen_at"].astimezone(UTC).strftime("%m-%d %H:%M") if u["last_seen_at"] else "-"
        scope = u["district_code"] or u["street_code"] or u["community_code"] or u["unit_code"] or u["member_code"]
        table.add_row(u["username"], u["role"], scope or "-",
                      "yes" if u["active"] else "[red]no[/]", str(u["open_sessions"]), seen)
    out.print(table)


def _set_user(username: str, changes: dict) -> None:
    from gridmap.services import users

    u = _users_do(users.update_user, username, changes)
    state = "active" if u["active"] else "deactivated"
    out.print(f"{u['username']}: {u['role']}, {state}; every session of theirs has ended", highlight=False)


@users_app.command("deactivate")
@friendly
def users_deactivate(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Deactivate a user: no more logins, and every session (token, dashboard) ends now."""
    _set_user(username, {"active": False})


@users_app.command("activate")
@friendly
def users_activate(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Let a deactivated user log in again."""
    _set_user(username, {"active": True})


@users_app.command("set-role")
@friendly
def users_set_role(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Argument(help=ROLES_HELP)],
    street: StreetOpt = None,
    member: MemberOpt = None,
    district: DistrictOpt = None,
    community: CommunityOpt = None,
    unit: UnitOpt = None,
) -> None:
    """Change a user's role and scope: an operator's area (--district, --street or --community; a new one
    replaces the old), a unit member's --unit, a grid worker's or volunteer's --member. Every session of theirs
    ends."""
    scope = _scope_columns(role, district=district, street=street, community=community, unit=unit, member=member)
    _set_user(username, {"role": role} | scope)


@users_app.command("passwd")
@friendly
def users_passwd(
    username: Annotated[str, typer.Argument(help="Login name.")],
    password: Annotated[str | None, typer.Option(help="Default: a random one, printed once.",
                                                 envvar="GRIDMAP_NEW_PASSWORD")] = None,
) -> None:
    """Set a user's password; every session of theirs ends."""
    import secrets as _secrets

    from gridmap.services import users
    from gridmap.services.auth import Passwords

    pw = password or _secrets.token_urlsafe(12)
    n = _users_do(users.reset_password, username, pw, passwords=Passwords.from_settings(get_settings()))
    out.print(f"new password for {username}" + ("" if password else f": {pw}") + f"; {n} session(s) ended",
              highlight=False)


@users_app.command("delete")
@friendly
def users_delete(
    username: Annotated[str, typer.Argument(help="Login name.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a user and their sessions (what they read stays in the access log under their name)."""
    from gridmap.services import users

    if not yes:
        typer.confirm(f"delete user {username}?", abort=True)
    _users_do(users.delete_user, username)
    out.print(f"deleted {username}", highlight=False)


@ladders_app.command("load")
@friendly
def ladders_load(file: Annotated[Path, typer.Argument(help="CSV: category,rung,level,name,name_zh,"
                                                      "time_limit_min,auto_escalate")]) -> None:
    """Replace every escalation ladder with the file's (all or nothing)."""
    from gridmap.services.escalation import load_ladders

    out.print(f"loaded {load_ladders(_registry().engine, file)} rungs from {file}", highlight=False)


@ladders_app.command("show")
@friendly
def ladders_show(category: Annotated[str | None, typer.Argument(help="One category.")] = None) -> None:
    """The escalation ladders: rungs, handlers and time limits."""
    from sqlalchemy.orm import Session

    from gridmap.services.escalation import EscalationService
    from gridmap.services.events import system_clock

    engine = _registry().engine
    with Session(engine) as session:
        rows = EscalationService(engine, None, system_clock).ladders(session, category)
    table = Table("category", "rung", "handler", "limit (min)", "auto")
    for r in rows:
        table.add_row(r["category"], str(r["rung"]), f"{r['name']} {r['name_zh']}", str(r["time_limit_min"]),
                      "yes" if r["auto_escalate"] else "no")
    out.print(table)


@qr_app.command("sheet")
@friendly
def qr_sheet(community: Annotated[str, typer.Option("--community", help="The community's area code.")],
             out_file: Annotated[Path | None, typer.Option("--out", help="FILE.pdf or FILE.png (one PNG per page)")]
             = None) -> None:
    """Print a community's QR codes (its businesses and buildings), each opening <GRIDMAP_PUBLIC_URL>/q/<code>."""
    from gridmap.services.qr import sheet, write_sheet

    target = out_file or Path(f"qr-{community}.pdf")
    sh = sheet(_registry().engine, community, get_settings().public_url)
    write_sheet(sh, target)
    out.print(f"{sh.count} codes of community {community} on {len(sh.pages)} page(s): {target} "
              f"(each opens {get_settings().public_url.rstrip('/')}/q/<code>)", highlight=False)


def _serve(host: str, port: int, workers: int) -> None:
    from api.serve import serve as serve_workers

    out.print(f"serving on http://{host}:{port} with {workers} worker process(es) (Ctrl-C stops)")
    try:
        code = serve_workers(host, port, workers, log_level="info")
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise InvalidInput(f"{host}:{port} is in use by another server", field="--port",
                               fix="stop that server (make stop), or pass another --port") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES) or isinstance(exc, socket.gaierror):
            raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="--host/--port",
                               fix="use an address of this machine (127.0.0.1, 0.0.0.0) and a port above 1023"
                               ) from None
        raise
    if code:
        raise typer.Exit(code)


@app.command("serve")
@friendly
def serve(host: Host = "127.0.0.1", port: Port = 8000, workers: Workers = 2) -> None:
    """Run the HTTP API (FastAPI; docs at /docs)."""
    _serve(host, port, workers)


# -- simulate ---------------------------------------------------------------------------------------
simulate_app = typer.Typer(help="The operations simulator: a living street driven through the HTTP API.",
                           no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


def _day(value: str | None) -> dt.date:
    from gridmap.simulation.run import DEFAULT_DAY

    if value is None:
        return DEFAULT_DAY
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a date", field="--day", fix="give YYYY-MM-DD, e.g. 2026-11-02") from None


def _rule(value: str | None) -> str | None:
    from gridmap.services.dispatch import DispatchRule

    if value is None:
        return None
    try:
        return DispatchRule(value).value
    except ValueError:
        raise InvalidInput(f"unknown dispatch rule {value!r}", field="--rule",
                           fix=f"use one of {', '.join(r.value for r in DispatchRule)}") from None


@simulate_app.command("live")
@friendly
def simulate_live(
    api: Annotated[str | None, typer.Option(help="The API to drive (default http://GRIDMAP_HOST:GRIDMAP_PORT).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the reports and the teams' behaviour.")] = 1,
    log: Annotated[Path | None, typer.Option(help="Write the run log here (JSON lines; .gz compresses).")] = None,
) -> None:
    """Drive the demo's API in real time until stopped (Ctrl-C, SIGTERM): teams patrol, report their positions,
    take offers, drive, settle events; reports arrive at the sample year's rates and hours."""
    import os
    import signal
    import threading

    from gridmap.simulation.run import run_live

    url = api or f"http://{os.environ.get('GRIDMAP_HOST', '127.0.0.1')}:{os.environ.get('GRIDMAP_PORT', '8000')}"
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    summary = run_live(get_settings(), api_url=url, seed=seed, stop=stop, log_path=log,
                       say=lambda m: out.print(m, highlight=False))
    out.print(f"stopped: {summary.events} report(s) sent; final states {summary.final}", highlight=False)


def _simulation_secret(settings: Settings) -> None:
    """The simulation's own API signs tokens like any other: make the key `gridmap setup` would make (an existing
    one is kept) before the template's minute of work, instead of failing when that API starts."""
    from gridmap.services import auth

    if settings.secret_key is None:
        path, created = auth.write_secret(settings)
        if created:
            err.print(f"API secret key: {path} (created)", highlight=False)


@simulate_app.command("fast")
@friendly
def simulate_fast(
    day: Annotated[str | None, typer.Option(help="The first day (YYYY-MM-DD); default the day after the sample "
                                                 "year, 2026-11-02.")] = None,
    days: Annotated[int, typer.Option(min=1, max=31, help="How many days.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Seed: the same seed gives the same run log.")] = 1,
    rule: Annotated[str | None, typer.Option(help="Dispatch rule (road_eta, road_eta_no_tie, straight_line, "
                                                  "straight_line_then_road, own_grid); default gridmap's.")] = None,
    database: Annotated[str, typer.Option(help="The simulation database (made afresh from the template).")]
    = "gridmap_sim",
    log: Annotated[Path | None, typer.Option(help="The run log (default <data_dir>/simulation-runs/…jsonl.gz).")] = None,
    drain_h: Annotated[float, typer.Option(min=0, max=48, help="Hours played after the last day with no new "
                                                               "reports, so late events are reached.")] = 2.0,
) -> None:
    """Replay DAYS days in simulated time in a simulation database of its own, served by its own API on the
    simulation's clock; then the metrics, the dashboard and the notebooks read it (GRIDMAP_DB_NAME=DATABASE)."""
    import time

    from gridmap.simulation.run import run_fast

    settings = get_settings()
    _simulation_secret(settings)
    d = _day(day)
    path = log or settings.data_dir / "simulation-runs" / f"{d.isoformat()}_{days}d_{_rule(rule) or 'road_eta'}_seed{seed}.jsonl.gz"
    t0 = time.perf_counter()
    res = run_fast(settings, day=d, days=days, seed=seed, rule=_rule(rule), database=database, log_path=path,
                   drain_h=drain_h, say=lambda m: err.print(m, highlight=False))
    s = res.summary
    table = Table("call", "n", "p50 ms", "p99 ms", title="API calls of the run")
    for c in s.calls:
        table.add_row(c["call"], f"{c['n']:,}", f"{c['p50_ms']:.1f}", f"{c['p99_ms']:.1f}")
    out.print(table)
    out.print(f"{s.events} reports, final states {dict(sorted(s.final.items()))}; not closed: "
              f"{dict(sorted(s.open_reasons.items()))}", highlight=False)
    out.print(f"played {days} day(s) in {res.wall_s:.0f} s (set-up {res.setup_s:.0f} s, total "
              f"{time.perf_counter() - t0:.0f} s); run log {path} (sha256 {s.digest[:16]}…)", highlight=False)
    out.print(f"read it like any other data: GRIDMAP_DB_NAME={database} gridmap serve, or its metrics and notebooks",
              highlight=False)


@simulate_app.command("study")
@friendly
def simulate_study(
    day: Annotated[str | None, typer.Option(help="The first day (default 2026-11-02).")] = None,
    days: Annotated[int, typer.Option(min=1, max=31, help="How many consecutive days.")] = 3,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every day.")] = 1,
    rules: Annotated[str | None, typer.Option(help="Comma-separated rules (default all five).")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Result JSON (default "
                                                                "data/simulation/dispatch_policy_study.json).")] = None,
    hours: Annotated[float | None, typer.Option(min=0.5, max=24, help="Play only the first HOURS of each day.")] = None,
) -> None:
    """The dispatch-policy study: the same seeded days under each rule; prints the headline table."""
    from gridmap.services.dispatch import DispatchRule
    from gridmap.simulation.study import RESULT_FILE, run_study

    _simulation_secret(get_settings())
    first = _day(day)
    chosen = [DispatchRule(v) for r in rules.split(",") if (v := _rule(r.strip())) is not None] if rules else None
    path = out_file or RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # written after every run: an interrupted study keeps what it played
    result = run_study(get_settings(), days=[first + dt.timedelta(days=i) for i in range(days)], seed=seed,
                       rules=chosen, hours=hours, say=lambda m: err.print(m, highlight=False),
                       on_run=lambda r: path.write_text(r.to_json(), encoding="utf-8"))
    path.write_text(result.to_json(), encoding="utf-8")
    _print_study(result)
    out.print(f"written to {path}", highlight=False)


def _print_study(result) -> None:
    """The study's pooled table, and with several days the day-by-day means and differences from (a)."""
    t = result.table()
    table = Table("rule", "events", "median min", "p90 min", "≤ rung", "≤ 15 min", "1st ETA min", "km", "Gini",
                  "declined", "timed out", "resolved", "closed", title="Report → on site, by dispatch rule (pooled)")
    for r in t.itertuples():
        table.add_row(str(r.rule), str(r.events), f"{r.median_min:.1f}", f"{r.p90_min:.1f}", f"{r.within_rung:.1%}",
                      f"{r.within_15min:.1%}", f"{r.first_eta_min:.2f}", f"{r.driven_km:.0f}", f"{r.jobs_gini:.2f}",
                      str(r.declines), str(r.timeouts), f"{r.resolution_rate:.1%}", f"{r.closure_rate:.1%}")
    out.print(table)
    iv = result.intervals(["median_min", "p90_min", "within_15min", "first_eta_min", "driven_km", "jobs_gini"])
    if iv["days"].max() < 2:
        out.print("one day: no interval (play more days with --days)", highlight=False)
        return
    days = int(iv["days"].max())
    table = Table("figure", "rule", "mean of days [95% t]", "minus (a) [95% t, paired by day]", "days worse/better",
                  title=f"Day by day: {days} days, intervals over days")

    def fmt(v: float, lo: float, hi: float, sign: str = "") -> str:
        return f"{v:{sign}.2f}" + (f" [{lo:{sign}.2f}, {hi:{sign}.2f}]" if lo == lo and hi == hi else "")  # NaN: none

    for r in iv.itertuples():
        table.add_row(str(r.metric), str(r.rule), fmt(r.mean, r.lo, r.hi),
                      "–" if r.rule == "road_eta" else fmt(r.diff, r.diff_lo, r.diff_hi, "+"),
                      f"{r.worse_days}/{r.better_days}")
    out.print(table)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()


@units_app.command("load")
@friendly
def units_load(file: Annotated[Path, typer.Argument(help="CSV: code,kind,name,name_zh,area_code,place_code "
                                                         "(data/units.csv).")]) -> None:
    """Load (upsert) the units; units no longer listed are made inactive."""
    from gridmap.services.units import load_units

    counts = load_units(_registry().engine, file)
    out.print(f"loaded {counts['units']} units from {file}", highlight=False)


@units_app.command("show")
@friendly
def units_show(area: Annotated[str | None, typer.Option(help="Those serving this area (or above/inside it).")] = None,
               kind: Annotated[str | None, typer.Option(help="One unit kind.")] = None) -> None:
    """The units: code, kind, area, place and name."""
    from sqlalchemy.orm import Session

    from gridmap.services.auth import Principal
    from gridmap.services.events import system_clock
    from gridmap.services.units import UnitService

    engine = _registry().engine
    with Session(engine) as session:
        rows = UnitService(engine, system_clock).list(session, Principal(0, "cli", "admin", None, None, None, ()),
                                                      area=area, kind=kind)
    for r in rows:
        out.print(f"{r['code']:<20} {r['kind']:<26} {r['area'] or '':<13} {r['place'] or '':<8} "
                  f"{r.get('name_zh') or r['name']}", highlight=False)
