"""Users, passwords, tokens and sessions; who may do what (roles and scopes).

Roles: ``admin`` (everything), ``operator`` (everything in one area: a district, a street or a community, the
operator's level), ``grid_worker`` and ``volunteer`` (their team's assignments and their own grid(s); never
residents' personal data), ``planner`` (aggregates and maps, never personal data), ``intake`` (a channel's
integration: reports events), ``unit`` (a member of one unit behind the escalation rungs: its inbox, its
mediation cases).

Passwords are hashed with Argon2id (argon2-cffi). Argon2 is slow and memory-hungry on purpose, so a burst of
logins must not take the CPU and the request threads from everyone else: at most ``argon2_concurrency``
hashes or checks run at once per process (one by default), at most ``argon2_queue`` more wait for their
turn, and beyond that a login is answered 429 with Retry-After at once (:class:`PasswordGate`). They run
in the request's worker thread, never on the event loop.

Tokens are JWTs (RFC 7519), HS256 with a key derived from the server's secret (the API refuses to start
without a strong one), made and checked by **joserfc**. Why joserfc and not PyJWT: both are maintained and
both refuse ``alg: none`` and unlisted algorithms, but joserfc's claims registry takes *now* as a parameter,
so ``exp`` and ``iat`` are checked against the app's clock, the clock that session expiry, the login
throttle and escalation use (and that tests move), while PyJWT always reads the wall clock. Claims: ``sub``
(user id), ``sid`` (session id), ``ver`` (the user's token version), ``iat``, ``exp``; all required,
leeway 0, only HS256 accepted.

A token is only a pointer to a session (one row per login in ``sessions``). Each request is served only
while that session is neither revoked nor expired and its user exists, is active and still has the token's
version; who the caller is (role, street, team, grids) is rebuilt from the user's *current* row, never from
the token. Those facts come from a per-process cache with a TTL of a few seconds that every revocation
empties at once through PostgreSQL NOTIFY (:mod:`gridmap.services.sessions`). Deactivating a user, changing
their role, street or team member, their password, deleting them, or "log out everywhere" bumps the user's
token version and revokes their sessions (:mod:`gridmap.services.users`); logging out revokes one session.

Logins are throttled per username and per client address (:class:`LoginThrottle`): after
``login_user_limit`` (5) failures for a name, or ``login_address_limit`` (20) from an address, within
``login_window_s`` (15 min), the key is locked for ``login_lock_s`` (60 s), doubling with each further
failure up to ``login_lock_max_s``; a locked login is answered 429 with Retry-After and runs no Argon2.
A success clears the name's counter (not the address's: one good account must not launder an address).
The counters live in PostgreSQL (``login_throttle``) because every API process must see the same counts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import math
import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import OctKey
from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.orm import Session

from gridmap.config import Settings
from gridmap.core.levels import LEVEL_COLUMNS, OPERATOR_LEVELS, Scope
from gridmap.core.vocabulary import SESSION_KINDS, USER_ROLES
from gridmap.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    GridmapError,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from gridmap.services.sessions import SessionCache, SessionListener
from gridmap.storage import areas as areas_sql
from gridmap.storage import teams as teams_sql
from gridmap.storage import units as units_sql
from gridmap.storage import users as users_sql

log = logging.getLogger(__name__)
SECRET_FILE = "secret_key"
DEMO_USERS_FILE = "demo_users.txt"
MIN_SECRET_LEN = 32
MIN_PASSWORD_LEN = 12
#: Values that appear in tutorials and .env templates: never accepted, whatever their length.
DEFAULT_SECRETS = {
    "changeme", "change-me", "change_me", "changethis", "secret", "secret-key", "secretkey", "your-secret-key",
    "default", "dev", "development", "test", "testing", "password", "gridmap", "insecure", "please-change-me",
    "supersecret", "super-secret", "xxx", "none", "null",
}
TEAM_ROLES = ("grid_worker", "volunteer")
LOGIN_FIX = "log in again at POST /v1/auth/token and send 'Authorization: Bearer <token>'"
WRONG = "unknown user or wrong password"
WRONG_FIX = "check both; an admin can reset the password"
TOUCH_EVERY_S = 60  # a session's last_seen_at is written at most once a minute
KEEP_EXPIRED_SESSIONS = dt.timedelta(days=30)  # expired session rows stay this long, a record of who logged in


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
class PasswordGate:
    """At most ``concurrency`` Argon2 runs at once in this process; at most ``queue`` more callers wait.

    Hand-written because what is needed is a semaphore that *refuses* rather than queues without end (a
    ``threading.BoundedSemaphore`` makes every caller wait, each holding a request thread meanwhile).
    ``concurrency=0`` lifts the bound (the old behaviour, for scripts/bench_login.py only).
    ``running``, ``peak`` and ``refused`` are instrumentation for tests and the benchmark.
    """

    def __init__(self, concurrency: int = 1, queue: int = 2, wait_s: float = 5.0) -> None:
        self.concurrency = concurrency
        self.limit = concurrency + queue
        self.wait_s = wait_s
        self._sem = threading.Semaphore(concurrency) if concurrency > 0 else None
        self._lock = threading.Lock()
        self._admitted = 0
        self.running = 0
        self.peak = 0
        self.refused = 0

    def check_room(self) -> None:
        """429 if a login arriving now would find the queue full (a hint, cheap: ``slot()`` decides)."""
        with self._lock:
            if self._sem is not None and self._admitted >= self.limit:
                self.refused += 1
                raise self._busy()

    @staticmethod
    def _busy() -> TooManyRequests:
        return TooManyRequests("the server is busy checking other passwords", field="password", retry_after=1,
                               fix="try again in a second")

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the Argon2 places for the block; 429 when the queue is full or the wait too long."""
        with self._lock:
            if self._sem is not None and self._admitted >= self.limit:
                self.refused += 1
                raise self._busy()
            self._admitted += 1
        try:
            if self._sem is not None and not self._sem.acquire(timeout=self.wait_s):
                with self._lock:
                    self.refused += 1
                raise self._busy()
            try:
                with self._lock:
                    self.running += 1
                    self.peak = max(self.peak, self.running)
                try:
                    yield
                finally:
                    with self._lock:
                        self.running -= 1
            finally:
                if self._sem is not None:
                    self._sem.release()
        finally:
            with self._lock:
                self._admitted -= 1


class Passwords:
    """Argon2id hashing and checking, through one :class:`PasswordGate` per process."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65_536, parallelism: int = 4, concurrency: int = 1,
                 queue: int = 2) -> None:
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self.gate = PasswordGate(concurrency, queue)
        self._dummy: str | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> Passwords:
        return cls(time_cost=s.argon2_time_cost, memory_kib=s.argon2_memory_kib, parallelism=s.argon2_parallelism,
                   concurrency=s.argon2_concurrency, queue=s.argon2_queue)

    @staticmethod
    def check_new(password: str, field: str = "password") -> None:
        if len(password) < MIN_PASSWORD_LEN:
            raise InvalidInput(f"the password is shorter than {MIN_PASSWORD_LEN} characters", field=field,
                               fix=f"use at least {MIN_PASSWORD_LEN} characters (a passphrase is fine)")

    # The *_held methods run Argon2 and must be called inside ``with self.gate.slot():``.
    def hash_held(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify_held(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; with no hash, a check of a dummy hash of the same cost (a login
        with an unknown name takes as long as one with a wrong password)."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = self.hasher.hash("not a password: equalises the time of a login with an unknown name")
            self._verify(self._dummy, password)
            return False
        return self._verify(password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def hash(self, password: str, field: str = "password") -> str:
        self.check_new(password, field)
        with self.gate.slot():
            return self.hash_held(password)


_DEFAULT_PASSWORDS = Passwords()


def hash_password(password: str) -> str:
    return _DEFAULT_PASSWORDS.hash(password)


# -- principals and tokens ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """Who is calling, with the scope their role gives them (from the user's current row)."""

    user_id: int
    username: str
    role: str
    street: str | None = None
    team_id: int | None = None
    team_code: str | None = None
    grids: tuple[str, ...] = field(default_factory=tuple)
    session_id: str | None = None
    #: an operator's area (district, street or community) or a unit member's unit; None for other roles
    scope: Scope | None = None

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

    @property
    def area(self) -> str | None:
        """The area an operator's reads and writes are confined to (in SQL: :mod:`gridmap.storage.scopes`);
        None for everyone else (admins and planners are not confined; other roles have rules of their own)."""
        return self.scope.code if self.role == "operator" and self.scope is not None else None

    @property
    def unit(self) -> str | None:
        """A unit member's unit."""
        return self.scope.code if self.role == "unit" and self.scope is not None else None

    def covers(self, street: str | None, community: str | None = None) -> bool:
        """Whether a row placed in (street, community) lies in what this caller may act on (admins: all)."""
        if self.role == "admin":
            return True
        return self.role == "operator" and self.scope is not None and self.scope.covers(street, community)

    def check_street(self, street: str | None, what: str, community: str | None = None) -> None:
        """Operators act only inside their area: a district's streets, their street, or their community (pass
        the row's ``community`` for community operators; without it they are refused)."""
        if self.role == "operator" and not self.covers(street, community):
            where = self.scope.describe() if self.scope is not None else "your area (none is set)"
            raise Forbidden(f"{what} is outside {where}", field="street",
                            fix="ask the operator of that street or community, or an admin")


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    session_id: str
    version: int
    issued_at: int  # iat and exp, Unix seconds
    expires: int

    @property
    def expires_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires, tz=dt.UTC)


class TokenSigner:
    """JWTs (HS256, joserfc) naming a session: ``sub`` user id, ``sid`` session, ``ver`` token version,
    ``iat``, ``exp``; all required, checked against the caller's clock with no leeway."""

    ALGORITHMS = ["HS256"]
    MAX_LEN = 2048  # ours are ~250 characters; anything much longer is not worth decoding

    def __init__(self, secret: bytes, ttl_s: int, remember: int = 20_000) -> None:
        # a key of its own for tokens (domain-separated from the secret), 256 bits as HS256 wants
        self._key = OctKey.import_key(hashlib.sha256(b"gridmap-token-v2" + secret).digest())
        self.ttl_s = ttl_s
        # Tokens whose signature and claims were checked, by their exact text: a client sends the same token
        # on every request, and joserfc's full check costs ~0.2 ms where a lookup costs a few microseconds.
        # Expiry and issue time are still compared with ``now`` on every use.
        self._verified: OrderedDict[str, TokenClaims] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def issue(self, *, user_id: int, session_id: str, version: int, now: dt.datetime) -> tuple[str, dt.datetime]:
        iat = int(now.timestamp())
        claims = {"sub": str(user_id), "sid": session_id, "ver": version, "iat": iat, "exp": iat + self.ttl_s}
        token = jwt.encode({"alg": "HS256"}, claims, self._key, algorithms=self.ALGORITHMS)
        return token, dt.datetime.fromtimestamp(iat + self.ttl_s, tz=dt.UTC)

    def verify(self, token: str, now: dt.datetime) -> TokenClaims:
        with self._lock:
            known = self._verified.get(token)
        if known is not None:
            ts = int(now.timestamp())
            if known.expires <= ts:  # as the registry below: exp must lie after now (leeway 0)
                raise Unauthorized("the token has expired", field="Authorization", fix=LOGIN_FIX)
            if known.issued_at > ts:
                raise Unauthorized("the token's claims are not valid (the token was issued in the future)",
                                   field="Authorization", fix=LOGIN_FIX)
            return known
        claims = self._check(token, now)
        with self._lock:
            self._verified[token] = claims
            while len(self._verified) > self._remember:
                self._verified.popitem(last=False)
        return claims

    def _check(self, token: str, now: dt.datetime) -> TokenClaims:
        if not token or len(token) > self.MAX_LEN or token.count(".") != 2:
            raise Unauthorized("the token is malformed", field="Authorization", fix=LOGIN_FIX)
        try:
            claims = jwt.decode(token, self._key, algorithms=self.ALGORITHMS).claims
        except (JoseError, ValueError, TypeError):
            raise Unauthorized("the token's signature is not valid", field="Authorization", fix=LOGIN_FIX) from None
        essential: dict[str, jwt.ClaimsOption] = {k: {"essential": True} for k in ("sub", "sid", "ver", "iat", "exp")}
        registry = jwt.JWTClaimsRegistry(now=int(now.timestamp()), leeway=0, **essential)
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise Unauthorized("the token has expired", field="Authorization", fix=LOGIN_FIX) from None
        except JoseError as exc:
            raise Unauthorized(f"the token's claims are not valid ({exc.description or exc.error})",
                               field="Authorization", fix=LOGIN_FIX) from None
        sub, sid, ver = claims["sub"], claims["sid"], claims["ver"]
        try:
            ok = sub.isdigit() and isinstance(ver, int) and not isinstance(ver, bool) and str(uuid.UUID(sid)) == sid
        except (AttributeError, TypeError, ValueError):
            ok = False
        if not ok:
            raise Unauthorized("the token's claims are not valid", field="Authorization", fix=LOGIN_FIX)
        return TokenClaims(int(sub), sid, ver, int(claims["iat"]), int(claims["exp"]))


# -- the login throttle -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Client:
    """Where a login comes from: the client's address (see api/deps.py for X-Forwarded-For) and user agent."""

    address: str | None = None
    user_agent: str | None = None


def address_key(address: str) -> str:
    """The throttle's key for an address: IPv6 by /64 (one subscriber's share), IPv4 and others as they are."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    """Failed-login counters per username and per client address, and the locks they earn (in PostgreSQL,
    shared by every API process)."""

    def __init__(self, *, user_limit: int = 5, address_limit: int = 20, window_s: int = 900, lock_s: int = 60,
                 lock_max_s: int = 900) -> None:
        self.user_limit, self.address_limit = user_limit, address_limit
        self.window_s, self.lock_s, self.lock_max_s = window_s, lock_s, lock_max_s
        self._last_purge = 0.0
        # Locks this process has seen, so that a throttled client is refused without a thread or a query
        # (a hint only: the table decides, and another process's locks are learnt at their first refusal).
        self._seen: dict[str, dt.datetime] = {}
        self._seen_lock = threading.Lock()

    @classmethod
    def from_settings(cls, s: Settings) -> LoginThrottle:
        return cls(user_limit=s.login_user_limit, address_limit=s.login_address_limit, window_s=s.login_window_s,
                   lock_s=s.login_lock_s, lock_max_s=s.login_lock_max_s)

    @staticmethod
    def user_key(username: str) -> str:
        return "user:" + username.strip().casefold()[:100]

    def keys(self, username: str, client: Client) -> list[tuple[str, int]]:
        out = [(self.user_key(username), self.user_limit)]
        if client.address:
            out.append(("addr:" + address_key(client.address), self.address_limit))
        return out

    def lock_for(self, failures: int, limit: int) -> int:
        """Seconds of lock after ``failures`` (>= limit): lock_s, doubling per failure beyond, at most lock_max_s."""
        return min(self.lock_s * 2 ** min(failures - limit, 20), self.lock_max_s)

    @staticmethod
    def _locked(until: dt.datetime, now: dt.datetime) -> TooManyRequests:
        wait = max(1, math.ceil((until - now).total_seconds()))
        return TooManyRequests(f"too many failed logins: try again in {wait} s", field="username/password",
                               retry_after=wait, fix="wait, then log in with the right password; an admin can "
                                                     "reset it (gridmap users passwd)")

    def _remember(self, key: str, until: dt.datetime, now: dt.datetime) -> None:
        with self._seen_lock:
            if len(self._seen) > 10_000:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            self._seen[key] = until

    def forget_hints(self) -> None:
        """Drop the locks this process remembers (the table is the truth; tests empty it)."""
        with self._seen_lock:
            self._seen.clear()

    def precheck(self, keys: list[tuple[str, int]], now: dt.datetime) -> None:
        """Refuse at once a login on a key this process knows to be locked (no database, no thread)."""
        with self._seen_lock:
            until = max((t for k, _ in keys if (t := self._seen.get(k)) is not None and t > now), default=None)
        if until is not None:
            raise self._locked(until, now)

    def check(self, conn: Connection, keys: list[tuple[str, int]], now: dt.datetime) -> None:
        rows = users_sql.throttle_locks(conn, [k for k, _ in keys], now)
        for key, until in rows:
            self._remember(key, until, now)
        if rows:
            raise self._locked(max(t for _, t in rows), now)

    def fail(self, conn: Connection, keys: list[tuple[str, int]], now: dt.datetime) -> None:
        for key, limit in keys:
            n = users_sql.add_failure(conn, key, now, self.window_s)
            if n >= limit:
                until = now + dt.timedelta(seconds=self.lock_for(n, limit))
                users_sql.lock(conn, key, until)
                self._remember(key, until, now)  # (if the transaction fails, the hint outlives it: harmless)
        if time.monotonic() - self._last_purge > 60:
            self._last_purge = time.monotonic()
            users_sql.purge_throttle(conn, now, self.window_s)

    def succeed(self, conn: Connection, username: str) -> None:
        users_sql.clear_failures(conn, self.user_key(username))
        with self._seen_lock:
            self._seen.pop(self.user_key(username), None)


# -- the service --------------------------------------------------------------------------------------------
class AuthService:
    """Logins (throttled, Argon2 bounded), sessions and the per-request check of a token."""

    def __init__(self, signer: TokenSigner, engine: Engine | None = None, settings: Settings | None = None) -> None:
        s = settings or Settings()
        self.signer = signer
        self.engine = engine
        self.passwords = Passwords.from_settings(s)
        self.throttle = LoginThrottle.from_settings(s)
        self.cache = SessionCache(s.session_cache_ttl_s)
        self._listener: SessionListener | None = None
        self._last_purge = 0.0

    def start(self) -> None:
        """Listen for revocations (one thread and one connection per process)."""
        if self.engine is not None and self._listener is None:
            self._listener = SessionListener.for_engine(self.engine, self.cache)
            self._listener.start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    # -- logging in -------------------------------------------------------------------------------------
    def precheck_login(self, username: str, client: Client | None, now: dt.datetime) -> None:
        """What can refuse a login without a thread or a query: a lock this process has seen, a full Argon2
        queue. Call it on the event loop before :meth:`login` (which checks both again, authoritatively)."""
        self.throttle.precheck(self.throttle.keys(username, client or Client()), now)
        self.passwords.gate.check_room()

    def login(self, session: Session, username: str, password: str, now: dt.datetime, *, kind: str = "api",
              client: Client | None = None) -> tuple[str, dt.datetime, Principal]:
        """Check the password and open a session; returns (token, expiry, principal).

        429 (TooManyRequests) when the name or the address is locked (no Argon2 runs), or when this process is
        already checking as many passwords as it may; 401 for a wrong password or an unknown/inactive user.
        """
        if kind not in SESSION_KINDS:
            raise InvalidInput(f"unknown session kind {kind!r}", field="kind", fix=f"use one of {SESSION_KINDS}")
        client = client or Client()
        keys = self.throttle.keys(username, client)
        with session.begin():
            conn = session.connection()
            self.throttle.check(conn, keys, now)
            row = users_sql.user(conn, username)
        # no database connection is held while Argon2 runs (~0.1 s, longer when queued)
        new_hash = None
        with self.passwords.gate.slot():
            with session.begin():  # failures another process recorded while this one queued count too
                self.throttle.check(session.connection(), keys, now)
            stored = row["password_hash"] if row is not None and row["active"] else None
            ok = self.passwords.verify_held(stored, password)
            if ok and stored is not None and self.passwords.hasher.check_needs_rehash(stored):
                new_hash = self.passwords.hash_held(password)
        if not ok:
            with session.begin():
                self.throttle.fail(session.connection(), keys, now)
            raise Unauthorized(WRONG, field="username/password", fix=WRONG_FIX)
        assert row is not None  # the password matched a stored hash (verify_held is False without one)
        with session.begin():
            conn = session.connection()
            current = users_sql.user_by_id(conn, row["id"], lock=True)
            if current is None or not current["active"] or current["token_version"] != row["token_version"]:
                raise Unauthorized("the account changed while logging in", field="username/password",
                                   fix="log in again")
            self.throttle.succeed(conn, username)
            if new_hash is not None:
                users_sql.set_password_hash(conn, current["id"], new_hash)
            principal = self._principal(conn, current)
            token, expires, sid = self._open(conn, current, now, kind, client)
        return token, expires, replace(principal, session_id=sid)

    def _open(self, conn: Connection, user: RowMapping, now: dt.datetime, kind: str,
              client: Client) -> tuple[str, dt.datetime, str]:
        sid = uuid.uuid4()
        token, expires = self.signer.issue(user_id=user["id"], session_id=str(sid), version=user["token_version"],
                                           now=now)
        users_sql.insert_session(conn, sid=sid, user_id=user["id"], kind=kind, token_version=user["token_version"], now=now,
                                 expires_at=expires, user_agent=(client.user_agent or None) and client.user_agent[:300],
                                 client_address=client.address)
        if time.monotonic() - self._last_purge > 600:
            self._last_purge = time.monotonic()
            users_sql.purge_sessions(conn, now - KEEP_EXPIRED_SESSIONS)
        return token, expires, str(sid)

    @staticmethod
    def _principal(conn: Connection, row: RowMapping | dict[str, Any]) -> Principal:
        team_id = team_code = None
        grids: tuple[str, ...] = ()
        where = scope_of(conn, row)
        if row["role"] in TEAM_ROLES:
            scope = teams_sql.member_scope(conn, row["member_code"])
            if scope is None or scope["team_id"] is None:
                raise Forbidden(f"user {row['username']} is tied to member {row['member_code']!r}, who has no team",
                                field="member_code", fix="an admin must tie the user to a member of a team")
            team_id, team_code, grids = scope["team_id"], scope["team_code"], tuple(scope["grids"] or ())
        return Principal(row["user_id"] if "user_id" in row else row["id"], row["username"], row["role"],
                         row["street_code"] if row["role"] != "unit" else None, team_id, team_code, grids,
                         scope=where)

    def change_own_password(self, session: Session, p: Principal, old: str, new: str, now: dt.datetime, *,
                            client: Client | None = None) -> tuple[str, dt.datetime, Principal]:
        """A user's own new password (the old one is checked, and throttled like a login). Every session of the
        user ends, the calling one too, and a new session is opened: its token is returned."""
        Passwords.check_new(new, "new_password")
        if new == old:
            raise InvalidInput("the new password is the old one", field="new_password", fix="choose a new one")
        client = client or Client()
        keys = self.throttle.keys(p.username, client)
        with session.begin():
            self.throttle.check(session.connection(), keys, now)
            row = users_sql.user_by_id(session.connection(), p.user_id)
        if row is None:
            raise Unauthorized("the user no longer exists", field="Authorization", fix=LOGIN_FIX)
        with self.passwords.gate.slot():
            ok = self.passwords.verify_held(row["password_hash"], old)
            new_hash = self.passwords.hash_held(new) if ok else None
        if not ok:
            with session.begin():
                self.throttle.fail(session.connection(), keys, now)
            raise Unauthorized("the old password is wrong", field="old_password", fix="give your current password")
        with session.begin():
            conn = session.connection()
            current = users_sql.user_by_id(conn, p.user_id, lock=True)
            if current is None or current["password_hash"] != row["password_hash"]:
                raise Conflict("the password changed meanwhile", field="old_password", fix="log in again")
            users_sql.update_user(conn, p.user_id, {"password_hash": new_hash})
            end_all_sessions(conn, p.user_id, now, "password changed by the user")
            current = users_sql.user_by_id(conn, p.user_id)
            assert current is not None  # locked above, in this transaction
            principal = self._principal(conn, current)
            token, expires, sid = self._open(conn, current, now, "api", client)
        self.cache.forget_user(p.user_id)
        return token, expires, replace(principal, session_id=sid)

    # -- logging out ------------------------------------------------------------------------------------
    def logout(self, session: Session, sid: str, now: dt.datetime, reason: str = "logged out") -> bool:
        with session.begin():
            done = users_sql.revoke_session(session.connection(), uuid.UUID(sid), now, reason)
        self.cache.forget_session(sid)
        return done

    def logout_token(self, session: Session, token: str | None, now: dt.datetime) -> bool:
        """End the session a token names (the dashboard's cookie); False if the token names none that is open."""
        try:
            claims = self.signer.verify(token or "", now)
        except Unauthorized:
            return False
        return self.logout(session, claims.session_id, now)

    def logout_all(self, session: Session, p: Principal, now: dt.datetime) -> int:
        with session.begin():
            n = end_all_sessions(session.connection(), p.user_id, now, "logged out everywhere")
        self.cache.forget_user(p.user_id)
        return n

    # -- each request -----------------------------------------------------------------------------------
    def claims(self, token: str | None, now: dt.datetime) -> TokenClaims:
        if not token:
            raise Unauthorized("no credentials", field="Authorization",
                               fix="log in at POST /v1/auth/token and send 'Authorization: Bearer <token>'")
        return self.signer.verify(token, now)

    def authenticate_cached(self, token: str | None, now: dt.datetime) -> Principal | None:
        """The caller from the cache alone (no database): None when the session must be read first."""
        claims = self.claims(token, now)
        entry = self.cache.get(claims.session_id)
        return None if entry is None else self._admit(claims, entry.state, entry.principal, now)

    def authenticate(self, token: str | None, now: dt.datetime) -> Principal:
        """The caller, from the cache or the database (blocking: call it from a worker thread)."""
        claims = self.claims(token, now)
        entry = self.cache.get(claims.session_id)
        if entry is not None:
            return self._admit(claims, entry.state, entry.principal, now)
        state, principal = self._load(claims, now)
        return self._admit(claims, state, principal, now)

    def _load(self, claims: TokenClaims,
              now: dt.datetime) -> tuple[dict[str, Any] | None, Principal | GridmapError | None]:
        if self.engine is None:
            raise Unauthorized("this service has no database to check sessions", field="Authorization", fix=LOGIN_FIX)
        generation = self.cache.generation()
        principal: Principal | GridmapError | None = None
        with self.engine.begin() as conn:
            row = users_sql.session_state(conn, uuid.UUID(claims.session_id))
            state = dict(row) if row is not None else None
            if state is not None and state["revoked_at"] is None and state["active"]:
                try:
                    principal = replace(self._principal(conn, state), session_id=claims.session_id)
                except GridmapError as exc:
                    principal = exc
                if state["last_seen_at"] < now - dt.timedelta(seconds=TOUCH_EVERY_S):
                    users_sql.touch_session(conn, uuid.UUID(claims.session_id), now, TOUCH_EVERY_S)
        self.cache.put(claims.session_id, claims.user_id, state, principal, generation)
        return state, principal

    @staticmethod
    def _admit(claims: TokenClaims, state: dict | None, principal: Principal | GridmapError | None,
               now: dt.datetime) -> Principal:
        if state is None or state["user_id"] != claims.user_id:
            raise Unauthorized("the session has ended (logged out, or the user was deleted)", field="Authorization",
                               fix=LOGIN_FIX)
        if state["revoked_at"] is not None:
            raise Unauthorized(f"the session has ended ({state['revoked_reason'] or 'revoked'})", field="Authorization",
                               fix=LOGIN_FIX)
        if state["expires_at"] <= now:
            raise Unauthorized("the session has expired", field="Authorization", fix=LOGIN_FIX)
        if not state["active"]:
            raise Unauthorized("the account is deactivated", field="Authorization", fix="ask an admin")
        if state["token_version"] != claims.version:
            raise Unauthorized("the session has ended: the account changed (password, role or scope)",
                               field="Authorization", fix=LOGIN_FIX)
        if isinstance(principal, GridmapError):
            raise principal
        assert principal is not None  # _load builds one for every open session of an active user
        return principal


def end_all_sessions(conn: Connection, user_id: int, now: dt.datetime, reason: str) -> int:
    """Bump the user's token version and revoke their open sessions (NOTIFYed on commit). Returns how many."""
    users_sql.bump_token_version(conn, user_id)
    return users_sql.revoke_user_sessions(conn, user_id, now, reason)


def scope_of(conn: Connection, row) -> Scope | None:
    """The scope of a user row (operators: their level's area and what lies under it; unit members: their
    unit), resolved from the current ``areas`` and ``units``. A scope whose area or unit is gone covers
    nothing (and refuses every scoped read) rather than everything."""
    if row["role"] == "operator":
        level = next((lv for lv in OPERATOR_LEVELS if row.get(LEVEL_COLUMNS[lv])), None)
        if level is None:
            return None
        code = row[LEVEL_COLUMNS[level]]
        streets, communities = areas_sql.resolve(conn, code)
        return Scope(level, code, frozenset(streets), frozenset(communities))
    if row["role"] == "unit" and row.get("unit_code"):
        u = units_sql.unit(conn, row["unit_code"])
        if u is None or not u["active"]:
            return Scope("unit", row["unit_code"])
        return Scope("unit", u["code"], unit_kind=u["kind"], unit_area=u["area_code"])
    return None


def create_user(session: Session, *, username: str, password: str, role: str, street_code: str | None = None,
                member_code: str | None = None, passwords: Passwords | None = None, district_code: str | None = None,
                community_code: str | None = None, unit_code: str | None = None) -> int:
    """Create a user (all or nothing). Operators need one area (a district, a street or a community: their
    level); grid workers/volunteers a team member; unit members a unit."""
    check_role_scope(role, street_code, member_code, district_code=district_code, community_code=community_code,
                     unit_code=unit_code)
    pw_hash = (passwords or _DEFAULT_PASSWORDS).hash(password)
    with session.begin():
        conn = session.connection()
        check_scope_exists(conn, street_code, member_code, district_code=district_code,
                           community_code=community_code, unit_code=unit_code)
        keep = scope_columns(role, {"district_code": district_code, "street_code": street_code,
                                    "community_code": community_code, "unit_code": unit_code})
        uid = users_sql.insert_user(conn, username=username, password_hash=pw_hash, role=role,
                                    street_code=keep["street_code"], member_code=member_code if role in TEAM_ROLES else None,
                                    district_code=keep["district_code"], community_code=keep["community_code"],
                                    unit_code=keep["unit_code"])
        if uid is None:
            raise Conflict(f"user {username!r} exists already", field="username", fix="choose another name")
    return uid


def scope_columns(role: str, values: dict[str, str | None]) -> dict[str, str | None]:
    """The scope columns a user of ``role`` keeps: an operator's area, a unit member's unit; the others are
    cleared, but for ``street_code``, which every role but a unit member keeps as before levels existed."""
    keep = {"operator": ("district_code", "street_code", "community_code"),
            "unit": ("unit_code",)}.get(role, ("street_code",))
    return {k: (v if k in keep else None) for k, v in values.items()}


def check_role_scope(role: str, street_code: str | None, member_code: str | None, *, district_code: str | None = None,
                     community_code: str | None = None, unit_code: str | None = None) -> None:
    if role not in USER_ROLES:
        raise InvalidInput(f"unknown role {role!r}", field="role", fix=f"use one of {', '.join(USER_ROLES)}")
    if role == "operator":
        given = [n for n, v in (("district_code", district_code), ("street_code", street_code),
                                ("community_code", community_code)) if v]
        if not given:
            raise InvalidInput("an operator needs an area: a district, a street or a community (their level)",
                               field="street_code",
                               fix="give one of district_code, street_code or community_code (CLI: --district, "
                                   "--street, --community)")
        if len(given) > 1:
            raise InvalidInput(f"an operator works at one level, not {' and '.join(given)}", field=given[1],
                               fix="give only one of district_code, street_code, community_code")
    if role in TEAM_ROLES and not member_code:
        raise InvalidInput(f"a {role} needs a team member", field="member_code", fix="give the member's code, e.g. M00001")
    if role == "unit" and not unit_code:
        raise InvalidInput("a unit member needs a unit", field="unit_code",
                           fix="give the unit's code (GET /v1/units, `gridmap units show`)")


def check_scope_exists(conn: Connection, street_code: str | None, member_code: str | None, *,
                       district_code: str | None = None, community_code: str | None = None,
                       unit_code: str | None = None) -> None:
    for column, level, code in (("district_code", "district", district_code), ("street_code", "street", street_code),
                                ("community_code", "community", community_code)):
        if code and areas_sql.area_level(conn, code) != level:
            plural = "communities" if level == "community" else f"{level}s"
            raise NotFound(f"no {level} with code {code!r}", field=column, fix=f"list them at /layers/{plural}")
    if unit_code:
        u = units_sql.unit(conn, unit_code)
        if u is None or not u["active"]:
            raise NotFound(f"no active unit {unit_code!r}", field="unit_code",
                           fix="list units at GET /v1/units or with `gridmap units show`")
    if member_code:
        scope = teams_sql.member_scope(conn, member_code)
        if scope is None or scope["team_id"] is None:
            raise NotFound(f"no team member {member_code!r} with a team", field="member_code",
                           fix="give the code of a member who belongs to a team")


def ensure_demo_users(engine: Engine, settings: Settings) -> tuple[Path, list[tuple[str, str, str]]]:
    """Create one demo user per role with random passwords, saved (mode 600) in <data_dir>/demo_users.txt.

    Returns the file and the users created now (name, role, password); none when they exist already.
    """
    path = Path(settings.data_dir) / DEMO_USERS_FILE
    passwords = Passwords.from_settings(settings)
    with Session(engine) as session:
        with session.begin():
            conn = session.connection()
            if users_sql.user(conn, "admin") is not None:
                return path, []
            demo = users_sql.demo_members(conn)
        plan: list[tuple[str, str, dict[str, str]]] = [
            ("admin", "admin", {}), ("planner", "planner", {}), ("intake", "intake", {})]
        if demo and demo["street"]:
            plan.append(("operator", "operator", {"street_code": demo["street"]}))
        if demo and demo["grid_worker"]:
            plan.append(("gridworker", "grid_worker", {"member_code": demo["grid_worker"]}))
        if demo and demo["volunteer"]:
            plan.append(("volunteer", "volunteer", {"member_code": demo["volunteer"]}))
        # the levels of command: the district, the second street, a community; the units of the mall's ladder,
        # a consumer-rights station and a mediation room
        for name, key, column in (("district", "district", "district_code"), ("operator_b", "street_b", "street_code"),
                                  ("community", "community", "community_code")):
            if demo and demo[key]:
                plan.append((name, "operator", {column: demo[key]}))
        unit_codes = [*(demo["mall_units"] or ()), demo["consumer_rights"], demo["mediation_room"]] if demo else []
        for code in (c for c in unit_codes if c):
            plan.append((f"unit_{code.lower().replace('-', '_')}", "unit", {"unit_code": code}))
        made = []
        for name, role, scope in plan:
            password = secrets.token_urlsafe(12)
            create_user(session, username=name, password=password, role=role, passwords=passwords, **scope)
            made.append((name, role, password))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# gridmap demo users (username role password); log in at POST /v1/auth/token, or in a browser "
                "at /dashboard (the command-centre screen: admin, operator, planner)\n")
        for name, role, password in made:
            f.write(f"{name} {role} {password}\n")
    return path, made
