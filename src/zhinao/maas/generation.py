"""One generation through the platform: authorise, admit, run, meter, record.

Both the OpenAI-compatible API and the console go through :class:`GenerationService`,
so limits, fairness, usage and the RLHF turn log are enforced in one place. Knows no
HTTP. Errors before the first token (unknown model, limits, context overflow) raise;
the caller decides how to show them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zhinao.errors import EngineUnavailable, GenerationTimeout, ZhinaoError
from zhinao.maas.tenancy import Principal
from zhinao.maas.usage import UsageEvent
from zhinao.runtime.base import ChatDelta, GenerationParams, Message, Usage
from zhinao.runtime.echo import count_tokens

if TYPE_CHECKING:
    from zhinao.platform import Platform

log = logging.getLogger(__name__)
KB_PREFIX = "kb:"


@dataclass
class Generation:
    """An async iterator of deltas; after it finishes, the summary fields are filled in."""

    model: str
    _it: AsyncIterator[ChatDelta] | None = None
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
              record_turn: bool = True) -> Generation:
        """Validate now (raises on unknown/forbidden model or exhausted limits); generate on iteration."""
        if model and model.startswith(KB_PREFIX):
            name = model
            served = None
        else:
            served = self.p.models.resolve(model)
            name = served.spec.name
            principal.check_model(name, tuple(served.spec.aliases) + ((model,) if model else ()))
        self.p.limits.check(principal)
        gen = Generation(model=name)
        if record_turn and conversation_id is not None:  # console: the UI needs the turn id up front
            gen.turn_id = self.p.conversations.record_turn(
                tenant_id=principal.tenant_id, user_id=principal.user_id, key_id=principal.key_id, model=name,
                messages=list(messages), params=params.as_dict(), response="", tool_calls=None, finish_reason=None,
                prompt_tokens=0, completion_tokens=0, latency_ms=0.0, conversation_id=conversation_id,
                parent_turn_id=parent_turn_id)
        gen._it = self._run(gen, served, principal, list(messages), params, endpoint, prompt,
                            conversation_id, parent_turn_id, record_turn)
        return gen

    async def _engine_stream(self, gen: Generation, served, principal: Principal, messages: list[Message],
                             params: GenerationParams, prompt: str | None) -> AsyncIterator[ChatDelta]:
        if served is None:  # kb:<collection> — retrieval + generation
            collection = gen.model[len(KB_PREFIX):]
            async for d in self.p.knowledge.chat_stream(principal, collection, messages, params, extra=gen.extra):
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
                   parent_turn_id: int | None, record_turn: bool) -> AsyncIterator[ChatDelta]:
        t0 = time.perf_counter()
        parts: list[str] = []
        calls: list[dict[str, Any]] = []
        status, outcome = 200, "ok"
        try:
            async with contextlib.aclosing(self._engine_stream(gen, served, principal, messages, params,
                                                               prompt)) as it:
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
                         conversation_id, parent_turn_id, record_turn)

    def _finish(self, gen: Generation, principal: Principal, messages: list[Message], params: GenerationParams,
                endpoint: str, prompt: str | None, status: int, outcome: str, conversation_id: int | None,
                parent_turn_id: int | None, record_turn: bool) -> None:
        """Charge limits, write usage and the turn, update metrics. Never raises."""
        u = gen.usage
        try:
            self.p.limits.charge(principal, u.total_tokens)
            self.p.usage.record(UsageEvent(principal.tenant_id, principal.key_id, principal.user_id, gen.model,
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
        if m is not None:
            m.generations.labels(gen.model, outcome).inc()
            m.tokens.labels(gen.model, "prompt").inc(u.prompt_tokens)
            m.tokens.labels(gen.model, "completion").inc(u.completion_tokens)
            if gen.ttft_ms is not None:
                m.ttft.labels(gen.model).observe(gen.ttft_ms / 1000)
                decode_s = (gen.latency_ms - gen.ttft_ms) / 1000
                if u.completion_tokens > 1 and decode_s > 0:
                    m.tps.labels(gen.model).observe((u.completion_tokens - 1) / decode_s)
