"""The FastAPI application: /v1 (OpenAI-compatible), /api (console), /, health and metrics.

``create_app`` only wires routers onto a :class:`Platform`; everything the routes do
lives in services. The core's routers are listed in ``ROUTERS``; each capability names its
own (``Capability.routers``, see :mod:`zhinao.capability`) and they are mounted after the
core's, the same way: the gateway names no capability.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from zhinao import __version__
from zhinao.capability import resolve
from zhinao.gateway.audit import AuditMiddleware
from zhinao.gateway.errors import install_error_handlers
from zhinao.gateway.middleware import RequestContextMiddleware
from zhinao.gateway.observability import Metrics, configure_logging, metrics_allowed
from zhinao.gateway.routes import declare_errors, int64_params
from zhinao.maas.limits import LimitsCollector
from zhinao.platform import Platform

log = logging.getLogger(__name__)

#: routers mounted on the app, core first; each module exports ``router``
ROUTERS = [
    "zhinao.gateway.openai.router",
    "zhinao.gateway.api.auth",
    "zhinao.gateway.api.chat",
    "zhinao.gateway.api.admin",
    "zhinao.gateway.api.models",
    "zhinao.gateway.api.usage",
    "zhinao.gateway.api.jobs",
    "zhinao.gateway.api.audit",
    "zhinao.gateway.api.experiments",
]


def create_app(platform: Platform | None = None, *, warm_default: bool = True) -> FastAPI:
    platform = platform or Platform()
    configure_logging(platform.settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        platform.bootstrap()
        announcement = platform.take_bootstrap_secrets()
        if announcement:
            print(announcement, flush=True)
        platform.resume_jobs()
        warm = None
        if warm_default and platform.settings.default_model in platform.models:
            warm = asyncio.create_task(_warm(platform))
        try:
            yield
        finally:
            if warm is not None:
                warm.cancel()
            await _drain(platform)

    # no /docs or /redoc: Swagger UI loads scripts from a CDN (offline here, and refused by our CSP);
    # the schema is at /openapi.json
    # int64_params: ids and counts above 2**63 are a 400 naming the parameter (they used to reach
    # SQLAlchemy, whose OverflowError was a 500)
    app = FastAPI(title="Zhinao 智脑", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  dependencies=[Depends(int64_params)],
                  description="Enterprise large-model platform: OpenAI-compatible MaaS and the installed capabilities.")
    app.state.platform = platform
    app.state.started_at = time.time()
    app.state.metrics = Metrics(platform.models, platform.generation_metrics)
    app.state.metrics.registry.register(LimitsCollector(platform.limits))  # the limiter's own gauges
    install_error_handlers(app)
    app.add_middleware(AuditMiddleware, platform=platform)  # inside the request-id middleware: sees the id
    app.add_middleware(RequestContextMiddleware, max_body_bytes=platform.settings.max_body_bytes,
                       max_upload_bytes=platform.settings.max_upload_bytes,
                       metrics_getter=lambda: app.state.metrics)
    for name in ROUTERS:
        app.include_router(importlib.import_module(name).router)
    for cap in platform.capabilities.values():
        for target in cap.routers:
            app.include_router(resolve(target))

    @app.get("/healthz", tags=["ops"])
    async def healthz():
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["ops"])
    async def readyz():
        problems = []
        try:
            await asyncio.to_thread(_ping_db, platform)
        except Exception as e:
            problems.append(f"database: {e}")
        default = platform.settings.default_model
        if default in platform.models:
            served = platform.models.resolve(default)
            if not served.started or not await served.health():
                problems.append(f"default model {default!r} is not ready" + (f": {served.error}" if served.error else ""))
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return {"status": "ready"}

    @app.get("/metrics", tags=["ops"])
    async def metrics(request: Request):
        """Prometheus metrics: with ``ZHINAO_METRICS_TOKEN`` as a bearer token, or from loopback when unset."""
        metrics_allowed(platform.settings.metrics_token, request.headers.get("authorization"),
                        request.client.host if request.client else None)
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    try:
        from zhinao.console.router import mount as mount_console
    except ImportError:
        mount_console = None
    if mount_console is not None:
        mount_console(app)
    declare_errors(app)  # after every router: each operation lists the error codes it really returns
    return app


async def _drain(platform: Platform) -> None:
    """Stop within ``ZHINAO_SHUTDOWN_GRACE_S``: ask running jobs to stop, wait for them that long,
    then close the rest. A job still running past the deadline is left to the process exit (it
    stays ``running`` in the store and resumes at the next start: handlers are idempotent)."""
    grace = platform.settings.shutdown_grace_s
    if not await asyncio.to_thread(platform.jobs.shutdown, grace):
        log.warning("jobs still running after the %.0f s shutdown grace (ZHINAO_SHUTDOWN_GRACE_S); "
                    "exiting without them, they resume at the next start", grace)
    await platform.aclose(jobs_grace_s=0)


def _ping_db(platform: Platform) -> None:
    with platform.db.engine.connect() as c:
        c.execute(text("SELECT 1"))


async def _warm(platform: Platform) -> None:
    """Start the default model's engine in the background so the first request is fast."""
    try:
        await platform.models.resolve(platform.settings.default_model).ensure_started()
    except Exception as e:
        log.error("default model failed to start: %s", e)
