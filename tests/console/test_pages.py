"""The console's page registry and its routes (no browser needed)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from zhinao.console import pages as registry
from zhinao.console.router import mount


@pytest.fixture
def client():
    app = FastAPI()
    mount(app)
    with TestClient(app) as c:
        yield c


def test_builtin_pages_are_registered_like_extensions(client):
    listed = client.get("/api/console/pages").json()
    ids = [p["id"] for p in listed]
    assert "chat" in ids and "admin" in ids
    for p in listed:  # every listed script is really served
        r = client.get(p["script"])
        assert r.status_code == 200 and "registerPage" in r.text, p


def test_extension_page_appears_and_can_be_removed(client):
    registry.register_page("meetings", "/plugins/meetings.js")  # served by another mount
    try:
        assert {"id": "meetings", "script": "/plugins/meetings.js"} in client.get("/api/console/pages").json()
    finally:
        registry.unregister_page("meetings")
    assert "meetings" not in [p["id"] for p in client.get("/api/console/pages").json()]


def test_a_registered_static_script_that_is_missing_is_not_listed(client, caplog):
    registry.register_page("ghost", "/static/pages/ghost-does-not-exist.js")
    try:
        assert "ghost" not in [p["id"] for p in client.get("/api/console/pages").json()]
        assert "ghost-does-not-exist.js does not exist" in caplog.text
    finally:
        registry.unregister_page("ghost")


@pytest.mark.parametrize("pid,script", [
    ("Bad Id", "/static/x.js"), ("", "/static/x.js"), ("ok", "https://cdn.example.com/x.js"),
    ("ok", "//cdn.example.com/x.js"), ("ok", "static/x.js"), ("ok", "javascript:alert(1)"),
])
def test_register_page_refuses_bad_ids_and_foreign_scripts(pid, script):
    with pytest.raises(ValueError):
        registry.register_page(pid, script)


def test_shell_is_served_with_a_strict_policy(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in r.text and "智脑" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp


def test_no_asset_comes_from_a_cdn(client):
    import re

    html = client.get("/").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith("/static/") for r in refs), refs
    for ref in refs:
        assert client.get(ref).status_code == 200, ref
    for path in ("/static/app.js", "/static/pages/chat.js", "/static/pages/admin.js"):
        body = client.get(path).text
        assert not re.search(r"(cdn|unpkg|jsdelivr|googleapis)\.", body), path
    for vendored in ("LICENSE.marked", "LICENSE.dompurify", "LICENSE.lucide"):
        assert client.get("/static/vendor/" + vendored).status_code == 200
