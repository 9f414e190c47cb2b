"""Pure-ASGI middleware: request ids, security headers, access logs + metrics, body limits,
JSON text checks, and the last-resort 500.

Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through untouched and a
client disconnect still reaches the endpoint (which then stops the engine).

Why each piece lives here, at the edge, rather than in the routes:

* **Body limits.** A ``Content-Length`` over the limit is refused before reading. A chunked
  JSON body is read here (it is bounded by ``ZHINAO_MAX_BODY_BYTES`` and FastAPI reads it
  whole anyway), so going over gives a 413 before any route runs. A chunked upload streams
  through; when it goes over, whatever the route would have answered (FastAPI turns the
  interrupted read into a 400) is replaced by the 413.
* **JSON text.** A lone UTF-16 surrogate (``"\\ud800"``) parses into a Python ``str`` that
  cannot be encoded: it used to fail deep inside the engine or the usage writer (a 500, and
  no usage row). A NUL character is refused by PostgreSQL text columns. Both are refused
  here with a 400 naming the field, so the same body behaves the same on every store.
* **Security headers** on every response, HTML or not: the console's CSP for HTML, a
  deny-everything CSP for the rest, nosniff, no-referrer, no framing.
* **The 500.** Starlette answers unhandled exceptions in its outermost middleware, outside
  this one, where the request id is gone and the response lacks the ``X-Request-ID`` header.
  Catching them here keeps the id in the body and the header the same.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from zhinao.gateway.observability import request_id_var

log = logging.getLogger("zhinao.access")

#: an incoming X-Request-ID is kept only when it is this plain (it goes into logs and headers)
_RID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: The console renders model output, so its HTML is locked down: same-origin scripts only, no
#: inline script, no framing, no remote images or connections.
HTML_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
#: Everything that is not HTML (JSON, CSV, event streams) must never be rendered as a page.
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_SEC = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

#: \uD800-\uDFFF (surrogates) or \u0000 written as a JSON escape; found, the body is parsed to be sure
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")


class RequestContextMiddleware:
    def __init__(self, app, *, max_body_bytes: int, max_upload_bytes: int, metrics_getter):
        self.app = app
        self.max_json = max_body_bytes
        self.max_upload = max_upload_bytes
        self.metrics_getter = metrics_getter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        asked = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = asked if _RID.match(asked) else uuid.uuid4().hex[:16]
        token = request_id_var.set(rid)
        t0 = time.perf_counter()
        state = {"status": 500, "started": False, "too_large": False, "replaced": False}
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        # uploads (multipart) get their own, larger limit; the capability checks its own per-file limit
        is_upload = ctype == b"multipart/form-data"
        limit = self.max_upload if is_upload else self.max_json

        async def send_out(message):
            """The real send, with the request id and security headers on every response."""
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                message = dict(message)
                hs = list(message.get("headers") or [])
                present = {k.lower() for k, _ in hs}
                hs.append((b"x-request-id", rid.encode()))
                hs.extend(h for h in _SEC if h[0] not in present)
                if b"content-security-policy" not in present:
                    ct = next((v for k, v in hs if k.lower() == b"content-type"), b"").lower()
                    if ct.startswith(b"text/html"):
                        hs.append((b"content-security-policy", HTML_CSP.encode()))
                    elif not ct.startswith(b"image/"):
                        hs.append((b"content-security-policy", OTHER_CSP.encode()))
                message["headers"] = hs
            await send(message)

        async def send_wrapper(message):
            if state["replaced"]:
                return  # the route's answer to a body we cut off; the 413 went out instead
            if message["type"] == "http.response.start" and state["too_large"]:
                state["replaced"] = True
                return await self._too_large(send_out, limit)
            await send_out(message)

        try:
            clen = headers.get(b"content-length")
            if clen is not None and clen.isdigit() and int(clen) > limit:
                return await self._too_large(send_out, limit)
            app_receive = receive
            if _has_json_body(scope["method"], ctype):
                body = await _read_body(receive, limit)
                if body is None:
                    return await self._too_large(send_out, limit)
                problem = _json_text_problem(body)
                if problem:
                    m = self.metrics_getter()
                    if m is not None:
                        m.errors.labels("400", "invalid_request").inc()
                    return await _send_error(send_out, 400, problem[0], "invalid_request", problem[1])
                app_receive = _replay(body, receive)
            else:
                received = 0

                async def app_receive():
                    nonlocal received
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > limit:
                            state["too_large"] = True
                            raise _TooLarge()
                    return message

            try:
                await self.app(scope, app_receive, send_wrapper)
            except _TooLarge:
                if not state["started"]:
                    await self._too_large(send_out, limit)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if state["started"]:
                raise  # the response is already on its way; the server closes the connection
            from zhinao.gateway.errors import internal_error_body

            m = self.metrics_getter()
            if m is not None:
                m.errors.labels("500", "internal_error").inc()
            await _send_json(send_out, 500, internal_error_body())
        finally:
            dt = time.perf_counter() - t0
            route = scope.get("route")
            # labels are never client text: the route template, or one bucket for unmatched paths
            path = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            m = self.metrics_getter()
            if m is not None:
                m.requests.labels(method, path, str(state["status"])).inc()
                m.latency.labels(path).observe(dt)
            if scope["path"] not in ("/healthz", "/metrics", "/readyz", "/api/status"):
                log.info("%s %s %s", method, scope["path"], state["status"],
                         extra={"method": method, "path": scope["path"],
                                "status": state["status"], "duration_ms": round(dt * 1000, 1)})
            request_id_var.reset(token)

    async def _too_large(self, send, limit: int):
        setting = "ZHINAO_MAX_UPLOAD_BYTES" if limit == self.max_upload else "ZHINAO_MAX_BODY_BYTES"
        m = self.metrics_getter()
        if m is not None:
            m.errors.labels("413", "payload_too_large").inc()
        await _send_error(send, 413, f"request body too large: the limit is {limit} bytes ({setting})",
                          "payload_too_large")


class _TooLarge(Exception):
    pass


def _has_json_body(method: str, ctype: bytes) -> bool:
    """FastAPI parses a body as JSON when it says so or says nothing."""
    return method in ("POST", "PUT", "PATCH", "DELETE") and (ctype == b"" or ctype.endswith(b"json"))


async def _read_body(receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit``."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive):
    """A receive that gives the buffered body once, then the client's own messages (disconnects)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


def _json_text_problem(body: bytes) -> tuple[str, str] | None:
    """(message, param) when a JSON string holds a lone surrogate or a NUL character.

    The cheap byte scan almost never matches; only then is the body parsed (a valid pair
    ``\\ud83d\\ude00`` decodes to one character and passes).
    """
    if not _SUSPECT_ESCAPE.search(body):
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None  # FastAPI reports the JSON error itself
    stack: list[tuple[str, object]] = [("", doc)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, dict):
            for k, x in v.items():
                if isinstance(k, str) and _bad_text(k):
                    stack.append((where, k))
                stack.append((f"{where}.{k}" if where else str(k), x))
        elif isinstance(v, list):
            stack.extend((f"{where}.{i}" if where else str(i), x) for i, x in enumerate(v))
        elif isinstance(v, str):
            bad = _bad_text(v)
            if bad == "nul":
                return (f"invalid value for '{where or 'body'}': text must not contain NUL characters (\\u0000); "
                        "remove them", where or None)
            if bad == "surrogate":
                return (f"invalid value for '{where or 'body'}': text contains a lone UTF-16 surrogate "
                        "(e.g. \\ud800), which is not valid Unicode; send characters outside the BMP as a "
                        "surrogate pair or as UTF-8", where or None)
    return None


def _bad_text(s: str) -> str | None:
    if "\x00" in s:
        return "nul"
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return "surrogate"
    return None


async def _send_error(send, status: int, message: str, code: str, param: str | None = None) -> None:
    await _send_json(send, status, {"error": {"message": message, "type": "invalid_request_error",
                                              "param": param, "code": code, "request_id": request_id_var.get()}})


async def _send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
