"""experiments: a tenant's A/B split of chat traffic between a base and a candidate model

The aligned model is served next to the one a tenant uses; ``share`` of the tenant's
conversations that ask for ``base`` go to ``candidate`` (deterministically by conversation
or user), so the two arms' feedback can be compared and the candidate rolled back.

Revision ID: 0005_experiments
Revises: 0001_core
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_experiments"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("name", sa.String(100), nullable=False, server_default=""),
        sa.Column("base", sa.String(200), nullable=False),
        sa.Column("candidate", sa.String(200), nullable=False),
        sa.Column("share", sa.Float, nullable=False, server_default="0"),
        sa.Column("status", sa.String(20), nullable=False, server_default="running", index=True),
        sa.Column("created_by", sa.Integer, nullable=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("experiments")
