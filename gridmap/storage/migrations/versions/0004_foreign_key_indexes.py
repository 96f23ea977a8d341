"""indexes on the six foreign keys that had none, so deleting or updating the referenced row (a building,
a business, a team, a team member, a resident) no longer scans the referring table.

Found by asking the catalogue for foreign keys whose first column leads no index; a test now asks the
same question of every migrated database (tests/test_database.py), so a new foreign key cannot miss one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: (table, column) of each foreign key without an index before this revision.
FOREIGN_KEYS = [
    ("events", "building_id"),
    ("events", "team_id"),
    ("fire_equipment", "building_id"),
    ("fire_equipment", "business_id"),
    ("grid_staff", "member_id"),
    ("event_reporters", "resident_id"),
]


def upgrade() -> None:
    for table, column in FOREIGN_KEYS:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(FOREIGN_KEYS):
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
