"""The field app's and the resident's QR page's tables (migration 0006): flagged position fixes, idempotency
keys of the phone's actions, photos (metadata apart from their content-addressed bytes), receipts of QR
reports and their throttle, and the offers an out-of-band notifier (SMS/voice) was asked to chase.

Like every model here, these classes describe what the migration created (the drift test
``tests/storage/test_models_match_migrations.py`` compares them); the SQL that uses them is in
``positions``, ``idempotency``, ``photos``, ``receipts`` and ``fieldmap``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.core.vocabulary import PHOTO_SOURCES
from gridmap.storage.models import Base, _in


class TeamFixFlag(Base):
    """A position fix that was implausible (too fast, too far) and not used: kept for the operator to see."""

    __tablename__ = "team_fix_flags"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    team_id: Mapped[int] = mapped_column(sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    lon: Mapped[float] = mapped_column(sa.Double, nullable=False)
    lat: Mapped[float] = mapped_column(sa.Double, nullable=False)
    accuracy_m: Mapped[float | None] = mapped_column(sa.Double)
    speed_kmh: Mapped[float] = mapped_column(sa.Double, nullable=False)
    distance_m: Mapped[float] = mapped_column(sa.Double, nullable=False)
    reason: Mapped[str] = mapped_column(sa.Text, nullable=False)
    reported_by: Mapped[str | None] = mapped_column(sa.Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False,
                                                     server_default=sa.func.now())
    __table_args__ = (sa.Index("ix_team_fix_flags_team_at", "team_id", "at"),)


class IdempotencyKey(Base):
    """A phone action's idempotency key: the same key again gets the first answer back, not a second action."""

    __tablename__ = "idempotency_keys"
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False, index=True)
    applied_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(sa.SmallInteger)
    response: Mapped[Any | None] = mapped_column(JSONB)
    __table_args__ = (sa.CheckConstraint("length(key) BETWEEN 8 AND 100", name="key"),)


class PhotoBlob(Base):
    """A photo's bytes (re-encoded, without EXIF) and its thumbnail, stored once per content hash."""

    __tablename__ = "photo_blobs"
    sha256: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    thumb: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    __table_args__ = (sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256"),)


class EventPhoto(Base):
    """A photo of an event, sent by a team (with the assignment and the action it proves) or by a resident."""

    __tablename__ = "event_photos"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    event_id: Mapped[int] = mapped_column(sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True)
    assignment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("assignments.id", ondelete="SET NULL"), index=True)
    sha256: Mapped[str] = mapped_column(sa.ForeignKey("photo_blobs.sha256"), nullable=False, index=True)
    media_type: Mapped[str] = mapped_column(sa.Text, nullable=False)
    width: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    height: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    bytes: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    original_bytes: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    lon: Mapped[float | None] = mapped_column(sa.Double)
    lat: Mapped[float | None] = mapped_column(sa.Double)
    source: Mapped[str] = mapped_column(sa.Text, nullable=False)
    uploaded_by: Mapped[str] = mapped_column(sa.Text, nullable=False)
    uploader_role: Mapped[str | None] = mapped_column(sa.Text)
    uploaded_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    action: Mapped[str | None] = mapped_column(sa.Text)
    attached_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    __table_args__ = (sa.CheckConstraint(_in("source", PHOTO_SOURCES), name="source"),)


class Receipt(Base):
    """The receipt of a resident's QR report: only the hash of its token is kept; the resident answers once."""

    __tablename__ = "receipts"
    token_sha256: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    event_id: Mapped[int] = mapped_column(sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    answered_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    fixed: Mapped[bool | None] = mapped_column(sa.Boolean)


class ReportThrottle(Base):
    """Reports per device and per address in a fixed window (UNLOGGED, like the login throttle)."""

    __tablename__ = "report_throttle"
    key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    count: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    __table_args__ = {"prefixes": ["UNLOGGED"]}


class OfferNotification(Base):
    """An offer left unanswered that the out-of-band notifier (SMS/voice) was asked to chase, and how it went."""

    __tablename__ = "offer_notifications"
    assignment_id: Mapped[int] = mapped_column(sa.ForeignKey("assignments.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(sa.Text, nullable=False)
    at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    outcome: Mapped[str | None] = mapped_column(sa.Text)


__all__ = ["EventPhoto", "IdempotencyKey", "OfferNotification", "PhotoBlob", "Receipt", "ReportThrottle",
           "TeamFixFlag"]
