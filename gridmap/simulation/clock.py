"""The simulation's time: a queue of what happens when, and the clock that lets it happen.

Times are seconds after the run's origin (a float; the API sees ``origin + t`` to the microsecond). The
:class:`Agenda` orders actions by time, then by a fixed priority per kind of action, then by the order they
were planned, so the calls reach the API in the same order on every run with the same seed. Two clocks move
the world from one instant to the next:

* :class:`FastClock` (simulated time): moves the API's clock (``PUT /v1/simulation/clock``) to each instant
  that has something to do, and goes on at once: a day in minutes, as fast as the API answers;
* :class:`LiveClock` (real time): waits for the wall clock to reach each instant; the API keeps its own.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

Action = Callable[[float], None]

#: the order of actions due at the same instant
PRIORITY = {"shift": 0, "fixes": 1, "report": 2, "feed": 3, "answer": 4, "arrive": 5, "finish": 6, "sweep": 7,
            "discover": 8, "operator": 9, "end": 10}


class Agenda:
    """What happens when."""

    def __init__(self) -> None:
        self._q: list[tuple[float, int, int, Action]] = []
        self._seq = itertools.count()

    def at(self, t: float, kind: str, action: Action) -> None:
        heapq.heappush(self._q, (round(t, 3), PRIORITY[kind], next(self._seq), action))

    def next_time(self) -> float | None:
        return self._q[0][0] if self._q else None

    def pop(self) -> tuple[float, Action]:
        t, _, _, action = heapq.heappop(self._q)
        return t, action

    def __len__(self) -> int:
        return len(self._q)


class Clock(Protocol):
    origin: dt.datetime

    def advance(self, t: float) -> None: ...


def instant(origin: dt.datetime, t: float) -> dt.datetime:
    return origin + dt.timedelta(seconds=round(t, 3))


class FastClock:
    """Simulated time: each new instant is sent to the API before anything happens at it."""

    def __init__(self, origin: dt.datetime, move: Callable[[dt.datetime], None]) -> None:
        self.origin = origin
        self._move = move
        self._now: float | None = None

    def advance(self, t: float) -> None:
        if self._now is None or t > self._now:
            self._move(instant(self.origin, t))
            self._now = t


class LiveClock:
    """Real time: waits until the wall clock reaches each instant (``origin`` is when the run started)."""

    def __init__(self, origin: dt.datetime, *, sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time) -> None:
        self.origin = origin
        self._sleep, self._wall = sleep, wall
        self._t0 = origin.timestamp()

    def advance(self, t: float) -> None:
        wait = self._t0 + t - self._wall()
        if wait > 0:
            self._sleep(wait)
