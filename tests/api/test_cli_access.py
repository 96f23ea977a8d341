"""The CLI side of API access: the secret key, users, the ladders (against the API test database)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.config import get_settings
from tests.api.conftest import login, query

pytestmark = [pytest.mark.db]


@pytest.fixture
def env(api_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDMAP_DB_NAME", api_engine.url.database)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_secret_init_users_add_and_ladders(env, api_engine, client, users):
    runner = CliRunner()
    elsewhere = {"GRIDMAP_DATA_DIR": str(env)}  # the key file only: no database is touched
    r = runner.invoke(app, ["secret", "init"], env=elsewhere)
    assert r.exit_code == 0 and "wrote" in r.output and (env / "secret_key").stat().st_mode & 0o777 == 0o600
    get_settings.cache_clear()
    r = runner.invoke(app, ["secret", "init"], env=elsewhere)
    assert r.exit_code == 0 and "kept" in r.output
    get_settings.cache_clear()
    r = runner.invoke(app, ["users", "add", "cli-planner", "--role", "planner"])
    assert r.exit_code == 0, r.output
    password = r.output.strip().rsplit(" ", 1)[1]
    assert login(client, "cli-planner", password)["role"] == "planner"
    r = runner.invoke(app, ["users", "add", "cli-op", "--role", "operator"])
    assert r.exit_code == 1 and "street_code" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["users", "add", "cli-planner", "--role", "planner"])
    assert r.exit_code == 1 and "exists already" in r.output
    assert query(api_engine, "SELECT count(*) FROM users WHERE username LIKE 'cli-%'")[0][0] == 1
    r = runner.invoke(app, ["ladders", "show", "consumer_dispute"])
    assert r.exit_code == 0 and "消保站" in r.output
    r = runner.invoke(app, ["ladders", "load", str(env / "missing.csv")])
    assert r.exit_code == 1 and "does not exist" in r.output
