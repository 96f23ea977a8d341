"""The dispatch rules of the policy study pick whom they say: own_grid only teams of the event's grid, and road ETA
finds a team at least as soon as the first one straight_line sends."""

from __future__ import annotations

import datetime as dt

import pytest

from gridmap.services.dispatch import Dispatcher, DispatchPolicy, DispatchRule
from gridmap.simulation.arrivals import plan_events
from gridmap.simulation.model import Behaviour

from .conftest import DAY, module_copy

pytestmark = [pytest.mark.db]


street = module_copy("sim_rules")


def _points(world, n=12):
    """Points at available teams' grids: (lon, lat, grid) of the first position of a team in each of n grids."""
    seen, out = set(), []
    for t in world.teams:
        if t.lon is None or not t.grids or t.grids[0] in seen:
            continue
        seen.add(t.grids[0])
        out.append((t.lon + 0.0015, t.lat + 0.001, t.grids[0]))
        if len(out) == n:
            break
    return out


def test_each_rule_picks_whom_it_says(street):
    engine, world, _ = street
    grids_of = {t.code: set(t.grids) for t in world.teams}
    d = {rule: Dispatcher.from_database(engine, DispatchPolicy(rule=rule), now=DAY) for rule in
         (DispatchRule.ROAD_ETA, DispatchRule.STRAIGHT_LINE, DispatchRule.OWN_GRID)}
    points = _points(world)
    assert len(points) >= 5
    for lon, lat, grid in points:
        own = d[DispatchRule.OWN_GRID].recommend(lon, lat, category="parking", grid=grid, now=DAY)
        assert all(grid in grids_of[c["team"]] for c in own.picked), (grid, own.picked)
        road = d[DispatchRule.ROAD_ETA].recommend(lon, lat, category="parking", grid=grid, now=DAY)
        line = d[DispatchRule.STRAIGHT_LINE].recommend(lon, lat, category="parking", grid=grid, now=DAY)
        assert road.picked and line.picked
        best = min(c["eta_s"] for c in road.picked if c["eta_s"] is not None)  # the tie window may reorder, not drop
        if line.picked[0]["eta_s"] is not None:  # (own_grid sends its grid's team whatever its skills: not compared)
            assert best <= line.picked[0]["eta_s"] + 1e-6, (road.picked[0], line.picked[0])


def test_qr_code_reports_always_name_a_place(sim_template):
    """A QR-code report is a scan of the code posted at a place: the API refuses one without a place code (422), so
    the simulator must never plan one (it did, from the sample year's QR events that had no building: 1-5 reports
    a day were refused, and the live demo's first report could be one of them)."""
    _template, world, _creds = sim_template
    planned = plan_events(world.profile, Behaviour(), DAY, DAY + dt.timedelta(days=7), seed=1)
    qr = [e for e in planned if e.channel == "qr_code"]
    assert qr, "a week of the sample street has QR-code reports"
    assert all("place_code" in e.location() for e in qr), [e.external_id for e in qr if "place_code" not in e.location()]
