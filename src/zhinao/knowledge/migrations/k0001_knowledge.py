"""Knowledge base: collections, members, documents.

Revision ID: k0001_knowledge
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "k0001_knowledge"
down_revision = None
branch_labels = ("knowledge",)
depends_on = None  # no foreign key into core tables: tenant/user ids are plain integers


def upgrade() -> None:
    op.create_table(
        "kb_collections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("owner_user_id", sa.Integer, nullable=True),
        sa.Column("visibility", sa.String(20), nullable=False, server_default="tenant"),
        sa.Column("embedder", sa.String(100), nullable=False, server_default=""),
        sa.Column("dim", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sync_dir", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_kb_collection_tenant_name"),
    )
    op.create_table(
        "kb_members",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("kb_collections.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("user_id", sa.Integer, nullable=False, index=True),
        sa.Column("can_write", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("access_tags", sa.JSON, nullable=False),
        sa.UniqueConstraint("collection_id", "user_id", name="uq_kb_member"),
    )
    op.create_table(
        "kb_documents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("kb_collections.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("title", sa.String(500), nullable=False, server_default=""),
        sa.Column("doc_type", sa.String(20), nullable=False, server_default=""),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("access_tags", sa.JSON, nullable=False),
        sa.Column("effective_date", sa.Date, nullable=True),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False, server_default="", index=True),
        sa.Column("pending_hash", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pending_version", sa.Integer, nullable=True),
        sa.Column("chunk_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("job_id", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("collection_id", "source", name="uq_kb_document_source"),
    )


def downgrade() -> None:
    op.drop_table("kb_documents")
    op.drop_table("kb_members")
    op.drop_table("kb_collections")
