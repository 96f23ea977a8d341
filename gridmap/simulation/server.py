"""An API server for a simulation database (fast mode): ``python -m api.serve`` in its own process, on the
simulation's clock, with no sweeper of its own (the simulation sweeps, in step) and the simulation users' cheap
Argon2 cost. The simulator never imports the app: it only talks to it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gridmap.config import Settings
from gridmap.errors import DatabaseError
from gridmap.simulation.world import SIM_ARGON2, db_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SimulationServer:
    """``with SimulationServer(settings, "gridmap_sim", log_path) as url: ...``"""

    def __init__(self, settings: Settings, database: str, log_path: Path, *, workers: int = 1,
                 port: int | None = None, timeout_s: float = 600.0) -> None:
        self.settings, self.database, self.log_path = settings, database, log_path
        self.workers, self.port, self.timeout_s = workers, port or free_port(), timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ, GRIDMAP_CLOCK="simulation", GRIDMAP_ESCALATION_INTERVAL_S="0",
                   GRIDMAP_TOKEN_TTL_S=str(30 * 86400), GRIDMAP_DATA_DIR=str(self.settings.data_dir),
                   GRIDMAP_DB_PORT=str(self.settings.db_port))
        env.update({f"GRIDMAP_{k.upper()}": str(v) for k, v in SIM_ARGON2.items()})
        if self.settings.database_url:
            env["GRIDMAP_DATABASE_URL"] = db_url(self.settings, self.database)
        else:
            env["GRIDMAP_DB_NAME"] = self.database
        return env

    def __enter__(self) -> str:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api.serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                 str(self.workers), "--no-access-log", "--log-level", "warning"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env=self.env(), cwd=Path(__file__).resolve().parents[2])
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").splitlines()[-8:]
                raise DatabaseError(f"the simulation's API exited with code {self.proc.returncode}",
                                    field="api", fix="see its log " + str(self.log_path) + ": " + " | ".join(tail))
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self.url
            except OSError:
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise DatabaseError("the simulation's API did not come up", field="api", fix=f"see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
