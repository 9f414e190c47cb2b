"""The knowledge capability: collections, documents, hybrid retrieval, cited answers.

What it brings to the platform, declared here and nowhere in the core (see
:mod:`zhinao.capability` and docs/architecture.md "How to add a capability"): the
:class:`~zhinao.knowledge.service.KnowledgeService` built from settings, the store, the job
runner, the embedder provider and the MaaS model-client factory; the ``kb.ingest`` job; the
composite model ``kb:<collection>``; its Alembic branch (``migrations/``); the ``/api/kb``
routes, the ``zhinao kb`` commands and the console's knowledge screen, which live in the web,
CLI and console layers and are named here; and the scheduled folder sync, which needs the
service to exist as soon as the server starts.

This module is imported whenever the registry loads, so it imports nothing heavy: Milvus
Lite and the parsers load when the service is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zhinao.capability import Capability, CliEntry, ConsolePageEntry, Parts, ServiceHandler

INGEST_JOB = "kb.ingest"


def _ingest(service: Any, ctx: Any, params: dict[str, Any]) -> Any:
    return service.job_handlers()[INGEST_JOB](ctx, params)


def _route(service: Any, *args: Any, **kw: Any) -> Any:
    return service.model_route(*args, **kw)


class KnowledgeCapability(Capability):
    order = 10
    name = "knowledge"
    routers = ("zhinao.gateway.api.kb:router",)
    cli = (CliEntry("kb", "zhinao.cli.kb:app", "Knowledge base / 知识库"),)
    console_pages = (ConsolePageEntry("knowledge", "/static/pages/knowledge.js"),)
    job_kind_prefixes = ("kb.",)
    migrations = Path(__file__).parent / "migrations"
    models = ("zhinao.knowledge.models",)

    def build(self, parts: Parts) -> Any:
        from zhinao.knowledge.service import KnowledgeService

        return KnowledgeService(settings=parts.settings, db=parts.db, jobs=parts.jobs, embedder=parts.embedder,
                                llm=parts.llm)

    def job_handlers(self) -> Mapping[str, ServiceHandler]:
        return {INGEST_JOB: _ingest}

    def model_routes(self) -> Mapping[str, Callable[..., Any]]:
        return {"kb:": _route}

    def build_at_start(self, settings: Any) -> bool:
        return bool(getattr(settings, "kb_sync_interval_s", 0))  # the scheduled sync runs in the service


capability = KnowledgeCapability()
