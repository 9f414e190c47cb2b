"""AgentStore on the real metadata store (SQLite and PostgreSQL, migrated by the agent's Alembic branch):
tenant scoping, the answer record and its verdict, the example library and its retrieval."""

from __future__ import annotations

import pytest

from zhinao.agent.base import AgentAnswer, ToolCall
from zhinao.agent.store import MAX_STORED_ROWS, AgentStore, bm25, tokens
from zhinao.errors import InvalidRequest, NotFound

A, B = 1, 2


@pytest.fixture
def store(db_url):
    from zhinao.capability import migration_dirs
    from zhinao.store.db import Database

    db = Database(db_url)
    db.migrate(migration_dirs())  # the core's branch and every capability's, the agent's among them
    yield AgentStore(db)
    db.dispose()


def _answer(**kw) -> AgentAnswer:
    base = dict(answer="Month-to-month contracts pay 66.40 on average.", sql="SELECT 1", columns=["x"], rows=[[1]],
                route="sql", model="echo", latency_ms=12.5,
                tool_calls=[ToolCall(tool="run_sql", args={"question": "q"}, ok=True, summary="1 row", ms=3.0)])
    base.update(kw)
    return AgentAnswer(**base)


def test_the_agent_branch_creates_its_tables(store):
    import sqlalchemy as sa

    names = set(sa.inspect(store.db.engine).get_table_names())
    assert {"agent_sessions", "agent_answers", "agent_examples"} <= names


def test_tenant_b_never_sees_tenant_a(store):
    sid = store.new_session(A, 7, "demo")
    store.save_state(sid, A, {"last_sql": "SELECT * FROM telco", "tables": ["telco"]})
    aid = store.record_answer(A, 7, sid, "demo", "average charges by contract", _answer())
    eid = store.add_example(A, "demo", "average charges by contract", sql="SELECT 1", created_by=7)
    # B has a workspace of the same name: names are per tenant, so this must not help
    store.add_example(B, "demo", "churn rate by gender", sql="SELECT 2")

    assert store.state(sid, A)["last_sql"] == "SELECT * FROM telco"
    with pytest.raises(NotFound):
        store.state(sid, B)
    with pytest.raises(NotFound):
        store.save_state(sid, B, {"hijacked": True})
    with pytest.raises(NotFound):
        store.session(B, sid)
    with pytest.raises(NotFound):
        store.answer(B, aid)
    with pytest.raises(NotFound):
        store.set_status(B, aid, "accepted")
    with pytest.raises(NotFound):  # B cannot attach an answer to A's conversation
        store.record_answer(B, None, sid, "demo", "x", _answer())
    with pytest.raises(NotFound):
        store.example(B, eid)
    with pytest.raises(NotFound):
        store.delete_example(B, eid)
    assert [e["question"] for e in store.examples(B, "demo")] == ["churn rate by gender"]
    assert store.similar_examples(B, "demo", "average charges by contract") == []
    assert store.sessions(B) == [] and store.answers(B) == []
    assert store.clear_examples(B, "demo") == 1
    # A's data is all still there and unchanged
    assert store.state(sid, A) == {"last_sql": "SELECT * FROM telco", "tables": ["telco"]}
    assert store.answer(A, aid)["status"] is None
    assert [e["id"] for e in store.examples(A, "demo")] == [eid]


def test_owner_hides_other_users_of_the_same_tenant(store):
    sid = store.new_session(A, 7, "demo")
    aid = store.record_answer(A, 7, sid, "demo", "q", _answer())
    assert store.session(A, sid, owner=7)["id"] == sid
    with pytest.raises(NotFound):
        store.session(A, sid, owner=8)
    with pytest.raises(NotFound):
        store.answer(A, aid, owner=None)  # an API key (no user) is another owner
    assert [s["id"] for s in store.sessions(A, owner=7)] == [sid] and store.sessions(A, owner=8) == []


def test_an_answer_is_stored_as_shown_and_takes_a_verdict(store):
    sid = store.new_session(A, None, "demo")
    ans = _answer(rows=[[i] for i in range(MAX_STORED_ROWS + 20)])
    aid = store.record_answer(A, None, sid, "demo", "how many rows", ans)
    assert ans.answer_id == aid
    got = store.answer(A, aid)
    assert got["question"] == "how many rows" and got["sql"] == "SELECT 1" and got["route"] == "sql"
    assert got["answer"]["answer_id"] == aid and got["answer"]["tool_calls"][0]["tool"] == "run_sql"
    assert len(got["answer"]["rows"]) == MAX_STORED_ROWS and got["answer"]["rows_total"] == MAX_STORED_ROWS + 20
    assert got["latency_ms"] == 12.5 and got["model"] == "echo" and got["session_id"] == sid
    assert store.session(A, sid)["answers"][0]["id"] == aid

    with pytest.raises(InvalidRequest):
        store.set_status(A, aid, "loved")
    with pytest.raises(InvalidRequest, match="right SQL or the right answer"):
        store.set_status(A, aid, "corrected", {})
    out = store.set_status(A, aid, "corrected", {"sql": "SELECT 2"})
    assert out["status"] == "corrected" and out["correction"] == {"sql": "SELECT 2"}
    assert [a["id"] for a in store.answers(A, status="corrected")] == [aid]
    with pytest.raises(NotFound):
        store.answer(A, 10 ** 9)
    with pytest.raises(NotFound):
        store.answer(A, "not-a-number")  # type: ignore[arg-type]


def test_session_state_round_trips_json(store):
    import datetime as dt

    sid = store.new_session(A, 1, "demo")
    store.save_state(sid, A, {"when": dt.date(2026, 1, 2), "n": 3, "filters": ["x = 1"]})
    assert store.state(sid, A) == {"when": "2026-01-02", "n": 3, "filters": ["x = 1"]}
    with pytest.raises(NotFound):
        store.state("no-such-session", A)
    with pytest.raises(InvalidRequest):
        store.new_session(A, 1, "")


def test_add_example_validates_and_keeps_one_per_question(store):
    with pytest.raises(InvalidRequest):
        store.add_example(A, "demo", "  ", sql="SELECT 1")
    with pytest.raises(InvalidRequest, match="SQL or the tool call"):
        store.add_example(A, "demo", "a question")
    with pytest.raises(InvalidRequest):
        store.add_example(A, "demo", "a question", call={"args": {}})
    with pytest.raises(InvalidRequest):
        store.add_example(A, "demo", "a question", sql="SELECT 1", source="scraped")
    first = store.add_example(A, "demo", "Average tenure by contract?", sql="SELECT 1")
    again = store.add_example(A, "demo", "average  tenure by contract", sql="SELECT 2", source="corrected")
    assert again == first
    (ex,) = store.examples(A, "demo")
    assert ex["sql"] == "SELECT 2" and ex["source"] == "corrected"
    call = {"tool": "run_model", "args": {"model": "churn_logistic", "dataset": "telco"}}
    cid = store.add_example(A, "demo", "who will churn", call=call)
    assert store.example(A, cid)["call"] == call
    store.delete_example(A, cid)
    assert [e["id"] for e in store.examples(A, "demo")] == [first]


LIBRARY = [
    ("average monthly charges by contract type", "SELECT Contract, AVG(MonthlyCharges) FROM telco GROUP BY 1"),
    ("how many customers use fiber optic internet", "SELECT COUNT(*) FROM telco WHERE InternetService = 'Fiber optic'"),
    ("各套餐的平均月费是多少", "SELECT Contract, AVG(MonthlyCharges) FROM telco GROUP BY 1"),
    ("每小时话务量的变化趋势", "SELECT ts, calls FROM milan_total ORDER BY ts"),
    ("most frequent items in the baskets", "SELECT item, COUNT(*) FROM groceries GROUP BY 1 ORDER BY 2 DESC"),
]


def test_similar_examples_by_bm25(store):
    assert store.similar_examples(A, "demo", "anything at all") == []  # an empty library
    for q, sql in LIBRARY:
        store.add_example(A, "demo", q, sql=sql)
    best = store.similar_examples(A, "demo", "number of customers with fiber optic", k=2)
    assert best[0]["question"] == LIBRARY[1][0] and best[0]["score"] == 1.0 and len(best) <= 2
    zh = store.similar_examples(A, "demo", "话务量的趋势怎么样", k=1)
    assert [e["question"] for e in zh] == [LIBRARY[3][0]]
    assert store.similar_examples(A, "demo", "zebra giraffe") == []  # nothing shared: nothing returned
    assert store.similar_examples(A, "other_ws", "fiber optic customers") == []


def test_similar_examples_with_an_embedder_embed_each_example_once(store):
    from zhinao.runtime.echo import HashEmbedder

    emb = HashEmbedder()
    calls: list[int] = []

    def embed(texts):
        calls.append(len(texts))
        return emb.embed(texts)

    for q, sql in LIBRARY:
        store.add_example(A, "demo", q, sql=sql)
    best = store.similar_examples(A, "demo", "average monthly charges per contract", k=3, embed=embed)
    assert best[0]["question"] == LIBRARY[0][0] and len(best) == 3
    assert best[0]["score"] >= best[1]["score"] >= best[2]["score"]
    assert calls == [1, len(LIBRARY)]  # the question, then every example once
    store.similar_examples(A, "demo", "frequent basket items", embed=embed)
    assert calls[2:] == [1]  # the examples' embeddings were kept


def test_tokens_and_bm25():
    assert tokens("How many Customers use Fiber?") == ["customer", "use", "fiber"]
    assert "话务量" in tokens("每小时话务量的变化趋势")
    scores = bm25(["fiber"], [["fiber", "optic"], ["dsl"], []])
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0
    assert bm25([], [["x"]]) == [0.0]


def test_retrieval_sees_every_change_to_the_library_even_from_another_process(store):
    other = AgentStore(store.db)  # another process's store: its own cache over the same tables
    for q, sql in LIBRARY[:2]:
        store.add_example(A, "demo", q, sql=sql)
    assert other.similar_examples(A, "demo", "frequent basket items") == []
    eid = store.add_example(A, "demo", *LIBRARY[4])
    assert [e["id"] for e in other.similar_examples(A, "demo", "frequent basket items")] == [eid]
    store.add_example(A, "demo", LIBRARY[4][0], sql="SELECT 42")  # replaced: the new SQL is retrieved
    assert other.similar_examples(A, "demo", "frequent basket items")[0]["sql"] == "SELECT 42"
    store.delete_example(A, eid)
    assert other.similar_examples(A, "demo", "frequent basket items") == []
    store.clear_examples(A, "demo")
    assert other.similar_examples(A, "demo", "fiber optic customers") == []
