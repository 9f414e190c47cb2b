"""The /v1 API in-process (real app, real SQLite, echo backend): shapes and every bad input."""

from __future__ import annotations

import json

import pytest

from tests.gateway.conftest import AUTH


def chat(client, headers=AUTH, **body):
    body.setdefault("model", "echo")
    body.setdefault("messages", [{"role": "user", "content": "hello world"}])
    return client.post("/v1/chat/completions", json=body, headers=headers)


def test_chat_non_streaming_has_usage(client):
    r = chat(client)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["object"] == "chat.completion"
    assert d["choices"][0]["message"]["content"] == "hello world"
    assert d["usage"]["completion_tokens"] == 2 and d["usage"]["total_tokens"] > 2


def test_chat_streaming_sse_with_usage(client):
    with client.stream("POST", "/v1/chat/completions", headers=AUTH, json={
            "model": "echo", "messages": [{"role": "user", "content": "a b c"}], "stream": True,
            "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "a b c"
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"


def test_json_schema_and_tools(client):
    schema = {"type": "object", "properties": {"plan": {"type": "string"}, "price": {"type": "number"}},
              "required": ["plan", "price"]}
    r = chat(client, response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}})
    assert set(json.loads(r.json()["choices"][0]["message"]["content"])) == {"plan", "price"}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"msisdn": {"type": "string"}}, "required": ["msisdn"]}}}]
    r = chat(client, tools=tools, tool_choice={"type": "function", "function": {"name": "lookup"}})
    d = r.json()["choices"][0]
    assert d["finish_reason"] == "tool_calls"
    assert d["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    assert "msisdn" in json.loads(d["message"]["tool_calls"][0]["function"]["arguments"])


def test_completions_and_models(client):
    r = client.post("/v1/completions", headers=AUTH, json={"model": "echo", "prompt": "one two three", "max_tokens": 2})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "one two"
    assert r.json()["choices"][0]["finish_reason"] == "length"
    ids = [m["id"] for m in client.get("/v1/models", headers=AUTH).json()["data"]]
    assert {"echo", "slow", "tiny-ctx"} <= set(ids)


def test_embeddings(client):
    r = client.post("/v1/embeddings", headers=AUTH, json={"model": "hash", "input": ["你好", "hello"]})
    assert r.status_code == 200, r.text
    d = r.json()
    assert len(d["data"]) == 2 and len(d["data"][0]["embedding"]) == 384 and d["usage"]["prompt_tokens"] > 0


# -- bad input ---------------------------------------------------------------------------

def _err(r, status, code=None):
    assert r.status_code == status, r.text
    e = r.json()["error"]
    assert e["message"] and e["type"]
    if code:
        assert e["code"] == code
    return e


def test_malformed_json(client):
    r = client.post("/v1/chat/completions", headers={**AUTH, "content-type": "application/json"}, content=b"{not json")
    e = _err(r, 400)
    assert "JSON" in e["message"]


def test_wrong_types(client):
    _err(chat(client, temperature="hot"), 400)
    _err(chat(client, messages="hello"), 400)
    _err(chat(client, messages=[{"role": "wizard", "content": "x"}]), 400)
    _err(chat(client, n=3), 400)


def test_unknown_model(client):
    e = _err(chat(client, model="gpt-99"), 404, "model_not_found")
    assert "echo" in e["message"]  # tells what exists


def test_wrong_and_revoked_key(client):
    _err(chat(client, headers={"Authorization": "Bearer zk-wrong"}), 401, "invalid_api_key")
    _err(client.get("/v1/models"), 401, "missing_api_key")
    k = client.post("/api/keys", headers=AUTH, json={"name": "t"}).json()
    h = {"Authorization": f"Bearer {k['key']}"}
    assert chat(client, headers=h).status_code == 200
    assert client.delete(f"/api/keys/{k['id']}", headers=AUTH).json()["revoked"] is True
    _err(chat(client, headers=h), 401, "revoked_api_key")


def test_model_not_allowed_for_key(client):
    k = client.post("/api/keys", headers=AUTH, json={"name": "only-slow", "models": ["slow"]}).json()
    h = {"Authorization": f"Bearer {k['key']}"}
    _err(chat(client, headers=h, model="echo"), 403, "model_not_allowed")
    assert chat(client, headers=h, model="slow").status_code == 200
    assert [m["id"] for m in client.get("/v1/models", headers=h).json()["data"] if m["backend"] != "embedding"] == ["slow"]


def test_context_overflow(client):
    e = _err(chat(client, model="tiny-ctx", messages=[{"role": "user", "content": "word " * 100}]), 400,
             "context_length_exceeded")
    assert "32" in e["message"]
    # streaming requests get the same 4xx before any byte is sent
    r = chat(client, model="tiny-ctx", stream=True, messages=[{"role": "user", "content": "word " * 100}])
    _err(r, 400, "context_length_exceeded")


def test_invalid_json_schema(client):
    _err(chat(client, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "banana"}}}),
         400)
    _err(chat(client, response_format={"type": "json_schema"}), 400)
    _err(chat(client, tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]), 400)
    _err(chat(client, tool_choice={"type": "function", "function": {"name": "ghost"}},
              tools=[{"type": "function", "function": {"name": "f"}}]), 400)


def test_body_too_large(client, platform):
    big = "x" * (platform.settings.max_body_bytes + 10)
    r = chat(client, messages=[{"role": "user", "content": big}])
    e = _err(r, 413, "payload_too_large")
    assert str(platform.settings.max_body_bytes) in e["message"]


def test_quota_exhausted_then_others_unaffected(client):
    k = client.post("/api/keys", headers=AUTH, json={"name": "small", "tokens_per_day": 10}).json()
    h = {"Authorization": f"Bearer {k['key']}"}
    assert chat(client, headers=h, messages=[{"role": "user", "content": "one two three four five six"}]).status_code == 200
    r = chat(client, headers=h)
    e = _err(r, 429, "insufficient_quota")
    assert "resets at" in e["message"] and int(r.headers["retry-after"]) > 0
    assert chat(client).status_code == 200  # the admin key still works


def test_rate_limit_rpm(client):
    k = client.post("/api/keys", headers=AUTH, json={"name": "rpm", "rpm": 2}).json()
    h = {"Authorization": f"Bearer {k['key']}"}
    assert [chat(client, headers=h).status_code for _ in range(3)] == [200, 200, 429]


def test_usage_metered_per_key_and_model(client):
    k = client.post("/api/keys", headers=AUTH, json={"name": "meter"}).json()
    h = {"Authorization": f"Bearer {k['key']}"}
    for _ in range(3):
        chat(client, headers=h, messages=[{"role": "user", "content": "a b c d"}])
    rows = client.get("/api/usage?group_by=key,model", headers=AUTH).json()["rows"]
    row = next(r for r in rows if r["key"] == "meter")
    assert row["model"] == "echo" and row["requests"] == 3 and row["completion_tokens"] == 12


def test_api_turns_are_recorded(client, platform):
    chat(client, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}],
         temperature=0.2)
    from sqlalchemy import select

    from zhinao.store.models import ChatTurn

    with platform.db.session() as s:
        t = s.scalars(select(ChatTurn)).all()[-1]
        assert t.messages[0]["content"] == "be brief" and t.response == "hi there"
        assert t.params["temperature"] == 0.2 and t.completion_tokens == 2


def test_health_ready_metrics(client, platform):
    assert client.get("/healthz").json()["status"] == "ok"
    chat(client)
    platform.settings.metrics_token = "scrape-token"  # the test client is not a loopback address
    m = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"}).text
    assert 'zhinao_generations_total{model="echo",outcome="ok"}' in m
    assert "zhinao_queue_depth" in m and "zhinao_request_latency_seconds_bucket" in m
    assert client.get("/healthz").headers.get("x-request-id")


@pytest.mark.parametrize("path", ["/api/tenants", "/api/users", "/api/feedback"])
def test_member_cannot_admin(client, path):
    k = client.post("/api/keys", headers=AUTH, json={"name": "member"}).json()
    _err(client.get(path, headers={"Authorization": f"Bearer {k['key']}"}), 403)


def test_generation_timeout_is_504_and_gateway_survives(client, platform):
    platform.settings.generation_timeout_s = 0.1
    r = chat(client, model="slow", messages=[{"role": "user", "content": " ".join(["w"] * 50)}])
    e = _err(r, 504, "generation_timeout")
    assert "did not finish" in e["message"]
    platform.settings.generation_timeout_s = 600
    assert chat(client, model="slow").status_code == 200
    assert platform.models.resolve("slow").scheduler.busy == 0
