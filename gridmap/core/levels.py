"""Three levels of command (区—街道—社区, district → street → community) and the units behind the escalation
rungs: the vocabulary and the pure rules (no SQL, no HTTP).

* An operator works at one **level** (:data:`OPERATOR_LEVELS`) over one area: a district's operator sees its
  streets, a street's operator the street, a community's operator its grids only. A **unit** member (role
  ``unit``) works for one unit. Who may see what is a :class:`Scope`, resolved from ``areas`` when the
  caller's principal is built and applied in SQL by :mod:`gridmap.storage.scopes`.
* A **unit** is who stands behind a rung of an escalation ladder (分级分流): a community mediation room, a
  street's comprehensive-governance centre, a department stationed in the street (职能部门下沉站所), a mall's
  front desk or floor management, a consumer-rights station (消保站), the district's centre. A rung names a
  unit *kind* (resolved by where the event is: :data:`UNIT_KINDS`) or a unit *code*.
* **Channels** gain the one-door intake of a comprehensive-governance centre (一扇门受理, walk-ins) and a
  director's public hotline; "answered on the spot" closes such an event without dispatch.

Examples
--------
>>> s = Scope("community", "330106900001", streets=frozenset({"330106900"}),
...           communities=frozenset({"330106900001"}))
>>> s.covers("330106900", "330106900001"), s.covers("330106900", "330106900002")
(True, False)
>>> unit_kind_info("community_mediation").name_zh
'社区人民调解室'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridmap.errors import InvalidInput

#: The levels an operator works at, top down.
OPERATOR_LEVELS = ("district", "street", "community")
#: The user column that holds the area of each level.
LEVEL_COLUMNS = {"district": "district_code", "street": "street_code", "community": "community_code"}
#: Area levels from the most specific to the widest (which unit of a kind serves a place first).
AREA_ORDER = ("grid", "community", "street", "district")

@dataclass(frozen=True)
class UnitKind:
    code: str
    name: str
    name_zh: str
    level: str  # the area level such a unit serves: community, street, district, or place (a building)
    mediation: bool = False  # a case is opened when a dispute reaches it


_KINDS = (
    UnitKind("district_centre", "District social-governance centre", "区社会治理中心", "district"),
    UnitKind("fire_brigade", "Fire rescue brigade", "消防救援大队", "district"),
    UnitKind("police_anti_fraud_centre", "Police anti-fraud centre", "公安反诈中心", "district"),
    UnitKind("market_supervision_bureau", "District market supervision bureau", "区市场监管局", "district"),
    UnitKind("urban_management_bureau", "District urban management bureau", "区城管局", "district"),
    UnitKind("traffic_police", "Traffic police squad", "交警中队", "district"),
    UnitKind("municipal_facilities", "Municipal facilities department", "市政设施管理部门", "district"),
    UnitKind("street_centre", "Street comprehensive-governance centre", "街道综治中心", "street"),
    UnitKind("street_mediation", "Street people's mediation committee", "街道人民调解委员会", "street",
             mediation=True),
    UnitKind("fire_safety_office", "Street fire safety office", "街道消防安全办", "street"),
    UnitKind("market_supervision_office", "Market supervision office", "市场监管所", "street"),
    UnitKind("urban_management_office", "Street urban management", "街道城管科", "street"),
    UnitKind("police_station", "Police station", "派出所", "street"),
    UnitKind("civil_affairs_office", "Street civil affairs office", "街道民政科", "street"),
    UnitKind("consumer_rights_station", "Consumer-rights station", "消保站", "street"),
    UnitKind("community_centre", "Community governance station", "社区综治工作站", "community"),
    UnitKind("community_mediation", "Community mediation room", "社区人民调解室", "community", mediation=True),
    UnitKind("mall_merchants", "Mall merchants", "商场商户", "place"),
    UnitKind("mall_front_desk", "Mall front desk", "商场服务台", "place"),
    UnitKind("mall_floor_management", "Mall floor management", "商场楼层管理", "place"),
)
UNIT_KINDS: dict[str, UnitKind] = {k.code: k for k in _KINDS}
MEDIATION_KINDS = tuple(k.code for k in _KINDS if k.mediation)

#: What a unit member does with an event at the unit's rung.
UNIT_ACTIONS = ("take", "ask_info", "settle", "return", "escalate")
#: Of those, the ones where the unit settled the matter itself.
SETTLED_HOW = ("settled",)



def unit_kind_info(kind: str) -> UnitKind:
    """The kind's definition; an unknown kind is an InvalidInput naming the known ones."""
    try:
        return UNIT_KINDS[kind]
    except KeyError:
        raise InvalidInput(f"unknown unit kind {kind!r}", field="kind",
                           fix=f"use one of {', '.join(UNIT_KINDS)}") from None


def is_mediation(kind: str | None) -> bool:
    return kind in MEDIATION_KINDS


@dataclass(frozen=True)
class Scope:
    """What a scoped caller covers: an operator's area (``level`` district/street/community and its ``code``)
    or a unit member's unit (``level`` ``unit``, ``code`` the unit's code, ``area`` the area it serves).

    ``streets`` and ``communities`` are the current codes under the area (resolved from ``areas``), for the
    checks made on one row in Python; lists and aggregates are filtered in SQL (:mod:`gridmap.storage.scopes`)
    by ``area``.
    """

    level: str
    code: str
    streets: frozenset[str] = field(default_factory=frozenset)
    communities: frozenset[str] = field(default_factory=frozenset)
    unit_kind: str | None = None
    unit_area: str | None = None

    @property
    def area(self) -> str | None:
        """The area code reads are confined to (None for a unit: its events are those at its rungs)."""
        return None if self.level == "unit" else self.code

    @property
    def is_unit(self) -> bool:
        return self.level == "unit"

    def covers(self, street: str | None, community: str | None = None) -> bool:
        """Whether a row placed in (street, community) lies inside this operator's area."""
        if self.level == "community":
            return community is not None and community in self.communities
        if self.level in ("street", "district"):
            return street is not None and street in self.streets
        return False

    def describe(self) -> str:
        names = {"district": "district 区", "street": "street 街道", "community": "community 社区", "unit": "unit"}
        return f"your {names.get(self.level, self.level)} {self.code}"
