"""/api/alignment over the real app (TestClient, the echo model): compare mode for members, datasets,
jobs and models for admins, 4xx with messages."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from zhinao.gateway.app import create_app
from zhinao.platform import Platform

OP = {"Authorization": "Bearer zk-admin-test-key-000000000000"}
A = "/api/alignment"


def _bearer(c: TestClient, username: str, tenant: str) -> dict:
    r = c.post("/api/auth/login", json={"username": username, "password": "password-123", "tenant": tenant})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def world(settings):
    with TestClient(create_app(Platform(settings), warm_default=False)) as c:
        tid = c.post("/api/tenants", json={"name": "acme"}, headers=OP).json()["id"]
        for user, role in (("acme-admin", "admin"), ("acme-member", "member"), ("acme-member2", "member")):
            r = c.post("/api/users", json={"username": user, "password": "password-123", "role": role,
                                           "tenant_id": tid}, headers=OP)
            assert r.status_code == 201, r.text
        yield (c, _bearer(c, "acme-admin", "acme"), _bearer(c, "acme-member", "acme"),
               _bearer(c, "acme-member2", "acme"))


def _ranked(c, who, prompt: str, better: str) -> dict:
    """Sample with the echo model (one distinct answer), add a written one, rank it first."""
    r = c.post(f"{A}/compare", json={"prompt": prompt, "n": 3}, headers=who)
    assert r.status_code == 201, r.text
    sess = r.json()
    assert [a["text"] for a in sess["answers"]] == [prompt]  # echo: three draws, one text
    r = c.post(f"{A}/compare/{sess['id']}/answers", json={"text": better}, headers=who)
    assert r.status_code == 201, r.text
    model_a, written = (a["id"] for a in r.json()["answers"])
    r = c.post(f"{A}/compare/{sess['id']}/rank", json={"ranks": {str(written): 1, str(model_a): 2}}, headers=who)
    assert r.status_code == 200, r.text
    assert r.json()["pairs"] == 1
    return r.json()


def test_member_samples_ranks_and_lists(world):
    c, admin, member, other = world
    out = _ranked(c, member, "Can I pause my broadband while abroad?", "Yes, for up to 3 months a year.")
    sid = out["id"]
    # ties and a single answer are 400s that say why
    ids = [a["id"] for a in out["answers"]]
    r = c.post(f"{A}/compare/{sid}/rank", json={"ranks": {str(ids[0]): 1, str(ids[1]): 1}}, headers=member)
    assert r.status_code == 400 and "tie" in r.json()["error"]["message"]
    r = c.post(f"{A}/compare/{sid}/rank", json={"ranks": {str(ids[0]): 1}}, headers=member)
    assert r.status_code == 400 and "one answer" in r.json()["error"]["message"]
    r = c.post(f"{A}/compare", json={"prompt": "hi", "n": 6}, headers=member)
    assert r.status_code == 400 and "2 to 4" in r.json()["error"]["message"]
    # listing: the member's own, not another member's; the admin sees the tenant's
    assert [s["id"] for s in c.get(f"{A}/compare", headers=member).json()] == [sid]
    assert c.get(f"{A}/compare", headers=other).json() == []
    assert c.get(f"{A}/compare/{sid}", headers=other).status_code == 404
    assert [s["id"] for s in c.get(f"{A}/compare?ranked=true", headers=admin).json()] == [sid]
    # the draws were metered under the compare purpose
    rows = c.get("/api/usage?group_by=endpoint", headers=admin).json()["rows"]
    assert {r["endpoint"]: r["requests"] for r in rows}.get("alignment.compare") == 3, rows


def test_member_cannot_train_or_read_datasets(world):
    c, _, member, _ = world
    r = c.post(f"{A}/jobs", json={"stage": "sft", "config": {"dataset": "x"}}, headers=member)
    assert r.status_code == 403, r.text
    for path in ("/datasets", "/jobs", "/models", "/stages"):
        assert c.get(A + path, headers=member).status_code == 403, path
    assert c.post(f"{A}/datasets", json={"name": "x", "kind": "sft"}, headers=member).status_code == 403


def test_admin_builds_exports_and_imports_datasets(world):
    c, admin, member, _ = world
    _ranked(c, member, "Why was I charged twice?", "A duplicate charge is refunded within 5 working days.")
    _ranked(c, member, "How do I port my number?", "Ask for a PAC code; the switch takes one working day.")
    r = c.post(f"{A}/datasets", json={"name": "ranked", "kind": "preference"}, headers=admin)
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["n_train"] + d["n_eval"] == 2 and "path" not in d
    assert d["stats"]["collected"]["compare_rankings"] == 2
    assert [x["name"] for x in c.get(f"{A}/datasets", headers=admin).json()] == ["ranked"]
    r = c.get(f"{A}/datasets/ranked@1/export?split=all", headers=admin)
    assert r.status_code == 200
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert len(rows) == 2 and all({"prompt", "chosen", "rejected"} <= set(x) for x in rows)
    # the exported file imports back as a dataset of the same content
    r = c.post(f"{A}/datasets/import", headers=admin, files={"file": ("ranked.jsonl", r.content)},
               data={"name": "reimported", "kind": "preference"})
    assert r.status_code == 201, r.text
    assert r.json()["n_train"] + r.json()["n_eval"] == 2
    # bad input: a one-sided pair, not JSON, the wrong kind, an unknown dataset, a bad split
    one_sided = json.dumps({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant",
                                                                                     "content": "a"}]})
    for body, msg in ((one_sided, "one-sided"), ("{not json", "not JSON")):
        r = c.post(f"{A}/datasets/import", headers=admin, files={"file": ("bad.jsonl", body.encode())},
                   data={"name": "bad", "kind": "preference"})
        assert r.status_code == 400 and msg in r.json()["error"]["message"], r.text
    r = c.post(f"{A}/datasets", json={"name": "demos", "kind": "sft"}, headers=admin)
    assert r.status_code == 201, r.text  # the written best answers are demonstrations
    assert c.get(f"{A}/datasets/nope/export", headers=admin).status_code == 404
    r = c.get(f"{A}/datasets/..%2F..%2Fetc/export", headers=admin)
    assert r.status_code in (400, 404) and "passwd" not in r.text
    assert c.get(f"{A}/datasets/ranked/export?split=x", headers=admin).status_code == 400
    r = c.post(f"{A}/datasets", json={"name": "empty", "kind": "preference"}, headers=_other_admin(c))
    assert r.status_code == 400 and "no comparisons" in r.json()["error"]["message"]


def _other_admin(c: TestClient) -> dict:
    tid = c.post("/api/tenants", json={"name": "bravo"}, headers=OP).json()["id"]
    c.post("/api/users", json={"username": "bravo-admin", "password": "password-123", "role": "admin",
                               "tenant_id": tid}, headers=OP)
    return _bearer(c, "bravo-admin", "bravo")


def test_jobs_refuse_paths_and_bad_fields_and_show_series(world):
    c, admin, _, _ = world
    r = c.post(f"{A}/jobs", json={"stage": "sft", "config": {"dataset": "/etc/passwd.jsonl"}}, headers=admin)
    assert r.status_code == 400 and "must be a name" in r.json()["error"]["message"]
    r = c.post(f"{A}/jobs", json={"stage": "sft", "config": {"dataset": "d", "base_model": "../x"}}, headers=admin)
    assert r.status_code == 400
    r = c.post(f"{A}/jobs", json={"stage": "sft", "config": {"dataset": "d", "lora_rr": 3}}, headers=admin)
    assert r.status_code == 400 and "lora_rr" in r.json()["error"]["message"]
    r = c.post(f"{A}/jobs", json={"stage": "xyz", "config": {}}, headers=admin)
    assert r.status_code == 400
    assert "sft" in c.get(f"{A}/stages", headers=admin).json()
    # a valid config for a dataset that does not exist: accepted, then the job fails with the reason
    r = c.post(f"{A}/jobs", json={"stage": "dpo", "config": {"dataset": "missing", "max_steps": 2}}, headers=admin)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 60
    while (job := c.get(f"{A}/jobs/{job_id}", headers=admin).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "failed" and "missing" in (job["error"] or ""), job
    assert job["stage"] == "dpo" and job["series"] == [] and "params" not in job
    assert [j["id"] for j in c.get(f"{A}/jobs", headers=admin).json()] == [job_id]
    # the audit row says which stage was submitted (and never the config's values)
    rows = c.get("/api/audit", headers=admin, params={"route": "/api/alignment/jobs", "status": 202}).json()
    rows = rows if isinstance(rows, list) else rows.get("items", rows.get("rows", []))
    assert rows and rows[0]["detail"] == {"fields": ["config", "stage"], "values": {"stage": "dpo"}}, rows
    assert c.post(f"{A}/jobs/{job_id}/cancel", headers=admin).status_code == 409  # already finished
    # the series the trainer's callback writes (progress.jsonl in the job's run folder) come back for the charts
    svc = c.app.state.platform.alignment
    run = svc.run_dir(job["tenant_id"], f"job{job_id}")
    run.mkdir(parents=True, exist_ok=True)
    logged = [{"step": 1, "t": 0.5, "loss": 0.69, "objective/kl": 0.0}, {"step": 2, "t": 1.0, "loss": 0.61,
                                                                         "objective/kl": 0.02}]
    (run / "progress.jsonl").write_text("".join(json.dumps(x) + "\n" for x in logged) + '{"step": 3, "lo',
                                        encoding="utf-8")  # a line being written is skipped
    job = c.get(f"{A}/jobs/{job_id}", headers=admin).json()
    assert job["series"] == logged and job["chart_keys"] == ["loss", "objective/kl"]
    # another tenant's admin: the job is not there
    assert c.get(f"{A}/jobs/{job_id}", headers=_other_admin(c)).status_code == 404


def test_models_and_their_report(world):
    c, admin, _, _ = world
    svc = c.app.state.platform.alignment
    tid = c.get("/api/me", headers=admin).json()["tenant_id"]
    svc.register_model(tid, "acme-rm", stage="rm", base="/srv/models/smol", path="/srv/runs/acme-rm",
                       dataset_id=None, job_id=None, config={}, metrics={"pair_accuracy": 0.75, "n": 40})
    models = c.get(f"{A}/models", headers=admin).json()
    assert [m["name"] for m in models] == ["acme-rm"] and "path" not in models[0] and models[0]["base"] == "smol"
    m = c.get(f"{A}/models/acme-rm", headers=admin).json()
    assert m["report"]["pair_accuracy"] == 0.75
    assert c.get(f"{A}/models/nope", headers=admin).status_code == 404
