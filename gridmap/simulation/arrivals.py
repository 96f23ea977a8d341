"""The event arrival process: what residents, patrols and alarms report, where and when, drawn from the
street's year of events (:class:`~gridmap.simulation.model.StreetProfile`).

Per day and per (channel, category), the number of reports is Poisson with the year's daily rate times the
weekday and month factors of the category; each report's hour follows the channel's hour-of-day profile, its
place (grid, point or building, severity, title) is one of the year's reports of the same channel and category,
and a share of them is reported a second time nearby, soon after, through another channel (a near-duplicate,
which the API links to the first). Everything is drawn from the seed alone, never from the state of the
simulation, so every dispatch policy of the study sees the same reports.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import numpy as np

from gridmap.core.vocabulary import LOCAL_TZ
from gridmap.simulation.model import Behaviour, StreetProfile

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN = ("先生", "女士", "阿姨", "师傅")
#: a degree of latitude, metres (for the few metres of jitter around a resampled place)
_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class PlannedEvent:
    """One report the simulation will send to ``POST /v1/events``."""

    seq: int
    at: dt.datetime
    channel: str
    category: str
    severity: int
    grid: str
    lon: float
    lat: float
    building_code: str | None
    title: str
    external_id: str
    reporter: tuple[str, str] | None
    duplicate_of_seq: int | None = None

    def location(self) -> dict:
        """The report's location as the channel sends it: QR codes name the place, the rest a point."""
        if self.channel == "qr_code" and self.building_code:
            return {"place_code": self.building_code}
        return {"lon": round(self.lon, 7), "lat": round(self.lat, 7)}

    def body(self) -> dict:
        out: dict = {"channel": self.channel, "external_id": self.external_id, "category": self.category,
                     "severity": self.severity, "title": self.title, "location": self.location(),
                     "reported_at": self.at.isoformat()}
        if self.reporter is not None:
            out["reporter"] = {"name": self.reporter[0], "phone": self.reporter[1]}
        return out


def stable_seed(*parts: object) -> list[int]:
    """A seed sequence for numpy from any values (CRC32 of their text: the same on every run and machine)."""
    return [zlib.crc32(str(p).encode()) for p in parts]


def plan_events(profile: StreetProfile, behaviour: Behaviour, start: dt.datetime, end: dt.datetime, seed: int,
                *, first_within_s: float | None = None) -> list[PlannedEvent]:
    """The reports of [start, end), in time order. ``first_within_s`` pulls the first report forward to that
    many seconds after ``start`` (the live demo: the street is never quiet when the screen opens)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a time zone")
    raw: list[dict] = []
    day = start.astimezone(LOCAL_TZ).date()
    while dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ) < end:
        raw += _day(profile, behaviour, day, seed)
        day += dt.timedelta(days=1)
    raw = [r for r in raw if start <= r["at"] < end]
    raw.sort(key=lambda r: (r["at"], r["key"]))
    if first_within_s is not None and raw and (raw[0]["at"] - start).total_seconds() > first_within_s:
        raw[0]["at"] = start + dt.timedelta(seconds=first_within_s)
    rng = np.random.default_rng(stable_seed(seed, "duplicates", start.isoformat()))
    events: list[PlannedEvent] = []
    tag = f"{seed}-{start.astimezone(LOCAL_TZ):%Y%m%d%H%M}"
    for r in raw:
        events.append(_event(len(events), r, tag))
    dups = []
    for ev in events:
        if rng.random() >= behaviour.duplicate_share or ev.channel == "smart_alarm":
            continue
        delay = rng.uniform(1.0, behaviour.duplicate_within_min) * 60.0
        at = ev.at + dt.timedelta(seconds=delay)
        if at >= end:
            continue
        dist, angle = rng.uniform(5.0, behaviour.duplicate_radius_m), rng.uniform(0, 2 * np.pi)
        lat = ev.lat + dist * np.sin(angle) / _M_PER_DEG
        lon = ev.lon + dist * np.cos(angle) / (_M_PER_DEG * np.cos(np.radians(ev.lat)))
        channel = "chat_group" if ev.channel == "hotline_12345" else "hotline_12345"
        dups.append({"at": at, "channel": channel, "category": ev.category, "severity": ev.severity, "grid": ev.grid,
                     "lon": float(lon), "lat": float(lat), "building_code": None, "title": ev.title,
                     "reporter": _reporter(rng), "dup": ev.seq, "key": f"dup{ev.seq}"})
    if dups:
        merged = [dict(vars(e), key=f"{e.seq:06d}", dup=e.duplicate_of_seq) for e in events] + dups
        merged.sort(key=lambda r: (r["at"], r["key"]))
        events = [_event(i, r, tag) for i, r in enumerate(merged)]
        by_key = {r["key"]: i for i, r in enumerate(merged)}
        events = [e if r.get("dup") is None else _with_dup(e, by_key[f"{r['dup']:06d}"])
                  for e, r in zip(events, merged, strict=True)]
    return events


def _with_dup(e: PlannedEvent, master: int) -> PlannedEvent:
    return PlannedEvent(**{**vars(e), "duplicate_of_seq": master})


def _event(i: int, r: dict, tag: str) -> PlannedEvent:
    return PlannedEvent(seq=i, at=r["at"], channel=r["channel"], category=r["category"], severity=int(r["severity"]),
                        grid=r["grid"], lon=float(r["lon"]), lat=float(r["lat"]), building_code=r["building_code"],
                        title=r["title"], external_id=f"SIM-{tag}-{i:05d}", reporter=r["reporter"])


def _reporter(rng: np.random.Generator) -> tuple[str, str]:
    name = _SURNAMES[int(rng.integers(len(_SURNAMES)))] + _GIVEN[int(rng.integers(len(_GIVEN)))]
    return name, f"139{int(rng.integers(0, 10**8)):08d}"


def _day(profile: StreetProfile, b: Behaviour, day: dt.date, seed: int) -> list[dict]:
    """The reports of one local day (a stream of its own: days never shift each other's draws)."""
    rng = np.random.default_rng(stable_seed(seed, "arrivals", day.isoformat()))
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
    out = []
    for (channel, category) in sorted(profile.daily_rate):
        rate = profile.daily_rate[(channel, category)] * b.arrival_rate_factor
        rate *= profile.weekday[category][day.weekday()] * profile.monthly[category][day.month - 1]
        n = int(rng.poisson(rate))
        if n == 0:
            continue
        hours = rng.choice(24, n, p=profile.hourly[channel])
        secs = rng.uniform(0, 3600, n)
        pool = profile.places[(channel, category)]
        if channel == "qr_code":  # a QR code is scanned where it is posted: only places with a code send one
            pool = pool[pool["building_code"].map(lambda c: isinstance(c, str) and c != "")]
            if pool.empty:
                continue
        picks = rng.integers(0, len(pool), n)
        jitter = rng.normal(0, 3.0, (n, 2))
        for j in range(n):
            p = pool.iloc[int(picks[j])]
            lon, lat = float(p["lon"]), float(p["lat"])
            if not p["building_code"] and channel != "smart_alarm":  # a point in the street: a few metres off
                lat += jitter[j, 1] / _M_PER_DEG
                lon += jitter[j, 0] / (_M_PER_DEG * np.cos(np.radians(lat)))
            reporter = _reporter(rng) if channel in ("hotline_12345", "chat_group") else None
            at = midnight + dt.timedelta(hours=int(hours[j]), seconds=float(np.floor(secs[j] * 1000) / 1000))
            out.append({"at": at, "channel": channel, "category": category, "severity": int(p["severity"]),
                        "grid": p["grid_code"], "lon": lon, "lat": lat,
                        "building_code": p["building_code"] if isinstance(p["building_code"], str) else None,
                        "title": p["title"] or category, "reporter": reporter,
                        "key": f"{channel}:{category}:{j:05d}"})
    return out
