"""Start/stop the gridmap API in the background for the demo (`make demo`, `make stop`).

Writes the server's pid to .gridmap-serve.pid and its log to .gridmap-serve.log, then waits until the
API answers /health, so that `make demo` returns with a working server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIDFILE = ROOT / ".gridmap-serve.pid"
LOGFILE = ROOT / ".gridmap-serve.log"
HOST = os.environ.get("GRIDMAP_HOST", "127.0.0.1")
PORT = int(os.environ.get("GRIDMAP_PORT", "8000"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def start() -> int:
    if PIDFILE.exists() and _alive(int(PIDFILE.read_text())):
        print(f"already serving on http://{HOST}:{PORT} (pid {PIDFILE.read_text().strip()})")
        return 0
    gridmap = Path(sys.executable).with_name("gridmap")
    with open(LOGFILE, "ab") as log:
        proc = subprocess.Popen([str(gridmap), "serve", "--host", HOST, "--port", str(PORT)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
    PIDFILE.write_text(str(proc.pid))
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"http://{HOST}:{PORT}/health", timeout=2) as r:
                if r.status == 200:
                    print(f"API up: http://{HOST}:{PORT}/docs  (log {LOGFILE.name}; stop with `make stop`)")
                    return 0
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    print(f"the API did not come up; see {LOGFILE}", file=sys.stderr)
    return 1


def stop() -> int:
    if not PIDFILE.exists():
        print("not running")
        return 0
    pid = int(PIDFILE.read_text())
    if _alive(pid):
        os.killpg(pid, signal.SIGTERM)
    PIDFILE.unlink()
    print("stopped the API")
    return 0


if __name__ == "__main__":
    sys.exit({"start": start, "stop": stop}[sys.argv[1] if len(sys.argv) > 1 else "start"]())
