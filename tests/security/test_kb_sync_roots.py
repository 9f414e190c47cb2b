"""Finding 4 of issue 8: ``POST /api/kb/{c}/sync {"directory": "<home>/kb/blobs"}`` by A's admin
ingested B's documents. Folder sync over the API now reads only inside the operator's
``ZHINAO_KB_SYNC_ROOTS`` (``{tenant}`` expands to the caller's tenant), after symlinks."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.slow  # a real Milvus Lite collection per test


def _collection(client, headers, name="stolen"):
    r = client.post("/api/kb/collections", json={"name": name}, headers=headers)
    assert r.status_code == 201, r.text


def _b_uploads_a_secret(client, b):
    _collection(client, b.member, "bravo-docs")
    r = client.post("/api/kb/bravo-docs/documents", headers=b.member, data={"wait": "true"},
                    files={"files": ("plan.txt", "bravo merger plan: confidential".encode(), "text/plain")})
    assert r.status_code == 202, r.text


def test_sync_of_the_blob_store_is_refused(client, tenants, settings):
    """The attack exactly, on a default installation (no roots configured: API folder sync is off)."""
    a, b = tenants
    _b_uploads_a_secret(client, b)
    _collection(client, a.admin)
    for directory in (str(settings.home / "kb" / "blobs"), str(settings.home), "/etc", "/"):
        r = client.post("/api/kb/stolen/sync", json={"directory": directory, "wait": True}, headers=a.admin)
        assert r.status_code == 403, (directory, r.text)
        assert "ZHINAO_KB_SYNC_ROOTS" in r.json()["error"]["message"]
    docs = client.get("/api/kb/stolen/documents", headers=a.admin).json()
    assert docs == [] or docs.get("documents", []) == []
    assert client.get("/api/kb/search?q=merger", headers=a.admin).json()["results"] == []


def test_sync_roots_per_tenant_and_symlinks(client, tenants, settings, tmp_path):
    a, b = tenants
    roots = tmp_path / "sync"
    (roots / "acme").mkdir(parents=True)
    (roots / "bravo").mkdir(parents=True)
    (roots / "acme" / "faq.txt").write_text("acme faq: reset the router by holding the button", encoding="utf-8")
    (roots / "bravo" / "secret.txt").write_text("bravo secret: merger plan", encoding="utf-8")
    settings.kb_sync_roots = [roots / "{tenant}"]
    _collection(client, a.admin)

    def sync(directory):
        return client.post("/api/kb/stolen/sync", json={"directory": str(directory), "wait": True}, headers=a.admin)

    assert sync(roots / "bravo").status_code == 403  # another tenant's root
    assert sync(roots / "acme" / ".." / "bravo").status_code == 403  # traversal
    assert sync(settings.home / "kb" / "blobs").status_code == 403
    os.symlink(roots / "bravo", roots / "acme" / "linked-dir")  # a folder link inside A's root pointing out
    assert sync(roots / "acme" / "linked-dir").status_code == 403
    os.symlink(roots / "bravo" / "secret.txt", roots / "acme" / "linked.txt")  # a file link pointing out
    os.symlink(settings.home / "zhinao.db", roots / "acme" / "db.txt")
    r = sync(roots / "acme")
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["added_or_changed"] == ["faq.txt"], out
    assert {x["source"] for x in out["rejected"]} >= {"linked.txt", "db.txt"}
    assert out["job"]["status"] == "succeeded"
    hits = client.get("/api/kb/search?q=merger", headers=a.admin).json()["results"]
    assert "merger" not in str(hits)
    assert "router" in str(client.get("/api/kb/search?q=router", headers=a.admin).json()["results"])
    # a member may not sync at all (it reads the server's disk)
    assert client.post("/api/kb/stolen/sync", json={"directory": str(roots / "acme")},
                       headers=a.member).status_code == 403
