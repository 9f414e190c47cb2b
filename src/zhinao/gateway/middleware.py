"""Pure-ASGI middleware: request ids, access logs + metrics, and the body-size limit.

Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through untouched and a
client disconnect still reaches the endpoint (which then stops the engine).
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from zhinao.gateway.observability import request_id_var

log = logging.getLogger("zhinao.access")


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
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex[:16]
        token = request_id_var.set(rid)
        t0 = time.perf_counter()
        status_holder = {"status": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        # uploads (multipart) get their own, larger limit; the capability checks its own per-file limit
        is_upload = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        limit = self.max_upload if is_upload else self.max_json
        try:
            clen = headers.get(b"content-length")
            if clen is not None and clen.isdigit() and int(clen) > limit:
                return await self._too_large(send_wrapper, limit)
            received = 0

            async def receive_wrapper():
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise _TooLarge()
                return message

            try:
                await self.app(scope, receive_wrapper, send_wrapper)
            except _TooLarge:
                await self._too_large(send_wrapper, limit)
        finally:
            dt = time.perf_counter() - t0
            route = scope.get("route")
            path = getattr(route, "path", None) or _route_group(scope["path"])
            m = self.metrics_getter()
            if m is not None:
                m.requests.labels(scope["method"], path, str(status_holder["status"])).inc()
                m.latency.labels(path).observe(dt)
            if scope["path"] not in ("/healthz", "/metrics", "/readyz", "/api/status"):
                log.info("%s %s %s", scope["method"], scope["path"], status_holder["status"],
                         extra={"method": scope["method"], "path": scope["path"],
                                "status": status_holder["status"], "duration_ms": round(dt * 1000, 1)})
            request_id_var.reset(token)

    async def _too_large(self, send, limit: int):
        setting = "ZHINAO_MAX_UPLOAD_BYTES" if limit == self.max_upload else "ZHINAO_MAX_BODY_BYTES"
        body = json.dumps({"error": {
            "message": f"request body too large: the limit is {limit} bytes ({setting})",
            "type": "invalid_request_error", "param": None, "code": "payload_too_large"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _route_group(path: str) -> str:
    """Low-cardinality label for unmatched paths."""
    parts = path.split("/")
    return "/".join(parts[:3]) if len(parts) > 2 else path
