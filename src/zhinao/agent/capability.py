"""The agent capability: ask a workspace's tables in Chinese or English, get verified SQL,
catalogue models, charts and code, with the work shown (issue 12).

What it brings to the platform, declared here and nowhere in the core (see
:mod:`zhinao.capability`): the :class:`~zhinao.agent.service.AgentService`, built from the
settings, the store, the MaaS model-client factory, the embedder provider and — through
``Parts.services`` — the analytics capability's service (the agent reads workspaces, it does
not own them); its Alembic branch (``migrations/``: sessions, answers, the example library);
the ``/api/agent`` routes, the ``zhinao ask`` / ``zhinao agent`` commands and the console's
"Ask your data / 问数" screen, which live in the web, CLI and console layers and are named here.

This module is imported whenever the registry loads, so it imports nothing heavy: the
service, its tools and the SQL machinery load when the service is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zhinao.capability import Capability, CliEntry, ConsolePageEntry, Parts


class AgentCapability(Capability):
    order = 30
    name = "agent"
    routers = ("zhinao.gateway.api.agent:router",)
    cli = (
        CliEntry("ask", "zhinao.cli.agent:ask", "Ask your data / 问数"),
        CliEntry("agent", "zhinao.cli.agent:app", "Analyst agent / 分析助手"),
    )
    console_pages = (ConsolePageEntry("agent", "/static/pages/agent.js"),)
    migrations = Path(__file__).parent / "migrations"
    models = ("zhinao.agent.models",)

    def build(self, parts: Parts) -> Any:
        from zhinao.agent.service import AgentService
        from zhinao.agent.store import AgentStore
        from zhinao.errors import NotFound

        if parts.services is None:
            raise NotFound("the agent needs the analytics capability's service (Parts.services is not set)")
        return AgentService(settings=parts.settings, db=parts.db, analytics=parts.services("analytics"),
                            llm=parts.llm, embedder=parts.embedder, store=AgentStore(parts.db))


capability = AgentCapability()
