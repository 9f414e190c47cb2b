"""The FastAPI application: /v1 (OpenAI-compatible), /api (console), /, health and metrics.

``create_app`` only wires routers onto a :class:`Platform`; everything the routes do
lives in services. Capability routers (knowledge, analytics, later the agent) are
listed in ``ROUTERS`` and mounted the same way as the core ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from zhinao import __version__
from zhinao.gateway.errors import install_error_handlers
from zhinao.gateway.middleware import RequestContextMiddleware
from zhinao.gateway.observability import Metrics, configure_logging
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
    "zhinao.gateway.api.kb",
    "zhinao.gateway.api.analytics",
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
            await platform.aclose()

    app = FastAPI(title="Zhinao 智脑", version=__version__, lifespan=lifespan,
                  description="Enterprise large-model platform: OpenAI-compatible MaaS, knowledge, analytics.")
    app.state.platform = platform
    app.state.started_at = time.time()
    app.state.metrics = platform.metrics = Metrics(platform.models)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=platform.settings.max_body_bytes,
                       max_upload_bytes=platform.settings.max_upload_bytes,
                       metrics_getter=lambda: app.state.metrics)
    for name in ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # capability not installed in this build
                continue
            raise
        app.include_router(module.router)

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
    async def metrics():
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    try:
        from zhinao.console.router import mount as mount_console
    except ImportError:
        mount_console = None
    if mount_console is not None:
        mount_console(app)
    return app


def _ping_db(platform: Platform) -> None:
    with platform.db.engine.connect() as c:
        c.execute(text("SELECT 1"))


async def _warm(platform: Platform) -> None:
    """Start the default model's engine in the background so the first request is fast."""
    try:
        await platform.models.resolve(platform.settings.default_model).ensure_started()
    except Exception as e:
        log.error("default model failed to start: %s", e)
