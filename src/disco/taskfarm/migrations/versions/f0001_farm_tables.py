"""farm tables

Revision ID: f0001
Revises: 
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = 'f0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('farm_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('client_id', sa.String(length=36), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('farm_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_farm_attempts_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_farm_attempts_project_id'), ['project_id'], unique=False)

    op.create_table('farm_blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_table('farm_client_records',
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('consecutive_valid', sa.Integer(), nullable=False),
    sa.Column('invalid_total', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'project_id')
    )
    op.create_table('farm_clients',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('slots', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('cpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('last_seen', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('farm_clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_farm_clients_tenant'), ['tenant'], unique=False)

    op.create_table('farm_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('farm_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_farm_keys_tenant'), ['tenant'], unique=False)

    op.create_table('farm_projects',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('code', sa.JSON(), nullable=False),
    sa.Column('quorum', sa.Integer(), nullable=False),
    sa.Column('max_errors', sa.Integer(), nullable=False),
    sa.Column('max_instances', sa.Integer(), nullable=False),
    sa.Column('lease_s', sa.Float(), nullable=False),
    sa.Column('unit_seconds', sa.Float(), nullable=False),
    sa.Column('deadline', sa.Float(), nullable=True),
    sa.Column('comparator', sa.JSON(), nullable=False),
    sa.Column('max_output_bytes', sa.Integer(), nullable=False),
    sa.Column('units_total', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('farm_projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_farm_projects_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_farm_projects_tenant'), ['tenant'], unique=False)

    op.create_table('farm_units',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('quorum', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('canonical_instance_id', sa.Integer(), nullable=True),
    sa.Column('output_path', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['farm_projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'seq')
    )
    with op.batch_alter_table('farm_units', schema=None) as batch_op:
        batch_op.create_index('ix_farm_units_project_state', ['project_id', 'state'], unique=False)

    op.create_table('farm_instances',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=True),
    sa.Column('leased_at', sa.Float(), nullable=True),
    sa.Column('lease_expires', sa.Float(), nullable=True),
    sa.Column('reported_at', sa.Float(), nullable=True),
    sa.Column('answer', sa.String(length=16), nullable=False),
    sa.Column('output', sa.LargeBinary(), nullable=True),
    sa.Column('output_sha256', sa.String(length=64), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('cpu_s', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['farm_units.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('unit_id', 'attempt')
    )
    with op.batch_alter_table('farm_instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_farm_instances_client_id'), ['client_id'], unique=False)
        batch_op.create_index('ix_farm_instances_feed', ['project_id', 'state', 'id'], unique=False)
        batch_op.create_index('ix_farm_instances_lease', ['state', 'lease_expires'], unique=False)
        batch_op.create_index(batch_op.f('ix_farm_instances_unit_id'), ['unit_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('farm_instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_farm_instances_unit_id'))
        batch_op.drop_index('ix_farm_instances_lease')
        batch_op.drop_index('ix_farm_instances_feed')
        batch_op.drop_index(batch_op.f('ix_farm_instances_client_id'))

    op.drop_table('farm_instances')
    with op.batch_alter_table('farm_units', schema=None) as batch_op:
        batch_op.drop_index('ix_farm_units_project_state')

    op.drop_table('farm_units')
    with op.batch_alter_table('farm_projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_farm_projects_tenant'))
        batch_op.drop_index(batch_op.f('ix_farm_projects_state'))

    op.drop_table('farm_projects')
    with op.batch_alter_table('farm_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_farm_keys_tenant'))

    op.drop_table('farm_keys')
    with op.batch_alter_table('farm_clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_farm_clients_tenant'))

    op.drop_table('farm_clients')
    op.drop_table('farm_client_records')
    op.drop_table('farm_blobs')
    with op.batch_alter_table('farm_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_farm_attempts_project_id'))
        batch_op.drop_index(batch_op.f('ix_farm_attempts_kind'))

    op.drop_table('farm_attempts')

