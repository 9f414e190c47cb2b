"""Map every error to OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``.

Client mistakes become 4xx with a message saying what to fix; anything unexpected is a
500 that names the request id (for the logs) and leaks no internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from zhinao.errors import ZhinaoError
from zhinao.gateway.observability import request_id_var

log = logging.getLogger(__name__)


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


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
        _count(request, exc.status, exc.code)
        return JSONResponse(error_body(exc.message, exc.type, exc.code, exc.param), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        msg, param = _validation_message(exc)
        _count(request, 400, "invalid_request")
        return JSONResponse(error_body(msg, "invalid_request_error", "invalid_request", param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code)
        _count(request, exc.status_code, code)
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error", code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        _count(request, 500, "internal_error")
        return JSONResponse(error_body(f"internal error (request id {request_id_var.get()}); the operators "
                                       "have the details in the logs", "server_error", "internal_error"),
                            status_code=500)


def _count(request: Request, status: int, code: str | None) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(str(status), code or "").inc()
