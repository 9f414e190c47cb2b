"""Rules applied to the whole route table once the routers are mounted.

Two things every route needs and no route should have to remember:

* **Integer parameters are bounded** to what the metadata store can hold (a signed 64-bit
  integer). ``/api/jobs/99999999999999999999`` used to reach SQLAlchemy, which raised
  ``OverflowError`` while binding it (a 500). :func:`int64_params` is an app-wide dependency
  that runs before a route's own parameters are validated and refuses any ``int`` path or
  query parameter outside the range with a 400 naming it; OpenAPI shows the range
  (``minimum``/``maximum``), so fuzzers and clients see it. Integers inside JSON bodies are
  caught later, by the ``OverflowError`` handler in :mod:`zhinao.gateway.errors`.
* **Error responses are declared** in OpenAPI with the error body model: which 4xx/5xx
  codes a route can return follows from what it takes (credentials, parameters, a body) and
  what it does (generates with a model, creates something). :func:`error_statuses` is that
  rule; the schemathesis suite checks it against what the routes really answer.

Routes are only read here, never modified (FastAPI builds its own copy of an included
route's parameters, so changing them after the fact would not even take effect).
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from zhinao.errors import InvalidRequest

log = logging.getLogger(__name__)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: routes that call a model or the knowledge index (rate limits, quotas, queue, engine errors)
_GENERATES = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/messages", "/chat", "/test",
              "/retrieve", "/search", "/documents", "/sync", "/reindex", "/ask")


def iter_api_routes(app: FastAPI) -> Iterator[Any]:
    """Every API route of ``app`` with its full path (``.path_format``, ``.methods``, ``.dependant``).

    FastAPI >= 0.16x keeps included routers as lazy groups; older ones flatten them into
    ``app.routes``. Both are read.
    """
    for r in app.routes:
        contexts = getattr(r, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                if isinstance(ctx.original_route, APIRoute):
                    yield ctx
        elif isinstance(r, APIRoute):
            yield r


def _walk(dependant):
    yield dependant
    for sub in dependant.dependencies:
        yield from _walk(sub)


def _is_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and args[0] is int
    return False


_INT_PARAMS: dict[int, tuple[list[str], list[str]]] = {}


def _int_params(route: APIRoute) -> tuple[list[str], list[str]]:
    """(path, query) names of the route's ``int`` parameters (cached per route)."""
    got = _INT_PARAMS.get(id(route))
    if got is None:
        path, query = [], []
        for dep in _walk(route.dependant):
            path += [f.alias for f in dep.path_params if _is_int(f.field_info.annotation)]
            query += [f.alias for f in dep.query_params if _is_int(f.field_info.annotation)]
        got = _INT_PARAMS[id(route)] = (path, query)
    return got


def _out_of_range(raw: str) -> bool:
    v = raw.strip()
    digits = v[1:] if v[:1] in "+-" else v
    if not digits.isdigit() or not digits.isascii():
        return False  # not an integer at all: FastAPI's own validation says so
    return not INT64_MIN <= int(v) <= INT64_MAX


def int64_params(request: Request) -> None:
    """App-wide dependency: an ``int`` path/query parameter outside int64 is a 400 naming it."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    path, query = _int_params(route)
    for name, value in [(n, request.path_params.get(n)) for n in path] + \
            [(n, v) for n in query for v in request.query_params.getlist(n)]:
        if isinstance(value, str) and _out_of_range(value):
            raise InvalidRequest(f"invalid value for '{name}': {value[:40]} is out of range; integers must lie "
                                 f"between {INT64_MIN} and {INT64_MAX}", param=name)


def _needs_auth(route: Any) -> bool:
    from zhinao.gateway.deps import get_principal

    return any(d.call is get_principal for d in _walk(route.dependant))


def error_statuses(route: Any) -> set[int]:
    """The error codes ``route`` can answer, from its shape (see the module docstring)."""
    deps = list(_walk(route.dependant))
    has_params = any(d.path_params or d.query_params or d.body_params for d in deps)
    has_body = any(d.body_params for d in deps)
    methods = route.methods or set()
    out: set[int] = set()
    if _needs_auth(route):
        out |= {401, 403}
    if has_params or has_body:
        out |= {400, 404}
    if has_body:
        out.add(413)
    if methods & {"POST", "PUT", "PATCH"}:
        out |= {400, 409}
    if any(route.path.endswith(g) or route.path.startswith(g) for g in _GENERATES):
        out |= {429, 503, 504}
    out |= _SPECIAL.get(route.path, set())
    return out


#: routes whose errors do not follow from their shape
_SPECIAL: dict[str, set[int]] = {
    "/api/auth/login": {401, 429},  # wrong credentials; sign-in back-off
    "/metrics": {401, 403},  # ZHINAO_METRICS_TOKEN or loopback
    "/readyz": {503},  # not ready
}


def declare_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` list each route's error codes with the error body model."""
    from zhinao.gateway.errors import declare_error_responses

    table = {}
    for route in iter_api_routes(app):
        if route.include_in_schema:
            for m in route.methods or ():
                table[(m, route.path_format)] = error_statuses(route)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _media_types(_int_ranges(declare_error_responses(build(), table)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _int_ranges(schema: dict[str, Any]) -> dict[str, Any]:
    """Show the int64 range :func:`int64_params` enforces on every integer path/query parameter."""
    for item in schema.get("paths", {}).values():
        for op in item.values():
            for p in op.get("parameters", []) if isinstance(op, dict) else []:
                if p.get("in") not in ("path", "query"):
                    continue
                sch = p.get("schema", {})
                for s in [sch, *sch.get("anyOf", [])]:
                    if s.get("type") == "integer":
                        if "maximum" not in s and "exclusiveMaximum" not in s:
                            s["maximum"] = INT64_MAX
                        if "minimum" not in s and "exclusiveMinimum" not in s:
                            s["minimum"] = INT64_MIN
    return schema


#: what the routes that do not answer JSON answer (FastAPI declares application/json for every
#: route unless the route says otherwise). A route may declare its own with ``responses=``;
#: this table keeps the schema true for the ones that stream or send files today.
MEDIA_TYPES: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/metrics"): ("text/plain",),
    ("GET", "/api/audit/export"): ("application/x-ndjson",),
    ("GET", "/api/analytics/workspaces/{ws}/datasets/{name}/csv"): ("text/csv",),
    ("GET", "/api/analytics/runs/{run_id}/charts/{name}.png"): ("image/png",),
    ("GET", "/api/analytics/runs/{run_id}/model"): ("application/octet-stream",),
    ("POST", "/v1/chat/completions"): ("application/json", "text/event-stream"),
    ("POST", "/v1/completions"): ("application/json", "text/event-stream"),
    ("POST", "/api/kb/{collection}/chat"): ("application/json", "text/event-stream"),
    ("POST", "/api/conversations/{conv_id}/messages"): ("text/event-stream",),
    ("POST", "/api/agent/ask"): ("application/json", "text/event-stream"),
}
_READYZ = {"type": "object", "properties": {"status": {"type": "string"},
                                            "problems": {"type": "array", "items": {"type": "string"}}}}


def _media_types(schema: dict[str, Any]) -> dict[str, Any]:
    paths = schema.get("paths", {})
    for (method, path), types_ in MEDIA_TYPES.items():
        op = paths.get(path, {}).get(method.lower())
        ok = op and (op["responses"].get("200") or op["responses"].get("201"))
        if ok:
            old = ok.get("content", {}).get("application/json", {"schema": {}})
            ok["content"] = {t: (old if t == "application/json" else {"schema": {}}) for t in types_}
    ready = paths.get("/readyz", {}).get("get")
    if ready:  # the readiness probe names its problems, not an error body
        ready["responses"]["503"] = {"description": "Not ready: the problems say why",
                                     "content": {"application/json": {"schema": _READYZ}}}
    return schema
