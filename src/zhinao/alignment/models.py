"""Alignment tables: dataset versions and trained models (the ``alignment`` Alembic branch).

A dataset version is immutable: its ``content_hash`` is the SHA-256 of its canonical JSONL
(train then eval), so building the same data again finds the same version instead of adding
one, and a model's row names the exact version it was trained on. Files live under
``home/alignment``; rows hold what a list, a job or a report needs. ``tenant_id`` is a plain
indexed integer as in ``jobs`` (no dependency on the core migration order).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zhinao.store.db import Base, utcnow


class AlignmentDataset(Base):
    """One version of a named dataset: ``kind`` sft (demonstrations) or preference (comparisons)."""

    __tablename__ = "alignment_datasets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  #: sft | preference
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    n_train: Mapped[int] = mapped_column(Integer, default=0)
    n_eval: Mapped[int] = mapped_column(Integer, default=0)
    path: Mapped[str] = mapped_column(String(1000))  #: folder holding train.jsonl and eval.jsonl
    #: where the rows came from, what dedupe and the scrubber removed, the split seed
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version", name="uq_alignment_ds_version"),)


class AlignedModel(Base):
    """A trained model registered by name: stage, base, checkpoint folder, metrics, its data."""

    __tablename__ = "alignment_models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(10))  #: sft | rm | dpo | ppo
    base: Mapped[str] = mapped_column(String(1000))  #: base model name or folder it started from
    path: Mapped[str] = mapped_column(String(1000))  #: merged Hugging Face checkpoint folder
    dataset_id: Mapped[int | None] = mapped_column(
        ForeignKey("alignment_datasets.id", ondelete="SET NULL"), nullable=True, index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_alignment_model_name"),)
