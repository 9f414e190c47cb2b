"""Roles and tenant isolation, attacked the way issue 8 found the holes.

Two tenants, A and B, each with an admin (signed in through the console login, the way a
person is) and a member; the platform operator is the bootstrap credential of tenant
``default``. Each test is A's admin (or member) trying what the finding describes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from zhinao.gateway.app import create_app
from zhinao.platform import Platform

OPERATOR_KEY = "zk-admin-test-key-000000000000"
OP = {"Authorization": f"Bearer {OPERATOR_KEY}"}


@dataclass
class Tenant:
    id: int
    name: str
    admin: dict  #: Authorization header of the tenant admin's console session
    admin_user_id: int
    member: dict
    member_user_id: int
    admin_key: dict  #: an admin API key minted by the tenant admin


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _make_tenant(c: TestClient, name: str) -> Tenant:
    t = c.post("/api/tenants", json={"name": name}, headers=OP)
    assert t.status_code == 201, t.text
    tid = t.json()["id"]
    ids = {}
    for user, role in ((f"{name}-admin", "admin"), (f"{name}-member", "member")):
        r = c.post("/api/users", json={"username": user, "password": "password-123", "role": role, "tenant_id": tid},
                   headers=OP)
        assert r.status_code == 201, r.text
        ids[role] = r.json()["id"]
    admin = _bearer(_login(c, f"{name}-admin", tenant=name))
    member = _bearer(_login(c, f"{name}-member", tenant=name))
    k = c.post("/api/keys", json={"name": "automation", "role": "admin"}, headers=admin)
    assert k.status_code == 201, k.text
    return Tenant(tid, name, admin, ids["admin"], member, ids["member"], _bearer(k.json()["key"]))


def _login(c: TestClient, username: str, password: str = "password-123", tenant: str | None = None) -> str:
    body = {"username": username, "password": password}
    if tenant:
        body["tenant"] = tenant
    r = c.post("/api/auth/login", json=body)
    assert r.status_code == 200, r.text
    return r.json()["token"]


@pytest.fixture
def platform(settings):
    return Platform(settings)


@pytest.fixture
def client(platform):
    with TestClient(create_app(platform, warm_default=False)) as c:
        yield c


@pytest.fixture
def tenants(client) -> tuple[Tenant, Tenant]:
    return _make_tenant(client, "acme"), _make_tenant(client, "bravo")


# -- the role basics ------------------------------------------------------------------------

def test_bootstrap_credentials_are_the_operator(client):
    me = client.get("/api/me", headers=OP).json()
    assert me["role"] == "operator" and me["tenant"] == "default"
    assert client.get("/api/me", headers=_bearer(_login(client, "admin", "admin-password"))).json()["role"] == "operator"


def test_tenant_admin_cannot_manage_tenants(client, tenants):
    a, b = tenants
    for method, path, body in (("post", "/api/tenants", {"name": "evil"}),
                               ("patch", f"/api/tenants/{b.id}", {"disabled": True}),
                               ("delete", f"/api/tenants/{b.id}", None)):
        r = client.request(method, path, json=body, headers=a.admin)
        assert r.status_code == 403, (path, r.text)
        assert "operator" in r.json()["error"]["message"]
    assert [t["name"] for t in client.get("/api/tenants", headers=a.admin).json()] == ["acme"]
    assert {t["name"] for t in client.get("/api/tenants", headers=OP).json()} >= {"default", "acme", "bravo"}


def test_admin_of_default_is_not_the_operator(client, tenants):
    """The old rule "admin of tenant default = platform admin" is gone: the role decides."""
    client.post("/api/users", json={"username": "deputy", "password": "password-123", "role": "admin"}, headers=OP)
    deputy = _bearer(_login(client, "deputy"))
    a, _ = tenants
    assert client.post("/api/tenants", json={"name": "x"}, headers=deputy).status_code == 403
    assert client.get(f"/api/users?tenant_id={a.id}", headers=deputy).status_code == 403
    assert client.get("/api/feedback?all=true", headers=deputy).status_code == 403
    # and a tenant admin of default cannot demote or revoke the operator
    op_id = next(u["id"] for u in client.get("/api/users", headers=OP).json() if u["username"] == "admin")
    r = client.patch(f"/api/users/{op_id}", json={"role": "member"}, headers=deputy)
    assert r.status_code == 403, r.text
    op_key = next(k["id"] for k in client.get("/api/keys", headers=OP).json() if k["role"] == "operator")
    assert client.delete(f"/api/keys/{op_key}", headers=deputy).status_code == 403


def test_operator_role_only_in_default_and_only_by_an_operator(client, tenants):
    a, _ = tenants
    r = client.post("/api/users", json={"username": "root2", "password": "password-123", "role": "operator"},
                    headers=a.admin)
    assert r.status_code in (400, 403), r.text
    r = client.post("/api/users", json={"username": "root3", "password": "password-123", "role": "operator",
                                        "tenant_id": a.id}, headers=OP)
    assert r.status_code == 400 and "only in tenant 'default'" in r.json()["error"]["message"]
    r = client.post("/api/keys", json={"role": "operator"}, headers=a.admin)
    assert r.status_code in (400, 403)
    r = client.post("/api/users", json={"username": "op2", "password": "password-123", "role": "operator"}, headers=OP)
    assert r.status_code == 201
    assert client.get("/api/me", headers=_bearer(_login(client, "op2"))).json()["role"] == "operator"


def test_member_cannot_mint_admin_key(client, tenants):
    a, _ = tenants
    r = client.post("/api/keys", json={"role": "admin"}, headers=a.member)
    assert r.status_code == 403, r.text


# -- finding 6: list endpoints are tenant-scoped ---------------------------------------------

def _chat(client, headers, text):
    r = client.post("/v1/chat/completions", headers=headers,
                    json={"model": "echo", "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text
    return r


def _send(client, headers, conv_id: int, content: str) -> int:
    """Send a console message (SSE) and return the turn id."""
    import json

    r = client.post(f"/api/conversations/{conv_id}/messages", headers=headers, json={"content": content, "model": "echo"})
    assert r.status_code == 200, r.text
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    return next(e["turn_id"] for e in events if e["type"] == "done")


def test_feedback_all_by_tenant_admin_is_refused(client, tenants):
    """Finding 6: ``GET /api/feedback?all=true`` by A's admin returned B's prompts."""
    a, b = tenants
    conv = client.post("/api/conversations", json={"title": "b secret"}, headers=b.member)
    assert conv.status_code in (200, 201), conv.text
    turn = _send(client, b.member, conv.json()["id"], "bravo-secret-prompt")
    assert client.post(f"/api/turns/{turn}/feedback", json={"rating": -1, "corrected_answer": "bravo-fix"},
                       headers=b.member).status_code == 200
    r = client.get("/api/feedback?all=true", headers=a.admin)
    assert r.status_code == 403 and "bravo" not in r.text
    assert "bravo" not in client.get("/api/feedback", headers=a.admin).text
    assert "bravo-secret-prompt" in client.get("/api/feedback?all=true", headers=OP).text


@pytest.mark.parametrize("path", ["/api/usage?all=true", "/api/usage?tenant_id={b}", "/api/users?tenant_id={b}",
                                  "/api/users?all=true", "/api/keys?tenant_id={b}", "/api/keys?all=true"])
def test_cross_tenant_lists_need_the_operator(client, tenants, path):
    a, b = tenants
    _chat(client, b.member, "bravo usage")
    p = path.format(b=b.id)
    for who in (a.admin, a.admin_key, a.member):
        r = client.get(p, headers=who)
        assert r.status_code == 403, (p, r.text)
        assert "bravo" not in r.text
    assert client.get(p, headers=OP).status_code == 200


def test_own_lists_hold_no_other_tenant_rows(client, tenants):
    a, b = tenants
    _chat(client, b.member, "bravo conversation")
    for path in ("/api/users", "/api/keys", "/api/tenants", "/api/usage?group_by=tenant", "/api/conversations",
                 "/api/jobs", "/api/feedback"):
        r = client.get(path, headers=a.admin)
        assert r.status_code == 200, (path, r.text)
        assert "bravo" not in r.text, path
        assert f'"tenant_id":{b.id}' not in r.text.replace(" ", ""), path
