"""The analytics capability: DuckDB workspaces, the mining-model catalogue, runs as jobs.

What it brings to the platform, declared here and nowhere in the core (see
:mod:`zhinao.capability` and docs/architecture.md "How to add a capability"): the
:class:`~zhinao.analytics.service.AnalyticsService` built from settings, the store and the
job runner; the ``analytics.run`` job handler; its Alembic branch (``migrations/``); the
``/api/analytics`` and ``/api/datasources`` routes, the ``zhinao data`` commands and the
console's analytics screen, which live in the web, CLI and console layers and are named here.

This module is imported whenever the registry loads, so it imports nothing heavy: pandas,
DuckDB and scikit-learn load when the service is built or a run executes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zhinao.capability import Capability, CliEntry, ConsolePageEntry, Parts, ServiceHandler


def _run(service: Any, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    from zhinao.analytics.runs import run_job

    return run_job(ctx, params)


class AnalyticsCapability(Capability):
    order = 20
    name = "analytics"
    routers = ("zhinao.gateway.api.analytics:router",)
    cli = (
        CliEntry("data", "zhinao.cli.data:app", "Analytics workspaces and mining models / 数据分析"),
        # the issue's `zhinao models run KEY`: the same command under models
        CliEntry("models run", "zhinao.cli.data:run", "Run a catalogue mining model (same as `zhinao data run`)"),
    )
    console_pages = (ConsolePageEntry("analytics", "/static/pages/analytics.js"),)
    job_kind_prefixes = ("analytics.",)
    migrations = Path(__file__).parent / "migrations"
    models = ("zhinao.analytics.models",)

    def build(self, parts: Parts) -> Any:
        from zhinao.analytics.service import AnalyticsService

        return AnalyticsService(settings=parts.settings, db=parts.db, jobs=parts.jobs)

    def job_handlers(self) -> Mapping[str, ServiceHandler]:
        return {"analytics.run": _run}


capability = AnalyticsCapability()
