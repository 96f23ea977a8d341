"""Domain errors. No HTTP here: ``api/`` maps each class to a status code in one table.

Every message names the bad value and says how to fix it, e.g.
``coordinates: (30.27, 120.1) looks like lat/lon swapped; send lon first: (120.1, 30.27)``.

Each class also subclasses the built-in a Python user already catches, so notebook code needs no gridmap
import to handle them: bad input (:class:`InvalidInput`, :class:`LoadRejected`) is a ``ValueError``, a
missing thing (:class:`NotFound`) a ``LookupError`` (not ``KeyError``, whose ``str()`` quotes the message),
a state clash (:class:`Conflict`) a ``RuntimeError`` and an unusable database (:class:`DatabaseError`) a
``ConnectionError``. :class:`GridmapError` stays first in every class's bases, so ``except GridmapError``
and the API's one handler (FastAPI finds handlers along the MRO) see them before any built-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class GridmapError(Exception):
    """Base class of every error gridmap raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None) -> None:
        self.message = message
        self.field = field
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text}; {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "field": self.field, "message": self.message, "fix": self.fix}


class InvalidInput(GridmapError, ValueError):
    """The caller sent something we cannot use (a value, a file, a CRS). A ``ValueError``."""


class NotFound(GridmapError, LookupError):
    """A named thing (layer, area, record) does not exist. A ``LookupError``."""


class Conflict(GridmapError, RuntimeError):
    """The request is valid but clashes with the current state (e.g. an illegal transition).

    A ``RuntimeError``, not a ``ValueError``: the input was well formed, the state of the street forbids it
    now (an event already closed, an offer already taken); ``except ValueError`` around a call, there to
    catch the caller's own mistakes, must not hide a clash that needs the state read again.
    """


class DatabaseError(GridmapError, ConnectionError):
    """The database cannot be reached, started or migrated, or lacks what the operation needs (the road network).

    A ``ConnectionError`` (an ``OSError``): what a Python user catches when a service they depend on is out
    of reach; the API answers it with 503 and ``Retry-After``.
    """


@dataclass
class FeatureProblem:
    """One feature of an input file that was repaired, rejected or is outside the area."""

    index: int
    key: str | None
    action: str  # "rejected" | "repaired" | "outside_area"
    reason: str

    def __str__(self) -> str:
        who = f"feature #{self.index}" + (f" ({self.key})" if self.key else "")
        return f"{who}: {self.action}: {self.reason}"


@dataclass
class LoadRejected(GridmapError, ValueError):
    """A load was refused as a whole; nothing was written. ``problems`` names each bad feature. A ``ValueError``."""

    layer: str
    reason: str
    problems: list[FeatureProblem] = field(default_factory=list)
    fix_hint: str | None = None

    def __post_init__(self) -> None:
        GridmapError.__init__(self, self.reason, field=self.layer, fix=self.fix_hint)

    def __str__(self) -> str:
        head = f"{self.layer}: {self.reason}"
        if self.fix_hint:
            head += f"; {self.fix_hint}"
        if self.problems:
            shown = "\n  ".join(str(p) for p in self.problems[:20])
            more = f"\n  … and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
            head += f"\n  {shown}{more}"
        return head


class Unauthorized(GridmapError):
    """No credentials, or credentials that are wrong or expired."""


class Forbidden(GridmapError):
    """Authenticated, but this role or scope may not do that."""


class TooManyRequests(GridmapError):
    """Too many attempts (failed logins) or too busy (password checks queued): try again in ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: int, field: str | None = None, fix: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, field=field, fix=fix)


class TooLarge(GridmapError):
    """A request body or batch larger than allowed."""


class ConfigError(GridmapError):
    """The settings are unusable (e.g. a default secret); the service refuses to start."""
