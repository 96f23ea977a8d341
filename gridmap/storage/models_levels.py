"""The tables of the three levels of command (migration 0008): units, the rung stints of events, mediation
cases, their parties (personal data apart, in ``mediation_party_pii``) and sessions.

Like :mod:`gridmap.storage.models`, these classes describe tables the migrations create; the SQL that reads
and writes them is in :mod:`gridmap.storage.units` and :mod:`gridmap.storage.mediation`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    SmallInteger,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.core.vocabulary import (
    CASE_OUTCOMES,
    LEFT_HOW,
    MEDIATION_CASE_STATUSES,
    PARTY_KINDS,
    PARTY_SIDES,
    REFERRALS,
)
from gridmap.storage.models import SENSITIVE, Base, _in


class Unit(Base):
    """Who stands behind a rung: a mediation room, a street centre, a department, a mall's front desk …

    ``area_code`` is the area it serves (a community, street or district); ``place_code`` the building it
    serves instead (a mall's units). Loaded from ``data/units.csv`` (``gridmap units load``)."""

    __tablename__ = "units"
    code: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    name_zh: Mapped[str] = mapped_column(Text, nullable=False)
    area_code: Mapped[str] = mapped_column(Text, nullable=False)
    place_code: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    __table_args__ = (
        Index("ix_units_kind_area", "kind", "area_code"),
        Index("ix_units_place", "place_code", postgresql_where=text("place_code IS NOT NULL")),
    )


class EventRungStint(Base):
    """One event's stay on one rung: which unit held it, when it came and left and how (the rung's clock).

    At most one open stint (``left_at`` NULL) per event; a unit's inbox is its open stints."""

    __tablename__ = "event_rung_stints"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True)
    rung: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    unit_code: Mapped[str | None] = mapped_column(Text)
    entered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    entered_how: Mapped[str] = mapped_column(Text, nullable=False)
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    taken_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    taken_by: Mapped[str | None] = mapped_column(Text)
    info_requested_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    left_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    left_how: Mapped[str | None] = mapped_column(Text)
    left_by: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint(f"left_how IS NULL OR {_in('left_how', LEFT_HOW)}", name="left_how"),
        CheckConstraint("(left_at IS NULL) = (left_how IS NULL)", name="left"),
        Index("ix_event_rung_stints_unit", "unit_code", "entered_at"),
        Index("uq_event_rung_stints_open", "event_id", unique=True, postgresql_where=text("left_at IS NULL")),
    )


class MediationCase(Base):
    """A dispute at a mediation room: its parties, sessions, outcome and agreement (free text)."""

    __tablename__ = "mediation_cases"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True)
    unit_code: Mapped[str] = mapped_column(Text, nullable=False)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    opened_by: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="open")
    outcome: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    referral: Mapped[str | None] = mapped_column(Text)
    referred_unit: Mapped[str | None] = mapped_column(Text)
    agreement_text: Mapped[str | None] = mapped_column(Text)
    closed_by: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint(_in("status", MEDIATION_CASE_STATUSES), name="status"),
        CheckConstraint(f"outcome IS NULL OR {_in('outcome', CASE_OUTCOMES)}", name="outcome"),
        CheckConstraint(f"referral IS NULL OR {_in('referral', REFERRALS)}", name="referral"),
        CheckConstraint("(status = 'closed') = (outcome IS NOT NULL)", name="closed"),
        Index("uq_mediation_cases_event_open", "event_id", unique=True, postgresql_where=text("status = 'open'")),
        Index("ix_mediation_cases_unit", "unit_code", "opened_at"),
    )


class MediationParty(Base):
    """A party to a case, without personal data (that is in :class:`MediationPartyPII`)."""

    __tablename__ = "mediation_parties"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("mediation_cases.id", ondelete="CASCADE"), nullable=False,
                                         index=True)
    side: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False, server_default="person")
    __table_args__ = (CheckConstraint(_in("side", PARTY_SIDES), name="side"),
                      CheckConstraint(_in("kind", PARTY_KINDS), name="kind"))


class MediationPartyPII(Base):
    """A party's name, phone and ID-card number: personal data, read only by roles with the right, every
    read written to ``pii_access_log``."""

    __tablename__ = "mediation_party_pii"
    party_id: Mapped[int] = mapped_column(ForeignKey("mediation_parties.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, info=SENSITIVE)
    phone: Mapped[str | None] = mapped_column(Text, info=SENSITIVE)
    id_card: Mapped[str | None] = mapped_column(Text, info=SENSITIVE)


class MediationSession(Base):
    """A mediation session: when, where, which mediators."""

    __tablename__ = "mediation_sessions"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("mediation_cases.id", ondelete="CASCADE"), nullable=False,
                                         index=True)
    held_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    place: Mapped[str | None] = mapped_column(Text)
    mediators: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(Text, nullable=False)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


__all__ = ["EventRungStint", "MediationCase", "MediationParty", "MediationPartyPII", "MediationSession", "Unit",
           "REFERRALS"]
