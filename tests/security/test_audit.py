"""The audit log: who did what, when, from where; append-only and hash-chained.

Service tests run on SQLite and the real PostgreSQL; the rest drive the real app with two
tenants (each with an admin signed in through the console login and a member) and the
platform operator (the bootstrap key of tenant ``default``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from zhinao.cli import app as cli_app
from zhinao.gateway.app import create_app
from zhinao.maas.audit import GENESIS, AuditEntry, AuditService, row_hash, verify_rows
from zhinao.platform import Platform
from zhinao.store.db import Database

OP = {"Authorization": "Bearer zk-admin-test-key-000000000000"}
PASSWORD = "S3cret-Pa55word-never-logged"


def entry(i: int, tenant_id: int = 1, **kw) -> AuditEntry:
    return AuditEntry(action="write", method="POST", route="/api/things", path=f"/api/things/{i}", status=201,
                      tenant_id=tenant_id, tenant=f"t{tenant_id}", user_id=i, username=f"user{i}", role="admin",
                      resource={"id": str(i)}, detail={"fields": ["name"], "values": {"name": f"名字 {i}"}},
                      client_ip="10.0.0.1", request_id=f"req{i}", **kw)


@pytest.fixture
def audit(db_url):
    db = Database(db_url)
    db.migrate()
    yield AuditService(db)
    db.dispose()


def _superuser_update(db: Database, sql: str, **params) -> None:
    """What someone with full database access does: drop the append-only triggers, then edit."""
    with db.engine.begin() as c:
        if db.engine.dialect.name == "sqlite":
            c.execute(sa.text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            c.execute(sa.text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        else:
            c.execute(sa.text("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log"))
        c.execute(sa.text(sql), params)


# -- the service ----------------------------------------------------------------------------------
def test_rows_chain_and_verify(audit):
    assert audit.verify() == {"ok": True, "rows": 0, "first_broken": None, "head": None}
    rows = [audit.record(entry(i)) for i in range(1, 6)]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == GENESIS and all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:]))
    res = audit.verify()
    assert res["ok"] and res["rows"] == 5 and res["head"] == {"seq": 5, "hash": rows[-1]["hash"]}
    listed = audit.list(limit=2)
    assert [r["seq"] for r in listed["rows"]] == [5, 4] and listed["next_before"] == 4
    assert [r["seq"] for r in audit.list(before=4, limit=10)["rows"]] == [3, 2, 1]
    assert listed["rows"][0] == rows[-1]  # what is read back hashes the same as what was written


def test_the_table_is_append_only(audit):
    audit.record(entry(1))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with audit.db.engine.begin() as c:
            c.execute(sa.text("UPDATE audit_log SET username = 'mallory' WHERE seq = 1"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with audit.db.engine.begin() as c:
            c.execute(sa.text("DELETE FROM audit_log WHERE seq = 1"))
    assert audit.verify()["ok"]


def test_a_tampered_row_is_found_by_verify(audit):
    for i in range(1, 6):
        audit.record(entry(i))
    anchor = audit.head()
    _superuser_update(audit.db, "UPDATE audit_log SET username = 'mallory' WHERE seq = 3")
    res = audit.verify()
    assert not res["ok"] and res["first_broken"]["seq"] == 3 and "altered" in res["first_broken"]["reason"]
    assert res["rows"] == 2
    # rewriting the hash too does not help: the next row no longer links to it
    fake = {**audit.list(limit=10)["rows"][2], "username": "mallory"}
    _superuser_update(audit.db, "UPDATE audit_log SET hash = :h WHERE seq = 3", h=row_hash(fake))
    res = audit.verify()
    assert res["first_broken"]["seq"] == 4 and "does not link" in res["first_broken"]["reason"]
    # and an anchor kept elsewhere catches a whole rewritten chain
    assert not audit.verify(anchor=(anchor["seq"], "f" * 64))["ok"]


def test_deleted_rows_are_found_by_verify(audit):
    for i in range(1, 6):
        audit.record(entry(i))
    _superuser_update(audit.db, "DELETE FROM audit_log WHERE seq = 2")
    res = audit.verify()
    assert res["first_broken"] == {"seq": 2, "reason": "row 2 is missing (the next row is 3)"}
    _superuser_update(audit.db, "DELETE FROM audit_log WHERE seq >= 2")  # now only the tail is gone
    res = audit.verify()
    assert not res["ok"] and "rows at the end were removed" in res["first_broken"]["reason"]


@pytest.mark.slow
def test_concurrent_appends_keep_one_unbroken_chain(audit):
    go = threading.Barrier(8)

    def writer(w):
        go.wait()
        for i in range(10):
            audit.record(entry(w * 100 + i))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    res = audit.verify()
    assert res["ok"] and res["rows"] == 80 and res["head"]["seq"] == 80


def test_verify_rows_of_an_export(audit, tmp_path):
    for i in range(1, 4):
        audit.record(entry(i, tenant_id=1 + i % 2))
    f = tmp_path / "a.jsonl"
    with f.open("w", encoding="utf-8") as out:
        assert audit.export_jsonl(out) == 3
    rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
    assert rows == list(audit.iter_rows())
    assert verify_rows(rows, from_start=True)["ok"]
    with f.open("w", encoding="utf-8") as out:
        assert audit.export_jsonl(out, tenant_id=2) == 2  # seq 1 and 3: not contiguous, rows check alone
    part = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
    assert [r["seq"] for r in part] == [1, 3] and verify_rows(part, contiguous=False)["ok"]
    part[1]["status"] = 200
    assert verify_rows(part, contiguous=False)["first_broken"]["seq"] == 3


# -- through the app -------------------------------------------------------------------------------
def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _login(c, username, password=PASSWORD, tenant=None):
    r = c.post("/api/auth/login", json={"username": username, "password": password, "tenant": tenant})
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
def world(client, platform):
    """Tenants acme and bravo, each with an admin (console session) and a member; what each did."""
    out = {"op_key_id": client.get("/api/me", headers=OP).json()["key_id"], "secrets": [PASSWORD]}
    for name in ("acme", "bravo"):
        t = client.post("/api/tenants", json={"name": name}, headers=OP, )
        assert t.status_code == 201, t.text
        tid = t.json()["id"]
        users = {}
        for role in ("admin", "member"):
            r = client.post("/api/users", headers=OP, json={"username": f"{name}-{role}", "password": PASSWORD,
                                                            "role": role, "tenant_id": tid})
            assert r.status_code == 201, r.text
            users[role] = r.json()["id"]
        admin = _login(client, f"{name}-admin", tenant=name)
        member = _login(client, f"{name}-member", tenant=name)
        k = client.post("/api/keys", json={"name": "bot", "role": "member"}, headers=_bearer(admin))
        assert k.status_code == 201, k.text
        out[name] = {"id": tid, "admin": _bearer(admin), "member": _bearer(member), "users": users,
                     "key": k.json()}
        out["secrets"] += [admin, member, k.json()["key"]]
    return out


def all_rows(platform) -> list[dict]:
    return list(platform.audit.iter_rows())


def test_writes_are_logged_with_the_principal_and_no_secret(client, platform, world):
    acme = world["acme"]
    r = client.patch(f"/api/users/{acme['users']['member']}", json={"password": "An0ther-" + PASSWORD},
                     headers={**acme["admin"], "X-Request-Id": "req-reset-pw"})
    assert r.status_code == 200, r.text
    world["secrets"].append("An0ther-" + PASSWORD)
    assert client.post("/api/auth/login", json={"username": "acme-admin", "password": "wrong-" + PASSWORD,
                                                "tenant": "acme"}).status_code == 401
    rows = all_rows(platform)
    text = json.dumps(rows, ensure_ascii=False)
    for secret in world["secrets"] + ["wrong-" + PASSWORD]:
        assert secret not in text and secret[:20] not in text

    by = {(r["method"], r["route"], r.get("username")): r for r in rows}
    t = by[("POST", "/api/tenants", "admin")]
    assert (t["role"], t["key_id"], t["status"], t["action"]) == ("operator", world["op_key_id"], 201, "write")
    assert t["detail"]["values"] == {"name": "acme"} or t["detail"]["values"]["name"] in ("acme", "bravo")
    assert t["resource"]["id"] in (str(acme["id"]), str(world["bravo"]["id"]))
    u = next(r for r in rows if r["route"] == "/api/users" and r["detail"]["values"]["username"] == "acme-member")
    assert "password" in u["detail"]["fields"] and "password" not in u["detail"]["values"]
    assert u["target_tenant_id"] == acme["id"] and u["tenant"] == "default"  # the operator acted on acme
    k = next(r for r in rows if r["route"] == "/api/keys" and r["tenant"] == "acme")
    assert (k["username"], k["role"], k["tenant_id"], k["status"]) == ("acme-admin", "admin", acme["id"], 201)
    assert k["resource"]["id"] == str(acme["key"]["id"]) and k["client_ip"] == "testclient"
    pw = next(r for r in rows if r["request_id"] == "req-reset-pw")
    assert pw["route"] == "/api/users/{user_id}" and pw["resource"] == {"user_id": str(acme["users"]["member"])}
    assert pw["detail"] == {"fields": ["password"]}
    logins = [r for r in rows if r["action"] == "login"]
    ok = next(r for r in logins if r["username"] == "acme-admin" and r["status"] == 200)
    assert ok["tenant_id"] == acme["id"] and ok["user_id"] == acme["users"]["admin"] and ok["key_id"] is None
    bad = next(r for r in logins if r["status"] == 401)
    assert bad["username"] == "acme-admin" and bad["user_id"] is None
    assert platform.audit.verify()["ok"]


def test_refused_writes_are_logged_and_generations_are_not(client, platform, world):
    before = platform.audit.head()["seq"]
    r = client.post("/api/tenants", json={"name": "evil"}, headers=world["acme"]["admin"])
    assert r.status_code == 403
    r = client.post("/v1/chat/completions", headers=world["acme"]["member"],
                    json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200  # metered as usage, not audited
    assert client.post("/api/nowhere", headers=OP).status_code == 404  # no route: nothing was done
    rows = platform.audit.list(limit=10)["rows"]
    new = [r for r in rows if r["seq"] > before]
    assert [(r["route"], r["status"], r["username"]) for r in new] == [("/api/tenants", 403, "acme-admin")]


def test_operator_reads_across_tenants_are_logged(client, platform, world):
    before = platform.audit.head()["seq"]
    assert client.get("/api/users", headers=OP).status_code == 200
    assert client.get("/api/usage", params={"all": "1"}, headers=OP).status_code == 200
    assert client.get("/api/users", headers=world["acme"]["admin"]).status_code == 200  # own tenant: not logged
    assert client.get("/api/me", headers=OP).status_code == 200  # not a cross-tenant read
    new = [r for r in platform.audit.list(limit=20)["rows"] if r["seq"] > before]
    assert sorted((r["action"], r["route"], r["role"]) for r in new) == [
        ("read", "/api/usage", "operator"), ("read", "/api/users", "operator")]
    usage = next(r for r in new if r["route"] == "/api/usage")
    assert usage["detail"]["query"] == {"all": ["1"]}


def test_tenant_admin_sees_only_their_tenant(client, platform, world):
    acme, bravo = world["acme"], world["bravo"]
    assert client.post("/api/keys", json={"name": "b2"}, headers=bravo["admin"]).status_code == 201
    r = client.get("/api/audit", params={"limit": 1000}, headers=acme["admin"])
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert rows and all(acme["id"] in (x["tenant_id"], x["target_tenant_id"]) for x in rows)
    assert not any(x["tenant"] == "bravo" or x["target_tenant_id"] == bravo["id"] for x in rows)
    assert "bravo" not in r.text
    assert any(x["route"] == "/api/users" and x["role"] == "operator" for x in rows)  # done to acme: shown
    r = client.get("/api/audit", params={"tenant_id": bravo["id"]}, headers=acme["admin"])
    assert r.status_code == 403
    r = client.get("/api/audit/export", headers=acme["admin"])
    assert r.status_code == 200 and "bravo" not in r.text and r.text.count("\n") == len(rows)
    assert client.get("/api/audit/verify", headers=acme["admin"]).status_code == 403
    for who in (acme["member"], _bearer(acme["key"]["key"])):
        assert client.get("/api/audit", headers=who).status_code == 403
    op = client.get("/api/audit", params={"limit": 1000}, headers=OP).json()["rows"]
    assert {x["tenant"] for x in op} >= {"acme", "bravo", "default"}
    only_b = client.get("/api/audit", params={"tenant_id": bravo["id"], "limit": 1000}, headers=OP).json()["rows"]
    assert only_b and all(bravo["id"] in (x["tenant_id"], x["target_tenant_id"]) for x in only_b)
    assert client.get("/api/audit", params={"since": "yesterday"}, headers=OP).status_code == 400
    assert client.get("/api/audit", params={"tenant_id": 2**63}, headers=OP).status_code in (400, 422)
    v = client.get("/api/audit/verify", headers=OP).json()
    last = platform.audit.list(limit=1)["rows"][0]  # the operator's verify was itself audited, after it ran
    assert v["ok"] and v["rows"] == last["seq"] - 1 and last["route"] == "/api/audit/verify"


def test_export_jsonl_round_trip_and_cli_verify(client, platform, world, tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli_app, ["audit", "export"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    assert lines == all_rows(platform) and len(lines) >= 10
    f = tmp_path / "audit.jsonl"
    assert runner.invoke(cli_app, ["audit", "export", "--tenant", "acme", "-o", str(f)]).exit_code == 0
    acme = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines()]
    assert acme and all(world["acme"]["id"] in (x["tenant_id"], x["target_tenant_id"]) for x in acme)
    assert runner.invoke(cli_app, ["audit", "verify", "--file", str(f)]).exit_code == 0
    f.write_text(r.stdout, encoding="utf-8")
    ok = runner.invoke(cli_app, ["audit", "verify", "--file", str(f)])
    assert ok.exit_code == 0 and "chain intact" in ok.stdout
    f.write_text(r.stdout.replace('"acme-admin"', '"mallory"', 1), encoding="utf-8")
    bad = runner.invoke(cli_app, ["audit", "verify", "--file", str(f)])
    assert bad.exit_code == 1 and "altered" in bad.output

    v = runner.invoke(cli_app, ["audit", "verify"])
    assert v.exit_code == 0 and "chain intact" in v.stdout, v.output
    head = v.stdout.strip().rsplit("head ", 1)[1]
    assert runner.invoke(cli_app, ["audit", "verify", "--anchor", head]).exit_code == 0
    _superuser_update(platform.db, "UPDATE audit_log SET status = 200 WHERE seq = 2")
    v = runner.invoke(cli_app, ["audit", "verify"])
    assert v.exit_code == 1 and "row 2" in v.output
    since = runner.invoke(cli_app, ["audit", "export", "--since", "not-a-date"])
    assert since.exit_code == 2 and "ISO date" in since.output


def test_console_audit_page_is_registered_and_served(client, tmp_path):
    pages = {p["id"]: p["script"] for p in client.get("/api/console/pages").json()}
    assert pages.get("audit") == "/static/pages/audit.js"
    js = client.get(pages["audit"]).text
    assert "registerPage" in js and "/api/audit" in js and "adminOnly: true" in js
    assert "审计" in js and '"Audit"' in js and "/api/audit/verify" in js and "/api/audit/export" in js
    node = shutil.which("node")
    if node:  # a syntax error would only show in a browser otherwise (tests/e2e/test_console_audit.py)
        (tmp_path / "audit.js").write_text(js, encoding="utf-8")
        r = subprocess.run([node, "--check", str(tmp_path / "audit.js")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
