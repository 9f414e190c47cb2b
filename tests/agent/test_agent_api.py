"""/api/agent through the real app (in-process ASGI client, real store, real DuckDB demo workspace).

The platform's default model here is the echo backend (a real ChatModel that answers with the
user's message), so a question that *is* a read-only SQL statement is answered by running it in
the sandbox: the tests are about the HTTP surface (JSON, SSE, verdicts, scoping, errors), and
the numbers they check come from the real demo data, never from a hard-coded reply.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

ADMIN_KEY = "zk-admin-test-key-000000000000"
OP = {"Authorization": f"Bearer {ADMIN_KEY}"}
Q = "SELECT Contract, COUNT(*) AS n FROM telco GROUP BY Contract ORDER BY Contract"
Q2 = "SELECT InternetService, COUNT(*) AS n FROM telco GROUP BY InternetService ORDER BY InternetService"


@pytest.fixture
def client(settings):
    from zhinao.gateway.app import create_app
    from zhinao.platform import Platform

    with TestClient(create_app(Platform(settings), warm_default=False)) as c:
        r = c.post("/api/analytics/demo", headers=OP)
        assert r.status_code in (200, 201), r.text
        yield c


def _truth(c: TestClient, sql: str) -> list[list]:
    r = c.post("/api/analytics/workspaces/demo/query", headers=OP, json={"sql": sql})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def _ask(c: TestClient, headers=OP, **body) -> dict:
    r = c.post("/api/agent/ask", headers=headers, json={"workspace": "demo", **body})
    assert r.status_code == 200, r.text
    return r.json()


def _other_tenant(c: TestClient) -> dict:
    t = c.post("/api/tenants", headers=OP, json={"name": "bravo"})
    assert t.status_code == 201, t.text
    k = c.post("/api/keys", headers=OP, json={"name": "bravo-admin", "role": "admin", "tenant_id": t.json()["id"]})
    assert k.status_code == 201, k.text
    return {"Authorization": f"Bearer {k.json()['key']}"}


def test_ask_follow_up_accept_correct_and_the_library(client):
    c = client
    a = _ask(c, question=Q)
    assert a["rows"] == _truth(c, Q) and a["columns"] == ["Contract", "n"]
    assert a["sql"] and "telco" in a["sql"] and a["answer"] and a["tool_calls"][0]["tool"] == "run_sql"
    assert isinstance(a["answer_id"], int) and a["session_id"]

    got = c.get(f"/api/agent/answers/{a['answer_id']}", headers=OP).json()
    assert got["question"] == Q and got["status"] is None and got["answer"]["rows"] == a["rows"]

    b = _ask(c, question=Q2, session_id=a["session_id"])  # the same conversation
    assert b["session_id"] == a["session_id"] and b["rows"] == _truth(c, Q2)
    s = c.get(f"/api/agent/sessions/{a['session_id']}", headers=OP).json()
    assert [x["id"] for x in s["answers"]] == [a["answer_id"], b["answer_id"]] and s["workspace"] == "demo"

    r = c.post(f"/api/agent/answers/{a['answer_id']}/accept", headers=OP)
    assert r.status_code == 200, r.text
    assert r.json()["answer"]["status"] == "accepted" and isinstance(r.json()["example_id"], int)

    assert c.post(f"/api/agent/answers/{b['answer_id']}/correct", headers=OP, json={}).status_code == 400
    bad = c.post(f"/api/agent/answers/{b['answer_id']}/correct", headers=OP, json={"sql": "DELETE FROM telco"})
    assert bad.status_code == 400, bad.text
    fixed = "SELECT InternetService, COUNT(*) AS customers FROM telco GROUP BY 1 ORDER BY 1"
    r = c.post(f"/api/agent/answers/{b['answer_id']}/correct", headers=OP, json={"sql": fixed})
    assert r.status_code == 200, r.text
    assert r.json()["answer"]["status"] == "corrected" and r.json()["answer"]["correction"]["sql"] == fixed
    assert _truth(c, "SELECT COUNT(*) FROM telco") == [[7043]]  # the refused DELETE wrote nothing

    lib = c.get("/api/agent/examples", headers=OP, params={"workspace": "demo"}).json()
    assert {(e["question"], e["source"]) for e in lib} == {(Q, "accepted"), (Q2, "corrected")}
    assert next(e for e in lib if e["source"] == "corrected")["sql"] == fixed

    one = next(e["id"] for e in lib if e["source"] == "accepted")
    r = c.delete("/api/agent/examples", headers=OP, params={"workspace": "demo", "id": one})
    assert r.status_code == 200 and r.json()["deleted"] == 1
    r = c.delete("/api/agent/examples", headers=OP, params={"workspace": "demo"})
    assert r.status_code == 200 and r.json()["deleted"] == 1
    assert c.get("/api/agent/examples", headers=OP, params={"workspace": "demo"}).json() == []


def _events(r) -> list[dict]:
    assert r.headers["content-type"].startswith("text/event-stream"), r.headers
    lines = [ln[5:].strip() for ln in r.text.splitlines() if ln.startswith("data:")]
    assert lines[-1] == "[DONE]"
    return [json.loads(x) for x in lines[:-1]]


def test_ask_streams_server_sent_events(client):
    c = client
    r = c.post("/api/agent/ask", headers=OP, json={"workspace": "demo", "question": Q, "stream": True})
    assert r.status_code == 200, r.text
    events = _events(r)
    assert events[-1]["event"] == "answer" and events[-1]["answer"]["rows"] == _truth(c, Q)
    assert any(e["event"] == "tool" for e in events[:-1])
    # the Accept header asks for the same
    r = c.post("/api/agent/ask", headers={**OP, "Accept": "text/event-stream"},
               json={"workspace": "demo", "question": Q2})
    assert _events(r)[-1]["answer"]["rows"] == _truth(c, Q2)
    # an error before the first event is a plain HTTP error, not a 200 stream
    r = c.post("/api/agent/ask", headers=OP, json={"workspace": "nope", "question": Q, "stream": True})
    assert r.status_code == 400 and "nope" in r.json()["error"]["message"]


def test_bad_input_is_a_4xx_that_says_what_to_fix(client):
    c = client
    assert c.post("/api/agent/ask", json={"workspace": "demo", "question": Q}).status_code == 401
    for body, word in (({"workspace": "demo", "question": "   "}, "empty"),
                       ({"workspace": "demo"}, "question"),
                       ({"workspace": "no_such_ws", "question": "how many customers"}, "no_such_ws"),
                       ({"workspace": "", "question": "x"}, "workspace")):
        r = c.post("/api/agent/ask", headers=OP, json=body)
        assert r.status_code == 400, (body, r.text)
        assert word in r.json()["error"]["message"], (body, r.text)
    r = c.post("/api/agent/ask", headers=OP, json={"workspace": "demo", "question": Q, "session_id": "no-such"})
    assert r.status_code == 404
    for stream in (False, True):  # an unknown model is the MaaS layer's 404, streamed or not
        r = c.post("/api/agent/ask", headers=OP, json={"workspace": "demo", "question": "how many customers",
                                                       "model": "no-such-model", "stream": stream})
        assert r.status_code == 404 and "no-such-model" in r.json()["error"]["message"], r.text
    # a write request is answered, never executed
    r = c.post("/api/agent/ask", headers=OP, json={"workspace": "demo", "question": "DELETE FROM telco"})
    assert r.status_code in (200, 400), r.text
    assert _truth(c, "SELECT COUNT(*) FROM telco") == [[7043]]
    assert c.get("/api/agent/answers/999999", headers=OP).status_code == 404
    assert c.post("/api/agent/answers/999999/accept", headers=OP).status_code == 404
    assert c.get("/api/agent/sessions/no-such-session", headers=OP).status_code == 404
    assert c.get("/api/agent/examples", headers=OP, params={"workspace": "nope"}).status_code == 404
    assert c.get("/api/agent/examples", headers=OP).status_code == 400  # workspace is required


def test_another_tenant_gets_404_for_everything(client):
    c = client
    a = _ask(c, question=Q)
    c.post(f"/api/agent/answers/{a['answer_id']}/accept", headers=OP)
    b = _other_tenant(c)
    assert c.get(f"/api/agent/answers/{a['answer_id']}", headers=b).status_code == 404
    assert c.post(f"/api/agent/answers/{a['answer_id']}/accept", headers=b).status_code == 404
    assert c.post(f"/api/agent/answers/{a['answer_id']}/correct", headers=b, json={"answer": "x"}).status_code == 404
    assert c.get(f"/api/agent/sessions/{a['session_id']}", headers=b).status_code == 404
    assert c.get("/api/agent/examples", headers=b, params={"workspace": "demo"}).status_code == 404
    # B's own demo workspace, but A's conversation: not found, and B's library stays empty
    assert c.post("/api/analytics/demo", headers=b).status_code in (200, 201)
    r = c.post("/api/agent/ask", headers=b, json={"workspace": "demo", "question": Q, "session_id": a["session_id"]})
    assert r.status_code == 404, r.text
    assert c.get("/api/agent/examples", headers=b, params={"workspace": "demo"}).json() == []
    # A's verdict is untouched
    assert c.get(f"/api/agent/answers/{a['answer_id']}", headers=OP).json()["status"] == "accepted"


def test_admins_seed_the_library_with_checked_examples(client):
    c = client
    sql = "SELECT PaymentMethod, COUNT(*) AS n FROM telco GROUP BY 1"
    r = c.post("/api/agent/examples", headers=OP, json={"workspace": "demo", "question": "customers per payment method",
                                                        "sql": sql + ";"})
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "manual" and r.json()["sql"] == sql
    for bad, word in (("DELETE FROM telco", ""), ("SELECT no_such_column FROM telco", "no_such_column"),
                      ("SELECT * FROM read_text('/etc/passwd')", "")):
        r = c.post("/api/agent/examples", headers=OP, json={"workspace": "demo", "question": "q", "sql": bad})
        assert r.status_code == 400 and word in r.json()["error"]["message"], (bad, r.text)
    r = c.post("/api/agent/examples", headers=OP, json={"workspace": "demo", "question": "q"})
    assert r.status_code == 400  # neither SQL nor a call
    r = c.post("/api/agent/examples", headers=OP, json={"workspace": "nope", "question": "q", "sql": "SELECT 1"})
    assert r.status_code == 400 and "nope" in r.json()["error"]["message"]
    lib = c.get("/api/agent/examples", headers=OP, params={"workspace": "demo"}).json()
    assert [e["question"] for e in lib] == ["customers per payment method"]
    assert _truth(c, "SELECT COUNT(*) FROM telco") == [[7043]]


def test_sessions_are_listed_per_user_newest_first(client):
    """GET /api/agent/sessions: the caller's conversations with their first question and answer
    count (admins: the tenant's); a member sees only their own; another tenant sees none."""
    c = client
    a = _ask(c, question=Q)
    _ask(c, question=Q2, session_id=a["session_id"])
    b = _ask(c, question="SELECT COUNT(*) AS n FROM telco")
    got = c.get("/api/agent/sessions", headers=OP).json()
    assert [s["id"] for s in got][:2] == [b["session_id"], a["session_id"]]
    first = next(s for s in got if s["id"] == a["session_id"])
    assert first["question"] == Q and first["answers"] == 2 and first["workspace"] == "demo"
    assert [s["id"] for s in c.get("/api/agent/sessions", headers=OP, params={"limit": 1}).json()] == [b["session_id"]]
    assert c.get("/api/agent/sessions", headers=OP, params={"workspace": "nope"}).status_code == 404
    assert c.get("/api/agent/sessions", headers=OP, params={"limit": 0}).status_code in (400, 422)
    # a member of the same tenant (a user of their own, logged in): only their own conversation
    u = c.post("/api/users", headers=OP, json={"username": "ana", "password": "password-123", "role": "member"})
    assert u.status_code == 201, u.text
    login = c.post("/api/auth/login", json={"username": "ana", "password": "password-123", "tenant": "default"})
    assert login.status_code == 200, login.text
    member = {"Authorization": f"Bearer {login.json()['token']}"}
    assert c.get("/api/agent/sessions", headers=member).json() == []
    m = _ask(c, headers=member, question=Q2)
    assert [s["id"] for s in c.get("/api/agent/sessions", headers=member).json()] == [m["session_id"]]
    assert m["session_id"] in {s["id"] for s in c.get("/api/agent/sessions", headers=OP).json()}
    # another tenant: nothing of this one
    other = _other_tenant(c)
    assert c.get("/api/agent/sessions", headers=other).json() == []
