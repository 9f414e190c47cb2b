"""Runs as background jobs: versions, artefacts, scoring into tables, and bad input."""

from __future__ import annotations

import io

import joblib
import pandas as pd
import pytest

from zhinao.errors import InvalidRequest, NotFound

TENANT, OTHER_TENANT = 1, 2


@pytest.fixture
def demo(service):
    service.ensure_demo(TENANT, tables=("telco",))
    return "demo"


def test_churn_run_persists_versions_charts_and_scores_a_ranked_table(service, demo):
    r = service.start_run(TENANT, "churn_logistic", workspace=demo, dataset="telco", score_table="churn_risk")
    assert r["status"] in ("queued", "running", "succeeded") and r["job_id"]
    r = service.runs.wait(TENANT, r["id"], timeout=120)
    assert r["status"] == "succeeded", r["error"]
    assert r["metrics"]["auc"] > 0.8 and r["baseline"]["auc"] == 0.5 and r["beats_baseline"] is True
    assert r["primary_metric"] == "auc" and r["explanation"]["coefficients"]
    job = service.jobs.get(r["job_id"])
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    png = service.runs.chart(TENANT, r["id"], "roc")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    path = service.runs.model_file(TENANT, r["id"])
    assert path.parts[-4:] == ("models", "churn_logistic", f"v{r['version']}", "model.joblib")
    model = joblib.load(path)
    assert hasattr(model, "pipeline_")
    # the scored table is a ranked risk list in the workspace, profiled like any dataset
    risk = service.workspaces.frame(TENANT, demo, "churn_risk")
    assert len(risk) == 7043 and {"customerID", "Churn", "score", "prediction"} <= set(risk.columns)
    assert risk["score"].is_monotonic_decreasing  # every input column + score and prediction, ranked
    assert service.workspaces.dataset(TENANT, demo, "churn_risk")["source"] == "score"
    # a second run is a new version with its own directory
    r2 = service.runs.wait(TENANT, service.start_run(TENANT, "churn_logistic", params={"C": 0.1})["id"], 120)
    assert r2["version"] == r["version"] + 1 and r2["params"] == {"C": 0.1}
    assert service.runs.model_file(TENANT, r2["id"]) != path
    # score new rows (no Churn column) with a stored version
    new = service.workspaces.frame(TENANT, demo, "telco").drop(columns=["Churn"]).head(50)
    service.workspaces.save_frame(TENANT, demo, "new_customers", new, source="csv")
    scored = service.score(TENANT, r["id"], demo, "new_customers")
    assert scored["rows"] == 50 and scored["name"] == f"new_customers_churn_logistic_v{r['version']}"
    csv = service.workspaces.workspace(TENANT, demo).export_csv(scored["name"])
    assert pd.read_csv(io.BytesIO(csv))["customerID"].isin(new["customerID"]).all()
    # other tenants cannot see the run
    with pytest.raises(NotFound):
        service.runs.get(OTHER_TENANT, r["id"])
    assert [x["id"] for x in service.runs.list(TENANT, "churn_logistic")] == [r2["id"], r["id"]]


def test_bad_requests_fail_before_a_job_starts(service, demo):
    with pytest.raises(NotFound, match="no catalogue model"):
        service.start_run(TENANT, "nope")
    with pytest.raises(InvalidRequest) as e:
        service.start_run(TENANT, "churn_logistic", params={"depth": 3})
    assert e.value.param == "depth"
    with pytest.raises(NotFound, match="dataset 'missing'"):
        service.start_run(TENANT, "churn_logistic", workspace=demo, dataset="missing")
    with pytest.raises(InvalidRequest, match="score_table needs a workspace"):
        service.start_run(TENANT, "churn_logistic", score_table="x")


def _run_on(service, demo, name, df, key="churn_logistic", **params):
    service.workspaces.save_frame(TENANT, demo, name, df, source="csv", replace=True)
    r = service.start_run(TENANT, key, workspace=demo, dataset=name, params=params)
    return service.runs.wait(TENANT, r["id"], timeout=120)


def test_bad_data_fails_the_run_with_a_message_naming_the_problem(service, demo):
    telco = service.workspaces.frame(TENANT, demo, "telco")
    r = _run_on(service, demo, "no_target", telco.drop(columns=["Churn"]))
    assert r["status"] == "failed" and "'Churn'" in r["error"]
    assert service.jobs.get(r["job_id"])["status"] == "failed"
    r = _run_on(service, demo, "tiny", telco.head(10))
    assert r["status"] == "failed" and "at least 40 rows" in r["error"]
    r = _run_on(service, demo, "one_class", telco[telco["Churn"] == "No"].head(500))
    assert r["status"] == "failed" and "constant" in r["error"] and "'Churn'" in r["error"]
    r = _run_on(service, demo, "all_null_target", telco.assign(Churn=None).head(500))
    assert r["status"] == "failed" and "entirely null" in r["error"]
    bad = telco.copy()
    bad["tenure"] = bad["tenure"].astype(str)
    bad.loc[5, "tenure"] = "twelve"
    r = _run_on(service, demo, "bad_type", bad)
    assert r["status"] == "failed" and "'tenure'" in r["error"] and "twelve" in r["error"]
    # constant and all-null feature columns are dropped, not fatal
    ok = telco.assign(const="x", empty=None)
    r = _run_on(service, demo, "extra_cols", ok, key="plan_tree")
    assert r["status"] == "succeeded", r["error"]
    # unparseable dates in a forecast table name the column
    milan = service.workspaces.import_demo(TENANT, demo, "milan_total")
    m = service.workspaces.frame(TENANT, demo, milan["name"])
    m["timestamp"] = m["timestamp"].astype(str)
    m.loc[100, "timestamp"] = "2013-13-45 99:00"
    r = _run_on(service, demo, "bad_dates", m, key="traffic_linear")
    assert r["status"] == "failed" and "timestamp" in r["error"]


def test_scoring_needs_a_scoring_model_and_a_succeeded_run(service, demo):
    r = _run_on(service, demo, "tiny2", service.workspaces.frame(TENANT, demo, "telco").head(5))
    with pytest.raises(InvalidRequest, match="has not succeeded"):
        service.score(TENANT, r["id"], demo, "telco")


def test_a_run_left_unfinished_by_a_crash_is_resumed(store, tmp_path):
    """A process died mid-run (job 'running', run 'running'): a new JobRunner.resume() finishes it."""
    from zhinao.analytics.capability import capability
    from zhinao.analytics.models import AnalyticsRun
    from zhinao.capability import bind_jobs
    from zhinao.store.jobs import JobRunner
    from zhinao.store.models import Job

    db, _ = store
    home = tmp_path / "home"
    with db.session() as s:
        run = AnalyticsRun(tenant_id=TENANT, model_key="plan_tree", version=1, dataset="demo:telco", params={},
                           status="running", artifact_dir=str(home / "analytics" / "models" / "plan_tree" / "v1"))
        s.add(run)
        s.flush()
        job = Job(kind="analytics.run", params={"run_id": run.id, "home": str(home)}, tenant_id=TENANT,
                  status="running", progress=0.15)
        s.add(job)
        s.flush()
        run.job_id, run_id, job_id = job.id, run.id, job.id
    runner = JobRunner(db)
    bind_jobs(capability, runner, lambda: None)  # the run handler needs no service: all is in the row
    try:
        assert runner.resume() == [job_id]
        assert runner.wait(job_id, timeout=120)["status"] == "succeeded"
    finally:
        runner.shutdown()
    with db.session() as s:
        r = s.get(AnalyticsRun, run_id)
        assert r.status == "succeeded" and r.metrics["macro_f1"] > r.baseline["macro_f1"]
    assert (home / "analytics" / "models" / "plan_tree" / "v1" / "model.joblib").is_file()
