"""Runs on the user's own tables (issue 10): the binding in the run record, presets, the preview
route, plots, score-table fit, and failed runs that leave nothing behind — through the real CLI
(a subprocess, as a user runs it), the service and the HTTP API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from zhinao.analytics import datasets
from zhinao.cli.data import app
from zhinao.errors import InvalidRequest

from tests.analytics.conftest import TENANT

runner = CliRunner()


def renamed_telco(n: int = 600) -> pd.DataFrame:
    """IBM Telco as a customer's own export: Chinese column names, 是/否 target."""
    t = datasets.load_telco().head(n).copy()
    t = t.rename(columns={"customerID": "用户编号", "tenure": "在网月数", "MonthlyCharges": "月费",
                          "TotalCharges": "累计费用", "Contract": "合约类型", "InternetService": "宽带类型",
                          "PaymentMethod": "支付方式", "Churn": "是否流失"})
    t["是否流失"] = t["是否流失"].map({"Yes": "是", "No": "否"})
    return t


@pytest.fixture
def user_table(service):
    service.workspaces.ensure(TENANT, "own", "a customer's workspace")
    service.workspaces.save_frame(TENANT, "own", "客户表", renamed_telco(), source="upload")
    return service


@pytest.mark.slow
def test_run_records_binding_split_and_plots_then_scores_keeping_columns(user_table):
    svc = user_table
    r = svc.start_run(TENANT, "churn_logistic", workspace="own", dataset="客户表", params={"target": "是否流失"})
    r = svc.runs.wait(TENANT, r["id"], 120)
    assert r["status"] == "succeeded", r["error"]
    b = r["binding"]
    assert b["columns"]["target"] == "是否流失" and "target" not in b["inferred"]
    assert "在网月数" in b["columns"]["features"] and "用户编号" not in b["columns"]["features"]
    assert "features" in b["inferred"] and r["split"]["test_rows"] > 0
    assert r["plots"] and svc.runs.plots(TENANT, r["id"])  # interactive chart data for the console
    fits = [t["name"] for t in svc.runs.fitting_tables(TENANT, r["id"], "own")]
    assert fits == ["客户表"]
    scored = svc.score(TENANT, r["id"], "own", "客户表", "评分")
    df = svc.workspaces.frame(TENANT, "own", scored["name"])
    assert {"用户编号", "在网月数", "score", "prediction"} <= set(df.columns)


def test_preview_binding_shows_inferred_defaults_and_errors(user_table):
    p = user_table.runs.preview_binding(TENANT, "churn_logistic", "own", "客户表", {"target": "是否流失"})
    assert p["ok"] and p["binding"]["columns"]["target"] == "是否流失"
    kinds = {c["name"]: c["kind"] for c in p["columns"]}
    assert kinds["用户编号"] == "id" and kinds["是否流失"] == "boolean"
    p = user_table.runs.preview_binding(TENANT, "churn_logistic", "own", "客户表", {"target": "Churn"})
    assert not p["ok"] and "'Churn'" in p["error"] and p["binding"] is None
    # a two-class target whose positive class cannot be told is said before the run starts
    p = user_table.runs.preview_binding(TENANT, "churn_logistic", "own", "客户表", {"target": "gender"})
    assert not p["ok"] and "-p positive=" in p["error"] and p["binding"]["columns"]["target"] == "gender"
    p = user_table.runs.preview_binding(TENANT, "churn_logistic", "own", "客户表",
                                        {"target": "gender", "positive": "Female"})
    assert p["ok"], p["error"]


def test_unknown_parameter_names_the_roles(user_table):
    with pytest.raises(InvalidRequest, match="column roles: target"):
        user_table.start_run(TENANT, "churn_logistic", workspace="own", dataset="客户表", params={"colour": 1})
    with pytest.raises(InvalidRequest, match="no preset"):
        user_table.start_run(TENANT, "churn_logistic", preset="nope")


@pytest.mark.slow
def test_a_failed_run_leaves_no_artefact_folder(user_table, tmp_path):
    svc = user_table
    r = svc.start_run(TENANT, "churn_logistic", workspace="own", dataset="客户表", params={"target": "no_such"})
    r = svc.runs.wait(TENANT, r["id"], 120)
    assert r["status"] == "failed" and "'no_such'" in r["error"] and "用户编号" in r["error"]
    models = tmp_path / "home" / "analytics" / "models" / "churn_logistic"
    assert not any(models.glob("v*")), list(models.glob("v*"))


def test_catalog_json_lists_task_roles_and_applications(settings):
    r = runner.invoke(app, ["catalog", "--json"])
    assert r.exit_code == 0, r.output
    rows = {m["key"]: m for m in json.loads(r.output)}
    m = rows["churn_logistic"]
    assert m["task"] == "classification" and m["name_zh"] and m["name_en"] and m["algorithm"]
    assert {"target", "features"} <= {x["name"] for x in m["roles"]} and m["presets"] and "params" in m


def _cli(home, *args, timeout=300):
    env = {**os.environ, "ZHINAO_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    exe = os.path.join(os.path.dirname(sys.executable), "zhinao")
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.slow
def test_cli_run_json_runs_show_and_a_failed_run_without_traceback(tmp_path):
    """The real command line, as a user runs it: a GBK file with a 是/否 target, --json, runs show."""
    home = tmp_path / "zh"
    src = tmp_path / "客户.csv"
    renamed_telco(400).to_csv(src, index=False, encoding="gbk")
    r = _cli(home, "data", "create", "own")
    assert r.returncode == 0, r.stderr
    r = _cli(home, "data", "import", str(src), "-w", "own", "--name", "kehu")
    assert r.returncode == 0, r.stdout + r.stderr
    r = _cli(home, "data", "run", "churn_logistic", "-w", "own", "--dataset", "kehu", "-p", "target=是否流失", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads(r.stdout)
    assert rec["run_id"] == rec["id"] and rec["status"] == "succeeded"
    assert rec["binding"]["columns"]["target"] == "是否流失" and rec["metrics"]["auc"] > 0.6
    assert rec["chart_files"] and all(os.path.isfile(f) for f in rec["chart_files"])
    r = _cli(home, "data", "runs", "show", str(rec["run_id"]))
    assert r.returncode == 0, r.stderr
    assert "是否流失" in r.stdout and "auc" in r.stdout and "chart:" in r.stdout and "split:" in r.stdout
    assert "lift by decile" in r.stdout and "thresholds" in r.stdout
    r = _cli(home, "data", "runs", "show", str(rec["run_id"]), "--json")
    assert json.loads(r.stdout)["binding"] == rec["binding"]
    # a failed run: one clear message, exit 1, no traceback, no artefact folder
    r = _cli(home, "data", "run", "churn_logistic", "-w", "own", "--dataset", "kehu", "-p", "target=没有这列")
    assert r.returncode == 1
    assert "没有这列" in r.stderr and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert len([ln for ln in r.stderr.splitlines() if "failed" in ln]) == 1, r.stderr
    versions = sorted(p.name for p in (home / "analytics" / "models" / "churn_logistic").iterdir())
    assert versions == [f"v{rec['version']}"], versions
    assert "Traceback" not in (home / "logs" / "cli.log").read_text(encoding="utf-8")  # user error: message only


@pytest.mark.slow
def test_bind_plots_and_score_tables_over_http(settings):
    import io
    import time

    from fastapi.testclient import TestClient

    from zhinao.gateway.app import create_app
    from zhinao.platform import Platform

    auth = {"Authorization": "Bearer zk-admin-test-key-000000000000"}
    with TestClient(create_app(Platform(settings), warm_default=False)) as c:
        assert c.post("/api/analytics/workspaces", headers=auth, json={"name": "own"}).status_code == 201
        buf = io.BytesIO(renamed_telco(400).to_csv(index=False).encode("gb18030"))
        r = c.post("/api/analytics/workspaces/own/datasets", headers=auth,
                   files={"file": ("客户.csv", buf, "text/csv")}, data={"name": "kehu"})
        assert r.status_code == 201, r.text
        r = c.post("/api/analytics/bind", headers=auth, json={"model": "churn_logistic", "workspace": "own",
                                                               "dataset": "kehu", "params": {"target": "是否流失"}})
        assert r.status_code == 200 and r.json()["ok"], r.text
        r = c.post("/api/analytics/bind", headers=auth, json={"model": "churn_logistic", "workspace": "own",
                                                               "dataset": "nope"})
        assert r.status_code == 404
        r = c.post("/api/analytics/runs", headers=auth, json={"model": "churn_logistic", "workspace": "own",
                                                               "dataset": "kehu", "params": {"target": "是否流失"}})
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        for _ in range(600):
            run = c.get(f"/api/analytics/runs/{run_id}", headers=auth).json()
            if run["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        assert run["status"] == "succeeded", run["error"]
        plots = c.get(f"/api/analytics/runs/{run_id}/plots", headers=auth).json()
        assert plots and all("type" in p and "title" in p for p in plots.values())
        tables = c.get(f"/api/analytics/runs/{run_id}/score-tables", headers=auth, params={"workspace": "own"}).json()
        assert [t["name"] for t in tables] == ["kehu"]


def test_cli_run_refused_before_the_job_exits_1_with_the_message(settings):
    r = runner.invoke(app, ["run", "churn_logistic", "-p", "colour=blue"])
    assert r.exit_code == 1 and "'colour'" in r.output and "column roles" in r.output and "Traceback" not in r.output
