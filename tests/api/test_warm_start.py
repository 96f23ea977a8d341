"""A warm start compiles nothing: the routing kernels compiled once (by `gridmap setup`, or by the API's
supervisor before it starts its workers) are loaded from numba's disk cache by every later process, and the
supervisor reports each stage of its start (what scripts/serve_background.py follows)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.db]
PROBE = """
import datetime as dt, json, sys
from zoneinfo import ZoneInfo
from gridmap.services import warmup
toy = warmup.compile_kernels()
out = {"toy": [toy.compiled, toy.loaded]}
if len(sys.argv) > 1:
    from gridmap.storage.db import make_engine
    live = warmup.warm_dispatch(make_engine(sys.argv[1]), dt.datetime(2026, 11, 2, 9, tzinfo=ZoneInfo("Asia/Shanghai")))
    out["live"] = [live.compiled, live.loaded]
print(json.dumps(out))
"""


def _probe(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_new_process_loads_the_kernels_from_the_disk_cache(api_engine):
    _probe()  # compiles whatever is not cached yet
    again = _probe(api_engine.url.render_as_string(hide_password=False))
    assert again["toy"][0] == 0 and again["toy"][1] > 0  # nothing compiled: all loaded from disk
    # and the small graph's signatures are the dispatcher's: the real street needs nothing more
    assert again["live"][0] == 0


def test_the_supervisor_reports_its_start_up_stages(api_engine, tmp_path):
    port = free_port()
    progress = tmp_path / "progress"
    env = dict(os.environ, GRIDMAP_DATABASE_URL=api_engine.url.render_as_string(hide_password=False),
               GRIDMAP_SECRET_KEY=secrets.token_urlsafe(48), GRIDMAP_ESCALATION_INTERVAL_S="0",
               GRIDMAP_PROGRESS_FILE=str(progress))
    proc = subprocess.Popen([sys.executable, "-m", "api.serve", "--port", str(port), "--workers", "2",
                             "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env,
                            start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=600)
        lines = [json.loads(line) for line in progress.read_text().splitlines()]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        proc.stderr.close()
    stages = [m["stage"] for m in lines]
    if stages[0] == "routing kernels: compiled already (numba's disk cache)":  # the stamp of an earlier run
        stages = stages[1:]
    else:
        assert stages[0].startswith("compiling the routing kernels (first start only")
        assert stages[1].startswith(("routing kernels loaded from the disk cache", "compiled "))
        stages = stages[2:]
    assert stages[0] == "starting 2 worker process(es): road graph, teams, connection pool"
    assert [s.split(" (pid")[0] for s in stages[1:3]] == ["worker 1 of 2 ready", "worker 2 of 2 ready"]
    assert stages[3] == f"ready: listening on http://127.0.0.1:{port}" and lines[-1]["state"] == "ready"


def test_the_supervisor_compiles_in_a_child_unless_the_stamp_says_compiled(tmp_path, monkeypatch):
    from api.serve import Progress, compile_kernels_first
    from gridmap.services import warmup

    real = warmup._stamp_path()
    stamp = tmp_path / "__pycache__" / "gridmap-kernels.json"
    stamp.parent.mkdir()
    monkeypatch.setattr(warmup, "_stamp_path", lambda: stamp)
    assert not warmup.kernels_cached()
    for f in real.parent.glob("*.nbi"):  # numba's index files, as if they were next to this stamp
        (stamp.parent / f.name).write_bytes(b"")
    warmup.compile_kernels()
    assert warmup.kernels_cached()
    said = tmp_path / "progress"
    assert compile_kernels_first(Progress(str(said)))
    assert [json.loads(x)["stage"] for x in said.read_text().splitlines()] == [
        "routing kernels: compiled already (numba's disk cache)"]
    good = stamp.read_text()
    changed = json.loads(good)
    changed["sources"]["gridmap.routing._kernels.ch"][0] += 1  # the source changed since: numba recompiles it
    stamp.write_text(json.dumps(changed))
    assert not warmup.kernels_cached()
    stamp.write_text(good)
    assert warmup.kernels_cached()
    next(stamp.parent.glob("ch.*.nbi")).unlink()  # the cache was deleted since (not the stamp)
    assert not warmup.kernels_cached()
