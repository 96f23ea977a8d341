"""Dispatch advice without dispatching: who would get to a point first and why, and batch road ETAs.

The command room asks "who is nearest to this spot?" before it sends anyone (a call still on the line,
a planned check, an event another street hands over), and a planner asks "how long from the nearest
micro fire station to each of these doors?". Both are answered from the dispatcher's caches (road
graph, live team index, contraction hierarchy), nothing is written and no team is claimed.

Who may ask: operators (points inside their own street) and admins for the ranking — it shows team
positions and routes; planners too for the batch ETAs, which carry no team identity at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridmap.config import Settings
from gridmap.core.location import check_lonlat
from gridmap.errors import DatabaseError, InvalidInput, TooLarge
from gridmap.services.auth import Principal
from gridmap.services.dispatch import RESPONDER_KINDS, Dispatcher
from gridmap.storage import areas as areas_sql

#: Largest batch of points for one ETA request (each costs a snap; the search is one for all). Bigger
#: batches: several requests, or ``Dispatcher.eta_to_nearest`` in Python.
MAX_ETA_POINTS = 5_000
ETA_KINDS = ("team", "micro_fire_station", "micro_fire_truck", "hydrant")


@dataclass
class Advice:
    lon: float
    lat: float
    grid: str | None
    street: str | None
    skills: list[str]
    method: str
    search: str
    picked: list[dict]
    passed_over: list[dict]
    note: str | None
    equipment: dict[str, list[dict]]


def _check_coords(coords: str) -> None:
    if coords not in ("wgs84", "gcj02"):
        raise InvalidInput(f"unknown coordinate system {coords!r}", field="coords",
                           fix="use 'wgs84' (GPS) or 'gcj02' (Amap/Tencent maps)")


def _check_skills(d: Dispatcher, skills: list[str] | None) -> None:
    """Skills asked for must be ones the dispatcher knows (its team index would raise a KeyError: a 500)."""
    if not skills:
        return
    known = set(d.teams.skill_bit) if d.teams is not None else set()
    unknown = [s for s in skills if s not in known]
    if unknown:
        raise InvalidInput(f"unknown skill{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown[:5]))}",
                           field="skills", fix=f"use one of {', '.join(sorted(known)) or '(no team has a skill yet)'}, "
                                               "or give a category instead")


def _line(geom: BaseGeometry | None) -> list[list[float]] | None:
    if geom is None:
        return None
    return [[round(x, 7), round(y, 7)] for x, y in geom.coords]


def _out(c: dict) -> dict:
    return {"team": c["team"], "rank": c["rank"], "eta_s": c["eta_s"], "distance_m": c["distance_m"],
            "method": c["method"], "reasons": c["reasons"], "route": _line(c["route"]),
            **({"kind": c["kind"]} if "kind" in c else {})}


class DispatchAdvice:
    def __init__(self, engine: Engine, settings: Settings, dispatcher: Dispatcher | None,
                 clock: Callable[[], dt.datetime]) -> None:
        self.engine, self.settings, self.dispatcher, self.clock = engine, settings, dispatcher, clock

    def _need_dispatcher(self) -> Dispatcher:
        if self.dispatcher is None:
            raise DatabaseError("automatic dispatch is off: the road network is not loaded", field="road_edges",
                                fix="load road_nodes and road_edges (gridmap sample load, or gridmap load), "
                                    "then restart the API")
        return self.dispatcher

    def recommend(self, session: Session, p: Principal, *, lon: float, lat: float, coords: str = "wgs84",
                  category: str | None = None, skills: list[str] | None = None, k: int | None = None,
                  max_eta_s: float | None = None, at: dt.datetime | None = None) -> Advice:
        """The k teams that reach (lon, lat) first by road, why each was picked or passed over, and for
        fire the nearest in-service micro fire stations/trucks and hydrants. Operators: their area only."""
        p.require("admin", "operator", what="dispatch advice (it shows where teams are)")
        d = self._need_dispatcher()
        _check_coords(coords)
        _check_skills(d, skills)
        lon, lat = check_lonlat(lon, lat, self.settings.area_bbox, gcj02=coords == "gcj02")
        now = at or self.clock()
        if now.tzinfo is None:
            raise InvalidInput(f"time {now.isoformat()} has no time zone", field="at",
                               fix="send ISO 8601 with an offset, e.g. 2026-11-22T09:30:00+08:00")
        with session.begin():
            place = areas_sql.place_point(session.connection(), lon, lat, now)
        street = place["street_code"] if place else None
        p.check_street(street, f"the point ({lon}, {lat})", place["community_code"] if place else None)
        rec = d.recommend(lon, lat, category=category, skills=skills, k=k, max_eta_s=max_eta_s,
                          grid=place["grid_code"] if place else None, now=now)
        return Advice(lon, lat, place["grid_code"] if place else None, street, rec.skills, rec.method, rec.search,
                      [_out(c) for c in rec.picked], [_out(c) for c in rec.passed_over], rec.note,
                      {name: [_out(c) for c in cands] for name, cands in rec.equipment.items()})

    def eta(self, p: Principal, *, points: list[tuple[float, float]], kind: str, coords: str = "wgs84",
            at: dt.datetime | None = None) -> list[float | None]:
        """Road ETA (s) from the nearest available team (``team``, or one holding a skill) or in-service
        equipment of ``kind`` to each point; None where nothing reaches it. One many-to-one search."""
        p.require("admin", "operator", "planner", what="batch road ETAs")
        d = self._need_dispatcher()
        if not points:
            raise InvalidInput("no points", field="points", fix="send [[lon, lat], ...] (at least one)")
        if len(points) > MAX_ETA_POINTS:
            raise TooLarge(f"{len(points):,} points in one request", field="points",
                           fix=f"send at most {MAX_ETA_POINTS:,} per request")
        skills = set(d.teams.skill_bit) if d.teams is not None else set()
        if kind not in ETA_KINDS and kind not in skills:
            raise InvalidInput(f"unknown kind {kind!r}", field="kind",
                               fix=f"use one of {', '.join((*ETA_KINDS, *sorted(skills)))}")
        _check_coords(coords)
        lonlat = []
        for i, (lon, lat) in enumerate(points):
            try:
                lonlat.append(check_lonlat(lon, lat, self.settings.area_bbox, gcj02=coords == "gcj02"))
            except InvalidInput as exc:
                raise InvalidInput(f"point #{i}: {exc.message}", field=f"points[{i}]", fix=exc.fix) from exc
        arr = np.array(lonlat, dtype=float)
        eta = d.eta_to_nearest(arr[:, 0], arr[:, 1], kind=kind, now=at or self.clock())
        return [round(float(v), 1) if np.isfinite(v) else None for v in eta]


__all__ = ["Advice", "DispatchAdvice", "ETA_KINDS", "MAX_ETA_POINTS", "RESPONDER_KINDS"]
