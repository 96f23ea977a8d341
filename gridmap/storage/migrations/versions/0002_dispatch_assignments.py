"""dispatch assignments: an event offered to a team; partial unique indexes forbid double-booking.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_geospatial_table('assignments',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('team_id', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'offered'"), nullable=False),
    sa.Column('rank', sa.SmallInteger(), nullable=True),
    sa.Column('eta_s', sa.Double(), nullable=True),
    sa.Column('distance_m', sa.Double(), nullable=True),
    sa.Column('method', sa.Text(), nullable=True),
    sa.Column('explanation', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('offered_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('respond_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('route', Geometry(geometry_type='LINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.CheckConstraint("status IN ('offered', 'accepted', 'declined', 'timeout', 'cancelled', 'completed')", name=op.f('ck_assignments_status')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_assignments_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_assignments_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments'))
    )
    op.create_geospatial_index('idx_assignments_route', 'assignments', ['route'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_assignments_event_id'), 'assignments', ['event_id'], unique=False)
    op.create_index(op.f('ix_assignments_team_id'), 'assignments', ['team_id'], unique=False)
    op.create_index('uq_assignments_event_active', 'assignments', ['event_id'], unique=True, postgresql_where=sa.text("status IN ('offered', 'accepted')"))
    op.create_index('uq_assignments_team_active', 'assignments', ['team_id'], unique=True, postgresql_where=sa.text("status IN ('offered', 'accepted')"))


def downgrade() -> None:
    op.drop_index('uq_assignments_team_active', table_name='assignments', postgresql_where=sa.text("status IN ('offered', 'accepted')"))
    op.drop_index('uq_assignments_event_active', table_name='assignments', postgresql_where=sa.text("status IN ('offered', 'accepted')"))
    op.drop_index(op.f('ix_assignments_team_id'), table_name='assignments')
    op.drop_index(op.f('ix_assignments_event_id'), table_name='assignments')
    op.drop_geospatial_index('idx_assignments_route', table_name='assignments', postgresql_using='gist', column_name='route')
    op.drop_geospatial_table('assignments')
