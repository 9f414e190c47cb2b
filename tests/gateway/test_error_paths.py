"""Error paths through the API: each bad call gets a 4xx whose message says what to fix, never a
500, and leaves nothing changed. (An audit sampled 10 error paths; 6 had no test at all.)"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from fastapi.testclient import TestClient

from tests.gateway.conftest import AUTH
from zhinao.gateway.app import create_app
from zhinao.platform import Platform
from zhinao.settings import get_settings


def err(r, status: int, *words: str) -> dict:
    """Assert an error response: the status, a JSON error body, and the words in its message."""
    assert r.status_code == status, (r.status_code, r.text)
    e = r.json()["error"]
    for w in words:
        assert w.lower() in e["message"].lower(), e
    assert e["request_id"] == r.headers["x-request-id"]
    return e


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One platform for the module (a knowledge service per test would cost seconds each); every
    test names its own collections. Folder sync over the API is on, for one root."""
    home = tmp_path_factory.mktemp("error-paths")
    roots = home / "kb-sources"
    roots.mkdir()
    env = {"ZHINAO_HOME": str(home / "home"), "ZHINAO_DEFAULT_MODEL": "echo", "ZHINAO_EMBEDDING_MODEL": "hash",
           "ZHINAO_ADMIN_KEY": AUTH["Authorization"][7:], "ZHINAO_ADMIN_PASSWORD": "admin-password",
           "ZHINAO_KB_SYNC_ROOTS": json.dumps([str(roots)])}
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith("ZHINAO_"):
                mp.delenv(k)
        for k, v in env.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        platform = Platform(get_settings())
        with TestClient(create_app(platform, warm_default=False)) as c:
            yield {"client": c, "roots": roots}
        get_settings.cache_clear()


@pytest.fixture
def client(world):
    return world["client"]


@pytest.fixture(scope="module")
def other(world):
    """A second tenant with its own admin key, a collection and a user of its own."""
    client = world["client"]
    t = client.post("/api/tenants", headers=AUTH, json={"name": "other"}).json()
    key = client.post("/api/keys", headers=AUTH, json={"name": "other-admin", "tenant_id": t["id"], "role": "admin"})
    assert key.status_code == 201, key.text
    h = {"Authorization": f"Bearer {key.json()['key']}"}
    assert client.post("/api/kb/collections", headers=h, json={"name": "theirs"}).status_code == 201
    u = client.post("/api/users", headers=h, json={"username": "their-user", "password": "password-123"})
    assert u.status_code == 201, u.text
    return {"tenant": t, "h": h, "user_id": u.json()["id"]}


def _collection(client) -> str:
    name = "c-" + uuid.uuid4().hex[:8]
    assert client.post("/api/kb/collections", headers=AUTH, json={"name": name}).status_code == 201
    return name


def _document(client, coll: str) -> int:
    r = client.post(f"/api/kb/{coll}/documents", headers=AUTH, data={"wait": "true"},
                    files=[("files", ("tariff.txt", "畅享套餐月租 88 元。".encode(), "text/plain"))])
    assert r.status_code == 202, r.text
    return r.json()["job"]["result"]["results"][0]["doc_id"]


# -- knowledge: collections and members --------------------------------------------------------------
def test_delete_a_missing_collection_is_404(client):
    err(client.delete("/api/kb/collections/nope", headers=AUTH), 404, "nope")


def test_delete_another_tenants_collection_is_404_and_it_survives(client, other):
    err(client.delete("/api/kb/collections/theirs", headers=AUTH), 404, "theirs")
    assert client.get("/api/kb/collections/theirs", headers=other["h"]).status_code == 200


def test_remove_a_member_who_is_not_one_is_404(client):
    c = _collection(client)
    err(client.delete(f"/api/kb/collections/{c}/members/987654", headers=AUTH), 404, "987654")


def test_remove_a_member_of_a_missing_or_foreign_collection_is_404(client, other):
    err(client.delete("/api/kb/collections/nope/members/1", headers=AUTH), 404, "nope")
    err(client.delete(f"/api/kb/collections/theirs/members/{other['user_id']}", headers=AUTH), 404, "theirs")


def test_add_another_tenants_user_as_member_is_404(client, other):
    c = _collection(client)
    err(client.put(f"/api/kb/collections/{c}/members/{other['user_id']}", headers=AUTH, json={}), 404,
        "not found in your tenant")


# -- knowledge: documents and sync ---------------------------------------------------------------------
def test_replace_a_missing_document_is_404(client):
    c = _collection(client)
    r = client.put(f"/api/kb/{c}/documents/424242", headers=AUTH, data={"wait": "true"},
                   files={"file": ("tariff.txt", "新版资费。".encode(), "text/plain")})
    err(r, 404, "424242")


def test_replace_with_a_wrong_type_is_400_and_keeps_the_document(client):
    c = _collection(client)
    doc_id = _document(client, c)
    r = client.put(f"/api/kb/{c}/documents/{doc_id}", headers=AUTH, data={"wait": "true"},
                   files={"file": ("tariff.exe", b"MZ\x90\x00binary", "application/octet-stream")})
    err(r, 400, "same type", "tariff.txt")
    r = client.put(f"/api/kb/{c}/documents/{doc_id}", headers=AUTH, data={"wait": "true"},
                   files={"file": ("tariff.txt", b"", "text/plain")})  # the right type, but empty
    assert 400 <= r.status_code < 500, r.text
    doc = client.get(f"/api/kb/{c}/documents/{doc_id}", headers=AUTH).json()
    assert doc["status"] == "ready" and doc["source"] == "tariff.txt" and doc["version"] == 1


def test_replace_in_another_tenants_collection_is_404(client, other):
    r = client.put("/api/kb/theirs/documents/1", headers=AUTH, data={"wait": "true"},
                   files={"file": ("a.txt", b"x", "text/plain")})
    err(r, 404, "theirs")


def test_sync_a_missing_folder_is_4xx_with_the_folder_named(client, world):
    c = _collection(client)
    missing = world["roots"] / "no-such-folder"
    r = client.post(f"/api/kb/{c}/sync", headers=AUTH, json={"directory": str(missing), "wait": True})
    assert r.status_code in (400, 404), r.text
    assert "no-such-folder" in r.json()["error"]["message"], r.text
    (world["roots"] / "a-file.txt").write_text("not a folder")
    r = client.post(f"/api/kb/{c}/sync", headers=AUTH, json={"directory": str(world["roots"] / "a-file.txt")})
    assert r.status_code in (400, 404) and "a-file.txt" in r.json()["error"]["message"], r.text
    r = client.post("/api/kb/nope/sync", headers=AUTH, json={"directory": str(world["roots"])})
    err(r, 404, "nope")


# -- tenancy -----------------------------------------------------------------------------------------
def test_delete_a_missing_tenant_is_404(client):
    err(client.delete("/api/tenants/99999", headers=AUTH), 404, "99999")


def test_delete_the_default_tenant_is_refused(client):
    tenants = client.get("/api/tenants", headers=AUTH).json()
    default = next(t for t in tenants if t["name"] == "default")
    r = client.delete(f"/api/tenants/{default['id']}", headers=AUTH)
    assert r.status_code in (400, 409), r.text
    assert "default" in r.json()["error"]["message"]
    assert any(t["id"] == default["id"] for t in client.get("/api/tenants", headers=AUTH).json())


def test_update_and_delete_a_missing_user_are_404(client):
    err(client.patch("/api/users/99999", headers=AUTH, json={"role": "admin"}), 404, "99999")
    err(client.delete("/api/users/99999", headers=AUTH), 404, "99999")


def test_update_and_delete_another_tenants_user_are_404_for_a_tenant_admin(client, other):
    """A tenant admin names a user of another tenant: not found (not 403, which would confirm it exists)."""
    mine = client.post("/api/users", headers=AUTH, json={"username": "mine-user", "password": "password-123"}).json()
    err(client.patch(f"/api/users/{mine['id']}", headers=other["h"], json={"role": "admin"}), 404, str(mine["id"]))
    err(client.delete(f"/api/users/{mine['id']}", headers=other["h"]), 404, str(mine["id"]))
    assert any(u["id"] == mine["id"] for u in client.get("/api/users", headers=AUTH).json())
