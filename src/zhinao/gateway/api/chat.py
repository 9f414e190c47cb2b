"""/api/conversations and /api/turns: the console's chat, streamed as SSE events.

Events: ``turn`` (id of the turn being written), ``delta`` (text), ``done`` (usage,
latency) or ``error``. Regeneration answers the same prompt as a sibling turn.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from zhinao.errors import ZhinaoError
from zhinao.gateway import sse
from zhinao.gateway.citations import link_citations, sources_footer
from zhinao.gateway.deps import AdminDep, PlatformDep, PrincipalDep
from zhinao.gateway.errors import scrub
from zhinao.maas.generation import GenerationService
from zhinao.runtime.base import GenerationParams

router = APIRouter(prefix="/api", tags=["chat"])


class NewConversation(BaseModel):
    title: str = Field("", max_length=300)
    model: str | None = None


class SendMessage(BaseModel):
    content: str = Field("", max_length=200_000)
    model: str | None = None
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    regenerate_turn_id: int | None = None
    system: str | None = Field(None, max_length=20_000)


class FeedbackBody(BaseModel):
    rating: int | None = None
    corrected_answer: str | None = Field(None, max_length=200_000)
    comment: str | None = Field(None, max_length=20_000)


@router.get("/conversations")
def list_conversations(principal: PrincipalDep, platform: PlatformDep):
    return platform.conversations.list(principal.tenant_id, principal.user_id)


@router.post("/conversations")
def create_conversation(body: NewConversation, principal: PrincipalDep, platform: PlatformDep):
    model = platform.models.canonical(body.model) if body.model else ""
    return platform.conversations.create(principal.tenant_id, principal.user_id, title=body.title, model=model)


@router.get("/conversations/{conv_id}")
def get_conversation(conv_id: int, principal: PrincipalDep, platform: PlatformDep):
    return platform.conversations.get(conv_id, principal.tenant_id, principal.user_id)


@router.delete("/conversations/{conv_id}")
def delete_conversation(conv_id: int, principal: PrincipalDep, platform: PlatformDep):
    platform.conversations.delete(conv_id, principal.tenant_id, principal.user_id)
    return {"ok": True}


@router.post("/conversations/{conv_id}/messages")
async def send_message(conv_id: int, body: SendMessage, principal: PrincipalDep, platform: PlatformDep):
    convs = platform.conversations
    messages, parent, history_model = convs.next_prompt(conv_id, principal.tenant_id, principal.user_id,
                                                        content=body.content, system=body.system,
                                                        regenerate_turn_id=body.regenerate_turn_id)
    model = body.model or history_model or None
    params = GenerationParams(temperature=body.temperature, max_tokens=body.max_tokens)
    gen = GenerationService(platform).start(principal, model, messages, params, endpoint="console",
                                            conversation_id=conv_id, parent_turn_id=parent)
    first = await gen.first()
    convs.touch(conv_id, title_from=body.content or None, model=gen.model)

    async def events() -> AsyncIterator[dict[str, Any]]:
        yield {"type": "turn", "turn_id": gen.turn_id, "model": gen.model}
        try:
            if first is not None and first.content:
                yield {"type": "delta", "content": first.content}
            async with contextlib.aclosing(gen.__aiter__()) as it:
                async for d in it:
                    if d.content:
                        yield {"type": "delta", "content": d.content}
        except ZhinaoError as e:
            yield {"type": "error", "message": scrub(e.message, e.status, platform)}
            return
        citations = gen.extra.get("citations")
        if gen.sources_in_text and citations:  # a kb:<c> answer: linked citations and a source list
            citations = link_citations(citations)
            yield {"type": "delta", "content": sources_footer(citations, gen.extra.get("lang", "en"))}
        yield {"type": "done", "turn_id": gen.turn_id, "finish_reason": gen.finish_reason,
               "usage": {"prompt_tokens": gen.usage.prompt_tokens, "completion_tokens": gen.usage.completion_tokens},
               "latency_ms": round(gen.latency_ms, 1), "model": gen.model, "citations": citations}

    return sse.response(events(), done=False)


@router.post("/turns/{turn_id}/feedback")
def feedback(turn_id: int, body: FeedbackBody, principal: PrincipalDep, platform: PlatformDep):
    clear = "rating" in body.model_fields_set and body.rating is None  # {"rating": null} withdraws it
    return platform.conversations.feedback(turn_id, principal.tenant_id, principal.user_id, rating=body.rating,
                                           corrected_answer=body.corrected_answer, comment=body.comment,
                                           clear_rating=clear)


@router.get("/feedback")
def list_feedback(principal: AdminDep, platform: PlatformDep, all: bool = False):
    """The tenant's feedback; ``all=true`` (every tenant's prompts and answers) is the operator's alone."""
    if all:
        principal.require_operator()
    return platform.conversations.list_feedback(None if all else principal.tenant_id)
