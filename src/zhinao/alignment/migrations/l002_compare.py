"""alignment compare mode: sessions (a prompt, its ranking) and their answers

Revision ID: l002_compare
Revises: l001_alignment
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "l002_compare"
down_revision = "l001_alignment"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alignment_compare_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("user_id", sa.Integer, nullable=True, index=True),
        sa.Column("key_id", sa.Integer, nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt", sa.JSON, nullable=False),
        sa.Column("ranking", sa.JSON, nullable=True),
        sa.Column("ranked_by", sa.Integer, nullable=True),
        sa.Column("ranked_at", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "alignment_compare_answers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("alignment_compare_sessions.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alignment_compare_answers")
    op.drop_table("alignment_compare_sessions")
