"""Map every error to OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``.

Client mistakes become 4xx with a message saying what to fix; anything unexpected is a
500 that names the request id (for the logs) and leaks no internals.

Messages are built deep in the services and sometimes quote what they tried: an upstream
model server's ``base_url``, a file under the server's home. :func:`scrub` takes those out
of every error body (the full text goes to the log under the same request id, where the
operator finds it); a 5xx loses every URL and absolute path, a 4xx only the internal ones
(a path or URL the client sent is theirs to see again).

:data:`ERROR_MODEL` is the body's JSON schema; ``create_app`` declares it in OpenAPI for
the 4xx/5xx codes each route really returns (see :func:`declare_error_responses`).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from zhinao.errors import ZhinaoError
from zhinao.gateway.observability import request_id_var

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    request_id: str | None = None  #: the same as the X-Request-ID response header; quote it to the operators


class ErrorBody(BaseModel):
    """Every 4xx/5xx body (OpenAI's error shape)."""

    error: ErrorDetail


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code,
                      "request_id": request_id_var.get()}}


def internal_error_body() -> dict:
    return error_body(f"internal error (request id {request_id_var.get()}); the operators have the "
                      "details in the logs", "server_error", "internal_error")


_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>)\]]+")
_ABS_PATH = re.compile(r"(?<![\w.:/~\-])/(?:[^\s'\"<>(),;:/]+/)+[^\s'\"<>(),;:]*")


def _internal_roots(platform: Any) -> tuple[list[str], list[str]]:
    """(path prefixes, URL prefixes) that belong to the server, never to a client."""
    paths = {sys.prefix, sys.base_prefix, str(__import__("zhinao").__path__[0]).rsplit("/", 1)[0]}
    urls: set[str] = set()
    s = getattr(platform, "settings", None)
    if s is not None:
        paths.add(str(s.home))
        for u in (s.database_url, s.redis_url, s.kb_milvus_uri):
            if u and "://" in u:
                urls.add(_netloc(u))
    models = getattr(platform, "models", None)
    if models is not None:
        try:
            for spec in models.specs():
                if spec.base_url:
                    urls.add(_netloc(spec.base_url))
                if spec.path:
                    paths.add(str(spec.path).rsplit("/", 1)[0])
        except Exception:  # never let the scrubber fail an error response
            pass
    return sorted((p for p in paths if p and p != "/"), key=len, reverse=True), sorted(urls, key=len, reverse=True)


def _netloc(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.split('/', 1)[0].rsplit('@', 1)[-1].lower()}"


def scrub(message: str, status: int, platform: Any = None) -> str:
    """``message`` without the server's internal URLs and file paths (every URL and path for a 5xx)."""
    roots, urls = _internal_roots(platform)

    def url(m: re.Match) -> str:
        u = m.group(0)
        if status >= 500 or any(_netloc(u).startswith(x) or _netloc(u) == x for x in urls):
            return "<internal url>"
        return u

    def path(m: re.Match) -> str:
        p = m.group(0)
        if status >= 500 or any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots):
            return "<server path>"
        return p

    out = _URL.sub(url, message)
    out = _ABS_PATH.sub(path, out)
    for r in roots:  # a root quoted on its own (e.g. "outside the model folders (/srv/home/models)")
        out = out.replace(r, "<server path>")
    return out


def scrub_record(record: dict, platform: Any = None, fields: tuple[str, ...] = ("error", "message")) -> dict:
    """A job or run record for a client: its free-text ``fields`` (built from exception text, which may
    name server paths or upstream URLs) scrubbed like a 4xx error body; everything else as it is."""
    out = dict(record)
    for f in fields:
        if isinstance(out.get(f), str):
            out[f] = scrub(out[f], 400, platform)
    return out


def _respond(request: Request, status: int, message: str, type_: str, code: str | None, param: str | None = None,
             headers: dict | None = None) -> JSONResponse:
    platform = getattr(request.app.state, "platform", None)
    clean = scrub(message, status, platform)
    if clean != message:
        log.info("error %s on %s %s (full text, scrubbed from the body): %s", status, request.method,
                 request.url.path, message)
    _count(request, status, code)
    return JSONResponse(error_body(clean, type_, code, param), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errs = exc.errors()
    if not errs:
        return "invalid request", None
    e = errs[0]
    loc = [str(x) for x in e.get("loc", ()) if x != "body"]
    if e.get("type") == "json_invalid":
        return "the request body is not valid JSON: " + str(e.get("ctx", {}).get("error", e.get("msg"))), None
    where = ".".join(loc) or "body"
    more = f" (and {len(errs) - 1} more problems)" if len(errs) > 1 else ""
    return f"invalid value for '{where}': {e.get('msg')}{more}", where


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ZhinaoError)
    async def _zhinao(request: Request, exc: ZhinaoError) -> JSONResponse:
        return _respond(request, exc.status, exc.message, exc.type, exc.code, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        msg, param = _validation_message(exc)
        return _respond(request, 400, msg, "invalid_request_error", "invalid_request", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large"}.get(exc.status_code)
        return _respond(request, exc.status_code, str(exc.detail), "invalid_request_error", code,
                        headers=getattr(exc, "headers", None))

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # a number the store cannot hold (SQLite/SQLAlchemy bind a Python int above 2**63 - 1)
        log.info("number out of range on %s %s: %s", request.method, request.url.path, exc)
        return _respond(request, 400, "a number in the request is out of range: integers must lie between "
                        "-2**63 and 2**63 - 1 (9223372036854775807)", "invalid_request_error", "invalid_request")

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL's "data exception" class: a value the column cannot hold (too large a number, ...)
        log.info("value refused by the database on %s %s: %s", request.method, request.url.path, exc.orig)
        first = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
        return _respond(request, 400, f"a value in the request cannot be stored: {first}",
                        "invalid_request_error", "invalid_request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # reached only without RequestContextMiddleware (which answers unhandled errors itself)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        _count(request, 500, "internal_error")
        return JSONResponse(internal_error_body(), status_code=500)


def _count(request: Request, status: int, code: str | None) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(str(status), code or "").inc()


# -- OpenAPI: declare the error responses each route really returns --------------------------

_DESCRIPTIONS = {
    400: "Invalid request: the message says which field to fix",
    401: "Missing, invalid, revoked or expired credential",
    403: "The caller's role, tenant or key scope does not allow this",
    404: "The resource does not exist or belongs to another tenant",
    409: "Conflicts with an existing resource",
    413: "Request body or file over the configured limit",
    429: "Rate limit, quota or queue full (see Retry-After)",
    503: "The model engine is unavailable",
    504: "The model did not finish in time",
}


def declare_error_responses(schema: dict[str, Any], routes: dict[tuple[str, str], set[int]]) -> dict[str, Any]:
    """Put ``ErrorBody`` under the given status codes of each operation (and drop FastAPI's 422,
    which this app never sends: validation errors are 400)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorDetail, ErrorBody):
        components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            responses.pop("422", None)
            for status in sorted(routes.get((method.upper(), path), set())):
                responses.setdefault(str(status), {"description": _DESCRIPTIONS.get(status, "Error"),
                                                   "content": {"application/json": {"schema": ref}}})
    for name in ("HTTPValidationError", "ValidationError"):
        if not _referenced(schema, f"#/components/schemas/{name}"):
            components.pop(name, None)
    return schema


def _referenced(schema: dict, ref: str) -> bool:
    import json

    return json.dumps(schema.get("paths", {})).find(f'"{ref}"') >= 0 or \
        json.dumps({k: v for k, v in schema.get("components", {}).get("schemas", {}).items()
                    if k not in ("HTTPValidationError", "ValidationError")}).find(f'"{ref}"') >= 0
