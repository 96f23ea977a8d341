"""The `gridmap` command line against the test database (GRIDMAP_DB_NAME points it there).

In-process runs use typer's CliRunner; the "one red line, no traceback" promise is checked on a real
subprocess with colours forced, as a user would see it.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.config import get_settings

ROADS = Path(__file__).resolve().parent.parent / "data" / "roads" / "hz_xihu_gongshu_osm_drive.gpkg"
RED_ERROR = "\x1b[1;31merror:\x1b[0m"


@pytest.fixture
def cli_env(db, db_url) -> dict[str, str]:
    """Environment that points the CLI at the test database (and nothing else)."""
    if os.environ.get("GRIDMAP_TEST_DATABASE_URL"):
        env = {"GRIDMAP_DATABASE_URL": db_url}
    else:
        env = {"GRIDMAP_DB_NAME": make_url(db_url).database}
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


@pytest.fixture
def run(cli_env):
    runner = CliRunner()

    def invoke(*args: str):
        get_settings.cache_clear()  # settings are read once per process: re-read them with cli_env
        return runner.invoke(app, [str(a) for a in args], env=cli_env)

    return invoke


def rows(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def flat(s: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(s.split())


def buildings_file(path: Path, *, floors=(3, 6, 9, 12, 15), lon0: float = 120.10) -> Path:
    n = len(floors)
    gdf = gpd.GeoDataFrame(
        {"code": [f"B{i + 1}" for i in range(n)], "floors": list(floors), "use": ["residential"] * n,
         "name": [f"{i + 1}号楼" for i in range(n)]},
        geometry=[shapely.box(lon0 + 0.001 * i, 30.28, lon0 + 0.001 * i + 0.0004, 30.2803) for i in range(n)],
        crs="EPSG:4326",
    )
    gdf.to_file(path)
    return path


def projected_labelled_4326(path: Path) -> Path:
    src = buildings_file(path.with_name("src.gpkg"))
    gpd.read_file(src).to_crs(4549).set_crs(4326, allow_override=True).to_file(path)
    return path


# -- errors: one red line, exit 1, no traceback, nothing written -----------------------------------
def test_bad_file_in_a_real_terminal_is_one_red_line(db, cli_env, tmp_path):
    bad = projected_labelled_4326(tmp_path / "metres.geojson")
    env = {**os.environ, **cli_env, "FORCE_COLOR": "1", "COLUMNS": "300", "TERM": "xterm-256color"}  # TERM=dumb turns colour off
    env.pop("NO_COLOR", None)
    proc = subprocess.run([sys.executable, "-m", "gridmap.cli", "load", "buildings", str(bad)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=os.getcwd())
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip("\n").splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(RED_ERROR)
    assert "projected metres" in lines[0] and "--crs" in lines[0]
    assert "Traceback" not in proc.stderr
    assert rows(db.engine, "buildings") == 0 and rows(db.engine, "load_batches") == 0


def test_bad_feature_is_one_error_line_and_the_feature_list(db, run, tmp_path):
    bad = buildings_file(tmp_path / "floors.geojson", floors=(3, "abc", 9, 12, 15))
    result = run("load", "buildings", bad)
    assert result.exit_code == 1
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert sum("error:" in line for line in err) == 1 and err[0].startswith("error: buildings:")
    assert "--skip-invalid" in err[0]
    assert any("feature #1 (B2)" in line and "'abc' is not a number" in line for line in err[1:])
    assert "Traceback" not in result.output
    assert rows(db.engine, "buildings") == 0 and rows(db.engine, "load_batches") == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [(("load", "buildings", "{tmp}/missing.gpkg"), "error: file: no such file"),
     (("load", "parks", "{tmp}/b.geojson"), "error: layer: unknown layer 'parks'"),
     (("load", "buildings", "{tmp}/empty.geojson"), "error: empty.geojson: the file is empty (0 bytes)"),
     (("load", "road_edges", str(ROADS), "--file-layer", "edges"), "road_nodes before road_edges"),
     (("load", "buildings", "{tmp}/b.geojson", "--crs", "EPSG:4549"), "no feature lies in the configured area"),
     (("export", "residents", "{tmp}/r.gpkg"), "error: layer: unknown layer 'residents'"),
     (("export", "buildings", "{tmp}/out.kml"), "error: file: cannot write out.kml")],
)
def test_errors_exit_1_without_traceback(db, run, tmp_path, args, says):
    buildings_file(tmp_path / "b.geojson")
    (tmp_path / "empty.geojson").write_bytes(b"")
    result = run(*(a.format(tmp=tmp_path) for a in args))
    assert result.exit_code == 1, result.output
    assert says in flat(result.stderr)
    assert flat(result.stderr).count("error:") == 1
    assert "Traceback" not in result.output
    assert rows(db.engine, "load_batches") == 0
    assert not (tmp_path / "out.kml").exists()


def test_verbose_shows_the_exception(db, run, tmp_path):
    result = run("--verbose", "load", "buildings", projected_labelled_4326(tmp_path / "m.geojson"))
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "LoadRejected"


def test_bad_options_are_usage_errors(db, run, tmp_path):
    good = buildings_file(tmp_path / "b.geojson")
    assert run("load", "buildings", good, "--outside", "ignore").exit_code == 2
    assert run("export", "buildings", tmp_path / "o.gpkg", "--bbox", "1,2,3").exit_code == 1  # the value, named
    assert rows(db.engine, "buildings") == 0


# -- good loads and exports ------------------------------------------------------------------------
def test_load_good_file_then_again(db, run, tmp_path):
    good = buildings_file(tmp_path / "b.geojson")
    first = run("load", "buildings", good)
    assert first.exit_code == 0, first.output
    out = flat(first.stdout)
    assert out.startswith("loaded b.geojson → buildings: 5 features, 5 new, 0 updated, 0 unchanged")
    assert "0 outside the area" in out
    assert rows(db.engine, "buildings") == 5
    second = run("load", "buildings", good)
    assert second.exit_code == 0
    assert "5 features, 0 new, 0 updated, 5 unchanged" in flat(second.stdout)
    assert rows(db.engine, "buildings") == 5 and rows(db.engine, "load_batches") == 2


def test_load_reports_ignored_columns_and_problems(db, run, tmp_path):
    path = tmp_path / "b.geojson"
    gdf = gpd.read_file(buildings_file(tmp_path / "src.geojson"))
    gdf["colour"] = "red"
    gdf.loc[4, "geometry"] = shapely.box(121.5, 31.2, 121.501, 31.201)
    gdf.to_file(path)
    result = run("load", "buildings", path)
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "5 new" in out and "1 outside the area" in out
    assert "ignored columns: colour" in out
    assert "feature #4 (B5): outside_area" in out
    skipped = run("load", "buildings", path, "--outside", "skip")
    assert "1 skipped" in flat(skipped.stdout)


def test_load_options_reach_the_loader(db, run, tmp_path):
    nodes = run("load", "road_nodes", ROADS, "--file-layer", "nodes")
    assert nodes.exit_code == 0, nodes.output
    assert "1407 features, 1407 new" in flat(nodes.stdout)
    src = gpd.read_file(buildings_file(tmp_path / "src.geojson"))
    src.to_crs(4549).to_file(tmp_path / "p.shp")
    (tmp_path / "p.prj").unlink()
    result = run("load", "buildings", tmp_path / "p.shp", "--crs", "EPSG:4549")
    assert result.exit_code == 0, result.output
    assert rows(db.engine, "buildings") == 5
    with db.engine.connect() as conn:
        last = conn.execute(text("SELECT source_crs FROM load_batches ORDER BY id DESC LIMIT 1")).scalar_one()
    assert last == "EPSG:4549"


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "parquet"])
def test_export(db, run, tmp_path, fmt):
    assert run("load", "buildings", buildings_file(tmp_path / "b.geojson")).exit_code == 0
    out = tmp_path / "export" / f"buildings.{fmt}"
    result = run("export", "buildings", out)
    assert result.exit_code == 0, result.output
    assert flat(result.stdout) == f"exported 5 features of buildings to {out}"
    back = gpd.read_parquet(out) if fmt == "parquet" else gpd.read_file(out)
    assert sorted(back["code"]) == ["B1", "B2", "B3", "B4", "B5"]
    assert back.crs.to_epsg() == 4326
    assert not {"id_card", "phone"} & set(back.columns)
    some = run("export", "buildings", tmp_path / f"some.{fmt}", "--bbox", "120.1015,30.27,120.1035,30.29")
    assert "exported 2 features" in flat(some.stdout)


def test_info_lists_counts(db, run, tmp_path):
    run("load", "buildings", buildings_file(tmp_path / "b.geojson"))
    result = run("info")
    assert result.exit_code == 0
    cells = {}
    for line in result.stdout.splitlines():
        parts = line.replace("│", " ").replace("┃", " ").split()
        if len(parts) == 2:
            cells[parts[0]] = parts[1]
    assert cells["buildings"] == "5" and cells["road_edges"] == "0"


# -- bad options of every command: one line, exit 1 or 2, no traceback (issue 10) --------------------------
def _real_terminal(cli_env: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **cli_env, "FORCE_COLOR": "1", "COLUMNS": "300", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    return subprocess.run([sys.executable, "-m", "gridmap.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=os.getcwd())


def test_a_bad_time_is_one_red_line_naming_the_option(db, cli_env):
    proc = _real_terminal(cli_env, "dispatch", "recommend", "120.09", "30.26", "--at", "yesterday")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith(RED_ERROR), proc.stderr
    assert "--at" in lines[0] and "'yesterday'" in lines[0] and "ISO 8601" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_usage_error_is_one_red_line_too(db, cli_env):
    proc = _real_terminal(cli_env, "dispatch", "recommend", "east", "30.26")
    assert proc.returncode == 2
    lines = proc.stderr.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith(RED_ERROR) and "'lon'" in lines[0], proc.stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [(("dispatch", "recommend", "120.09", "30.26", "--at", "2026-13-45"), 1, "--at: '2026-13-45' is not a time"),
     (("dispatch", "recommend", "east", "30.26"), 2, "Invalid value for 'lon'"),
     (("dispatch", "recommend", "120.09", "30.26", "--k", "0"), 2, "'--k'"),
     (("dispatch", "recommend", "0", "0"), 1, "outside the configured area"),
     (("dispatch", "recommend", "30.26", "120.09"), 1, "send longitude first"),
     (("sample", "load", "--seed", "-1"), 2, "'--seed'"),
     (("sample", "refresh", "--at", "soon"), 1, "--at: 'soon' is not a time"),
     (("sample", "refresh", "--every", "1"), 2, "'--every'"),
     (("sample", "refresh"), 1, "does not hold the sample street"),
     (("serve", "--port", "0"), 2, "'--port'"),
     (("setup", "--workers", "0"), 2, "'--workers'"),
     (("db", "downgrade", "nonsense"), 1, "REVISION: Can't locate revision identified by 'nonsense'"),
     (("db", "upgrade", "9999"), 1, "REVISION"),
     (("ladders", "show", "alien_visit"), 1, "unknown category"),
     (("export", "buildings", "{tmp}/x.gpkg", "--bbox", "3,3,1,1"), 1, "--bbox: bbox (3.0, 3.0, 1.0, 1.0) is empty"),
     (("export", "buildings", "{tmp}/x.gpkg", "--bbox", "1,2,3"), 1, "--bbox: '1,2,3' is not four numbers"),
     (("export", "buildings", "{tmp}/x.gpkg", "--bbox", "30.27,120.09,30.28,120.1"), 1, "looks lat/lon swapped"),
     (("no-such-command",), 2, "No such command"),
     (("load", "buildings", "{tmp}/b.geojson", "--no-such-option"), 2, "No such option")],
)
def test_bad_options_of_every_command_are_one_line(db, run, tmp_path, args, code, says):
    result = run(*(a.format(tmp=tmp_path) for a in args))
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert says in flat(result.stderr)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_port_in_use_is_one_line(db, run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        result = run("serve", "--port", str(s.getsockname()[1]), "--workers", "2")
    assert result.exit_code == 1
    assert flat(result.stderr).startswith("error: --port:") and "in use" in result.stderr
    assert "Traceback" not in result.output


def test_an_unexpected_error_is_one_line_naming_it_a_bug(db, run, monkeypatch):
    from gridmap.services import registry

    def broken(*a, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(registry, "connect", broken)
    result = run("info")
    assert result.exit_code == 1
    assert flat(result.stderr) == ("error: unexpected RuntimeError: boom (a bug: run `gridmap --verbose ...` for the "
                                   "traceback and report it)")
    verbose = run("--verbose", "info")
    assert isinstance(verbose.exception, RuntimeError)


def test_help_still_shows(run):
    result = run("dispatch")
    assert result.exit_code == 2 and "recommend" in result.output and "error" not in result.output


@pytest.fixture
def sample_cli_env(sample_street_db):
    """The CLI pointed at a fresh copy of the sample street."""
    from tests.conftest import sample_db_name

    engine = sample_street_db("cli")
    get_settings.cache_clear()
    yield engine, {"GRIDMAP_DB_NAME": sample_db_name("cli")}
    engine.dispose()
    get_settings.cache_clear()


def test_setup_serve_starts_the_api_with_its_workers(sample_cli_env, monkeypatch):
    """`gridmap setup --serve` used to raise a TypeError (`_serve` got two of its three arguments). Here on a
    copy of the sample street: the set-up runs for real (the sample is loaded already, its live state is
    brought to now, the kernels are warm), apart from writing the demo users' file (shared data dir) and the
    server itself, which would block."""
    import api.serve
    from gridmap import cli

    engine, env = sample_cli_env
    served = []
    monkeypatch.setattr(api.serve, "serve", lambda host, port, workers, **kw: served.append((host, port, workers)) or 0)
    monkeypatch.setattr(cli, "_api_access", lambda settings, engine: None)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["setup", "--serve", "--port", "8123", "--workers", "3"], env=env)
    assert result.exit_code == 0, result.output
    assert served == [("127.0.0.1", 8123, 3)]
    out = flat(result.stdout)
    assert "on-duty team(s) report their position now" in out
    assert "routing kernels" in out and "http://127.0.0.1:8123/dashboard" in out
    with engine.connect() as conn:
        fresh = conn.execute(text("SELECT count(*) FROM teams WHERE status <> 'off_duty' "
                                  "AND position_at > now() - interval '10 minutes'")).scalar_one()
        on_duty = conn.execute(text("SELECT count(*) FROM teams WHERE status <> 'off_duty'")).scalar_one()
    assert fresh == on_duty > 0


def test_sample_refresh_brings_the_teams_to_now(sample_cli_env):
    engine, env = sample_cli_env
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["sample", "refresh", "--at", "2030-01-02T03:04:05+08:00"], env=env)
    assert result.exit_code == 0, result.output
    assert "live state at 2030-01-02T03:04:05+08:00" in flat(result.stdout)
    with engine.connect() as conn:
        stamps = conn.execute(text("SELECT DISTINCT position_at FROM teams WHERE status <> 'off_duty'")).scalars().all()
    assert stamps == [dt.datetime(2030, 1, 1, 19, 4, 5, tzinfo=dt.UTC)]


def test_simulate_fast_makes_the_api_key_first_on_a_new_data_dir(tmp_path, monkeypatch):
    """`gridmap simulate fast` on a data directory without a key used to build the simulation template (a
    minute) and then fail as its own API refused to start ("no secret key"); it now writes the key first, as
    `gridmap setup` does, and keeps an existing one."""
    import gridmap.simulation.run as sim_run

    seen = []

    def stop_here(settings, **kw):
        seen.append((settings.data_dir / "secret_key").read_text(encoding="utf-8"))
        raise RuntimeError("stopped before the simulation")

    monkeypatch.setattr(sim_run, "run_fast", stop_here)
    env = {"GRIDMAP_DATA_DIR": str(tmp_path)}
    for _ in range(2):
        get_settings.cache_clear()
        CliRunner().invoke(app, ["simulate", "fast", "--days", "1"], env=env)
    get_settings.cache_clear()
    assert len(seen) == 2 and len(seen[0]) >= 32 and seen[0] == seen[1]  # made once, then kept
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
