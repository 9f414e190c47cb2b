"""One generation through the platform: authorise, admit, run, meter, record.

The OpenAI-compatible API, the console and the knowledge-base chat go through
:class:`GenerationService`, so model scope, limits, fairness, usage and the RLHF turn log
are enforced in one place. Knows no HTTP. Errors before the first token (unknown or
forbidden model, limits, context overflow) raise; the caller decides how to show them.

Scope of a key on the knowledge chat: the chat model it really runs must be in the key's
``models`` (an alias counts), and on ``/v1`` the name ``kb:<collection>`` is itself a
model the key must be allowed (``kb:<collection>`` or ``kb:*`` in its list). Tokens are
reserved before generation (:meth:`zhinao.maas.limits.LimitService.reserve`) and settled
with the real count afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from zhinao.errors import EngineUnavailable, GenerationTimeout, PermissionDenied, ZhinaoError
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
#: tokens held for the knowledge chat's system prompt and passage headers, beyond the passages
KB_PROMPT_OVERHEAD = 200


@dataclass
class Generation:
    """An async iterator of deltas; after it finishes, the summary fields are filled in."""

    model: str  #: the name the client asked for (``kb:<collection>`` on /v1)
    _it: AsyncIterator[ChatDelta] | None = None
    engine_model: str = ""  #: the chat model that really runs (usage, metrics)
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
    def __init__(self, platform: "Platform"):
        self.p = platform

    def start(self, principal: Principal, model: str | None, messages: Sequence[Message],
              params: GenerationParams, *, endpoint: str = "chat", prompt: str | None = None,
              conversation_id: int | None = None, parent_turn_id: int | None = None,
              record_turn: bool = True, kb_collection: str | None = None,
              kb_model: str | None = None) -> Generation:
        """Validate now (raises on unknown/forbidden model or exhausted limits); generate on iteration.

        ``model="kb:<c>"`` (the /v1 way) or ``kb_collection`` (the /api/kb way) answers from
        a knowledge collection with ``kb_model`` (default: the default model).
        """
        collection = kb_collection
        if model and model.startswith(KB_PREFIX):
            collection = model[len(KB_PREFIX):]
            if principal.models is not None and model not in principal.models and KB_ANY not in principal.models:
                raise PermissionDenied(f"this API key may not use model {model!r}; allowed: "
                                       f"{', '.join(principal.models)} (add {model!r} or {KB_ANY!r} to its models)",
                                       code="model_not_allowed")
        requested = kb_model if collection is not None else model
        served = self.p.models.resolve(requested)
        principal.check_model(served.spec.name, tuple(served.spec.aliases) + ((requested,) if requested else ()))
        if collection is not None:
            name = model if model and model.startswith(KB_PREFIX) else KB_PREFIX + collection
            endpoint = KB_ENDPOINT
        else:
            name = served.spec.name
        reservation = self._reserve(principal, served, messages, prompt, params, kb=collection is not None)
        if reservation.max_tokens is not None and (params.max_tokens is None
                                                   or params.max_tokens > reservation.max_tokens):
            params = replace(params, max_tokens=reservation.max_tokens)
        gen = Generation(model=name, engine_model=served.spec.name,
                         sources_in_text=bool(model and model.startswith(KB_PREFIX)))
        try:
            if record_turn and conversation_id is not None:  # console: the UI needs the turn id up front
                gen.turn_id = self.p.conversations.record_turn(
                    tenant_id=principal.tenant_id, user_id=principal.user_id, key_id=principal.key_id, model=name,
                    messages=list(messages), params=params.as_dict(), response="", tool_calls=None,
                    finish_reason=None, prompt_tokens=0, completion_tokens=0, latency_ms=0.0,
                    conversation_id=conversation_id, parent_turn_id=parent_turn_id)
        except BaseException:
            reservation.release()
            raise
        gen._it = self._run(gen, None if collection is not None else served, principal, list(messages), params,
                            endpoint, prompt, conversation_id, parent_turn_id, record_turn, reservation, collection)
        return gen

    def _reserve(self, principal: Principal, served, messages: Sequence[Message], prompt: str | None,
                 params: GenerationParams, *, kb: bool) -> Reservation:
        """Hold the prompt (plus, for the knowledge base, room for its passages) and the reply budget."""
        est = estimate_tokens(prompt if prompt is not None else messages)
        if kb:  # the retrieved passages join the prompt: hold room for them, returned if unused
            cfg = self.p.knowledge.config
            est += cfg.top_k * (cfg.chunk_tokens + cfg.chunk_overlap) + KB_PROMPT_OVERHEAD
        window = getattr(served.replicas[0], "context_window", 0) if served.replicas else 0
        window = window or served.spec.context_window or 4096
        return self.p.limits.reserve(principal, prompt_tokens=est, max_tokens=params.max_tokens,
                                     default_budget=max(1, window - est))

    async def _engine_stream(self, gen: Generation, served, principal: Principal, messages: list[Message],
                             params: GenerationParams, prompt: str | None,
                             collection: str | None) -> AsyncIterator[ChatDelta]:
        if collection is not None:  # retrieval + generation with the model checked in start()
            # /v1 clients show only the text (extra: citations + a sources footer); /api/kb reads
            # the citations from the first and last deltas
            extra = gen.extra if gen.sources_in_text else None
            async for d in self.p.knowledge.chat_stream(principal, collection, messages, params,
                                                        model=gen.engine_model, extra=extra):
                yield d
            return
        async with served.lease(principal.tenant) as engine:
            if prompt is not None:
                stream = engine.stream_text(prompt, params)
            else:
                stream = engine.stream(messages, params)
            deadline = time.monotonic() + self.p.settings.generation_timeout_s
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
                            f"{self.p.settings.generation_timeout_s:.0f}s; ask for fewer tokens") from None
                    yield d

    async def _run(self, gen: Generation, served, principal: Principal, messages: list[Message],
                   params: GenerationParams, endpoint: str, prompt: str | None, conversation_id: int | None,
                   parent_turn_id: int | None, record_turn: bool, reservation: Reservation,
                   collection: str | None) -> AsyncIterator[ChatDelta]:
        t0 = time.perf_counter()
        parts: list[str] = []
        calls: list[dict[str, Any]] = []
        status, outcome = 200, "ok"
        try:
            async with contextlib.aclosing(self._engine_stream(gen, served, principal, messages, params,
                                                               prompt, collection)) as it:
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
                parent_turn_id: int | None, record_turn: bool, reservation: Reservation) -> None:
        """Settle the reservation, write usage and the turn, update metrics. Never raises."""
        u = gen.usage
        try:
            reservation.settle(u.total_tokens)
        except Exception:
            log.exception("could not settle the token reservation for %s", gen.model)
        try:
            self.p.usage.record(UsageEvent(principal.tenant_id, principal.key_id, principal.user_id, gen.engine_model,
                                           endpoint, u.prompt_tokens, u.completion_tokens, gen.latency_ms,
                                           gen.ttft_ms, status))
            finish = gen.finish_reason or ("cancelled" if status == 499 else "error" if status != 200 else None)
            if gen.turn_id is not None:
                self.p.conversations.finish_turn(gen.turn_id, response=gen.content, tool_calls=gen.tool_calls,
                                                 finish_reason=finish, prompt_tokens=u.prompt_tokens,
                                                 completion_tokens=u.completion_tokens, latency_ms=gen.latency_ms)
            elif record_turn and status in (200, 499):
                snapshot = messages if prompt is None else [{"role": "user", "content": prompt}]
                gen.turn_id = self.p.conversations.record_turn(
                    tenant_id=principal.tenant_id, user_id=principal.user_id, key_id=principal.key_id,
                    model=gen.model, messages=snapshot, params=params.as_dict(), response=gen.content,
                    tool_calls=gen.tool_calls, finish_reason=finish,
                    prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, latency_ms=gen.latency_ms,
                    conversation_id=conversation_id, parent_turn_id=parent_turn_id)
        except Exception:
            log.exception("could not record usage for %s", gen.model)
        m = getattr(self.p, "metrics", None)
        if m is not None:  # labelled by the engine model: registered names only, never client text
            label = gen.engine_model or gen.model
            m.generations.labels(label, outcome).inc()
            m.tokens.labels(label, "prompt").inc(u.prompt_tokens)
            m.tokens.labels(label, "completion").inc(u.completion_tokens)
            if gen.ttft_ms is not None:
                m.ttft.labels(label).observe(gen.ttft_ms / 1000)
                decode_s = (gen.latency_ms - gen.ttft_ms) / 1000
                if u.completion_tokens > 1 and decode_s > 0:
                    m.tps.labels(label).observe((u.completion_tokens - 1) / decode_s)
