"""The event lifecycle: which action may move an event from which status to which (pure rules, no I/O).

::

    reported ──dispatch──▶ dispatched ──accept──▶ accepted ──arrive──▶ on_site ──resolve──▶ resolved ──close──▶ closed
        ▲                      │                                                                │             │
        └──decline / timeout───┘                                                                └───reopen────┘
        ▲                                                                                              │
        └──────────────────────────────────────── reopen ◀─────────────────────────────────────────────┘

Escalation (分级分流) is orthogonal: it moves responsibility up a category's ladder of rungs and does not
change the status; see :mod:`gridmap.services.escalation`.

Examples
--------
>>> next_status("dispatched", "accept")
'accepted'
>>> next_status("reported", "close")
Traceback (most recent call last):
...
gridmap.errors.Conflict: action: an event that is reported cannot be closed; legal now: dispatch
"""

from __future__ import annotations

from gridmap.core.vocabulary import OPEN_EVENT_STATUSES
from gridmap.errors import Conflict, InvalidInput

#: action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "dispatch": (("reported",), "dispatched"),
    "accept": (("dispatched",), "accepted"),
    "decline": (("dispatched",), "reported"),
    "timeout": (("dispatched",), "reported"),
    "arrive": (("accepted",), "on_site"),
    "resolve": (("on_site",), "resolved"),
    "close": (("resolved",), "closed"),
    "reopen": (("resolved", "closed"), "reported"),
}
_PAST = {"dispatch": "dispatched", "accept": "accepted", "decline": "declined", "timeout": "timed out",
         "arrive": "marked on site", "resolve": "resolved", "close": "closed", "reopen": "reopened"}

#: actions a team (grid worker / volunteer) performs on its own assignment
TEAM_ACTIONS = ("accept", "decline", "arrive", "resolve")
#: actions an operator performs on an event (on behalf of the responsible rung)
OPERATOR_ACTIONS = ("accept", "arrive", "resolve", "close", "reopen")


def legal_actions(status: str) -> list[str]:
    """The actions allowed from ``status``, in lifecycle order."""
    return [a for a, (src, _) in TRANSITIONS.items() if status in src]


def next_status(status: str, action: str) -> str:
    """The status ``action`` leads to from ``status``; raises :class:`Conflict` if it is not legal."""
    if action not in TRANSITIONS:
        raise InvalidInput(f"unknown action {action!r}", field="action", fix=f"use one of {', '.join(TRANSITIONS)}")
    src, dst = TRANSITIONS[action]
    if status not in src:
        legal = legal_actions(status)
        raise Conflict(f"an event that is {status} cannot be {_PAST[action]}", field="action",
                       fix=f"legal now: {', '.join(legal)}" if legal else "no action is legal now")
    return dst


def is_open(status: str) -> bool:
    """Whether an event in ``status`` is still being handled."""
    return status in OPEN_EVENT_STATUSES
