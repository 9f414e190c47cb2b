"""One path to a model: the knowledge base's model calls go through the MaaS client.

Before issue 9 the knowledge chat took its engine from ``ModelManager.get()``: no scheduler
slot, no generation timeout, no usage row for the query condensation, and on ``/v1``
``kb:<c>`` skipped the slot and the timeout. Each test here drives the real app (TestClient,
real SQLite, Milvus Lite, echo engines behind the real ModelManager and FairScheduler) and
fails on that code. (Scope and rpm on ``/api/kb/{c}/chat``: tests/security/test_model_scope.py.)
"""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from zhinao.gateway.app import create_app
from zhinao.platform import Platform
from zhinao.store.models import UsageRecord

OP = {"Authorization": "Bearer zk-admin-test-key-000000000000"}
MSG = [{"role": "user", "content": "携号转网条件"}]
FOLLOW_UP = [{"role": "user", "content": "携号转网需要什么条件？"},
             {"role": "assistant", "content": "在网满 120 天 [1]。"},
             {"role": "user", "content": "收费吗？"}]
MODELS = '''
[[models]]
name = "other"
backend = "echo"

[[models]]
name = "slow"
backend = "echo"
slots = 1
[models.options]
delay_s = 1.0
'''


def _platform(settings, **update) -> Platform:
    settings.models_path.parent.mkdir(parents=True, exist_ok=True)
    settings.models_path.write_text(MODELS, encoding="utf-8")
    # the answer path of before issue 11 (no answerability call, the model writes the answer): these
    # tests count the generation calls; the judgement's own row (kb.judge) is tested in test_kb_answerability.py
    p = Platform(settings.model_copy(update={"default_model": "other", "kb_answerability": "off",
                                             "kb_answer_style": "generative", **update}))
    p.knowledge.config.min_relevance = -1.0  # HashEmbedder similarities are not e5's
    return p


def _client(p: Platform):
    c = TestClient(create_app(p, warm_default=False))
    c.__enter__()
    assert c.post("/api/kb/collections", json={"name": "cs"}, headers=OP).status_code == 201
    files = [("files", ("mnp.md", "# 携号转网\n\n## 条件\n\n在网满 120 天。\n\n## 费用\n\n携号转网免收手续费。".encode(),
                        "text/markdown"))]
    r = c.post("/api/kb/cs/documents", files=files, data={"wait": "true"}, headers=OP)
    assert r.status_code == 202 and r.json()["job"]["status"] == "succeeded", r.text
    return c


@pytest.fixture
def platform(settings):
    return _platform(settings)


@pytest.fixture
def client(platform):
    c = _client(platform)
    yield c
    c.__exit__(None, None, None)


def key(platform, models, **limits) -> tuple[dict, int]:
    tid = platform.tenancy.tenant_by_name("default")["id"]
    k = platform.tenancy.create_key(tid, name="scoped", role="member", models=models, **limits)
    return {"Authorization": f"Bearer {k['key']}"}, k["id"]


def rows(platform, key_id) -> list[tuple[str, str, int]]:
    with platform.db.session() as s:
        return [(u.endpoint, u.model, u.status) for u in
                s.scalars(select(UsageRecord).where(UsageRecord.key_id == key_id).order_by(UsageRecord.id))]


def test_condensation_is_metered_as_its_own_call(client, platform):
    """A follow-up question is rewritten by the model: that call is a usage row too (kb.condense)."""
    auth, key_id = key(platform, ["echo"])
    r = client.post("/api/kb/cs/chat", json={"messages": FOLLOW_UP, "model": "echo"}, headers=auth)
    assert r.status_code == 200 and r.json()["citations"], r.text
    assert rows(platform, key_id) == [("kb.condense", "echo", 200), ("kb.chat", "echo", 200)]
    # the reply's usage is both calls' (what the key was charged)
    with platform.db.session() as s:
        spent = sum(u.prompt_tokens + u.completion_tokens
                    for u in s.scalars(select(UsageRecord).where(UsageRecord.key_id == key_id)))
    u = r.json()["usage"]
    assert u["prompt_tokens"] + u["completion_tokens"] == spent
    # a single question needs no rewrite: one call, one row
    assert client.post("/api/kb/cs/chat", json={"messages": MSG, "model": "echo"}, headers=auth).status_code == 200
    assert rows(platform, key_id)[2:] == [("kb.chat", "echo", 200)]


def test_usage_groups_by_capability(client, platform):
    auth, key_id = key(platform, ["echo", "kb:cs", "other"])
    assert client.post("/api/kb/cs/chat", json={"messages": FOLLOW_UP, "model": "echo"}, headers=auth).status_code == 200
    r = client.post("/v1/chat/completions", json={"model": "kb:cs", "messages": MSG}, headers=auth)
    assert r.status_code == 200 and r.json()["citations"], r.text
    assert "/api/kb/cs/passages/" in r.json()["choices"][0]["message"]["content"]  # the source list
    assert r.json()["citations"][0]["url"].startswith("/api/kb/cs/passages/")
    # /v1 kb:cs: one row for the model call inside (the default, "other"), none for the composite name
    assert rows(platform, key_id) == [("kb.condense", "echo", 200), ("kb.chat", "echo", 200),
                                      ("kb.chat", "other", 200)]
    out = client.get("/api/usage", params={"group_by": "endpoint"}, headers=auth).json()
    by = {row["endpoint"]: row["requests"] for row in out["rows"]}
    assert by == {"kb.chat": 2, "kb.condense": 1}, out
    assert client.get("/api/usage", params={"group_by": "nope"}, headers=auth).status_code == 400


def test_kb_on_v1_counts_against_the_key_rpm(client, platform):
    auth, key_id = key(platform, ["kb:cs", "other"], rpm=2)
    body = {"model": "kb:cs", "messages": MSG}
    for _ in range(2):
        assert client.post("/v1/chat/completions", json=body, headers=auth).status_code == 200
    r = client.post("/v1/chat/completions", json=body, headers=auth)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded", r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    r = client.post("/v1/chat/completions", json={**body, "stream": True}, headers=auth)
    assert r.status_code == 429, r.text  # refused before the stream starts, not in-band
    assert rows(platform, key_id) == [("kb.chat", "other", 200)] * 2


def test_kb_model_outside_the_scope_is_refused_before_retrieval(client, platform):
    """The client checks the model first: a forbidden model costs no retrieval and no condensation."""
    auth, key_id = key(platform, ["echo"])
    r = client.post("/api/kb/cs/chat", json={"messages": FOLLOW_UP, "model": "other"}, headers=auth)
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed", r.text
    assert rows(platform, key_id) == []  # the condensation was never run either


def _wait(cond, timeout=20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_kb_requests_wait_for_a_slot_in_the_fair_queue(settings):
    """One slot, a slow echo: a second knowledge request (here over /v1 kb:cs) waits in the queue."""
    p = _platform(settings, default_model="slow")
    c = _client(p)
    try:
        auth, key_id = key(p, ["slow", "kb:cs"])
        sched = p.models.resolve("slow").scheduler
        results: dict[str, int] = {}

        def call(name, path, body):
            results[name] = c.post(path, json=body, headers=auth).status_code

        a = threading.Thread(target=call, args=("api", "/api/kb/cs/chat", {"messages": MSG, "model": "slow"}))
        a.start()
        assert _wait(lambda: sched.stats().busy == 1), "the first knowledge answer never took the slot"
        b = threading.Thread(target=call, args=("v1", "/v1/chat/completions", {"model": "kb:cs", "messages": MSG}))
        b.start()
        assert _wait(lambda: sched.stats().queued == 1), sched.stats()
        assert sched.stats().queued_by_tenant == {"default": 1}
        # what the caller sees on /api/status: its tenant's knowledge request waiting for the slot
        live = {m["name"]: m for m in c.get("/api/status", headers=auth).json()["models"]}
        assert live["slow"]["busy"] == 1 and live["slow"]["queued"] == 1, live["slow"]
        a.join(30)
        b.join(30)
        assert results == {"api": 200, "v1": 200}
        assert sched.stats().admitted >= 2 and sched.stats().queued == 0
        assert rows(p, key_id) == [("kb.chat", "slow", 200)] * 2
    finally:
        c.__exit__(None, None, None)


def test_generation_timeout_applies_to_kb_answers(settings):
    p = _platform(settings, generation_timeout_s=0.3)
    c = _client(p)
    try:
        auth, key_id = key(p, ["slow"])
        r = c.post("/api/kb/cs/chat", json={"messages": MSG, "model": "slow"}, headers=auth)
        assert r.status_code == 504 and r.json()["error"]["code"] == "generation_timeout", r.text
        assert rows(p, key_id) == [("kb.chat", "slow", 504)]
    finally:
        c.__exit__(None, None, None)


def test_embeddings_are_metered_by_the_client(client, platform):
    auth, key_id = key(platform, None)
    r = client.post("/v1/embeddings", json={"model": "default", "input": ["携号转网", "漫游"]}, headers=auth)
    assert r.status_code == 200 and len(r.json()["data"]) == 2, r.text
    assert rows(platform, key_id) == [("embeddings", "default", 200)]
    scoped, _ = key(platform, ["echo"])
    r = client.post("/v1/embeddings", json={"model": "default", "input": "x"}, headers=scoped)
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed", r.text


def test_knowledge_reaches_no_engine_directly():
    """The seam itself: knowledge/ holds no ModelManager, no platform, no web links."""
    from pathlib import Path

    import zhinao.knowledge

    root = Path(zhinao.knowledge.__file__).parent
    for f in root.rglob("*.py"):
        text = f.read_text(encoding="utf-8")
        for banned in ("models.get(", "ModelManager", "platform.models", "<mark>", '"/api/', "_SERVICES"):
            assert banned not in text, f"{f.relative_to(root)} contains {banned!r}"
    for part in ("rag.py", "ingestion.py"):  # the parts the service is built from never import it back
        assert "knowledge.service" not in (root / part).read_text(encoding="utf-8"), part
