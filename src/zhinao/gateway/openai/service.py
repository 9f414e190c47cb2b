"""OpenAI serving: wire requests in, OpenAI-shaped dicts out. Imports no FastAPI.

Streaming yields chunk dicts (the router frames them, :mod:`zhinao.gateway.sse`); the first
delta is produced before the router commits to a 200, so an error that happens at admission
or prompt evaluation (context overflow) is still a proper 4xx. Embeddings are metered by the
MaaS client (:meth:`zhinao.maas.client.LLMClient.embed`), not here. A ``kb:<c>`` answer ends
with a plain-text source list (OpenAI clients show only the text) and carries ``citations``;
when the knowledge base does not answer, the sentence that says so is the content (clients
that show only the text still see it) and ``message.refusal`` (OpenAI's field for declined
answers; a ``refusal`` delta when streaming), with no citation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from zhinao.errors import InvalidRequest, ZhinaoError
from zhinao.gateway.errors import scrub
from zhinao.gateway.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from zhinao.maas.generation import Generation, GenerationService
from zhinao.gateway.citations import link_citations, sources_footer
from zhinao.maas.client import LLMClients
from zhinao.maas.tenancy import Principal
from zhinao.runtime.base import ChatDelta

if TYPE_CHECKING:
    from zhinao.platform import Platform


def _usage(gen: Generation) -> dict[str, int]:
    u = gen.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens}


def _sources(gen: Generation) -> str:
    """The source list under a knowledge-base answer (empty for ordinary models)."""
    if not gen.sources_in_text or not gen.extra.get("citations"):
        return ""
    gen.extra["citations"] = link_citations(gen.extra["citations"])
    return sources_footer(gen.extra["citations"], gen.extra.get("lang", "en"))


def _tool_calls_delta(calls: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    return [{"index": start + i, **c} for i, c in enumerate(calls)]


class OpenAIServing:
    def __init__(self, platform: "Platform"):
        self.p = platform
        self.gen = GenerationService(platform)
        clients = getattr(platform, "llm_clients", None)
        self.clients = clients if isinstance(clients, LLMClients) else LLMClients(
            self.gen, embedder=lambda: platform.embedder, embedding_model=platform.settings.embedding_model)

    # -- chat ------------------------------------------------------------------------------
    async def chat(self, principal: Principal, req: ChatCompletionRequest) -> tuple[dict | None, AsyncIterator[dict] | None]:
        """Returns (response, None) for non-streaming or (None, chunk iterator) for streaming."""
        gen = self.gen.start(principal, req.model, req.messages, req.params(), endpoint="chat",
                             conversation_id=None)
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        first = await gen.first()  # raises 4xx errors before any byte is sent
        if not req.stream:
            async for _ in gen:
                pass
            content = gen.content + _sources(gen)
            msg: dict[str, Any] = {"role": "assistant", "content": content if not gen.tool_calls else (content or None),
                                   "refusal": gen.extra.get("refusal")}  # a kb:<c> model that found no answer
            if gen.tool_calls:
                msg["tool_calls"] = gen.tool_calls
            resp = {"id": cid, "object": "chat.completion", "created": created, "model": gen.model,
                    "choices": [{"index": 0, "message": msg, "finish_reason": gen.finish_reason or "stop",
                                 "logprobs": None}],
                    "usage": _usage(gen)}
            if gen.extra.get("citations") is not None:
                resp["citations"] = gen.extra["citations"]
            return resp, None
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return None, self._chat_chunks(gen, first, cid, created, include_usage)

    async def _chat_chunks(self, gen: Generation, first: ChatDelta | None, cid: str, created: int,
                           include_usage: bool) -> AsyncIterator[dict]:
        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": gen.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

        yield chunk({"role": "assistant", "content": ""})
        n_calls = 0

        def render(d: ChatDelta) -> list[dict]:
            nonlocal n_calls
            out = []
            refusal = getattr(d, "refusal", None)
            if refusal:  # a kb:<c> model that found no answer: OpenAI's refusal delta after the text
                out.append(chunk({"refusal": refusal}))
            if d.content:
                out.append(chunk({"content": d.content}))
            if d.tool_calls:
                out.append(chunk({"tool_calls": _tool_calls_delta(d.tool_calls, n_calls)}))
                n_calls += len(d.tool_calls)
            return out

        try:
            if first is not None:
                for c in render(first):
                    yield c
            async for d in gen:
                for c in render(d):
                    yield c
        except ZhinaoError as e:  # after the 200: report in-band, OpenAI style
            yield {"error": {"message": scrub(e.message, e.status, self.p), "type": e.type, "code": e.code,
                             "param": None}}
            return
        sources = _sources(gen)
        if sources:
            yield chunk({"content": sources})
        last = chunk({}, gen.finish_reason or "stop")
        if gen.extra.get("citations") is not None:
            last["citations"] = gen.extra["citations"]
        yield last
        if include_usage:
            yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": gen.model,
                   "choices": [], "usage": _usage(gen)}

    # -- completions ---------------------------------------------------------------------
    async def completion(self, principal: Principal, req: CompletionRequest) -> tuple[dict | None, AsyncIterator[dict] | None]:
        served = None if req.model.startswith("kb:") else self.p.models.resolve(req.model)
        if served is None:
            raise InvalidRequest("knowledge-base models support /v1/chat/completions only", param="model")
        if not served.replicas[0].supports_completions:
            raise InvalidRequest(f"model {served.spec.name!r} (backend {served.spec.backend}) has no raw text "
                                 "completion; use /v1/chat/completions", param="model")
        gen = self.gen.start(principal, req.model, [], req.params(), endpoint="completions", prompt=req.prompt_text)
        cid = "cmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        first = await gen.first()
        if not req.stream:
            async for _ in gen:
                pass
            text = (req.prompt_text if req.echo else "") + gen.content
            return {"id": cid, "object": "text_completion", "created": created, "model": gen.model,
                    "choices": [{"index": 0, "text": text, "finish_reason": gen.finish_reason or "stop",
                                 "logprobs": None}], "usage": _usage(gen)}, None
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def chunks() -> AsyncIterator[dict]:
            def chunk(text: str, finish: str | None = None) -> dict:
                return {"id": cid, "object": "text_completion", "created": created, "model": gen.model,
                        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}

            if req.echo:
                yield chunk(req.prompt_text)
            try:
                if first is not None and first.content:
                    yield chunk(first.content)
                async for d in gen:
                    if d.content:
                        yield chunk(d.content)
            except ZhinaoError as e:
                yield {"error": {"message": scrub(e.message, e.status, self.p), "type": e.type,
                                 "code": e.code, "param": None}}
                return
            yield chunk("", gen.finish_reason or "stop")
            if include_usage:
                yield {"id": cid, "object": "text_completion", "created": created, "model": gen.model,
                       "choices": [], "usage": _usage(gen)}

        return None, chunks()

    # -- embeddings ----------------------------------------------------------------------
    async def embeddings(self, principal: Principal, req: EmbeddingRequest) -> dict:
        emb = self.p.embedder
        if req.dimensions is not None and req.dimensions != emb.dim:
            raise InvalidRequest(f"this embedding model has {emb.dim} dimensions; 'dimensions' must be {emb.dim} "
                                 "or omitted", param="dimensions")
        texts = [req.input] if isinstance(req.input, str) else list(req.input)
        # scope, reservation and the usage row are the MaaS client's (the same for every capability)
        vectors, tokens = await self.clients(principal, "embeddings").embed(texts, model=req.model)
        data = []
        for i, v in enumerate(vectors):
            if req.encoding_format == "base64":
                import base64

                import numpy as np

                data.append({"object": "embedding", "index": i,
                             "embedding": base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()})
            else:
                data.append({"object": "embedding", "index": i, "embedding": v})
        return {"object": "list", "data": data, "model": req.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    # -- models --------------------------------------------------------------------------
    def list_models(self, principal: Principal) -> dict:
        out = []
        for spec in self.p.models.specs():
            if not principal.may_use(spec.name):  # not granted to the tenant
                continue
            if principal.models is not None and spec.name not in principal.models \
                    and not set(spec.aliases) & set(principal.models):
                continue
            out.append({"id": spec.name, "object": "model", "created": 0, "owned_by": "zhinao",
                        "backend": spec.backend, "aliases": spec.aliases})
        emb = self.p.settings.embedding_model
        out.append({"id": emb, "object": "model", "created": 0, "owned_by": "zhinao", "backend": "embedding",
                    "aliases": []})
        return {"object": "list", "data": out}
