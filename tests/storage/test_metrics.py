"""gridmap.storage.metrics: the monthly counts of the safety index, one window arithmetic for the planners'
frame and the levels of command."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from gridmap.errors import InvalidInput
from gridmap.storage import metrics
from gridmap.storage.areas import AreaFilter
from tests.storage.conftest import T0, TZ, add_event

pytestmark = [pytest.mark.db]
WINDOWS = {"arrive": ("on_site_at", 1800.0), "close": ("closed_at", 86400.0)}


def _grid(conn) -> None:
    """District D > street S > community C > grid G, a square around the events."""
    box = "ST_Multi(ST_MakeEnvelope(120.0, 30.2, 120.2, 30.4, 4326))"
    for code, level, parent in (("D", "district", None), ("S", "street", "D"), ("C", "community", "S"),
                                ("G", "grid", "C")):
        conn.execute(text(f"INSERT INTO areas (code, level, name, parent_code, valid_from, geom) "
                          f"VALUES (:c, :l, :c, :p, :f, {box})"),
                     {"c": code, "l": level, "p": parent, "f": T0 - dt.timedelta(days=400)})


def test_month_counts_and_event_month_counts_agree(conn):
    _grid(conn)
    for i, minutes in enumerate((10, 45, None)):
        eid = add_event(conn, f"EV{i}", reported_at=T0 - dt.timedelta(days=3, hours=i))
        conn.execute(text("UPDATE events SET grid_code = 'G', community_code = 'C', street_code = 'S', "
                          "on_site_at = reported_at + make_interval(mins => :m) WHERE id = :e"),
                     {"m": minutes, "e": eid})
    start, end, as_of = T0 - dt.timedelta(days=60), T0, T0
    levels = metrics.month_counts(conn, "S", "grid", start=start, end=end, windows=WINDOWS, as_of=as_of,
                                  tz=str(TZ))
    frame = metrics.event_month_counts(conn, AreaFilter(area="S"), level="grid", start=start, end=end,
                                       windows=WINDOWS, as_of=as_of)
    assert levels.to_dict("records") == frame.to_dict("records")
    assert levels[["events", "done_arrive", "due_arrive", "done_close"]].iloc[0].tolist() == [3, 1, 3, 0]


@pytest.mark.parametrize("windows", [{"x": ("title", 60.0)}, {"not an identifier": ("on_site_at", 60.0)}])
def test_windows_are_a_whitelist_in_both(conn, windows):
    _grid(conn)
    with pytest.raises(InvalidInput):
        metrics.month_counts(conn, "S", "grid", start=T0, end=T0, windows=windows, as_of=T0, tz=str(TZ))
    with pytest.raises(InvalidInput):
        metrics.event_month_counts(conn, AreaFilter(area="S"), windows=windows, as_of=T0)
