"""Audit middleware: one audit row per write and per operator read across tenants.

Registered once in ``gateway/app.py``, so a new route is audited without doing anything.
What is recorded (:class:`zhinao.maas.audit.AuditEntry`): the principal (tenant, user, key,
role — from ``request.state.principal``, set by the auth dependency), method, route
template, path ids, the id a create returned, status, client IP, request id and time.

* **Writes**: every POST/PUT/PATCH/DELETE under ``/api`` and ``/v1`` that matched a route,
  whatever its status (refusals are evidence too), except generations, which are metered as
  usage rows instead (:data:`METERED`).
* **Reads**: GETs by the platform operator that look across tenants — the platform-wide
  listings (:data:`CROSS_TENANT_READS`) and any GET with an ``all``, ``tenant`` or
  ``tenant_id`` query parameter; a route may also set ``request.state.audit_read = True``.
* **Never secrets**: of a JSON body only the field *names* are kept, plus the values of
  allow-listed, non-secret fields (:data:`SAFE_FIELDS`); URLs lose their user:password and
  query string. Passwords, keys and tokens are never stored, nor any response body (only a
  create's ``id``).

Pure ASGI (like :mod:`zhinao.gateway.middleware`): request and response bodies stream
through untouched; at most 64 KiB of each is copied aside to find those fields. The row is
written after the response, off the event loop; a failure to write it is logged, never
turned into an error for the client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from zhinao.gateway.observability import request_id_var
from zhinao.maas.audit import AuditEntry

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: generations: metered as usage rows (tokens, latency), not audited
METERED = frozenset({
    ("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("POST", "/v1/embeddings"),
    ("POST", "/api/conversations/{conv_id}/messages"), ("POST", "/api/kb/{collection}/chat"),
    # a read-only SQL query of the caller's own workspace (a POST because SQL is long)
    ("POST", "/api/analytics/workspaces/{ws}/query"),
})
#: GETs that show every tenant's data to the operator
CROSS_TENANT_READS = frozenset({
    "/api/tenants", "/api/tenants/{tenant_id}", "/api/users", "/api/keys", "/api/usage", "/api/feedback",
    "/api/audit", "/api/audit/export", "/api/audit/verify", "/api/jobs",
})
CROSS_TENANT_PARAMS = ("all", "tenant", "tenant_id")
#: body fields whose values are kept (when not secret-looking); every other field is kept by name
SAFE_FIELDS = frozenset({
    "name", "username", "tenant", "tenant_id", "user_id", "role", "display_name", "visibility", "disabled",
    "backend", "models", "aliases", "rpm", "tpm", "tokens_per_day", "can_write", "access_tags", "rating",
    "directory", "path", "base_url", "url", "uri", "kind", "model", "collection", "workspace", "dataset",
    "title", "tags", "type", "table", "source", "wait", "expires_in_days", "grants",
    "stage",  # the alignment stage a training job runs (sft, rm, dpo, ppo)
})
SECRET = re.compile(r"pass(word|wd|phrase)?|secret|api[_-]?key|^key$|^token$|_token$|token_|credential|"
                    r"authorization|private|cookie|session", re.I)
CAPTURE = 64 * 1024
MAX_VALUE = 200


def _clean_url(v: str) -> str:
    """Drop user:password and the query string (both may carry credentials)."""
    try:
        u = urlsplit(v)
    except ValueError:
        return "[unparseable url]"
    host = u.hostname or ""
    if u.port:
        host += f":{u.port}"
    return urlunsplit((u.scheme, host, u.path, "", ""))


def _safe_value(k: str, v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        if "://" in v or k in ("url", "uri", "base_url"):
            v = _clean_url(v)
        return v[:MAX_VALUE]
    if isinstance(v, list) and len(v) <= 50 and all(isinstance(x, (str, int, float, bool)) for x in v):
        return [x[:MAX_VALUE] if isinstance(x, str) else x for x in v]
    return "[...]"  # nested: names only


def summarize_body(data: Any) -> dict[str, Any]:
    """A JSON body as ``{"fields": [...names], "values": {safe: value}}``; never a secret's value."""
    if not isinstance(data, dict):
        return {}
    names = sorted(str(k)[:64] for k in data)[:100]
    values = {k: _safe_value(k, v) for k, v in data.items()
              if isinstance(k, str) and k in SAFE_FIELDS and not SECRET.search(k)}
    return {"fields": names, **({"values": values} if values else {})}


def _int(v: Any) -> int | None:
    try:
        i = int(v)
    except (TypeError, ValueError):
        return None
    return i if 0 <= i < 2**31 else None


def _is_operator(p: Any) -> bool:
    return bool(getattr(p, "is_operator", False))


class AuditMiddleware:
    def __init__(self, app, *, platform):
        self.app = app
        self.platform = platform

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if not (path.startswith("/api/") or path.startswith("/v1/")) or method not in WRITE_METHODS | {"GET"}:
            return await self.app(scope, receive, send)
        scope.setdefault("state", {})
        headers = dict(scope.get("headers") or [])
        want_body = method in WRITE_METHODS and b"json" in headers.get(b"content-type", b"")
        body, resp = bytearray(), {"status": 500, "json": False, "body": bytearray(), "rid": None}

        async def receive_wrapper():
            message = await receive()
            if want_body and message["type"] == "http.request" and len(body) <= CAPTURE:
                body.extend(message.get("body", b"")[:CAPTURE + 1 - len(body)])
            return message

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                resp["status"] = message["status"]
                for k, v in message.get("headers") or []:
                    if k.lower() == b"content-type":
                        resp["json"] = b"json" in v
                    elif k.lower() == b"x-request-id":
                        resp["rid"] = v.decode("latin-1")
            elif message["type"] == "http.response.body" and resp["json"] and len(resp["body"]) <= CAPTURE:
                resp["body"].extend(message.get("body", b"")[:CAPTURE + 1 - len(resp["body"])])
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            try:
                entry = self._entry(scope, method, path, bytes(body), resp)
                if entry is not None:
                    await asyncio.to_thread(self.platform.audit.record, entry)
            except Exception:
                log.exception("could not write the audit row for %s %s", method, path)

    def _entry(self, scope, method: str, path: str, body: bytes, resp: dict) -> AuditEntry | None:
        route = scope.get("route")
        template = getattr(route, "path", None)
        if template is None:  # no route matched: nothing was done
            return None
        state = scope.get("state") or {}
        p = state.get("principal")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if method == "GET":
            if not _is_operator(p):
                return None
            own = {str(getattr(p, "tenant_id", "")), str(getattr(p, "tenant", ""))}
            asked = [v for k in CROSS_TENANT_PARAMS for v in query.get(k, [])
                     if v.lower() not in ("", "0", "false", "no") and not (k != "all" and v in own)]
            if not (template in CROSS_TENANT_READS or state.get("audit_read") or asked):
                return None
            action = "read"
        else:
            if (method, template) in METERED:
                return None
            action = "login" if template.endswith("/auth/login") else "write"
        resource = {k: str(v)[:MAX_VALUE] for k, v in (scope.get("path_params") or {}).items()}
        detail: dict[str, Any] = {}
        parsed: Any = None
        if body and len(body) <= CAPTURE:
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                parsed = None
            detail = summarize_body(parsed)
        if method == "GET" and query:
            detail["query"] = {k: [x[:MAX_VALUE] for x in v[:5]] for k, v in list(query.items())[:20]
                               if not SECRET.search(k)}
        out: Any = None
        if resp["json"] and resp["body"] and len(resp["body"]) <= CAPTURE:
            try:
                out = json.loads(bytes(resp["body"]))
            except (ValueError, UnicodeDecodeError):
                out = None
        if isinstance(out, dict) and isinstance(out.get("id"), (int, str)) and method == "POST":
            resource["id"] = str(out["id"])[:MAX_VALUE]
        e = AuditEntry(action=action, method=method, route=template, path=path[:500], status=resp["status"],
                       resource=resource, detail=detail,
                       client_ip=(scope.get("client") or (None,))[0],
                       request_id=request_id_var.get(None) or resp["rid"])
        if p is not None:
            e.tenant_id, e.tenant, e.user_id = p.tenant_id, p.tenant, p.user_id
            e.username, e.key_id, e.role = p.username, p.key_id, p.role
        elif action == "login" and isinstance(out, dict) and isinstance(out.get("user"), dict):
            u = out["user"]  # a successful sign-in: the user it signed in (never the token)
            e.tenant_id, e.tenant, e.user_id = _int(u.get("tenant_id")), u.get("tenant"), _int(u.get("id"))
            e.username, e.role = u.get("username"), u.get("role")
        elif action == "login" and isinstance(parsed, dict):
            e.username = str(parsed.get("username") or "")[:100] or None  # a failed one: who was tried
        target = _int(resource.get("tenant_id"))
        if target is None and isinstance(parsed, dict):
            target = _int(parsed.get("tenant_id"))
        e.target_tenant_id = target
        return e
