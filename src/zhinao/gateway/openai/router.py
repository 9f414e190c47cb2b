"""``/v1``: thin HTTP over :class:`OpenAIServing` (parsing, SSE framing, nothing else)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from zhinao.gateway import sse
from zhinao.gateway.deps import PlatformDep, PrincipalDep
from zhinao.gateway.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from zhinao.gateway.openai.service import OpenAIServing

router = APIRouter(prefix="/v1", tags=["openai"])


def serving(request: Request) -> OpenAIServing:
    s = getattr(request.app.state, "openai_serving", None)
    if s is None:
        s = request.app.state.openai_serving = OpenAIServing(request.app.state.platform)
    return s


def _stream_response(chunks: AsyncIterator[dict]) -> StreamingResponse:
    return sse.response(chunks)


async def until_disconnect(request: Request, coro):
    """Run ``coro`` but cancel it (and so stop the engine) if the client goes away first."""
    task = asyncio.ensure_future(coro)
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.5)
        if done:
            return task.result()
        if await request.is_disconnected():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return None


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, principal: PrincipalDep, request: Request):
    if body.stream:
        resp, chunks = await serving(request).chat(principal, body)
        return _stream_response(chunks)
    result = await until_disconnect(request, serving(request).chat(principal, body))
    return Response(status_code=499) if result is None else result[0]


@router.post("/completions")
async def completions(body: CompletionRequest, principal: PrincipalDep, request: Request):
    if body.stream:
        resp, chunks = await serving(request).completion(principal, body)
        return _stream_response(chunks)
    result = await until_disconnect(request, serving(request).completion(principal, body))
    return Response(status_code=499) if result is None else result[0]


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, principal: PrincipalDep, request: Request):
    return await serving(request).embeddings(principal, body)


@router.get("/models")
async def list_models(principal: PrincipalDep, request: Request):
    return serving(request).list_models(principal)


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, principal: PrincipalDep, platform: PlatformDep, request: Request):
    from zhinao.errors import ModelNotFound

    for m in serving(request).list_models(principal)["data"]:
        if m["id"] == model_id or model_id in m.get("aliases", []):
            return m
    raise ModelNotFound(f"The model {model_id!r} does not exist", param="model")
