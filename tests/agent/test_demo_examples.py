"""The demo workspace's seeded example library (agent/demo/accepted_examples.jsonl).

Every example runs in the real SQL sandbox on the real demo workspace; none repeats an
evaluation question or its gold SQL (the library must teach the kinds of question, not leak
the answers the shipped set scores); seeding is idempotent, never overrides a user's verdict,
and the demo loader puts the library into the demo workspace.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from zhinao.agent.demo_examples import CATEGORIES, EXAMPLES, load_examples, seed_demo_examples
from zhinao.agent.evaluate import DEMO_QUESTIONS, load_questions
from zhinao.agent.store import AgentStore
from zhinao.errors import InvalidRequest

TENANT = 1


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo workspace as the platform makes it (AnalyticsService.ensure_demo), and its store."""
    from zhinao.analytics.service import AnalyticsService
    from zhinao.capability import migration_dirs
    from zhinao.settings import Settings
    from zhinao.store.db import Database

    home = tmp_path_factory.mktemp("demo-examples-home")
    db = Database(f"sqlite:///{home / 'meta.db'}")
    db.migrate(migration_dirs())
    svc = AnalyticsService(settings=Settings(home=home), db=db)
    svc.ensure_demo(TENANT)
    yield svc.workspaces.workspace(TENANT, "demo"), AgentStore(db)
    db.dispose()


@pytest.fixture(scope="module")
def examples():
    return load_examples()


def _norm_sql(sql: str) -> str:
    import sqlglot

    return sqlglot.parse_one(sql, read="duckdb").sql("duckdb", normalize=True, pretty=False).lower()


def _bigrams(text: str) -> set[str]:
    t = re.sub(r"\s+", " ", text.lower()).strip()
    return {t[i:i + 2] for i in range(len(t) - 1)}


def jaccard(a: str, b: str) -> float:
    x, y = _bigrams(a), _bigrams(b)
    return len(x & y) / len(x | y) if x | y else 1.0


def test_the_library_covers_every_kind_in_both_languages(examples):
    assert 40 <= len(examples) <= 80
    assert all(e["sample"] is True for e in examples)
    cats = Counter(e["category"] for e in examples)
    assert set(cats) == set(CATEGORIES) and min(cats.values()) >= 5, cats
    langs = Counter(e["lang"] for e in examples)
    assert set(langs) == {"zh", "en"} and min(langs.values()) >= 0.35 * len(examples), langs
    assert len({e["id"] for e in examples}) == len(examples)


def test_every_example_runs_in_the_sandbox_and_returns_rows(demo, examples):
    ws, _ = demo
    for e in examples:
        res = ws.run_sql(e["sql"], max_rows=5000)
        rows = res.json_rows()
        assert rows, f"{e['id']}: no rows"
        assert all(v is not None for v in rows[0]), f"{e['id']}: NULL in the first row {rows[0]}"


def test_no_example_repeats_an_eval_question_or_its_gold_sql(examples):
    evals = load_questions(DEMO_QUESTIONS)
    gold = {_norm_sql(q["sql"]) for q in evals if q.get("sql")}
    for e in examples:
        assert _norm_sql(e["sql"]) not in gold, f"{e['id']} has an eval question's gold SQL"
        near = max(evals, key=lambda q: jaccard(q["q"], e["q"]))
        assert jaccard(near["q"], e["q"]) < 0.6, f"{e['id']} is too close to {near['id']}: {near['q']!r}"


def test_the_near_duplicate_measure_catches_a_reworded_copy():
    a = "How many customers pay by electronic check and use paperless billing?"
    assert jaccard(a, "How many customers pay by electronic check and use paperless billing") > 0.9
    assert jaccard(a, "how many Customers pay by Electronic check, using paperless billing?") > 0.6
    assert jaccard(a, "月费超过 100 美元的客户有多少人？") < 0.1


def test_seeding_is_idempotent_and_never_overrides_a_user(demo, examples):
    _, store = demo
    store.clear_examples(TENANT, "demo")
    first = examples[0]
    store.add_example(TENANT, "demo", first["q"], sql="SELECT 42", source="corrected")  # a user's verdict
    assert seed_demo_examples(store, TENANT, "demo") == len(examples) - 1
    assert seed_demo_examples(store, TENANT, "demo") == 0  # idempotent
    lib = store.examples(TENANT, "demo")
    assert len(lib) == len(examples)
    mine = next(x for x in lib if x["question"] == first["q"])
    assert mine["sql"] == "SELECT 42" and mine["source"] == "corrected"
    assert {x["source"] for x in lib if x["question"] != first["q"]} == {"manual"}
    assert store.examples(TENANT, "other") == []  # only the named workspace


def test_retrieval_brings_an_example_of_the_same_kind(demo):
    _, store = demo
    store.clear_examples(TENANT, "demo")
    seed_demo_examples(store, TENANT, "demo")
    hits = store.similar_examples(TENANT, "demo", "What share of customers have online backup?", 3)
    assert hits and any("CASE WHEN" in h["sql"] for h in hits), hits


def test_a_broken_library_file_is_refused_with_its_line(tmp_path):
    p = tmp_path / "ex.jsonl"
    good = json.dumps({"id": "a", "lang": "en", "q": "How many rows?", "sql": "SELECT COUNT(*) FROM t",
                       "category": "aggregation", "sample": True})
    p.write_text(good + "\n" + json.dumps({"id": "b", "lang": "en", "q": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="line 2: missing sql, category, sample"):
        load_examples(p)
    p.write_text(good + "\n" + good + "\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="duplicate id"):
        load_examples(p)
    p.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="line 1: not JSON"):
        load_examples(p)
    assert EXAMPLES.is_file()


@pytest.mark.slow
def test_the_demo_loader_seeds_the_demo_workspace(settings):
    from zhinao.demo import load_demo
    from zhinao.platform import Platform

    p = Platform(settings)
    try:
        status = load_demo(p)
        assert status.get("agent") == "loaded", status
        tenant = p.tenancy.tenant_by_name("default")["id"]
        n = len(AgentStore(p.db).examples(tenant, "demo"))
        assert n == len(load_examples())
        assert load_demo(p)["agent"] == "loaded" and len(AgentStore(p.db).examples(tenant, "demo")) == n
    finally:
        import asyncio

        asyncio.run(p.aclose())
