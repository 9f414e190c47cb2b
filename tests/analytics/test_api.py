"""/api/analytics through the real app (in-process ASGI client, real store, real DuckDB)."""

from __future__ import annotations

import io
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.conftest import require, require_module

ADMIN_KEY = "zk-admin-test-key-000000000000"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
GBK_CSV = "用户编号,套餐,月费,入网日期\nU1,畅享,58,2023-01-01\nU2,智享,88,2023-02-01\nU3,畅享,128,2023-03-01\n".encode("gbk")


@pytest.fixture
def client(settings):
    from zhinao.gateway.app import create_app
    from zhinao.platform import Platform

    with TestClient(create_app(Platform(settings), warm_default=False)) as c:
        yield c


def _wait(client, run_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = client.get(f"/api/analytics/runs/{run_id}", headers=AUTH).json()
        if r["status"] in ("succeeded", "failed"):
            return r
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


def test_workspace_upload_profile_describe_glossary(client):
    assert client.get("/api/analytics/workspaces").status_code == 401
    r = client.post("/api/analytics/workspaces", json={"name": "sales"}, headers=AUTH)
    assert r.status_code == 201
    r = client.post("/api/analytics/workspaces/sales/datasets", headers=AUTH,
                    files={"file": ("套餐.csv", GBK_CSV, "text/csv")}, data={"name": "plans"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["source_detail"]["encoding"] == "gb18030" and ds["rows"] == 3
    cols = {c["name"]: c for c in ds["profile"]["columns"]}
    assert cols["入网日期"]["kind"] == "datetime" and cols["套餐"]["top_values"][0] == {"value": "畅享", "count": 2}
    r = client.patch("/api/analytics/workspaces/sales/datasets/plans", headers=AUTH, json={"columns": {"月费": "月费（元）"}})
    assert r.json()["column_descriptions"] == {"月费": "月费（元）"}
    r = client.patch("/api/analytics/workspaces/sales/datasets/plans", headers=AUTH, json={"columns": {"nope": "x"}})
    assert r.status_code == 400 and "'nope'" in r.json()["error"]["message"]
    rows = client.get("/api/analytics/workspaces/sales/datasets/plans/rows?limit=2", headers=AUTH).json()
    assert rows["columns"][0] == "用户编号" and len(rows["rows"]) == 2
    q = client.post("/api/analytics/workspaces/sales/query", headers=AUTH,
                    json={"sql": 'SELECT SUM("月费") AS total FROM plans'}).json()
    assert q["rows"] == [[274]]
    assert client.post("/api/analytics/workspaces/sales/query", headers=AUTH,
                       json={"sql": "DELETE FROM plans"}).status_code == 400
    terms = client.get("/api/analytics/workspaces/sales/glossary", headers=AUTH).json()
    assert "ARPU" in {t["term"] for t in terms}
    r = client.put("/api/analytics/workspaces/sales/glossary/出账用户", headers=AUTH,
                   json={"definition_zh": "当月出账的用户", "term_en": "Billed users"})
    assert r.status_code == 200
    ctx = client.get("/api/analytics/workspaces/sales/context", headers=AUTH).json()["context"]
    assert "月费（元）" in ctx and "出账用户" in ctx
    csv = client.get("/api/analytics/workspaces/sales/datasets/plans/csv", headers=AUTH)
    assert csv.headers["content-type"].startswith("text/csv")
    assert pd.read_csv(io.BytesIO(csv.content), encoding="utf-8-sig")["套餐"].tolist() == ["畅享", "智享", "畅享"]


def test_bad_uploads_get_clear_4xx(client):
    client.post("/api/analytics/workspaces", json={"name": "w"}, headers=AUTH)
    r = client.post("/api/analytics/workspaces/w/datasets", headers=AUTH,
                    files={"file": ("bad.csv", b"a,b\n1,2\n3,4,5\n", "text/csv")})
    assert r.status_code == 400 and "line 3" in r.json()["error"]["message"]
    r = client.post("/api/analytics/workspaces/nope/datasets", headers=AUTH, files={"file": ("x.csv", b"a\n1\n", "text/csv")})
    assert r.status_code == 404
    platform = client.app.state.platform
    platform.analytics.workspaces.import_limit = 1000  # a deployment with a 1000-byte import limit
    r = client.post("/api/analytics/workspaces/w/datasets", headers=AUTH,
                    files={"file": ("big.csv", b"a,b\n" + b"1,2\n" * 600, "text/csv")})
    assert r.status_code == 413 and "1000 bytes" in r.json()["error"]["message"]


def test_catalogue_run_charts_model_and_scoring(client):
    cat = client.get("/api/analytics/catalogue", headers=AUTH).json()
    keys = {m["key"]: m for m in cat}
    assert {"churn_logistic", "plan_tree", "value_svm", "churn_mlp", "text_naive_bayes", "text_knn"} <= set(keys)
    assert keys["churn_logistic"]["primary_metric"] == "auc" and keys["churn_logistic"]["scores"] is True
    demo = client.post("/api/analytics/demo", headers=AUTH).json()
    assert {"telco", "thucnews"} <= {d["name"] for d in demo["datasets"]}
    r = client.post("/api/analytics/runs", headers=AUTH, json={"model": "nope"})
    assert r.status_code == 404
    r = client.post("/api/analytics/runs", headers=AUTH,
                    json={"model": "plan_tree", "workspace": "demo", "dataset": "telco", "score_table": "plan_reco"})
    assert r.status_code == 202, r.text
    run = _wait(client, r.json()["id"])
    assert run["status"] == "succeeded", run["error"]
    assert run["beats_baseline"] is True and "rules" in run["explanation"]
    png = client.get(f"/api/analytics/runs/{run['id']}/charts/confusion.png", headers=AUTH)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert client.get(f"/api/analytics/runs/{run['id']}/charts/nope.png", headers=AUTH).status_code == 404
    model = client.get(f"/api/analytics/runs/{run['id']}/model", headers=AUTH)
    assert model.status_code == 200 and len(model.content) > 1000
    reco = client.get("/api/analytics/workspaces/demo/datasets/plan_reco", headers=AUTH).json()
    assert {"prediction", "migration_candidate"} <= {c["name"] for c in reco["profile"]["columns"]}
    r = client.post(f"/api/analytics/runs/{run['id']}/score", headers=AUTH,
                    json={"workspace": "demo", "dataset": "telco", "output": "plan_scores"})
    assert r.status_code == 201 and r.json()["rows"] == 7043
    runs = client.get("/api/analytics/runs", headers=AUTH).json()
    assert runs[0]["id"] == run["id"]
    # a run on data without the target fails with the column named
    bad = client.post("/api/analytics/runs", headers=AUTH,
                      json={"model": "churn_logistic", "workspace": "demo", "dataset": "thucnews"}).json()
    failed = _wait(client, bad["id"])
    assert failed["status"] == "failed" and "'Churn'" in failed["error"]


def test_console_page_is_registered(client):
    pages = client.get("/api/console/pages", headers=AUTH)
    require(pages.status_code != 404, "console router not mounted in this build")
    assert any(p["id"] == "analytics" and p["script"].endswith("pages/analytics.js") for p in pages.json())
    js = client.get("/static/pages/analytics.js")
    assert js.status_code == 200 and "registerPage" in js.text


@pytest.mark.slow
def test_spark_engine_over_http(client):
    require_module("pyspark", "engine 'spark' needs pyspark (pip install 'zhinao[spark]')")
    r = client.post("/api/analytics/runs", headers=AUTH, json={"model": "churn_logistic", "engine": "gpu"})
    assert r.status_code == 400 and "unknown engine 'gpu'" in r.json()["error"]["message"]
    r = client.post("/api/analytics/runs", headers=AUTH, json={"model": "karate_circles", "engine": "spark"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "engine"
    cat = {m["key"]: m for m in client.get("/api/analytics/catalogue", headers=AUTH).json()}
    assert cat["churn_logistic"]["spark"] is True and cat["karate_circles"]["spark"] is False
    r = client.post("/api/analytics/runs", headers=AUTH, json={"model": "segments_em", "engine": "spark"})
    assert r.status_code == 202, r.text
    run = _wait(client, r.json()["id"], timeout=170)
    assert run["status"] == "succeeded", run["error"]
    assert run["engine"] == "spark" and run["primary_metric"] == "holdout_loglik" and run["beats_baseline"] is True
    model = client.get(f"/api/analytics/runs/{run['id']}/model", headers=AUTH)
    assert model.status_code == 200 and model.content[:2] == b"PK"  # the zipped MLlib model
    assert f"segments_em-v{run['version']}.zip" in model.headers["content-disposition"]
    r = client.post(f"/api/analytics/runs/{run['id']}/score", headers=AUTH,
                    json={"workspace": "demo", "dataset": "telco"})
    assert r.status_code == 400 and "engine 'local'" in r.json()["error"]["message"]
