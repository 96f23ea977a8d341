"""Realistic request data from the sample street, for the tests that generate requests (schemathesis, the
route x identity matrix, the property tests): real codes of teams, buildings, places, grids, communities and
streets, real categories, points inside the street, existing events and assignments.

Random strings rarely name a team that exists or a point inside the street, so a generator left to itself
stops at the first 404 or 422 and never reaches what lies behind it (dispatch, the lifecycle, the
dashboard's drill-downs). :class:`Domain` reads the real values once; :func:`mixed` draws them most of the
time and the generated value otherwise, so both the deep paths and the refusals are exercised.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st
from sqlalchemy import Engine, text


@dataclass(frozen=True)
class Domain:
    teams: tuple[str, ...]
    buildings: tuple[str, ...]
    businesses: tuple[str, ...]
    streets: tuple[str, ...]
    communities: tuple[str, ...]
    grids: tuple[str, ...]
    categories: tuple[str, ...]
    points: tuple[tuple[float, float], ...]
    events: tuple[int, ...]
    assignments: tuple[int, ...]
    bbox: tuple[float, float, float, float]

    @classmethod
    def read(cls, engine: Engine) -> Domain:
        with engine.connect() as conn:
            def col(sql: str) -> tuple:
                return tuple(r[0] for r in conn.execute(text(sql)))

            points = tuple((float(x), float(y)) for x, y in conn.execute(text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM buildings "
                "ORDER BY code LIMIT 400) s")))
            bbox = conn.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                                     "(SELECT ST_Extent(geom) AS e FROM areas WHERE level = 'street') s")).one()
            return cls(
                teams=col("SELECT code FROM teams ORDER BY code"),
                buildings=col("SELECT code FROM buildings ORDER BY code LIMIT 400"),
                businesses=col("SELECT code FROM businesses ORDER BY code LIMIT 200"),
                streets=col("SELECT code FROM areas WHERE level = 'street' ORDER BY code"),
                communities=col("SELECT code FROM areas WHERE level = 'community' ORDER BY code"),
                grids=col("SELECT code FROM areas WHERE level = 'grid' ORDER BY code"),
                categories=col("SELECT code FROM event_categories ORDER BY code"),
                points=points,
                events=col("SELECT id FROM events ORDER BY reported_at DESC LIMIT 200"),
                assignments=col("SELECT id FROM assignments ORDER BY id DESC LIMIT 200"),
                bbox=tuple(float(v) for v in bbox),
            )

    @property
    def areas(self) -> tuple[str, ...]:
        return self.streets + self.communities + self.grids

    def point(self) -> st.SearchStrategy[tuple[float, float]]:
        return st.sampled_from(self.points)


def mixed(real, generated) -> st.SearchStrategy:
    """A real value three times in four, the generated one otherwise (``one_of`` picks its branches evenly)."""
    if not real:
        return st.just(generated)
    pick = st.sampled_from(list(real))
    return st.one_of(pick, pick, pick, st.just(generated))
