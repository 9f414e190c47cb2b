"""The SQL engine: verification, deterministic fixes, repair, voting, and that no write ever runs.

The model is a real :class:`~zhinao.agent.base.ModelFn` that replays given replies (the
deterministic tests) or the embedded Qwen2.5-Coder-0.5B pack (the slow test)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from zhinao.agent.linking import SchemaIndex
from zhinao.agent.sqlgen import (EngineModel, SqlConfig, answer_sql, extract_sql, fix_sql, plain_sql, result_key,
                                 verify_sql)
from zhinao.analytics.glossary import DEFAULT_GLOSSARY, DEMO_COLUMNS
from zhinao.analytics.workspace import Workspace
from zhinao.errors import InvalidRequest
from zhinao.runtime.base import GenerationParams, Message

GLOSSARY = [dict(zip(("term", "term_en", "definition_zh", "definition_en", "formula"), g)) for g in DEFAULT_GLOSSARY]


class Replay:
    """Replies in order (the last one repeats); records every prompt it was sent."""

    def __init__(self, *replies: str):
        self.replies, self.calls = list(replies), []

    async def __call__(self, messages: Sequence[Message], params: GenerationParams, *, purpose: str = "agent") -> str:
        self.calls.append((list(messages), params, purpose))
        return self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]


def fenced(sql: str) -> str:
    return f"Here is the query:\n```sql\n{sql}\n```"


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    from zhinao.analytics import datasets

    w = Workspace(tmp_path_factory.mktemp("sqlgen") / "demo.duckdb")
    w.write_table("telco", datasets.tabular("telco"))
    return w


@pytest.fixture(scope="module")
def index(ws) -> SchemaIndex:
    return SchemaIndex.from_workspace(ws, descriptions=DEMO_COLUMNS, glossary=GLOSSARY)


def one(ws, sql):
    return ws.run_sql(sql).rows()[0][0]


def test_extract_sql_from_replies():
    assert extract_sql(fenced("SELECT 1;")) == "SELECT 1"
    assert extract_sql('{"sql": "SELECT 2"}') == "SELECT 2"
    assert extract_sql("The answer is SELECT 3 FROM t;") == "SELECT 3 FROM t"
    assert extract_sql("SELECT 1; DELETE FROM telco") == "SELECT 1"
    assert extract_sql("no query here") == "no query here"


def test_verification_rejects_unknown_columns_with_a_message(index):
    with pytest.raises(InvalidRequest) as e:
        verify_sql("SELECT AVG(monthly_fee) FROM telco", index)
    assert "'monthly_fee' does not exist" in e.value.message and "MonthlyCharges" in e.value.message
    with pytest.raises(InvalidRequest, match="not in this workspace"):
        verify_sql("SELECT * FROM customers", index)
    verify_sql("SELECT Contract, AVG(MonthlyCharges) AS arpu FROM telco GROUP BY Contract ORDER BY arpu", index)


def test_repair_loop_fixes_a_wrong_column_from_the_error(ws, index):
    model = Replay(fenced("SELECT AVG(monthly_fee) FROM telco"), fenced("SELECT AVG(MonthlyCharges) FROM telco"))
    out = asyncio.run(answer_sql(model, ws, index, "What is the ARPU?", config=SqlConfig(fix_identifiers=False)))
    assert out.ok and out.repaired and len(out.attempts) == 2
    assert out.attempts[0]["stage"] == "generate" and "monthly_fee" in out.attempts[0]["error"]
    assert out.rows[0][0] == pytest.approx(one(ws, "SELECT AVG(MonthlyCharges) FROM telco"))
    repair_prompt = model.calls[1][0][-1]["content"]
    assert "monthly_fee" in repair_prompt and model.calls[1][2] == "agent.repair"


def test_repair_is_bounded(ws, index):
    model = Replay(fenced("SELECT nope FROM telco"))
    out = asyncio.run(answer_sql(model, ws, index, "?", config=SqlConfig(max_repairs=2, fix_identifiers=False)))
    assert not out.ok and len(model.calls) == 3 and "nope" in out.error


def test_deterministic_fixes_resolve_names_and_stored_values(ws, index):
    sql, fixes = fix_sql("SELECT COUNT(*) FROM telco WHERE Internet_Service = 'fiber'", index,
                         index.link("fiber customers"))
    assert "'Fiber optic'" in sql and "InternetService" in sql and len(fixes) == 2
    sql, fixes = fix_sql("SELECT COUNT(*) FROM telco WHERE contract = 'month-to-month'", index)
    assert "'Month-to-month'" in sql
    same, none = fix_sql("SELECT COUNT(*) FROM telco WHERE Churn = 'Yes'", index)
    assert none == [] and same == "SELECT COUNT(*) FROM telco WHERE Churn = 'Yes'"
    out = asyncio.run(answer_sql(Replay(fenced("SELECT COUNT(*) FROM telco WHERE InternetService = 'fiber'")),
                                 ws, index, "How many fiber customers?"))
    assert out.ok and out.repaired and out.rows[0][0] == one(
        ws, "SELECT COUNT(*) FROM telco WHERE InternetService = 'Fiber optic'") > 0


def test_wrong_table_qualifier_is_fixed(tmp_path):
    import pandas as pd

    w = Workspace(tmp_path / "two.duckdb")
    w.write_table("singer", pd.DataFrame({"Singer_ID": [1, 2], "Name": ["Ann", "Bo"]}))
    w.write_table("song", pd.DataFrame({"Singer_ID": [1, 1, 2], "Title": ["a", "b", "c"]}))
    idx = SchemaIndex.from_workspace(w)
    sql, fixes = fix_sql("SELECT T2.Name, COUNT(*) FROM song AS T1 JOIN singer AS T2 ON T1.Singer_ID = T2.Singer_ID "
                         "GROUP BY T1.Name", idx)
    assert fixes == ["T1.Name → T2.Name"] and "GROUP BY T2.Name" in sql
    assert sorted(w.run_sql(sql).rows()) == [("Ann", 2), ("Bo", 1)]
    sql, fixes = fix_sql('SELECT Singer_ID FROM singer WHERE Name = "ann"', idx)  # SQLite's string quotes
    assert w.run_sql(sql).rows() == [(1,)] and len(fixes) == 2


def test_a_write_statement_is_never_executed(ws, index):
    before = one(ws, "SELECT COUNT(*) FROM telco")
    model = Replay(fenced("DELETE FROM telco"), fenced("DROP TABLE telco"), fenced("UPDATE telco SET Churn = 'No'"))
    out = asyncio.run(answer_sql(model, ws, index, "delete every customer", config=SqlConfig(candidates=3)))
    assert not out.ok and out.sql != "" and "SELECT" in out.error
    assert all(a["error"] for a in out.attempts) and len(out.attempts) >= 3
    plain = asyncio.run(plain_sql(Replay("INSERT INTO telco SELECT * FROM telco"), ws, "add rows", ddl=index.ddl()))
    assert not plain.ok
    assert one(ws, "SELECT COUNT(*) FROM telco") == before
    assert one(ws, "SELECT COUNT(*) FROM telco WHERE Churn = 'Yes'") > 0


def test_voting_picks_the_result_most_candidates_agree_on(ws, index):
    right = "SELECT COUNT(*) FROM telco WHERE Churn = 'Yes'"
    model = Replay(fenced("SELECT COUNT(*) FROM telco"), fenced(right), fenced(right.replace("COUNT(*)", "count(1)")))
    out = asyncio.run(answer_sql(model, ws, index, "How many customers churned?",
                                 config=SqlConfig(candidates=3, budget_s=60)))
    assert out.voted and out.candidates == 3 and out.sql == right
    assert [a["stage"] for a in out.attempts] == ["generate", "vote", "vote"]
    assert model.calls[0][1].temperature == 0 and model.calls[1][1].temperature > 0
    assert result_key([[1.00001]]) == result_key([[1]])


def test_follow_up_carries_the_previous_question_and_sql(ws, index):
    model = Replay(fenced("SELECT COUNT(*) FROM telco WHERE Churn = 'Yes' AND InternetService = 'Fiber optic'"))
    hist = [{"question": "How many customers churned?", "sql": "SELECT COUNT(*) FROM telco WHERE Churn = 'Yes'"}]
    out = asyncio.run(answer_sql(model, ws, index, "now only for fiber customers", history=hist,
                                 examples=[{"question": "How many customers?", "sql": "SELECT COUNT(*) FROM telco"}]))
    msgs = model.calls[0][0]
    assert msgs[0]["role"] == "system" and "CREATE TABLE telco" in msgs[0]["content"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "WHERE Churn = 'Yes'" in msgs[4]["content"] and "now only for fiber" in msgs[5]["content"]
    assert "'Fiber optic'" in msgs[5]["content"]  # the linked value as a hint
    assert out.ok and out.rows[0][0] < one(ws, "SELECT COUNT(*) FROM telco WHERE Churn = 'Yes'")


def test_system_prompt_is_the_same_for_every_question(index):
    from zhinao.agent.sqlgen import build_messages

    a = build_messages(index, "How many fiber customers?", linked=index.link("How many fiber customers?"))
    b = build_messages(index, "月付用户的离网率", linked=index.link("月付用户的离网率"))
    assert a[0] == b[0] and a[-1] != b[-1]


QUESTIONS = [  # (question, gold SQL, ordered) about the demo telco table, written for this test
    ("How many customers are there?", "SELECT COUNT(*) FROM telco", False),
    ("How many customers have fiber optic internet?",
     "SELECT COUNT(*) FROM telco WHERE InternetService = 'Fiber optic'", False),
    ("What is the average monthly charge of customers who churned?",
     "SELECT AVG(MonthlyCharges) FROM telco WHERE Churn = 'Yes'", False),
    ("How many customers are there for each contract type?",
     "SELECT Contract, COUNT(*) FROM telco GROUP BY Contract", False),
    ("What is the maximum tenure?", "SELECT MAX(tenure) FROM telco", False),
]


@pytest.mark.slow
def test_the_embedded_model_answers_demo_questions_checked_by_execution(default_pack_path, ws, index):
    from zhinao.runtime.llamacpp import LlamaCppChatModel

    model = EngineModel(LlamaCppChatModel("qwen2.5-coder-0.5b", path=default_pack_path, threads=1))
    right = 0
    for question, gold, _ordered in QUESTIONS:
        out = asyncio.run(answer_sql(model, ws, index, question))
        assert out.attempts and all(a["sql"] is None or "DELETE" not in a["sql"].upper() for a in out.attempts)
        if out.ok and result_key(out.rows) == result_key([list(r) for r in ws.run_sql(gold).rows()]):
            right += 1
    assert right >= 4, f"{right} of {len(QUESTIONS)} right"
