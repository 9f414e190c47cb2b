"""core tables: tenancy, keys, models, usage, conversations, turns, feedback, jobs

Revision ID: 0001_core
Revises:
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = ("core",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("rpm", sa.Integer), sa.Column("tpm", sa.Integer), sa.Column("tokens_per_day", sa.BigInteger),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(300)),
        sa.Column("role", sa.String(20), nullable=False, server_default="member"),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column("name", sa.String(100), nullable=False, server_default=""),
        sa.Column("kind", sa.String(20), nullable=False, server_default="api"),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False, server_default="member"),
        sa.Column("models", sa.JSON),
        sa.Column("rpm", sa.Integer), sa.Column("tpm", sa.Integer), sa.Column("tokens_per_day", sa.BigInteger),
        sa.Column("expires_at", sa.DateTime), sa.Column("revoked_at", sa.DateTime),
        sa.Column("last_used_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "usage",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("key_id", sa.Integer, index=True),
        sa.Column("user_id", sa.Integer),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(50), nullable=False),
        sa.Column("day", sa.Date, nullable=False, index=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Float, nullable=False, server_default="0"),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("status", sa.Integer, nullable=False, server_default="200"),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_usage_tenant_day", "usage", ["tenant_id", "day"])
    op.create_table(
        "conversations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), index=True),
        sa.Column("title", sa.String(300), nullable=False, server_default=""),
        sa.Column("source", sa.String(20), nullable=False, server_default="console"),
        sa.Column("model", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "chat_turns",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("conversation_id", sa.Integer, sa.ForeignKey("conversations.id", ondelete="CASCADE"), index=True),
        sa.Column("parent_turn_id", sa.Integer, sa.ForeignKey("chat_turns.id", ondelete="SET NULL")),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("user_id", sa.Integer), sa.Column("key_id", sa.Integer),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("messages", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("response", sa.Text, nullable=False, server_default=""),
        sa.Column("tool_calls", sa.JSON),
        sa.Column("finish_reason", sa.String(30)),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Float, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("turn_id", sa.Integer, sa.ForeignKey("chat_turns.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("user_id", sa.Integer),
        sa.Column("rating", sa.Integer),
        sa.Column("corrected_answer", sa.Text), sa.Column("comment", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("turn_id", "user_id", name="uq_feedback_turn_user"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, index=True),
        sa.Column("kind", sa.String(50), nullable=False, index=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="queued"),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON), sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime), sa.Column("finished_at", sa.DateTime),
    )


def downgrade() -> None:
    for t in ("jobs", "feedback", "chat_turns", "conversations", "usage", "models", "api_keys", "users", "tenants"):
        op.drop_table(t)
