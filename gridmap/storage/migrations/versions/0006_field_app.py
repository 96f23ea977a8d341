"""the field app and the resident's QR page: positions with their accuracy and the implausible fixes that were
flagged; idempotency keys of the phone's actions; photos (metadata apart from their content-addressed bytes);
receipts of residents' QR reports and a counter table that throttles the public page; the offers an
out-of-band notifier (SMS/voice) was asked to chase. The audit trigger's rows also take a transaction-local
``gridmap.detail`` (JSON) so that a transition can name the photos that prove it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# A BEFORE INSERT trigger on the trail: whatever writes a row (the status trigger, escalate_in), the detail
# set for the transaction (gridmap.detail, e.g. {"photos": [...]}) is merged into the row's own.
DETAIL_FN = """
CREATE FUNCTION gridmap_transition_detail() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v text := NULLIF(current_setting('gridmap.detail', true), '');
BEGIN
  IF v IS NOT NULL THEN
    NEW.detail := COALESCE(NEW.detail, '{}'::jsonb) || v::jsonb;
  END IF;
  RETURN NEW;
END $$;
"""


def upgrade() -> None:
    op.add_column("teams", sa.Column("position_accuracy_m", sa.Double(), nullable=True))
    op.create_table(
        "team_fix_flags",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("accuracy_m", sa.Double(), nullable=True),
        sa.Column("speed_kmh", sa.Double(), nullable=False),
        sa.Column("distance_m", sa.Double(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reported_by", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_team_fix_flags_team_id_teams"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_fix_flags")),
    )
    op.create_index("ix_team_fix_flags_team_at", "team_fix_flags", ["team_id", "at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint("length(key) BETWEEN 8 AND 100", name=op.f("ck_idempotency_keys_key")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_idempotency_keys_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_table(
        "photo_blobs",
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("thumb", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_photo_blobs_sha256")),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_photo_blobs")),
    )
    op.create_table(
        "event_photos",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("assignment_id", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("original_bytes", sa.Integer(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("uploaded_by", sa.Text(), nullable=False),
        sa.Column("uploader_role", sa.Text(), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("attached_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("source IN ('team', 'resident')", name=op.f("ck_event_photos_source")),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_event_photos_event_id_events"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignments.id"],
                                name=op.f("fk_event_photos_assignment_id_assignments"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["sha256"], ["photo_blobs.sha256"], name=op.f("fk_event_photos_sha256_photo_blobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_photos")),
    )
    op.create_index(op.f("ix_event_photos_event_id"), "event_photos", ["event_id"])
    op.create_index(op.f("ix_event_photos_assignment_id"), "event_photos", ["assignment_id"])
    op.create_index(op.f("ix_event_photos_sha256"), "event_photos", ["sha256"])
    op.create_table(
        "receipts",
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fixed", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_receipts_event_id_events"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_receipts")),
    )
    op.create_index(op.f("ix_receipts_event_id"), "receipts", ["event_id"])
    op.create_table(
        "report_throttle",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_report_throttle")),
        prefixes=["UNLOGGED"],
    )
    op.create_table(
        "offer_notifications",
        sa.Column("assignment_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignments.id"],
                                name=op.f("fk_offer_notifications_assignment_id_assignments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_offer_notifications")),
    )
    op.execute(DETAIL_FN)
    op.execute("CREATE TRIGGER event_transitions_detail BEFORE INSERT ON event_transitions FOR EACH ROW "
               "EXECUTE FUNCTION gridmap_transition_detail()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS event_transitions_detail ON event_transitions")
    op.execute("DROP FUNCTION IF EXISTS gridmap_transition_detail()")
    op.drop_table("offer_notifications")
    op.drop_table("report_throttle")
    op.drop_index(op.f("ix_receipts_event_id"), table_name="receipts")
    op.drop_table("receipts")
    op.drop_index(op.f("ix_event_photos_sha256"), table_name="event_photos")
    op.drop_index(op.f("ix_event_photos_assignment_id"), table_name="event_photos")
    op.drop_index(op.f("ix_event_photos_event_id"), table_name="event_photos")
    op.drop_table("event_photos")
    op.drop_table("photo_blobs")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_team_fix_flags_team_at", table_name="team_fix_flags")
    op.drop_table("team_fix_flags")
    op.drop_column("teams", "position_accuracy_m")
