"""`scripts/serve_background.py` waits for the API as long as its start makes progress (the first start
compiles the routing kernels: minutes on a busy machine), and gives up when it dies or stalls.

A fake server stands in for `gridmap serve`: it appends start-up stages to the progress file, slowly, the
way api/serve.py does, then answers /health."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKE = textwrap.dedent('''
    import json, sys, time, os
    from http.server import BaseHTTPRequestHandler, HTTPServer
    port, progress, stages, step, mode = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]

    def say(stage, state="starting"):
        with open(progress, "a") as f:
            f.write(json.dumps({"t": time.time(), "pid": os.getpid(), "state": state, "stage": stage}) + "\\n")

    for i in range(stages):
        say(f"stage {i + 1} of {stages}")
        time.sleep(step)
    if mode == "die":
        sys.exit(3)
    if mode == "hang":
        time.sleep(600)
    if mode == "fail":
        say("worker exited while starting", "failed")
        time.sleep(600)

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *a):
            pass

    say("ready", "ready")
    HTTPServer(("127.0.0.1", port), H).serve_forever()
''')


@pytest.fixture(scope="module")
def sb():
    spec = importlib.util.spec_from_file_location("serve_background", ROOT / "scripts" / "serve_background.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE)
    procs = []

    def start(stages: int, step: float, mode: str = "serve"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        progress = tmp_path / "progress"
        progress.write_text("")
        p = subprocess.Popen([sys.executable, str(script), str(port), str(progress), str(stages), str(step), mode])
        procs.append(p)
        return p, f"http://127.0.0.1:{port}/health", progress

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_waits_through_a_slow_start_that_makes_progress(sb, fake):
    proc, url, progress = fake(stages=5, step=0.8)  # 4 s in all, each stage well within the stall limit
    said = []
    t0 = time.monotonic()
    assert sb.wait_until_up(proc, url, progress, stall_s=2.0, poll_s=0.1, note_every_s=0.5, say=said.append)
    assert time.monotonic() - t0 > 2.0  # longer than the stall limit: progress kept it waiting
    stages = [s.strip().split("  [")[0] for s in said if not s.strip().startswith("…")]
    assert stages[:5] == [f"stage {i} of 5" for i in range(1, 6)]
    assert any(s.strip().startswith("… still") for s in said)  # it says what it still waits for


def test_gives_up_when_nothing_progresses(sb, fake):
    proc, url, progress = fake(stages=1, step=0.1, mode="hang")
    said = []
    t0 = time.monotonic()
    assert not sb.wait_until_up(proc, url, progress, stall_s=1.5, poll_s=0.1, say=said.append)
    assert 1.4 < time.monotonic() - t0 < 30
    assert "no progress for 2 s" in said[-1] or "no progress for 1 s" in said[-1]
    assert "stage 1 of 1" in said[-1]


def test_gives_up_at_once_when_the_server_dies_or_fails(sb, fake):
    proc, url, progress = fake(stages=2, step=0.2, mode="die")
    said = []
    assert not sb.wait_until_up(proc, url, progress, stall_s=600, poll_s=0.1, say=said.append)
    assert "exited with code 3" in said[-1]
    proc, url, progress = fake(stages=1, step=0.1, mode="fail")
    said = []
    t0 = time.monotonic()
    assert not sb.wait_until_up(proc, url, progress, stall_s=600, poll_s=0.1, say=said.append)
    assert time.monotonic() - t0 < 30 and "failed to start" in said[-1]


def test_stage_lines_are_read_whole(sb, tmp_path):
    p = tmp_path / "progress"
    p.write_text("")
    stages = sb._Stages(p)
    line = json.dumps({"stage": "compiling the routing kernels", "state": "starting"})
    with open(p, "a") as f:
        f.write(line[:10])
    assert stages.new() == []
    with open(p, "a") as f:
        f.write(line[10:] + "\n" + "not json\n")
    assert [m["stage"] for m in stages.new()] == ["compiling the routing kernels"]
