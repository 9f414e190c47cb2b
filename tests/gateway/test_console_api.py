"""The console's /api: sign-in, conversations with streaming, regenerate, feedback, admin."""

from __future__ import annotations

import json

from tests.gateway.conftest import AUTH


def login(client, username="admin", password="admin-password"):
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def send(client, h, conv_id, **body):
    with client.stream("POST", f"/api/conversations/{conv_id}/messages", headers=h, json=body) as r:
        assert r.status_code == 200, r.read()
        return [json.loads(ln[6:]) for ln in r.iter_lines() if ln.startswith("data: ")]


def test_login_wrong_password(client):
    r = client.post("/api/auth/login", json={"username": "admin", "password": "nope"})
    assert r.status_code == 401 and "wrong username or password" in r.json()["error"]["message"]


def test_conversation_flow_with_feedback(client):
    h = login(client)
    assert client.get("/api/me", headers=h).json()["role"] == "operator"
    conv = client.post("/api/conversations", headers=h, json={"model": "echo"}).json()
    ev = send(client, h, conv["id"], content="第一个 问题")
    assert ev[0]["type"] == "turn" and ev[-1]["type"] == "done"
    assert "".join(e["content"] for e in ev if e["type"] == "delta") == "第一个 问题"
    turn = ev[0]["turn_id"]
    assert ev[-1]["turn_id"] == turn and ev[-1]["usage"]["completion_tokens"] > 0
    # second turn sees the history (multi-turn)
    ev2 = send(client, h, conv["id"], content="second")
    d = client.get(f"/api/conversations/{conv['id']}", headers=h).json()
    assert d["title"].startswith("第一个") and [t["response"] for t in d["turns"]] == ["第一个 问题", "second"]
    # regenerate the second turn: a sibling with parent_turn_id
    ev3 = send(client, h, conv["id"], regenerate_turn_id=ev2[0]["turn_id"])
    d = client.get(f"/api/conversations/{conv['id']}", headers=h).json()
    assert d["turns"][-1]["parent_turn_id"] == ev2[0]["turn_id"] and d["turns"][-1]["id"] == ev3[0]["turn_id"]
    # feedback: thumbs down + correction, then listed for admins (RLHF raw material)
    fb = client.post(f"/api/turns/{turn}/feedback", headers=h,
                     json={"rating": -1, "corrected_answer": "正确答案", "comment": "wrong"}).json()
    assert fb["rating"] == -1
    client.post(f"/api/turns/{turn}/feedback", headers=h, json={"rating": 1})  # updates, no duplicate
    rows = client.get("/api/feedback", headers=AUTH).json()
    mine = [r for r in rows if r["turn_id"] == turn]
    assert len(mine) == 1 and mine[0]["rating"] == 1 and mine[0]["corrected_answer"] == "正确答案"
    assert mine[0]["user_message"] == "第一个 问题"
    assert client.post(f"/api/turns/{turn}/feedback", headers=h, json={"rating": 5}).status_code == 400
    assert [c["id"] for c in client.get("/api/conversations", headers=h).json()] == [conv["id"]]
    assert client.delete(f"/api/conversations/{conv['id']}", headers=h).status_code == 200
    assert client.get(f"/api/conversations/{conv['id']}", headers=h).status_code == 404


def test_conversations_are_private(client):
    h = login(client)
    conv = client.post("/api/conversations", headers=h, json={}).json()
    client.post("/api/users", headers=AUTH, json={"username": "bob", "password": "bob-password", "role": "member"})
    hb = login(client, "bob", "bob-password")
    assert client.get(f"/api/conversations/{conv['id']}", headers=hb).status_code == 404
    assert client.post(f"/api/conversations/{conv['id']}/messages", headers=hb, json={"content": "x"}).status_code == 404


def test_tenants_users_keys_admin(client):
    t = client.post("/api/tenants", headers=AUTH, json={"name": "marketing", "tokens_per_day": 1000}).json()
    assert client.post("/api/tenants", headers=AUTH, json={"name": "marketing"}).status_code == 409
    assert client.post("/api/tenants", headers=AUTH, json={"name": "bad name!"}).status_code == 400
    u = client.post("/api/users", headers=AUTH, json={"username": "mk", "password": "password1", "tenant_id": t["id"]})
    assert u.status_code == 201
    k = client.post("/api/keys", headers=AUTH, json={"name": "mk-key", "tenant_id": t["id"]}).json()
    assert k["key"].startswith("zk-") and k["tenant_id"] == t["id"]
    listed = client.get(f"/api/keys?tenant_id={t['id']}", headers=AUTH).json()
    assert listed[0]["prefix"] == k["key"][:8] and "key" not in listed[0]  # never shown again
    h = {"Authorization": f"Bearer {k['key']}"}
    assert client.post("/v1/chat/completions", headers=h, json={"model": "echo", "messages": [
        {"role": "user", "content": "x"}]}).status_code == 200
    usage = client.get("/api/usage?all=1&group_by=tenant", headers=AUTH).json()["rows"]
    assert any(r["tenant"] == "marketing" and r["requests"] == 1 for r in usage)
    assert client.patch(f"/api/tenants/{t['id']}", headers=AUTH, json={"disabled": True}).json()["disabled"]
    assert client.get("/v1/models", headers=h).status_code == 403


def test_models_admin_and_status(client, tmp_path):
    r = client.post("/api/models", headers=AUTH, json={"name": "echo-b", "backend": "echo", "aliases": ["eb"]})
    assert r.status_code == 201, r.text
    assert client.post("/api/models", headers=AUTH, json={"name": "echo-b", "backend": "echo"}).status_code == 409
    assert client.post("/api/models", headers=AUTH, json={"name": "x", "backend": "warp"}).status_code == 400
    assert client.post("/api/models", headers=AUTH, json={"name": "x", "backend": "llamacpp",
                                                          "path": str(tmp_path / "none.gguf")}).status_code == 400
    t = client.post("/api/models/eb/test", headers=AUTH).json()
    assert t["ok"] and t["reply"]
    st = client.get("/api/status", headers=AUTH).json()
    assert any(m["name"] == "echo-b" for m in st["models"])
    assert client.delete("/api/models/echo-b", headers=AUTH).status_code == 200
    assert client.delete("/api/models/echo", headers=AUTH).status_code == 400  # built in


def test_rating_can_be_withdrawn_and_usage_totals_have_latency(client):
    h = login(client)
    conv = client.post("/api/conversations", headers=h, json={"model": "echo"}).json()
    turn = send(client, h, conv["id"], content="hello")[0]["turn_id"]
    client.post(f"/api/turns/{turn}/feedback", headers=h, json={"rating": 1, "comment": "good"})
    fb = client.post(f"/api/turns/{turn}/feedback", headers=h, json={"rating": None}).json()
    assert fb["rating"] is None and fb["comment"] == "good"
    assert client.post(f"/api/turns/{turn}/feedback", headers=h, json={}).status_code == 400
    totals = client.get("/api/usage", headers=AUTH).json()["totals"]
    assert totals["requests"] >= 1 and totals["avg_latency_ms"] >= 0
