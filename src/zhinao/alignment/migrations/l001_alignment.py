"""alignment tables: dataset versions, trained models

Revision ID: l001_alignment
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "l001_alignment"
down_revision = None
branch_labels = ("alignment",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alignment_datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False, index=True),
        sa.Column("n_train", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_eval", sa.Integer, nullable=False, server_default="0"),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("stats", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", "version", name="uq_alignment_ds_version"),
    )
    op.create_table(
        "alignment_models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(10), nullable=False),
        sa.Column("base", sa.String(1000), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("alignment_datasets.id", ondelete="SET NULL"),
                  nullable=True, index=True),
        sa.Column("job_id", sa.Integer, nullable=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_alignment_model_name"),
    )


def downgrade() -> None:
    op.drop_table("alignment_models")
    op.drop_table("alignment_datasets")
