"""The analyst agent's tables in the metadata store: sessions, answers, the example library.

A *session* is one conversation over one workspace; its ``state`` (the previous question, SQL,
tables, filters) is what lets "now only for fiber customers" be answered as a follow-up.
An *answer* keeps everything the agent showed (the :class:`~zhinao.agent.base.AgentAnswer`
as JSON, plus its SQL, route, model and latency as columns for queries) and what the user
then said about it (``status`` accepted / corrected, the ``correction``): raw material for the
alignment loop. An *example* is a worked question -> SQL (or tool call) pair in a workspace's
library; it grows when users accept or correct answers, and the agent retrieves the closest
ones into its prompt.

Every row carries ``tenant_id`` (a plain indexed integer, as in ``jobs`` and ``analytics``, so
this branch does not depend on the core migration order); the store filters every read by it.
Workspaces are referred to by name, as the API and CLI name them: a workspace that is deleted
and re-created keeps its library.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from zhinao.store.db import Base, utcnow


class AgentSession(Base):
    __tablename__ = "agent_sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  #: a uuid4 (not guessable across tenants)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    workspace: Mapped[str] = mapped_column(String(64))
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AgentAnswerRecord(Base):
    """One answer as shown to the user, and the user's verdict on it."""

    __tablename__ = "agent_answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    workspace: Mapped[str] = mapped_column(String(64))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  #: AgentAnswer.as_dict()
    sql: Mapped[str | None] = mapped_column(Text, nullable=True)  #: the final statement executed
    route: Mapped[str] = mapped_column(String(32), default="")
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    found: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str | None] = mapped_column(String(20), nullable=True)  #: None | accepted | corrected
    correction: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  #: {sql?, answer?}
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AgentExample(Base):
    """A worked example in a workspace's library: a question and the SQL or tool call that answers it."""

    __tablename__ = "agent_examples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    workspace: Mapped[str] = mapped_column(String(64), index=True)
    question: Mapped[str] = mapped_column(Text)
    sql: Mapped[str | None] = mapped_column(Text, nullable=True)
    call: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  #: {"tool": ..., "args": {...}}
    source: Mapped[str] = mapped_column(String(20), default="accepted")  #: accepted | corrected | manual
    created_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    answer_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  #: the answer it came from
    #: the question's embedding (computed on first use with an embedder; dim checks a change of embedder)
    embedding: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
