"""The model manager: which models are served, their replicas and schedulers.

Specs come from the models TOML file, the database and the built-ins; instances are
created lazily and started on first use (or eagerly for the default model), so a
declared-but-unused 1.5B model costs nothing. Each model gets one
:class:`FairScheduler` whose capacity is slots × replicas; a lease picks the least
loaded replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from zhinao.errors import Conflict, EngineUnavailable, InvalidRequest, ModelNotFound
from zhinao.runtime.base import ChatModel
from zhinao.runtime.registry import ModelSpec, chat_backend
from zhinao.runtime.scheduler import FairScheduler

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    spec: ModelSpec
    scheduler: FairScheduler
    replicas: list[ChatModel] = field(default_factory=list)
    inflight: list[int] = field(default_factory=list)
    started: bool = False
    error: str | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def slots_per_replica(self) -> int:
        return self.replicas[0].slots if self.replicas else (self.spec.slots or 1)

    async def ensure_started(self) -> None:
        if self.started:
            return
        async with self._lock:
            if self.started:
                return
            try:
                for r in self.replicas:
                    await r.start()
            except Exception as e:
                self.error = f"{type(e).__name__}: {e}"
                log.exception("model %s failed to start", self.spec.name)
                raise EngineUnavailable(f"model {self.spec.name!r} could not start: {e}") from e
            self.started, self.error = True, None

    @contextlib.asynccontextmanager
    async def lease(self, tenant: str = "") -> AsyncIterator[ChatModel]:
        """Wait for a slot (fair across tenants), then yield the least-loaded replica."""
        await self.ensure_started()
        async with self.scheduler.slot(tenant):
            i = min(range(len(self.replicas)), key=self.inflight.__getitem__)
            self.inflight[i] += 1
            try:
                yield self.replicas[i]
            finally:
                self.inflight[i] -= 1

    async def health(self) -> bool:
        if not self.started:
            return False
        results = await asyncio.gather(*(r.health() for r in self.replicas), return_exceptions=True)
        return any(x is True for x in results)

    async def close(self) -> None:
        for r in self.replicas:
            with contextlib.suppress(Exception):
                await r.close()
        self.started = False


class ModelManager:
    """Owns every served model. One per process (held by :class:`zhinao.platform.Platform`)."""

    def __init__(self, specs: Iterable[ModelSpec] = (), *, default: str = "", threads: int = 1,
                 slots: int = 8, context_window: int = 4096, max_queue: int = 64,
                 queue_timeout_s: float = 120.0):
        self.default = default
        self._defaults = {"threads": threads, "slots": slots, "context_window": context_window}
        self._max_queue, self._queue_timeout_s = max_queue, queue_timeout_s
        self._models: dict[str, ServedModel] = {}
        self._aliases: dict[str, str] = {}
        for s in specs:
            self.register(s, replace=True)

    # -- declaration ---------------------------------------------------------------------
    def _build(self, spec: ModelSpec) -> ServedModel:
        cls = chat_backend(spec.backend)
        kwargs = spec.constructor_kwargs()
        for k, v in self._defaults.items():
            kwargs.setdefault(k, v)
        if spec.backend in ("llamacpp", "echo") and spec.slots is None:
            kwargs["slots"] = 1
        try:
            replicas = [cls(**kwargs) for _ in range(max(1, spec.replicas))]
        except TypeError as e:
            raise InvalidRequest(f"model {spec.name!r}: bad options for backend {spec.backend!r}: {e}") from e
        for r in replicas:
            r.name = spec.name
        capacity = sum(max(1, r.slots) for r in replicas)
        sched = FairScheduler(capacity, max_queue=self._max_queue, queue_timeout_s=self._queue_timeout_s)
        return ServedModel(spec, sched, replicas, [0] * len(replicas))

    def register(self, spec: ModelSpec, *, replace: bool = False) -> ServedModel:
        if not spec.name or spec.name.strip() != spec.name:
            raise InvalidRequest("model name must be a non-empty identifier")
        if spec.name in self._models and not replace:
            raise Conflict(f"model {spec.name!r} already exists")
        for a in spec.aliases:
            owner = self._aliases.get(a)
            if owner and owner != spec.name:
                raise Conflict(f"alias {a!r} already points to model {owner!r}")
        served = self._build(spec)
        old = self._models.get(spec.name)
        if old is not None:
            for a in old.spec.aliases:
                self._aliases.pop(a, None)
            if old.started and _loop_running():
                asyncio.get_running_loop().create_task(old.close())  # drain the replaced engine
        self._models[spec.name] = served
        for a in spec.aliases:
            self._aliases[a] = spec.name
        return served

    async def remove(self, name: str) -> ModelSpec:
        served = self.resolve(name)
        await served.close()
        del self._models[served.spec.name]
        for a in served.spec.aliases:
            self._aliases.pop(a, None)
        return served.spec

    # -- lookup --------------------------------------------------------------------------
    def canonical(self, name: str | None) -> str:
        if not name or name == "default":
            name = self.default
        name = self._aliases.get(name, name)
        if name not in self._models:
            known = ", ".join(sorted(self._models)) or "none"
            hint = ""
            from zhinao.runtime.packs import PACKS  # a pack not installed in this home: say how to add it

            pack = next((p for p in PACKS.values() if name == p.name or name in p.aliases), None)
            if pack is not None:
                hint = f" It is a model pack: install it with `zhinao models install {pack.name}`."
            raise ModelNotFound(f"The model {name!r} does not exist. Available models: {known}.{hint}", param="model")
        return name

    def resolve(self, name: str | None) -> ServedModel:
        return self._models[self.canonical(name)]

    def names(self) -> list[str]:
        return sorted(self._models)

    def specs(self) -> list[ModelSpec]:
        return [m.spec for m in self._models.values()]

    def __contains__(self, name: str) -> bool:
        try:
            self.canonical(name)
            return True
        except ModelNotFound:
            return False

    async def get(self, name: str | None = None) -> ChatModel:
        """A started replica, for services that call a model outside the gateway's scheduler."""
        served = self.resolve(name)
        await served.ensure_started()
        return served.replicas[0]

    async def status(self) -> list[dict]:
        out = []
        for name, m in sorted(self._models.items()):
            st = m.scheduler.stats()
            out.append({"name": name, "backend": m.spec.backend, "started": m.started,
                        "healthy": await m.health() if m.started else False, "error": m.error,
                        "slots": st.capacity, "busy": st.busy, "queued": st.queued,
                        "queued_by_tenant": st.queued_by_tenant, "rejected": st.rejected})
        return out

    async def close(self) -> None:
        await asyncio.gather(*(m.close() for m in self._models.values()), return_exceptions=True)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
