"""Knowledge-base bookkeeping tables (the vectors and passages live in Milvus).

A document has an *active* ``version`` (the one retrieval may return) and, while it is
being (re)indexed, a ``pending_version``. Chunks carry ``doc_key = "<doc id>:<version>"``
in Milvus; retrieval filters on the active keys read from here, so flipping ``version``
in one SQL commit is what makes a replace atomic for readers.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zhinao.store.db import Base, utcnow


class KBCollection(Base):
    __tablename__ = "kb_collections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: ``tenant``: every member of the tenant reads; ``private``: owner, admins and listed members only
    visibility: Mapped[str] = mapped_column(String(20), default="tenant")
    embedder: Mapped[str] = mapped_column(String(100), default="")
    dim: Mapped[int] = mapped_column(Integer, default=0)
    sync_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_kb_collection_tenant_name"),)


class KBMember(Base):
    """A user's rights on a collection: read, write, and the document access tags they hold."""

    __tablename__ = "kb_members"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("kb_collections.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)
    access_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    __table_args__ = (UniqueConstraint("collection_id", "user_id", name="uq_kb_member"),)


class KBDocument(Base):
    __tablename__ = "kb_documents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("kb_collections.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(1000))  # file name or path; unique per collection
    title: Mapped[str] = mapped_column(String(500), default="")
    doc_type: Mapped[str] = mapped_column(String(20), default="")  # pdf docx pptx xlsx csv html md txt jsonl
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    access_tags: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every reader
    effective_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64), default="", index=True)
    pending_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    #: pending | indexing | ready | failed | deleting
    status: Mapped[str] = mapped_column(String(20), default="pending")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)  # active version; 0 = none yet
    pending_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("collection_id", "source", name="uq_kb_document_source"),)

    @property
    def doc_key(self) -> str:
        return f"{self.id}:{self.version}"
