"""A/B experiments: a share of a tenant's traffic for the base model goes to a candidate (issue 13 item 8).

Real app, real SQLite, two echo models registered under two names behind the real
ModelManager; the console route records each turn with the model that really answered, and
the comparison is computed from feedback rows made through the feedback route.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from zhinao.gateway.app import create_app
from zhinao.maas.experiments import ExperimentService, newcombe, wilson
from zhinao.platform import Platform
from zhinao.store.models import ChatTurn, Conversation

OP = {"Authorization": "Bearer zk-admin-test-key-000000000000"}
MODELS = '''
[[models]]
name = "base-m"
backend = "echo"

[[models]]
name = "cand-m"
backend = "echo"
'''


@pytest.fixture
def world(settings):
    settings.models_path.parent.mkdir(parents=True, exist_ok=True)
    settings.models_path.write_text(MODELS, encoding="utf-8")
    p = Platform(settings.model_copy(update={"default_model": "base-m"}))
    c = TestClient(create_app(p, warm_default=False))
    c.__enter__()
    t = {}
    for name in ("acme", "bravo"):
        tid = p.tenancy.create_tenant(name)["id"]
        heads = {}
        for role in ("admin", "member"):
            u = p.tenancy.create_user(tid, f"{name}-{role}", "password-123", role)
            k = p.tenancy.create_key(tid, user_id=u["id"], role=role, name=role)
            heads[role] = {"Authorization": f"Bearer {k['key']}"}
        t[name] = {"id": tid, **heads}
    yield p, c, t
    c.__exit__(None, None, None)


def _send(c: TestClient, headers: dict, conv_id: int, text: str, model: str | None = None) -> dict:
    body = {"content": text} if model is None else {"content": text, "model": model}
    r = c.post(f"/api/conversations/{conv_id}/messages", json=body, headers=headers)
    assert r.status_code == 200, r.text
    events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and "{" in line]
    done = next(e for e in events if e.get("type") == "done")
    return done


def _turn_model(p: Platform, turn_id: int) -> str:
    with p.db.session() as s:
        return s.get(ChatTurn, turn_id).model


def test_share_splits_conversations_and_each_stays_on_its_arm(world):
    p, c, t = world
    a = t["acme"]
    r = c.post("/api/experiments", json={"base": "base-m", "candidate": "cand-m", "share": 0.3}, headers=a["admin"])
    assert r.status_code == 201, r.text
    exp = r.json()
    svc = ExperimentService(p.db, p.models)
    arms = [svc.arm(a["id"], "base-m", conversation_id=i) for i in range(1, 201)]
    n_cand = sum(1 for x in arms if x == "cand-m")
    assert 40 <= n_cand <= 80, n_cand  # ~30% of 200 (binomial sd 6.5)
    assert set(arms) == {"cand-m", None}
    # other tenants, other models: untouched
    assert all(svc.arm(t["bravo"]["id"], "base-m", conversation_id=i) is None for i in range(1, 50))
    assert all(svc.arm(a["id"], "cand-m", conversation_id=i) is None for i in range(1, 50))
    # through the console route: the turn records the model that answered; two turns, one arm
    seen = {}
    for k in range(12):
        conv = c.post("/api/conversations", json={}, headers=a["member"]).json()
        models = {_turn_model(p, _send(c, a["member"], conv["id"], f"hello {k} {j}")["turn_id"]) for j in range(2)}
        assert len(models) == 1, models
        expected = svc.arm(a["id"], "base-m", conversation_id=conv["id"]) or "base-m"
        assert models == {expected}
        seen[conv["id"]] = expected
        with p.db.session() as s:  # the conversation keeps asking for the base model (rollback must win)
            assert s.get(Conversation, conv["id"]).model == "base-m"
    assert exp["share"] == 0.3
    # a share of 1 sends every new conversation to the candidate, 0 none
    assert c.patch(f"/api/experiments/{exp['id']}", json={"share": 1.0}, headers=a["admin"]).status_code == 200
    conv = c.post("/api/conversations", json={}, headers=a["member"]).json()
    assert _turn_model(p, _send(c, a["member"], conv["id"], "all in")["turn_id"]) == "cand-m"


def test_rollback_sends_everything_to_base(world):
    p, c, t = world
    a = t["acme"]
    exp = c.post("/api/experiments", json={"base": "base-m", "candidate": "cand-m", "share": 1.0},
                 headers=a["admin"]).json()
    conv = c.post("/api/conversations", json={}, headers=a["member"]).json()
    assert _turn_model(p, _send(c, a["member"], conv["id"], "before")["turn_id"]) == "cand-m"
    r = c.post(f"/api/experiments/{exp['id']}/rollback", headers=a["admin"])
    assert r.status_code == 200 and r.json()["status"] == "rolled_back", r.text
    assert r.json()["share"] == 0.0
    assert _turn_model(p, _send(c, a["member"], conv["id"], "after")["turn_id"]) == "base-m"
    svc = ExperimentService(p.db, p.models)
    assert all(svc.arm(a["id"], "base-m", conversation_id=i) is None for i in range(1, 201))
    # /v1 too (no conversation: the user keeps the arm; after rollback, base)
    r = c.post("/v1/chat/completions", json={"model": "base-m", "messages": [{"role": "user", "content": "x"}]},
               headers=a["member"])
    assert r.status_code == 200, r.text
    with p.db.session() as s:
        last = s.scalars(select(ChatTurn).where(ChatTurn.tenant_id == a["id"]).order_by(ChatTurn.id.desc())).first()
        assert last.model == "base-m"
    # the ended experiment cannot be re-opened by a share change; a new one can start
    assert c.patch(f"/api/experiments/{exp['id']}", json={"share": 0.5}, headers=a["admin"]).status_code == 409
    assert c.post("/api/experiments", json={"base": "base-m", "candidate": "cand-m", "share": 0.5},
                  headers=a["admin"]).status_code == 201


def test_default_model_requests_are_in_the_experiment(world):
    p, c, t = world
    a = t["acme"]
    c.post("/api/experiments", json={"base": "base-m", "candidate": "cand-m", "share": 1.0}, headers=a["admin"])
    r = c.post("/v1/chat/completions", json={"model": "default", "messages": [{"role": "user", "content": "x"}]},
               headers=a["member"])
    assert r.status_code == 200, r.text
    with p.db.session() as s:
        last = s.scalars(select(ChatTurn).where(ChatTurn.tenant_id == a["id"]).order_by(ChatTurn.id.desc())).first()
        assert last.model == "cand-m"


def test_wilson_and_newcombe_match_published_values():
    # Newcombe (1998), Statistics in Medicine 17:857, tables I and II
    lo, hi = wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    lo, hi = wilson(0, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.0, 0.2775)
    lo, hi = newcombe(48, 80, 56, 70)  # p2 - p1 = 0.8 - 0.6
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def test_compare_counts_rated_turns_and_intervals(world):
    p, c, t = world
    a = t["acme"]
    exp = c.post("/api/experiments", json={"base": "base-m", "candidate": "cand-m", "share": 0.5},
                 headers=a["admin"]).json()
    svc = ExperimentService(p.db, p.models)
    ups = {"base-m": [1, 1, -1, -1, -1, 1, None], "cand-m": [1, 1, 1, 1, -1, None, None, None]}
    got = {"base-m": [], "cand-m": []}
    i = 0
    while any(len(got[m]) < len(ups[m]) for m in got):
        conv = c.post("/api/conversations", json={}, headers=a["member"]).json()
        arm = svc.arm(a["id"], "base-m", conversation_id=conv["id"]) or "base-m"
        i += 1
        if len(got[arm]) >= len(ups[arm]):
            continue
        turn = _send(c, a["member"], conv["id"], f"q{i}")["turn_id"]
        rating = ups[arm][len(got[arm])]
        if rating is not None:
            r = c.post(f"/api/turns/{turn}/feedback", json={"rating": rating}, headers=a["member"])
            assert r.status_code == 200, r.text
        got[arm].append(turn)
    # a second person's 👎 on a candidate 👍 turn: mean 0, no longer a 👍
    r = c.post(f"/api/turns/{got['cand-m'][0]}/feedback", json={"rating": -1}, headers=a["admin"])
    assert r.status_code == 200
    # a turn of tenant bravo never counts for acme
    conv_b = c.post("/api/conversations", json={}, headers=t["bravo"]["member"]).json()
    _send(c, t["bravo"]["member"], conv_b["id"], "bravo")
    r = c.get(f"/api/experiments/{exp['id']}", headers=a["admin"])
    assert r.status_code == 200, r.text
    cmp = r.json()
    b, cd = cmp["arms"]["base"], cmp["arms"]["candidate"]
    assert (b["turns"], b["rated"], b["thumbs_up"]) == (7, 6, 3)
    assert (cd["turns"], cd["rated"], cd["thumbs_up"]) == (8, 5, 3)
    assert b["up_rate"] == 0.5 and cd["up_rate"] == 0.6
    assert b["ci95"] == [round(x, 4) for x in wilson(3, 6)]
    assert cd["ci95"] == [round(x, 4) for x in wilson(3, 5)]
    lo, hi = newcombe(3, 6, 3, 5)
    assert cmp["difference"]["candidate_minus_base"] == 0.1
    assert cmp["difference"]["ci95"] == [round(lo, 4), round(hi, 4)] and lo < 0 < hi
    assert cmp["difference"]["significant"] is False


def test_admin_only_and_tenant_isolation(world):
    p, c, t = world
    a, b = t["acme"], t["bravo"]
    body = {"base": "base-m", "candidate": "cand-m", "share": 0.3}
    assert c.post("/api/experiments", json=body, headers=a["member"]).status_code == 403
    assert c.get("/api/experiments", headers=a["member"]).status_code == 403
    exp = c.post("/api/experiments", json=body, headers=a["admin"]).json()
    for method, path, kw in (("get", f"/api/experiments/{exp['id']}", {}),
                             ("patch", f"/api/experiments/{exp['id']}", {"json": {"share": 0.9}}),
                             ("post", f"/api/experiments/{exp['id']}/rollback", {})):
        assert getattr(c, method)(path, headers=a["member"], **kw).status_code == 403
        assert getattr(c, method)(path, headers=b["admin"], **kw).status_code == 404
    assert c.get("/api/experiments", headers=b["admin"]).json() == []
    assert c.get("/api/experiments", params={"tenant_id": a["id"]}, headers=b["admin"]).status_code == 403
    assert c.post("/api/experiments", json={**body, "tenant_id": a["id"]}, headers=b["admin"]).status_code == 403
    # untouched by B's attempts
    e = ExperimentService(p.db).get(a["id"])
    assert (e["status"], e["share"]) == ("running", 0.3)
    # the operator sees and acts on any tenant's, and the write is audited
    assert c.get(f"/api/experiments/{exp['id']}", headers=OP).status_code == 200
    assert [x["id"] for x in c.get("/api/experiments", params={"tenant_id": a["id"]}, headers=OP).json()] == [exp["id"]]
    r = c.post(f"/api/experiments/{exp['id']}/rollback", headers=OP)
    assert r.status_code == 200 and r.json()["status"] == "rolled_back"
    routes = [(x["method"], x["route"], x["status"]) for x in p.audit.list(limit=1000)["rows"]]
    assert ("POST", "/api/experiments/{experiment_id}/rollback", 200) in routes
    assert ("POST", "/api/experiments", 201) in routes


def test_bad_input(world):
    p, c, t = world
    a = t["acme"]["admin"]
    ok = {"base": "base-m", "candidate": "cand-m", "share": 0.3}
    for bad, status in (({**ok, "share": 1.5}, {400, 422}), ({**ok, "share": -0.1}, {400, 422}),
                        ({**ok, "candidate": "base-m"}, {400}), ({**ok, "candidate": "nope"}, {404})):
        r = c.post("/api/experiments", json=bad, headers=a)
        assert r.status_code in status, (bad, r.status_code, r.text)
    assert c.post("/api/experiments", json=ok, headers=a).status_code == 201
    assert c.post("/api/experiments", json=ok, headers=a).status_code == 409  # one running per tenant
    assert c.get("/api/experiments/999999", headers=a).status_code == 404
    # a candidate the tenant is not granted is refused
    p.tenancy.update_tenant(t["bravo"]["id"], models=["base-m"])
    r = c.post("/api/experiments", json=ok, headers=t["bravo"]["admin"])
    assert r.status_code == 403 and "cand-m" in r.text, r.text


def test_cli_ab_start_status_rollback(settings):
    """``zhinao align ab``: the same service from the command line (tenant default, as the operator)."""
    from typer.testing import CliRunner

    from zhinao.cli.align import app

    settings.models_path.parent.mkdir(parents=True, exist_ok=True)
    settings.models_path.write_text(MODELS, encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(app, ["ab", "start", "--base", "base-m", "--candidate", "cand-m", "--share", "0.25", "--json"])
    assert r.exit_code == 0, r.output
    exp = json.loads(r.output)
    assert (exp["base"], exp["candidate"], exp["share"], exp["status"]) == ("base-m", "cand-m", 0.25, "running")
    r = runner.invoke(app, ["ab", "start", "--base", "base-m", "--candidate", "cand-m", "--share", "0.5"])
    assert r.exit_code != 0 and "already running" in r.output
    r = runner.invoke(app, ["ab", "share", "0.25", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["share"] == 0.25, r.output
    r = runner.invoke(app, ["ab", "share", "2"])
    assert r.exit_code != 0 and "share" in r.output
    p = Platform(settings)
    tid = p.tenancy.tenant_by_name("default")["id"]
    conv = p.conversations.create(tid, None)["id"]
    cand = ExperimentService(p.db, p.models).arm(tid, "base-m", conversation_id=conv) or "base-m"
    turn = p.conversations.record_turn(tenant_id=tid, user_id=None, key_id=None, model=cand, messages=[],
                                       params={}, response="r", tool_calls=None, finish_reason="stop",
                                       prompt_tokens=1, completion_tokens=1, latency_ms=1.0, conversation_id=conv)
    p.conversations.feedback(turn, tid, None, rating=1)
    r = runner.invoke(app, ["ab", "status", "--json"])
    assert r.exit_code == 0, r.output
    arms = json.loads(r.output)["arms"]
    arm = "candidate" if cand == "cand-m" else "base"
    assert (arms[arm]["turns"], arms[arm]["rated"], arms[arm]["thumbs_up"]) == (1, 1, 1)
    r = runner.invoke(app, ["ab", "status"])
    assert r.exit_code == 0 and "not enough ratings" in r.output, r.output
    r = runner.invoke(app, ["ab", "rollback", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["status"] == "rolled_back"
    assert ExperimentService(p.db, p.models).arm(tid, "base-m", conversation_id=conv) is None
