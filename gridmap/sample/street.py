"""Deterministic generator of a Xianlin-sized sample street (示例街道) on a real OSM road network.

The public entry point is :func:`generate_sample_street`; it returns a :class:`SampleStreet`
holding every layer the grid-management (网格化管理) back end stores: administrative areas down to
grids, buildings, households, residents (with their sensitive fields kept apart), businesses,
fire equipment, response teams and their members, and a year of past events.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta, tzinfo
from typing import cast

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from gridmap.core.vocabulary import LOCAL_TZ, WGS84
from gridmap.sample import _blocks as blocks_mod
from gridmap.sample import _events as events_mod
from gridmap.sample import _homes as homes
from gridmap.sample import _names as names
from gridmap.sample import _partition as partition_mod
from gridmap.sample import _places as places
from gridmap.sample import _teams as teams_mod

__all__ = [
    "BUILDING_WORKLOAD", "DEFAULT_EVENTS_START", "DEFAULT_SEED", "SAMPLE_STREET_CODE", "SECOND_STREET_CODE",
    "SECOND_STREET_SHARE", "SampleStreet", "generate_sample_street", "grid_workloads",
]

SAMPLE_STREET_CODE = "330106900"  # fictional; the real Xianlin street is 330110011
#: The second, smaller street: the south-east corner of communities (see :func:`_second_street`).
SECOND_STREET_CODE = "330106901"
#: The share of the residents the second street takes (at least; whole communities).
SECOND_STREET_SHARE = 0.15
DEFAULT_SEED = 20261122
DEFAULT_EVENTS_START = datetime(2025, 11, 1, tzinfo=LOCAL_TZ)
BUILDING_WORKLOAD = 20.0  # a building weighs as much as this many residents in a grid's workload
LOCAL_CRS = "EPSG:4549"  # CGCS2000 / 3-degree Gauss-Kruger CM 120E: metres around Hangzhou
STORAGE_CRS = WGS84
_BUILDINGS_PER_RESIDENT = 9000 / 260_000
_BUSINESSES_PER_RESIDENT = 6000 / 260_000
_DISTRICT_NAMES = {
    "330102": "Shangcheng District", "330103": "Xiacheng District", "330104": "Jianggan District",
    "330105": "Gongshu District", "330106": "Xihu District", "330108": "Binjiang District",
    "330109": "Xiaoshan District", "330110": "Yuhang District", "330111": "Fuyang District",
    "330112": "Lin'an District", "330113": "Linping District", "330114": "Qiantang District",
    "330122": "Tonglu County", "330127": "Chun'an County", "330182": "Jiande City",
}


@dataclass(frozen=True, eq=False)
class SampleStreet:
    """All layers of the generated sample street (GeoDataFrames in EPSG:4326)."""

    areas: gpd.GeoDataFrame
    grid_staff: pd.DataFrame
    buildings: gpd.GeoDataFrame
    households: pd.DataFrame
    residents: pd.DataFrame
    resident_pii: pd.DataFrame
    businesses: gpd.GeoDataFrame
    fire_equipment: gpd.GeoDataFrame
    teams: gpd.GeoDataFrame
    team_members: pd.DataFrame
    events: gpd.GeoDataFrame

    def layers(self) -> dict[str, pd.DataFrame]:
        """Layer name -> frame, in the order of the fields above."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def counts(self) -> dict[str, int]:
        """Layer name -> row count."""
        return {name: len(frame) for name, frame in self.layers().items()}


def grid_workloads(street: SampleStreet) -> pd.Series:
    """Workload per grid code: residents + ``BUILDING_WORKLOAD`` x buildings (what is balanced)."""
    grids = street.areas.loc[street.areas["level"] == "grid", "code"]
    n_buildings = street.buildings.groupby("grid_code").size()
    residents = street.areas.set_index("code").loc[grids, "population"].astype(float)
    return residents + BUILDING_WORKLOAD * n_buildings.reindex(grids, fill_value=0).astype(float)


def generate_sample_street(
    edges: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    *,
    seed: int = DEFAULT_SEED,
    n_grids: int = 149,
    n_residents: int = 260_000,
    n_teams: int = 150,
    events_start: datetime = DEFAULT_EVENTS_START,
    n_events: int = 36_000,
    second_street_share: float = SECOND_STREET_SHARE,
) -> SampleStreet:
    """Generate a complete, internally consistent sample street on a real road network.

    No open data set holds a Chinese street's grid-management registers (grids, households,
    residents, fire equipment, 12345 tickets...) and no library synthesises them, so this is
    hand-written. Everything is drawn from ``numpy.random.default_rng`` streams spawned from
    ``seed``, inputs are sorted or deduplicated first, and no step depends on set or dict
    order: the same inputs and seed give identical frames.

    Parameters
    ----------
    edges : geopandas.GeoDataFrame
        Drive-network edges (OSMnx layout: LineString geometry, ``name``, ``highway``), any CRS;
        directed duplicates are fine.
    districts : geopandas.GeoDataFrame
        District polygons with ``adcode`` and ``name`` (Chinese); the street's parent is the one
        it overlaps most.
    seed : int
        Seed of every random stream.
    n_grids : int
        Number of grids (网格); communities get about 6-7 each.
    n_residents : int
        Number of residents; buildings (about 9,000 per 260,000 residents) scale with it.
    n_teams : int
        Number of response teams (one fire crew per micro fire station, ~8 % mediation, ~7 %
        auxiliary police, ~15 % volunteers, the rest grid patrols).
    events_start : datetime
        Timezone-aware start of the year of events; "now" for statuses, inspections and team
        positions is one year (365 days) later.
    n_events : int
        Number of events in that year.
    second_street_share : float
        The south-east corner of whole communities, lying wholly in the parent district, that becomes a
        second, smaller street (``SECOND_STREET_CODE``) of at least this share of the residents (0: one
        street). Everything is generated as one street first, so the first street keeps every building,
        resident, event and code it would have alone; it only gives up that corner.

    Returns
    -------
    SampleStreet
        Frames with integer ``id`` 1..n and unique text ``code`` columns (see the attribute
        list); geometries in EPSG:4326.

    Raises
    ------
    ValueError
        On a naive ``events_start``, missing columns or CRS, or parameters the road network
        cannot hold (more grids than block pieces, more households than dwellings).

    Notes
    -----
    The algorithm, all in EPSG:4549 metres:

    1. Roads: directed edges are deduplicated into undirected centrelines, noded with
       ``union_all`` and polygonized into city blocks; slivers (medians of dual carriageways,
       ramp loops: mean width < 25 m or area < 3,000 m²) are merged into the neighbour they
       share most border with. The street is the largest connected region of blocks.
    2. Buildings: smooth random plane-wave fields set density and land use per block (estates
       of slabs or towers, villages, villas, commercial, industrial, public campuses, green).
       Each block gets a lattice aligned to its minimum rotated rectangle (homes face south)
       inside the block minus a 8-15 m road setback; cells are thinned by the density field to
       the wanted count. Floors are then scaled so dwellings ≈ households / 0.85.
    3. People: household sizes (mean 2.6) sum exactly to ``n_residents`` and are drawn into
       distinct dwellings; members get ages, sexes and flags by role in the household.
    4. Grids: blocks heavier than 12 % of a grid's workload are cut along the free strip between
       two lattice columns or rows (never through a footprint), recursively. A recursive
       weighted bisection over 12 directions splits the pieces into communities and then grids;
       detached pieces are repaired and a greedy search moves boundary pieces from heavier to
       lighter neighbours while both stay connected. Communities and the street are unions of
       grids, so the levels nest and tile exactly.
    5. Places, teams and events are placed inside footprints or near roads within their grid;
       events mix category hotspots with population-weighted noise and diurnal, weekly and
       seasonal profiles, and walk through log-normal stage delays (median ~6 min to on site).
    6. The second street: starting from the community nearest the street's south-east corner, the adjacent
       community nearest that corner joins it until it holds ``second_street_share`` of the residents,
       taking only communities wholly inside the parent district and never one that would cut the first
       street in two. Its communities are renumbered under its own code; the first street's keep theirs.

    Examples
    --------
    >>> import geopandas as gpd
    >>> edges = gpd.read_file("data/roads/hz_xihu_gongshu_osm_drive.gpkg", layer="edges")
    >>> districts = gpd.read_file("data/boundaries/hangzhou_districts_tianditu.geojson")
    >>> street = generate_sample_street(edges, districts, n_residents=20_000, n_grids=30,
    ...                                 n_events=2_000)  # doctest: +SKIP
    >>> street.counts()["residents"]  # doctest: +SKIP
    20000
    """
    _check_inputs(edges, districts, events_start, n_grids, n_residents, n_teams, n_events)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(12)]
    as_of = events_start + timedelta(days=365)
    # 1-3. Roads, blocks, buildings; households and their dwellings.
    town = _town(edges, n_residents, rngs)
    fp, attrs, roads = town.fp, town.attrs, town.roads
    # 4. Units, grids, communities (and the second street); the final building order; codes and names.
    ar = _areas(town, districts, n_grids, second_street_share)
    order, typ = ar.order, ar.typ

    # Households and residents in final order.
    hh = town.hh
    hh_order = np.lexsort((hh.room.astype(str), hh.floor, hh.unit, ar.new_pos[hh.building]))
    hh = homes.Households(ar.new_pos[hh.building][hh_order], hh.unit[hh_order], hh.floor[hh_order],
                          hh.room[hh_order], hh.size[hh_order])
    res = homes.make_residents(hh, typ, events_start.year, rngs[3])
    res_building = hh.building[res.household]
    grid_pop = np.bincount(ar.g_of_b[res_building], minlength=n_grids)
    comm_pop = np.bincount(ar.grid_comm, weights=grid_pop, minlength=ar.n_comm).astype(np.int64)

    # 5. Buildings' labels, businesses, fire equipment.
    campus = places.campus_kinds(len(town.blocks), rngs[4])
    bname, baddr, block_name = places.building_labels(fp, attrs.typology, order, roads, campus,
                                                      rngs[4])
    estate_word = block_name[fp.block[order]].astype(str).astype("U2").astype(object)
    biz = places.make_businesses(fp, order, attrs.use[order], attrs.floors[order],
                                 attrs.units[order], typ, baddr, campus, block_name, estate_word,
                                 int(round(n_residents * _BUSINESSES_PER_RESIDENT)), rngs[5])
    comm_xy = shapely.get_coordinates(shapely.point_on_surface(ar.comm_geom))
    eq = places.make_fire_equipment(fp, order, attrs.use[order], attrs.floors[order],
                                    np.isin(typ, ["slab", "tower"]), bname,
                                    ar.c_of_b, comm_xy, ar.comm_zh, comm_pop, biz, roads, ar.street_geom,
                                    as_of.date(), rngs[6])
    st_rows = np.flatnonzero(eq.kind == "micro_fire_station")

    # Teams and members.
    teams = teams_mod.make_teams(n_teams, ar.grid_geom, ar.grid_comm, ar.grid_zh, ar.comm_zh,
                                 ar.g_of_b[eq.building[st_rows]], list(eq.name[st_rows]), roads,
                                 as_of, rngs[7])
    members = teams_mod.make_members(teams, n_grids, n_residents, rngs[8])
    n_mem = len(members.role)
    m_sex = np.where(rngs[8].random(n_mem) < 0.5, "M", "F").astype(object)
    m_birth = rngs[8].integers(1958, 2003, n_mem)
    phones = names.mobile_numbers(rngs[9], n_residents + n_mem)

    # Events.
    ev_frame = _events(n_events, events_start, as_of, fp, order, ar.street_geom, ar.grid_geom, roads,
                       res, res_building, biz, eq, teams, typ, attrs.use[order], baddr, rngs[10])

    # ---- Frames (EPSG:4549 -> EPSG:4326 at the very end) ----
    areas = _areas_frame(districts, ar.street_geom, ar.comm_geom, ar.grid_geom, ar.grid_comm, ar.comm_code,
                         ar.comm_zh, ar.comm_en, ar.grid_code, ar.grid_zh, ar.grid_en, comm_pop, grid_pop,
                         ar.comm_street)
    grid_code_a = np.asarray(ar.grid_code, dtype=object)
    comm_code_a = np.asarray(ar.comm_code, dtype=object)
    buildings = _geo({
        "id": np.arange(1, len(order) + 1), "code": [f"B{i:06d}" for i in range(1, len(order) + 1)],
        "name": bname, "address": baddr, "floors": attrs.floors[order],
        "height_m": attrs.height_m[order], "use": attrs.use[order], "units": attrs.units[order],
        "year_built": attrs.year_built[order], "community_code": comm_code_a[ar.c_of_b],
        "grid_code": grid_code_a[ar.g_of_b],
    }, fp.polygons[order])
    households, residents, resident_pii = _people_frames(hh, res, res_building, phones[:n_residents], rngs[11])
    businesses, fire_equipment = _equipment_frames(biz, eq, st_rows)
    team_frame, team_members, grid_staff = _team_frames(teams, members, grid_code_a, m_sex, m_birth,
                                                        phones[n_residents:], events_start.tzinfo, rngs[9])
    g_ev = ev_frame["grid"].to_numpy()
    events = _geo({
        "id": np.arange(1, len(ev_frame) + 1),
        "code": [f"E{i:06d}" for i in range(1, len(ev_frame) + 1)],
        "channel": ev_frame["channel"], "external_id": ev_frame["external_id"],
        "category": ev_frame["category"], "severity": ev_frame["severity"],
        "title": ev_frame["title"], "description": ev_frame["description"],
        "reported_at": ev_frame["reported_at"], "street_code": ar.comm_street[ar.grid_comm[g_ev]],
        "community_code": comm_code_a[ar.grid_comm[g_ev]], "grid_code": grid_code_a[g_ev],
        "building_id": ev_frame["building_id"], "team_id": ev_frame["team_id"],
        "status": ev_frame["status"], "dispatched_at": ev_frame["dispatched_at"],
        "accepted_at": ev_frame["accepted_at"], "on_site_at": ev_frame["on_site_at"],
        "resolved_at": ev_frame["resolved_at"], "closed_at": ev_frame["closed_at"],
    }, cast("npt.NDArray[np.object_]", shapely.points(ev_frame[["x", "y"]].to_numpy())))
    return SampleStreet(areas=areas, grid_staff=grid_staff, buildings=buildings,
                        households=households, residents=residents, resident_pii=resident_pii,
                        businesses=businesses, fire_equipment=fire_equipment, teams=team_frame,
                        team_members=team_members, events=events)


@dataclass(frozen=True)
class _Town:
    """Steps 1-3: the roads (EPSG:4549), their blocks and plan, the building footprints and attributes, the
    households in their dwellings (in the generation order, not the final one)."""

    roads: blocks_mod.Roads
    blocks: np.ndarray
    plan: blocks_mod.BlockPlan
    fp: blocks_mod.Footprints
    starts: np.ndarray
    attrs: homes.BuildingAttrs
    hh: homes.Households


def _town(edges: gpd.GeoDataFrame, n_residents: int, rngs: list[np.random.Generator]) -> _Town:
    """Roads, blocks, buildings (streams 0 and 1), then households and their dwellings (stream 2)."""
    local = edges.to_crs(LOCAL_CRS)
    roads = blocks_mod.prepare_roads(
        np.asarray(local.geometry.values, dtype=object),
        local["name"].to_numpy(object) if "name" in local else np.full(len(local), None),
        local["highway"].to_numpy(object) if "highway" in local else np.full(len(local), ""))
    blocks = blocks_mod.build_blocks(roads)
    plan = blocks_mod.plan_blocks(blocks, roads, rngs[0])
    target = max(int(round(n_residents * _BUILDINGS_PER_RESIDENT)), 50)
    fp, starts = blocks_mod.place_buildings(blocks, roads, plan, target, rngs[1])
    sizes = homes.household_sizes(n_residents, rngs[2])
    attrs = homes.building_attributes(fp, plan, roads, len(sizes), rngs[2])
    hh = homes.allocate_households(attrs, sizes, rngs[2])
    return _Town(roads, blocks, plan, fp, starts, attrs, hh)


@dataclass(frozen=True)
class _Areas:
    """Step 4: grids, communities and the street(s), in EPSG:4549, with their codes and names; the final
    order of the buildings (``order``, its inverse ``new_pos``) and each one's grid, community and typology."""

    order: np.ndarray
    new_pos: np.ndarray
    g_of_b: np.ndarray
    c_of_b: np.ndarray
    typ: np.ndarray
    grid_geom: np.ndarray
    grid_comm: np.ndarray
    n_comm: int
    comm_geom: np.ndarray
    street_geom: shapely.MultiPolygon
    comm_zh: list[str]
    comm_en: list[str]
    comm_street: np.ndarray
    comm_code: list[str]
    grid_code: list[str]
    grid_zh: list[str]
    grid_en: list[str]


def _areas(town: _Town, districts: gpd.GeoDataFrame, n_grids: int, second_street_share: float) -> _Areas:
    """Units, grids, communities, the street and its second street; codes and names (no random stream)."""
    fp, hh = town.fp, town.hh
    pop_b = np.bincount(hh.building, weights=hh.size, minlength=len(fp.block))
    work_b = pop_b + BUILDING_WORKLOAD
    cap = 0.12 * (work_b.sum() / n_grids)
    units, _, b_unit = partition_mod.split_blocks(town.blocks, town.plan, town.starts, fp, work_b, cap)
    unit_w = np.bincount(b_unit, weights=work_b, minlength=len(units))
    labels, grid_comm = partition_mod.partition(units, unit_w, n_grids)
    grid_geom = np.array([_multipolygon(shapely.union_all(units[labels == g]))
                          for g in range(n_grids)], dtype=object)
    n_comm = int(grid_comm.max()) + 1
    comm_geom = np.array([_multipolygon(shapely.union_all(grid_geom[grid_comm == c]))
                          for c in range(n_comm)], dtype=object)
    street_geom = _multipolygon(shapely.union_all(comm_geom))

    # Final building order: by grid, block, lattice row and column.
    b_grid = labels[b_unit]
    order = np.lexsort((fp.cell[:, 0], fp.cell[:, 1], fp.block, b_grid))
    new_pos = np.empty_like(order)
    new_pos[order] = np.arange(len(order))
    g_of_b = b_grid[order]
    c_of_b = grid_comm[g_of_b]
    typ = town.attrs.typology[order]
    # A community whose people mostly live in village houses is a village (村).
    pop_final = pop_b[order]
    village_share = np.bincount(c_of_b, weights=(typ == "village") * pop_final,
                                minlength=n_comm) / np.maximum(
        np.bincount(c_of_b, weights=pop_final, minlength=n_comm), 1)
    comm_zh, comm_en = names.community_names(n_comm, village_share > 0.5)
    _, parent_geom = _parent_district(districts, street_geom)
    in_second = _second_street(comm_geom, np.bincount(c_of_b, weights=pop_final, minlength=n_comm), parent_geom,
                               street_geom, second_street_share)
    second_no = np.cumsum(in_second)
    comm_street = np.where(in_second, SECOND_STREET_CODE, SAMPLE_STREET_CODE).astype(object)
    comm_code = [f"{SECOND_STREET_CODE}{second_no[c]:03d}" if in_second[c] else f"{SAMPLE_STREET_CODE}{c + 1:03d}"
                 for c in range(n_comm)]
    grid_no = np.array([np.sum(grid_comm[:g] == grid_comm[g]) + 1 for g in range(n_grids)])
    grid_code = [f"{comm_code[grid_comm[g]]}{grid_no[g]:03d}" for g in range(n_grids)]
    grid_zh = [f"{comm_zh[grid_comm[g]]}第{grid_no[g]}网格" for g in range(n_grids)]
    grid_en = [f"{comm_en[grid_comm[g]]} Grid {grid_no[g]}" for g in range(n_grids)]
    return _Areas(order, new_pos, g_of_b, c_of_b, typ, grid_geom, grid_comm, n_comm, comm_geom, street_geom,
                  comm_zh, comm_en, comm_street, comm_code, grid_code, grid_zh, grid_en)


def _people_frames(hh: homes.Households, res: homes.Residents, res_building: np.ndarray, phones: np.ndarray,
                   rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """households, residents and resident_pii (names and id card numbers drawn from ``rng``, in that order)."""
    n_h = len(hh.size)
    n_residents = len(res.household)
    households = pd.DataFrame({
        "id": np.arange(1, n_h + 1), "code": [f"H{i:07d}" for i in range(1, n_h + 1)],
        "building_id": hh.building + 1, "unit": hh.unit, "floor": hh.floor,
        "room": hh.room.astype(str), "size": hh.size.astype(np.int64)})
    residents = pd.DataFrame({
        "id": np.arange(1, n_residents + 1), "household_id": res.household + 1,
        "building_id": res_building + 1, "sex": res.sex, "birth_year": res.birth_year,
        "is_party_member": res.is_party_member, "flags": res.flags})
    resident_pii = pd.DataFrame({
        "resident_id": np.arange(1, n_residents + 1),
        "name": names.chinese_names(rng, res.sex, res.birth_year),
        "id_card": names.id_card_numbers(rng, res.sex, res.birth_year),
        "phone": phones})
    return households, residents, resident_pii


def _equipment_frames(biz: places.Businesses, eq: places.Equipment,
                      st_rows: np.ndarray) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """businesses and fire_equipment (a piece's station by its code)."""
    n_s = len(biz.kind)
    businesses = _geo({
        "id": np.arange(1, n_s + 1), "code": [f"S{i:06d}" for i in range(1, n_s + 1)],
        "name": biz.name, "kind": biz.kind, "building_id": biz.building + 1,
        "address": biz.address, "is_key_place": biz.is_key_place,
        "has_smart_fire_alarm": biz.has_smart_fire_alarm, "employees": biz.employees,
    }, cast("npt.NDArray[np.object_]", shapely.points(biz.xy)))
    n_e = len(eq.kind)
    fe_code = np.array([f"FE{i:06d}" for i in range(1, n_e + 1)], dtype=object)
    fire_equipment = _geo({
        "id": np.arange(1, n_e + 1), "code": fe_code, "kind": eq.kind, "name": eq.name,
        "status": eq.status, "last_inspected": eq.last_inspected,
        "station_code": np.where(eq.station >= 0, fe_code[st_rows][np.maximum(eq.station, 0)],
                                 None),
        "building_id": _nullable(eq.building), "business_id": _nullable(eq.business),
    }, cast("npt.NDArray[np.object_]", shapely.points(eq.xy)))
    return businesses, fire_equipment


def _team_frames(teams: teams_mod.Teams, members: teams_mod.Members, grid_code_a: np.ndarray, m_sex: np.ndarray,
                 m_birth: np.ndarray, phones: np.ndarray, tz: tzinfo | None,
                 rng: np.random.Generator) -> tuple[gpd.GeoDataFrame, pd.DataFrame, pd.DataFrame]:
    """teams, team_members (names drawn from ``rng``) and grid_staff (primary first, by grid)."""
    n_t = len(teams.kind)
    team_frame = _geo({
        "id": np.arange(1, n_t + 1), "code": [f"T{i:03d}" for i in range(1, n_t + 1)],
        "name": teams.name, "kind": teams.kind, "home_grid_code": grid_code_a[teams.home_grid],
        "skills": teams.skills, "status": teams.status,
        "position_at": pd.DatetimeIndex(teams.position_at).tz_convert(tz),
    }, cast("npt.NDArray[np.object_]", shapely.points(teams.xy)))
    n_mem = len(members.role)
    member_code = np.array([f"M{i:05d}" for i in range(1, n_mem + 1)], dtype=object)
    team_members = pd.DataFrame({
        "id": np.arange(1, n_mem + 1), "code": member_code, "team_id": _nullable(members.team),
        "role": members.role, "name": names.chinese_names(rng, m_sex, m_birth),
        "phone": phones, "is_party_member": members.is_party_member,
        "skills": members.skills})
    staff = np.array(members.grid_staff, dtype=object).reshape(-1, 3)
    staff = staff[np.lexsort((staff[:, 2] != "primary", staff[:, 0].astype(int)))]
    grid_staff = pd.DataFrame({
        "grid_code": grid_code_a[staff[:, 0].astype(int)],
        "member_code": member_code[staff[:, 1].astype(int)], "role": staff[:, 2]})
    return team_frame, team_members, grid_staff


def _check_inputs(edges: gpd.GeoDataFrame, districts: gpd.GeoDataFrame, events_start: datetime,
                  n_grids: int, n_residents: int, n_teams: int, n_events: int) -> None:
    if edges.crs is None or districts.crs is None:
        raise ValueError("edges and districts need a CRS; set it with .set_crs('EPSG:4326')")
    missing = {"adcode", "name"} - set(districts.columns)
    if missing:
        raise ValueError(f"districts lacks column(s) {sorted(missing)}; expected adcode and name")
    if events_start.tzinfo is None or events_start.utcoffset() is None:
        raise ValueError(
            f"events_start={events_start!r} is naive; pass a timezone-aware datetime such as "
            "datetime(2025, 11, 1, tzinfo=ZoneInfo('Asia/Shanghai'))")
    for name, value, low in (("n_grids", n_grids, 1), ("n_residents", n_residents, 1),
                             ("n_teams", n_teams, 5), ("n_events", n_events, 0)):
        if int(value) < low:
            raise ValueError(f"{name}={value} must be at least {low}")


def _multipolygon(geom: shapely.Geometry) -> shapely.MultiPolygon:
    """Valid MultiPolygon without slivers or pinholes (< 1 m²) left over from overlay."""
    parts = shapely.get_parts(shapely.make_valid(geom))
    parts = parts[shapely.get_type_id(parts) == 3]
    parts = shapely.get_parts(shapely.make_valid(shapely.MultiPolygon(list(parts))))
    cleaned = []
    for part in parts[shapely.area(parts) >= 1.0]:
        holes = [r for r in part.interiors if shapely.area(shapely.Polygon(r)) >= 1.0]
        cleaned.append(shapely.Polygon(part.exterior, holes))
    return shapely.MultiPolygon(cleaned)


def _as_multipolygon(geom: shapely.Geometry) -> shapely.MultiPolygon:
    """Valid MultiPolygon of the polygonal parts of ``geom`` (no metric clean-up: any CRS)."""
    if not shapely.is_valid(geom):
        geom = shapely.make_valid(geom)
    parts = shapely.get_parts(geom)
    return shapely.MultiPolygon(list(parts[shapely.get_type_id(parts) == 3]))


def _nullable(index: np.ndarray) -> pd.arrays.IntegerArray:
    """0-based row index with -1 for none -> nullable 1-based id."""
    index = np.asarray(index, dtype=np.int64)
    return pd.arrays.IntegerArray(index + 1, index < 0)


def _geo(columns: dict, geometry: np.ndarray) -> gpd.GeoDataFrame:
    """Frame from EPSG:4549 geometry, converted to EPSG:4326."""
    frame = pd.DataFrame(columns)
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, crs=LOCAL_CRS).values,
                            crs=LOCAL_CRS).to_crs(STORAGE_CRS)


def _parent_district(districts: gpd.GeoDataFrame, street: shapely.Geometry) -> tuple[str, shapely.Geometry]:
    """The district (adcode, polygon in EPSG:4549) that the street overlaps most."""
    dist = districts.copy()
    dist["adcode"] = dist["adcode"].astype(str)
    dist = dist.sort_values("adcode", kind="stable").to_crs(LOCAL_CRS)
    geoms = np.asarray(dist.geometry.values, dtype=object)
    i = int(np.argmax(shapely.area(shapely.intersection(geoms, street))))
    return str(dist["adcode"].iloc[i]), geoms[i]


def _second_street(comm_geom: np.ndarray, comm_pop: np.ndarray, district: shapely.Geometry,
                   street: shapely.Geometry, share: float) -> np.ndarray:
    """Which communities form the second street (a boolean per community; none when ``share`` is 0 or no
    corner qualifies).

    From the community nearest the street's south-east corner, grow a set of adjacent whole communities,
    always adding the candidate nearest that corner, until it holds ``share`` of the residents. Candidates
    lie wholly (99 %) inside ``district`` (both streets share it) and leave the rest connected.
    """
    n = len(comm_geom)
    chosen = np.zeros(n, dtype=bool)
    if share <= 0 or n < 3:
        return chosen
    inside = shapely.area(shapely.intersection(comm_geom, district)) >= 0.99 * shapely.area(comm_geom)
    minx, miny, maxx, _ = shapely.bounds(street).tolist()
    cxy = shapely.get_coordinates(shapely.point_on_surface(comm_geom))
    dist = np.hypot(cxy[:, 0] - maxx, cxy[:, 1] - miny)
    i, j, _ = blocks_mod.adjacency(comm_geom, min_shared_m=1.0)
    nbrs: list[set[int]] = [set() for _ in range(n)]
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        nbrs[a].add(b)
        nbrs[b].add(a)

    def rest_connected(without: np.ndarray) -> bool:
        rest = np.flatnonzero(~without)
        if len(rest) == 0:
            return False
        seen, todo = {int(rest[0])}, [int(rest[0])]
        while todo:
            for m in nbrs[todo.pop()]:
                if not without[m] and m not in seen:
                    seen.add(m)
                    todo.append(m)
        return len(seen) == len(rest)

    want = share * comm_pop.sum()
    for cand in np.argsort(dist, kind="stable"):
        if not inside[cand]:
            continue
        trial = chosen.copy()
        trial[cand] = True
        if rest_connected(trial):
            chosen = trial
            break
    while chosen.any() and comm_pop[chosen].sum() < want:
        touching = {m for c in np.flatnonzero(chosen) for m in nbrs[int(c)]}
        order = sorted((m for m in touching if not chosen[m] and inside[m]), key=lambda m: (dist[m], m))
        for m in order:
            trial = chosen.copy()
            trial[m] = True
            if rest_connected(trial):
                chosen = trial
                break
        else:
            break
    if comm_pop[chosen].sum() < 0.5 * want:  # no corner big enough: one street
        chosen[:] = False
    return chosen


def _areas_frame(districts: gpd.GeoDataFrame, street: shapely.Geometry, comm_geom: np.ndarray,
                 grid_geom: np.ndarray, grid_comm: np.ndarray, comm_code: list[str],
                 comm_zh: list[str], comm_en: list[str], grid_code: list[str],
                 grid_zh: list[str], grid_en: list[str], comm_pop: np.ndarray,
                 grid_pop: np.ndarray, comm_street: np.ndarray) -> gpd.GeoDataFrame:
    """The districts, the street(s), communities and grids. ``street`` is the whole generated street (it picks
    the parent district); ``comm_street`` the street code of each community."""
    dist = districts.to_crs(STORAGE_CRS).copy()
    dist["adcode"] = dist["adcode"].astype(str)
    dist = dist.sort_values("adcode", kind="stable")
    parent, _ = _parent_district(districts, street)
    d_geom = [_as_multipolygon(g) for g in dist.geometry.values]
    d_frame = gpd.GeoDataFrame({
        "code": dist["adcode"].to_numpy(object), "level": "district",
        "name": [_DISTRICT_NAMES.get(c, n) for c, n in zip(dist["adcode"], dist["name"], strict=True)],
        "name_zh": dist["name"].to_numpy(object), "parent_code": None,
        "population": pd.array([None] * len(dist), dtype="Int64"),
    }, geometry=d_geom, crs=STORAGE_CRS)
    streets = [c for c in (SAMPLE_STREET_CODE, SECOND_STREET_CODE) if (comm_street == c).any()]
    street_name = {SAMPLE_STREET_CODE: ("Sample Street (闲林-sized)", "示例街道"),
                   SECOND_STREET_CODE: ("Second Sample Street", "示例二街道")}
    street_geom = [_multipolygon(shapely.union_all(comm_geom[comm_street == c])) for c in streets]
    street_pop = [int(comm_pop[comm_street == c].sum()) for c in streets]
    local = _geo({
        "code": [*streets, *comm_code, *grid_code],
        "level": ["street"] * len(streets) + ["community"] * len(comm_code) + ["grid"] * len(grid_code),
        "name": [street_name[c][0] for c in streets] + [*comm_en, *grid_en],
        "name_zh": [street_name[c][1] for c in streets] + [*comm_zh, *grid_zh],
        "parent_code": [parent] * len(streets) + list(comm_street) + [comm_code[c] for c in grid_comm],
        "population": pd.array([*street_pop, *comm_pop, *grid_pop], dtype="Int64"),
    }, np.array([*street_geom, *comm_geom, *grid_geom], dtype=object))
    local["geometry"] = gpd.GeoSeries([_as_multipolygon(g) for g in local.geometry.values],
                                      crs=STORAGE_CRS).values
    return gpd.GeoDataFrame(pd.concat([d_frame, local], ignore_index=True), crs=STORAGE_CRS)


def _events(n: int, start: datetime, as_of: datetime, fp: blocks_mod.Footprints,
            order: np.ndarray, street: shapely.Geometry, grid_geom: np.ndarray,
            roads: blocks_mod.Roads, res: homes.Residents, res_building: np.ndarray,
            biz: places.Businesses, eq: places.Equipment, teams: teams_mod.Teams,
            typ: np.ndarray, use: np.ndarray, baddr: np.ndarray,
            rng: np.random.Generator) -> pd.DataFrame:
    """Events sorted by report time, with grid index and EPSG:4549 x / y columns."""
    tz = start.tzinfo
    base = pd.Timestamp(start).tz_convert(tz).normalize()
    start_s = (pd.Timestamp(start) - base).total_seconds()
    end_s = start_s + 365 * 86400.0
    days = pd.date_range(base, periods=int(np.ceil(end_s / 86400.0)) + 1, freq="D")
    n_b = len(order)
    pop = np.bincount(res_building, minlength=n_b).astype(float)
    elderly = np.bincount(res_building[res.birth_year <= start.year - 70], minlength=n_b)

    def by_kind(kinds: tuple[str, ...]) -> np.ndarray:
        m = np.isin(biz.kind, kinds)
        return np.bincount(biz.building[m], minlength=n_b).astype(float)
    risky = (typ == "village") + (use == "industrial") + 0.5 * (use == "mixed")
    weights = {
        "fire_hazard": risky + 0.02 * pop + by_kind(("factory", "warehouse", "restaurant")),
        "public_security": 0.01 * pop + 4 * by_kind(("entertainment", "hotel")),
        "fraud": elderly + 0.01 * pop,
        "neighbour_dispute": pop,
        "consumer_dispute": 3 * by_kind(("shop", "market", "hotel", "restaurant")) + 0.005 * pop,
        "food_drug_safety": 3 * by_kind(("restaurant", "market")) + 0.002 * pop,
        "environment": 3 * by_kind(("factory", "restaurant")) + 0.005 * pop,
        "parking": pop ** 1.4,
        "elderly_care": elderly + 0.001 * pop,
    }
    weights = {k: v + 1e-6 for k, v in weights.items()}
    center = fp.center[order]
    chains = roads.lines[shapely.contains(street, shapely.centroid(roads.lines))]
    road_pts = shapely.line_interpolate_point(chains, 0.5, normalized=True)
    road_xy = shapely.get_coordinates(road_pts)
    alarms = np.flatnonzero(eq.kind == "smart_alarm")
    ev = events_mod.sample_events(n, days, start_s, end_s, center, weights, eq.xy[alarms],
                                  eq.building[alarms], road_xy, rng)
    xy, building = ev.xy.copy(), ev.building.copy()
    tree = shapely.STRtree(grid_geom)
    grid = np.full(n, -1, dtype=np.int64)
    for _ in range(4):
        place = np.isnan(xy[:, 0]) & (building >= 0)
        xy[place] = places.points_in_footprints(fp, order[building[place]], rng)
        pi, gi = tree.query(shapely.points(xy), predicate="within")
        grid[:] = -1
        grid[pi[::-1]] = gi[::-1]
        lost = grid < 0
        if not lost.any():
            break
        # Off the street (or on a grid border): take the nearest building instead.
        building[lost] = cKDTree(center).query(np.nan_to_num(xy[lost]))[1]
        xy[lost] = np.nan
    building_for_row = np.where(ev.category == "road_facility", -1, building)
    ev_order = np.lexsort((np.arange(n), ev.reported))
    life = events_mod.lifecycle(ev.channel[ev_order], ev.category[ev_order],
                                ev.reported[ev_order], end_s, rng)
    channel, category = ev.channel[ev_order], ev.category[ev_order]
    xy, grid, building_for_row = xy[ev_order], grid[ev_order], building_for_row[ev_order]
    reported = (base + pd.to_timedelta(ev.reported[ev_order], unit="s")).as_unit("us")
    team = _handling_team(category, xy, grid, teams, eq)
    team[np.isnan(life.dispatched)] = -1
    road, _, _ = places.road_numbers(xy, roads)
    place_text = np.where(building_for_row >= 0, baddr[np.maximum(building_for_row, 0)],
                          road.astype(object) + "附近")
    title, desc = events_mod.texts(category, channel, place_text, rng)
    day = np.asarray(reported.strftime("%Y%m%d"), dtype=object)
    frame = pd.DataFrame({
        "channel": channel, "external_id": events_mod.external_ids(channel, day),
        "category": category, "severity": ev.severity[ev_order], "title": title,
        "description": desc, "reported_at": reported, "grid": grid,
        "building_id": _nullable(building_for_row), "team_id": _nullable(team),
        "status": life.status, "x": xy[:, 0], "y": xy[:, 1]})
    for col in ("dispatched", "accepted", "on_site", "resolved", "closed"):
        frame[f"{col}_at"] = (base + pd.to_timedelta(getattr(life, col), unit="s")).as_unit("us")
    return frame


def _handling_team(category: np.ndarray, xy: np.ndarray, grid: np.ndarray,
                   teams: teams_mod.Teams, eq: places.Equipment) -> np.ndarray:
    """Team row per event: the nearest team of the right kind, else the grid's patrol."""
    team = teams.grid_patrol[grid].copy()
    route = {"fire_hazard": "micro_fire_crew", "public_security": "auxiliary_police",
             "fraud": "auxiliary_police", "neighbour_dispute": "mediation",
             "consumer_dispute": "mediation", "elderly_care": "volunteer"}
    st_rows = np.flatnonzero(eq.kind == "micro_fire_station")
    for cat, kind in route.items():
        rows = np.flatnonzero(teams.kind == kind)
        m = category == cat
        if len(rows) == 0 or not m.any():
            continue
        anchor = eq.xy[st_rows[teams.station[rows]]] if kind == "micro_fire_crew" else teams.xy[rows]
        team[m] = rows[cKDTree(anchor).query(xy[m])[1]]
    return team
