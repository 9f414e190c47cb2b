"""analytics runs: engine column (local | spark)

Revision ID: a002_run_engine
Revises: a001_analytics
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = "a002_run_engine"
down_revision = "a001_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analytics_runs") as batch:
        batch.add_column(sa.Column("engine", sa.String(20), nullable=False, server_default="local"))


def downgrade() -> None:
    with op.batch_alter_table("analytics_runs") as batch:
        batch.drop_column("engine")
