"""Errors every layer may raise; the web layer maps them to HTTP (services know no HTTP).

Each error carries the HTTP status it deserves, an OpenAI-style ``type``/``code`` and a
message that tells the client what to fix.
"""

from __future__ import annotations


class ZhinaoError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.param = param
        self.headers = headers or {}


class InvalidRequest(ZhinaoError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class ContextOverflow(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationError(ZhinaoError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class PermissionDenied(ZhinaoError):
    status, type, code = 403, "permission_error", "permission_denied"


class NotFound(ZhinaoError):
    status, type, code = 404, "invalid_request_error", "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(ZhinaoError):
    status, type, code = 409, "invalid_request_error", "conflict"


class PayloadTooLarge(ZhinaoError):
    status, type, code = 413, "invalid_request_error", "payload_too_large"


class RateLimited(ZhinaoError):
    """429. ``retry_after`` seconds go into the Retry-After header."""

    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float = 1.0, code: str | None = None):
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, int(retry_after + 0.999)))})
        self.retry_after = retry_after


class QuotaExceeded(RateLimited):
    code = "insufficient_quota"


class EngineUnavailable(ZhinaoError):
    status, type, code = 503, "server_error", "engine_unavailable"


class GenerationTimeout(ZhinaoError):
    """The engine did not finish within ``ZHINAO_GENERATION_TIMEOUT_S``."""

    status, type, code = 504, "server_error", "generation_timeout"
