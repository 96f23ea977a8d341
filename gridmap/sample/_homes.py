"""Building attributes, households and residents of the sample street.

Private helpers of :mod:`gridmap.sample.street`. Buildings get a use, floors, stairwells and a
year from their block's typology; residential floors are then scaled so that the dwellings on
offer match the households to house (about 85 % occupied). Households are drawn into dwellings
without replacement and residents are generated per household member, all vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from gridmap.sample._blocks import BlockPlan, Footprints, Roads

# Household size distribution (1..6), mean about 2.6 persons like Hangzhou's 2020 census.
_HH_SIZE_P = np.array([0.22, 0.30, 0.26, 0.13, 0.06, 0.03])
_TARGET_OCCUPANCY = 0.85
_FLOORS = {  # typology -> (low, high) floors, inclusive
    "tower": (18, 33), "village": (3, 4), "villa": (2, 3), "commercial": (3, 24),
    "industrial": (1, 4), "public": (3, 6),
}
_YEARS = {
    "slab": (1985, 2022), "tower": (2005, 2023), "village": (1990, 2015), "villa": (2000, 2015),
    "commercial": (1998, 2023), "industrial": (1995, 2018), "public": (1990, 2020),
}


@dataclass(frozen=True)
class BuildingAttrs:
    """Per-building attributes (aligned with :class:`Footprints`)."""

    typology: np.ndarray
    use: np.ndarray
    floors: np.ndarray
    height_m: np.ndarray
    units: np.ndarray
    year_built: np.ndarray
    rooms_per_floor: np.ndarray  # dwellings per floor and stairwell (0: no homes)
    home_floor_lo: np.ndarray
    home_floor_hi: np.ndarray

    @property
    def dwellings(self) -> np.ndarray:
        levels = np.maximum(self.home_floor_hi - self.home_floor_lo + 1, 0)
        return self.units * levels * self.rooms_per_floor


def household_sizes(n_residents: int, rng: np.random.Generator) -> np.ndarray:
    """Household sizes (1..6) that add up to exactly ``n_residents``."""
    if n_residents < 1:
        raise ValueError(f"n_residents={n_residents} must be at least 1")
    sizes = rng.choice(np.arange(1, 7), int(n_residents / 2.3) + 16, p=_HH_SIZE_P)
    total = np.cumsum(sizes)
    m = int(np.searchsorted(total, n_residents)) + 1
    sizes = sizes[:m].copy()
    sizes[-1] = n_residents - (total[m - 2] if m > 1 else 0)
    return sizes


def building_attributes(fp: Footprints, plan: BlockPlan, roads: Roads, n_households: int,
                        rng: np.random.Generator) -> BuildingAttrs:
    """Use, floors, height, stairwells, year and dwelling layout of every building."""
    n = len(fp.block)
    typ = plan.typology[fp.block]
    use = np.select(
        [np.isin(typ, ["slab", "tower", "village", "villa"]), typ == "commercial", typ == "industrial"],
        ["residential", "commercial", "industrial"], default="public").astype(object)
    points = shapely.points(fp.center)
    main = np.flatnonzero(roads.ranks >= 2)
    near_main = np.zeros(n, dtype=bool)
    near_main[np.unique(shapely.STRtree(roads.lines[main]).query(
        points, predicate="dwithin", distance=45.0)[0])] = True
    near_any = np.zeros(n, dtype=bool)
    near_any[np.unique(roads.tree.query(points, predicate="dwithin", distance=30.0)[0])] = True
    u = rng.random((n, 4))
    use[np.isin(typ, ["slab", "tower"]) & near_main & (u[:, 0] < 0.45)] = "mixed"
    use[(typ == "village") & near_any & (u[:, 0] < 0.3)] = "mixed"
    use[(typ == "village") & (u[:, 1] < 0.03)] = "industrial"
    use[(typ == "commercial") & (u[:, 1] < 0.15)] = "mixed"
    use[(typ == "industrial") & (u[:, 1] < 0.10)] = "commercial"
    # One kindergarten / community centre in most larger estates.
    estate = np.isin(typ, ["slab", "tower"]) & (use == "residential")
    for b in np.unique(fp.block[estate]):
        members = np.flatnonzero(estate & (fp.block == b))
        if len(members) >= 8 and rng.random() < 0.6:
            use[members[rng.integers(len(members))]] = "public"

    # Slab era is per block: pre-2000 walk-ups (5-7 floors) or newer mid-rises (11-18).
    old_block = rng.random(len(plan.typology)) < 0.45
    old = old_block[fp.block] & (typ == "slab")
    floors = np.empty(n, dtype=np.int64)
    floors[typ == "slab"] = np.where(old[typ == "slab"], rng.integers(5, 8, n)[typ == "slab"],
                                     rng.integers(11, 19, n)[typ == "slab"])
    for t, (lo, hi) in _FLOORS.items():
        m = typ == t
        floors[m] = rng.integers(lo, hi + 1, int(m.sum()))
    low = (typ == "commercial") & (u[:, 2] < 0.3)
    floors[low] = rng.integers(3, 6, int(low.sum()))  # malls and markets are low
    block_year = np.zeros(len(plan.typology), dtype=np.int64)
    for t, (lo, hi) in _YEARS.items():
        m = plan.typology == t
        block_year[m] = rng.integers(lo, hi + 1, int(m.sum()))
    block_year[old_block & (plan.typology == "slab")] = rng.integers(
        1985, 2000, int((old_block & (plan.typology == "slab")).sum()))
    year = block_year[fp.block] + rng.integers(-1, 2, n)

    length = 2.0 * fp.half[:, 0]
    units = np.select(
        [typ == "slab", typ == "tower", np.isin(typ, ["village", "villa"])],
        [np.clip(np.round(length / 17.0), 2, 4), np.where(length > 29.0, 2, 1), 1],
        default=np.clip(np.round(length / 30.0), 1, 4)).astype(np.int64)
    rooms = np.select([typ == "slab", typ == "tower", typ == "village", typ == "villa"],
                      [2, 4, rng.integers(1, 4, n), 1], default=0).astype(np.int64)
    rooms[~np.isin(use, ["residential", "mixed"])] = 0
    rooms[(use == "mixed") & (typ == "commercial")] = 2
    lo = np.where(use == "mixed", 2, 1).astype(np.int64)

    floors = _calibrate_floors(floors, typ, units, rooms, lo, n_households)
    hi = np.where(typ == "villa", 1, floors).astype(np.int64)
    height = floors * 3.0 + rng.normal(0.4, 0.4, n) + np.where(
        np.isin(use, ["commercial", "public", "mixed"]), 1.5, 0.0)
    return BuildingAttrs(
        typology=typ, use=use, floors=floors, height_m=np.round(np.maximum(height, 3.0), 1),
        units=units, year_built=year, rooms_per_floor=rooms, home_floor_lo=lo, home_floor_hi=hi)


def _calibrate_floors(floors: np.ndarray, typ: np.ndarray, units: np.ndarray, rooms: np.ndarray,
                      lo: np.ndarray, n_households: int) -> np.ndarray:
    """Scale slab / tower floors so dwellings ≈ households / occupancy (within realistic caps)."""
    scalable = np.isin(typ, ["slab", "tower"])
    fmin = np.where(typ == "tower", 12, 5)
    fmax = np.where(typ == "tower", 40, 24)

    def scaled(f: float) -> np.ndarray:
        out = floors.copy()
        out[scalable] = np.clip(np.round(floors[scalable] * f), fmin[scalable], fmax[scalable])
        return out

    def capacity(fl: np.ndarray) -> int:
        hi = np.where(typ == "villa", 1, fl)
        return int(np.sum(units * np.maximum(hi - lo + 1, 0) * rooms))

    want = n_households / _TARGET_OCCUPANCY
    a, b = 0.3, 4.0
    for _ in range(40):
        mid = (a + b) / 2
        a, b = (mid, b) if capacity(scaled(mid)) < want else (a, mid)
    out = scaled(b)
    if capacity(out) < n_households:
        raise ValueError(
            f"{n_households} households do not fit in the {capacity(out)} dwellings the street can "
            "hold; lower n_residents")
    return out


@dataclass(frozen=True)
class Households:
    building: np.ndarray  # building index (0-based, footprint order)
    unit: np.ndarray
    floor: np.ndarray
    room: np.ndarray  # object array of text room numbers
    size: np.ndarray


def allocate_households(attrs: BuildingAttrs, sizes: np.ndarray,
                        rng: np.random.Generator) -> Households:
    """Put each household into a distinct dwelling (building, unit, floor, room)."""
    count = attrs.dwellings
    start = np.concatenate([[0], np.cumsum(count)])
    pick = np.sort(rng.choice(int(start[-1]), len(sizes), replace=False))
    b = np.searchsorted(start, pick, side="right") - 1
    local = pick - start[b]
    per_unit = (attrs.home_floor_hi[b] - attrs.home_floor_lo[b] + 1) * attrs.rooms_per_floor[b]
    unit = local // per_unit + 1
    rem = local % per_unit
    floor = attrs.home_floor_lo[b] + rem // attrs.rooms_per_floor[b]
    room_no = rem % attrs.rooms_per_floor[b] + 1
    room = np.char.add(floor.astype(str), np.char.zfill(room_no.astype(str), 2)).astype(object)
    return Households(b, unit.astype(np.int64), floor.astype(np.int64), room,
                      rng.permutation(sizes))


@dataclass(frozen=True)
class Residents:
    household: np.ndarray  # household index (0-based)
    sex: np.ndarray
    birth_year: np.ndarray
    is_party_member: np.ndarray
    flags: list[list[str]]


def make_residents(hh: Households, typology: np.ndarray, ref_year: int,
                   rng: np.random.Generator) -> Residents:
    """One row per household member: sex, birth year, party membership and care flags."""
    n = int(hh.size.sum())
    h = np.repeat(np.arange(len(hh.size)), hh.size)
    first = np.concatenate([[0], np.cumsum(hh.size)[:-1]])
    member = np.arange(n) - np.repeat(first, hh.size)
    renter = typology[hh.building] == "village"
    head_age = np.where(renter, rng.normal(36, 11, len(hh.size)), rng.normal(50, 15, len(hh.size)))
    head_age = np.clip(np.round(head_age), 20, 95).astype(np.int64)
    single_old = (hh.size == 1) & (rng.random(len(hh.size)) < 0.35)
    head_age[single_old] = rng.integers(68, 96, int(single_old.sum()))
    ha = head_age[h]
    u = rng.random((n, 4))
    age = ha.copy()
    spouse = member == 1
    age[spouse] = np.clip(ha[spouse] + np.round(rng.normal(-2, 3, int(spouse.sum()))), 18, 98)
    other = member >= 2
    young_head = ha < 60
    child = other & young_head & (u[:, 0] < 0.8)
    parent = other & young_head & ~child
    adult_child = other & ~young_head & (u[:, 0] < 0.6)
    grandchild = other & ~young_head & ~adult_child
    age[child] = np.clip(ha[child] - rng.integers(22, 38, n)[child], 0, None)
    age[parent] = np.clip(ha[parent] + rng.integers(22, 32, n)[parent], 0, 100)
    age[adult_child] = np.clip(ha[adult_child] - rng.integers(24, 34, n)[adult_child], 0, None)
    age[grandchild] = np.clip(ha[grandchild] - rng.integers(48, 62, n)[grandchild], 0, None)
    head_male = rng.random(len(hh.size)) < 0.6
    male = np.where(member == 0, head_male[h], u[:, 1] < 0.5)
    male[spouse] = ~head_male[h][spouse] ^ (u[spouse, 1] < 0.03)
    adult = age >= 18
    party = adult & (u[:, 2] < np.where(age >= 60, 0.14, 0.08))

    elderly_alone = (hh.size[h] == 1) & (age >= 70) & (u[:, 3] < 0.85)
    disabled = rng.random(n) < 0.015 + 0.03 * (age >= 75)
    low_income = rng.random(n) < 0.012
    key_care = rng.random(n) < 0.004
    flags: list[list[str]] = [[] for _ in range(n)]
    for name, mask in (("elderly_alone", elderly_alone), ("disabled", disabled),
                       ("low_income", low_income), ("key_care", key_care)):
        for i in np.flatnonzero(mask):
            flags[i].append(name)
    return Residents(h, np.where(male, "M", "F").astype(object), (ref_year - age).astype(np.int64),
                     party, flags)
