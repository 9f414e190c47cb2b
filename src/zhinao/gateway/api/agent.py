"""/api/agent: ask a workspace in Chinese or English, see the work, accept or correct it (thin over AgentService).

``POST /api/agent/ask`` answers with the :class:`~zhinao.agent.base.AgentAnswer` JSON, or with
server-sent events when the body says ``stream: true`` or the client sends
``Accept: text/event-stream``: one ``{"event": "tool", ...}`` per tool call as it finishes,
then ``{"event": "answer", "answer": {...}}`` carrying the narrative (it is written from the
result, not generated token by token, so there are no ``delta`` events);
an error after the first event is an ``{"event": "error", "error": {...}}`` event (before it,
a plain HTTP error). Accept / Correct feed the workspace's example library and the feedback
record the alignment loop reads.

Scoping: every read goes through the caller's tenant, so another tenant's answer, session or
example is a 404. Inside a tenant, members see their own sessions and answers; admins see the
tenant's. A workspace named in a body (``ask``) that the tenant does not have is a 400 (the
request is wrong, there is no resource at that URL); named in the query string of the library
routes it is a 404, like the analytics routes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from zhinao.agent.store import MAX_QUESTION_CHARS, AgentStore
from zhinao.errors import InvalidRequest, NotFound, PermissionDenied, ZhinaoError
from zhinao.gateway import sse
from zhinao.gateway.deps import PlatformDep, PrincipalDep
from zhinao.gateway.errors import scrub

router = APIRouter(prefix="/api/agent", tags=["agent"])

_UNSET: Any = object()


class AskIn(BaseModel):
    question: str = Field(..., description="The question, in Chinese or English / 问题", max_length=MAX_QUESTION_CHARS)
    workspace: str = Field(..., description="The analytics workspace to ask / 工作区", max_length=64)
    session_id: str | None = Field(None, description="Continue this conversation (follow-ups keep context)",
                                   max_length=36)
    model: str | None = Field(None, description="Chat model (default: the platform's)", max_length=200)
    stream: bool = Field(False, description="Answer with server-sent events")


class ExampleIn(BaseModel):
    workspace: str = Field(..., description="The workspace whose library it joins", max_length=64)
    question: str = Field(..., description="A question users ask", max_length=MAX_QUESTION_CHARS)
    sql: str | None = Field(None, description="The SQL that answers it (one read-only query)", max_length=20000)
    call: dict[str, Any] | None = Field(None, description='Or the tool call: {"tool": name, "args": {...}}')


class CorrectIn(BaseModel):
    sql: str | None = Field(None, description="The SQL that answers the question", max_length=20000)
    answer: str | None = Field(None, description="The right answer, in words", max_length=20000)


def _store(platform: Any) -> AgentStore:
    svc = platform.agent
    store = getattr(svc, "store", None)
    return store if isinstance(store, AgentStore) else AgentStore(platform.db)


def _owner(principal: Any) -> Any:
    """Members see their own rows; admins (and the operator) see the tenant's."""
    return _UNSET if principal.is_admin else principal.user_id


def _kw(principal: Any) -> dict[str, Any]:
    owner = _owner(principal)
    return {} if owner is _UNSET else {"owner": owner}


def _workspace(platform: Any, principal: Any, name: str, *, in_body: bool) -> None:
    try:
        platform.analytics.workspaces.get(principal.tenant_id, name)
    except NotFound:
        if not in_body:
            raise
        raise InvalidRequest(f"workspace {name!r} not found in your tenant; create it or import data first "
                             "(`zhinao data demo` makes the demo workspace)", param="workspace") from None


def _wants_stream(body: AskIn, request: Request) -> bool:
    return body.stream or "text/event-stream" in request.headers.get("accept", "")


def _as_dict(v: Any) -> Any:
    return v.as_dict() if hasattr(v, "as_dict") else v


@router.post("/ask")
async def ask(body: AskIn, request: Request, principal: PrincipalDep, platform: PlatformDep):
    """Ask the workspace; the answer shows the SQL / model call it used, the table, a chart, each tool call."""
    question = body.question.strip()
    if not question:
        raise InvalidRequest("the question is empty: ask something about the workspace's tables", param="question")
    workspace = body.workspace.strip()
    if not workspace:
        raise InvalidRequest("name the workspace to ask (field 'workspace')", param="workspace")
    _workspace(platform, principal, workspace, in_body=True)
    svc = platform.agent  # another user's or tenant's session_id is "not found" there, before any model call
    if not _wants_stream(body, request):
        answer = await svc.ask(principal, workspace, question, session_id=body.session_id, model=body.model)
        return _as_dict(answer)

    stream = svc.ask_stream(principal, workspace, question, session_id=body.session_id, model=body.model)
    try:
        first = await anext(stream)  # errors before the first event become proper HTTP errors
    except StopAsyncIteration:
        first = None

    async def events() -> AsyncIterator[dict[str, Any]]:
        async with contextlib.aclosing(stream) as it:
            if first is not None:
                yield _event(first)
            try:
                async for ev in it:
                    yield _event(ev)
            except ZhinaoError as e:
                yield {"event": "error", "error": {"message": scrub(e.message, e.status, platform), "type": e.type,
                                                   "code": e.code}}

    return sse.response(events())


def _event(ev: Any) -> dict[str, Any]:
    ev = dict(ev)
    if "answer" in ev and hasattr(ev["answer"], "as_dict"):
        ev["answer"] = ev["answer"].as_dict()
    return ev


@router.get("/answers/{answer_id}")
def get_answer(answer_id: int, principal: PrincipalDep, platform: PlatformDep):
    """A stored answer as it was shown, with the user's verdict (``status``, ``correction``)."""
    return _store(platform).answer(principal.tenant_id, answer_id, **_kw(principal))


@router.post("/answers/{answer_id}/accept")
async def accept(answer_id: int, principal: PrincipalDep, platform: PlatformDep):
    """The answer is right: its question and SQL (or model call) join the workspace's example library."""
    store = _store(platform)
    store.answer(principal.tenant_id, answer_id, **_kw(principal))
    result = await _call(platform.agent.accept, principal, answer_id)
    return _verdict(store, principal, answer_id, result)


@router.post("/answers/{answer_id}/correct")
async def correct(answer_id: int, body: CorrectIn, principal: PrincipalDep, platform: PlatformDep):
    """The answer is wrong: give the right SQL and/or the right answer (the SQL must be one read-only query)."""
    sql = (body.sql or "").strip() or None
    text = (body.answer or "").strip() or None
    if sql is None and text is None:
        raise InvalidRequest("a correction needs the right SQL ('sql') or the right answer ('answer')", param="sql")
    store = _store(platform)
    store.answer(principal.tenant_id, answer_id, **_kw(principal))
    # the service checks and runs the SQL read-only before it joins the library (a write never does)
    result = await _call(platform.agent.correct, principal, answer_id, sql=sql, answer=text)
    return _verdict(store, principal, answer_id, result)


async def _call(fn: Any, *args: Any, **kw: Any) -> Any:
    """The service's verdict methods write the store and may run SQL: off the event loop unless async."""
    import inspect

    from fastapi.concurrency import run_in_threadpool

    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kw)
    return await run_in_threadpool(fn, *args, **kw)


def _verdict(store: AgentStore, principal: Any, answer_id: int, result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": True, "answer": store.answer(principal.tenant_id, answer_id)}
    if isinstance(result, int) and not isinstance(result, bool):
        out["example_id"] = result
    elif isinstance(result, dict):
        out.update({k: v for k, v in result.items() if k not in ("ok", "answer")})
    return out


@router.get("/examples")
def list_examples(principal: PrincipalDep, platform: PlatformDep,
                  workspace: str = Query(..., min_length=1, max_length=64)):
    """The workspace's example library (question -> SQL or tool call), newest first."""
    _workspace(platform, principal, workspace, in_body=False)
    return _store(platform).examples(principal.tenant_id, workspace)


@router.post("/examples", status_code=201)
def add_example(body: ExampleIn, principal: PrincipalDep, platform: PlatformDep):
    """Add a worked example by hand (admins): seeds a workspace's library before users accept answers.

    The SQL must run read-only on the workspace (checked and executed in the sandbox first)."""
    principal.require_admin()
    workspace = body.workspace.strip()
    _workspace(platform, principal, workspace, in_body=True)
    sql = (body.sql or "").strip().rstrip(";").strip() or None
    if sql is not None:
        from zhinao.analytics.sandbox import check_sql

        ws = platform.analytics.workspaces.workspace(principal.tenant_id, workspace)
        check_sql(sql, ws.tables())  # one read-only query over this workspace's own tables
        ws.run_sql(sql, max_rows=1)  # and it runs (a wrong column is a 400 here, not a bad example later)
    store = _store(platform)
    eid = store.add_example(principal.tenant_id, workspace, body.question, sql=sql, call=body.call, source="manual",
                            created_by=principal.user_id)
    return store.example(principal.tenant_id, eid)


@router.delete("/examples")
def delete_examples(principal: PrincipalDep, platform: PlatformDep,
                    workspace: str = Query(..., min_length=1, max_length=64),
                    id: int | None = Query(None, description="One example; without it the whole library (admins)")):
    """Remove one example (its author or an admin), or empty the workspace's library (admins)."""
    _workspace(platform, principal, workspace, in_body=False)
    store = _store(platform)
    if id is None:
        if not principal.is_admin:
            raise PermissionDenied("emptying a workspace's example library needs the admin role; "
                                   "pass id= to remove one of your own examples")
        return {"ok": True, "deleted": store.clear_examples(principal.tenant_id, workspace)}
    ex = store.example(principal.tenant_id, id)
    if ex["workspace"] != workspace:
        raise NotFound(f"example {id} not found in workspace {workspace!r}", param="id")
    if not principal.is_admin and ex["created_by"] != principal.user_id:
        raise PermissionDenied("only the example's author or an admin may remove it")
    store.delete_example(principal.tenant_id, id, workspace=workspace)
    return {"ok": True, "deleted": 1}


@router.get("/sessions")
def list_sessions(principal: PrincipalDep, platform: PlatformDep,
                  workspace: str | None = Query(None, min_length=1, max_length=64,
                                                description="Only this workspace's conversations"),
                  limit: int = Query(50, ge=1, le=500)):
    """The caller's conversations, most recently used first (admins: the tenant's), so a client can
    offer "continue where I left off" without remembering session ids itself."""
    if workspace is not None:
        _workspace(platform, principal, workspace, in_body=False)
    return _store(platform).sessions(principal.tenant_id, workspace=workspace, limit=limit, **_kw(principal))


@router.get("/sessions/{session_id}")
def get_session(session_id: str, principal: PrincipalDep, platform: PlatformDep):
    """A conversation: its workspace, state (what follow-ups build on) and answers, oldest first."""
    return _store(platform).session(principal.tenant_id, session_id, **_kw(principal))
