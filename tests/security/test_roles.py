"""Roles and tenant isolation, attacked the way issue 8 found the holes.

Two tenants, A and B, each with an admin (signed in through the console login, the way a
person is) and a member; the platform operator is the bootstrap credential of tenant
``default``. Each test is A's admin (or member) trying what the finding describes.
"""

from __future__ import annotations

import pytest
from two_tenants import OP, OPERATOR_KEY, bearer, chat, login


# -- the role basics ------------------------------------------------------------------------

def test_bootstrap_credentials_are_the_operator(client):
    me = client.get("/api/me", headers=OP).json()
    assert me["role"] == "operator" and me["tenant"] == "default"
    assert client.get("/api/me", headers=bearer(login(client, "admin", "admin-password"))).json()["role"] == "operator"


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
    deputy = bearer(login(client, "deputy"))
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
    assert client.get("/api/me", headers=bearer(login(client, "op2"))).json()["role"] == "operator"


def test_member_cannot_mint_admin_key(client, tenants):
    a, _ = tenants
    r = client.post("/api/keys", json={"role": "admin"}, headers=a.member)
    assert r.status_code == 403, r.text


# -- finding 6: list endpoints are tenant-scoped ---------------------------------------------

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
    chat(client, b.member, "bravo usage")
    p = path.format(b=b.id)
    for who in (a.admin, a.admin_key, a.member):
        r = client.get(p, headers=who)
        assert r.status_code == 403, (p, r.text)
        assert "bravo" not in r.text
    assert client.get(p, headers=OP).status_code == 200


def test_own_lists_hold_no_other_tenant_rows(client, tenants):
    a, b = tenants
    chat(client, b.member, "bravo conversation")
    for path in ("/api/users", "/api/keys", "/api/tenants", "/api/usage?group_by=tenant", "/api/conversations",
                 "/api/jobs", "/api/feedback"):
        r = client.get(path, headers=a.admin)
        assert r.status_code == 200, (path, r.text)
        assert "bravo" not in r.text, path
        assert f'"tenant_id":{b.id}' not in r.text.replace(" ", ""), path


# -- finding 8: a key's role follows its user's current role ----------------------------------

def test_demoted_users_keys_are_demoted(client, tenants):
    """Finding 8: ``PATCH /api/users/{id} {"role": "member"}`` left the user's API keys admin."""
    a, _ = tenants
    assert client.get("/api/me", headers=a.admin_key).json()["role"] == "admin"
    assert client.post("/api/users", json={"username": "x1", "password": "password-123"},
                       headers=a.admin_key).status_code == 201
    # the operator demotes A's admin; the admin key they minted must no longer act as admin
    r = client.patch(f"/api/users/{a.admin_user_id}", json={"role": "member"}, headers=OP)
    assert r.status_code == 200, r.text
    assert client.get("/api/me", headers=a.admin_key).json()["role"] == "member"
    r = client.post("/api/users", json={"username": "x2", "password": "password-123"}, headers=a.admin_key)
    assert r.status_code == 403, r.text
    assert client.get("/api/users", headers=a.admin).status_code == 403  # the session follows too


def test_operator_key_for_another_tenant_is_capped(client, tenants):
    """A key without a user is bounded at creation: the operator cannot mint an operator key for A."""
    a, _ = tenants
    r = client.post("/api/keys", json={"role": "operator", "tenant_id": a.id}, headers=OP)
    assert r.status_code == 400, r.text
    r = client.post("/api/keys", json={"role": "admin", "tenant_id": a.id}, headers=OP)
    assert r.status_code == 201 and r.json()["user_id"] is None
    assert client.get("/api/me", headers=bearer(r.json()["key"])).json()["role"] == "admin"


def test_admin_cannot_promote_above_own_role(client, tenants):
    a, _ = tenants
    r = client.patch(f"/api/users/{a.member_user_id}", json={"role": "operator"}, headers=a.admin)
    assert r.status_code in (400, 403), r.text
    r = client.patch(f"/api/users/{a.member_user_id}", json={"role": "admin"}, headers=a.admin)
    assert r.status_code == 200  # up to their own role is fine


# -- finding 12 (parts) ------------------------------------------------------------------------

def test_status_shows_members_only_their_tenant(client, tenants, platform):
    """/api/status showed a member other tenants' names and queue sizes."""
    a, b = tenants
    chat(client, b.member, "bravo queue")
    body = client.get("/api/status", headers=a.member)
    assert body.status_code == 200
    assert "bravo" not in body.text and "queued_by_tenant" not in body.text
    assert "queued_by_tenant" in client.get("/api/status", headers=OP).text


def test_usernames_do_not_leak_across_tenants(client, tenants):
    """Creating "bravo-admin" in A answered 409 because B has one: now names are per tenant."""
    a, b = tenants
    r = client.post("/api/users", json={"username": "bravo-admin", "password": "password-123"}, headers=a.admin)
    assert r.status_code == 201, r.text
    assert r.json()["username"] == "bravo-admin" and r.json()["tenant_id"] == a.id
    # in the same tenant a duplicate is still a conflict (the admin sees their own users anyway)
    r = client.post("/api/users", json={"username": "bravo-admin", "password": "password-123"}, headers=a.admin)
    assert r.status_code == 409
    # both sign in, each to their own tenant; the unqualified name is now ambiguous and refused
    # with the same message as a wrong password
    assert client.get("/api/me", headers=bearer(login(client, "bravo-admin", tenant="acme"))).json()["tenant"] == "acme"
    assert client.get("/api/me", headers=bearer(login(client, "bravo/bravo-admin"))).json()["tenant"] == "bravo"
    r = client.post("/api/auth/login", json={"username": "bravo-admin", "password": "password-123"})
    assert r.status_code == 401 and "tenant/username" in r.json()["error"]["message"]
    assert client.get("/api/users", headers=a.admin).json()[0]["username"] in ("acme-admin", "acme-member")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_login_is_throttled_per_user(client, tenants, platform):
    """30 wrong passwords in 2 s all answered 401: now the account backs off with 429 + Retry-After."""
    clock = FakeClock()
    if hasattr(platform.tenancy, "throttle"):
        platform.tenancy.throttle.clock = clock
    codes = [client.post("/api/auth/login", json={"username": "acme/acme-admin", "password": f"guess-{i}"}).status_code
             for i in range(30)]
    free = getattr(platform.settings, "login_free_failures", 5)
    assert codes.count(401) == free
    assert set(codes[free:]) == {429}
    r = client.post("/api/auth/login", json={"username": "acme/acme-admin", "password": "password-123"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1  # even the right password waits
    clock.t += int(r.headers["Retry-After"])
    assert client.post("/api/auth/login", json={"username": "acme/acme-admin",
                                                "password": "password-123"}).status_code == 200
    # another account from elsewhere was never affected
    assert client.post("/api/auth/login", json={"username": "bravo/bravo-admin",
                                                "password": "password-123"}).status_code == 200


def test_login_is_throttled_per_address(client, tenants, platform):
    """Spraying many usernames from one address backs the address off."""
    clock = FakeClock()
    if hasattr(platform.tenancy, "throttle"):
        platform.tenancy.throttle.clock = clock
    codes = [client.post("/api/auth/login", json={"username": f"nobody-{i}", "password": "x"}).status_code
             for i in range(30)]
    assert codes.count(401) == getattr(platform.settings, "login_ip_free_failures", 20) and codes[-1] == 429


def test_last_operator_credential_is_kept(client, platform):
    """Revoking, demoting, disabling or deleting the last working operator credential is refused (409)."""
    users = client.get("/api/users", headers=OP).json()
    op_user = next(u for u in users if u["username"] == "admin")
    op_key = next(k for k in client.get("/api/keys", headers=OP).json() if k["role"] == "operator")
    # the bootstrap user (password) and its key are two credentials: the key may go, then the user is the last
    session = bearer(login(client, "admin", "admin-password"))
    assert client.delete(f"/api/keys/{op_key['id']}", headers=OP).status_code == 200
    for method, path, body in (("patch", f"/api/users/{op_user['id']}", {"role": "admin"}),
                               ("patch", f"/api/users/{op_user['id']}", {"disabled": True})):
        r = client.request(method, path, json=body, headers=session)
        assert r.status_code == 409, r.text
        assert "operator" in r.json()["error"]["message"]
    assert client.get("/api/me", headers=session).json()["role"] == "operator"
    # with a second operator the first may step down
    assert client.post("/api/users", json={"username": "op2", "password": "password-123", "role": "operator"},
                       headers=session).status_code == 201
    assert client.patch(f"/api/users/{op_user['id']}", json={"role": "admin"}, headers=session).status_code == 200


def test_last_operator_key_cannot_be_revoked(platform):
    """An installation reached only through the bootstrap key (no password login) keeps it."""
    from zhinao.errors import Conflict
    from zhinao.store.models import User

    platform.bootstrap()
    with platform.db.session() as s:
        for u in s.query(User):
            u.password_hash = None  # no password: the key is the only way in
    key = next(k for k in platform.tenancy.list_keys() if k["role"] == "operator")
    with pytest.raises(Conflict, match="operator"):
        platform.tenancy.revoke_key(key["id"])
    assert platform.tenancy.authenticate(OPERATOR_KEY).is_operator


def test_tenant_admin_cannot_touch_other_tenants_users_or_keys_by_id(client, tenants):
    a, b = tenants
    b_key = next(k for k in client.get("/api/keys", headers=b.admin).json() if k["name"] == "automation")
    for who in (a.admin, a.admin_key):
        assert client.patch(f"/api/users/{b.member_user_id}", json={"role": "admin"}, headers=who).status_code == 404
        assert client.patch(f"/api/users/{b.admin_user_id}", json={"password": "hijacked-123"},
                            headers=who).status_code == 404
        assert client.delete(f"/api/users/{b.member_user_id}", headers=who).status_code == 404
        assert client.delete(f"/api/keys/{b_key['id']}", headers=who).status_code == 404
        r = client.post("/api/users", json={"username": "plant", "password": "password-123", "tenant_id": b.id},
                        headers=who)
        assert r.status_code == 403
        assert client.post("/api/keys", json={"tenant_id": b.id}, headers=who).status_code == 403
    assert client.get("/api/me", headers=b.admin_key).json()["role"] == "admin"  # B's key still works
