"""Two tenants, A ("acme") and B ("bravo"), each with an admin and a member, for attack tests.

Each admin signs in through the console login (the way a person does) and mints an admin
API key; the platform operator is the bootstrap credential of tenant ``default``.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def make_tenant(c: TestClient, name: str) -> Tenant:
    t = c.post("/api/tenants", json={"name": name}, headers=OP)
    assert t.status_code == 201, t.text
    tid = t.json()["id"]
    ids = {}
    for user, role in ((f"{name}-admin", "admin"), (f"{name}-member", "member")):
        r = c.post("/api/users", json={"username": user, "password": "password-123", "role": role, "tenant_id": tid},
                   headers=OP)
        assert r.status_code == 201, r.text
        ids[role] = r.json()["id"]
    admin = bearer(login(c, f"{name}-admin", tenant=name))
    member = bearer(login(c, f"{name}-member", tenant=name))
    k = c.post("/api/keys", json={"name": "automation", "role": "admin"}, headers=admin)
    assert k.status_code == 201, k.text
    return Tenant(tid, name, admin, ids["admin"], member, ids["member"], bearer(k.json()["key"]))


def login(c: TestClient, username: str, password: str = "password-123", tenant: str | None = None) -> str:
    body = {"username": username, "password": password}
    if tenant:
        body["tenant"] = tenant
    r = c.post("/api/auth/login", json=body)
    assert r.status_code == 200, r.text
    return r.json()["token"]


def make_platform(settings) -> Platform:
    return Platform(settings)


def make_client(platform: Platform):
    return TestClient(create_app(platform, warm_default=False))


def chat(client: TestClient, headers: dict, text: str, model: str = "echo"):
    r = client.post("/v1/chat/completions", headers=headers,
                    json={"model": model, "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text
    return r
