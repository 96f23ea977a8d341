"""The `gridmap` command line against the test database (GRIDMAP_DB_NAME points it there).

In-process runs use typer's CliRunner; the "one red line, no traceback" promise is checked on a real
subprocess with colours forced, as a user would see it.
"""

from __future__ import annotations

import os
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
    assert run("export", "buildings", tmp_path / "o.gpkg", "--bbox", "1,2,3").exit_code == 2
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
