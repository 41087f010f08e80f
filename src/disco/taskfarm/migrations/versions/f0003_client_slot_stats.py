"""clients' slot stats (CPU and memory per slot, from heartbeats)

Revision ID: f0003
Revises: f0002
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = 'f0003'
down_revision = 'f0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('farm_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slot_stats', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('stats_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('farm_clients', schema=None) as batch_op:
        batch_op.drop_column('stats_at')
        batch_op.drop_column('slot_stats')
