"""Settings, read from the environment (prefix ``GRIDMAP_``) and never at import time.

``get_settings()`` builds them once per process; tests and the CLI call ``get_settings.cache_clear()``
after changing the environment.
"""

from __future__ import annotations

import ipaddress
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Storage CRS: every geometry in PostGIS is lon/lat WGS84.
STORAGE_SRID = 4326
#: Measuring CRS: CGCS2000 / 3-degree Gauss-Kruger CM 120E, metres; fits Hangzhou (119.5–120.5 E).
MEASURE_CRS = "EPSG:4549"
#: Hangzhou municipality, lon/lat, with a small margin (from the Tianditu district boundaries).
HANGZHOU_BBOX = (118.3, 29.15, 120.8, 30.6)


def _default_data_dir() -> Path:
    # PostgreSQL runs as the unprivileged `postgres` user when we are root, and that user must be able
    # to reach the data directory: /root is mode 700 on Debian, so root's default lives under /var/lib.
    if os.geteuid() == 0:
        return Path("/var/lib/gridmap")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "gridmap"


class Settings(BaseSettings):
    """gridmap settings. Every field can be set as ``GRIDMAP_<NAME>`` in the environment or a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="An external PostGIS (>= 3.1) to use, e.g. postgresql+psycopg://user:pw@host/db. "
        "Unset: gridmap runs its own embedded PostgreSQL + PostGIS in data_dir.",
    )
    data_dir: Path = Field(default_factory=_default_data_dir, description="Where the embedded cluster lives.")
    db_port: int = Field(default=5433, ge=1024, le=65535, description="Loopback port of the embedded cluster.")
    db_name: str = Field(default="gridmap", pattern=r"^[a-z_][a-z0-9_]*$")
    pg_bindir: Path | None = Field(default=None, description="PostgreSQL binaries; found automatically.")
    sample_data_dir: Path = Field(
        default=Path(__file__).resolve().parent.parent / "data",
        description="Where the real input data of the sample street is (OSM roads, district boundaries).",
    )
    area_bbox: tuple[float, float, float, float] = Field(
        default=HANGZHOU_BBOX,
        description="lon/lat bbox of the configured area: loaded features outside it are reported.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs API tokens. Unset: read from <data_dir>/secret_key (written by `gridmap setup`). "
        "The API refuses to start without one, or with a default or short (< 32 characters) one.",
    )
    token_ttl_s: int = Field(default=12 * 3600, ge=60, le=30 * 86400, description="API token lifetime.")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Largest request body the API accepts.")
    escalation_interval_s: float = Field(
        default=30.0, ge=0, description="How often the API sweeps for timed-out offers and overdue events (0: never)."
    )
    clock: Literal["system", "simulation"] = Field(
        default="system",
        description="The API's clock. 'simulation': the clock of a simulation database (its simulation_mark row), "
        "moved by `gridmap simulate fast` through PUT /v1/simulation/clock; the API refuses to start with it on "
        "any other database.",
    )
    # -- sessions and logins (gridmap/services/auth.py) ---------------------------------------------------
    session_cache_ttl_s: float = Field(
        default=3.0, ge=0, le=60,
        description="How long an API process trusts its cached view of a session (revoked? user active? role?) "
        "before reading it again. Revocations reach every process at once by LISTEN/NOTIFY; this is the safety net.",
    )
    login_user_limit: int = Field(default=5, ge=1, le=1000,
                                  description="Failed logins for one username within login_window_s before 429.")
    login_address_limit: int = Field(default=20, ge=1, le=100_000,
                                     description="Failed logins from one client address within login_window_s before 429.")
    login_window_s: int = Field(default=900, ge=10, le=86_400,
                                description="Failures older than this (after the last failure or lock) are forgotten.")
    login_lock_s: int = Field(default=60, ge=1, le=86_400,
                              description="First lock after the limit; each further failure doubles it.")
    login_lock_max_s: int = Field(default=900, ge=1, le=86_400, description="The longest lock.")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client. "
        "Empty (default): X-Forwarded-For is ignored and the peer's address is the client's.",
    )
    argon2_time_cost: int = Field(default=3, ge=1, le=20, description="Argon2id passes (argon2-cffi's default).")
    argon2_memory_kib: int = Field(default=65_536, ge=1024, le=4_194_304,
                                   description="Argon2id memory per hash in KiB (argon2-cffi's default: 64 MiB).")
    argon2_parallelism: int = Field(default=4, ge=1, le=64, description="Argon2id lanes (argon2-cffi's default).")
    argon2_concurrency: int = Field(
        default=1, ge=0, le=64,
        description="Password hashes/checks running at once per API process; the rest wait in a short queue or get "
        "429. 0 lifts the bound (only to show the old behaviour in scripts/bench_login.py).",
    )
    argon2_queue: int = Field(default=2, ge=0, le=1000,
                              description="Logins that may wait for a password check per process; beyond: 429.")

    # -- the field app and the resident's QR page ----------------------------------------------------------
    public_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
                            description="The address residents reach gridmap at: QR codes encode <public_url>/q/<place>.")
    photo_max_bytes: int = Field(default=8_000_000, ge=100_000, le=50_000_000,
                                 description="Largest photo accepted (as sent, before it is re-encoded).")
    qr_reports_per_device: int = Field(default=5, ge=1, le=10_000,
                                       description="Reports (and receipt answers) per device cookie within qr_window_s.")
    qr_reports_per_address: int = Field(default=30, ge=1, le=100_000,
                                        description="Reports (and receipt answers) per client address within qr_window_s.")
    qr_window_s: int = Field(default=3600, ge=10, le=86_400, description="The QR page's throttle window.")
    notify_after_s: float = Field(default=60.0, ge=5, le=3600,
                                  description="An offer unanswered this long is handed to the notifier (SMS/voice; "
                                  "the demo's only logs it).")

    @field_validator("area_bbox")
    @classmethod
    def _bbox_ordered(cls, v: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        minx, miny, maxx, maxy = v
        if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
            raise ValueError(f"area_bbox must be (min_lon, min_lat, max_lon, max_lat) in degrees, got {v}")
        return v

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                ipaddress.ip_network(p, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {p!r} is not an IP address or CIDR (e.g. 10.0.0.5 or 10.0.0.0/24)") from None
        return v

    @property
    def embedded(self) -> bool:
        """True when gridmap manages its own database server."""
        return not self.database_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
