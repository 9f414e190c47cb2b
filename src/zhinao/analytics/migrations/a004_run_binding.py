"""analytics runs: the column binding and the preset a run used (issue 10)

Revision ID: a004_run_binding
Revises: a003_datasources
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "a004_run_binding"
down_revision = "a003_datasources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analytics_runs") as batch:
        batch.add_column(sa.Column("preset", sa.String(64), nullable=True))
        batch.add_column(sa.Column("binding", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analytics_runs") as batch:
        batch.drop_column("binding")
        batch.drop_column("preset")
