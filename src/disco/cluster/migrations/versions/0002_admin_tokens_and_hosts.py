"""admin tokens and the SSH host pool

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('admin', sa.Boolean(), nullable=False, server_default=sa.false()))

    op.create_table('hosts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('private_key_enc', sa.Text(), nullable=False),
    sa.Column('host_key', sa.Text(), nullable=False),
    sa.Column('host_key_source', sa.String(length=16), nullable=False),
    sa.Column('prefix', sa.String(length=255), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('cluster_id', sa.String(length=36), nullable=True),
    sa.Column('node', sa.String(length=32), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('check_result', sa.JSON(), nullable=False),
    sa.Column('check_error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('address', 'port'),
    sa.UniqueConstraint('cluster_id', 'node')
    )
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hosts_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_hosts_cluster_id'), ['cluster_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hosts_cluster_id'))
        batch_op.drop_index(batch_op.f('ix_hosts_state'))
    op.drop_table('hosts')
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_column('admin')
