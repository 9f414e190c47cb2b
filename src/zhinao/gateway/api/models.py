"""/api/models: declare, remove and test served models; /api/status: live queue and health."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from zhinao.gateway.deps import AdminDep, PlatformDep, PrincipalDep
from zhinao.runtime.base import GenerationParams
from zhinao.runtime.registry import ModelSpec, backend_names

router = APIRouter(prefix="/api", tags=["models"])


class ModelBody(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:\-]+$")
    backend: str
    path: str | None = None
    aliases: list[str] = []
    slots: int | None = Field(None, ge=1, le=256)
    replicas: int = Field(1, ge=1, le=16)
    threads: int | None = Field(None, ge=1, le=256)
    context_window: int | None = Field(None, ge=128)
    base_url: str | None = None
    api_key: str | None = None
    remote_name: str | None = None
    description: str = ""
    options: dict = {}


@router.get("/models")
async def list_models(principal: PrincipalDep, platform: PlatformDep):
    status = {s["name"]: s for s in await platform.models.status()}
    return [{**spec.to_dict(), "status": status.get(spec.name)} for spec in platform.models.specs()]


@router.get("/models/backends")
def list_backends(principal: PrincipalDep):
    return backend_names()


@router.post("/models", status_code=201)
def add_model(body: ModelBody, principal: AdminDep, platform: PlatformDep):
    from zhinao.errors import InvalidRequest

    if body.backend not in backend_names():
        raise InvalidRequest(f"unknown backend {body.backend!r}; available: {', '.join(backend_names())}",
                             param="backend")
    if body.backend in ("llamacpp", "llama-server"):
        import os

        if not body.path or not os.path.isfile(body.path):
            raise InvalidRequest(f"path must be an existing GGUF file for backend {body.backend!r}", param="path")
    if body.backend == "openai" and not body.base_url:
        raise InvalidRequest("base_url is required for backend 'openai'", param="base_url")
    spec = ModelSpec(**body.model_dump(), source="db")
    return platform.add_model(spec).to_dict()


@router.delete("/models/{name}")
async def remove_model(name: str, principal: AdminDep, platform: PlatformDep):
    spec = await platform.remove_model(name)
    return {"ok": True, "name": spec.name}


@router.post("/models/{name}/test")
async def test_model(name: str, principal: AdminDep, platform: PlatformDep):
    from zhinao.maas.generation import GenerationService

    t0 = time.perf_counter()
    try:
        gen = GenerationService(platform).start(principal, name, [{"role": "user", "content": "Say hello. 你好"}],
                                                GenerationParams(temperature=0, max_tokens=16), endpoint="test",
                                                record_turn=False)
        async for _ in gen:
            pass
        return {"ok": True, "reply": gen.content, "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
                "usage": {"prompt_tokens": gen.usage.prompt_tokens, "completion_tokens": gen.usage.completion_tokens}}
    except Exception as e:  # the test reports failure, it does not fail the request
        from zhinao.errors import ModelNotFound

        if isinstance(e, ModelNotFound):
            raise
        return {"ok": False, "reply": "", "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
                "error": getattr(e, "message", str(e))}


@router.get("/status")
async def status(request: Request, principal: PrincipalDep, platform: PlatformDep):
    running = sum(1 for j in platform.jobs.list(limit=200) if j["status"] == "running")
    return {"uptime_s": round(time.time() - request.app.state.started_at, 1),
            "models": await platform.models.status(), "jobs_running": running}
