"""analytics data sources: operator-registered databases for SQL imports

Revision ID: a003_datasources
Revises: a002_run_engine
Create Date: 2026-12-10
"""
import sqlalchemy as sa
from alembic import op

revision = "a003_datasources"
down_revision = "a002_run_engine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_datasources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("all_tenants", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("tenant_ids", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("name", name="uq_analytics_datasource_name"),
    )


def downgrade() -> None:
    op.drop_table("analytics_datasources")
