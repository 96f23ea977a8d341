"""Building names and addresses, businesses and fire equipment of the sample street.

Private helpers of :mod:`gridmap.sample.street` (EPSG:4549 metres throughout). Addresses take
the street name of the nearest named OSM road and a house number from the position along that
road (odd numbers on the left, even on the right, about one number pair per 30 m), shared by the
buildings of one estate that face the same road, like "文一西路188号3幢".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from gridmap.sample import _names as names
from gridmap.sample._blocks import Footprints, Roads, to_world

KEY_PLACE_KINDS = ("hotel", "school", "kindergarten", "market", "elderly_care", "entertainment")
_KINDS_BY_USE = {
    "commercial": (("shop", .28), ("restaurant", .22), ("office", .25), ("hotel", .06),
                   ("entertainment", .07), ("clinic", .04), ("market", .03), ("warehouse", .03),
                   ("elderly_care", .01), ("kindergarten", .01)),
    "mixed": (("shop", .45), ("restaurant", .35), ("clinic", .05), ("entertainment", .07),
              ("hotel", .04), ("elderly_care", .02), ("market", .02)),
    "industrial": (("factory", .65), ("warehouse", .30), ("office", .05)),
}
_CAMPUS = (("school", .35), ("kindergarten", .25), ("clinic", .15), ("elderly_care", .15),
           ("office", .10))
_EMPLOYEES = {  # lognormal median and cap
    "shop": (3, 15), "restaurant": (8, 40), "hotel": (25, 150), "market": (40, 150),
    "school": (80, 200), "kindergarten": (20, 50), "clinic": (8, 60), "factory": (45, 800),
    "warehouse": (12, 80), "office": (20, 300), "entertainment": (12, 60), "elderly_care": (20, 80),
}
_HAMLET_SUFFIXES = ("家埭", "家村", "家坞", "家桥", "家弄", "家湾")


def _choice(rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    labels, p = zip(*table, strict=True)
    return np.asarray(labels, dtype=object)[rng.choice(len(labels), n, p=np.asarray(p) / sum(p))]


def points_in_footprints(fp: Footprints, b: np.ndarray, rng: np.random.Generator,
                         spread: float = 0.8) -> np.ndarray:
    """Random points strictly inside the footprints of buildings ``b`` (EPSG:4549)."""
    uv = rng.uniform(-spread, spread, (len(b), 2)) * fp.half[b]
    return to_world(uv, fp.center[b], fp.angle[b])


def road_numbers(xy: np.ndarray, roads: Roads) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest named road, house number and distance to it for each point."""
    pts = cast("npt.NDArray[np.object_]", shapely.points(xy))
    inp, hit = roads.named_tree.query_nearest(pts, all_matches=False)
    road = roads.names[roads.named_index[hit[np.argsort(inp)]]]
    number = np.zeros(len(xy), dtype=np.int64)
    dist = np.zeros(len(xy))
    for name in sorted(set(road)):
        m = road == name
        line = roads.merged[name]
        d = shapely.line_locate_point(line, pts[m])
        a = shapely.get_coordinates(shapely.line_interpolate_point(line, d))
        b = shapely.get_coordinates(shapely.line_interpolate_point(line, d + 1.0))
        t, r = b - a, xy[m] - a
        right = (t[:, 0] * r[:, 1] - t[:, 1] * r[:, 0]) < 0
        number[m] = 2 * (d // 30.0).astype(np.int64) + 1 + right
        dist[m] = np.hypot(*r.T)
    return road, number, dist


def campus_kinds(n_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """The institution (school, clinic...) that a public block would hold."""
    return _choice(rng, _CAMPUS, n_blocks)


def building_labels(fp: Footprints, typology: np.ndarray, order: np.ndarray, roads: Roads,
                    campus: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Names and addresses of buildings (in final ``order``), plus each block's name.

    Public blocks are named after their institution (``campus`` kind per block).
    """
    n_blocks = len(campus)
    block_typ = np.full(n_blocks, "green", dtype=object)
    block_typ[fp.block] = typology
    block_name = names.estate_names(rng, n_blocks)
    commercial = block_typ == "commercial"
    block_name[commercial] = names.commercial_names(rng, int(commercial.sum()))
    industrial = block_typ == "industrial"
    block_name[industrial] = np.char.add(
        names.commercial_names(rng, int(industrial.sum())).astype(str).astype("U2"), "工业园")
    public = block_typ == "public"
    words = names.estate_names(rng, int(public.sum())).astype(str).astype("U2").astype(object)
    block_name[public] = names.business_names(rng, campus[public], words)
    village = block_typ == "village"
    surnames = np.array(["沈", "陈", "王", "徐", "俞", "金", "朱", "吴", "方", "楼", "钱", "孙"])
    block_name[village] = (surnames[rng.integers(0, len(surnames), int(village.sum()))].astype(object)
                           + np.asarray(_HAMLET_SUFFIXES, dtype=object)[
                               rng.integers(0, len(_HAMLET_SUFFIXES), int(village.sum()))])

    frame = pd.DataFrame({"block": fp.block[order], "typ": typology[order]})
    seq = frame.groupby("block").cumcount().to_numpy() + 1
    road, number, dist = road_numbers(fp.center[order], roads)
    frame["road"], frame["number"], frame["dist"] = road, number, dist
    # An estate facing one road shares the number of its building closest to that road.
    closest = frame.sort_values(["block", "road", "dist"], kind="stable").groupby(
        ["block", "road"])["number"].transform("first")
    compound = closest.reindex(frame.index).to_numpy()
    typ = frame["typ"].to_numpy()
    unit_word = np.select([typ == "village", np.isin(typ, ["slab", "tower", "villa"])],
                          ["号", "幢"], default="号楼")
    bname = block_name[fp.block[order]].astype(object)
    label = bname + seq.astype(str).astype(object) + unit_word.astype(object)
    address = (road.astype(object) + compound.astype(str).astype(object) + "号"
               + seq.astype(str).astype(object) + "幢")
    return label, address, block_name


@dataclass(frozen=True)
class Businesses:
    building: np.ndarray  # building position in final order
    kind: np.ndarray
    name: np.ndarray
    address: np.ndarray
    is_key_place: np.ndarray
    has_smart_fire_alarm: np.ndarray
    employees: np.ndarray
    xy: np.ndarray


def make_businesses(fp: Footprints, order: np.ndarray, use: np.ndarray, floors: np.ndarray,
                    units: np.ndarray, typology: np.ndarray, address: np.ndarray,
                    campus: np.ndarray, block_name: np.ndarray, estate_word: np.ndarray,
                    target: int, rng: np.random.Generator) -> Businesses:
    """Shops, offices, factories, schools... placed in the buildings (arrays in final order).

    Shops per commercial or mixed building follow its floor area / stairwells, scaled so that
    the street has about ``target`` businesses in all.
    """
    n = len(order)
    area = 4.0 * fp.half[order, 0] * fp.half[order, 1]
    retail = np.select([use == "commercial", use == "mixed"],
                       [area * floors / 700.0, units * 3.0], default=0.0)
    fixed = np.select([use == "industrial", use == "public"], [rng.integers(1, 5, n), 1], default=0)
    cap_n = np.where(use == "commercial", 60, 10)

    def retail_count(f: float) -> np.ndarray:
        return np.where(retail > 0, np.clip(np.round(retail * f), 1, cap_n), 0)

    a, b = 0.02, 20.0
    for _ in range(50):
        mid = (a + b) / 2
        a, b = (mid, b) if retail_count(mid).sum() + fixed.sum() < target else (a, mid)
    count = (retail_count(b) + fixed).astype(np.int64)
    block = fp.block[order]
    # Campuses: one institution per public block, in its first building.
    in_campus = (use == "public") & (typology == "public")
    first = np.zeros(n, dtype=bool)
    first[np.unique(block, return_index=True)[1]] = True
    count[in_campus & ~first] = 0
    b = np.repeat(np.arange(n), count)
    k = np.arange(len(b)) - np.repeat(np.cumsum(count) - count, count)
    kind = np.empty(len(b), dtype=object)
    for u, table in _KINDS_BY_USE.items():
        m = use[b] == u
        kind[m] = _choice(rng, table, int(m.sum()))
    public = use[b] == "public"
    kind[public] = _choice(rng, (("kindergarten", .5), ("elderly_care", .3), ("clinic", .2)),
                           int(public.sum()))
    at_campus = in_campus[b]
    kind[at_campus] = campus[block[b][at_campus]]

    median = np.array([_EMPLOYEES[x][0] for x in kind], dtype=float)
    cap = np.array([_EMPLOYEES[x][1] for x in kind], dtype=float)
    employees = np.clip(np.round(median * rng.lognormal(0.0, 0.6, len(b))), 1, cap).astype(np.int64)
    key = np.isin(kind, KEY_PLACE_KINDS) | ((kind == "factory") & (employees >= 100))
    p_alarm = np.select([kind == "hotel", key, kind == "restaurant", kind == "shop"],
                        [0.9, 0.8, 0.35, 0.15], default=0.1)
    alarm = rng.random(len(b)) < p_alarm
    name = names.business_names(rng, kind, estate_word[b])
    name[at_campus] = block_name[block[b][at_campus]]
    suffix = np.select(
        [use[b] == "commercial", use[b] == "mixed"],
        [np.char.add(np.char.add((k // 4 + 1).astype(str), "层"),
                     np.char.add(np.char.zfill((k % 4 + 1).astype(str), 2), "室")),
         np.char.add(np.char.add("底商", (k + 1).astype(str)), "号")], default="").astype(object)
    xy = points_in_footprints(fp, order[b], rng)
    return Businesses(b, kind, name, address[b] + suffix, key, alarm, employees, xy)


@dataclass(frozen=True)
class Equipment:
    kind: np.ndarray
    name: np.ndarray
    status: np.ndarray
    last_inspected: np.ndarray  # object array of datetime.date
    station: np.ndarray  # row index of the station a truck belongs to, -1 otherwise
    building: np.ndarray  # building position in final order, -1 if none
    business: np.ndarray  # business row, -1 if none
    xy: np.ndarray


def make_fire_equipment(fp: Footprints, order: np.ndarray, use: np.ndarray, floors: np.ndarray,
                        estate: np.ndarray, bname: np.ndarray, b_comm: np.ndarray,
                        comm_xy: np.ndarray,
                        comm_zh: list[str], comm_pop: np.ndarray, biz: Businesses, roads: Roads,
                        street: shapely.Geometry, as_of: date,
                        rng: np.random.Generator) -> Equipment:
    """Micro fire stations, their trucks, hydrants, extinguisher cabinets and smart alarms."""
    center = fp.center[order]
    rows: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("kind", "name", "station", "building", "business", "xy")}

    def add(kind: str, name: Sequence[str] | np.ndarray, building: npt.ArrayLike, business: npt.ArrayLike,
            xy: npt.ArrayLike, station: npt.ArrayLike | None = None) -> None:
        m = len(name)
        rows["kind"].append(np.full(m, kind, dtype=object))
        rows["name"].append(np.asarray(name, dtype=object))
        rows["building"].append(np.asarray(building, dtype=np.int64))
        rows["business"].append(np.asarray(business, dtype=np.int64))
        rows["xy"].append(np.asarray(xy, dtype=float).reshape(-1, 2))
        rows["station"].append(np.full(m, -1) if station is None else np.asarray(station))

    # 1. One station per community, in the non-industrial building nearest its centre.
    host = np.isin(use, ["public", "mixed", "commercial", "residential"])
    st_building = []
    for c in range(len(comm_zh)):
        cand = np.flatnonzero((b_comm == c) & host)
        if len(cand) == 0:
            cand = np.flatnonzero(b_comm == c)
        st_building.append(int(cand[np.argmin(np.hypot(*(center[cand] - comm_xy[c]).T))]))
    st_business = [-1] * len(st_building)
    st_name = [f"{z}微型消防站" for z in comm_zh]
    # ... plus stations at the biggest key places (about 8 for Xianlin's 22 communities).
    n_extra = max(1, int(round(len(comm_zh) * 8 / 22)))
    key = np.flatnonzero(biz.is_key_place & ~np.isin(biz.building, st_building))
    key = key[np.lexsort((key, -biz.employees[key]))]
    chosen: list[int] = []
    for i in key:
        if biz.building[i] not in [biz.building[j] for j in chosen]:
            chosen.append(int(i))
        if len(chosen) == n_extra:
            break
    st_building += [int(biz.building[i]) for i in chosen]
    st_business += chosen
    st_name += [f"{biz.name[i]}微型消防站" for i in chosen]
    st_xy = points_in_footprints(fp, order[np.array(st_building)], rng, spread=0.5)
    add("micro_fire_station", st_name, st_building, st_business, st_xy)

    # 2. Trucks: one per station, a second at the most populous communities' stations.
    n_st = len(st_building)
    n_second = int(round(n_st / 3))
    second = np.argsort(-comm_pop, kind="stable")[:n_second]
    station = np.sort(np.r_[np.arange(n_st), second])
    nth = np.r_[0, (station[1:] == station[:-1]).astype(int)] + 1
    ang = rng.uniform(0, 2 * np.pi, len(station))
    dist = rng.uniform(3.0, 8.0, len(station))
    truck_xy = st_xy[station] + np.c_[np.cos(ang), np.sin(ang)] * dist[:, None]
    add("micro_fire_truck", [f"{st_name[s]}消防车{k}号" for s, k in zip(station, nth, strict=True)],
        np.full(len(station), -1), np.full(len(station), -1), truck_xy, station)

    # 3. Hydrants every 100-150 m along road chains, 3 m off the centreline, inside the street.
    chains = shapely.get_parts(shapely.line_merge(shapely.union_all(roads.lines)))
    length = shapely.length(chains)
    spacing = rng.uniform(100.0, 150.0, len(chains))
    phase = rng.uniform(0.0, 1.0, len(chains)) * spacing
    per = np.maximum(np.floor((length - phase) / spacing).astype(np.int64) + 1, 0)
    ci = np.repeat(np.arange(len(chains)), per)
    d = phase[ci] + (np.arange(len(ci)) - np.repeat(np.cumsum(per) - per, per)) * spacing[ci]
    p0 = shapely.get_coordinates(shapely.line_interpolate_point(chains[ci], d))
    p1 = shapely.get_coordinates(shapely.line_interpolate_point(chains[ci], d + 1.0))
    t = (p1 - p0) / np.maximum(np.hypot(*(p1 - p0).T), 1e-9)[:, None]
    side = np.where(rng.random(len(ci)) < 0.5, 3.0, -3.0)
    hyd_xy = p0 + np.c_[-t[:, 1], t[:, 0]] * side[:, None]
    inside = shapely.contains_xy(street, hyd_xy[:, 0], hyd_xy[:, 1])
    hyd_xy = hyd_xy[inside]
    road, _, _ = road_numbers(hyd_xy, roads)
    seq = pd.Series(road).groupby(road).cumcount().to_numpy() + 1
    add("hydrant", [f"{r}消火栓{k:03d}" for r, k in zip(road, seq, strict=True)], np.full(len(hyd_xy), -1),
        np.full(len(hyd_xy), -1), hyd_xy)

    # 4. Extinguisher cabinets in the blocks of flats of residential estates.
    cab = np.flatnonzero(np.isin(use, ["residential", "mixed"]) & estate
                         & (rng.random(len(use)) < 0.9))
    add("extinguisher_cabinet", [f"{bname[i]}消防器材箱" for i in cab], cab, np.full(len(cab), -1),
        points_in_footprints(fp, order[cab], rng, spread=0.9))

    # 5. One smart smoke alarm per business that has one.
    al = np.flatnonzero(biz.has_smart_fire_alarm)
    jitter = rng.uniform(-0.5, 0.5, (len(al), 2))
    al_xy = biz.xy[al] + jitter
    add("smart_alarm", [f"{biz.name[i]}智慧烟感" for i in al], biz.building[al], al, al_xy)

    kind = np.concatenate(rows["kind"])
    n = len(kind)
    status = _choice(rng, (("in_service", .92), ("faulty", .05), ("out_of_service", .03)), n)
    days = rng.integers(0, 365, n)
    inspected = np.array([as_of - timedelta(days=int(x)) for x in days], dtype=object)
    return Equipment(kind, np.concatenate(rows["name"]), status, inspected,
                     np.concatenate(rows["station"]), np.concatenate(rows["building"]),
                     np.concatenate(rows["business"]), np.concatenate(rows["xy"]))
