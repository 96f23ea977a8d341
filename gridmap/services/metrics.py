"""Command-centre metrics: how fast and how completely events are closed, by area and period.

* response time: reported → on site; handling time: on site → resolved; closure time: reported → closed;
* closure rate (闭环率): closed / reported; resolution rate: (resolved + closed) / reported;
* overdue: open past the rung's time limit now, or resolved after it.

Near-duplicates are counted once (with their master). Aggregates only: no event, person or team is named,
so planners may read them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import SupportsFloat

from sqlalchemy.orm import Session

from gridmap.core.vocabulary import TIME_ZONE
from gridmap.errors import InvalidInput
from gridmap.services.auth import Principal
from gridmap.storage import metrics as metrics_sql

GROUPS = {"street": "street_code", "community": "community_code", "grid": "grid_code", "category": "category",
          "channel": "channel", "all": "all"}
PERIODS = ("day", "week", "month", "quarter", "year", "all")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _num(v: SupportsFloat | None) -> float | None:
    return None if v is None else round(float(v), 2)


def check_window(start: dt.datetime, end: dt.datetime) -> None:
    """A figures window must be two aware times, start before end (else a 422 naming which)."""
    for name, v in (("start", start), ("end", end)):
        if v.tzinfo is None:
            raise InvalidInput(f"{name} {v.isoformat()} has no time zone", field=name,
                               fix="send ISO 8601 with an offset, e.g. 2026-01-01T00:00:00+08:00")
    if start >= end:
        raise InvalidInput(f"start {start.isoformat()} is not before end {end.isoformat()}", field="start",
                           fix="give a start before the end")


class MetricsService:
    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self.clock = clock

    def _scope(self, p: Principal) -> str | None:
        """The area an operator's figures are confined to (a district, street or community); None: all."""
        p.require("admin", "operator", "planner", what="read metrics")
        return (p.area or "-") if p.role == "operator" else None

    def events(self, session: Session, p: Principal, *, group_by: str = "street", period: str = "month",
               start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict:
        """Rates and durations per group and period (operators: their area only)."""
        if group_by not in GROUPS:
            raise InvalidInput(f"cannot group by {group_by!r}", field="group_by", fix=f"use one of {', '.join(GROUPS)}")
        if period not in PERIODS:
            raise InvalidInput(f"unknown period {period!r}", field="period", fix=f"use one of {', '.join(PERIODS)}")
        street = self._scope(p)
        now = self.clock()
        end = end or now + dt.timedelta(seconds=1)
        start = start or end - dt.timedelta(days=365)
        check_window(start, end)
        with session.begin():
            rows = metrics_sql.event_metrics(session.connection(), key=GROUPS[group_by],
                                             period=None if period == "all" else period, start=start, end=end,
                                             street=street, now=now, tz=TIME_ZONE)
        out = []
        for r in rows:
            out.append({
                "key": r["key"], "period": None if r["period"] is None else r["period"].date().isoformat(),
                "reported": r["reported"], "resolved": r["resolved"], "closed": r["closed"], "open": r["open"],
                "overdue": r["overdue"], "closure_rate": _rate(r["closed"], r["reported"]),
                "resolution_rate": _rate(r["resolved"], r["reported"]),
                "response_min": {"avg": _num(r["response_avg_min"]), "p50": _num(r["response_p50_min"]),
                                 "p90": _num(r["response_p90_min"])},
                "handling_min": {"avg": _num(r["handling_avg_min"]), "p50": _num(r["handling_p50_min"])},
                "closure_min": {"avg": _num(r["closure_avg_min"])},
            })
        return {"group_by": group_by, "period": period, "start": start, "end": end, "street": street, "rows": out}

    def overdue(self, session: Session, p: Principal) -> dict:
        """Open events past their rung's limit now, by street, community, category and rung."""
        street = self._scope(p)
        now = self.clock()
        with session.begin():
            rows = metrics_sql.overdue_by(session.connection(), now=now, street=street)
        return {"at": now, "total": sum(r["overdue"] for r in rows), "rows": [dict(r) for r in rows]}
