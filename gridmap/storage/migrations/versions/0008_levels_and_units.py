"""three levels of command and the units behind the rungs: operators of a district, street or community and
members of a unit (users); units; the unit of each ladder rung; the rung stints of events (the rung's clock,
every unit's inbox); mediation cases with their parties (personal data apart), sessions and outcomes; the
one-door intake and the director's hotline as channels; how an event ended (``events.outcome``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20
"""

from __future__ import annotations

import csv
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

LADDERS = Path(__file__).resolve().parents[4] / "data" / "escalation_ladders.csv"
OLD_CHANNELS = ("hotline_12345", "chat_group", "qr_code", "patrol", "smart_alarm")
CHANNELS = (*OLD_CHANNELS, "walk_in", "director_hotline")
OLD_ROLES = ("admin", "operator", "planner", "grid_worker", "volunteer", "intake")
ROLES = (*OLD_ROLES, "unit")
OUTCOMES = ("answered_on_the_spot", "settled", "agreement", "partial", "litigation")
LEFT_HOW = ("escalated", "auto_escalated", "returned", "settled", "closed", "referred", "reopened")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# A unit's inbox is live: every stint that starts or changes (entered, taken, left) is announced on commit to
# every API process (LISTEN gridmap_feed), which hands it to the feeds of that unit.
UNIT_NOTIFY_FN = """
CREATE FUNCTION gridmap_unit_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.unit_code IS NOT NULL THEN
    PERFORM pg_notify('gridmap_feed', json_build_object('kind', 'unit', 'unit', NEW.unit_code,
      'event_id', NEW.event_id, 'stint_id', NEW.id, 'rung', NEW.rung,
      'state', CASE WHEN NEW.left_at IS NOT NULL THEN 'left' WHEN NEW.taken_at IS NOT NULL THEN 'taken'
                    ELSE 'entered' END)::text);
  END IF;
  RETURN NULL;
END $$;
"""


# An event that is resolved or closed, however (a team, an operator, a near-duplicate closing with its master),
# leaves its rung: its open stint ends. One reopened at a unit's rung enters that rung again.
STINT_ON_STATUS_FN = """
CREATE FUNCTION gridmap_stint_on_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_at timestamptz := COALESCE(NULLIF(current_setting('gridmap.at', true), '')::timestamptz,
                               CASE NEW.status WHEN 'resolved' THEN NEW.resolved_at WHEN 'closed' THEN NEW.closed_at END,
                               now());
  v_by text := COALESCE(NULLIF(current_setting('gridmap.actor', true), ''), 'system');
BEGIN
  IF NEW.status IN ('resolved', 'closed') THEN
    UPDATE event_rung_stints SET left_at = v_at, left_how = 'closed', left_by = v_by
    WHERE event_id = NEW.id AND left_at IS NULL;
  ELSIF NEW.unit_code IS NOT NULL THEN
    INSERT INTO event_rung_stints (event_id, rung, unit_code, entered_at, entered_how, due_at)
    VALUES (NEW.id, NEW.escalation_rung, NEW.unit_code, v_at, 'reopened', NEW.due_at);
  END IF;
  RETURN NULL;
END $$;
"""


def _ladder_units() -> list[dict]:
    if not LADDERS.exists():
        raise RuntimeError(f"{LADDERS} is missing: it holds the default escalation ladders")
    with LADDERS.open(encoding="utf-8") as f:
        return [{"c": r["category"], "r": int(r["rung"]), "u": (r.get("unit") or "").strip() or None}
                for r in csv.DictReader(f)]


def upgrade() -> None:
    # -- users: the level of an operator (one of district/street/community code) and a unit member's unit
    op.add_column('users', sa.Column('district_code', sa.Text(), nullable=True))
    op.add_column('users', sa.Column('community_code', sa.Text(), nullable=True))
    op.add_column('users', sa.Column('unit_code', sa.Text(), nullable=True))
    op.drop_constraint(op.f('ck_users_operator_street'), 'users', type_='check')
    op.drop_constraint(op.f('ck_users_role'), 'users', type_='check')
    op.create_check_constraint(op.f('ck_users_role'), 'users', _in("role", ROLES))
    op.create_check_constraint(op.f('ck_users_operator_area'), 'users',
                               "role <> 'operator' OR num_nonnulls(district_code, street_code, community_code) = 1")
    op.create_check_constraint(op.f('ck_users_unit'), 'users', "role <> 'unit' OR unit_code IS NOT NULL")

    # -- units and the unit of each rung
    op.create_table('units',
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('name_zh', sa.Text(), nullable=False),
    sa.Column('area_code', sa.Text(), nullable=False),
    sa.Column('place_code', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_units'))
    )
    op.create_index('ix_units_kind_area', 'units', ['kind', 'area_code'], unique=False)
    op.create_index('ix_units_place', 'units', ['place_code'], unique=False,
                    postgresql_where=sa.text("place_code IS NOT NULL"))
    op.add_column('escalation_ladders', sa.Column('unit_kind', sa.Text(), nullable=True))
    op.add_column('escalation_ladders', sa.Column('unit_code', sa.Text(), nullable=True))
    for r in _ladder_units():
        if r["u"] is None:
            continue
        # a kind is lower-case words; anything else names one unit by its code
        column = "unit_kind" if r["u"].replace("_", "").isalpha() and r["u"].islower() else "unit_code"
        op.execute(sa.text(f"UPDATE escalation_ladders SET {column} = :u WHERE category = :c AND rung = :r")
                   .bindparams(u=r["u"], c=r["c"], r=r["r"]))

    # -- events: the unit holding it, how it ended; the new channels
    op.add_column('events', sa.Column('unit_code', sa.Text(), nullable=True))
    op.add_column('events', sa.Column('outcome', sa.Text(), nullable=True))
    op.create_check_constraint(op.f('ck_events_outcome'), 'events', f"outcome IS NULL OR {_in('outcome', OUTCOMES)}")
    op.drop_constraint(op.f('ck_events_channel'), 'events', type_='check')
    op.create_check_constraint(op.f('ck_events_channel'), 'events', _in("channel", CHANNELS))
    op.create_index('ix_events_unit_open', 'events', ['unit_code'], unique=False,
                    postgresql_where=sa.text("unit_code IS NOT NULL AND status IN "
                                             "('reported', 'dispatched', 'accepted', 'on_site')"))

    # -- the rung stints: one row per (event, rung it stood on), with its unit and clock
    op.create_table('event_rung_stints',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('rung', sa.SmallInteger(), nullable=False),
    sa.Column('unit_code', sa.Text(), nullable=True),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entered_how', sa.Text(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('taken_by', sa.Text(), nullable=True),
    sa.Column('info_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('left_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('left_how', sa.Text(), nullable=True),
    sa.Column('left_by', sa.Text(), nullable=True),
    sa.CheckConstraint(f"left_how IS NULL OR {_in('left_how', LEFT_HOW)}", name=op.f('ck_event_rung_stints_left_how')),
    sa.CheckConstraint("(left_at IS NULL) = (left_how IS NULL)", name=op.f('ck_event_rung_stints_left')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_rung_stints_event_id_events'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_rung_stints'))
    )
    op.create_index(op.f('ix_event_rung_stints_event_id'), 'event_rung_stints', ['event_id'], unique=False)
    op.create_index('ix_event_rung_stints_unit', 'event_rung_stints', ['unit_code', 'entered_at'], unique=False)
    op.create_index('uq_event_rung_stints_open', 'event_rung_stints', ['event_id'], unique=True,
                    postgresql_where=sa.text("left_at IS NULL"))
    op.execute(STINT_ON_STATUS_FN)
    op.execute("CREATE TRIGGER events_stints AFTER UPDATE OF status ON events FOR EACH ROW "
               "WHEN (OLD.status IS DISTINCT FROM NEW.status AND (NEW.status IN ('resolved', 'closed') "
               "OR OLD.status IN ('resolved', 'closed'))) EXECUTE FUNCTION gridmap_stint_on_status()")
    op.execute(UNIT_NOTIFY_FN)
    op.execute("CREATE TRIGGER event_rung_stints_feed AFTER INSERT OR UPDATE ON event_rung_stints FOR EACH ROW "
               "EXECUTE FUNCTION gridmap_unit_notify()")

    # -- mediation cases
    op.create_table('mediation_cases',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('unit_code', sa.Text(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_by', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'open'"), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('referral', sa.Text(), nullable=True),
    sa.Column('referred_unit', sa.Text(), nullable=True),
    sa.Column('agreement_text', sa.Text(), nullable=True),
    sa.Column('closed_by', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_mediation_cases_status')),
    sa.CheckConstraint("outcome IS NULL OR outcome IN ('agreement', 'partial', 'failed')",
                       name=op.f('ck_mediation_cases_outcome')),
    sa.CheckConstraint("referral IS NULL OR referral IN ('litigation', 'department')",
                       name=op.f('ck_mediation_cases_referral')),
    sa.CheckConstraint("(status = 'closed') = (outcome IS NOT NULL)", name=op.f('ck_mediation_cases_closed')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_mediation_cases_event_id_events'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mediation_cases')),
    sa.UniqueConstraint('code', name=op.f('uq_mediation_cases_code')),
    )
    op.create_index(op.f('ix_mediation_cases_event_id'), 'mediation_cases', ['event_id'], unique=False)
    op.create_index('uq_mediation_cases_event_open', 'mediation_cases', ['event_id'], unique=True,
                    postgresql_where=sa.text("status = 'open'"))
    op.create_index('ix_mediation_cases_unit', 'mediation_cases', ['unit_code', 'opened_at'], unique=False)
    op.create_table('mediation_parties',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=False),
    sa.Column('side', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), server_default=sa.text("'person'"), nullable=False),
    sa.CheckConstraint("side IN ('applicant', 'respondent', 'third_party')", name=op.f('ck_mediation_parties_side')),
    sa.CheckConstraint("kind IN ('person', 'business')", name=op.f('ck_mediation_parties_kind')),
    sa.ForeignKeyConstraint(['case_id'], ['mediation_cases.id'], name=op.f('fk_mediation_parties_case_id_mediation_cases'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mediation_parties'))
    )
    op.create_index(op.f('ix_mediation_parties_case_id'), 'mediation_parties', ['case_id'], unique=False)
    op.create_table('mediation_party_pii',
    sa.Column('party_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('id_card', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['party_id'], ['mediation_parties.id'],
                            name=op.f('fk_mediation_party_pii_party_id_mediation_parties'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('party_id', name=op.f('pk_mediation_party_pii'))
    )
    op.create_table('mediation_sessions',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=False),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('place', sa.Text(), nullable=True),
    sa.Column('mediators', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('recorded_by', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['mediation_cases.id'],
                            name=op.f('fk_mediation_sessions_case_id_mediation_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mediation_sessions'))
    )
    op.create_index(op.f('ix_mediation_sessions_case_id'), 'mediation_sessions', ['case_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_mediation_sessions_case_id'), table_name='mediation_sessions')
    op.drop_table('mediation_sessions')
    op.drop_table('mediation_party_pii')
    op.drop_index(op.f('ix_mediation_parties_case_id'), table_name='mediation_parties')
    op.drop_table('mediation_parties')
    op.drop_index('ix_mediation_cases_unit', table_name='mediation_cases')
    op.drop_index('uq_mediation_cases_event_open', table_name='mediation_cases')
    op.drop_index(op.f('ix_mediation_cases_event_id'), table_name='mediation_cases')
    op.drop_table('mediation_cases')
    op.execute("DROP TRIGGER IF EXISTS event_rung_stints_feed ON event_rung_stints")
    op.execute("DROP FUNCTION IF EXISTS gridmap_unit_notify()")
    op.execute("DROP TRIGGER IF EXISTS events_stints ON events")
    op.execute("DROP FUNCTION IF EXISTS gridmap_stint_on_status()")
    op.drop_index('uq_event_rung_stints_open', table_name='event_rung_stints')
    op.drop_index('ix_event_rung_stints_unit', table_name='event_rung_stints')
    op.drop_index(op.f('ix_event_rung_stints_event_id'), table_name='event_rung_stints')
    op.drop_table('event_rung_stints')
    # events of the new channels cannot be kept under the old vocabulary
    op.execute(f"DELETE FROM events WHERE {_in('channel', ('walk_in', 'director_hotline'))}")
    op.drop_index('ix_events_unit_open', table_name='events')
    op.drop_constraint(op.f('ck_events_channel'), 'events', type_='check')
    op.create_check_constraint(op.f('ck_events_channel'), 'events', _in("channel", OLD_CHANNELS))
    op.drop_constraint(op.f('ck_events_outcome'), 'events', type_='check')
    op.drop_column('events', 'outcome')
    op.drop_column('events', 'unit_code')
    op.drop_column('escalation_ladders', 'unit_code')
    op.drop_column('escalation_ladders', 'unit_kind')
    op.drop_index('ix_units_place', table_name='units')
    op.drop_index('ix_units_kind_area', table_name='units')
    op.drop_table('units')
    # accounts the old schema cannot hold: unit members, operators of a district or a community
    op.execute("DELETE FROM users WHERE role = 'unit' OR (role = 'operator' AND street_code IS NULL)")
    op.drop_constraint(op.f('ck_users_unit'), 'users', type_='check')
    op.drop_constraint(op.f('ck_users_operator_area'), 'users', type_='check')
    op.drop_constraint(op.f('ck_users_role'), 'users', type_='check')
    op.create_check_constraint(op.f('ck_users_role'), 'users', _in("role", OLD_ROLES))
    op.create_check_constraint(op.f('ck_users_operator_street'), 'users', "role <> 'operator' OR street_code IS NOT NULL")
    op.drop_column('users', 'unit_code')
    op.drop_column('users', 'community_code')
    op.drop_column('users', 'district_code')
