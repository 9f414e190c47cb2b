"""Finding 9: a key scoped to one model reached other models through the knowledge chat.

A key allowed only ``echo`` asked ``/api/kb/{c}/chat`` for another model (or for none,
getting the default), or ``/v1/chat/completions`` for ``kb:<c>``, and got 200. The scope
now applies to the chat model the knowledge chat really runs, ``kb:<c>`` on /v1 is a model
the key must be allowed (``kb:<c>`` or ``kb:*``), and the knowledge chat counts against the
key's rpm and is metered (usage rows with endpoint ``kb.chat``).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from zhinao.gateway.app import create_app
from zhinao.platform import Platform
from zhinao.store.models import UsageRecord

OP = {"Authorization": "Bearer zk-admin-test-key-000000000000"}
MSG = [{"role": "user", "content": "携号转网条件"}]


@pytest.fixture
def platform(settings):
    settings.models_path.parent.mkdir(parents=True, exist_ok=True)
    settings.models_path.write_text('[[models]]\nname = "other"\nbackend = "echo"\n', encoding="utf-8")
    # the default model is NOT the one the key is scoped to: a chat without "model" must not slip through
    p = Platform(settings.model_copy(update={"default_model": "other"}))
    p.knowledge.config.min_relevance = -1.0  # HashEmbedder similarities are not e5's
    # the model writes the answer, no answerability call: these tests count kb.chat rows (the judgement's
    # own kb.judge row is tested in tests/knowledge/test_kb_answerability.py)
    p.knowledge.config.answerability, p.knowledge.config.answer_style = "off", "generative"
    return p


@pytest.fixture
def client(platform):
    with TestClient(create_app(platform, warm_default=False)) as c:
        r = c.post("/api/kb/collections", json={"name": "cs"}, headers=OP)
        assert r.status_code == 201, r.text
        files = [("files", ("mnp.md", "# 携号转网\n\n## 条件\n\n在网满 120 天。".encode(), "text/markdown"))]
        r = c.post("/api/kb/cs/documents", files=files, data={"wait": "true"}, headers=OP)
        assert r.status_code == 202 and r.json()["job"]["status"] == "succeeded", r.text
        yield c


def key(platform, models, **limits) -> tuple[dict, int]:
    tid = platform.tenancy.tenant_by_name("default")["id"]
    k = platform.tenancy.create_key(tid, name="scoped", role="member", models=models, **limits)
    return {"Authorization": f"Bearer {k['key']}"}, k["id"]


def test_kb_chat_with_a_model_outside_the_key_scope_is_403(client, platform):
    auth, _ = key(platform, ["echo"])
    r = client.post("/api/kb/cs/chat", json={"messages": MSG, "model": "other"}, headers=auth)
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed", r.text
    # no model: the knowledge chat would run the default ("other"), which is not in scope either
    r = client.post("/api/kb/cs/chat", json={"messages": MSG}, headers=auth)
    assert r.status_code == 403 and "other" in r.json()["error"]["message"], r.text
    r = client.post("/api/kb/cs/chat", json={"messages": MSG, "model": "other", "stream": True}, headers=auth)
    assert r.status_code == 403, r.text
    r = client.post("/api/kb/cs/chat", json={"messages": MSG, "model": "echo"}, headers=auth)
    assert r.status_code == 200 and r.json()["citations"], r.text  # the model in scope still works


def test_kb_model_on_v1_needs_kb_scope_and_the_chat_model(client, platform):
    body = {"model": "kb:cs", "messages": MSG}
    auth, _ = key(platform, ["echo"])
    r = client.post("/v1/chat/completions", json=body, headers=auth)
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed", r.text
    assert "kb:*" in r.json()["error"]["message"]  # says what to add
    # kb:cs in scope, but the default chat model behind it ("other") is not
    auth, _ = key(platform, ["kb:cs"])
    assert client.post("/v1/chat/completions", json=body, headers=auth).status_code == 403
    # both in scope: allowed
    for models in (["kb:cs", "other"], ["kb:*", "other"]):
        auth, _ = key(platform, models)
        r = client.post("/v1/chat/completions", json=body, headers=auth)
        assert r.status_code == 200 and r.json()["citations"], (models, r.text)
    # a key scoped to another collection does not reach this one
    auth, _ = key(platform, ["kb:other-coll", "other"])
    assert client.post("/v1/chat/completions", json=body, headers=auth).status_code == 403


def test_kb_chat_counts_against_the_key_rpm(client, platform):
    auth, _ = key(platform, ["echo"], rpm=2)
    body = {"messages": MSG, "model": "echo"}
    for _ in range(2):
        assert client.post("/api/kb/cs/chat", json=body, headers=auth).status_code == 200
    r = client.post("/api/kb/cs/chat", json=body, headers=auth)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded", r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert "2 requests/min" in r.json()["error"]["message"]


def test_kb_chat_is_metered_with_the_capability_named(client, platform):
    auth, key_id = key(platform, ["echo", "kb:cs"])
    assert client.post("/api/kb/cs/chat", json={"messages": MSG, "model": "echo"}, headers=auth).status_code == 200
    with client.stream("POST", "/api/kb/cs/chat", json={"messages": MSG, "model": "echo", "stream": True},
                       headers=auth) as s:
        assert s.status_code == 200 and any('"done"' in line for line in s.iter_lines())
    r = client.post("/v1/chat/completions", json={"model": "kb:cs", "messages": MSG}, headers=auth)
    assert r.status_code == 403  # refused (the default behind kb:cs is not in scope): no usage row
    with platform.db.session() as s:
        rows = s.scalars(select(UsageRecord).where(UsageRecord.key_id == key_id)).all()
    assert [(u.endpoint, u.model, u.status) for u in rows] == [("kb.chat", "echo", 200)] * 2, rows
    assert all(u.prompt_tokens > 0 and u.completion_tokens > 0 for u in rows)
    summary = platform.usage.query(tenant_id=None, group_by="model", key_id=key_id)
    assert summary["totals"]["requests"] == 2
