"""initial spatial registry: areas, buildings, households/residents (+ personal data apart), businesses,
fire equipment, teams/members, road network, events, load log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


CATEGORIES = [
    # code, name, name_zh, skills (any of), default severity
    ("fire_hazard", "Fire hazard", "消防隐患", ["fire"], 3),
    ("public_security", "Public security", "治安", ["security", "patrol"], 2),
    ("fraud", "Fraud", "电信诈骗", ["law", "patrol"], 2),
    ("neighbour_dispute", "Neighbour dispute", "邻里纠纷", ["mediation"], 2),
    ("consumer_dispute", "Consumer dispute", "消费纠纷", ["mediation", "law"], 2),
    ("food_drug_safety", "Food and drug safety", "食品药品安全", ["patrol"], 2),
    ("environment", "Environment and sanitation", "环境卫生", ["patrol"], 1),
    ("parking", "Parking", "停车难", ["traffic", "patrol"], 1),
    ("road_facility", "Roads and facilities", "道路设施", ["patrol"], 1),
    ("elderly_care", "Elderly care", "为老服务", ["elderly_care", "first_aid"], 2),
]


def upgrade() -> None:
    # PostGIS for geometry; btree_gist for the "one valid version per area" exclusion constraint.
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_geospatial_table('areas',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('level', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('name_zh', sa.Text(), nullable=True),
    sa.Column('parent_code', sa.Text(), nullable=True),
    sa.Column('population', sa.Integer(), nullable=True),
    sa.Column('valid_from', sa.DateTime(timezone=True), server_default=sa.text("'2000-01-01 00:00+08'"), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    postgresql.ExcludeConstraint((sa.text('code'), '='), (sa.text('tstzrange(valid_from, valid_to)'), '&&'), using='gist', name='ex_areas_code_validity'),
    sa.CheckConstraint("level IN ('district', 'street', 'community', 'grid')", name=op.f('ck_areas_level')),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_areas_validity')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_areas')),
    sa.UniqueConstraint('code', 'valid_from', name='uq_areas_code_valid_from')
    )
    op.create_geospatial_index('idx_areas_geom', 'areas', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_areas_current', 'areas', ['level', 'code'], unique=True, postgresql_where=sa.text('valid_to IS NULL'))
    op.create_geospatial_table('buildings',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('floors', sa.SmallInteger(), nullable=False),
    sa.Column('height_m', sa.Double(), nullable=True),
    sa.Column('use', sa.Text(), nullable=False),
    sa.Column('units', sa.SmallInteger(), nullable=True),
    sa.Column('year_built', sa.SmallInteger(), nullable=True),
    sa.Column('community_code', sa.Text(), nullable=True),
    sa.Column('grid_code', sa.Text(), nullable=True),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("use IN ('residential', 'commercial', 'industrial', 'public', 'mixed')", name=op.f('ck_buildings_use')),
    sa.CheckConstraint('floors BETWEEN 1 AND 200', name=op.f('ck_buildings_floors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_buildings')),
    sa.UniqueConstraint('code', name=op.f('uq_buildings_code'))
    )
    op.create_geospatial_index('idx_buildings_geom', 'buildings', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_buildings_community_code'), 'buildings', ['community_code'], unique=False)
    op.create_index(op.f('ix_buildings_grid_code'), 'buildings', ['grid_code'], unique=False)
    op.create_table('dataset_info',
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('value', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_dataset_info'))
    )
    op.create_table('event_categories',
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('name_zh', sa.Text(), nullable=False),
    sa.Column('skills', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('default_severity', sa.SmallInteger(), server_default=sa.text('2'), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_event_categories'))
    )
    op.create_table('load_batches',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('layer', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('sha256', sa.Text(), nullable=True),
    sa.Column('source_crs', sa.Text(), nullable=True),
    sa.Column('rows_in', sa.Integer(), nullable=False),
    sa.Column('inserted', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('repaired', sa.Integer(), nullable=False),
    sa.Column('outside_area', sa.Integer(), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_load_batches'))
    )
    op.create_table('pii_access_log',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('table_name', sa.Text(), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=False),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pii_access_log'))
    )
    op.create_geospatial_table('road_nodes',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('street_count', sa.SmallInteger(), nullable=True),
    sa.Column('highway', sa.Text(), nullable=True),
    sa.Column('ref', sa.Text(), nullable=True),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_road_nodes'))
    )
    op.create_geospatial_index('idx_road_nodes_geom', 'road_nodes', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_geospatial_table('teams',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('home_grid_code', sa.Text(), nullable=True),
    sa.Column('skills', sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'available'"), nullable=False),
    sa.Column('position_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.CheckConstraint("kind IN ('grid_patrol', 'volunteer', 'micro_fire_crew', 'mediation', 'auxiliary_police')", name=op.f('ck_teams_kind')),
    sa.CheckConstraint("status IN ('available', 'assigned', 'on_site', 'off_duty')", name=op.f('ck_teams_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('code', name=op.f('uq_teams_code'))
    )
    op.create_geospatial_index('idx_teams_geom', 'teams', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_teams_home_grid_code'), 'teams', ['home_grid_code'], unique=False)
    op.create_geospatial_table('businesses',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('building_id', sa.BigInteger(), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('is_key_place', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('has_smart_fire_alarm', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('employees', sa.Integer(), nullable=True),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("kind IN ('shop', 'hotel', 'restaurant', 'market', 'school', 'kindergarten', 'clinic', 'factory', 'warehouse', 'office', 'entertainment', 'elderly_care')", name=op.f('ck_businesses_kind')),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_businesses_building_id_buildings'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_businesses')),
    sa.UniqueConstraint('code', name=op.f('uq_businesses_code'))
    )
    op.create_geospatial_index('idx_businesses_geom', 'businesses', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_businesses_building_id'), 'businesses', ['building_id'], unique=False)
    op.create_geospatial_table('events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('severity', sa.SmallInteger(), server_default=sa.text('2'), nullable=False),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('street_code', sa.Text(), nullable=True),
    sa.Column('community_code', sa.Text(), nullable=True),
    sa.Column('grid_code', sa.Text(), nullable=True),
    sa.Column('grid_area_id', sa.BigInteger(), nullable=True),
    sa.Column('building_id', sa.BigInteger(), nullable=True),
    sa.Column('team_id', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.Text(), server_default=sa.text("'reported'"), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('on_site_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("channel IN ('hotline_12345', 'chat_group', 'qr_code', 'patrol', 'smart_alarm')", name=op.f('ck_events_channel')),
    sa.CheckConstraint("status IN ('reported', 'dispatched', 'accepted', 'on_site', 'resolved', 'closed')", name=op.f('ck_events_status')),
    sa.CheckConstraint('severity BETWEEN 1 AND 4', name=op.f('ck_events_severity')),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_events_building_id_buildings'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['category'], ['event_categories.code'], name=op.f('fk_events_category_event_categories')),
    sa.ForeignKeyConstraint(['grid_area_id'], ['areas.id'], name=op.f('fk_events_grid_area_id_areas')),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_events_team_id_teams'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('channel', 'external_id', name='uq_events_channel_external_id'),
    sa.UniqueConstraint('code', name=op.f('uq_events_code'))
    )
    op.create_geospatial_index('idx_events_geom', 'events', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_events_category'), 'events', ['category'], unique=False)
    op.create_index(op.f('ix_events_grid_area_id'), 'events', ['grid_area_id'], unique=False)
    op.create_index(op.f('ix_events_grid_code'), 'events', ['grid_code'], unique=False)
    op.create_index(op.f('ix_events_reported_at'), 'events', ['reported_at'], unique=False)
    op.create_table('households',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('building_id', sa.BigInteger(), nullable=False),
    sa.Column('unit', sa.SmallInteger(), nullable=True),
    sa.Column('floor', sa.SmallInteger(), nullable=True),
    sa.Column('room', sa.Text(), nullable=True),
    sa.Column('size', sa.SmallInteger(), nullable=False),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_households_building_id_buildings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_households')),
    sa.UniqueConstraint('code', name=op.f('uq_households_code'))
    )
    op.create_index(op.f('ix_households_building_id'), 'households', ['building_id'], unique=False)
    op.create_geospatial_table('road_edges',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('source', sa.BigInteger(), nullable=False),
    sa.Column('target', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.SmallInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('osm_id', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('highway', sa.Text(), nullable=True),
    sa.Column('lanes', sa.Text(), nullable=True),
    sa.Column('oneway', sa.Boolean(), nullable=False),
    sa.Column('length_m', sa.Double(), nullable=False),
    sa.Column('speed_kph', sa.Double(), nullable=False),
    sa.Column('travel_time_s', sa.Double(), nullable=False),
    sa.Column('geom', Geometry(geometry_type='LINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint('length_m >= 0 AND speed_kph > 0 AND travel_time_s >= 0', name=op.f('ck_road_edges_positive')),
    sa.ForeignKeyConstraint(['source'], ['road_nodes.id'], name=op.f('fk_road_edges_source_road_nodes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target'], ['road_nodes.id'], name=op.f('fk_road_edges_target_road_nodes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_road_edges')),
    sa.UniqueConstraint('source', 'target', 'key', name='uq_road_edges_source_target_key')
    )
    op.create_geospatial_index('idx_road_edges_geom', 'road_edges', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_road_edges_source'), 'road_edges', ['source'], unique=False)
    op.create_index(op.f('ix_road_edges_target'), 'road_edges', ['target'], unique=False)
    op.create_table('team_members',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('team_id', sa.BigInteger(), nullable=True),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('is_party_member', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('skills', sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.CheckConstraint("role IN ('grid_worker', 'volunteer', 'party_volunteer', 'micro_fire_crew', 'mediator', 'auxiliary_police')", name=op.f('ck_team_members_role')),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_team_members_team_id_teams'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_team_members')),
    sa.UniqueConstraint('code', name=op.f('uq_team_members_code'))
    )
    op.create_index(op.f('ix_team_members_team_id'), 'team_members', ['team_id'], unique=False)
    op.create_geospatial_table('fire_equipment',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), server_default=sa.text("'in_service'"), nullable=False),
    sa.Column('last_inspected', sa.Date(), nullable=True),
    sa.Column('station_code', sa.Text(), nullable=True),
    sa.Column('building_id', sa.BigInteger(), nullable=True),
    sa.Column('business_id', sa.BigInteger(), nullable=True),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("kind IN ('micro_fire_station', 'micro_fire_truck', 'hydrant', 'extinguisher_cabinet', 'smart_alarm')", name=op.f('ck_fire_equipment_kind')),
    sa.CheckConstraint("status IN ('in_service', 'faulty', 'out_of_service')", name=op.f('ck_fire_equipment_status')),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_fire_equipment_building_id_buildings'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['business_id'], ['businesses.id'], name=op.f('fk_fire_equipment_business_id_businesses'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fire_equipment')),
    sa.UniqueConstraint('code', name=op.f('uq_fire_equipment_code'))
    )
    op.create_geospatial_index('idx_fire_equipment_geom', 'fire_equipment', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_fire_equipment_kind_status', 'fire_equipment', ['kind', 'status'], unique=False)
    op.create_table('grid_staff',
    sa.Column('grid_code', sa.Text(), nullable=False),
    sa.Column('member_id', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.Text(), server_default=sa.text("'primary'"), nullable=False),
    sa.CheckConstraint("role IN ('primary', 'assistant')", name=op.f('ck_grid_staff_role')),
    sa.ForeignKeyConstraint(['member_id'], ['team_members.id'], name=op.f('fk_grid_staff_member_id_team_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('grid_code', 'member_id', name=op.f('pk_grid_staff'))
    )
    op.create_table('residents',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('household_id', sa.BigInteger(), nullable=False),
    sa.Column('building_id', sa.BigInteger(), nullable=False),
    sa.Column('sex', sa.Text(), nullable=True),
    sa.Column('birth_year', sa.SmallInteger(), nullable=True),
    sa.Column('is_party_member', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('flags', sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.CheckConstraint("sex IN ('M', 'F')", name=op.f('ck_residents_sex')),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_residents_building_id_buildings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_residents_household_id_households'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_residents'))
    )
    op.create_index(op.f('ix_residents_building_id'), 'residents', ['building_id'], unique=False)
    op.create_index(op.f('ix_residents_household_id'), 'residents', ['household_id'], unique=False)
    categories = sa.table(
        "event_categories", sa.column("code"), sa.column("name"), sa.column("name_zh"),
        sa.column("skills", sa.ARRAY(sa.Text())), sa.column("default_severity"),
    )
    fields = ("code", "name", "name_zh", "skills", "default_severity")
    op.bulk_insert(categories, [dict(zip(fields, c, strict=True)) for c in CATEGORIES])
    # The audit log of personal-data reads is append-only.
    op.execute("CREATE RULE pii_access_log_no_update AS ON UPDATE TO pii_access_log DO INSTEAD NOTHING")
    op.execute("CREATE RULE pii_access_log_no_delete AS ON DELETE TO pii_access_log DO INSTEAD NOTHING")
    op.create_table('resident_pii',
    sa.Column('resident_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('id_card', sa.Text(), nullable=True),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_resident_pii_resident_id_residents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('resident_id', name=op.f('pk_resident_pii')),
    sa.UniqueConstraint('id_card', name=op.f('uq_resident_pii_id_card'))
    )


def downgrade() -> None:
    op.drop_table('resident_pii')
    op.drop_index(op.f('ix_residents_household_id'), table_name='residents')
    op.drop_index(op.f('ix_residents_building_id'), table_name='residents')
    op.drop_table('residents')
    op.drop_table('grid_staff')
    op.drop_index('ix_fire_equipment_kind_status', table_name='fire_equipment')
    op.drop_geospatial_index('idx_fire_equipment_geom', table_name='fire_equipment', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('fire_equipment')
    op.drop_index(op.f('ix_team_members_team_id'), table_name='team_members')
    op.drop_table('team_members')
    op.drop_index(op.f('ix_road_edges_target'), table_name='road_edges')
    op.drop_index(op.f('ix_road_edges_source'), table_name='road_edges')
    op.drop_geospatial_index('idx_road_edges_geom', table_name='road_edges', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('road_edges')
    op.drop_index(op.f('ix_households_building_id'), table_name='households')
    op.drop_table('households')
    op.drop_index(op.f('ix_events_reported_at'), table_name='events')
    op.drop_index(op.f('ix_events_grid_code'), table_name='events')
    op.drop_index(op.f('ix_events_grid_area_id'), table_name='events')
    op.drop_index(op.f('ix_events_category'), table_name='events')
    op.drop_geospatial_index('idx_events_geom', table_name='events', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('events')
    op.drop_index(op.f('ix_businesses_building_id'), table_name='businesses')
    op.drop_geospatial_index('idx_businesses_geom', table_name='businesses', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('businesses')
    op.drop_index(op.f('ix_teams_home_grid_code'), table_name='teams')
    op.drop_geospatial_index('idx_teams_geom', table_name='teams', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('teams')
    op.drop_geospatial_index('idx_road_nodes_geom', table_name='road_nodes', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('road_nodes')
    op.drop_table('pii_access_log')
    op.drop_table('load_batches')
    op.drop_table('event_categories')
    op.drop_table('dataset_info')
    op.drop_index(op.f('ix_buildings_grid_code'), table_name='buildings')
    op.drop_index(op.f('ix_buildings_community_code'), table_name='buildings')
    op.drop_geospatial_index('idx_buildings_geom', table_name='buildings', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('buildings')
    op.drop_index('ix_areas_current', table_name='areas', postgresql_where=sa.text('valid_to IS NULL'))
    op.drop_geospatial_index('idx_areas_geom', table_name='areas', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('areas')
