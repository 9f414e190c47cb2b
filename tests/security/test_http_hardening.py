"""HTTP hardening (issue 8, findings 11 and 12): each test sends what the probe sent.

Findings: integers above 2**63 in ids and query parameters were 500s (OverflowError), a lone
surrogate in a chat message was a 500 with no usage recorded, a chunked body over the limit
was a 400, /metrics was public and took client-chosen label values, security headers were
only on ``/``, the 500 body named request id ``-`` (and the response had no X-Request-ID),
and an upstream model server's URL came back in error bodies.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from two_tenants import OP, make_tenant

from zhinao.gateway.app import create_app
from zhinao.gateway.errors import scrub
from zhinao.platform import Platform
from zhinao.store.models import UsageRecord

HUGE = "99999999999999999999"  # > 2**64
JUST_OVER = str(2**63)


def _err(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    e = r.json()["error"]
    assert e["message"] and e["request_id"] == r.headers["x-request-id"], (e, dict(r.headers))
    return e


# -- finding 11: the 500s ------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,param", [
    ("GET", "/api/conversations/{n}", "conv_id"),
    ("DELETE", "/api/conversations/{n}", "conv_id"),
    ("GET", "/api/jobs/{n}", "job_id"),
    ("POST", "/api/jobs/{n}/cancel", "job_id"),
    ("POST", "/api/turns/{n}/feedback", "turn_id"),
    ("GET", "/api/analytics/runs/{n}", "run_id"),
    ("GET", "/api/kb/docs/documents/{n}", "doc_id"),
    ("DELETE", "/api/keys/{n}", "key_id"),
    ("PATCH", "/api/users/{n}", "user_id"),
    ("PATCH", "/api/tenants/{n}", "tenant_id"),
    ("GET", "/api/jobs?limit={n}", "limit"),
    ("GET", "/api/usage?days={n}", "days"),
    ("GET", "/api/users?tenant_id={n}", "tenant_id"),
])
def test_integers_beyond_int64_are_a_400_naming_the_parameter(client, method, path, param):
    body = {"rating": 1} if "feedback" in path else {} if method in ("PATCH", "POST") else None
    for n in (HUGE, JUST_OVER, "-" + HUGE):
        r = client.request(method, path.format(n=n), headers=OP, json=body)
        e = _err(r, 400)
        assert e["param"] == param and "out of range" in e["message"] and "9223372036854775807" in e["message"]


def test_the_int64_range_is_in_openapi(client):
    p = client.get("/openapi.json").json()["paths"]["/api/jobs/{job_id}"]["get"]["parameters"][0]
    assert p["schema"]["maximum"] == 2**63 - 1 and p["schema"]["minimum"] == -(2**63)


def test_int64_max_itself_is_a_plain_404(client):
    _err(client.get(f"/api/jobs/{2**63 - 1}", headers=OP), 404)


@pytest.mark.parametrize("path", ["/api/kb/{n}/documents", "/api/kb/collections/{n}", "/api/kb/{n}/retrieve?q=x"])
def test_a_name_parameter_that_looks_like_a_huge_id_is_a_4xx(client, path):
    """Collections are named or numbered: a name of 30 digits was looked up as an id (OverflowError)."""
    r = client.get(path.format(n="9" * 30), headers=OP)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]


def test_huge_integers_in_a_json_body_are_a_400(client):
    r = client.post("/api/tenants", headers=OP, json={"name": "big", "rpm": int(HUGE)})
    e = _err(r, 400)
    assert "out of range" in e["message"]
    assert client.get("/api/tenants", headers=OP).status_code == 200  # and the store is fine afterwards


def _usage_rows(platform) -> int:
    with platform.db.session() as s:
        return s.scalar(select(func.count()).select_from(UsageRecord))


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", b'{"model": "echo", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}'),
    ("/v1/chat/completions", b'{"model": "echo", "messages": [{"role": "user", "content": "low \\udc00 alone"}]}'),
    ("/v1/completions", b'{"model": "echo", "prompt": "x\\udfff"}'),
    ("/v1/embeddings", b'{"model": "hash", "input": ["ok", "\\ud83d"]}'),
])
def test_lone_surrogate_is_a_400_and_nothing_is_metered(client, platform, path, body):
    before = _usage_rows(platform)
    r = client.post(path, headers={**OP, "content-type": "application/json"}, content=body)
    e = _err(r, 400)
    assert "surrogate" in e["message"] and e["param"]
    assert _usage_rows(platform) == before


def test_lone_surrogate_in_a_console_message_is_a_400(client):
    conv = client.post("/api/conversations", headers=OP, json={}).json()["id"]
    r = client.post(f"/api/conversations/{conv}/messages", headers={**OP, "content-type": "application/json"},
                    content=b'{"content": "\\ud800"}')
    assert _err(r, 400)["param"] == "content"


def test_a_surrogate_pair_and_plain_utf8_still_work(client, platform):
    before = _usage_rows(platform)
    r = client.post("/v1/chat/completions", headers={**OP, "content-type": "application/json"},
                    content='{"model": "echo", "messages": [{"role": "user", "content": "\\ud83d\\ude00 和 😀"}]}'
                    .encode())
    assert r.status_code == 200, r.text
    assert "😀" in r.json()["choices"][0]["message"]["content"]
    assert _usage_rows(platform) == before + 1
    # an escaped backslash followed by the letters u d 8 0 0 is just text
    r = client.post("/v1/chat/completions", headers={**OP, "content-type": "application/json"},
                    content=b'{"model": "echo", "messages": [{"role": "user", "content": "C:\\\\ud800"}]}')
    assert r.status_code == 200, r.text


def test_nul_characters_in_json_text_are_a_400(client):
    r = client.post("/api/conversations", headers={**OP, "content-type": "application/json"},
                    content=b'{"title": "a\\u0000b"}')
    e = _err(r, 400)
    assert e["param"] == "title" and "NUL" in e["message"]


def _chunks(total: int, size: int = 1 << 20):
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b" " * n


def test_chunked_json_body_over_the_limit_is_a_413(client, platform):
    limit = platform.settings.max_body_bytes
    r = client.post("/v1/chat/completions", headers={**OP, "content-type": "application/json"},
                    content=_chunks(limit + 1))
    e = _err(r, 413)
    assert "ZHINAO_MAX_BODY_BYTES" in e["message"] and str(limit) in e["message"]


def test_chunked_upload_over_the_limit_is_a_413(platform):
    platform.settings.max_upload_bytes = 2 * 1024 * 1024  # read when the app is built
    app = create_app(platform, warm_default=False)
    with TestClient(app) as c:
        boundary = "zzboundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
                "Content-Type: text/csv\r\n\r\n").encode()

        def body():
            yield head
            yield from _chunks(3 * 1024 * 1024)
            yield f"\r\n--{boundary}--\r\n".encode()
        c.post("/api/analytics/workspaces", headers=OP, json={"name": "w"})
        r = c.post("/api/analytics/workspaces/w/datasets", headers={**OP, "content-type":
                   f"multipart/form-data; boundary={boundary}"}, content=body())
        e = _err(r, 413)
        assert "ZHINAO_MAX_UPLOAD_BYTES" in e["message"]


def test_a_body_within_the_limit_sent_chunked_still_works(client):
    payload = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "chunked hello"}]}).encode()
    r = client.post("/v1/chat/completions", headers={**OP, "content-type": "application/json"},
                    content=iter([payload[:10], payload[10:]]))
    assert r.status_code == 200, r.text


# -- finding 12: security headers, request ids, internal URLs ---------------------------------------

def _boom_app(platform):
    app = create_app(platform, warm_default=False)

    @app.get("/api/test-only-boom")
    def boom():  # a route with a bug: what does the client see?
        raise RuntimeError(f"secret detail: {platform.settings.home}/zhinao.db at http://10.1.2.3:9000/v1")
    return app


@pytest.fixture
def boom_client(platform):
    with TestClient(_boom_app(platform), raise_server_exceptions=False) as c:
        yield c


def test_security_headers_on_every_response(boom_client):
    c = boom_client
    probes = {
        "console html": c.get("/"),
        "static js": c.get("/static/app.js"),
        "json 200": c.get("/healthz"),
        "json 401": c.get("/api/me"),
        "json 403": c.get("/metrics"),
        "json 404 unknown path": c.get("/nope/nothing"),
        "json 405": c.put("/healthz"),
        "json 400": c.get(f"/api/jobs/{HUGE}", headers=OP),
        "json 500": c.get("/api/test-only-boom"),
        "openapi": c.get("/openapi.json"),
        "sse stream": c.post("/v1/chat/completions", headers=OP,
                             json={"model": "echo", "stream": True, "messages": [{"role": "user", "content": "x"}]}),
    }
    for what, r in probes.items():
        h = r.headers
        assert h.get("x-content-type-options") == "nosniff", what
        assert h.get("referrer-policy") == "no-referrer", what
        assert h.get("x-frame-options") == "DENY", what
        assert "frame-ancestors 'none'" in h.get("content-security-policy", ""), what
        assert re.fullmatch(r"[0-9a-f]{16}", h.get("x-request-id", "")), what
    html_csp = probes["console html"].headers["content-security-policy"]
    assert "script-src 'self'" in html_csp and "unsafe-inline" not in html_csp.split("script-src")[1].split(";")[0]
    assert probes["json 200"].headers["content-security-policy"].startswith("default-src 'none'")


def test_swagger_ui_is_not_served(client):
    """It loads scripts from a CDN (offline, and against the CSP); the schema stays at /openapi.json."""
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200


def test_500_carries_the_real_request_id_and_no_internals(boom_client, platform):
    r = boom_client.get("/api/test-only-boom")
    e = _err(r, 500)
    rid = r.headers["x-request-id"]
    assert rid in e["message"] and "(request id -)" not in e["message"]
    for secret in ("secret detail", str(platform.settings.home), "10.1.2.3", "zhinao.db"):
        assert secret not in r.text
    # the client's own request id is kept (when it is plain) and comes back in header and body
    r = boom_client.get("/api/test-only-boom", headers={"X-Request-ID": "trace-42.a"})
    assert r.headers["x-request-id"] == "trace-42.a" and r.json()["error"]["request_id"] == "trace-42.a"
    r = boom_client.get("/healthz", headers={"X-Request-ID": "bad id\r\nX-Evil: 1"})
    assert re.fullmatch(r"[0-9a-f]{16}", r.headers["x-request-id"]) and "x-evil" not in r.headers


def test_every_error_body_names_the_request_id(client):
    for r in (client.get("/api/me"), client.get("/nope"), client.get(f"/api/jobs/{HUGE}", headers=OP),
              client.post("/api/conversations", headers=OP, content=b"{not json",
                          )):
        assert r.status_code >= 400
        assert r.json()["error"]["request_id"] == r.headers["x-request-id"]


@pytest.fixture
def upstream_platform(settings):
    """A model served by an OpenAI-compatible server on an internal address that refuses connections."""
    from zhinao.runtime.llama_server import free_port

    settings.models_path.parent.mkdir(parents=True, exist_ok=True)
    settings.models_path.write_text(f"""
[[models]]
name = "upstream"
backend = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"
remote_name = "gpt-internal"
""", encoding="utf-8")
    return Platform(settings)


def test_error_bodies_never_carry_an_upstream_models_url(upstream_platform):
    base = upstream_platform.models.resolve("upstream").spec.base_url
    port = base.rsplit(":", 1)[1].split("/")[0]
    with TestClient(create_app(upstream_platform, warm_default=False)) as c:
        r = c.post("/v1/chat/completions", headers=OP,
                   json={"model": "upstream", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 503, r.text
        assert base not in r.text and f":{port}" not in r.text and "127.0.0.1" not in r.text
        assert r.json()["error"]["code"] == "engine_unavailable"
        r = c.post("/v1/chat/completions", headers=OP,
                   json={"model": "upstream", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        assert base not in r.text and f":{port}" not in r.text and "127.0.0.1" not in r.text


def test_scrub_keeps_what_the_client_sent_and_hides_the_server():
    class P:  # the two attributes scrub reads, as a platform has them
        class settings:  # noqa: N801
            home = "/srv/zhinao-home"
            database_url = "postgresql+psycopg://zhinao:pw@db.internal:5432/zhinao"
            redis_url = None
            kb_milvus_uri = "http://milvus.internal:19530"
        models = None
    # 4xx: internal locations go, what the client gave stays (it needs it to fix the request)
    msg = ("cannot read /srv/zhinao-home/kb/blobs/x.pdf; directory '/data/mine' is not under the sync roots; "
           "milvus at http://milvus.internal:19530/v2 failed; see http://example.com/help")
    out = scrub(msg, 400, P)
    assert "/srv/zhinao-home" not in out and "milvus.internal" not in out
    assert "'/data/mine'" in out and "http://example.com/help" in out
    # 5xx: every URL and absolute path goes
    out = scrub("upstream http://10.0.0.5:8000/v1 failed reading /opt/models/x.gguf", 503, P)
    assert "10.0.0.5" not in out and "/opt/models" not in out and "upstream" in out


# -- finding 12: /metrics ----------------------------------------------------------------------------

def test_metrics_is_loopback_only_without_a_token(platform):
    app = create_app(platform, warm_default=False)
    with TestClient(app, client=("203.0.113.7", 40000)) as remote:
        e = _err(remote.get("/metrics"), 403)
        assert "ZHINAO_METRICS_TOKEN" in e["message"]
    for local in ("127.0.0.1", "::1"):
        with TestClient(app, client=(local, 40000)) as c:
            r = c.get("/metrics")
            assert r.status_code == 200 and "zhinao_requests_total" in r.text


def test_metrics_needs_the_token_when_one_is_set(platform):
    platform.settings.metrics_token = "s3cret-scrape-token"
    app = create_app(platform, warm_default=False)
    with TestClient(app, client=("127.0.0.1", 40000)) as c:  # a token set: loopback is not enough
        assert _err(c.get("/metrics"), 401)["code"] == "missing_api_key"
        assert _err(c.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)["code"] == "invalid_api_key"
        assert _err(c.get("/metrics", headers=OP), 401)  # an API key is not the metrics token
    with TestClient(app, client=("203.0.113.7", 40000)) as c:
        r = c.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
        assert r.status_code == 200 and "zhinao_requests_total" in r.text


def test_metric_labels_never_carry_client_text(platform):
    app = create_app(platform, warm_default=False)
    with TestClient(app, client=("127.0.0.1", 40000)) as c:
        a, _ = make_tenant(c, "acme"), None
        c.post("/api/kb/collections", headers=a.admin, json={"name": "kbmark"})
        for model in ("kb:zz-client-label-1", "kb:kbmark", "zz-client-label-2"):
            c.post("/v1/chat/completions", headers=a.admin,
                   json={"model": model, "messages": [{"role": "user", "content": "x"}]})
        c.get("/api/zz-client-path-3/x/y")
        c.get("/zz-client-path-4")
        c.request("ZZCLIENTMETHOD", "/healthz")
        # the metrics API itself bounds a label it is handed
        c.app.state.metrics.generations.labels("kb:zz-client-label-5", "ok").inc()
        text = c.get("/metrics").text
    assert "zz-client" not in text.lower() and "zzclientmethod" not in text.lower()
    assert 'model="other"' in text and 'route="unmatched"' in text and 'method="other"' in text


# -- finding 12: SIGTERM while a job runs -------------------------------------------------------------

def _serve(tmp_path, args: list[str], grace_s: float):
    """A real server process on a free port with its own home; returns (proc, base, home, log_path)."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from zhinao.runtime.llama_server import free_port

    home = tmp_path / "serve-home"
    home.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHINAO_")}
    env.update({"ZHINAO_HOME": str(home), "ZHINAO_ADMIN_KEY": OP["Authorization"][7:], "ZHINAO_ENV": "test",
                "ZHINAO_DEFAULT_MODEL": "echo", "ZHINAO_EMBEDDING_MODEL": "hash", "ZHINAO_LOG_LEVEL": "INFO",
                "ZHINAO_SHUTDOWN_GRACE_S": str(grace_s), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    log_path = home / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the caller through proc's lifetime
    cmd = [sys.executable, *args, str(port)] if args[0].endswith(".py") else \
        [str(Path(sys.executable).with_name("zhinao")), *args, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(home))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return proc, base, home, log_path
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise AssertionError("server did not start:\n" + log_path.read_text(errors="replace")[-3000:])


def _wait_running(base: str, timeout: float = 60) -> dict:
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = httpx.get(base + "/api/jobs", headers=OP, timeout=5).json()
        running = [j for j in jobs if j["status"] == "running"]
        if running:
            return running[0]
        time.sleep(0.2)
    raise AssertionError(f"no job started: {jobs}")


def _sigterm_and_time(proc) -> float:
    import signal
    import subprocess
    import time

    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return float("inf")
    return time.monotonic() - t0


@pytest.mark.slow
def test_sigterm_during_an_ingestion_job_stops_within_the_grace(tmp_path):
    """The job stops cooperatively (back to the queue, to resume at the next start) and the process exits."""
    import random

    import httpx

    grace = 5.0
    proc, base, home, log_path = _serve(tmp_path, ["serve", "--no-warm"], grace)
    try:
        assert httpx.post(base + "/api/kb/collections", headers=OP, json={"name": "big"}).status_code == 201
        rnd = random.Random(8)
        words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
        text = "\n\n".join(" ".join(rnd.choice(words) for _ in range(200)) for _ in range(3000))  # ~3.6 MB, ~30 s
        r = httpx.post(base + "/api/kb/big/documents", headers=OP, timeout=60,
                       files={"files": ("big.txt", text.encode(), "text/plain")})
        assert r.status_code == 202, r.text
        job = _wait_running(base)
    finally:
        took = _sigterm_and_time(proc)
    log = log_path.read_text(errors="replace")
    print(f"exit {took:.1f} s after SIGTERM (grace {grace} s, cooperative job)")
    assert took < grace + 5, f"took {took:.1f} s:\n{log[-3000:]}"
    import sqlite3

    with sqlite3.connect(home / "zhinao.db") as db:
        status, message = db.execute("SELECT status, message FROM jobs WHERE id = ?", (job["id"],)).fetchone()
    assert status in ("queued", "succeeded"), (status, message)  # put back for the next start (or it had finished)


@pytest.mark.slow
def test_sigterm_with_a_job_that_ignores_stop_requests_still_exits(tmp_path):
    """A handler that never checks its stop flag (like a parser stuck in C) cannot hold the process."""
    grace = 2.0
    script = str(Path(__file__).with_name("stubborn_serve.py"))
    proc, base, home, log_path = _serve(tmp_path, [script], grace)
    try:
        job = _wait_running(base)
        assert job["kind"] == "test.stubborn"
    finally:
        took = _sigterm_and_time(proc)
    log = log_path.read_text(errors="replace")
    print(f"exit {took:.1f} s after SIGTERM (grace {grace} s, job ignoring stop)")
    assert took < grace + 5, f"took {took:.1f} s:\n{log[-3000:]}"
    assert "ZHINAO_SHUTDOWN_GRACE_S" in log  # it says why it exited with the job unfinished


class _BreakingUpstream:
    """A real OpenAI-compatible server on loopback that sends one chunk of a stream and then drops
    the connection (what a crashing model server does): the error reaches the client in-band."""

    def __init__(self):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1)) if b"ength" in head else 0
                while len(body) < length:
                    body += conn.recv(65536)
                if head.startswith(b"GET"):
                    payload = b'{"object": "list", "data": []}'
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(payload)).encode() + b"\r\n\r\n" + payload)
                    continue
                event = json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                                    "choices": [{"index": 0, "delta": {"content": "partial "}, "finish_reason": None}]})
                chunk = f"data: {event}\n\n".encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                # and drop the connection without the terminating chunk

    def close(self):
        self.sock.close()


def test_an_upstream_failing_mid_stream_reports_in_band_without_its_url(settings):
    up = _BreakingUpstream()
    try:
        settings.models_path.parent.mkdir(parents=True, exist_ok=True)
        settings.models_path.write_text(f'[[models]]\nname = "flaky"\nbackend = "openai"\n'
                                        f'base_url = "http://127.0.0.1:{up.port}/v1"\n', encoding="utf-8")
        with TestClient(create_app(Platform(settings), warm_default=False)) as c:
            r = c.post("/v1/chat/completions", headers=OP, json={
                "model": "flaky", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200 and "partial" in r.text, r.text
            assert '"error"' in r.text, r.text  # the failure is reported in the stream
            assert f":{up.port}" not in r.text and "127.0.0.1" not in r.text, r.text
            conv = c.post("/api/conversations", headers=OP, json={}).json()["id"]
            r = c.post(f"/api/conversations/{conv}/messages", headers=OP, json={"content": "hi", "model": "flaky"})
            assert '"error"' in r.text and f":{up.port}" not in r.text and "127.0.0.1" not in r.text, r.text
    finally:
        up.close()
