"""events API: lifecycle audit trail, escalation ladders, reporters' personal data apart, users;
near-duplicate links and escalation state on events; triggers for the audit trail and live push.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import csv
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LADDERS = Path(__file__).resolve().parents[4] / "data" / "escalation_ladders.csv"
OPEN = "status IN ('reported', 'dispatched', 'accepted', 'on_site')"

# Every status change of an event writes one audit row, in the same transaction, whoever makes it (the API,
# the dispatcher, a script). Who/why/where come from transaction-local settings the service sets
# (gridmap.actor, .role, .action, .note, .lon, .lat, .at); without them the actor is 'system'.
AUDIT_FN = """
CREATE FUNCTION gridmap_event_status_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_lon text := NULLIF(current_setting('gridmap.lon', true), '');
  v_lat text := NULLIF(current_setting('gridmap.lat', true), '');
BEGIN
  INSERT INTO event_transitions (event_id, at, action, from_status, to_status, rung, actor, actor_role, note, geom,
                                 detail)
  VALUES (
    NEW.id,
    COALESCE(NULLIF(current_setting('gridmap.at', true), '')::timestamptz,
             CASE NEW.status WHEN 'dispatched' THEN NEW.dispatched_at WHEN 'accepted' THEN NEW.accepted_at
                             WHEN 'on_site' THEN NEW.on_site_at WHEN 'resolved' THEN NEW.resolved_at
                             WHEN 'closed' THEN NEW.closed_at END,
             CASE WHEN OLD.status = 'dispatched' AND NEW.status = 'reported' THEN
               (SELECT max(a.responded_at) FROM assignments a WHERE a.event_id = NEW.id) END,
             now()),
    COALESCE(NULLIF(current_setting('gridmap.action', true), ''),
             CASE
               WHEN OLD.status = 'reported' AND NEW.status = 'dispatched' THEN 'dispatch'
               WHEN OLD.status = 'dispatched' AND NEW.status = 'accepted' THEN 'accept'
               WHEN OLD.status = 'dispatched' AND NEW.status = 'reported' THEN 'timeout'
               WHEN OLD.status = 'accepted' AND NEW.status = 'on_site' THEN 'arrive'
               WHEN OLD.status = 'on_site' AND NEW.status = 'resolved' THEN 'resolve'
               WHEN OLD.status = 'resolved' AND NEW.status = 'closed' THEN 'close'
               WHEN OLD.status IN ('resolved', 'closed') AND NEW.status = 'reported' THEN 'reopen'
               ELSE 'status_change' END),
    OLD.status, NEW.status, NEW.escalation_rung,
    COALESCE(NULLIF(current_setting('gridmap.actor', true), ''), 'system'),
    NULLIF(current_setting('gridmap.role', true), ''),
    NULLIF(current_setting('gridmap.note', true), ''),
    CASE WHEN v_lon IS NULL OR v_lat IS NULL THEN NULL
         ELSE ST_SetSRID(ST_MakePoint(v_lon::float8, v_lat::float8), 4326) END,
    jsonb_build_object('team_id', NEW.team_id));
  RETURN NULL;
END $$;
"""
# The trail cannot be edited: UPDATE and DELETE fail, except the cascade when an event itself is deleted.
GUARD_FN = """
CREATE FUNCTION gridmap_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND pg_trigger_depth() > 1 THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
"""
# Live push: a new or changed assignment, a team's status change and a team's new position are announced
# on commit to every API process (LISTEN gridmap_feed): volunteers' feeds, and the dispatch caches of the
# other processes (so that several API workers agree on who is free and where).
NOTIFY_FN = """
CREATE FUNCTION gridmap_feed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'assignments' THEN
    PERFORM pg_notify('gridmap_feed', json_build_object('kind', 'assignment', 'assignment_id', NEW.id,
      'event_id', NEW.event_id, 'team_id', NEW.team_id, 'status', NEW.status)::text);
  ELSIF TG_ARGV[0] = 'position' THEN
    PERFORM pg_notify('gridmap_feed', json_build_object('kind', 'position', 'team', NEW.code,
      'lon', ST_X(NEW.geom), 'lat', ST_Y(NEW.geom), 'at', extract(epoch FROM NEW.position_at))::text);
  ELSE
    PERFORM pg_notify('gridmap_feed', json_build_object('kind', 'team', 'team_id', NEW.id, 'team', NEW.code,
      'status', NEW.status)::text);
  END IF;
  RETURN NULL;
END $$;
"""


def _ladder_rows() -> list[dict]:
    if not LADDERS.exists():
        raise RuntimeError(f"{LADDERS} is missing: it holds the default escalation ladders")
    with LADDERS.open(encoding="utf-8") as f:
        return [{"category": r["category"], "rung": int(r["rung"]), "level": r["level"], "name": r["name"],
                 "name_zh": r["name_zh"], "time_limit_min": int(r["time_limit_min"]),
                 "auto_escalate": r["auto_escalate"].strip().lower() == "true"} for r in csv.DictReader(f)]


def upgrade() -> None:
    op.add_column('events', sa.Column('duplicate_of', sa.BigInteger(), nullable=True))
    op.add_column('events', sa.Column('location_source', sa.Text(), nullable=True))
    op.add_column('events', sa.Column('address', sa.Text(), nullable=True))
    op.add_column('events', sa.Column('place_code', sa.Text(), nullable=True))
    op.add_column('events', sa.Column('escalation_rung', sa.SmallInteger(), server_default=sa.text('0'), nullable=False))
    op.add_column('events', sa.Column('rung_started_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('events', sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('events', sa.Column('intake_sha256', sa.Text(), nullable=True))
    op.create_foreign_key(op.f('fk_events_duplicate_of_events'), 'events', 'events', ['duplicate_of'], ['id'],
                          ondelete='SET NULL')
    op.create_index(op.f('ix_events_duplicate_of'), 'events', ['duplicate_of'], unique=False)
    op.create_index('ix_events_street_reported', 'events', ['street_code', 'reported_at'], unique=False)
    op.create_index('ix_events_open_due', 'events', ['due_at'], unique=False,
                    postgresql_where=sa.text(f"{OPEN} AND duplicate_of IS NULL"))
    op.create_index('ix_events_open_category', 'events', ['category', 'reported_at'], unique=False,
                    postgresql_where=sa.text(OPEN))

    op.create_table('escalation_ladders',
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('rung', sa.SmallInteger(), nullable=False),
    sa.Column('level', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('name_zh', sa.Text(), nullable=False),
    sa.Column('time_limit_min', sa.Integer(), nullable=False),
    sa.Column('auto_escalate', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.CheckConstraint('rung BETWEEN 0 AND 20', name=op.f('ck_escalation_ladders_rung')),
    sa.CheckConstraint('time_limit_min > 0', name=op.f('ck_escalation_ladders_time_limit')),
    sa.ForeignKeyConstraint(['category'], ['event_categories.code'],
                            name=op.f('fk_escalation_ladders_category_event_categories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('category', 'rung', name=op.f('pk_escalation_ladders'))
    )
    op.create_geospatial_table('event_transitions',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('from_status', sa.Text(), nullable=True),
    sa.Column('to_status', sa.Text(), nullable=True),
    sa.Column('rung', sa.SmallInteger(), nullable=True),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('actor_role', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_transitions_event_id_events'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_transitions'))
    )
    op.create_geospatial_index('idx_event_transitions_geom', 'event_transitions', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_event_transitions_event_id'), 'event_transitions', ['event_id'], unique=False)
    op.create_table('event_reporters',
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('resident_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_reporters_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_event_reporters_resident_id_residents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_event_reporters'))
    )
    op.create_table('users',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('username', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('street_code', sa.Text(), nullable=True),
    sa.Column('member_code', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'operator', 'planner', 'grid_worker', 'volunteer', 'intake')", name=op.f('ck_users_role')),
    sa.CheckConstraint("role <> 'operator' OR street_code IS NOT NULL", name=op.f('ck_users_operator_street')),
    sa.CheckConstraint("role NOT IN ('grid_worker', 'volunteer') OR member_code IS NOT NULL", name=op.f('ck_users_member')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    ladders = sa.table("escalation_ladders", sa.column("category"), sa.column("rung"), sa.column("level"),
                       sa.column("name"), sa.column("name_zh"), sa.column("time_limit_min"),
                       sa.column("auto_escalate"))
    op.bulk_insert(ladders, _ladder_rows())

    op.execute(AUDIT_FN)
    op.execute("CREATE TRIGGER events_status_audit AFTER UPDATE OF status ON events FOR EACH ROW "
               "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION gridmap_event_status_audit()")
    op.execute(GUARD_FN)
    op.execute("CREATE TRIGGER event_transitions_append_only BEFORE UPDATE OR DELETE ON event_transitions "
               "FOR EACH ROW EXECUTE FUNCTION gridmap_append_only()")
    op.execute(NOTIFY_FN)
    op.execute("CREATE TRIGGER assignments_feed AFTER INSERT OR UPDATE OF status ON assignments FOR EACH ROW "
               "EXECUTE FUNCTION gridmap_feed_notify()")
    op.execute("CREATE TRIGGER teams_feed AFTER UPDATE OF status ON teams FOR EACH ROW "
               "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION gridmap_feed_notify()")
    op.execute("CREATE TRIGGER teams_position_feed AFTER UPDATE OF geom, position_at ON teams FOR EACH ROW "
               "WHEN (OLD.position_at IS DISTINCT FROM NEW.position_at AND NEW.geom IS NOT NULL) "
               "EXECUTE FUNCTION gridmap_feed_notify('position')")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS teams_position_feed ON teams")
    op.execute("DROP TRIGGER IF EXISTS teams_feed ON teams")
    op.execute("DROP TRIGGER IF EXISTS assignments_feed ON assignments")
    op.execute("DROP TRIGGER IF EXISTS event_transitions_append_only ON event_transitions")
    op.execute("DROP TRIGGER IF EXISTS events_status_audit ON events")
    op.execute("DROP FUNCTION IF EXISTS gridmap_feed_notify()")
    op.execute("DROP FUNCTION IF EXISTS gridmap_append_only()")
    op.execute("DROP FUNCTION IF EXISTS gridmap_event_status_audit()")
    op.drop_table('users')
    op.drop_table('event_reporters')
    op.drop_index(op.f('ix_event_transitions_event_id'), table_name='event_transitions')
    op.drop_geospatial_index('idx_event_transitions_geom', table_name='event_transitions', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('event_transitions')
    op.drop_table('escalation_ladders')
    op.drop_index('ix_events_open_category', table_name='events', postgresql_where=sa.text(OPEN))
    op.drop_index('ix_events_open_due', table_name='events', postgresql_where=sa.text(f"{OPEN} AND duplicate_of IS NULL"))
    op.drop_index('ix_events_street_reported', table_name='events')
    op.drop_index(op.f('ix_events_duplicate_of'), table_name='events')
    op.drop_constraint(op.f('fk_events_duplicate_of_events'), 'events', type_='foreignkey')
    op.drop_column('events', 'intake_sha256')
    op.drop_column('events', 'due_at')
    op.drop_column('events', 'rung_started_at')
    op.drop_column('events', 'escalation_rung')
    op.drop_column('events', 'place_code')
    op.drop_column('events', 'address')
    op.drop_column('events', 'location_source')
    op.drop_column('events', 'duplicate_of')
