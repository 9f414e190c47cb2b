"""`zhinao serve --demo` data: the knowledge collection and the analytics workspace load, twice."""

from __future__ import annotations

import pytest

from zhinao.demo import load_demo
from zhinao.platform import Platform

pytestmark = pytest.mark.slow


def test_demo_loads_and_is_idempotent(settings):
    p = Platform(settings)
    try:
        assert load_demo(p) == {"knowledge": "loaded", "analytics": "loaded"}
        from zhinao.knowledge.service import SystemPrincipal

        who = SystemPrincipal(tenant_id=p.tenancy.tenant_by_name("default")["id"])
        colls = p.knowledge.list_collections(who)
        assert len(colls) == 1
        docs = p.knowledge.list_documents(who, colls[0]["name"])
        assert len(docs) >= 10
        assert "telco" in p.analytics.context(who.tenant_id, "demo").lower()
        assert load_demo(p) == {"knowledge": "loaded", "analytics": "loaded"}  # idempotent
        assert len(p.knowledge.list_documents(who, colls[0]["name"])) == len(docs)
    finally:
        import asyncio

        asyncio.run(p.aclose())
