"""`zhinao serve --demo` data: the knowledge collection, the analytics workspace and its example library load, twice."""

from __future__ import annotations

import pytest

from zhinao.demo import load_demo
from zhinao.platform import Platform

pytestmark = pytest.mark.slow


def test_demo_loads_and_is_idempotent(settings):
    p = Platform(settings)
    try:
        assert load_demo(p) == {"knowledge": "loaded", "analytics": "loaded", "agent": "loaded"}
        from zhinao.knowledge.service import SystemPrincipal

        who = SystemPrincipal(tenant_id=p.tenancy.tenant_by_name("default")["id"])
        colls = p.knowledge.list_collections(who)
        assert len(colls) == 1
        docs = p.knowledge.list_documents(who, colls[0]["name"])
        assert len(docs) >= 10
        assert "telco" in p.analytics.context(who.tenant_id, "demo").lower()
        from zhinao.agent.store import AgentStore

        n_examples = len(AgentStore(p.db).examples(who.tenant_id, "demo"))
        assert n_examples >= 40  # the demo workspace's seeded example library
        assert load_demo(p) == {"knowledge": "loaded", "analytics": "loaded", "agent": "loaded"}  # idempotent
        assert len(p.knowledge.list_documents(who, colls[0]["name"])) == len(docs)
        assert len(AgentStore(p.db).examples(who.tenant_id, "demo")) == n_examples
    finally:
        import asyncio

        asyncio.run(p.aclose())
