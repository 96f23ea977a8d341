"""The spatial registry: SQLAlchemy 2 models with GeoAlchemy2 geometry columns (EPSG:4326).

Tables are created only by the Alembic migrations in ``gridmap/storage/migrations``; these classes
describe them for queries. Conventions:

* every geometry column is SRID 4326 with a GiST index; polygons are stored as MULTIPOLYGON;
* every registry table has a surrogate ``id`` and a stable natural key ``code`` (what loads upsert on);
* administrative areas are *versioned*: a redrawn grid gets a new row with a new ``valid_from`` and the
  old row is closed with ``valid_to``; events point at the exact row (``grid_area_id``) they fell in;
* personal data of residents lives apart, in ``resident_pii``; every column that holds personal data
  carries ``info={"sensitive": True}`` and is left out of default reads and of every export.
"""

from __future__ import annotations

import datetime as dt
import uuid

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gridmap.core.vocabulary import (
    ACTIVE_ASSIGNMENT_STATUSES,
    AREA_LEVELS,
    ASSIGNMENT_STATUSES,
    BUILDING_USES,
    BUSINESS_KINDS,
    CHANNELS,
    EQUIPMENT_KINDS,
    EQUIPMENT_STATUSES,
    EVENT_STATUSES,
    GRID_STAFF_ROLES,
    MEMBER_ROLES,
    OPEN_EVENT_STATUSES,
    OUTCOMES,
    SESSION_KINDS,
    SEXES,
    TEAM_KINDS,
    TEAM_STATUSES,
    USER_ROLES,
    WGS84_SRID,
)

SRID = WGS84_SRID

SENSITIVE = {"sensitive": True}

# Deterministic constraint names, so that migrations can name what they drop.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Area(Base):
    """A district (区), street (街道), community/village (社区/村) or grid (网格), one row per boundary version."""

    __tablename__ = "areas"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, nullable=False)
    level: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    name_zh: Mapped[str | None] = mapped_column(Text)
    parent_code: Mapped[str | None] = mapped_column(Text)
    population: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("'2000-01-01 00:00+08'")
    )
    valid_to: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    geom: Mapped[WKBElement] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID), nullable=False)
    __table_args__ = (
        CheckConstraint(_in("level", AREA_LEVELS), name="level"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity"),
        UniqueConstraint("code", "valid_from", name="uq_areas_code_valid_from"),
        Index("ix_areas_current", "level", "code", unique=True, postgresql_where=text("valid_to IS NULL")),
        # Two versions of one area may never be valid at the same instant (needs btree_gist).
        ExcludeConstraint(
            (text("code"), "="), (text("tstzrange(valid_from, valid_to)"), "&&"),
            using="gist", name="ex_areas_code_validity",
        ),
    )


class Building(Base):
    __tablename__ = "buildings"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    floors: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    height_m: Mapped[float | None] = mapped_column(Double)
    use: Mapped[str] = mapped_column(Text, nullable=False)
    units: Mapped[int | None] = mapped_column(SmallInteger)
    year_built: Mapped[int | None] = mapped_column(SmallInteger)
    community_code: Mapped[str | None] = mapped_column(Text, index=True)
    grid_code: Mapped[str | None] = mapped_column(Text, index=True)
    geom: Mapped[WKBElement] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID), nullable=False)
    __table_args__ = (
        CheckConstraint(_in("use", BUILDING_USES), name="use"),
        CheckConstraint("floors BETWEEN 1 AND 200", name="floors"),
    )


class Household(Base):
    __tablename__ = "households"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False, index=True)
    unit: Mapped[int | None] = mapped_column(SmallInteger)
    floor: Mapped[int | None] = mapped_column(SmallInteger)
    room: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(SmallInteger, nullable=False)


class Resident(Base):
    """A resident, without personal data (that is in :class:`ResidentPII`)."""

    __tablename__ = "residents"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    household_id: Mapped[int] = mapped_column(
        ForeignKey("households.id", ondelete="CASCADE"), nullable=False, index=True
    )
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False, index=True)
    sex: Mapped[str | None] = mapped_column(Text)
    birth_year: Mapped[int | None] = mapped_column(SmallInteger)
    is_party_member: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    __table_args__ = (CheckConstraint(_in("sex", SEXES), name="sex"),)


class ResidentPII(Base):
    """Personal data of a resident: name, ID-card number, phone. Never in default reads or exports."""

    __tablename__ = "resident_pii"
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, info=SENSITIVE)
    id_card: Mapped[str | None] = mapped_column(Text, unique=True, info=SENSITIVE)
    phone: Mapped[str | None] = mapped_column(Text, info=SENSITIVE)


class PIIAccess(Base):
    """Append-only log of every read of personal data."""

    __tablename__ = "pii_access_log"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    purpose: Mapped[str] = mapped_column(Text, nullable=False)
    table_name: Mapped[str] = mapped_column(Text, nullable=False)
    row_count: Mapped[int] = mapped_column(Integer, nullable=False)
    detail: Mapped[dict | None] = mapped_column(JSONB)


class Business(Base):
    """A business or place inside a building (shop, hotel, school, …), with key-place flags."""

    __tablename__ = "businesses"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="SET NULL"), index=True)
    address: Mapped[str | None] = mapped_column(Text)
    is_key_place: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    has_smart_fire_alarm: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    employees: Mapped[int | None] = mapped_column(Integer)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=SRID), nullable=False)
    __table_args__ = (CheckConstraint(_in("kind", BUSINESS_KINDS), name="kind"),)


class FireEquipment(Base):
    """Micro fire stations (微型消防站), micro fire trucks, hydrants, extinguisher cabinets, smart alarms."""

    __tablename__ = "fire_equipment"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'in_service'"))
    last_inspected: Mapped[dt.date | None] = mapped_column(Date)
    station_code: Mapped[str | None] = mapped_column(Text)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="SET NULL"), index=True)
    business_id: Mapped[int | None] = mapped_column(ForeignKey("businesses.id", ondelete="SET NULL"), index=True)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=SRID), nullable=False)
    __table_args__ = (
        CheckConstraint(_in("kind", EQUIPMENT_KINDS), name="kind"),
        CheckConstraint(_in("status", EQUIPMENT_STATUSES), name="status"),
        Index("ix_fire_equipment_kind_status", "kind", "status"),
    )


class Team(Base):
    """A patrol team with its last known position (``geom`` at ``position_at``)."""

    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    home_grid_code: Mapped[str | None] = mapped_column(Text, index=True)
    skills: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'available'"))
    position_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    geom: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=SRID))
    # added by the field app (migration 0006): the reported accuracy of the last fix, in metres
    position_accuracy_m: Mapped[float | None] = mapped_column(Double)
    __table_args__ = (
        CheckConstraint(_in("kind", TEAM_KINDS), name="kind"),
        CheckConstraint(_in("status", TEAM_STATUSES), name="status"),
    )


class TeamMember(Base):
    __tablename__ = "team_members"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    phone: Mapped[str | None] = mapped_column(Text, info=SENSITIVE)
    is_party_member: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    skills: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    __table_args__ = (CheckConstraint(_in("role", MEMBER_ROLES), name="role"),)


class GridStaff(Base):
    """The grid worker(s) of a grid (by grid code: staff stay with a grid across boundary versions)."""

    __tablename__ = "grid_staff"
    grid_code: Mapped[str] = mapped_column(Text, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("team_members.id", ondelete="CASCADE"), primary_key=True,
                                           index=True)
    role: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'primary'"))
    __table_args__ = (CheckConstraint(_in("role", GRID_STAFF_ROLES), name="role"),)


class RoadNode(Base):
    __tablename__ = "road_nodes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    street_count: Mapped[int | None] = mapped_column(SmallInteger)
    highway: Mapped[str | None] = mapped_column(Text)
    ref: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=SRID), nullable=False)


class RoadEdge(Base):
    """A *directed* road edge (a two-way street is two rows). ``cost``/``reverse_cost`` are for pgRouting."""

    __tablename__ = "road_edges"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source: Mapped[int] = mapped_column(ForeignKey("road_nodes.id", ondelete="CASCADE"), nullable=False, index=True)
    target: Mapped[int] = mapped_column(ForeignKey("road_nodes.id", ondelete="CASCADE"), nullable=False, index=True)
    key: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("0"))
    osm_id: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    highway: Mapped[str | None] = mapped_column(Text)
    lanes: Mapped[str | None] = mapped_column(Text)
    oneway: Mapped[bool] = mapped_column(Boolean, nullable=False)
    length_m: Mapped[float] = mapped_column(Double, nullable=False)
    speed_kph: Mapped[float] = mapped_column(Double, nullable=False)
    travel_time_s: Mapped[float] = mapped_column(Double, nullable=False)
    geom: Mapped[WKBElement] = mapped_column(Geometry("LINESTRING", srid=SRID), nullable=False)
    __table_args__ = (
        UniqueConstraint("source", "target", "key", name="uq_road_edges_source_target_key"),
        CheckConstraint("length_m >= 0 AND speed_kph > 0 AND travel_time_s >= 0", name="positive"),
    )


class EventCategory(Base):
    """Event categories and the skills a responder needs (configurable data, seeded by the migration)."""

    __tablename__ = "event_categories"
    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    name_zh: Mapped[str] = mapped_column(Text, nullable=False)
    skills: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    default_severity: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("2"))


class Event(Base):
    """An incident from any channel. The events issue adds the lifecycle tables; the columns here hold
    the milestones of the past year's events."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    channel: Mapped[str] = mapped_column(Text, nullable=False)
    external_id: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(ForeignKey("event_categories.code"), nullable=False, index=True)
    severity: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("2"))
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    street_code: Mapped[str | None] = mapped_column(Text)
    community_code: Mapped[str | None] = mapped_column(Text)
    grid_code: Mapped[str | None] = mapped_column(Text, index=True)
    grid_area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="SET NULL"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'reported'"))
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    on_site_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=SRID), nullable=False)
    # added by the events API (migration 0003)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"), index=True)
    location_source: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    place_code: Mapped[str | None] = mapped_column(Text)
    escalation_rung: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("0"))
    rung_started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    intake_sha256: Mapped[str | None] = mapped_column(Text)
    # added by the levels of command (migration 0008): the unit holding the event now, and how it ended
    unit_code: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(f"outcome IS NULL OR {_in('outcome', OUTCOMES)}", name="outcome"),
        CheckConstraint(_in("status", EVENT_STATUSES), name="status"),
        CheckConstraint("severity BETWEEN 1 AND 4", name="severity"),
        UniqueConstraint("channel", "external_id", name="uq_events_channel_external_id"),
    )


class LoadBatch(Base):
    """One bulk load: what came in, what was written, what was refused."""

    __tablename__ = "load_batches"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    layer: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str | None] = mapped_column(Text)
    source_crs: Mapped[str | None] = mapped_column(Text)
    rows_in: Mapped[int] = mapped_column(Integer, nullable=False)
    inserted: Mapped[int] = mapped_column(Integer, nullable=False)
    updated: Mapped[int] = mapped_column(Integer, nullable=False)
    unchanged: Mapped[int] = mapped_column(Integer, nullable=False)
    repaired: Mapped[int] = mapped_column(Integer, nullable=False)
    outside_area: Mapped[int] = mapped_column(Integer, nullable=False)
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class DatasetInfo(Base):
    """Key/value facts about what is loaded (e.g. the sample street's seed and counts)."""

    __tablename__ = "dataset_info"
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[dict] = mapped_column(JSONB, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


ACTIVE_ASSIGNMENT = _in("status", ACTIVE_ASSIGNMENT_STATUSES)


class Assignment(Base):
    """An event offered to a team. At most one active (offered/accepted) assignment per team and per
    event: the database enforces it with partial unique indexes, so no team is ever double-booked."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'offered'"))
    rank: Mapped[int | None] = mapped_column(SmallInteger)
    eta_s: Mapped[float | None] = mapped_column(Double)
    distance_m: Mapped[float | None] = mapped_column(Double)
    method: Mapped[str | None] = mapped_column(Text)
    explanation: Mapped[dict | None] = mapped_column(JSONB)
    offered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    respond_by: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    responded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    route: Mapped[WKBElement | None] = mapped_column(Geometry("LINESTRING", srid=SRID))
    __table_args__ = (
        CheckConstraint(_in("status", ASSIGNMENT_STATUSES), name="status"),
        Index("uq_assignments_team_active", "team_id", unique=True, postgresql_where=text(ACTIVE_ASSIGNMENT)),
        Index("uq_assignments_event_active", "event_id", unique=True, postgresql_where=text(ACTIVE_ASSIGNMENT)),
    )


# -- the events API (migration 0003) ---------------------------------------------------------------------
OPEN_EVENT = _in("status", OPEN_EVENT_STATUSES)

Index("ix_events_street_reported", Event.street_code, Event.reported_at)
Index("ix_events_open_due", Event.due_at, postgresql_where=text(f"{OPEN_EVENT} AND duplicate_of IS NULL"))
Index("ix_events_open_category", Event.category, Event.reported_at, postgresql_where=text(OPEN_EVENT))
# the levels of command (migration 0008): a unit's open events
Index("ix_events_unit_open", Event.unit_code, postgresql_where=text(f"unit_code IS NOT NULL AND {OPEN_EVENT}"))


class EscalationRung(Base):
    """One rung of a category's escalation ladder (分级分流): who is responsible, and for how long.

    Rung 0 is the first responder (the dispatched team); an event still open when its rung's time limit
    has passed is overdue, and is moved up automatically when the rung says ``auto_escalate``.
    Loaded from ``data/escalation_ladders.csv`` (migration 0003, ``gridmap ladders load``).
    """

    __tablename__ = "escalation_ladders"
    category: Mapped[str] = mapped_column(ForeignKey("event_categories.code", ondelete="CASCADE"), primary_key=True)
    rung: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    level: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    name_zh: Mapped[str] = mapped_column(Text, nullable=False)
    time_limit_min: Mapped[int] = mapped_column(Integer, nullable=False)
    auto_escalate: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    #: the unit behind the rung (migration 0008): a kind, resolved by where the event is, or one unit's code
    unit_kind: Mapped[str | None] = mapped_column(Text)
    unit_code: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint("rung BETWEEN 0 AND 20", name="rung"),
        CheckConstraint("time_limit_min > 0", name="time_limit"),
    )


class EventTransition(Base):
    """The audit trail of an event: every status change and escalation (who, when, where, note).

    Append-only: a trigger refuses UPDATE and DELETE (rows go only with their event). Status changes are
    written by a trigger on ``events``, in the same transaction, whoever makes them.
    """

    __tablename__ = "event_transitions"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str | None] = mapped_column(Text)
    rung: Mapped[int | None] = mapped_column(SmallInteger)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    actor_role: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=SRID))
    detail: Mapped[dict | None] = mapped_column(JSONB)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class EventReporter(Base):
    """Who reported an event (a resident's name and phone): personal data, kept apart like ``resident_pii``."""

    __tablename__ = "event_reporters"
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str | None] = mapped_column(Text, info=SENSITIVE)
    phone: Mapped[str | None] = mapped_column(Text, info=SENSITIVE)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"), index=True)


class User(Base):
    """An API user. One of ``district_code``, ``street_code``, ``community_code`` scopes an operator (its level);
    ``member_code`` ties a grid worker/volunteer to a team; ``unit_code`` a unit member to a unit."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    street_code: Mapped[str | None] = mapped_column(Text)
    member_code: Mapped[str | None] = mapped_column(Text)  # natural key: survives a registry reload
    district_code: Mapped[str | None] = mapped_column(Text)  # (migration 0008)
    community_code: Mapped[str | None] = mapped_column(Text)
    unit_code: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    #: Bumped by every change that must end all of the user's sessions (deactivation, role, street, member,
    #: password, "log out everywhere"); a token carries the version it was issued under.
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    __table_args__ = (
        CheckConstraint(_in("role", USER_ROLES), name="role"),
        CheckConstraint("role <> 'operator' OR num_nonnulls(district_code, street_code, community_code) = 1",
                        name="operator_area"),
        CheckConstraint("role NOT IN ('grid_worker', 'volunteer') OR member_code IS NOT NULL", name="member"),
        CheckConstraint("role <> 'unit' OR unit_code IS NOT NULL", name="unit"),
    )




class UserSession(Base):
    """One login: the token names it (``sid``); a request is served only while it is neither revoked nor expired."""

    __tablename__ = "sessions"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # random (uuid4): never guessable
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    token_version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    user_agent: Mapped[str | None] = mapped_column(Text)
    client_address: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (CheckConstraint(_in("kind", SESSION_KINDS), name="kind"),)


class LoginThrottle(Base):
    """Failed logins per key (``user:<name>`` or ``addr:<address>``) and the lock they earned.

    UNLOGGED: no write-ahead log for a table written on every failed login; after a crash PostgreSQL empties
    it, which only forgets recent failures."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    last_failure_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = {"prefixes": ["UNLOGGED"]}


class SimulationMark(Base):
    """The row that makes a database a simulation database (made by ``gridmap simulate``; at most one row).

    Only a database with this row lets the API's clock follow the simulation (``clock_at``) and dispatch
    follow another rule than gridmap's own (``dispatch_rule``)."""

    __tablename__ = "simulation_mark"
    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    source: Mapped[str] = mapped_column(Text, nullable=False)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    clock_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    dispatch_rule: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)


# The tables of later migrations live in their own modules; importing them here puts them on Base.metadata,
# so that whoever reads the schema from this module (Alembic's env.py, the drift test) sees every table.
from gridmap.storage import models_field, models_levels  # noqa: E402, F401
