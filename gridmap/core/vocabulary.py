"""gridmap's vocabulary: every closed set of words the system stores, spelled once.

The database checks each of these sets with a CHECK constraint (the models build theirs from this module;
the shipped migrations spelled them out and are never edited, so ``tests/core/test_vocabulary.py`` compares
the live database's constraints with :data:`CHECKED`). Schemas, SQL, the sample generator and the simulator
import the sets from here: adding a status means editing this module and writing a migration, nothing else.

The time zone every local time is read in (the street's: Asia/Shanghai, no daylight saving) and the CRS of
every stored and served coordinate (WGS 84 longitude/latitude, EPSG:4326) are here too; the projected CRS
that distances are measured in is a setting (:data:`gridmap.config.MEASURE_CRS`).

Examples
--------
>>> "on_site" in OPEN_EVENT_STATUSES, "resolved" in OPEN_EVENT_STATUSES
(True, False)
>>> CHECKED["events", "channel"] == CHANNELS
True
>>> LOCAL_TZ.key
'Asia/Shanghai'
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

# -- time and place -------------------------------------------------------------------------------------
#: The street's time zone: days, months and "local time" on the command line are read in it.
TIME_ZONE = "Asia/Shanghai"
LOCAL_TZ = ZoneInfo(TIME_ZONE)
#: WGS 84 longitude/latitude: every geometry is stored (SRID 4326) and served in it.
WGS84 = "EPSG:4326"
WGS84_SRID = 4326

# -- areas and the registry ------------------------------------------------------------------------------
AREA_LEVELS = ("district", "street", "community", "grid")
BUILDING_USES = ("residential", "commercial", "industrial", "public", "mixed")
BUSINESS_KINDS = (
    "shop", "hotel", "restaurant", "market", "school", "kindergarten", "clinic", "factory", "warehouse",
    "office", "entertainment", "elderly_care",
)
EQUIPMENT_KINDS = ("micro_fire_station", "micro_fire_truck", "hydrant", "extinguisher_cabinet", "smart_alarm")
EQUIPMENT_STATUSES = ("in_service", "faulty", "out_of_service")
SEXES = ("M", "F")
GRID_STAFF_ROLES = ("primary", "assistant")

# -- teams ---------------------------------------------------------------------------------------------------
TEAM_KINDS = ("grid_patrol", "volunteer", "micro_fire_crew", "mediation", "auxiliary_police")
#: A team's status, in the order the dispatcher's compiled kernels number them (0 = available).
TEAM_STATUSES = ("available", "assigned", "on_site", "off_duty")
MEMBER_ROLES = ("grid_worker", "volunteer", "party_volunteer", "micro_fire_crew", "mediator", "auxiliary_police")

# -- events --------------------------------------------------------------------------------------------------
#: The channels events come in through. The first five are the registry's original ones; ``walk_in`` is the
#: one-door intake (一扇门受理) of a comprehensive-governance centre, ``director_hotline`` a street (or
#: district) director's public line.
BASE_CHANNELS = ("hotline_12345", "chat_group", "qr_code", "patrol", "smart_alarm")
NEW_CHANNELS = ("walk_in", "director_hotline")
CHANNELS = (*BASE_CHANNELS, *NEW_CHANNELS)
#: Channels with a person on the other side who can be answered there and then (答复即办结).
ANSWERABLE_CHANNELS = ("hotline_12345", "walk_in", "director_hotline")
CHANNEL_NAMES_ZH = {"hotline_12345": "12345热线", "chat_group": "群聊", "qr_code": "余安码", "patrol": "巡查",
                    "smart_alarm": "智能报警", "walk_in": "一扇门受理", "director_hotline": "主任热线"}
#: An event's status (see :mod:`gridmap.core.lifecycle` for the moves between them).
EVENT_STATUSES = ("reported", "dispatched", "accepted", "on_site", "resolved", "closed")
#: Statuses of an event still being handled (the live map's, the inboxes' and the overdue checks').
OPEN_EVENT_STATUSES = ("reported", "dispatched", "accepted", "on_site")
#: How an event ended, when it did not simply go through the team lifecycle (``events.outcome``).
OUTCOMES = ("answered_on_the_spot", "settled", "agreement", "partial", "litigation")
#: Outcomes that count as resolved (the dispute or request was settled).
RESOLVED_OUTCOMES = ("answered_on_the_spot", "settled", "agreement", "partial")
#: Where an event's location came from (the intake's ``location.source``).
LOCATION_SOURCES = ("wgs84", "gcj02", "building", "address", "place")

# -- assignments (an event offered to a team) ----------------------------------------------------------------
ASSIGNMENT_STATUSES = ("offered", "accepted", "declined", "timeout", "cancelled", "completed")
#: An assignment a team is still working on (it may upload photos, it blocks another offer).
ACTIVE_ASSIGNMENT_STATUSES = ("offered", "accepted")
#: Who took a photo of an event.
PHOTO_SOURCES = ("team", "resident")

# -- escalation rungs, units and mediation --------------------------------------------------------------------
#: How an event left a rung (``event_rung_stints.left_how``).
LEFT_HOW = ("escalated", "auto_escalated", "returned", "settled", "closed", "referred", "reopened")
MEDIATION_CASE_STATUSES = ("open", "closed")
CASE_OUTCOMES = ("agreement", "partial", "failed")
REFERRALS = ("litigation", "department")
PARTY_SIDES = ("applicant", "respondent", "third_party")
PARTY_KINDS = ("person", "business")

# -- people who sign in --------------------------------------------------------------------------------------
USER_ROLES = ("admin", "operator", "planner", "grid_worker", "volunteer", "intake", "unit")
SESSION_KINDS = ("api", "dashboard", "device")

#: (table, column) -> the words its CHECK constraint allows. tests/core/test_vocabulary.py compares it with
#: the migrated database both ways: every set here is checked there, and every enumerated CHECK is here.
CHECKED: dict[tuple[str, str], tuple[str, ...]] = {
    ("areas", "level"): AREA_LEVELS,
    ("buildings", "use"): BUILDING_USES,
    ("businesses", "kind"): BUSINESS_KINDS,
    ("fire_equipment", "kind"): EQUIPMENT_KINDS,
    ("fire_equipment", "status"): EQUIPMENT_STATUSES,
    ("residents", "sex"): SEXES,
    ("grid_staff", "role"): GRID_STAFF_ROLES,
    ("teams", "kind"): TEAM_KINDS,
    ("teams", "status"): TEAM_STATUSES,
    ("team_members", "role"): MEMBER_ROLES,
    ("events", "channel"): CHANNELS,
    ("events", "status"): EVENT_STATUSES,
    ("events", "outcome"): OUTCOMES,
    ("assignments", "status"): ASSIGNMENT_STATUSES,
    ("event_photos", "source"): PHOTO_SOURCES,
    ("event_rung_stints", "left_how"): LEFT_HOW,
    ("mediation_cases", "status"): MEDIATION_CASE_STATUSES,
    ("mediation_cases", "outcome"): CASE_OUTCOMES,
    ("mediation_cases", "referral"): REFERRALS,
    ("mediation_parties", "side"): PARTY_SIDES,
    ("mediation_parties", "kind"): PARTY_KINDS,
    ("users", "role"): USER_ROLES,
    ("sessions", "kind"): SESSION_KINDS,
}
