"""simulation_mark: the row that makes a database a simulation database (``gridmap simulate``).

A database with a row here was made by the simulator (a copy of the sample street): only there may the API's
clock be driven by the simulation (``GRIDMAP_CLOCK=simulation``, ``clock_at``) and dispatch follow another
rule than gridmap's own (``dispatch_rule``, for the dispatch-policy study). Any other database has no row,
and the API refuses both. One row at most (``id = 1``).

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('simulation_mark',
    sa.Column('id', sa.SmallInteger(), server_default=sa.text('1'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.Column('clock_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dispatch_rule', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint('id = 1', name=op.f('ck_simulation_mark_one_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_simulation_mark'))
    )


def downgrade() -> None:
    op.drop_table('simulation_mark')
