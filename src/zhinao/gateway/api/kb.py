"""/api/kb: knowledge collections, documents, library search and RAG chat (thin over KnowledgeService).

The service returns data (collection + passage id); the links to passages, the HTML highlighting
of search results and the plain-text source list under a ``kb:<c>`` answer are made by the web
layer (:mod:`zhinao.gateway.citations`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from zhinao.errors import NotFound, ZhinaoError
from zhinao.gateway import sse
from zhinao.gateway.citations import link_citations, web_passage
from zhinao.gateway.deps import AdminDep, PlatformDep, PrincipalDep
from zhinao.gateway.errors import scrub
from zhinao.runtime.base import GenerationParams

router = APIRouter(prefix="/api/kb", tags=["knowledge"])


class CollectionIn(BaseModel):
    name: str = Field(..., description="Letters, digits, '_', '-' or Chinese characters")
    description: str = ""
    visibility: str = Field("tenant", description="tenant (all tenant users read) or private (members only)")


class MemberIn(BaseModel):
    can_write: bool = False
    access_tags: list[str] = Field(default_factory=list)


class SyncIn(BaseModel):
    directory: str = Field(..., description="A folder on the server's disk")
    wait: bool = False


class ChatIn(BaseModel):
    messages: list[dict[str, Any]]
    stream: bool = False
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = Field(None, ge=1, le=8192)

    def params(self) -> GenerationParams:
        p = GenerationParams(max_tokens=self.max_tokens or 512)
        if self.temperature is not None:
            p.temperature = self.temperature
        return p


def _split(v: str | None) -> list[str] | None:
    if v is None:
        return None
    return [t.strip() for t in v.replace("，", ",").split(",") if t.strip()]


async def _read(files: list[UploadFile], limit: int) -> list[tuple[str, bytes]]:
    out = []
    for f in files:
        data = await f.read(limit + 1)  # one byte over is enough to know it is too large
        out.append((f.filename or "upload", data))
    return out


@router.get("/collections")
def list_collections(principal: PrincipalDep, platform: PlatformDep):
    return platform.knowledge.list_collections(principal)


@router.post("/collections", status_code=201)
def create_collection(body: CollectionIn, principal: PrincipalDep, platform: PlatformDep):
    return platform.knowledge.create_collection(principal, body.name, body.description, body.visibility)


@router.get("/collections/{collection}")
def get_collection(collection: str, principal: PrincipalDep, platform: PlatformDep):
    return platform.knowledge.get_collection(principal, collection)


@router.delete("/collections/{collection}")
def delete_collection(collection: str, principal: PrincipalDep, platform: PlatformDep):
    platform.knowledge.delete_collection(principal, collection)
    return {"ok": True}


@router.put("/collections/{collection}/members/{user_id}")
def set_member(collection: str, user_id: int, body: MemberIn, principal: PrincipalDep, platform: PlatformDep):
    # a collection's members are users of its tenant: another tenant's user id is "not found" (the
    # knowledge service knows collections, not users; tenancy knows who is in the tenant)
    if not any(u["id"] == user_id for u in platform.tenancy.list_users(principal.tenant_id)):
        raise NotFound(f"user {user_id} not found in your tenant", param="user_id")
    return platform.knowledge.set_member(principal, collection, user_id, can_write=body.can_write,
                                         access_tags=body.access_tags)


@router.delete("/collections/{collection}/members/{user_id}")
def remove_member(collection: str, user_id: int, principal: PrincipalDep, platform: PlatformDep):
    platform.knowledge.remove_member(principal, collection, user_id)
    return {"ok": True}


@router.get("/search")
def search(principal: PrincipalDep, platform: PlatformDep, q: str = Query(..., min_length=1),
           collection: str | None = None, tag: list[str] | None = Query(None), type: list[str] | None = Query(None),
           date_from: str | None = None, date_to: str | None = None, k: int = Query(10, ge=1, le=50),
           mode: str = "hybrid"):
    out = platform.knowledge.search(principal, q, collection=collection, k=k, tags=tag, doc_types=type,
                                    date_from=date_from, date_to=date_to, mode=mode)
    for r in out["results"]:
        r["passages"] = [web_passage(p, q) for p in r["passages"]]
    return out


@router.get("/{collection}/documents")
def list_documents(collection: str, principal: PrincipalDep, platform: PlatformDep, status: str | None = None,
                   limit: int = Query(500, ge=1, le=5000), offset: int = Query(0, ge=0)):
    return platform.knowledge.list_documents(principal, collection, status=status, limit=limit, offset=offset)


@router.post("/{collection}/documents", status_code=202)
async def upload_documents(collection: str, principal: PrincipalDep, platform: PlatformDep,
                           files: list[UploadFile] = File(...), title: str | None = Form(None),
                           tags: str | None = Form(None), access_tags: str | None = Form(None),
                           effective_date: str | None = Form(None), wait: bool = Form(False)):
    """Many files at once; each bad file gets its own error in ``rejected`` while the rest are ingested."""
    svc = platform.knowledge
    data = await _read(files, svc.config.max_upload_bytes)
    return await run_in_threadpool(svc.add_documents, principal, collection, data, title=title if len(data) == 1 else None,
                                   tags=_split(tags), access_tags=_split(access_tags),
                                   effective_date=effective_date or None, wait=wait)


@router.get("/{collection}/documents/{doc_id}")
def get_document(collection: str, doc_id: int, principal: PrincipalDep, platform: PlatformDep):
    return platform.knowledge.get_document(principal, collection, doc_id)


@router.put("/{collection}/documents/{doc_id}", status_code=202)
async def replace_document(collection: str, doc_id: int, principal: PrincipalDep, platform: PlatformDep,
                           file: UploadFile = File(...), wait: bool = Form(False)):
    svc = platform.knowledge
    data = await file.read(svc.config.max_upload_bytes + 1)
    return await run_in_threadpool(svc.replace_document, principal, collection, doc_id, file.filename, data,
                                   wait=wait)


@router.delete("/{collection}/documents/{doc_id}")
def delete_document(collection: str, doc_id: int, principal: PrincipalDep, platform: PlatformDep):
    platform.knowledge.delete_document(principal, collection, doc_id)
    return {"ok": True}


@router.post("/{collection}/sync", status_code=202)
def sync(collection: str, body: SyncIn, principal: AdminDep, platform: PlatformDep):
    """Mirror a server-side folder (admins only: it reads the server's disk)."""
    return platform.knowledge.sync_dir(principal, collection, body.directory, wait=body.wait)


@router.post("/{collection}/reindex", status_code=202)
def reindex(collection: str, principal: PrincipalDep, platform: PlatformDep, wait: bool = False):
    """Rebuild the collection's passages in the current index from the stored originals."""
    return platform.knowledge.reindex(principal, collection, wait=wait)


@router.get("/{collection}/passages/{passage_id}")
def get_passage(collection: str, passage_id: str, principal: PrincipalDep, platform: PlatformDep):
    return web_passage(platform.knowledge.passage(principal, collection, passage_id))


@router.get("/{collection}/retrieve")
def retrieve(collection: str, principal: PrincipalDep, platform: PlatformDep, q: str = Query(..., min_length=1),
             k: int = Query(5, ge=1, le=50), mode: str = "hybrid", rerank: str | None = None):
    from zhinao.knowledge.service import hit_dict

    hits = platform.knowledge.retrieve(principal, collection, q, k=k, mode=mode, rerank_with=rerank)
    return [web_passage(hit_dict(h, collection=collection), q) for h in hits]


@router.post("/{collection}/chat")
async def chat(collection: str, body: ChatIn, principal: PrincipalDep, platform: PlatformDep):
    """Retrieval + generation with citations; ``stream: true`` answers with server-sent events.

    Every model call goes through the principal's MaaS client (like /v1): the key's model scope
    applies to the chat model really used, the key's and tenant's rpm/tpm/daily quota apply
    (tokens reserved before generation), the call takes a fair scheduler slot and the
    generation timeout, and it is metered as a ``kb.chat`` usage row (``kb.condense`` for the
    rewrite of a follow-up question).
    """
    stream = platform.knowledge.chat_stream(principal, collection, body.messages, body.params(), model=body.model)
    try:
        first = await anext(stream)  # errors before the first byte become proper HTTP errors
    except StopAsyncIteration:
        first = None
    if not body.stream:
        citations: list[dict[str, Any]] = getattr(first, "citations", None) or []
        standalone = getattr(first, "standalone_question", None)
        parts = [first.content] if first is not None and first.content else []
        finish, usage, last = "stop", None, None
        async with contextlib.aclosing(stream) as it:
            async for d in it:
                if d.content:
                    parts.append(d.content)
                if getattr(d, "citations", None) is not None and (d.finish_reason or not citations):
                    citations = d.citations
                if d.finish_reason:
                    finish, usage, last = d.finish_reason, d.usage, d
        found = getattr(last, "found", None)
        return {"answer": "".join(parts), "citations": link_citations(citations),
                "found": bool(citations) if found is None else found, "refusal": getattr(last, "refusal", None),
                "checks": getattr(last, "checks", None), "standalone_question": standalone, "finish_reason": finish,
                "usage": {"prompt_tokens": usage.prompt_tokens if usage else 0,
                          "completion_tokens": usage.completion_tokens if usage else 0}}

    async def events() -> AsyncIterator[dict[str, Any]]:
        async with contextlib.aclosing(stream) as it:
            yield {"type": "citations", "citations": link_citations(getattr(first, "citations", None)),
                   "standalone_question": getattr(first, "standalone_question", None)}
            try:
                async for d in it:
                    if d.content:
                        yield {"type": "delta", "content": d.content}
                    if d.finish_reason:
                        u = d.usage
                        yield {"type": "done", "finish_reason": d.finish_reason,
                               "citations": link_citations(getattr(d, "citations", None)),
                               "found": getattr(d, "found", None), "refusal": getattr(d, "refusal", None),
                               "checks": getattr(d, "checks", None),
                               "usage": {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens}
                               if u else None}
            except ZhinaoError as e:
                yield {"type": "error", "error": {"message": scrub(e.message, e.status, platform), "type": e.type,
                                                  "code": e.code}}

    return sse.response(events())
