"""/api/models: declare, remove and test served models; /api/status: live queue and health."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from zhinao.gateway.deps import OperatorDep, PlatformDep, PrincipalDep
from zhinao.runtime.base import GenerationParams
from zhinao.runtime.registry import ModelSpec, backend_names, chat_backend

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


def _is_test_model(spec: ModelSpec) -> bool:
    """A backend that only exists for tests and demos says so (``test_model`` class flag, echo)."""
    try:
        return bool(getattr(chat_backend(spec.backend), "test_model", False))
    except Exception:  # an unknown backend is listed with its error status, not hidden
        return False


def _default_name(platform, specs: list[ModelSpec]) -> str | None:
    """The model a new chat starts on: the configured default (``ZHINAO_DEFAULT_MODEL``) when it
    is served and granted, else the first installed pack in the catalogue's order (best first),
    else any real model. (A test model is the default only when configured so, as in tests.)"""
    if platform.models.default in platform.models:
        configured = platform.models.canonical(platform.models.default)
        if any(s.name == configured for s in specs):
            return configured
    names = [s.name for s in specs if not _is_test_model(s)]
    from zhinao.runtime.packs import PACKS

    for pack in PACKS:
        if pack in names:
            return pack
    return names[0] if names else None


@router.get("/models")
async def list_models(principal: PrincipalDep, platform: PlatformDep):
    """The models this caller's tenant is granted (the operator sees every model and its engine).

    Each entry says ``default`` (the one a new chat starts on) and ``test_model`` (echo: a
    deterministic test backend, which the console offers to operators only).
    """
    status = {s["name"]: s for s in await platform.models.status()}
    out = []
    granted = [spec for spec in platform.models.specs() if principal.may_use(spec.name)]
    default = _default_name(platform, granted)
    for spec in granted:
        d = spec.to_dict()
        st = status.get(spec.name)
        if not principal.is_operator:  # where the weights or the remote server live is the operator's business
            d = {k: v for k, v in d.items() if k not in ("path", "base_url", "options", "remote_name", "threads")}
            st = st and {k: v for k, v in st.items() if k != "queued_by_tenant"}
        out.append({**d, "status": st, "default": spec.name == default, "test_model": _is_test_model(spec)})
    return out


@router.get("/models/backends")
def list_backends(principal: PrincipalDep):
    return backend_names()


@router.post("/models", status_code=201)
def add_model(body: ModelBody, principal: OperatorDep, platform: PlatformDep):
    """Operator only. The path must be a GGUF inside the model folders, options are tuning knobs
    only (never a binary or arguments) and a base_url must pass the egress policy."""
    spec = ModelSpec(**body.model_dump(), source="db")
    return platform.add_model(spec, from_request=True).to_dict()


@router.delete("/models/{name}")
async def remove_model(name: str, principal: OperatorDep, platform: PlatformDep):
    spec = await platform.remove_model(name)
    return {"ok": True, "name": spec.name}


@router.post("/models/{name}/test")
async def test_model(name: str, principal: OperatorDep, platform: PlatformDep):
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
    """Live figures. The operator sees every tenant's queues and jobs; everyone else sees the
    models granted to their tenant, with only their own tenant's queue and jobs."""
    models = await platform.models.status()
    if principal.is_operator:
        running = sum(1 for j in platform.jobs.list(limit=200) if j["status"] == "running")
    else:
        running = sum(1 for j in platform.jobs.list(tenant_id=principal.tenant_id, limit=200)
                      if j["status"] == "running")
        models = [{"name": m["name"], "backend": m["backend"], "started": m["started"], "healthy": m["healthy"],
                   "slots": m["slots"], "busy": m["busy"],
                   "queued": m["queued_by_tenant"].get(principal.tenant, 0)}
                  for m in models if principal.may_use(m["name"])]
    return {"uptime_s": round(time.time() - request.app.state.started_at, 1), "models": models,
            "jobs_running": running}
