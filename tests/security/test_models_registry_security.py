"""Models are platform resources: findings 2 and 3 of issue 8, performed as found.

Finding 2: A's admin uploaded a shell script as a knowledge-base document, registered it as
a llama-server model with ``options.binary = /bin/sh`` and ran it through ``/test``.
Finding 3: A's admin registered an ``openai`` model at the attacker's URL with aliases over
``echo`` and ``default`` (capturing B's traffic), and deleted B's model.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import stat
import threading

import pytest
from two_tenants import OP, chat

from zhinao.errors import InvalidRequest

GGUF_HEADER = b"GGUF" + (3).to_bytes(4, "little") + bytes(16)


def _upload_script(client, headers, settings, marker) -> str:
    """The attack's first step: a shell script stored as a knowledge-base document (its blob path)."""
    script = f"#!/bin/sh\ntouch {marker}\n".encode()
    r = client.post("/api/kb/collections", json={"name": "notes"}, headers=headers)
    assert r.status_code == 201, r.text
    r = client.post("/api/kb/notes/documents", headers=headers, files={"files": ("run.txt", script, "text/plain")})
    assert r.status_code == 202, r.text
    digest = hashlib.sha256(script).hexdigest()
    blob = settings.home / "kb" / "blobs" / digest[:2] / f"{digest}.txt"
    assert blob.is_file()
    blob.chmod(blob.stat().st_mode | stat.S_IXUSR)  # give the attack every chance
    return str(blob)


@pytest.mark.slow
def test_tenant_admin_cannot_run_a_script_as_a_model(client, tenants, settings, tmp_path):
    """Finding 2, exactly: the script never runs, whoever asks."""
    a, _ = tenants
    marker = tmp_path / "pwned"
    blob = _upload_script(client, a.admin, settings, marker)
    body = {"name": "evil", "backend": "llama-server", "path": blob, "options": {"binary": "/bin/sh"}}
    r = client.post("/api/models", json=body, headers=a.admin)
    assert r.status_code == 403 and "operator" in r.json()["error"]["message"]
    assert client.post("/api/models/evil/test", headers=a.admin).status_code == 403
    # not even the operator's request may name a program or a file outside the model folders
    r = client.post("/api/models", json=body, headers=OP)
    assert r.status_code == 400 and "binary" in r.json()["error"]["message"]
    r = client.post("/api/models", json={**body, "options": {}}, headers=OP)
    assert r.status_code == 400 and "outside the model folders" in r.json()["error"]["message"]
    r = client.post("/api/models", json={**body, "options": {"extra_args": ["--log-file", "/etc/x"]}}, headers=OP)
    assert r.status_code == 400
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    inside = settings.model_dir / "script.gguf"
    shutil.copy(blob, inside)
    r = client.post("/api/models", json={**body, "path": str(inside), "options": {}}, headers=OP)
    assert r.status_code == 400 and "GGUF" in r.json()["error"]["message"]
    assert "evil" not in [m["name"] for m in client.get("/api/models", headers=OP).json()]
    assert not marker.exists()


def test_model_path_checks(client, settings, tmp_path):
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    good = settings.model_dir / "tiny.gguf"
    good.write_bytes(GGUF_HEADER)
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(GGUF_HEADER)
    link = settings.model_dir / "link.gguf"
    os.symlink(outside, link)  # inside the folder, pointing out of it
    sub = settings.model_dir / "dir.gguf"
    sub.mkdir()
    for path, why in ((str(outside), "outside"), (str(link), "outside"), (str(sub), "regular file"),
                      (str(settings.model_dir / "missing.gguf"), "does not exist"),
                      (str(settings.model_dir / ".." / ".." / "outside.gguf"), "")):
        r = client.post("/api/models", json={"name": "m1", "backend": "llama-server", "path": path}, headers=OP)
        assert r.status_code == 400, (path, r.text)
        assert why in r.json()["error"]["message"], (path, r.text)
    r = client.post("/api/models", json={"name": "m1", "backend": "llamacpp", "path": str(good)}, headers=OP)
    assert r.status_code == 201, r.text
    assert r.json()["path"] == str(good.resolve())  # stored resolved: a later symlink swap cannot redirect it
    r = client.post("/api/models", json={"name": "m2", "backend": "echo", "path": str(good)}, headers=OP)
    assert r.status_code == 400  # a path on a backend that has none is refused, not ignored


def test_binary_is_fixed_by_the_installation(settings, tmp_path):
    """Even a declaration that reaches the backend with ``binary`` runs the installation's llama-server."""
    from zhinao.runtime.llama_server import LlamaServerChatModel

    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    s = settings.model_copy(update={"llama_server_bin": str(fake)})
    m = LlamaServerChatModel("x", path=str(tmp_path / "m.gguf"), binary="/bin/sh", settings=s)
    assert m.argv()[0] == str(fake)


def test_stored_declaration_with_a_binary_is_not_served(settings):
    """A record written before the fix (binary, extra_args) is refused when the platform loads it."""
    from zhinao.platform import Platform
    from zhinao.store.models import ModelRecord

    p = Platform(settings)
    with p.db.session() as s:
        s.add(ModelRecord(name="old-evil", spec={"name": "old-evil", "backend": "llama-server", "path": "/tmp/x",
                                                 "options": {"binary": "/bin/sh"}}))
        s.add(ModelRecord(name="old-capture", spec={"name": "old-capture", "backend": "echo",
                                                    "aliases": ["echo"]}))
    p2 = Platform(settings)
    assert "old-evil" not in p2.models.names() and "old-capture" not in p2.models.names()
    assert p2.models.canonical("echo") == "echo"


# -- finding 3 --------------------------------------------------------------------------------

class _Capture(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        _Capture.seen.append(body)
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "captured"},
                              "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def attacker_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Capture.seen = []
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_tenant_admin_cannot_capture_other_tenants_traffic(client, tenants, attacker_server):
    """Finding 3, exactly: an openai model at the attacker's URL aliased over echo/default."""
    a, b = tenants
    body = {"name": "capture", "backend": "openai", "base_url": attacker_server, "aliases": ["echo", "default"]}
    r = client.post("/api/models", json=body, headers=a.admin)
    assert r.status_code == 403, r.text
    r = client.post("/api/models", json=body, headers=a.admin_key)
    assert r.status_code == 403
    # the operator cannot alias over platform models either (it would silently reroute everyone)
    r = client.post("/api/models", json=body, headers=OP)
    assert r.status_code in (400, 409), r.text
    r = client.post("/api/models", json={**body, "aliases": ["echo"]}, headers=OP)
    assert r.status_code == 409 and "another model" in r.json()["error"]["message"]
    r = client.post("/api/models", json={**body, "aliases": ["default"]}, headers=OP)
    assert r.status_code == 400
    reply = chat(client, b.member, "bravo-private-prompt").json()
    assert reply["choices"][0]["message"]["content"] == "bravo-private-prompt"  # echo still answers
    assert not any("bravo-private-prompt" in s for s in _Capture.seen)


def test_tenant_admin_cannot_delete_or_test_platform_models(client, tenants, settings):
    a, b = tenants
    r = client.post("/api/models", json={"name": "bravo-model", "backend": "echo"}, headers=OP)
    assert r.status_code == 201
    assert client.delete("/api/models/bravo-model", headers=a.admin).status_code == 403
    assert client.delete("/api/models/bravo-model", headers=a.admin_key).status_code == 403
    assert client.post("/api/models/bravo-model/test", headers=a.admin).status_code == 403
    assert "bravo-model" in [m["name"] for m in client.get("/api/models", headers=b.member).json()]
    assert client.delete("/api/models/bravo-model", headers=OP).status_code == 200


def test_models_are_granted_per_tenant(client, tenants):
    """The operator grants models; a tenant uses only what it is granted (default: every model)."""
    a, b = tenants
    assert client.post("/api/models", json={"name": "premium", "backend": "echo"}, headers=OP).status_code == 201
    chat(client, a.member, "before the grant")
    r = client.patch(f"/api/tenants/{a.id}", json={"models": ["echo"]}, headers=a.admin)
    assert r.status_code == 403  # a tenant admin cannot grant itself models
    r = client.patch(f"/api/tenants/{a.id}", json={"models": ["echo"]}, headers=OP)
    assert r.status_code == 200 and r.json()["models"] == ["echo"]
    names = [m["name"] for m in client.get("/api/models", headers=a.member).json()]
    assert names == ["echo"]
    v1 = [m["id"] for m in client.get("/v1/models", headers=a.member).json()["data"]]
    assert "premium" not in v1 and "echo" in v1
    assert client.get("/v1/models/premium", headers=a.member).status_code == 404
    r = client.post("/v1/chat/completions", headers=a.member,
                    json={"model": "premium", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 403 and "not granted" in r.json()["error"]["message"]
    assert client.post("/v1/chat/completions", headers=b.member,  # B keeps every model
                       json={"model": "premium", "messages": [{"role": "user", "content": "x"}]}).status_code == 200
    r = client.get("/api/models", headers=a.member).json()[0]
    assert "path" not in r and "base_url" not in r  # where a model lives is the operator's business
    assert client.patch(f"/api/tenants/{a.id}", json={"models": ["nope"]}, headers=OP).status_code == 404


# -- the egress policy -----------------------------------------------------------------------

def test_egress_policy_on_operator_models(client, settings):
    for url in ("http://169.254.169.254/latest/meta-data", "http://10.1.2.3:8000/v1", "http://[fd00:ec2::254]/v1",
                "http://192.168.0.10/v1", "http://0.0.0.0:80/v1", "http://[::ffff:169.254.169.254]/v1",
                "file:///etc/passwd", "gopher://127.0.0.1:6379/", "http://no-such-host.invalid/v1"):
        r = client.post("/api/models", json={"name": "remote", "backend": "openai", "base_url": url}, headers=OP)
        assert r.status_code == 400, (url, r.text)
    # loopback is allowed by default (local inference servers); the test server below is on 127.0.0.1
    r = client.post("/api/models", json={"name": "remote", "backend": "openai", "base_url": "http://127.0.0.1:9/v1"},
                    headers=OP)
    assert r.status_code == 201, r.text


def test_egress_policy_unit():
    from zhinao.runtime import egress

    def resolver(addrs):
        return lambda host: addrs

    egress.check_url("https://api.example.com/v1", [], resolve=resolver(["93.184.216.34"]))
    with pytest.raises(InvalidRequest, match="private"):  # one private answer is enough to refuse
        egress.check_url("https://api.example.com/v1", [], resolve=resolver(["93.184.216.34", "10.0.0.5"]))
    with pytest.raises(InvalidRequest, match="loopback"):
        egress.check_url("http://127.0.0.1:8000/v1", [])
    with pytest.raises(InvalidRequest, match="loopback"):
        egress.check_url("http://2130706433/v1", [], resolve=resolver(["127.0.0.1"]))  # decimal form of 127.0.0.1
    egress.check_url("http://10.0.0.5/v1", ["10.0.0.0/8"])
    egress.check_url("http://10.0.0.5/v1", ["private"])
    egress.check_url("http://vllm.internal/v1", ["vllm.internal"], resolve=resolver(["10.0.0.5"]))
    with pytest.raises(InvalidRequest, match="metadata"):  # link-local does not open metadata endpoints
        egress.check_url("http://169.254.169.254/", ["link-local", "169.254.0.0/16"])
    egress.check_url("http://169.254.169.254/", ["169.254.169.254"])
    egress.check_url("http://169.254.10.10/", ["link-local"])
