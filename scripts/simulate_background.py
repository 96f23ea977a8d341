"""Start/stop the live simulator in the background for the demo (`make demo`, `make stop`).

`gridmap simulate live` drives the demo's API (http://GRIDMAP_HOST:GRIDMAP_PORT) in real time: teams patrol and
report positions, reports arrive at the sample year's rates, teams take offers, drive and settle events. Its pid
goes to .gridmap-simulate.pid and its output to .gridmap-simulate.log; `start` returns once it says it is driving
the API (the first start creates its 150 team users, an Argon2 hash each: a minute or so), `stop` ends it
(SIGTERM: it finishes the call in flight and writes its summary).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from serve_background import alive, stop_pidfile  # scripts/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parent.parent
PIDFILE = ROOT / ".gridmap-simulate.pid"
LOGFILE = ROOT / ".gridmap-simulate.log"
HOST = os.environ.get("GRIDMAP_HOST", "127.0.0.1")
PORT = int(os.environ.get("GRIDMAP_PORT", "8000"))
WAIT_S = float(os.environ.get("GRIDMAP_SIMULATE_START_S", "300"))
READY = "driving http"


def start() -> int:
    if PIDFILE.exists() and alive(int(PIDFILE.read_text())):
        print(f"the live simulator is running already (pid {PIDFILE.read_text().strip()}, log {LOGFILE.name})")
        return 0
    gridmap = Path(sys.executable).with_name("gridmap")
    offset = LOGFILE.stat().st_size if LOGFILE.exists() else 0
    with open(LOGFILE, "ab") as log:
        proc = subprocess.Popen([str(gridmap), "simulate", "live", "--api", f"http://{HOST}:{PORT}"], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
    PIDFILE.write_text(str(proc.pid))
    print(f"starting the live simulator (pid {proc.pid}, log {LOGFILE.name}): teams log in and start to patrol")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with open(LOGFILE, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        if READY in text:
            print("the live simulator drives the API: teams move on the map, reports arrive at the sample year's "
                  "rates (the first within a minute); `make stop` stops it")
            return 0
        if proc.poll() is not None:
            print(f"the live simulator exited with code {proc.returncode}:\n  " +
                  "\n  ".join(text.strip().splitlines()[-10:]), file=sys.stderr)
            PIDFILE.unlink(missing_ok=True)
            return 1
        time.sleep(0.5)
    print(f"the live simulator is still starting after {WAIT_S:.0f} s; it goes on in the background (see "
          f"{LOGFILE.name})")
    return 0


def stop() -> int:
    # SIGTERM: it finishes the call in flight and writes its summary
    return stop_pidfile(PIDFILE, "the live simulator", 30.0, kill=True)


if __name__ == "__main__":
    sys.exit({"start": start, "stop": stop}[sys.argv[1] if len(sys.argv) > 1 else "start"]())
