"""Tenant isolation as a property of the route table (issue 8, "make it a property").

For every route of the app, :data:`MATRIX` says how tenant A attacks it: with B's resource
ids in the path (and in the body or query where the route takes ids), as A's member, A's
admin and A's admin API key. Each call must be refused (403/404, or the 400/401 listed for
the route) and nothing of B may come back: none of B's content markers, none of B's names
that A did not itself send, none of B's credentials, no object with B's ``tenant_id`` and
no B resource id in an id field. Operator-only routes must refuse A's admin with 403.
Routes that take no foreign id ("own") are called as A and checked for B data all the same.

A route in the app without an entry fails :func:`test_every_route_has_an_entry` ("route X
has no isolation-matrix entry"): a new route cannot ship without saying how it is isolated.
The last test checks that B's resources are all still there and unchanged, so an attack
that "failed" by destroying B's data does not pass.

Figures: :func:`test_matrix_figures` prints routes x roles.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from two_tenants import OP
from world import CONTENT, NAMES, World, fresh_session

from zhinao.gateway.routes import iter_api_routes

ROLES = ("member", "admin", "key")
DENIED = frozenset({403, 404})
ANY_NON_5XX = frozenset(range(200, 500))


@dataclass(frozen=True)
class Case:
    """How A calls one route.

    kind: ``b`` (B's ids substituted: refused), ``operator`` (operator-only: 403 for all of A),
    ``own`` (no foreign ids: any non-5xx, no B data), ``public`` (no credentials needed).
    """

    kind: str
    path: dict[str, Callable[[World], Any]] = field(default_factory=dict)  #: overrides of DEFAULT_PATH
    query: Callable[[World], dict] | None = None
    body: Callable[[World, str], Any] | None = None
    files: Callable[[World], dict] | None = None
    data: dict | None = None
    ok: frozenset[int] | None = None  #: allowed statuses (default by kind)
    echoes_requests: bool = False  #: lists A's own earlier requests (audit): only B's content counts
    fresh_session: bool = False  #: the route ends the session it is called with
    note: str = ""

    def allowed(self) -> frozenset[int]:
        if self.ok is not None:
            return self.ok
        return {"b": DENIED, "operator": frozenset({403})}.get(self.kind, ANY_NON_5XX)


def ids(kind: str) -> Callable[[World], Any]:
    return lambda w: w.ids[kind]


def a_ids(kind: str) -> Callable[[World], Any]:
    return lambda w: w.a_ids[kind]


def const(v: Any) -> Callable[[World], Any]:
    return lambda w: v


#: what a path parameter is replaced with, unless a case says otherwise: B's resource
DEFAULT_PATH: dict[str, Callable[[World], Any]] = {
    "conv_id": ids("conv"), "turn_id": ids("turn"), "user_id": ids("member_user"), "key_id": ids("key"),
    "tenant_id": ids("tenant"), "job_id": ids("kb_job"), "run_id": ids("run"), "doc_id": ids("doc"),
    "passage_id": ids("passage"), "collection": const(NAMES["coll"]), "ws": const(NAMES["ws"]),
    "term": const(NAMES["term"]), "model_id": const(f"kb:{NAMES['coll']}"), "key": const("plan_tree"),
    "answer_id": ids("agent_answer"), "session_id": ids("agent_session"),
    "experiment_id": ids("experiment"), "compare_id": ids("compare"),
}
MSG = [{"role": "user", "content": "hello"}]


def body(v: Any) -> Callable[[World, str], Any]:
    return lambda w, role: v(w) if callable(v) else v


def txt_file(w: World) -> dict:
    return {"files": ("a.txt", b"acme text", "text/plain")}


def one_file(w: World) -> dict:
    return {"file": ("a.csv", b"x,y\n1,2\n", "text/csv")}


B, OPERATOR, OWN, PUBLIC = "b", "operator", "own", "public"

#: (METHOD, path template) -> the cases A tries. Keep it in the order of the routers.
MATRIX: dict[tuple[str, str], tuple[Case, ...]] = {
    # -- /v1 ---------------------------------------------------------------------------------------
    ("POST", "/v1/chat/completions"): (
        Case(B, body=body(lambda w: {"model": f"kb:{NAMES['coll']}", "messages": MSG})),
        Case(OWN, body=body({"model": "echo", "messages": MSG}), ok=frozenset({200})),),
    ("POST", "/v1/completions"): (
        Case(B, body=body(lambda w: {"model": f"kb:{NAMES['coll']}", "prompt": "x"}),
             ok=frozenset({400, 403, 404})),),
    ("POST", "/v1/embeddings"): (Case(OWN, body=body({"model": "hash", "input": "x"})),),
    ("GET", "/v1/models"): (Case(OWN, ok=frozenset({200})),),
    ("GET", "/v1/models/{model_id}"): (Case(B),),
    # -- auth --------------------------------------------------------------------------------------
    ("POST", "/api/auth/login"): (
        Case(PUBLIC, body=body({"username": NAMES["admin_user"], "password": "wrong-password-1",
                                "tenant": NAMES["tenant"]}), ok=frozenset({401, 429}),
             note="B's username with a wrong password: a neutral 401"),),
    ("POST", "/api/auth/logout"): (Case(OWN, fresh_session=True, ok=frozenset({200})),),
    ("GET", "/api/me"): (Case(OWN, ok=frozenset({200})),),
    # -- chat --------------------------------------------------------------------------------------
    ("GET", "/api/conversations"): (Case(OWN, ok=frozenset({200})),),
    ("POST", "/api/conversations"): (Case(OWN, body=body({"title": "acme new"})),),
    ("GET", "/api/conversations/{conv_id}"): (Case(B),),
    ("DELETE", "/api/conversations/{conv_id}"): (Case(B),),
    ("POST", "/api/conversations/{conv_id}/messages"): (
        Case(B, body=body({"content": "hello"})),
        Case(B, path={"conv_id": a_ids("conv")}, body=body(lambda w: {"regenerate_turn_id": w.ids["turn"]}),
             ok=frozenset({400, 403, 404}), note="A's conversation, regenerating B's turn"),),
    ("POST", "/api/turns/{turn_id}/feedback"): (Case(B, body=body({"rating": 1, "comment": "x"})),),
    ("GET", "/api/feedback"): (
        Case(OWN),
        Case(B, query=lambda w: {"all": "true"}, ok=frozenset({403})),),
    # -- tenancy -----------------------------------------------------------------------------------
    ("GET", "/api/tenants"): (Case(OWN),),
    ("POST", "/api/tenants"): (Case(OPERATOR, body=body({"name": "evil"})),),
    ("PATCH", "/api/tenants/{tenant_id}"): (Case(OPERATOR, body=body({"disabled": True})),),
    ("DELETE", "/api/tenants/{tenant_id}"): (Case(OPERATOR),),
    ("GET", "/api/users"): (
        Case(OWN),
        Case(B, query=lambda w: {"tenant_id": w.ids["tenant"]}, ok=frozenset({403})),
        Case(B, query=lambda w: {"all": "true"}, ok=frozenset({403})),),
    ("POST", "/api/users"): (
        Case(B, body=body(lambda w: {"username": "evil-user", "password": "password-123", "role": "member",
                                     "tenant_id": w.ids["tenant"]}), ok=frozenset({403})),),
    ("PATCH", "/api/users/{user_id}"): (
        Case(B, path={"user_id": ids("admin_user")}, body=body({"role": "member", "disabled": True})),),
    ("DELETE", "/api/users/{user_id}"): (Case(B),),
    ("GET", "/api/keys"): (
        Case(OWN),
        Case(B, query=lambda w: {"tenant_id": w.ids["tenant"]}, ok=frozenset({403})),
        Case(B, query=lambda w: {"all": "true"}, ok=frozenset({403})),),
    ("POST", "/api/keys"): (
        Case(B, body=body(lambda w: {"name": "evil", "tenant_id": w.ids["tenant"]}), ok=frozenset({403})),),
    ("DELETE", "/api/keys/{key_id}"): (Case(B), Case(B, path={"key_id": ids("admin_key")})),
    # -- models (platform resources) -----------------------------------------------------------------
    ("GET", "/api/models"): (Case(OWN, ok=frozenset({200})),),
    ("POST", "/api/models"): (Case(OPERATOR, body=body({"name": "evil", "backend": "echo", "aliases": ["x"]})),),
    ("GET", "/api/models/backends"): (Case(OWN),),
    ("DELETE", "/api/models/{name}"): (Case(OPERATOR, path={"name": const("echo")}),),
    ("POST", "/api/models/{name}/test"): (Case(OPERATOR, path={"name": const("echo")}),),
    ("GET", "/api/status"): (Case(OWN, ok=frozenset({200})),),
    ("GET", "/api/usage"): (
        Case(OWN, query=lambda w: {"group_by": "tenant,key,model"}),
        Case(B, query=lambda w: {"all": "true"}, ok=frozenset({403})),
        Case(B, query=lambda w: {"tenant_id": w.ids["tenant"]}, ok=frozenset({403})),),
    # -- A/B experiments (admin-only, per tenant) ----------------------------------------------------
    ("GET", "/api/experiments"): (
        Case(OWN), Case(B, query=lambda w: {"tenant_id": w.ids["tenant"]}, ok=frozenset({403})),),
    ("POST", "/api/experiments"): (
        Case(B, body=body(lambda w: {"base": "echo", "candidate": "echo-candidate", "share": 1.0,
                                     "tenant_id": w.ids["tenant"]}), ok=frozenset({403})),),
    ("GET", "/api/experiments/{experiment_id}"): (Case(B),),
    ("PATCH", "/api/experiments/{experiment_id}"): (Case(B, body=body({"share": 1.0})),),
    ("POST", "/api/experiments/{experiment_id}/rollback"): (Case(B),),
    # -- jobs --------------------------------------------------------------------------------------
    ("GET", "/api/jobs"): (Case(OWN), Case(B, query=lambda w: {"all": "true"}, ok=frozenset({403}))),
    ("GET", "/api/jobs/{job_id}"): (Case(B), Case(B, path={"job_id": ids("run_job")})),
    ("POST", "/api/jobs/{job_id}/cancel"): (Case(B), Case(B, path={"job_id": ids("run_job")})),
    # -- audit -------------------------------------------------------------------------------------
    ("GET", "/api/audit"): (
        Case(OWN, echoes_requests=True),
        Case(B, query=lambda w: {"tenant_id": w.ids["tenant"]}, ok=frozenset({403})),),
    ("GET", "/api/audit/export"): (
        Case(OWN, echoes_requests=True),
        Case(B, query=lambda w: {"tenant_id": w.ids["tenant"]}, ok=frozenset({403})),),
    ("GET", "/api/audit/verify"): (Case(OPERATOR),),
    # -- knowledge ---------------------------------------------------------------------------------
    ("GET", "/api/kb/collections"): (Case(OWN, ok=frozenset({200})),),
    ("POST", "/api/kb/collections"): (Case(OWN, body=lambda w, role: {"name": f"acme_new_{role}"}),),
    ("GET", "/api/kb/collections/{collection}"): (Case(B),),
    ("DELETE", "/api/kb/collections/{collection}"): (Case(B),),
    ("PUT", "/api/kb/collections/{collection}/members/{user_id}"): (
        Case(B, path={"user_id": a_ids("member_user")}, body=body({"can_write": True})),
        Case(B, path={"collection": const("acme_coll")}, body=body({"can_write": True}),
             ok=frozenset({400, 403, 404}), note="A's collection, B's user"),),
    ("DELETE", "/api/kb/collections/{collection}/members/{user_id}"): (Case(B),),
    ("GET", "/api/kb/search"): (
        Case(OWN, query=lambda w: {"q": "confidential pricing merger"}),
        Case(B, query=lambda w: {"q": "confidential pricing", "collection": NAMES["coll"]}),),
    ("GET", "/api/kb/{collection}/documents"): (Case(B),),
    ("POST", "/api/kb/{collection}/documents"): (Case(B, files=txt_file),),
    ("GET", "/api/kb/{collection}/documents/{doc_id}"): (
        Case(B), Case(B, path={"collection": const("acme_coll")}, note="A's collection, B's document"),),
    ("PUT", "/api/kb/{collection}/documents/{doc_id}"): (
        Case(B, files=lambda w: {"file": ("a.txt", b"overwritten by acme", "text/plain")}),
        Case(B, path={"collection": const("acme_coll")},
             files=lambda w: {"file": ("a.txt", b"overwritten by acme", "text/plain")}),),
    ("DELETE", "/api/kb/{collection}/documents/{doc_id}"): (
        Case(B), Case(B, path={"collection": const("acme_coll")})),
    ("POST", "/api/kb/{collection}/sync"): (
        Case(B, body=body({"directory": "/tmp"})),
        Case(B, path={"collection": const("acme_coll")},
             body=body(lambda w: {"directory": str(w.client.app.state.platform.settings.home / "kb" / "blobs")}),
             ok=frozenset({400, 403}), note="A's collection syncing the server's blob folder"),),
    ("POST", "/api/kb/{collection}/reindex"): (Case(B),),
    ("GET", "/api/kb/{collection}/passages/{passage_id}"): (
        Case(B), Case(B, path={"collection": const("acme_coll")})),
    ("GET", "/api/kb/{collection}/retrieve"): (Case(B, query=lambda w: {"q": "confidential pricing"}),),
    ("POST", "/api/kb/{collection}/chat"): (Case(B, body=body({"messages": MSG})),),
    # -- analytics ---------------------------------------------------------------------------------
    ("GET", "/api/analytics/workspaces"): (Case(OWN, ok=frozenset({200})),),
    ("POST", "/api/analytics/workspaces"): (Case(OWN, body=lambda w, role: {"name": f"acme_w_{role}"}),),
    ("POST", "/api/analytics/demo"): (Case(OWN),),
    ("GET", "/api/analytics/demo-datasets"): (Case(OWN),),
    ("GET", "/api/analytics/workspaces/{ws}"): (Case(B),),
    ("DELETE", "/api/analytics/workspaces/{ws}"): (Case(B),),
    ("GET", "/api/analytics/workspaces/{ws}/context"): (Case(B),),
    ("POST", "/api/analytics/workspaces/{ws}/query"): (
        Case(B, body=body({"sql": "SELECT 1"})),
        Case(B, path={"ws": const("acme_ws")}, body=body({"sql": f"SELECT * FROM {NAMES['dataset']}"}),
             ok=frozenset({400, 404}), note="A's workspace naming B's table"),),
    ("POST", "/api/analytics/workspaces/{ws}/datasets"): (Case(B, files=one_file),),
    ("GET", "/api/analytics/workspaces/{ws}/datasets"): (Case(B),),
    ("POST", "/api/analytics/workspaces/{ws}/datasets/sql"): (
        Case(B, body=body({"source": NAMES["source"], "query": "SELECT 1 AS x", "name": "t"})),
        Case(B, path={"ws": const("acme_ws")},
             body=body({"source": NAMES["source"], "query": "SELECT * FROM t", "name": "t"}),
             ok=frozenset({400, 403, 404}), note="A's workspace, B's data source"),),
    ("POST", "/api/analytics/workspaces/{ws}/datasets/demo"): (Case(B, body=body({"key": "telco"})),),
    ("GET", "/api/analytics/workspaces/{ws}/datasets/{name}"): (
        Case(B, path={"name": const(NAMES["dataset"])}),
        Case(B, path={"ws": const("acme_ws"), "name": const(NAMES["dataset"])}),),
    ("PATCH", "/api/analytics/workspaces/{ws}/datasets/{name}"): (
        Case(B, path={"name": const(NAMES["dataset"])}, body=body({"description": "acme was here"})),),
    ("DELETE", "/api/analytics/workspaces/{ws}/datasets/{name}"): (Case(B, path={"name": const(NAMES["dataset"])}),),
    ("GET", "/api/analytics/workspaces/{ws}/datasets/{name}/rows"): (
        Case(B, path={"name": const(NAMES["dataset"])}),),
    ("GET", "/api/analytics/workspaces/{ws}/datasets/{name}/csv"): (
        Case(B, path={"name": const(NAMES["dataset"])}),
        Case(B, path={"name": const(CONTENT["score_table"])}, note="B's scored table"),),
    ("GET", "/api/analytics/workspaces/{ws}/glossary"): (Case(B),),
    ("PUT", "/api/analytics/workspaces/{ws}/glossary/{term}"): (Case(B, body=body({"definition_en": "acme"})),),
    ("DELETE", "/api/analytics/workspaces/{ws}/glossary/{term}"): (Case(B),),
    ("GET", "/api/analytics/catalogue"): (Case(OWN, ok=frozenset({200})),),
    ("GET", "/api/analytics/catalogue/{key}"): (Case(OWN, ok=frozenset({200})),),
    ("POST", "/api/analytics/runs"): (
        Case(B, body=body({"model": "plan_tree", "workspace": NAMES["ws"], "dataset": "telco"})),),
    ("GET", "/api/analytics/runs"): (Case(OWN, ok=frozenset({200})),),
    ("GET", "/api/analytics/runs/{run_id}"): (Case(B),),
    ("GET", "/api/analytics/runs/{run_id}/charts/{name}.png"): (Case(B, path={"name": ids("chart")}),),
    ("GET", "/api/analytics/runs/{run_id}/model"): (Case(B),),
    ("GET", "/api/analytics/runs/{run_id}/evaluation"): (Case(B),),
    ("POST", "/api/analytics/bind"): (
        Case(B, body=body({"model": "plan_tree", "workspace": NAMES["ws"], "dataset": NAMES["dataset"]})),),
    ("GET", "/api/analytics/runs/{run_id}/plots"): (Case(B),),
    ("GET", "/api/analytics/runs/{run_id}/score-tables"): (
        Case(B, query=lambda w: {"workspace": NAMES["ws"]}),),
    ("POST", "/api/analytics/runs/{run_id}/score"): (
        Case(B, body=body({"workspace": "acme_ws", "dataset": "acme_ds"})),),
    ("GET", "/api/datasources"): (Case(OWN),),
    ("POST", "/api/datasources"): (
        Case(OPERATOR, body=body({"name": "evil", "url": "sqlite:////tmp/evil.db", "tenants": ["*"]})),),
    ("DELETE", "/api/datasources/{name}"): (Case(OPERATOR, path={"name": const(NAMES["source"])}),),
    # -- agent -------------------------------------------------------------------------------------
    ("POST", "/api/agent/ask"): (
        Case(B, body=body({"workspace": NAMES["ws"], "question": "SELECT 1"}), ok=frozenset({400, 403, 404}),
             note="B's workspace (named in the body: a 400)"),
        Case(B, body=body(lambda w: {"workspace": "acme_ws", "question": "SELECT 1",
                                     "session_id": w.ids["agent_session"]}), note="A's workspace, B's conversation"),
        Case(OWN, body=body({"workspace": "acme_ws", "question": f"SELECT * FROM {NAMES['dataset']}"}),
             ok=frozenset({200, 400, 404}), note="A's workspace naming B's table"),
        Case(B, body=body(lambda w: {"workspace": NAMES["ws"], "question": "SELECT 1", "stream": True,
                                     "session_id": w.ids["agent_session"]}), ok=frozenset({400, 403, 404}),
             note="streamed: refused before the first event"),),
    ("GET", "/api/agent/answers/{answer_id}"): (Case(B),),
    ("POST", "/api/agent/answers/{answer_id}/accept"): (Case(B),),
    ("POST", "/api/agent/answers/{answer_id}/correct"): (
        Case(B, body=body({"answer": "acme was here"})),
        Case(B, body=body({"sql": f"SELECT * FROM {NAMES['dataset']}"})),),
    ("GET", "/api/agent/examples"): (
        Case(B, query=lambda w: {"workspace": NAMES["ws"]}),
        Case(OWN, query=lambda w: {"workspace": "acme_ws"}, ok=frozenset({200})),),
    ("POST", "/api/agent/examples"): (
        Case(B, body=body({"workspace": NAMES["ws"], "question": "acme q", "sql": "SELECT 1"}),
             ok=frozenset({400, 403, 404}), note="B's workspace (named in the body: a 400; members: 403)"),
        Case(B, body=body({"workspace": "acme_ws", "question": "acme q", "sql": f"SELECT * FROM {NAMES['dataset']}"}),
             ok=frozenset({400, 403}), note="A's workspace, SQL over B's table"),),
    ("DELETE", "/api/agent/examples"): (
        Case(B, query=lambda w: {"workspace": NAMES["ws"]}),
        Case(B, query=lambda w: {"workspace": "acme_ws", "id": w.ids["agent_example"]},
             note="A's workspace, B's example"),),
    ("GET", "/api/agent/sessions"): (
        Case(OWN, ok=frozenset({200}), echoes_requests=True,
             note="A's own conversations only (their first questions name what A itself sent)"),
        Case(B, query=lambda w: {"workspace": NAMES["ws"]}, note="B's workspace name: a 404, not B's sessions"),),
    ("GET", "/api/agent/sessions/{session_id}"): (Case(B),),
    # -- alignment (datasets, training and models: admins; compare mode: members) ----------------------
    ("GET", "/api/alignment/stages"): (Case(OWN),),
    ("GET", "/api/alignment/datasets"): (Case(OWN),),
    ("POST", "/api/alignment/datasets"): (
        Case(OWN, body=lambda w, role: {"name": NAMES["align_ds"], "kind": "preference"},
             note="B's dataset name: A has no comparisons (400), never B's version"),),
    ("POST", "/api/alignment/datasets/import"): (
        Case(OWN, files=lambda w: {"file": ("a.jsonl", json.dumps({"messages": [
            {"role": "user", "content": "acme q"}, {"role": "assistant", "content": "acme a"}]}).encode())},
             data={"name": "acme_imported", "kind": "sft"}),),
    ("GET", "/api/alignment/datasets/{name}/export"): (
        Case(B, path={"name": const(NAMES["align_ds"])}), Case(B, path={"name": const(NAMES["align_ds"] + "@1")})),
    ("POST", "/api/alignment/jobs"): (
        Case(OWN, body=body({"stage": "dpo", "config": {"dataset": NAMES["align_ds"], "max_steps": 1}}),
             note="B's dataset name resolves in A's tenant (not found there when the job runs)"),
        Case(OWN, body=body({"stage": "dpo", "config": {"dataset": "../t2/bname_q7_align/v1/train.jsonl"}}),
             ok=frozenset({400, 403}), note="a path to B's dataset folder"),),
    ("GET", "/api/alignment/jobs"): (Case(OWN, echoes_requests=True, note="A's own jobs name what A sent"),),
    ("GET", "/api/alignment/jobs/{job_id}"): (Case(B), Case(B, path={"job_id": ids("align_job")})),
    ("POST", "/api/alignment/jobs/{job_id}/cancel"): (Case(B, path={"job_id": ids("align_job")}),),
    ("GET", "/api/alignment/models"): (Case(OWN),),
    ("GET", "/api/alignment/models/{name}"): (Case(B, path={"name": const(NAMES["align_model"])}),),
    ("POST", "/api/alignment/compare"): (Case(OWN, body=body({"prompt": "acme question", "n": 2})),),
    ("GET", "/api/alignment/compare"): (Case(OWN, ok=frozenset({200})),),
    ("GET", "/api/alignment/compare/{compare_id}"): (Case(B),),
    ("POST", "/api/alignment/compare/{compare_id}/answers"): (Case(B, body=body({"text": "acme was here"})),),
    ("POST", "/api/alignment/compare/{compare_id}/rank"): (
        Case(B, body=body(lambda w: {"ranks": {str(a): i + 1 for i, a in enumerate(w.ids["compare_answers"])}})),
        Case(B, path={"compare_id": a_ids("compare")}, ok=frozenset({400, 404}),
             body=body(lambda w: {"ranks": {str(a): i + 1 for i, a in enumerate(w.ids["compare_answers"])}}),
             note="A's comparison, B's answer ids"),),
    # -- ops and console -----------------------------------------------------------------------------
    ("GET", "/healthz"): (Case(PUBLIC, ok=frozenset({200})),),
    ("GET", "/readyz"): (Case(PUBLIC),),
    ("GET", "/metrics"): (Case(PUBLIC, ok=frozenset({403}), note="not loopback, no token"),),
    ("GET", "/api/console/pages"): (Case(PUBLIC, ok=frozenset({200})),),
    ("GET", "/"): (Case(PUBLIC, ok=frozenset({200})),),
}

CALLS = [(method, path, i, role) for (method, path), cases in MATRIX.items() for i in range(len(cases))
         for role in ROLES]


def _format_path(template: str, values: dict[str, Any]) -> str:
    out = template
    for k, v in values.items():
        out = out.replace("{" + k + "}", str(v))
    return out


def _placeholders(template: str) -> list[str]:
    import re

    return re.findall(r"{([^}:]+)(?::[^}]*)?}", template)


def _call(w: World, method: str, template: str, case: Case, role: str):
    values = {}
    for name in _placeholders(template):
        fn = case.path.get(name) or DEFAULT_PATH.get(name)
        assert fn is not None, f"{method} {template}: no value for path parameter {name!r}"
        values[name] = fn(w)
    url = _format_path(template, values)
    headers = fresh_session(w, role) if case.fresh_session else w.headers(role)
    kw: dict[str, Any] = {}
    if case.query:
        kw["params"] = case.query(w)
    if case.body is not None:
        kw["json"] = case.body(w, role)
    if case.files:
        kw["files"] = case.files(w)
        kw["data"] = case.data or {}
    r = w.client.request(method, url, headers=headers, **kw)
    sent = url + json.dumps(kw.get("params", {})) + json.dumps(kw.get("json", {}), default=str)
    return r, sent


def _walk(v: Any, path: str = ""):
    if isinstance(v, dict):
        yield path, v
        for k, x in v.items():
            yield from _walk(x, f"{path}.{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _walk(x, f"{path}[{i}]")


#: id fields that name a resource of one kind: B's id there is B's resource
ID_FIELDS = {"conversation_id": "conv", "turn_id": "turn", "job_id": ("kb_job", "run_job"), "run_id": "run",
             "doc_id": "doc", "document_id": "doc", "key_id": ("key", "admin_key"),
             "user_id": ("admin_user", "member_user"), "tenant_id": "tenant"}


def leaks(w: World, r, sent: str, echoes_requests: bool) -> list[str]:
    """What of B's is in ``r`` (empty when nothing)."""
    text = r.text if not r.headers.get("content-type", "").startswith("image/") else ""
    found = [f"content marker {m!r}" for m in CONTENT.values() if m in text]
    found += [f"credential {s[:8]}..." for s in w.secrets if s in text]
    if not echoes_requests:
        found += [f"name {n!r}" for n in NAMES.values() if n in text and n not in sent]
    try:
        doc = r.json()
    except ValueError:
        return found
    if echoes_requests:
        return found  # audit rows hold the ids A itself sent; only content and credentials count there
    for where, d in _walk(doc):
        if d.get("tenant") == NAMES["tenant"] and NAMES["tenant"] not in sent:
            found.append(f"{where}: tenant {NAMES['tenant']!r}")
        for key, kinds in ID_FIELDS.items():
            if key in d and isinstance(d[key], int):
                for k in (kinds if isinstance(kinds, tuple) else (kinds,)):
                    if d[key] == w.ids[k] and str(w.ids[k]) not in sent:
                        found.append(f"{where}.{key} = B's {k} {d[key]}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("method,path,case_no,role", CALLS,
                         ids=[f"{m} {p} #{i} as {r}" for m, p, i, r in CALLS])
def test_tenant_a_gets_nothing_of_b(world, method, path, case_no, role):
    case = MATRIX[(method, path)][case_no]
    r, sent = _call(world, method, path, case, role)
    detail = f"{method} {path} as A's {role} ({case.note or case.kind}): {r.status_code} {r.text[:400]}"
    assert r.status_code < 500, detail
    assert r.status_code in case.allowed(), detail
    found = leaks(world, r, sent, case.echoes_requests)
    assert not found, f"{detail}\nB's data in the answer: {found}"
    if case.kind == OPERATOR:
        assert "operator" in r.json()["error"]["message"], detail


def _app_routes(world) -> set[tuple[str, str]]:
    app = world.client.app
    found = {(m.upper(), p) for p, item in app.openapi()["paths"].items() for m in item}
    for route in iter_api_routes(app):  # and the routes hidden from the schema
        found |= {(m, route.path_format) for m in (route.methods or ()) if m != "HEAD"}
    return found


def test_every_route_has_an_entry(world):
    routes = _app_routes(world)
    missing = sorted(routes - set(MATRIX))
    assert not missing, "\n".join(f"route {m} {p} has no isolation-matrix entry (add one to MATRIX in "
                                  "tests/security/test_isolation_matrix.py)" for m, p in missing)
    stale = sorted(set(MATRIX) - routes)
    assert not stale, f"MATRIX lists routes the app no longer has: {stale}"


def test_operator_routes_also_refuse_a_plain_member_of_default(world):
    """Operator-only means the role, not the tenant: a member of tenant ``default`` is refused too."""
    c = world.client
    r = c.post("/api/keys", headers=OP, json={"name": "default member key", "role": "member"})
    assert r.status_code == 201, r.text
    member = {"Authorization": f"Bearer {r.json()['key']}"}
    for (method, path), cases in MATRIX.items():
        for case in cases:
            if case.kind == OPERATOR:
                values = {n: (case.path.get(n) or DEFAULT_PATH[n])(world) for n in _placeholders(path)}
                kw = {"json": case.body(world, "member")} if case.body else {}
                got = c.request(method, _format_path(path, values), headers=member, **kw)
                assert got.status_code == 403, (method, path, got.text)


#: B reading its own data through these routes must show B's markers: the detector works and the
#: markers really are in the data A is refused (otherwise the matrix could pass by looking at nothing)
SELF_CHECK = [
    ("member", "/api/conversations/{conv_id}"), ("member", "/api/conversations"), ("admin", "/api/feedback"),
    ("admin", "/api/keys"), ("admin", "/api/users"), ("admin", "/api/jobs"), ("admin", "/api/tenants"),
    ("admin", "/api/kb/collections"), ("admin", "/api/kb/{collection}/documents"),
    ("admin", "/api/kb/{collection}/documents/{doc_id}"), ("admin", "/api/kb/{collection}/passages/{passage_id}"),
    ("admin", "/api/analytics/workspaces"), ("admin", "/api/analytics/workspaces/{ws}/context"),
    ("admin", "/api/analytics/workspaces/{ws}/datasets"), ("admin", "/api/analytics/runs"),
    ("admin", "/api/analytics/workspaces/{ws}/glossary"), ("admin", "/api/datasources"),
    ("admin", "/api/jobs/{job_id}"), ("admin", "/api/analytics/runs/{run_id}"),
    ("admin", "/api/usage?group_by=tenant,key"),
    ("admin", "/api/analytics/workspaces/{ws}/datasets/{name}/rows"),
    ("admin", "/api/analytics/workspaces/{ws}/datasets/{name}/csv"),
    ("admin", "/api/kb/search?q=confidential+pricing"),
    ("admin", "/api/agent/answers/{answer_id}"), ("admin", "/api/agent/sessions/{session_id}"),
    ("admin", "/api/agent/sessions"),
    ("admin", "/api/agent/examples?workspace=bname_q7_ws"),
]


@pytest.mark.parametrize("who,path", SELF_CHECK)
def test_the_detector_sees_b_data_when_b_reads_it(world, who, path):
    values = {n: (NAMES["dataset"] if n == "name" else DEFAULT_PATH[n](world)) for n in _placeholders(path)}
    url = _format_path(path, values)
    r = world.client.get(url, headers=getattr(world.b, who))
    assert r.status_code == 200, (url, r.text)
    assert leaks(world, r, sent="", echoes_requests=False), f"{url} as B shows none of B's markers: {r.text[:300]}"


def test_b_is_intact_after_the_attacks(world):
    """Every B resource still exists, unchanged, for B (an attack must not pass by destroying data)."""
    c, b, ids_ = world.client, world.b, world.ids

    def get(path, headers=b.admin, **kw):
        r = c.get(path, headers=headers, **kw)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r

    conv = get(f"/api/conversations/{ids_['conv']}", headers=b.member).json()
    assert conv["title"] == CONTENT["conv_title"] and CONTENT["prompt"] in json.dumps(conv, ensure_ascii=False)
    fb = get("/api/feedback").json()
    assert any(f.get("comment") == CONTENT["feedback"] for f in (fb if isinstance(fb, list) else fb["items"]))
    keys = {k["id"]: k for k in get("/api/keys").json()}
    assert not keys[ids_["key"]]["revoked"] and not keys[ids_["admin_key"]]["revoked"]
    users = {u["id"]: u for u in get("/api/users").json()}
    assert users[ids_["admin_user"]]["role"] == "admin" and not users[ids_["admin_user"]]["disabled"]
    assert ids_["member_user"] in users
    me = get("/api/me", headers=b.admin_key).json()
    assert me["tenant"] == NAMES["tenant"] and me["role"] == "admin"
    assert get("/api/usage").json()
    coll = get(f"/api/kb/collections/{NAMES['coll']}").json()
    assert coll.get("description") == CONTENT["coll_desc"]
    doc = get(f"/api/kb/{NAMES['coll']}/documents/{ids_['doc']}").json()
    assert doc.get("status") in ("ready", "indexed", "done", "succeeded", None) or doc
    hits = get(f"/api/kb/{NAMES['coll']}/retrieve", params={"q": "confidential pricing"}).json()
    assert hits and CONTENT["doc_text"].split()[0] in json.dumps(hits, ensure_ascii=False)
    assert get(f"/api/kb/{NAMES['coll']}/passages/{ids_['passage']}").json()
    ds = get(f"/api/analytics/workspaces/{NAMES['ws']}/datasets/{NAMES['dataset']}").json()
    assert ds.get("description") == CONTENT["ds_desc"]
    rows = get(f"/api/analytics/workspaces/{NAMES['ws']}/datasets/{NAMES['dataset']}/rows").json()
    assert len(rows["rows"]) == 20
    terms = get(f"/api/analytics/workspaces/{NAMES['ws']}/glossary").json()
    assert any(t["term"] == NAMES["term"] for t in terms)
    get(f"/api/analytics/workspaces/{NAMES['ws']}/datasets/{CONTENT['score_table']}")
    run = get(f"/api/analytics/runs/{ids_['run']}").json()
    assert run["status"] == "succeeded"
    cmp = get(f"/api/alignment/compare/{ids_['compare']}", headers=b.member).json()
    assert cmp["ranking"] == list(reversed(ids_["compare_answers"])) and len(cmp["answers"]) == 2
    assert CONTENT["compare_answer"] in json.dumps(cmp, ensure_ascii=False)
    assert [(d["name"], d["version"]) for d in get("/api/alignment/datasets").json()] == [(NAMES["align_ds"], 1)]
    assert get(f"/api/alignment/models/{NAMES['align_model']}").json()["report"]["note"] == CONTENT["align_metric"]
    exp = get(f"/api/experiments/{ids_['experiment']}").json()["experiment"]
    assert (exp["status"], exp["share"], exp["name"]) == ("running", 0.0, CONTENT["exp_name"])
    assert get(f"/api/analytics/runs/{ids_['run']}/charts/{ids_['chart']}.png").content[:4] == b"\x89PNG"
    for job in ("kb_job", "run_job"):
        if ids_.get(job):
            assert get(f"/api/jobs/{ids_[job]}").json()["status"] == "succeeded"
    ans = get(f"/api/agent/answers/{ids_['agent_answer']}").json()
    assert ans["status"] == "corrected" and ans["correction"]["answer"] == CONTENT["agent_correction"]
    assert [e["id"] for e in get("/api/agent/examples", params={"workspace": NAMES["ws"]}).json()] == \
        [ids_["agent_example"]]
    assert get(f"/api/agent/sessions/{ids_['agent_session']}").json()["answers"][0]["id"] == ids_["agent_answer"]
    tenants = {t["id"]: t for t in c.get("/api/tenants", headers=OP).json()}
    assert not tenants[ids_["tenant"]]["disabled"]
    sources = c.get("/api/datasources", headers=b.admin).json()
    assert NAMES["source"] in json.dumps(sources)


def test_matrix_figures(world, capsys):
    """Routes x roles in the matrix (for docs/benchmarks.md, section Trust)."""
    routes = len(MATRIX)
    cases = sum(len(c) for c in MATRIX.values())
    kinds = {}
    for cs in MATRIX.values():
        for c in cs:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
    with capsys.disabled():
        print(f"\nisolation matrix: {routes} routes x {len(ROLES)} roles = {routes * len(ROLES)} route-roles; "
              f"{cases} cases, {len(CALLS)} calls; cases by kind {kinds}")
    assert len(CALLS) == cases * len(ROLES)
