"""Analytics tables in the metadata store: workspaces, datasets, glossary terms, runs.

The data itself lives in one DuckDB file per workspace; these rows hold what the console,
the API and the LLM agent need to *understand* it (profiles, column descriptions, the
business glossary) and the history of catalogue runs (metrics, versions, artefact paths).
``tenant_id`` is a plain indexed integer, as in ``jobs``, so analytics does not depend on
the core migration order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zhinao.store.db import Base, utcnow


class AnalyticsWorkspace(Base):
    __tablename__ = "analytics_workspaces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    path: Mapped[str] = mapped_column(String(1000))  #: the DuckDB file
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_analytics_ws_tenant_name"),)


class AnalyticsDataset(Base):
    """A table in a workspace, with where it came from and its profile."""

    __tablename__ = "analytics_datasets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("analytics_workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))  #: DuckDB table name
    source: Mapped[str] = mapped_column(String(20))  #: csv|parquet|excel|json|sql|demo|score
    source_detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  #: file name, encoding, url (no password) ...
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    description: Mapped[str] = mapped_column(Text, default="")
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    column_descriptions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_analytics_ds_ws_name"),)


class GlossaryTerm(Base):
    """A business term (ARPU, 离网率 ...) the agent reads next to the schema."""

    __tablename__ = "analytics_glossary"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("analytics_workspaces.id", ondelete="CASCADE"), index=True)
    term: Mapped[str] = mapped_column(String(100))
    term_en: Mapped[str] = mapped_column(String(200), default="")
    definition_zh: Mapped[str] = mapped_column(Text, default="")
    definition_en: Mapped[str] = mapped_column(Text, default="")
    formula: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("workspace_id", "term", name="uq_analytics_glossary_ws_term"),)


class AnalyticsRun(Base):
    """One catalogue run: train, evaluate, explain, persist as version ``version`` of ``model_key``."""

    __tablename__ = "analytics_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("analytics_workspaces.id", ondelete="SET NULL"), nullable=True, index=True)
    model_key: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[str] = mapped_column(String(200), default="")  #: "demo:<key>" or a workspace table
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    engine: Mapped[str] = mapped_column(String(20), default="local")  #: local (DuckDB + scikit-learn) | spark
    preset: Mapped[str | None] = mapped_column(String(64), nullable=True)  #: application model (ModelInfo.presets)
    #: role -> column(s) the run used, what was inferred and what was left out (roles.Binding.to_dict)
    binding: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")  #: queued|running|succeeded|failed
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    metrics: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    baseline: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    baseline_name: Mapped[str] = mapped_column(String(200), default="")
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    charts: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  #: chart names (PNG files in artifact_dir)
    artifact_dir: Mapped[str] = mapped_column(String(1000), default="")
    score_table: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (UniqueConstraint("model_key", "version", name="uq_analytics_run_key_version"),)


class AnalyticsDataSource(Base):
    """A database the platform operator registered for SQL imports (issue 8, finding 5).

    Tenants name a source, never a URL: ``url`` (with its credentials) stays on the server
    and is never returned by any API. ``all_tenants`` or ``tenant_ids`` say who may import.
    """

    __tablename__ = "analytics_datasources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)  #: SQLAlchemy URL with credentials; server-side only
    description: Mapped[str] = mapped_column(Text, default="")
    all_tenants: Mapped[bool] = mapped_column(Boolean, default=False)
    tenant_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("name", name="uq_analytics_datasource_name"),)
