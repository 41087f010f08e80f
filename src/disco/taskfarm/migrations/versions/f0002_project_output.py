"""a project's output: files (NULL) or a DDFS tag

Revision ID: f0002
Revises: f0001
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = 'f0002'
down_revision = 'f0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('farm_projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('output', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('farm_projects', schema=None) as batch_op:
        batch_op.drop_column('output')
