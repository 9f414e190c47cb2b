"""``AnalyticsService``: the analytics capability as the web layer, the CLI and the agent see it.

It composes the workspace manager (data, profiles, descriptions, glossary) and the run
manager (catalogue runs, versions, scoring). It knows nothing of HTTP and nothing of the
platform: it is built from the parts it uses (settings, the metadata store, the job
runner), by ``analytics/capability.py`` for the platform or directly in tests.
"""

from __future__ import annotations

import inspect
from typing import Any

from zhinao.analytics import datasets as demo_data
from zhinao.analytics.catalog import catalogue
from zhinao.analytics.catalog.protocol import primary_metric, supports_predict
from zhinao.analytics.datasources import DataSourceRegistry
from zhinao.analytics.engines import engines_for
from zhinao.analytics.runs import RunManager, model_class
from zhinao.analytics.sandbox import SqlLimits
from zhinao.analytics.workspace import DEFAULT_IMPORT_LIMIT, WorkspaceManager
from zhinao.errors import NotFound
from zhinao.safety import ArchiveLimits, ParseLimits
from zhinao.store.db import Database
from zhinao.store.jobs import JobRunner

DEMO_WORKSPACE = "demo"
DEMO_TABLES = ("telco", "thucnews", "milan_total", "groceries")


def model_metadata(cls) -> dict[str, Any]:
    info = cls.info
    params = {name: (p.default if p.default is not inspect.Parameter.empty else None)
              for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}
    ds = demo_data.DATASETS.get(info.dataset)
    engines = engines_for(cls)  # derived from each engine's translation, not a list kept beside it
    return {"key": info.key, "name_zh": info.name_zh, "name_en": info.name_en, "algorithm": info.algorithm,
            "theme": info.theme, "application_zh": info.application_zh, "application_en": info.application_en,
            "inputs": info.inputs, "metrics": list(info.metrics), "primary_metric": primary_metric(info),
            "dataset": info.dataset, "dataset_description": (ds.description_zh + " / " + ds.description_en) if ds else "",
            "dataset_licence": ds.licence if ds else "", "spark": "spark" in engines, "engines": engines, "synthetic": info.synthetic,
            "scores": supports_predict(cls), "params": {k: _plain(v) for k, v in params.items()},
            "task": info.task, "roles": [r.to_dict() for r in info.roles],
            "presets": [p.to_dict() for p in info.presets],
            "module": cls.__module__.rsplit(".", 1)[-1]}


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)


class AnalyticsService:
    """Facade over workspaces and runs, scoped by tenant id on every call."""

    def __init__(self, *, settings: Any, db: Database, jobs: JobRunner | None = None):
        """``jobs``: runs become background jobs there (its owner registers the ``analytics.run``
        handler, see ``analytics/capability.py``); without one a run executes in the caller."""
        self.settings, self.db, self.jobs = settings, db, jobs
        limit = getattr(self.settings, "analytics_max_import_bytes", None) or DEFAULT_IMPORT_LIMIT
        #: operator-registered databases, the only ones SQL imports read (issue 8, finding 5)
        self.sources = DataSourceRegistry(self.db, timeout_s=float(getattr(self.settings, "datasource_timeout_s", 300.0)))
        self.workspaces = WorkspaceManager(self.db, self.settings.home, int(limit),
                                           sql_limits=SqlLimits.from_settings(self.settings), sources=self.sources)
        self.workspaces.archive_limits = ArchiveLimits.from_settings(self.settings)
        self.workspaces.parse_limits = ParseLimits.from_settings(self.settings)
        self.runs = RunManager(self.db, self.settings.home, self.workspaces, self.jobs)

    @property
    def import_limit(self) -> int:
        return self.workspaces.import_limit

    # -- catalogue ------------------------------------------------------------------------
    def catalogue(self, theme: str | None = None) -> list[dict[str, Any]]:
        out = [model_metadata(c) for c in catalogue().values()]
        if theme:
            out = [m for m in out if m["theme"] == theme]
        return sorted(out, key=lambda m: (m["theme"], m["key"]))

    def model_info(self, key: str) -> dict[str, Any]:
        return model_metadata(model_class(key))

    def demo_datasets(self) -> list[dict[str, Any]]:
        return [{"key": k, "description_zh": d.description_zh, "description_en": d.description_en,
                 "licence": d.licence} for k, d in demo_data.DATASETS.items()]

    # -- demo -----------------------------------------------------------------------------
    def ensure_demo(self, tenant_id: int, tables: tuple[str, ...] = DEMO_TABLES) -> dict[str, Any]:
        """A ``demo`` workspace holding the shipped real data (idempotent)."""
        self.workspaces.ensure(tenant_id, DEMO_WORKSPACE, "示例数据（真实公开数据） / demo data (real public data)")
        have = {d["name"] for d in self.workspaces.datasets(tenant_id, DEMO_WORKSPACE)}
        for key in tables:
            if key not in have:
                self.workspaces.import_demo(tenant_id, DEMO_WORKSPACE, key)
        return self.workspaces.get(tenant_id, DEMO_WORKSPACE)

    # -- convenience pass-throughs used by the API/CLI/agent ---------------------------------
    def context(self, tenant_id: int, workspace: str) -> str:
        """Schema + descriptions + glossary text for the analyst agent's prompt."""
        return self.workspaces.context(tenant_id, workspace)

    def start_run(self, tenant_id: int, key: str, **kw: Any) -> dict[str, Any]:
        return self.runs.start(tenant_id, key, **kw)

    def score(self, tenant_id: int, run_id: int, workspace: str, dataset: str, output: str | None = None) -> dict[str, Any]:
        return self.runs.score(tenant_id, run_id, workspace, dataset, output)

    def latest_run(self, tenant_id: int, key: str) -> dict[str, Any]:
        for r in self.runs.list(tenant_id, key, limit=20):
            if r["status"] == "succeeded":
                return self.runs.get(tenant_id, r["id"])
        raise NotFound(f"no successful run of {key!r} yet")
