"""Users, passwords and tokens; who may do what (roles and scopes).

Roles: ``admin`` (everything), ``operator`` (everything in one street), ``grid_worker`` and ``volunteer``
(their team's assignments and their own grid(s); never residents' personal data), ``planner``
(aggregates and maps, never personal data), ``intake`` (a channel's integration: reports events).

Passwords are hashed with Argon2id (argon2-cffi). Tokens are HMAC-SHA256-signed claims (user, role,
scope, expiry) with the server's secret key; the API refuses to start without a strong secret.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridmap.config import Settings
from gridmap.errors import ConfigError, Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from gridmap.storage import events_sql as sql
from gridmap.storage.models import USER_ROLES

SECRET_FILE = "secret_key"
DEMO_USERS_FILE = "demo_users.txt"
MIN_SECRET_LEN = 32
#: Values that appear in tutorials and .env templates: never accepted, whatever their length.
DEFAULT_SECRETS = {
    "changeme", "change-me", "change_me", "changethis", "secret", "secret-key", "secretkey", "your-secret-key",
    "default", "dev", "development", "test", "testing", "password", "gridmap", "insecure", "please-change-me",
    "supersecret", "super-secret", "xxx", "none", "null",
}
TEAM_ROLES = ("grid_worker", "volunteer")
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password: equalises the time of a login with an unknown name")


# -- secrets ------------------------------------------------------------------------------------------------
def check_secret(value: str, source: str) -> bytes:
    v = value.strip()
    if v.lower() in DEFAULT_SECRETS or len(set(v)) < 8:
        raise ConfigError(f"the secret key from {source} is a default or trivial value", field="GRIDMAP_SECRET_KEY",
                          fix="generate one: `gridmap secret init` (or python -c 'import secrets; "
                              "print(secrets.token_urlsafe(48))')")
    if len(v) < MIN_SECRET_LEN:
        raise ConfigError(f"the secret key from {source} has {len(v)} characters, fewer than {MIN_SECRET_LEN}",
                          field="GRIDMAP_SECRET_KEY", fix="use `gridmap secret init` for a 64-character random key")
    return v.encode()


def resolve_secret(settings: Settings) -> bytes:
    """The token-signing key: GRIDMAP_SECRET_KEY, else <data_dir>/secret_key. Refuses weak or missing keys."""
    if settings.secret_key is not None:
        return check_secret(settings.secret_key.get_secret_value(), "GRIDMAP_SECRET_KEY")
    path = Path(settings.data_dir) / SECRET_FILE
    if path.exists():
        return check_secret(path.read_text(encoding="utf-8"), str(path))
    raise ConfigError("no secret key to sign API tokens", field="GRIDMAP_SECRET_KEY",
                      fix=f"run `gridmap setup` or `gridmap secret init` (writes {path}), or set GRIDMAP_SECRET_KEY")


def write_secret(settings: Settings, *, overwrite: bool = False) -> tuple[Path, bool]:
    """Create <data_dir>/secret_key (mode 600) with a random key; returns (path, created)."""
    path = Path(settings.data_dir) / SECRET_FILE
    if path.exists() and not overwrite:
        check_secret(path.read_text(encoding="utf-8"), str(path))
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_urlsafe(48))
    os.chmod(path, 0o600)
    return path, True


# -- passwords ----------------------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    if len(password) < 12:
        raise InvalidInput("the password is shorter than 12 characters", field="password",
                           fix="use at least 12 characters (a passphrase is fine)")
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# -- principals and tokens ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """Who is calling, with the scope their role gives them."""

    user_id: int
    username: str
    role: str
    street: str | None = None
    team_id: int | None = None
    team_code: str | None = None
    grids: tuple[str, ...] = field(default_factory=tuple)

    def require(self, *roles: str, what: str = "this") -> None:
        if self.role not in roles:
            raise Forbidden(f"role {self.role!r} may not do {what}", field="role",
                            fix=f"ask an account with one of the roles {', '.join(roles)}")

    @property
    def is_team(self) -> bool:
        return self.role in TEAM_ROLES

    @property
    def sees_personal_data(self) -> bool:
        return self.role in ("admin", "operator")

    def check_street(self, street: str | None, what: str) -> None:
        """Operators act only inside their street."""
        if self.role == "operator" and street != self.street:
            raise Forbidden(f"{what} is outside your street {self.street}", field="street",
                            fix="ask the operator of that street, or an admin")


class TokenSigner:
    """Signed, expiring tokens: ``gm1.<claims>.<HMAC-SHA256>`` (base64url)."""

    PREFIX = "gm1"

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._key = hashlib.sha256(b"gridmap-token-v1" + secret).digest()
        self.ttl_s = ttl_s

    @staticmethod
    def _b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    @staticmethod
    def _unb64(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    def issue(self, p: Principal, now: dt.datetime) -> tuple[str, dt.datetime]:
        exp = now + dt.timedelta(seconds=self.ttl_s)
        claims = asdict(p) | {"exp": int(exp.timestamp())}
        body = self._b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = self._b64(hmac.new(self._key, f"{self.PREFIX}.{body}".encode(), hashlib.sha256).digest())
        return f"{self.PREFIX}.{body}.{sig}", exp

    def verify(self, token: str, now: dt.datetime) -> Principal:
        fix = "log in again at POST /v1/auth/token and send 'Authorization: Bearer <token>'"
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != self.PREFIX:
            raise Unauthorized("the token is malformed", field="Authorization", fix=fix)
        want = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            got = self._unb64(parts[2])
            ok = hmac.compare_digest(want, got)
            claims = json.loads(self._unb64(parts[1])) if ok else None
        except (ValueError, UnicodeDecodeError):
            ok, claims = False, None
        if not ok or not isinstance(claims, dict):
            raise Unauthorized("the token's signature is not valid", field="Authorization", fix=fix)
        if claims.get("exp", 0) < now.timestamp():
            raise Unauthorized("the token has expired", field="Authorization", fix=fix)
        claims.pop("exp")
        claims["grids"] = tuple(claims.get("grids") or ())
        return Principal(**claims)


# -- the service --------------------------------------------------------------------------------------------
class AuthService:
    def __init__(self, signer: TokenSigner) -> None:
        self.signer = signer

    def login(self, session: Session, username: str, password: str, now: dt.datetime) -> tuple[str, dt.datetime,
                                                                                               Principal]:
        with session.begin():
            conn = session.connection()
            row = sql.user(conn, username)
            if row is None or not row["active"]:
                verify_password(_DUMMY_HASH, password)  # same time whether or not the name exists
                raise Unauthorized("unknown user or wrong password", field="username/password",
                                   fix="check both; an admin can reset the password")
            if not verify_password(row["password_hash"], password):
                raise Unauthorized("unknown user or wrong password", field="username/password",
                                   fix="check both; an admin can reset the password")
            if _HASHER.check_needs_rehash(row["password_hash"]):
                sql.set_password_hash(conn, row["id"], _HASHER.hash(password))
            principal = self._principal(conn, row)
        token, exp = self.signer.issue(principal, now)
        return token, exp, principal

    @staticmethod
    def _principal(conn, row) -> Principal:
        team_id = team_code = None
        grids: tuple[str, ...] = ()
        if row["role"] in TEAM_ROLES:
            scope = sql.member_scope(conn, row["member_code"])
            if scope is None or scope["team_id"] is None:
                raise Forbidden(f"user {row['username']} is tied to member {row['member_code']!r}, who has no team",
                                field="member_code", fix="an admin must tie the user to a member of a team")
            team_id, team_code, grids = scope["team_id"], scope["team_code"], tuple(scope["grids"] or ())
        return Principal(row["id"], row["username"], row["role"], row["street_code"], team_id, team_code, grids)

    def authenticate(self, token: str | None, now: dt.datetime) -> Principal:
        if not token:
            raise Unauthorized("no credentials", field="Authorization",
                               fix="log in at POST /v1/auth/token and send 'Authorization: Bearer <token>'")
        return self.signer.verify(token, now)


def create_user(session: Session, *, username: str, password: str, role: str, street_code: str | None = None,
                member_code: str | None = None) -> int:
    """Create a user (all or nothing). Operators need a street; grid workers/volunteers a team member."""
    if role not in USER_ROLES:
        raise InvalidInput(f"unknown role {role!r}", field="role", fix=f"use one of {', '.join(USER_ROLES)}")
    if role == "operator" and not street_code:
        raise InvalidInput("an operator needs a street", field="street_code", fix="give the street's area code")
    if role in TEAM_ROLES and not member_code:
        raise InvalidInput(f"a {role} needs a team member", field="member_code", fix="give the member's code, e.g. M00001")
    pw_hash = hash_password(password)
    with session.begin():
        conn = session.connection()
        if street_code and not sql.street_exists(conn, street_code):
            raise NotFound(f"no street with code {street_code!r}", field="street_code", fix="list streets at /layers/streets")
        if member_code:
            scope = sql.member_scope(conn, member_code)
            if scope is None or scope["team_id"] is None:
                raise NotFound(f"no team member {member_code!r} with a team", field="member_code",
                               fix="give the code of a member who belongs to a team")
        uid = sql.insert_user(conn, username=username, password_hash=pw_hash, role=role, street_code=street_code,
                              member_code=member_code if role in TEAM_ROLES else None)
        if uid is None:
            raise Conflict(f"user {username!r} exists already", field="username", fix="choose another name")
    return uid


def ensure_demo_users(engine: Engine, settings: Settings) -> tuple[Path, list[tuple[str, str, str]]]:
    """Create one demo user per role with random passwords, saved (mode 600) in <data_dir>/demo_users.txt.

    Returns the file and the users created now (name, role, password); none when they exist already.
    """
    path = Path(settings.data_dir) / DEMO_USERS_FILE
    with Session(engine) as session:
        with session.begin():
            conn = session.connection()
            if sql.user(conn, "admin") is not None:
                return path, []
            demo = sql.demo_members(conn)
        plan = [("admin", "admin", None, None), ("planner", "planner", None, None), ("intake", "intake", None, None)]
        if demo and demo["street"]:
            plan.append(("operator", "operator", demo["street"], None))
        if demo and demo["grid_worker"]:
            plan.append(("gridworker", "grid_worker", None, demo["grid_worker"]))
        if demo and demo["volunteer"]:
            plan.append(("volunteer", "volunteer", None, demo["volunteer"]))
        made = []
        for name, role, street, member in plan:
            password = secrets.token_urlsafe(12)
            create_user(session, username=name, password=password, role=role, street_code=street, member_code=member)
            made.append((name, role, password))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# gridmap demo users (username role password); log in at POST /v1/auth/token, or in a browser "
                "at /dashboard (the command-centre screen: admin, operator, planner)\n")
        for name, role, password in made:
            f.write(f"{name} {role} {password}\n")
    return path, made
