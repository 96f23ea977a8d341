"""The embedded database: a project-managed PostgreSQL + PostGIS cluster in a data directory.

With no ``GRIDMAP_DATABASE_URL`` gridmap runs its own server: ``initdb`` once, then ``pg_ctl start`` on
loopback only, password authentication (a random password kept in ``<data_dir>/credentials``, mode 600),
no Unix socket. PostgreSQL refuses to run as root, so when we are root every server command runs as the
``postgres`` system user (``runuser``), which owns the cluster directory.

Why hand-written: ``pg_ctlcluster`` only manages clusters under /etc/postgresql, and the PyPI "embedded
postgres" wheels ship no PostGIS. What is here is a thin layer over ``initdb``/``pg_ctl`` themselves.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gridmap.errors import DatabaseError

SUPERUSER = "gridmap"
SERVER_USER = "postgres"
_PG_ROOT = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class ClusterStatus:
    running: bool
    initialised: bool
    data_dir: Path
    port: int
    pid: int | None
    pg_version: str | None


def find_bindir(explicit: Path | None = None) -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: the explicit one, else the newest under /usr/lib/postgresql."""
    candidates = [explicit] if explicit else sorted(
        (p / "bin" for p in _PG_ROOT.glob("*") if p.name.isdigit()), key=lambda p: int(p.parent.name), reverse=True
    )
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise DatabaseError(
        "no PostgreSQL server binaries (initdb, pg_ctl) found under /usr/lib/postgresql",
        field="pg_bindir",
        fix="run `make setup` (installs postgresql-15 and postgresql-15-postgis-3), or set GRIDMAP_PG_BINDIR",
    )


def _postgis_installed(bindir: Path) -> bool:
    version = bindir.parent.name
    return any(Path(f"/usr/share/postgresql/{version}/extension").glob("postgis.control"))


class EmbeddedCluster:
    """One PostgreSQL cluster owned by gridmap. Every method is idempotent and safe to call concurrently."""

    def __init__(self, data_dir: Path, port: int, bindir: Path | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.logfile = self.data_dir / "log" / "postgres.log"
        self.credentials = self.data_dir / "credentials"
        self.portfile = self.data_dir / "port"
        self.wanted_port = port
        self._bindir = bindir

    # -- plumbing ---------------------------------------------------------------------------------
    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir

    @staticmethod
    def _as_root() -> bool:
        return os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root():
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
        if check and proc.returncode != 0:
            raise DatabaseError(
                f"`{' '.join(args[:2])}` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-800:]}",
                fix=f"see {self.logfile}",
            )
        return proc

    def _chown_to_server(self, path: Path) -> None:
        if self._as_root():
            pw = pwd.getpwnam(SERVER_USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @property
    def port(self) -> int:
        """The port this cluster uses: the one it was last started on, else the configured one."""
        try:
            return int(self.portfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return self.wanted_port

    @staticmethod
    def _port_free(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def _choose_port(self) -> int:
        """The configured port if free, else the next free one (another server may hold it)."""
        for port in (self.port, *range(self.wanted_port, self.wanted_port + 100)):
            if self._port_free(port):
                return port
        raise DatabaseError(f"no free port in {self.wanted_port}..{self.wanted_port + 99} on 127.0.0.1",
                            field="GRIDMAP_DB_PORT", fix="set GRIDMAP_DB_PORT to a free port")

    # -- public -----------------------------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def password(self) -> str:
        try:
            return self.credentials.read_text().strip()
        except FileNotFoundError:
            raise DatabaseError(
                f"the embedded cluster in {self.data_dir} has no credentials file", fix="run `gridmap db up`"
            ) from None

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}:{self.password()}@127.0.0.1:{self.port}/{dbname}"

    def init(self) -> bool:
        """Create the cluster if it does not exist. Returns True when it was created now."""
        with self._lock():
            if self.initialised:
                return False
            if not _postgis_installed(self.bindir):
                raise DatabaseError(
                    f"PostGIS is not installed for PostgreSQL {self.bindir.parent.name}",
                    fix="run `make setup` (apt-get install postgresql-15-postgis-3)",
                )
            if self._as_root():
                try:
                    pwd.getpwnam(SERVER_USER)
                except KeyError:
                    raise DatabaseError(
                        f"running as root needs the `{SERVER_USER}` system user to own the server",
                        fix="install the postgresql-15 package, which creates it",
                    ) from None
            if self.pgdata.exists() and any(self.pgdata.iterdir()):
                raise DatabaseError(
                    f"{self.pgdata} exists, is not empty and is not a PostgreSQL cluster",
                    fix="remove it or set GRIDMAP_DATA_DIR to another directory",
                )
            # The server user must be able to traverse every parent of the data directory.
            for parent in self.data_dir.parents:
                if self._as_root() and parent != Path("/") and not os.stat(parent).st_mode & 0o001:
                    raise DatabaseError(
                        f"the `{SERVER_USER}` user cannot enter {parent}, a parent of the data directory",
                        field="GRIDMAP_DATA_DIR",
                        fix="choose a data directory outside private home folders, e.g. /var/lib/gridmap",
                    )
            for d in (self.pgdata, self.logfile.parent):
                d.mkdir(parents=True, exist_ok=True)
                self._chown_to_server(d)
            os.chmod(self.pgdata, 0o700)
            password = secrets.token_urlsafe(24)
            pwfile = self.data_dir / ".initdb-pw"
            pwfile.write_text(password + "\n")
            os.chmod(pwfile, 0o600)
            self._chown_to_server(pwfile)
            try:
                self._run(
                    "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                )
            finally:
                pwfile.unlink(missing_ok=True)
            self.credentials.write_text(password + "\n")
            os.chmod(self.credentials, 0o600)
            conf = self.pgdata / "postgresql.conf"
            with open(conf, "a") as fh:
                fh.write(
                    "\n# --- gridmap embedded cluster ---\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "unix_socket_directories = ''\n"
                    "max_connections = 200\n"
                    "shared_buffers = 512MB\n"
                    "work_mem = 32MB\n"
                    "maintenance_work_mem = 256MB\n"
                    "max_wal_size = 4GB\n"
                    "synchronous_commit = on\n"
                    "timezone = 'Asia/Shanghai'\n"
                )
            return True

    def status(self) -> ClusterStatus:
        pid = None
        running = False
        if self.initialised:
            proc = self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False)
            running = proc.returncode == 0
            match = re.search(r"PID: (\d+)", proc.stdout)
            pid = int(match.group(1)) if match else None
        version = (self.pgdata / "PG_VERSION").read_text().strip() if self.initialised else None
        return ClusterStatus(running, self.initialised, self.data_dir, self.port, pid, version)

    def start(self) -> bool:
        """Start the server (initialising it first if needed). Returns True when it was started now."""
        self.init()
        with self._lock():
            if self.status().running:
                return False
            port = self._choose_port()
            self._run(
                "pg_ctl", "start", "-D", str(self.pgdata), "-l", str(self.logfile), "-w", "-t", "120",
                "-o", f"-p {port}",
            )
            self.portfile.write_text(f"{port}\n")
            return True

    def stop(self) -> bool:
        """Stop the server (fast shutdown: open transactions roll back). Returns True when it was stopped now."""
        with self._lock():
            if not self.initialised or not self.status().running:
                return False
            self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "120")
            return True

    def destroy(self) -> None:
        """Stop the server and delete the cluster and its credentials (used by tests and `gridmap db reset`)."""
        self.stop()
        with self._lock():
            shutil.rmtree(self.pgdata, ignore_errors=True)
            self.credentials.unlink(missing_ok=True)
