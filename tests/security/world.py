"""A small platform with every kind of resource in tenant B, for the isolation matrix.

Built once per test module through the real API (echo model, hash embedder): tenant A
("acme") is the attacker with a member, an admin and an admin API key; tenant B ("bravo")
owns a conversation with a turn and feedback, keys, users, usage rows, a collection with a
member, a document and its passages, a workspace with an uploaded dataset, a glossary term,
a finished analytics run with charts, a model file and a scored table, and the jobs behind
them. A few resources of A's own exist too, for attacks that put B's ids into the body of a
request about A's resource.

B's text carries markers. *Content* markers are never typed by A, so they must never
appear in anything A gets back; *name* markers (collection, workspace, usernames, ...) are
what A puts into its attack requests, so they only count when A did not send them.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from two_tenants import OP, Tenant, bearer, login, make_tenant

#: B's text that A never sends: none of it may appear in any answer A gets
CONTENT = {
    "conv_title": "bcontent-q7-conversation-title",
    "prompt": "bcontent-q7-prompt words about a secret merger",
    "feedback": "bcontent-q7-feedback-comment",
    "corrected": "bcontent-q7-corrected-answer",
    "key_name": "bcontent-q7-key-name",
    "coll_desc": "bcontent-q7-collection-description",
    "doc_text": "bcontent-q7-document-text confidential pricing plan",
    "doc_title": "bcontent-q7-document-title",
    "ws_desc": "bcontent-q7-workspace-description",
    "ds_desc": "bcontent-q7-dataset-description",
    "cell": "bcontent-q7-cell",
    "column": "bcontent_q7_column",
    "term_def": "bcontent-q7-glossary-definition",
    "score_table": "bcontent_q7_scored",
    "source_desc": "bcontent-q7-data-source-description",
    "agent_correction": "bcontent-q7-agent-correction",
    "exp_name": "bcontent-q7-experiment-name",
    "compare_prompt": "bcontent-q7-compare-prompt",
    "compare_answer": "bcontent-q7-compare-written-answer",
    "align_metric": "bcontent-q7-aligned-model-note",
}
#: B's names: A types them into attack requests, so they count only where A did not send them
NAMES = {
    "tenant": "bravo",
    "coll": "bname_q7_coll",
    "ws": "bname_q7_ws",
    "dataset": "bname_q7_ds",
    "term": "bname_q7_term",
    "admin_user": "bravo-admin",
    "member_user": "bravo-member",
    "source": "bname_q7_src",
    "align_ds": "bname_q7_align",
    "align_model": "bname_q7_aligned",
}


@dataclass
class World:
    client: TestClient
    a: Tenant
    b: Tenant
    ids: dict[str, Any] = field(default_factory=dict)  #: B's resource ids by kind
    a_ids: dict[str, Any] = field(default_factory=dict)  #: A's own resources
    secrets: list[str] = field(default_factory=list)  #: B's credentials (keys, session tokens)

    def headers(self, role: str) -> dict:
        return {"member": self.a.member, "admin": self.a.admin, "key": self.a.admin_key}[role]


def _ok(r, *codes: int):
    assert r.status_code in (codes or (200, 201, 202)), (r.request.method, str(r.request.url), r.status_code, r.text)
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r


def _sse_turn(c: TestClient, headers: dict, conv: int, content: str) -> int:
    with c.stream("POST", f"/api/conversations/{conv}/messages", headers=headers, json={"content": content}) as r:
        assert r.status_code == 200, r.read()
        events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    assert events[-1]["type"] == "done", events
    return events[0]["turn_id"]


def _wait(c: TestClient, headers: dict, path: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = _ok(c.get(path, headers=headers))
        if d["status"] not in ("queued", "running"):
            return d
        time.sleep(0.2)
    raise AssertionError(f"{path} did not finish")


def build_world(c: TestClient) -> World:
    a, b = make_tenant(c, "acme"), make_tenant(c, "bravo")
    w = World(c, a, b)
    ids = w.ids
    ids["tenant"] = b.id
    ids["admin_user"], ids["member_user"] = b.admin_user_id, b.member_user_id
    w.secrets += [b.admin["Authorization"][7:], b.member["Authorization"][7:], b.admin_key["Authorization"][7:]]

    # -- chat: conversation, turn, feedback, usage ------------------------------------------------
    conv = _ok(c.post("/api/conversations", headers=b.member, json={"title": CONTENT["conv_title"]}))
    ids["conv"] = conv["id"]
    ids["turn"] = _sse_turn(c, b.member, conv["id"], CONTENT["prompt"])
    _ok(c.post(f"/api/turns/{ids['turn']}/feedback", headers=b.member,
               json={"rating": -1, "comment": CONTENT["feedback"], "corrected_answer": CONTENT["corrected"]}))
    v1 = _ok(c.post("/v1/chat/completions", headers=b.admin_key,
                    json={"model": "echo", "messages": [{"role": "user", "content": CONTENT["prompt"]}]}))
    ids["completion"] = v1["id"]

    # -- keys -----------------------------------------------------------------------------------
    k = _ok(c.post("/api/keys", headers=b.admin, json={"name": CONTENT["key_name"]}), 201)
    ids["key"] = k["id"]
    w.secrets.append(k["key"])
    ids["admin_key"] = next(x["id"] for x in _ok(c.get("/api/keys", headers=b.admin))
                            if x["name"] == "automation")

    # -- knowledge: collection, member, document, passages, ingestion job ---------------------------
    _ok(c.post("/api/kb/collections", headers=b.admin,
               json={"name": NAMES["coll"], "description": CONTENT["coll_desc"], "visibility": "private"}), 201)
    _ok(c.put(f"/api/kb/collections/{NAMES['coll']}/members/{b.member_user_id}", headers=b.admin,
              json={"can_write": True}))
    doc = (CONTENT["doc_text"] + "\n\n") * 3
    up = _ok(c.post(f"/api/kb/{NAMES['coll']}/documents", headers=b.admin, data={"wait": "true",
                    "title": CONTENT["doc_title"]}, files={"files": ("bnotes.txt", doc.encode(), "text/plain")}), 202)
    ids["kb_job"] = up.get("job_id")
    docs = _ok(c.get(f"/api/kb/{NAMES['coll']}/documents", headers=b.admin))
    docs = docs["documents"] if isinstance(docs, dict) else docs
    ids["doc"] = docs[0]["id"]
    hits = _ok(c.get(f"/api/kb/{NAMES['coll']}/retrieve", headers=b.admin, params={"q": "confidential pricing"}))
    ids["passage"] = hits[0]["passage_id"] if "passage_id" in hits[0] else hits[0]["id"]

    # -- analytics: workspace, dataset, glossary, run, charts, model, scored table, run job -------------
    _ok(c.post("/api/analytics/workspaces", headers=b.admin, json={"name": NAMES["ws"],
                                                                  "description": CONTENT["ws_desc"]}), 201)
    csv = f"id,{CONTENT['column']},v\n" + "".join(f"{i},{CONTENT['cell']}-{i},{i * 3}\n" for i in range(20))
    _ok(c.post(f"/api/analytics/workspaces/{NAMES['ws']}/datasets", headers=b.admin,
               files={"file": ("b.csv", csv.encode(), "text/csv")},
               data={"name": NAMES["dataset"], "description": CONTENT["ds_desc"]}), 201)
    _ok(c.put(f"/api/analytics/workspaces/{NAMES['ws']}/glossary/{NAMES['term']}", headers=b.admin,
              json={"definition_en": CONTENT["term_def"]}))
    _ok(c.post(f"/api/analytics/workspaces/{NAMES['ws']}/datasets/demo", headers=b.admin, json={"key": "telco"}), 201)
    run = _ok(c.post("/api/analytics/runs", headers=b.admin, json={
        "model": "plan_tree", "workspace": NAMES["ws"], "dataset": "telco", "score_table": CONTENT["score_table"]}),
        202)
    run = _wait(c, b.admin, f"/api/analytics/runs/{run['id']}")
    assert run["status"] == "succeeded", run
    ids["run"], ids["run_job"], ids["chart"] = run["id"], run["job_id"], run["charts"][0]

    # -- agent: a conversation over B's workspace, an answer B corrected, B's example library ---------
    # (the echo model answers with the question, so a question that is SQL runs as that SQL)
    ans = _ok(c.post("/api/agent/ask", headers=b.admin, json={
        "workspace": NAMES["ws"], "question": f"SELECT id, {CONTENT['column']} FROM {NAMES['dataset']} ORDER BY id"}))
    ids["agent_answer"], ids["agent_session"] = ans["answer_id"], ans["session_id"]
    fixed = _ok(c.post(f"/api/agent/answers/{ans['answer_id']}/correct", headers=b.admin, json={
        "sql": f"SELECT {CONTENT['column']} FROM {NAMES['dataset']}", "answer": CONTENT["agent_correction"]}))
    ids["agent_example"] = fixed["example_id"]

    # -- a data source the operator registered and granted to B only ----------------------------------
    import sqlite3

    src_db = c.app.state.platform.settings.home / "bsource.db"
    with sqlite3.connect(src_db) as db:
        db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    _ok(c.post("/api/datasources", headers=OP, json={"name": NAMES["source"], "url": f"sqlite:///{src_db}",
                                                    "tenants": ["bravo"], "description": CONTENT["source_desc"]}),
        201)

    # -- an A/B experiment of B's (share 0: B's traffic is unchanged) ----------------------------------
    _ok(c.post("/api/models", headers=OP, json={"name": "echo-candidate", "backend": "echo"}), 201)
    ids["experiment"] = _ok(c.post("/api/experiments", headers=b.admin, json={
        "base": "echo", "candidate": "echo-candidate", "share": 0.0, "name": CONTENT["exp_name"]}), 201)["id"]

    # -- alignment: a ranked comparison, a preference dataset from it, a failed job, an aligned model ---
    cmp = _ok(c.post("/api/alignment/compare", headers=b.member, json={"prompt": CONTENT["compare_prompt"], "n": 2}),
              201)
    cmp = _ok(c.post(f"/api/alignment/compare/{cmp['id']}/answers", headers=b.member,
                     json={"text": CONTENT["compare_answer"]}), 201)
    ids["compare"], ids["compare_answers"] = cmp["id"], [x["id"] for x in cmp["answers"]]
    _ok(c.post(f"/api/alignment/compare/{cmp['id']}/rank", headers=b.member,
               json={"ranks": {str(x): i + 1 for i, x in enumerate(reversed(ids["compare_answers"]))}}))
    _ok(c.post("/api/alignment/datasets", headers=b.admin, json={"name": NAMES["align_ds"], "kind": "preference"}),
        201)
    job = _ok(c.post("/api/alignment/jobs", headers=b.admin,  # no such dataset: the job fails at once
                     json={"stage": "dpo", "config": {"dataset": "bname_q7_nodata", "max_steps": 1}}), 202)
    ids["align_job"] = job["job_id"]
    _wait(c, b.admin, f"/api/alignment/jobs/{job['job_id']}")
    c.app.state.platform.alignment.register_model(
        b.id, NAMES["align_model"], stage="rm", base="smollm2-135m", path=str(c.app.state.platform.settings.home),
        dataset_id=None, job_id=None, config={}, metrics={"note": CONTENT["align_metric"], "pair_accuracy": 0.5})

    # -- A's own resources (targets for attacks that carry B's ids in a body) ---------------------------
    aid = w.a_ids
    aid["conv"] = _ok(c.post("/api/conversations", headers=a.admin, json={"title": "acme conv"}))["id"]
    aid["turn"] = _sse_turn(c, a.admin, aid["conv"], "acme question")
    _ok(c.post("/api/kb/collections", headers=a.admin, json={"name": "acme_coll"}), 201)
    _ok(c.post("/api/analytics/workspaces", headers=a.admin, json={"name": "acme_ws"}), 201)
    _ok(c.post("/api/analytics/workspaces/acme_ws/datasets", headers=a.admin,
               files={"file": ("a.csv", b"x,y\n1,2\n3,4\n", "text/csv")}, data={"name": "acme_ds"}), 201)
    aid["member_user"] = a.member_user_id
    aid["compare"] = _ok(c.post("/api/alignment/compare", headers=a.admin, json={"prompt": "acme compare", "n": 2}),
                         201)["id"]
    return w


def fresh_session(w: World, role: str) -> dict:
    """A new console session of A's member or admin (for routes that end the session they use)."""
    if role == "key":
        return w.a.admin_key
    user = f"acme-{'admin' if role == 'admin' else 'member'}"
    return bearer(login(w.client, user, tenant="acme"))


@contextlib.contextmanager
def isolated_env(home) -> Any:
    """ZHINAO_* for one installation under ``home`` (module-scoped; restores the environment after)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("ZHINAO_")}
    for k in saved:
        del os.environ[k]
    os.environ.update({"ZHINAO_HOME": str(home), "ZHINAO_DEFAULT_MODEL": "echo", "ZHINAO_EMBEDDING_MODEL": "hash",
                       "ZHINAO_ADMIN_KEY": OP["Authorization"][7:], "ZHINAO_ADMIN_PASSWORD": "admin-password",
                       "ZHINAO_ENV": "test"})
    from zhinao.settings import get_settings

    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        for k in [k for k in os.environ if k.startswith("ZHINAO_")]:
            del os.environ[k]
        os.environ.update(saved)
        get_settings.cache_clear()

