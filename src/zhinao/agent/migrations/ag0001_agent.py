"""Analyst agent: sessions, answers (with the user's verdict), the per-workspace example library.

Revision ID: ag0001_agent
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "ag0001_agent"
down_revision = None
branch_labels = ("agent",)
depends_on = None  # no foreign key into core tables: tenant/user ids are plain integers


def upgrade() -> None:
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("user_id", sa.Integer, nullable=True, index=True),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "agent_answers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("session_id", sa.String(36), nullable=True, index=True),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.JSON, nullable=False),
        sa.Column("sql", sa.Text, nullable=True),
        sa.Column("route", sa.String(32), nullable=False, server_default=""),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False, server_default="0"),
        sa.Column("found", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("correction", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "agent_examples",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("workspace", sa.String(64), nullable=False, index=True),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("sql", sa.Text, nullable=True),
        sa.Column("call", sa.JSON, nullable=True),
        sa.Column("source", sa.String(20), nullable=False, server_default="accepted"),
        sa.Column("created_by", sa.Integer, nullable=True),
        sa.Column("answer_id", sa.Integer, nullable=True),
        sa.Column("embedding", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agent_examples")
    op.drop_table("agent_answers")
    op.drop_table("agent_sessions")
