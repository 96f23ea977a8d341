"""Response teams, their members and the grid staff roster of the sample street.

Private helpers of :mod:`gridmap.sample.street` (EPSG:4549 metres). Team sizes follow
Xianlin's published figures (one full-time grid worker per grid, about 2,400 party-member
volunteers and 1,000 other volunteers for some 260,000 residents), scaled with the population.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import shapely

from gridmap.sample import _names as names
from gridmap.sample._blocks import Roads

_SKILLS_BY_KIND = {
    "grid_patrol": ("patrol", "mediation", "first_aid", "elderly_care", "traffic"),
    "volunteer": ("elderly_care", "first_aid", "patrol", "traffic", "mediation"),
    "micro_fire_crew": ("fire", "first_aid", "patrol"),
    "mediation": ("mediation", "law", "elderly_care"),
    "auxiliary_police": ("security", "patrol", "traffic", "law"),
}
_ROLE_SKILLS = {
    "grid_worker": ("patrol", "mediation", "first_aid", "elderly_care", "law"),
    "volunteer": ("elderly_care", "first_aid", "patrol", "traffic"),
    "party_volunteer": ("elderly_care", "patrol", "mediation", "first_aid", "traffic"),
    "micro_fire_crew": ("fire", "first_aid"),
    "mediator": ("mediation", "law"),
    "auxiliary_police": ("security", "patrol", "traffic"),
}
_VOLUNTEER_TEAM_WORDS = ("党员先锋", "平安", "红色", "银龄", "邻里守望", "青年")


def team_counts(n_teams: int, n_stations: int) -> dict[str, int]:
    """Teams per kind: one fire crew per micro fire station, ~8 % mediation, ~7 % auxiliary
    police, ~15 % volunteers, the rest grid patrols."""
    crews = min(n_stations, max(n_teams // 4, 0))
    mediation = max(1, int(round(n_teams * 0.08)))
    police = max(1, int(round(n_teams * 0.067)))
    volunteer = max(1, int(round(n_teams * 0.15)))
    patrol = n_teams - crews - mediation - police - volunteer
    if patrol < 1:
        raise ValueError(f"n_teams={n_teams} is too small; use at least {n_teams - patrol + 1}")
    return {"grid_patrol": patrol, "volunteer": volunteer, "micro_fire_crew": crews,
            "mediation": mediation, "auxiliary_police": police}


def _skill_lists(rng: np.random.Generator, pools: list[tuple[str, ...]]) -> list[list[str]]:
    """First skill of each pool always, plus 0-2 more from the same pool, sorted."""
    out = []
    extra = rng.integers(0, 3, len(pools))
    for pool, k in zip(pools, extra, strict=True):
        more = rng.permutation(len(pool) - 1)[: int(k)] + 1
        out.append(sorted({pool[0], *(pool[i] for i in more)}))
    return out


@dataclass(frozen=True)
class Teams:
    kind: np.ndarray
    name: np.ndarray
    home_grid: np.ndarray  # grid index
    station: np.ndarray  # station row for crews, -1 otherwise
    skills: list[list[str]]
    status: np.ndarray
    position_at: list[datetime]
    xy: np.ndarray
    grid_patrol: np.ndarray  # per grid: the patrol team covering it


def make_teams(n_teams: int, grids: np.ndarray, grid_comm: np.ndarray, grid_names: list[str],
               comm_zh: list[str], station_grid: np.ndarray, station_names: list[str],
               roads: Roads, as_of: datetime, rng: np.random.Generator) -> Teams:
    """Teams with a home grid and a last known position near a road inside that grid."""
    n_grids = len(grids)
    counts = team_counts(n_teams, len(station_grid))
    kinds, homes, stations, labels = [], [], [], []
    n_p = counts["grid_patrol"]
    patrol_home = (np.arange(n_p) * n_grids) // n_p
    grid_patrol = np.minimum((np.arange(n_grids) * n_p + n_p // 2) // n_grids, n_p - 1)
    for t, g in enumerate(patrol_home):
        kinds.append("grid_patrol")
        homes.append(int(g))
        stations.append(-1)
        labels.append(f"{grid_names[g]}巡查组" if n_p <= n_grids else f"{grid_names[g]}巡查{t + 1}组")
    for kind in ("volunteer", "mediation", "auxiliary_police"):
        m = counts[kind]
        spread = ((np.arange(m) + 0.5) * n_grids / m).astype(np.int64)
        for i, g in enumerate(spread):
            c = comm_zh[grid_comm[g]]
            word = _VOLUNTEER_TEAM_WORDS[i % len(_VOLUNTEER_TEAM_WORDS)]
            label = {"volunteer": f"{c}{word}志愿服务队", "mediation": f"{c}人民调解小组",
                     "auxiliary_police": f"{c}辅警巡逻队"}[kind]
            if label in labels:
                label = label.replace("队", f"{names.ordinal_zh(i + 1)}队").replace(
                    "小组", f"第{names.ordinal_zh(i + 1)}小组")
            kinds.append(kind)
            homes.append(int(g))
            stations.append(-1)
            labels.append(label)
    for s in range(counts["micro_fire_crew"]):
        kinds.append("micro_fire_crew")
        homes.append(int(station_grid[s]))
        stations.append(s)
        labels.append(f"{station_names[s]}队")
    order = {k: i for i, k in enumerate(("grid_patrol", "volunteer", "micro_fire_crew",
                                         "mediation", "auxiliary_police"))}
    perm = sorted(range(len(kinds)), key=lambda i: (order[kinds[i]], i))
    kind = np.array([kinds[i] for i in perm], dtype=object)
    home = np.array([homes[i] for i in perm], dtype=np.int64)
    station = np.array([stations[i] for i in perm], dtype=np.int64)
    name = np.array([labels[i] for i in perm], dtype=object)
    # On or off duty, nothing else: "assigned" and "on_site" are what an active assignment makes of a team
    # (the live dispatch sets them), and the sample holds no assignments. One uniform draw per team, as
    # before, so the later draws of this stream (positions, skills) are unchanged.
    status = np.array(["available", "off_duty"], dtype=object)[rng.choice(2, len(kind), p=[0.8, 0.2])]
    minutes = np.where(status == "off_duty", rng.uniform(60, 600, len(kind)),
                       rng.exponential(8.0, len(kind)))
    position_at = [as_of - timedelta(seconds=int(round(m * 60))) for m in minutes]
    xy = np.array([near_road_point(grids[g], roads, rng) for g in home]).reshape(-1, 2)
    skills = _skill_lists(rng, [_SKILLS_BY_KIND[k] for k in kind])
    grid_patrol_team = np.flatnonzero(kind == "grid_patrol")[grid_patrol]
    return Teams(kind, name, home, station, skills, status, position_at, xy, grid_patrol_team)


def near_road_point(poly: shapely.Geometry, roads: Roads, rng: np.random.Generator,
                    width: float = 6.0) -> np.ndarray:
    """A random point inside ``poly`` within ``width`` metres of a road centreline."""
    inner = shapely.buffer(poly, -1.0)
    lines = roads.lines[roads.tree.query(poly, predicate="intersects")]
    zone = shapely.intersection(inner, shapely.union_all(shapely.buffer(lines, width, quad_segs=2)))
    if zone.is_empty:
        zone = inner if not inner.is_empty else poly
    shapely.prepare(zone)
    minx, miny, maxx, maxy = shapely.bounds(zone)
    for _ in range(200):
        xy = rng.uniform([minx, miny], [maxx, maxy], (64, 2))
        ok = shapely.contains_xy(zone, xy[:, 0], xy[:, 1])
        if ok.any():
            return xy[np.argmax(ok)]
    return shapely.get_coordinates(shapely.point_on_surface(zone))[0]


@dataclass(frozen=True)
class Members:
    team: np.ndarray  # team row, -1 for none
    role: np.ndarray
    is_party_member: np.ndarray
    skills: list[list[str]]
    grid_staff: list[tuple[int, int, str]]  # (grid index, member row, role)


def make_members(teams: Teams, n_grids: int, n_residents: int,
                 rng: np.random.Generator) -> Members:
    """Grid workers, volunteers, fire crews, mediators and auxiliary police."""
    team_rows: list[int] = []
    roles: list[str] = []
    staff: list[tuple[int, int, str]] = []
    # Grid workers: a primary per grid, an assistant in about 30 % of grids.
    assistant = rng.random(n_grids) < 0.3
    for g in range(n_grids):
        for r in ("primary", "assistant") if assistant[g] else ("primary",):
            staff.append((g, len(roles), r))
            team_rows.append(int(teams.grid_patrol[g]))
            roles.append("grid_worker")
    covered = set(team_rows)
    for t in np.flatnonzero(teams.kind == "grid_patrol"):
        if int(t) not in covered:  # more patrol teams than grids: staff them with assistants
            for _ in range(2):
                staff.append((int(teams.home_grid[t]), len(roles), "assistant"))
                team_rows.append(int(t))
                roles.append("grid_worker")
    size_by_kind = {"micro_fire_crew": (4, 7, "micro_fire_crew"), "mediation": (3, 6, "mediator"),
                    "auxiliary_police": (4, 9, "auxiliary_police")}
    for t, kind in enumerate(teams.kind):
        if kind in size_by_kind:
            lo, hi, role = size_by_kind[kind]
            k = int(rng.integers(lo, hi))
            team_rows += [t] * k
            roles += [role] * k
    scale = n_residents / 260_000
    n_party, n_vol = max(4, int(round(2400 * scale))), max(2, int(round(1000 * scale)))
    vol_role = np.array(["party_volunteer"] * n_party + ["volunteer"] * n_vol, dtype=object)
    vol_teams = np.flatnonzero(teams.kind == "volunteer")
    vol_team = np.full(len(vol_role), -1)
    in_team = rng.random(len(vol_role)) < 0.35
    vol_team[in_team] = vol_teams[rng.integers(0, len(vol_teams), int(in_team.sum()))]
    team_rows += vol_team.tolist()
    roles += vol_role.tolist()
    role = np.array(roles, dtype=object)
    party = np.where(role == "party_volunteer", True,
                     rng.random(len(role)) < np.where(role == "grid_worker", 0.6, 0.2))
    skills = _skill_lists(rng, [_ROLE_SKILLS[r] for r in role])
    return Members(np.array(team_rows, dtype=np.int64), role, party.astype(bool), skills, staff)
