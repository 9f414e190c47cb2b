"""Helpers for knowledge tests: a real KnowledgeService over real SQLite + Milvus Lite."""

from __future__ import annotations

from pathlib import Path

import zhinao.knowledge
from zhinao.knowledge.config import KBConfig
from zhinao.knowledge.service import KnowledgeService
from zhinao.maas.client import clients_for_engine
from zhinao.maas.tenancy import Principal
from zhinao.runtime.echo import EchoChatModel, HashEmbedder
from zhinao.settings import Settings
from zhinao.store.db import Database
from zhinao.store.jobs import JobRunner

KB_MIGRATIONS = Path(zhinao.knowledge.__file__).parent / "migrations"

ADMIN = Principal(tenant_id=1, tenant="acme", user_id=1, username="admin", key_id=None, role="admin")


def member(user_id: int, tenant_id: int = 1) -> Principal:
    return Principal(tenant_id=tenant_id, tenant="acme", user_id=user_id, username=f"u{user_id}", key_id=None,
                     role="member")


def make_service(home: Path, embedder=None, chat_model=None, **cfg) -> KnowledgeService:
    """The service over the real MaaS client path (scope, limits, fair slot, timeout, usage) to ``chat_model``."""
    settings = Settings(home=home, env="test")
    db = Database(settings.db_url)
    db.migrate([KB_MIGRATIONS])
    config = KBConfig(**{"min_relevance": -1.0, **cfg})
    return KnowledgeService(settings=settings, db=db, jobs=JobRunner(db), embedder=embedder or HashEmbedder(),
                            llm=clients_for_engine(chat_model or EchoChatModel(), db=db, settings=settings), config=config)


def close_service(svc: KnowledgeService) -> None:
    svc.jobs.shutdown()
    svc.close()
    svc.db.dispose()


