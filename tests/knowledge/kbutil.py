"""Helpers for knowledge tests: a real KnowledgeService over real SQLite + Milvus Lite."""

from __future__ import annotations

from pathlib import Path

import zhinao.knowledge
from zhinao.knowledge.config import KBConfig
from zhinao.knowledge.service import KnowledgeService
from zhinao.maas.client import LLMClients
from zhinao.maas.conversations import ConversationService
from zhinao.maas.generation import GenerationService
from zhinao.maas.limits import LimitService, MemoryCounters
from zhinao.maas.tenancy import Principal
from zhinao.maas.usage import UsageService
from zhinao.runtime.base import ChatModel
from zhinao.runtime.echo import EchoChatModel, HashEmbedder
from zhinao.runtime.manager import ModelManager
from zhinao.runtime.registry import ModelSpec
from zhinao.settings import Settings
from zhinao.store.db import Database
from zhinao.store.jobs import JobRunner

KB_MIGRATIONS = Path(zhinao.knowledge.__file__).parent / "migrations"

ADMIN = Principal(tenant_id=1, tenant="acme", user_id=1, username="admin", key_id=None, role="admin")


def member(user_id: int, tenant_id: int = 1) -> Principal:
    return Principal(tenant_id=tenant_id, tenant="acme", user_id=user_id, username=f"u{user_id}", key_id=None,
                     role="member")


def model_clients(db: Database, settings: Settings, chat_model: ChatModel) -> LLMClients:
    """The real MaaS client path (scope, limits without quotas, fair slot, timeout, usage) over one engine.

    The engine instance the test built (an echo model, an in-process llama.cpp) is served by a
    real :class:`ModelManager` and its scheduler, so the knowledge service reaches it only as
    the platform would: through :class:`~zhinao.maas.client.LLMClient`.
    """
    models = ModelManager(default=chat_model.name)
    served = models.register(ModelSpec(name=chat_model.name, backend="echo"))
    served.replicas, served.inflight = [chat_model], [0]  # serve the test's own engine instance
    usage = UsageService(db)
    limits = LimitService(MemoryCounters(), usage.used_today, lambda tenant_id: {})
    gen = GenerationService(models=models, limits=limits, usage=usage, conversations=ConversationService(db),
                            settings=settings, routes={})
    return LLMClients(gen)


def make_service(home: Path, embedder=None, chat_model=None, **cfg) -> KnowledgeService:
    settings = Settings(home=home, env="test")
    db = Database(settings.db_url)
    db.migrate([KB_MIGRATIONS])
    config = KBConfig(**{"min_relevance": -1.0, **cfg})
    return KnowledgeService(settings=settings, db=db, jobs=JobRunner(db), embedder=embedder or HashEmbedder(),
                            llm=model_clients(db, settings, chat_model or EchoChatModel()), config=config)


def close_service(svc: KnowledgeService) -> None:
    svc.jobs.shutdown()
    svc.close()
    svc.db.dispose()


