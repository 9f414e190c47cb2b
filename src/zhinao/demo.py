"""Demo data loaded by ``make run`` (``zhinao serve --demo``): the sample telecom knowledge
base (marked as sample content), the analytics ``demo`` workspace (real public data) and that
workspace's starting example library for the analyst agent (sample question → SQL pairs).
Idempotent: re-running adds nothing. A failing part is logged and never stops the platform."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def load_demo(platform) -> dict[str, str]:
    platform.bootstrap()
    tenant_id = platform.tenancy.tenant_by_name("default")["id"]
    status: dict[str, str] = {}
    try:
        from zhinao.knowledge.demo import load_demo as load_kb

        load_kb(platform.knowledge, tenant_id)
        status["knowledge"] = "loaded"
    except Exception as e:  # demo data must never keep the platform from starting
        log.exception("demo knowledge base failed to load")
        status["knowledge"] = f"failed: {e}"
    try:
        platform.analytics.ensure_demo(tenant_id)
        status["analytics"] = "loaded"
    except Exception as e:
        log.exception("demo analytics workspace failed to load")
        status["analytics"] = f"failed: {e}"
    try:  # the demo workspace's starting example library (the agent learns from accepted answers)
        from zhinao.agent.demo_examples import seed_demo_examples
        from zhinao.agent.store import AgentStore

        seed_demo_examples(AgentStore(platform.db), tenant_id, "demo")
        status["agent"] = "loaded"
    except Exception as e:
        log.exception("demo agent example library failed to load")
        status["agent"] = f"failed: {e}"
    return status
