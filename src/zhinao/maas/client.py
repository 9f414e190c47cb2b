"""The one model client every capability receives: :class:`LLMClient`, built for a principal.

A capability (the knowledge base today; the agent, the apps and alignment's evaluation
next) never holds an engine. It gets a factory, :class:`LLMClients`, and asks it for a
client on behalf of whoever is calling::

    llm = clients.for_principal(principal, capability="kb.chat")
    llm.check(model)                                   # scope + grant, nothing charged
    gen = llm.start(messages, params, model=model)     # limits reserved, raises 403/429 here
    async for delta in gen: ...                        # fair slot per tenant, timeout, usage, turn

Each call is one :class:`~zhinao.maas.generation.GenerationService` generation, so the key's
model scope, the tenant's grant, rpm/tpm/daily quota (reserved before, settled after), the
scheduler slot, the generation timeout, the usage row (``endpoint`` = the capability or the
call's ``purpose``, e.g. ``kb.condense``) and the RLHF turn are the same as on ``/v1``; a
capability cannot forget one. Embeddings asked for by a principal are metered here too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from zhinao.errors import ModelNotFound, PermissionDenied
from zhinao.maas.generation import Generation, GenerationService
from zhinao.maas.tenancy import Principal
from zhinao.maas.usage import UsageEvent
from zhinao.runtime.base import ChatDelta, Embedder, GenerationParams, Message


class LLMClient:
    """Model calls on behalf of one principal, metered under one capability name."""

    def __init__(self, generation: GenerationService, principal: Principal, capability: str, *,
                 embedder: Callable[[], Embedder] | None = None, embedding_model: str = ""):
        self.generation, self.principal, self.capability = generation, principal, capability
        self._embedder, self._embedding_model = embedder, embedding_model

    def check(self, model: str | None = None) -> str:
        """The canonical model ``model`` (None: the default) names, if this principal may use it."""
        return self.generation.check(self.principal, model)

    def start(self, messages: Sequence[Message], params: GenerationParams, *, model: str | None = None,
              purpose: str | None = None, record_turn: bool = True, conversation_id: int | None = None,
              parent_turn_id: int | None = None) -> Generation:
        """Authorise and reserve now (raises), generate on iteration. ``purpose`` names the usage row."""
        return self.generation.start(self.principal, model, messages, params, endpoint=purpose or self.capability,
                                     record_turn=record_turn, conversation_id=conversation_id,
                                     parent_turn_id=parent_turn_id)

    async def stream(self, messages: Sequence[Message], params: GenerationParams, *, model: str | None = None,
                     purpose: str | None = None, record_turn: bool = True) -> AsyncIterator[ChatDelta]:
        gen = self.start(messages, params, model=model, purpose=purpose, record_turn=record_turn)
        async for d in gen:
            yield d

    async def complete(self, messages: Sequence[Message], params: GenerationParams, *, model: str | None = None,
                       purpose: str | None = None, record_turn: bool = True) -> Generation:
        """Run to the end; the returned generation holds ``content``, ``usage``, ``finish_reason``."""
        gen = self.start(messages, params, model=model, purpose=purpose, record_turn=record_turn)
        async for _ in gen:
            pass
        return gen

    async def embed(self, texts: Sequence[str], *, model: str | None = None,
                    kind: str = "passage") -> tuple[list[list[float]], int]:
        """Embed ``texts`` for this principal: the key's scope, a token reservation, a usage row.

        Returns ``(vectors, tokens)``. ``model`` must name the platform's embedder (its name,
        backend, the configured name or ``default``).
        """
        if self._embedder is None:
            raise ModelNotFound("no embedding model is configured", param="model")
        emb = self._embedder()
        name = model or "default"
        accepted = {emb.name, emb.backend, "default", self._embedding_model}
        if name not in accepted:
            raise ModelNotFound(f"The embedding model {name!r} does not exist. Available: "
                                f"{self._embedding_model or emb.name}.", param="model")
        p = self.principal
        if p.models is not None and name not in p.models and emb.name not in p.models:
            raise PermissionDenied(f"this API key may not use model {name!r}", code="model_not_allowed")
        tokens = sum(emb.count_tokens(t) for t in texts)
        # the size is known up front: hold it (atomically, like a generation) before embedding
        reservation = self.generation.limits.reserve(p, prompt_tokens=tokens, max_tokens=0, default_budget=0)
        t0 = time.perf_counter()
        try:
            vectors = await asyncio.to_thread(emb.embed, list(texts), kind)
        except BaseException:
            reservation.release()
            raise
        latency = (time.perf_counter() - t0) * 1000
        reservation.settle(tokens)
        await asyncio.to_thread(self.generation.usage.record, UsageEvent(
            p.tenant_id, p.key_id, p.user_id, name, self.capability, tokens, 0, latency))
        return vectors, tokens


class LLMClients:
    """The factory the platform owns and hands to capabilities: ``clients(principal, capability)``."""

    def __init__(self, generation: GenerationService, *, embedder: Callable[[], Embedder] | None = None,
                 embedding_model: str = ""):
        self.generation = generation
        self._embedder, self._embedding_model = embedder, embedding_model

    def for_principal(self, principal: Principal, capability: str) -> LLMClient:
        return LLMClient(self.generation, principal, capability, embedder=self._embedder,
                         embedding_model=self._embedding_model)

    __call__ = for_principal


#: what a capability's constructor takes: ``(principal, capability) -> LLMClient``
ClientFactory = Callable[[Any, str], LLMClient]


def clients_for_engine(engine: Any, *, db: Any, settings: Any) -> LLMClients:
    """The same client path over one engine instance a tool or test built (no Platform).

    The engine is served by a real :class:`~zhinao.runtime.manager.ModelManager` (its fair
    scheduler, ``engine.slots`` wide) as its default model; usage and turns go to ``db``;
    limits are counted in memory with no tenant limits (key limits on a principal still apply).
    Benchmarks and the knowledge tests use it, so they exercise what the server runs.
    """
    from zhinao.maas.conversations import ConversationService
    from zhinao.maas.limits import LimitService, MemoryCounters
    from zhinao.maas.usage import UsageService
    from zhinao.runtime.manager import ModelManager
    from zhinao.runtime.registry import ModelSpec

    models = ModelManager(default=engine.name)
    served = models.register(ModelSpec(name=engine.name, backend="echo", slots=max(1, int(engine.slots or 1))))
    served.replicas, served.inflight = [engine], [0]  # serve the caller's own engine instance
    usage = UsageService(db)
    limits = LimitService(MemoryCounters(), usage.used_today, lambda tenant_id: {})
    gen = GenerationService(models=models, limits=limits, usage=usage, conversations=ConversationService(db),
                            settings=settings, routes={})
    return LLMClients(gen)
