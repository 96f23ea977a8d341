"""The CLI side of API access: the secret key, users, the ladders (against the API test database)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.config import get_settings
from tests.api.conftest import PASSWORD, login, query

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


def test_units_show_load_and_a_unit_member_added(env, api_engine, client, users):
    runner = CliRunner()
    r = runner.invoke(app, ["units", "show", "--kind", "mall_front_desk"])
    assert r.exit_code == 0, r.output
    assert r.output.split()[0] == "MALL1-DESK" and "B008174" in r.output and "MR-" not in r.output
    community = query(api_engine, "SELECT area_code FROM units WHERE code = 'MALL1-DESK'")[0][0]
    r = runner.invoke(app, ["units", "show", "--area", community])
    assert r.exit_code == 0 and f"MR-{community}" in r.output and "MALL1-DESK" in r.output, r.output
    # a member of the front desk, and an operator of that community, from the command line
    r = runner.invoke(app, ["users", "add", "cli-desk", "--role", "unit", "--unit", "MALL1-DESK"])
    assert r.exit_code == 0, r.output
    member = login(client, "cli-desk", r.output.strip().rsplit(" ", 1)[1])
    assert client.get("/v1/units/MALL1-DESK/inbox", headers=member["headers"]).status_code == 200
    assert client.get(f"/v1/units/MR-{community}/inbox", headers=member["headers"]).status_code == 403
    r = runner.invoke(app, ["users", "add", "cli-community-op", "--role", "operator", "--community", community])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "add", "cli-nounit", "--role", "unit", "--unit", "NO-SUCH-UNIT"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    # a units file with an unknown kind: one line naming it, nothing loaded
    bad = env / "units.csv"
    bad.write_text("code,kind,name,name_zh,area_code,place_code\nX-1,spaceport,X,X,330106,\n", encoding="utf-8")
    r = runner.invoke(app, ["units", "load", str(bad)])
    assert r.exit_code == 1 and "spaceport" in r.output and "Traceback" not in r.output
    assert query(api_engine, "SELECT count(*) FROM units WHERE code = 'X-1'")[0][0] == 0


def test_set_role_gives_each_role_its_own_scope_and_refuses_a_wrong_combination(env, api_engine, client, users,
                                                                                street, street_b):
    """`gridmap users set-role` moves one user through every role and level: a district, street and community
    operator, a unit member, a planner; each time the user's row holds that scope alone (what every read is
    confined by). A scope option the role does not take, or two levels at once, is one line naming it, and
    nothing changes."""
    runner = CliRunner()
    district = query(api_engine, "SELECT parent_code FROM areas WHERE code = :s AND valid_to IS NULL", s=street)[0][0]
    community = query(api_engine, "SELECT code FROM areas WHERE level = 'community' AND parent_code = :s "
                                  "AND valid_to IS NULL ORDER BY code LIMIT 1", s=street_b)[0][0]
    r = runner.invoke(app, ["users", "set-role", "--help"])
    assert r.exit_code == 0
    for option in ("--district", "--street", "--community", "--unit", "--member", "unit"):
        assert option in r.output, option
    r = runner.invoke(app, ["users", "add", "cli-mover", "--role", "planner"])
    assert r.exit_code == 0, r.output

    def row() -> tuple:
        return tuple(query(api_engine, "SELECT role, district_code, street_code, community_code, unit_code, "
                                       "member_code FROM users WHERE username = 'cli-mover'")[0])

    for args, want in (
            (["operator", "--district", district], ("operator", district, None, None, None, None)),
            (["operator", "--street", street_b], ("operator", None, street_b, None, None, None)),
            (["operator", "--community", community], ("operator", None, None, community, None, None)),
            (["unit", "--unit", "MALL1-DESK"], ("unit", None, None, None, "MALL1-DESK", None)),
            (["planner"], ("planner", None, None, None, None, None))):
        r = runner.invoke(app, ["users", "set-role", "cli-mover", *args])
        assert r.exit_code == 0, (args, r.output)
        assert row() == want, args
    for args, field in ((["operator", "--street", street, "--district", district], "street"),
                        (["operator", "--street", street, "--unit", "MALL1-DESK"], "unit"),
                        (["unit", "--unit", "MALL1-DESK", "--community", community], "community"),
                        (["planner", "--street", street], "street"),
                        (["grid_worker", "--district", district], "district"),
                        (["unit"], "unit_code"),
                        (["operator"], "street_code"),
                        (["operator", "--district", street], "district_code"),
                        (["unit", "--unit", "NO-SUCH-UNIT"], "unit_code")):
        r = runner.invoke(app, ["users", "set-role", "cli-mover", *args])
        assert r.exit_code == 1 and "Traceback" not in r.output, (args, r.output)
        assert field in r.output, (args, r.output)
        assert row() == ("planner", None, None, None, None, None), args
    # `users add` refuses the same way
    r = runner.invoke(app, ["users", "add", "cli-wrong", "--role", "planner", "--unit", "MALL1-DESK"])
    assert r.exit_code == 1 and "--unit" in r.output and "planner" in r.output, r.output
    assert query(api_engine, "SELECT count(*) FROM users WHERE username = 'cli-wrong'")[0][0] == 0
    # the last role's scope is what the user's reads are confined to
    runner.invoke(app, ["users", "set-role", "cli-mover", "operator", "--community", community])
    runner.invoke(app, ["users", "passwd", "cli-mover", "--password", PASSWORD])
    op = login(client, "cli-mover", PASSWORD)
    assert client.get("/v1/levels/overview", headers=op["headers"]).json()["area"]["code"] == community
