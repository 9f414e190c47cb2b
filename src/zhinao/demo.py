"""Demo data loaded by ``make run`` (``zhinao serve --demo``): sample knowledge base and
analytics workspace, each marked as sample content. Idempotent."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def load_demo(platform) -> None:
    platform.bootstrap()
    tenant = platform.tenancy.tenant_by_name("default")
    for name, loader in (("knowledge", "zhinao.knowledge.demo:load_demo"),
                         ("analytics", "zhinao.analytics.demo:load_demo")):
        mod_name, fn = loader.split(":")
        try:
            import importlib

            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name == mod_name:
                continue
            raise
        try:
            getattr(mod, fn)(getattr(platform, name), tenant)
            log.info("demo data loaded: %s", name)
        except Exception:  # demo data must never keep the platform from starting
            log.exception("demo data for %s failed to load", name)
