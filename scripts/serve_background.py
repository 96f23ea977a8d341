"""Start/stop the gridmap API in the background for the demo (`make demo`, `make stop`).

Writes the server's pid to .gridmap-serve.pid and its log to .gridmap-serve.log, then waits until the
API answers /health, so that `make demo` returns with a working server.

How long to wait: the first start of a machine compiles the routing kernels (a minute or more; minutes on
a busy 2-core machine), later starts take seconds. So the wait follows the server's own report of its
start-up stages (api/serve.py appends them to .gridmap-serve.progress: "compiling the routing kernels",
"starting 2 worker processes", "worker 1 of 2 ready", "ready"), prints each new one, and keeps waiting as
long as the server lives and its last stage is younger than GRIDMAP_START_STALL_S (600 s). It gives up when
the server exits, or when nothing has progressed for that long (then it stops the server).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIDFILE = ROOT / ".gridmap-serve.pid"
LOGFILE = ROOT / ".gridmap-serve.log"
PROGRESS = ROOT / ".gridmap-serve.progress"
HOST = os.environ.get("GRIDMAP_HOST", "127.0.0.1")
PORT = int(os.environ.get("GRIDMAP_PORT", "8000"))
STALL_S = float(os.environ.get("GRIDMAP_START_STALL_S", "600"))
NOTE_EVERY_S = 30.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class _Stages:
    """Reads the stage lines a server appends to its progress file, from where it last stopped."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, b""

    def new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()  # an unfinished last line: read it whole next time
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def wait_until_up(proc: subprocess.Popen, health_url: str, progress: Path, *, stall_s: float = STALL_S,
                  poll_s: float = 0.5, note_every_s: float = NOTE_EVERY_S, say: Callable[[str], None] = print,
                  clock: Callable[[], float] = time.monotonic) -> bool:
    """Wait until ``health_url`` answers 200 while ``proc`` starts, following its progress file.

    Returns True when it answers; False when the process exits first, reports that it failed, or reports no
    new stage for ``stall_s`` seconds. Says each new stage, and every ``note_every_s`` what it still waits for.
    """
    stages = _Stages(progress)
    t0 = last = noted = clock()
    stage = "starting"
    while True:
        up = _healthy(health_url)
        for msg in stages.new():  # (read after the health check: a server that answers has said all its stages)
            stage, last = str(msg.get("stage", stage)), clock()
            say(f"  {stage}  [{last - t0:.0f} s]")
            noted = last
            if msg.get("state") == "failed":
                say(f"the API failed to start: {stage}")
                return False
        if up:
            return True
        if proc.poll() is not None:
            say(f"the API exited with code {proc.returncode} while starting (last stage: {stage})")
            return False
        now = clock()
        if now - last > stall_s:
            say(f"the API made no progress for {stall_s:.0f} s (last stage: {stage}); giving up")
            return False
        if now - noted >= note_every_s:
            say(f"  … still {stage}  [{now - t0:.0f} s]")
            noted = now
        time.sleep(poll_s)


def _login_hint() -> str:
    """Where the demo's passwords are, for the last lines of `make demo`."""
    try:
        from gridmap.config import get_settings

        users = get_settings().data_dir / "demo_users.txt"
    except Exception:  # noqa: BLE001 - only a hint; the API is up either way
        users = Path("<data_dir>/demo_users.txt")
    return (f"Dashboard: http://{HOST}:{PORT}/dashboard  — log in as admin, operator or planner with the "
            f"passwords in {users}\n"
            f"API docs:  http://{HOST}:{PORT}/docs       (token: POST /v1/auth/token with the same users)\n"
            f"Field app: http://{HOST}:{PORT}/field/     — a phone web app: log in as volunteer or gridworker\n"
            "Team positions go stale 5 minutes after their last report, as a real phone's would: "
            "`.venv/bin/gridmap sample refresh` re-stamps them (`--every 60` keeps them fresh)")


def start() -> int:
    if PIDFILE.exists() and alive(int(PIDFILE.read_text())):
        print(f"already serving on http://{HOST}:{PORT} (pid {PIDFILE.read_text().strip()})")
        print(_login_hint())
        return 0
    gridmap = Path(sys.executable).with_name("gridmap")
    PROGRESS.write_text("")
    env = dict(os.environ, GRIDMAP_PROGRESS_FILE=str(PROGRESS))
    with open(LOGFILE, "ab") as log:
        proc = subprocess.Popen([str(gridmap), "serve", "--host", HOST, "--port", str(PORT)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT,
                                env=env)
    PIDFILE.write_text(str(proc.pid))
    print(f"starting the API on http://{HOST}:{PORT} (pid {proc.pid}, log {LOGFILE.name})")
    t0 = time.monotonic()
    if wait_until_up(proc, f"http://{HOST}:{PORT}/health", PROGRESS):
        print(f"API up in {time.monotonic() - t0:.0f} s: http://{HOST}:{PORT}/docs  (log {LOGFILE.name}; stop with "
              "`make stop`)")
        print(_login_hint())
        return 0
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    PIDFILE.unlink(missing_ok=True)
    tail = LOGFILE.read_text(errors="replace").splitlines()[-15:]
    print(f"the API did not come up; the end of {LOGFILE}:\n  " + "\n  ".join(tail), file=sys.stderr)
    return 1


def stop_pidfile(pidfile: Path, what: str, grace_s: float, *, kill: bool = False) -> int:
    """Stop the process group whose leader's pid is in ``pidfile``: SIGTERM, then wait up to ``grace_s`` for it
    to finish what it is doing (then SIGKILL if ``kill``). Also used by scripts/simulate_background.py."""
    if not pidfile.exists():
        print(f"{what} is not running")
        return 0
    pid = int(pidfile.read_text())
    if alive(pid):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if kill and alive(pid):
            os.killpg(pid, signal.SIGKILL)
    pidfile.unlink()
    print(f"stopped {what}")
    return 0


def stop() -> int:
    # the workers finish their requests; the port is free once it exits
    return stop_pidfile(PIDFILE, "the API", 60.0)


if __name__ == "__main__":
    sys.exit({"start": start, "stop": stop}[sys.argv[1] if len(sys.argv) > 1 else "start"]())
