"""The living street on the command-centre map (issue 13): with the API and the live simulator running, the map
shows a team's position change and a new event within 60 s, without a reload.

As `make demo` does it: the real app (uvicorn, wall clock) on a copy of the sample street whose live state is
brought to now, and the live simulator as a process of its own (`gridmap simulate live --api ...`, what
scripts/simulate_background.py starts) driving that API over HTTP in real time. The simulator's default
behaviour (a fix every 30 s, the first report within 30 s of its start, then the sample year's rates) is what
the test relies on; only its users' Argon2 cost is the cheap one of the simulation databases.

The page is open and drawn before the simulator starts, so what the test waits for can only come through the
page's own live refresh: it reads the deck's layers (the page's state), never the database, to decide.
Without the simulator nothing moves and no event arrives, and the test fails at its 60 s ceiling (checked by
hand with the simulator left out).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.app import create_app
from gridmap.services import auth, sample
from gridmap.services.registry import Registry
from gridmap.simulation.world import SIM_ARGON2
from tests.servers import served

from .conftest import ARTIFACTS, log_in

pytestmark = [pytest.mark.db, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
WITHIN_S = 60.0  # the promise, from the moment the simulator drives the API
START_S = 120.0  # the simulator's own start (read the street, its users, log the teams in): a ceiling, not a target
READY = "driving http"  # what `gridmap simulate live` says once it drives the API (simulate_background waits for it)


@pytest.fixture(scope="module")
def live_engine(sample_street_db):
    """A copy of the sample street, its live state brought to now (what `gridmap setup` does for the demo)."""
    engine = sample_street_db("live_street", pool_size=4, max_overflow=4)
    sample.refresh_live_state(engine, dt.datetime.now(dt.UTC))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def server(live_engine, settings):
    """The real app on the live street, on the wall clock, served by uvicorn: the demo's API. (Overrides the
    dashboard suite's server, which serves a street replayed at the sample's clock; ``page`` guards this one.)"""
    cfg = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0})
    app = create_app(cfg, registry=Registry(live_engine, cfg))
    with served(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def district_operator(live_engine) -> dict:
    """An operator of the district: the simulator's reports fall in either of the sample's two streets."""
    with live_engine.connect() as conn:
        district = conn.execute(text("SELECT parent_code FROM areas WHERE level = 'street' AND valid_to IS NULL "
                                     "ORDER BY population DESC NULLS LAST, code LIMIT 1")).scalar_one()
    user = {"username": "live_operator", "password": secrets.token_urlsafe(16)}
    with Session(live_engine) as session:
        auth.create_user(session, role="operator", district_code=district, **user)
    return user


def start_simulator(server: str, engine, data_dir: Path) -> tuple[subprocess.Popen, Path]:
    """`gridmap simulate live` against ``server``, as scripts/simulate_background.py starts it; its users file in
    ``data_dir``. Returns the process and its output file."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", GRIDMAP_DATA_DIR=str(data_dir),
               GRIDMAP_DATABASE_URL=engine.url.render_as_string(hide_password=False),
               **{f"GRIDMAP_{k.upper()}": str(v) for k, v in SIM_ARGON2.items()})
    out = data_dir / "simulate.log"
    gridmap = Path(sys.executable).with_name("gridmap")
    with open(out, "wb") as log:
        proc = subprocess.Popen([str(gridmap), "simulate", "live", "--api", server, "--log", str(data_dir / "run.jsonl")],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=env,
                                start_new_session=True)
    return proc, out


def wait_until_driving(proc: subprocess.Popen, out: Path) -> None:
    deadline = time.monotonic() + START_S
    while READY not in out.read_text(errors="replace"):
        assert proc.poll() is None, f"the live simulator exited ({proc.returncode}):\n{out.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"the live simulator did not start in {START_S:.0f} s:\n{out.read_text()}"
        time.sleep(0.2)


def stop_simulator(proc: subprocess.Popen, out: Path) -> str:
    """SIGTERM (what `make stop` sends): it finishes the call in flight and prints its summary."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return out.read_text(errors="replace")


#: the page's own state: every drawn team's position and every drawn event's id
SNAPSHOT = """() => { const L = window.gridmap.deck.props.layers; const get = n => L.find(l => l.id === n).props.data;
    return {teams: Object.fromEntries(get('teams').map(t => [t.code, t.position])),
            events: get('events').map(e => e.id)}; }"""
#: what has changed since the snapshot ``before``: teams drawn elsewhere, events not drawn before
CHANGED = """(before) => { const L = window.gridmap.deck.props.layers; const get = n => L.find(l => l.id === n).props.data;
    const moved = get('teams').filter(t => { const p = before.teams[t.code];
        return p !== undefined && (p[0] !== t.position[0] || p[1] !== t.position[1]); }).map(t => t.code);
    const seen = new Set(before.events);
    const fresh = get('events').filter(e => !seen.has(e.id)).map(e => e.id);
    return moved.length > 0 && fresh.length > 0 ? {moved, fresh, page: window.gmPageMark} : null; }"""


def test_the_map_shows_a_team_move_and_a_new_event_within_60_s(page, server, live_engine, district_operator,
                                                                tmp_path):
    page.goto(f"{server}/dashboard")
    log_in(page, district_operator)  # a district's operator starts at the district screen; the map is a link away
    page.goto(f"{server}/dashboard")
    page.wait_for_function("() => window.gridmap && window.gridmap.ready()", timeout=90_000)
    mark = secrets.token_hex(8)
    page.evaluate("m => { window.gmPageMark = m; }", mark)  # gone if the page reloads
    before = page.evaluate(SNAPSHOT)
    assert len(before["teams"]) > 100  # the district's teams are drawn (the sample street has 150)

    started = dt.datetime.now(dt.UTC)
    proc, out = start_simulator(server, live_engine, tmp_path)
    try:
        wait_until_driving(proc, out)
        t0 = time.monotonic()
        changed = page.wait_for_function(CHANGED, arg=before, timeout=WITHIN_S * 1000, polling=500).json_value()
        waited_s = time.monotonic() - t0
        assert proc.poll() is None, "the simulator stopped while the page was watched"
    finally:
        log = stop_simulator(proc, out)
    page.screenshot(path=str(ARTIFACTS / "live_street.png"))
    assert changed["page"] == mark, "the page reloaded: the change must come through its live refresh"
    assert "stopped:" in log and "report(s) sent" in log, log[-2000:]

    # what the page drew is the simulator's doing: the moved team reported a fix and the new event was reported
    # after the simulator started (the page alone cannot tell whose write it showed)
    with live_engine.connect() as conn:
        fixed = conn.execute(text("SELECT count(*) FROM teams WHERE code = ANY(:c) AND position_at >= :t"),
                             {"c": changed["moved"], "t": started}).scalar_one()
        reported = conn.execute(text("SELECT count(*) FROM events WHERE id = ANY(:i) AND reported_at >= :t"),
                                {"i": changed["fresh"], "t": started}).scalar_one()
    assert fixed == len(changed["moved"]) and reported == len(changed["fresh"]), (changed, fixed, reported)
    print(f"a team moved and a new event appeared {waited_s:.1f} s after the simulator started driving "
          f"({len(changed['moved'])} team(s) moved, {len(changed['fresh'])} new event(s))")
