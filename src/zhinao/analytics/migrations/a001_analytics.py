"""analytics tables: workspaces, datasets, glossary, runs

Revision ID: a001_analytics
Revises:
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "a001_analytics"
down_revision = None
branch_labels = ("analytics",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_workspaces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_analytics_ws_tenant_name"),
    )
    op.create_table(
        "analytics_datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workspace_id", sa.Integer, sa.ForeignKey("analytics_workspaces.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("source_detail", sa.JSON, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("profile", sa.JSON, nullable=False),
        sa.Column("column_descriptions", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("workspace_id", "name", name="uq_analytics_ds_ws_name"),
    )
    op.create_table(
        "analytics_glossary",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workspace_id", sa.Integer, sa.ForeignKey("analytics_workspaces.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("term", sa.String(100), nullable=False),
        sa.Column("term_en", sa.String(200), nullable=False, server_default=""),
        sa.Column("definition_zh", sa.Text, nullable=False, server_default=""),
        sa.Column("definition_en", sa.Text, nullable=False, server_default=""),
        sa.Column("formula", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("workspace_id", "term", name="uq_analytics_glossary_ws_term"),
    )
    op.create_table(
        "analytics_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("workspace_id", sa.Integer, sa.ForeignKey("analytics_workspaces.id", ondelete="SET NULL"),
                  nullable=True, index=True),
        sa.Column("model_key", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("dataset", sa.String(200), nullable=False, server_default=""),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="queued"),
        sa.Column("job_id", sa.Integer, nullable=True, index=True),
        sa.Column("metrics", sa.JSON), sa.Column("baseline", sa.JSON),
        sa.Column("baseline_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("explanation", sa.JSON), sa.Column("charts", sa.JSON),
        sa.Column("artifact_dir", sa.String(1000), nullable=False, server_default=""),
        sa.Column("score_table", sa.String(64)),
        sa.Column("error", sa.Text),
        sa.Column("duration_s", sa.Float),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.UniqueConstraint("model_key", "version", name="uq_analytics_run_key_version"),
    )


def downgrade() -> None:
    for t in ("analytics_runs", "analytics_glossary", "analytics_datasets", "analytics_workspaces"):
        op.drop_table(t)
