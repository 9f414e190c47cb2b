"""One generation through the platform: authorise, admit, run, meter, record.

Every model call goes through :class:`GenerationService`: the OpenAI-compatible API, the
console, and the capabilities through their :class:`zhinao.maas.client.LLMClient` (the
knowledge base's answers and query condensation, later the agent, apps and evaluation).
So model scope, tenant grants, limits, the fair scheduler slot, the generation timeout,
usage (named by endpoint or capability) and the RLHF turn log are enforced in one place.
Knows no HTTP. Errors before the first token (unknown or forbidden model, limits, context
overflow) raise; the caller decides how to show them.

Composite models: a name with a registered prefix (``kb:<collection>`` on /v1 and in the
console) is served by a capability's stream (``routes``), not by an engine. The key must
be allowed that name (``kb:<collection>`` or ``kb:*``); the model calls the capability makes
inside are metered on their own (each one reserves, takes a slot and writes its usage row),
so the composite generation itself reserves nothing and writes no usage row, only the turn.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from zhinao.errors import EngineUnavailable, GenerationTimeout, PermissionDenied, ZhinaoError
from zhinao.maas.experiments import ExperimentService
from zhinao.maas.limits import Reservation
from zhinao.maas.tenancy import Principal
from zhinao.maas.usage import UsageEvent
from zhinao.runtime.base import ChatDelta, GenerationParams, Message, Usage
from zhinao.runtime.echo import count_tokens

if TYPE_CHECKING:
    from zhinao.platform import Platform

log = logging.getLogger(__name__)
KB_PREFIX = "kb:"
KB_ANY = "kb:*"
KB_ENDPOINT = "kb.chat"  #: usage rows of knowledge-base answers name the capability
#: a composite model's stream: (principal, requested name, messages, params, extra) -> deltas
Route = Callable[[Principal, str, list[Message], GenerationParams, dict[str, Any]], AsyncIterator[ChatDelta]]


@dataclass
class Generation:
    """An async iterator of deltas; after it finishes, the summary fields are filled in."""

    model: str  #: the name the client asked for (``kb:<collection>`` on /v1)
    _it: AsyncIterator[ChatDelta] | None = None
    #: the chat model that really runs (usage, metrics, the turn): an A/B experiment's candidate may
    #: answer for ``model``; the conversation keeps asking for ``model``, so a rollback takes effect
    engine_model: str = ""
    #: knowledge answers on /v1: citations go to ``extra`` and a source list ends the text
    sources_in_text: bool = False
    turn_id: int | None = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    content: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  #: e.g. citations from the knowledge base

    def __aiter__(self) -> AsyncIterator[ChatDelta]:
        assert self._it is not None
        return self._it

    async def first(self) -> ChatDelta | None:
        """Run until the first delta (so errors surface before an HTTP 200 is sent)."""
        try:
            return await self._it.__anext__()
        except StopAsyncIteration:
            return None


def estimate_tokens(prompt: str | Sequence[Message]) -> int:
    """Rough prompt size (words + CJK characters + per-message overhead) for cancelled requests."""
    if isinstance(prompt, str):
        return count_tokens(prompt)
    return sum(count_tokens(str(m.get("content") or "")) + 3 for m in prompt)


class GenerationService:
    """Built from the parts it uses; ``GenerationService(platform)`` takes them from a Platform."""

    def __init__(self, platform: "Platform | None" = None, *, models: Any = None, limits: Any = None,
                 usage: Any = None, conversations: Any = None, settings: Any = None, metrics: Any = None,
                 routes: dict[str, Route] | None = None, experiments: Any = None):
        p = platform
        self.models = models if models is not None else p.models
        self.limits = limits if limits is not None else p.limits
        self.usage = usage if usage is not None else p.usage
        self.conversations = conversations if conversations is not None else p.conversations
        self.settings = settings if settings is not None else p.settings
        self._platform = p
        #: generation metrics (maas.metrics.GenerationMetrics) — the platform's, exposed by the gateway
        self.metrics = metrics if metrics is not None else getattr(p, "generation_metrics", None)
        self._routes = routes
        #: A/B experiments (maas.experiments): a share of a tenant's base-model traffic goes to a candidate
        self.experiments = experiments if experiments is not None else (
            ExperimentService(p.db, self.models) if p is not None else None)

    @property
    def routes(self) -> dict[str, Route]:
        if self._routes is None:
            self._routes = platform_routes(self._platform) if self._platform is not None else {}
        return self._routes

    def route(self, model: str | None) -> tuple[str, Route] | None:
        for prefix, fn in self.routes.items():
            if model and model.startswith(prefix):
                return prefix, fn
        return None

    def check(self, principal: Principal, model: str | None) -> str:
        """The canonical name of the model ``model`` resolves to, if this principal may use it (else raises).

        Charges nothing: a capability calls it before its own work (retrieval), so a forbidden
        model is refused before anything is done or sent.
        """
        served = self.models.resolve(model)
        principal.check_model(served.spec.name, tuple(served.spec.aliases) + ((model,) if model else ()))
        return served.spec.name

    def start(self, principal: Principal, model: str | None, messages: Sequence[Message],
              params: GenerationParams, *, endpoint: str = "chat", prompt: str | None = None,
              conversation_id: int | None = None, parent_turn_id: int | None = None,
              record_turn: bool = True) -> Generation:
        """Validate now (raises on unknown/forbidden model or exhausted limits); generate on iteration."""
        routed = self.route(model)
        if routed is not None:
            return self._start_composite(principal, model or "", routed, messages, params, conversation_id,
                                         parent_turn_id, record_turn)
        served = self.models.resolve(model)
        principal.check_model(served.spec.name, tuple(served.spec.aliases) + ((model,) if model else ()))
        asked, served = served.spec.name, self._experiment_arm(served, principal, conversation_id)
        reservation = self._reserve(principal, served, messages, prompt, params)
        if reservation.max_tokens is not None and (params.max_tokens is None
                                                   or params.max_tokens > reservation.max_tokens):
            params = replace(params, max_tokens=reservation.max_tokens)
        gen = Generation(model=asked, engine_model=served.spec.name)  # differ on an experiment's candidate arm
        try:
            self._turn_up_front(gen, principal, messages, params, conversation_id, parent_turn_id, record_turn)
        except BaseException:
            reservation.release()
            raise
        gen._it = self._run(gen, served, principal, list(messages), params, endpoint, prompt, conversation_id,
                            parent_turn_id, record_turn, reservation, None)
        return gen

    def _experiment_arm(self, served, principal: Principal, conversation_id: int | None):
        """The model that serves this request: the candidate when it falls in a running experiment's share.

        The principal was checked on the model it asked for; the candidate is the tenant admin's
        choice (granted to the tenant when the experiment started). A failed lookup never fails
        the request: the base model serves.
        """
        if self.experiments is None:
            return served
        try:
            cand = self.experiments.arm(principal.tenant_id, served.spec.name, conversation_id=conversation_id,
                                        user_id=principal.user_id, key_id=principal.key_id)
            return self.models.resolve(cand) if cand else served
        except Exception:
            log.exception("experiment lookup failed; the requested model serves")
            return served

    def _start_composite(self, principal: Principal, model: str, routed: tuple[str, Route],
                         messages: Sequence[Message], params: GenerationParams, conversation_id: int | None,
                         parent_turn_id: int | None, record_turn: bool) -> Generation:
        prefix, fn = routed
        if principal.models is not None and model not in principal.models and prefix + "*" not in principal.models:
            raise PermissionDenied(f"this API key may not use model {model!r}; allowed: "
                                   f"{', '.join(principal.models)} (add {model!r} or {prefix + '*'!r} to its models)",
                                   code="model_not_allowed")
        gen = Generation(model=model, sources_in_text=True)
        self._turn_up_front(gen, principal, messages, params, conversation_id, parent_turn_id, record_turn)
        stream = fn(principal, model, list(messages), params, gen.extra)
        gen._it = self._run(gen, None, principal, list(messages), params, "", None, conversation_id,
                            parent_turn_id, record_turn, None, stream)
        return gen

    def _turn_up_front(self, gen: Generation, principal: Principal, messages: Sequence[Message],
                       params: GenerationParams, conversation_id: int | None, parent_turn_id: int | None,
                       record_turn: bool) -> None:
        if record_turn and conversation_id is not None:  # console: the UI needs the turn id up front
            gen.turn_id = self.conversations.record_turn(
                tenant_id=principal.tenant_id, user_id=principal.user_id, key_id=principal.key_id,
                model=gen.engine_model or gen.model, messages=list(messages), params=params.as_dict(), response="",
                tool_calls=None, finish_reason=None, prompt_tokens=0, completion_tokens=0, latency_ms=0.0,
                conversation_id=conversation_id, parent_turn_id=parent_turn_id)

    def _reserve(self, principal: Principal, served, messages: Sequence[Message], prompt: str | None,
                 params: GenerationParams) -> Reservation:
        """Hold the prompt and the reply budget (a capability's prompt already holds its passages)."""
        est = estimate_tokens(prompt if prompt is not None else messages)
        window = getattr(served.replicas[0], "context_window", 0) if served.replicas else 0
        window = window or served.spec.context_window or 4096
        return self.limits.reserve(principal, prompt_tokens=est, max_tokens=params.max_tokens,
                                     default_budget=max(1, window - est))

    async def _engine_stream(self, gen: Generation, served, principal: Principal, messages: list[Message],
                             params: GenerationParams, prompt: str | None,
                             composite: AsyncIterator[ChatDelta] | None) -> AsyncIterator[ChatDelta]:
        if composite is not None:  # a capability's stream; its own model calls are metered inside
            async with contextlib.aclosing(composite) as it:
                async for d in it:
                    yield d
            return
        async with served.lease(principal.tenant) as engine:
            if prompt is not None:
                stream = engine.stream_text(prompt, params)
            else:
                stream = engine.stream(messages, params)
            deadline = time.monotonic() + self.settings.generation_timeout_s
            async with contextlib.aclosing(stream) as it:
                while True:
                    remaining = deadline - time.monotonic()
                    try:
                        d = await asyncio.wait_for(it.__anext__(), max(remaining, 0.001))
                    except StopAsyncIteration:
                        break
                    except asyncio.TimeoutError:
                        raise GenerationTimeout(
                            f"the model {gen.model!r} did not finish within "
                            f"{self.settings.generation_timeout_s:.0f}s; ask for fewer tokens") from None
                    yield d

    async def _run(self, gen: Generation, served, principal: Principal, messages: list[Message],
                   params: GenerationParams, endpoint: str, prompt: str | None, conversation_id: int | None,
                   parent_turn_id: int | None, record_turn: bool, reservation: Reservation | None,
                   composite: AsyncIterator[ChatDelta] | None) -> AsyncIterator[ChatDelta]:
        t0 = time.perf_counter()
        parts: list[str] = []
        calls: list[dict[str, Any]] = []
        status, outcome = 200, "ok"
        try:
            async with contextlib.aclosing(self._engine_stream(gen, served, principal, messages, params,
                                                               prompt, composite)) as it:
                async for d in it:
                    if gen.ttft_ms is None and (d.content or d.tool_calls):
                        gen.ttft_ms = (time.perf_counter() - t0) * 1000
                    if d.content:
                        parts.append(d.content)
                    if d.tool_calls:
                        calls.extend(d.tool_calls)
                    if d.finish_reason:
                        gen.finish_reason = d.finish_reason
                    if d.usage:
                        gen.usage = d.usage
                    yield d
        except ZhinaoError as e:
            status, outcome = e.status, "error"
            raise
        except (GeneratorExit, asyncio.CancelledError):  # the client went away: the engine was closed
            status, outcome = 499, "cancelled"
            raise
        except Exception as e:  # the engine failed: the gateway stays up, the client gets a 503
            status, outcome = 503, "engine_error"
            log.exception("generation failed on %s", gen.model)
            raise EngineUnavailable(f"the model {gen.model!r} failed while generating: {e}") from e
        finally:
            gen.latency_ms = (time.perf_counter() - t0) * 1000
            gen.content, gen.tool_calls = "".join(parts), calls or None
            if gen.usage.completion_tokens == 0 and parts:
                gen.usage.completion_tokens = len(parts)  # engines stream about one token per delta
            if gen.usage.prompt_tokens == 0 and status == 499:
                # stopped before the engine reported usage: bill an estimate, never zero
                gen.usage.prompt_tokens = estimate_tokens(prompt if prompt is not None else messages)
            self._finish(gen, principal, messages, params, endpoint, prompt, status, outcome,
                         conversation_id, parent_turn_id, record_turn, reservation)

    def _finish(self, gen: Generation, principal: Principal, messages: list[Message], params: GenerationParams,
                endpoint: str, prompt: str | None, status: int, outcome: str, conversation_id: int | None,
                parent_turn_id: int | None, record_turn: bool, reservation: Reservation | None) -> None:
        """Settle the reservation, write usage and the turn, update metrics. Never raises.

        A composite generation (``reservation`` None) writes the turn only: its model calls
        wrote their own usage rows and metrics.
        """
        u = gen.usage
        metered = reservation is not None
        try:
            if reservation is not None:
                reservation.settle(u.total_tokens)
        except Exception:
            log.exception("could not settle the token reservation for %s", gen.model)
        try:
            if metered:
                self.usage.record(UsageEvent(principal.tenant_id, principal.key_id, principal.user_id,
                                             gen.engine_model, endpoint, u.prompt_tokens, u.completion_tokens,
                                             gen.latency_ms, gen.ttft_ms, status))
            finish = gen.finish_reason or ("cancelled" if status == 499 else "error" if status != 200 else None)
            if gen.turn_id is not None:
                self.conversations.finish_turn(gen.turn_id, response=gen.content, tool_calls=gen.tool_calls,
                                                 finish_reason=finish, prompt_tokens=u.prompt_tokens,
                                                 completion_tokens=u.completion_tokens, latency_ms=gen.latency_ms)
            elif record_turn and status in (200, 499):
                snapshot = messages if prompt is None else [{"role": "user", "content": prompt}]
                gen.turn_id = self.conversations.record_turn(
                    tenant_id=principal.tenant_id, user_id=principal.user_id, key_id=principal.key_id,
                    model=gen.engine_model or gen.model, messages=snapshot, params=params.as_dict(),
                    response=gen.content, tool_calls=gen.tool_calls, finish_reason=finish,
                    prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, latency_ms=gen.latency_ms,
                    conversation_id=conversation_id, parent_turn_id=parent_turn_id)
        except Exception:
            log.exception("could not record usage for %s", gen.model)
        m = self.metrics
        if m is not None and metered:  # labelled by the engine model: registered names only, never client text
            label = gen.engine_model or gen.model
            m.generations.labels(label, outcome).inc()
            m.tokens.labels(label, "prompt").inc(u.prompt_tokens)
            m.tokens.labels(label, "completion").inc(u.completion_tokens)
            if gen.ttft_ms is not None:
                m.ttft.labels(label).observe(gen.ttft_ms / 1000)
                decode_s = (gen.latency_ms - gen.ttft_ms) / 1000
                if u.completion_tokens > 1 and decode_s > 0:
                    m.tps.labels(label).observe((u.completion_tokens - 1) / decode_s)


def platform_routes(platform: Any) -> dict[str, Route]:
    """The composite models a Platform serves (its capabilities' ``model_routes``).

    Looked up lazily (a capability's service is built on first use); the inner model calls
    go through that service's own :class:`~zhinao.maas.client.LLMClient`.
    """
    declared = getattr(platform, "model_routes", None)
    routes = dict(declared()) if callable(declared) else {}
    if KB_PREFIX not in routes and "knowledge" in (getattr(platform, "capabilities", None) or {"knowledge": 1}):
        def kb(principal: Principal, model: str, messages: list[Message], params: GenerationParams,
               extra: dict[str, Any]) -> AsyncIterator[ChatDelta]:
            return platform.knowledge.model_route(principal, model, messages, params, extra)

        routes[KB_PREFIX] = kb
    return routes
