"""The built-in tools on a real workspace (SQLite metadata, DuckDB file, the demo's real tables):
schema listing, sandboxed SQL, catalogue models chosen from the question, charts, explanations."""

from __future__ import annotations

import asyncio

import pytest

from zhinao.agent.base import Tool, ToolContext, tools
from zhinao.agent.tools_builtin import (DescribeSchema, Explain, MakeChart, RunModel, RunSql, chart_spec,
                                        choose_model, sql_in_words, task_of)
from zhinao.analytics.service import AnalyticsService


@pytest.fixture(scope="module")
def analytics(tmp_path_factory):
    from zhinao.capability import migration_dirs
    from zhinao.settings import Settings
    from zhinao.store.db import Database

    settings = Settings(home=tmp_path_factory.mktemp("tools"), env="test")
    db = Database(settings.db_url)
    db.migrate(migration_dirs())
    an = AnalyticsService(settings=settings, db=db)
    an.ensure_demo(1, tables=("telco", "milan_total", "groceries"))
    yield an
    db.dispose()


def ctx_for(an, state=None) -> ToolContext:
    return ToolContext(tenant_id=1, workspace="demo", ws=an.workspaces.workspace(1, "demo"), analytics=an,
                       state=state if state is not None else {})


def run(tool, ctx, args):
    return asyncio.run(tool.run(ctx, args))


def test_builtins_are_registered_tools():
    have = tools()
    for name in ("describe_schema", "run_sql", "run_model", "make_chart", "explain"):
        assert name in have and isinstance(have[name], Tool)
        t = have[name]
        assert t.description and t.description_zh and t.examples and t.parameters["type"] == "object"


def test_describe_schema_lists_tables_columns_and_row_counts(analytics):
    r = run(DescribeSchema(), ctx_for(analytics), {})
    assert r.ok and {t["name"] for t in r.data["tables"]} == {"telco", "milan_total", "groceries"}
    telco = next(t for t in r.data["tables"] if t["name"] == "telco")
    assert telco["rows"] == 7043 and "MonthlyCharges" in telco["columns"]
    assert any(row[0] == "telco" and row[1] == "Churn" and row[3] for row in r.rows)  # with its description
    missing = run(DescribeSchema(), ctx_for(analytics), {"table": "orders"})
    assert not missing.ok and missing.data["found"] is False


def test_run_sql_runs_checked_sql_and_remembers_the_table(analytics):
    state: dict = {}
    r = run(RunSql(), ctx_for(analytics, state), {"sql": "SELECT Contract, COUNT(*) AS n FROM telco GROUP BY 1 ORDER BY 1"})
    assert r.ok and r.columns == ["Contract", "n"] and sum(x[1] for x in r.rows) == 7043
    assert state["last"]["sql"] == r.sql and state["last"]["rows"] == r.rows
    for bad in ("DELETE FROM telco", "SELECT * FROM read_csv('/etc/passwd')", "SELECT nope FROM telco",
                "SELECT 1; SELECT 2", "SELECT * FROM other_tenant.telco"):
        b = run(RunSql(), ctx_for(analytics), {"sql": bad})
        assert not b.ok and b.error, bad
    assert analytics.workspaces.workspace(1, "demo").query("SELECT COUNT(*) FROM telco").iloc[0, 0] == 7043
    assert not run(RunSql(), ctx_for(analytics), {}).ok
    assert not run(RunSql(), ctx_for(analytics), {"question": "how many?"}).ok  # no model in this context


def test_model_choice_reads_the_catalogue_metadata(analytics):
    cat = analytics.catalogue()
    tables = ["telco", "milan_total", "groceries"]
    assert task_of("Which customers are most likely to churn?") == "classification"
    assert task_of("下周话务量会怎样？") == "forecast"
    assert task_of("把客户分成几类") == "clustering"
    assert task_of("Which products are bought together?") == "association"
    assert choose_model(cat, "Which customers will churn?", tables, "classification")["key"].startswith("churn_")
    assert choose_model(cat, "下周话务量会怎样？", tables, "forecast")["dataset"] == "milan_total"
    assert choose_model(cat, "segment the customers", tables, "clustering")["task"] == "clustering"
    assert choose_model(cat, "Which products are bought together in baskets?", tables,
                        "association")["key"] == "basket_item_cf"
    # a workspace without the Telco table: a non-synthetic churn model is still chosen by its words
    assert choose_model(cat, "predict churn", ["my_customers"], "classification")["key"].startswith("churn_")


def test_run_model_churn_fits_evaluates_scores_and_is_rerunnable(analytics):
    state: dict = {}
    r = run(RunModel(), ctx_for(analytics, state), {"question": "Which customers are most likely to churn, and why?"})
    assert r.ok, r.error
    key = r.data["key"]
    assert key.startswith("churn_") and r.data["table"] == "telco"
    assert r.data["metric"] == "auc" and r.data["metrics"]["auc"] > r.data["baseline"]["auc"]
    assert r.data["factors"] and r.chart and r.chart["type"]
    assert r.rows and len(r.rows) <= 10 and "customerID" in r.columns
    assert r.call == {"tool": "run_model", "args": {"key": key, "table": "telco", "params": {}}}
    # nothing was written into the workspace: scoring is in memory
    assert set(analytics.workspaces.workspace(1, "demo").tables()) == {"telco", "milan_total", "groceries"}
    again = run(RunModel(), ctx_for(analytics), r.call["args"])
    assert again.ok and again.data["metrics"]["auc"] == pytest.approx(r.data["metrics"]["auc"])


def test_run_model_bad_input(analytics):
    c = ctx_for(analytics)
    assert not run(RunModel(), c, {"key": "no_such_model"}).ok
    r = run(RunModel(), c, {"key": "churn_logistic", "table": "orders"})
    assert not r.ok and r.data["found"] is False and "orders" in r.error
    r = run(RunModel(), c, {"key": "churn_logistic", "table": "telco", "params": {"target": "NoSuchColumn"}})
    assert not r.ok and "NoSuchColumn" in r.error
    r = run(RunModel(), c, {"key": "churn_logistic", "table": "milan_total"})  # no churn label there
    assert not r.ok


@pytest.mark.slow
def test_run_model_forecast_segments_and_baskets(analytics):
    c = ctx_for(analytics)
    f = run(RunModel(), c, {"question": "下周话务量会怎样？", "task": "forecast"})
    assert f.ok and f.data["table"] == "milan_total" and f.chart["type"] == "forecast"
    s = run(RunModel(), c, {"question": "把客户分成几类并描述每一类", "task": "clustering"})
    assert s.ok and s.data["task"] == "clustering" and s.data["factors"][0].startswith("#0")
    b = run(RunModel(), c, {"question": "Which products are bought together in baskets?"})
    assert b.ok and b.data["table"] == "groceries"


def test_charts_follow_the_shape_of_the_result():
    bar = chart_spec(["Contract", "avg"], [["Month-to-month", 66.4], ["One year", 65.0], ["Two year", 60.8]])
    assert bar["type"] == "bar" and bar["categories"] == ["Month-to-month", "One year", "Two year"]
    assert bar["series"][0]["values"] == [66.4, 65.0, 60.8]
    line = chart_spec(["day", "activity"], [["2013-11-02", 5.0], ["2013-11-01", 4.0]])
    assert line["type"] == "line" and line["series"][0]["points"] == [["2013-11-01", 4.0], ["2013-11-02", 5.0]]
    rows = [[float(i), float(i * 2 % 7)] for i in range(30)]
    assert chart_spec(["tenure", "charges"], rows)["type"] == "scatter"
    assert chart_spec(["a", "b"], [["x", "y"]]) is None  # nothing numeric


def test_make_chart_uses_the_last_result_or_says_there_is_none(analytics):
    state = {"last": {"columns": ["Contract", "n"], "rows": [["A", 1], ["B", 2]], "sql": "SELECT 1"}}
    r = run(MakeChart(), ctx_for(analytics, state), {})
    assert r.ok and r.chart["type"] == "bar"
    assert run(MakeChart(), ctx_for(analytics, state), {"kind": "line"}).chart["type"] == "line"
    assert not run(MakeChart(), ctx_for(analytics), {}).ok


def test_explain_terms_columns_and_the_last_sql(analytics):
    r = run(Explain(), ctx_for(analytics), {"question": "What does ARPU mean?"})
    assert r.ok and "MonthlyCharges" in r.summary
    r = run(Explain(), ctx_for(analytics), {"question": "离网率是什么？"})
    assert r.ok and "离网" in r.summary
    r = run(Explain(), ctx_for(analytics), {"question": "What is the tenure column?"})
    assert r.ok and any(row[1] == "telco.tenure" for row in r.rows)
    state = {"last": {"sql": "SELECT Contract, AVG(MonthlyCharges) FROM telco WHERE tenure > 12 GROUP BY Contract"}}
    r = run(Explain(), ctx_for(analytics, state), {"question": "Explain the SQL you used"})
    assert r.ok and "tenure > 12" in r.summary and "grouped by Contract" in r.summary
    assert not run(Explain(), ctx_for(analytics), {"question": "What is a flux capacitor?"}).ok


def test_sql_in_words_in_chinese():
    text = sql_in_words("SELECT gender, COUNT(*) FROM telco GROUP BY gender ORDER BY 2 DESC LIMIT 1", zh=True)
    assert "telco" in text and "按 gender 分组" in text and "前 1 行" in text
