"""GRPO with an execution reward: the reward's classes on a real sandboxed DuckDB workspace, the
data it trains on (never the shipped evaluation set), bad input, a few real steps, the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from zhinao.alignment import grpo as g
from zhinao.alignment.config import GrpoStage, stage_config
from zhinao.analytics.workspace import Workspace
from zhinao.errors import InvalidRequest, NotFound

TENANT = 1
runner = CliRunner()

ORDERS = pd.DataFrame({"id": [1, 2, 3, 4, 5, 6], "city": ["Beijing", "Shanghai", "Beijing", "Shenzhen", "Beijing",
                                                          "Shanghai"],
                       "amount": [12.5, 30.0, 7.25, 99.0, 15.0, 42.0]})
#: question -> SQL pairs written for these tests (not from any benchmark or the shipped set)
PAIRS = [("How many orders are there?", "SELECT COUNT(*) FROM orders"),
         ("What is the total order amount?", "SELECT SUM(amount) FROM orders"),
         ("How many orders came from Beijing?", "SELECT COUNT(*) FROM orders WHERE city = 'Beijing'"),
         ("List every city with its number of orders.", "SELECT city, COUNT(*) FROM orders GROUP BY city"),
         ("Show every order.", "SELECT * FROM orders")]
ECHO = [("Run this query: SELECT COUNT(*) FROM orders", "SELECT COUNT(*) FROM orders"),
        ("Run this query: SELECT city FROM orders WHERE amount > 20", "SELECT city FROM orders WHERE amount > 20")]


class CountingWorkspace(Workspace):
    """The real workspace, counting the statements that reached the sandbox."""

    def __init__(self, path, sql_limits=None):
        super().__init__(path, sql_limits)
        self.ran: list[str] = []

    def run_sql(self, sql, max_rows=None, **limits):
        self.ran.append(sql)
        return super().run_sql(sql, max_rows, **limits)


def _analytics(service):
    from zhinao.analytics.service import AnalyticsService

    return AnalyticsService(settings=service.settings, db=service.db)


@pytest.fixture
def shop(service):
    """A small real workspace ``shop`` with one table and the tests' accepted examples in the agent store."""
    from zhinao.agent.store import AgentStore

    wm = _analytics(service).workspaces
    wm.ensure(TENANT, "shop")
    ws = wm.workspace(TENANT, "shop")
    ws.write_table("orders", ORDERS)
    store = AgentStore(service.db)
    for q, sql in PAIRS:
        store.add_example(TENANT, "shop", q, sql, source="accepted")
    return ws


def test_the_reward_scores_right_wrong_error_and_never_executes_a_write(shop):
    ws = CountingWorkspace(shop.path, shop.sql_limits)
    tasks, left = g.load_tasks(ws, [{"question": q, "sql": s} for q, s in PAIRS])
    assert len(tasks) == 5 and left == {}
    reward = g.ExecutionReward(ws, ws.tables(), tasks, wrong_reward=0.1)
    count = tasks[0]  # How many orders are there? -> 6
    assert reward.score("```sql\nSELECT COUNT(id) AS n FROM orders\n```", count) == (1.0, "right")
    assert reward.score("SELECT COUNT(*) FROM orders WHERE amount > 10", count) == (0.1, "wrong")
    assert reward.score("```sql\nSELECT COUNT(*) FROM order_lines\n```", count)[0] == 0.0  # no such table
    assert reward.score("SELECT SUM(no_such_column) FROM orders", count) == (0.0, "error")
    assert reward.score("I do not know.", count) == (0.0, "no_sql")
    by_city = tasks[3]  # rows in another order are still right (a multiset)
    assert reward.score("SELECT city, COUNT(*) FROM orders GROUP BY city ORDER BY city DESC", by_city)[1] == "right"
    ws.ran.clear()
    for bad in ("DELETE FROM orders", "```sql\nDROP TABLE orders\n```", "UPDATE orders SET amount = 0",
                "SELECT * FROM read_csv('/etc/passwd')", "SELECT 1; DELETE FROM orders"):
        assert reward.score(bad, count) == (0.0, "refused"), bad
    assert ws.ran == []  # refused before the engine
    assert ws.run_sql("SELECT COUNT(*), SUM(amount) FROM orders").rows() == [(6, 205.75)]
    # TRL's call: conversational completions, the dataset's task column as a keyword
    done = reward([[{"role": "user", "content": "q"}]] * 2,
                  [[{"role": "assistant", "content": "SELECT SUM(amount) FROM orders"}],
                   [{"role": "assistant", "content": "DROP TABLE orders"}]], task=[1, 1])
    assert done == [1.0, 0.0] and reward.counts["right"] == 1 and reward.counts["refused"] == 1
    with pytest.raises(InvalidRequest, match="no 'task' column"):
        reward(["q"], ["SELECT 1"])


def test_training_data_leaves_out_the_shipped_eval_set_tool_calls_and_failing_sql(shop):
    shipped = g.shipped_sql_questions()
    assert shipped and all(q.get("sql") for q in shipped)
    examples = [{"question": q, "sql": s} for q, s in PAIRS]
    examples += [{"question": shipped[0]["q"], "sql": "SELECT COUNT(*) FROM orders"},  # an eval question
                 {"question": "Same SQL as an eval question, new words", "sql": shipped[1]["sql"]},
                 {"question": "Fit a churn model", "sql": None, "call": {"tool": "run_model"}},
                 {"question": "Average basket?", "sql": "SELECT AVG(basket) FROM orders"},  # no such column now
                 {"question": "how many orders are there", "sql": "SELECT COUNT(*) FROM orders"}]  # repeated
    tasks, left = g.load_tasks(shop, examples, max_rows=5, exclude=shipped)
    assert [t.question for t in tasks] == [q for q, _ in PAIRS[:4]]  # 'every order' is 6 rows, over the cap
    assert left == {"eval_overlap": 2, "no_sql": 1, "gold_fails": 1, "duplicate": 1, "gold_too_big": 1}


def test_the_seeded_sample_is_the_one_bench_agent_draws():
    import random

    from zhinao.agent.evaluate import DEMO_QUESTIONS, load_questions

    qs = [q for q in load_questions(DEMO_QUESTIONS) if q.get("sql")]
    want = [q["id"] for q in random.Random(0).sample(qs, 40)]
    assert [q["id"] for q in g.shipped_sql_questions(40, 0)] == want
    assert len(g.shipped_sql_questions(0)) == len(qs)


def test_grpo_config_is_validated_before_anything_loads():
    c = stage_config("grpo", {"workspace": "shop", "max_steps": 3})
    assert isinstance(c, GrpoStage) and c.dataset == "" and c.wrong_reward == 0.1
    for data, needle in [({}, "workspace is required"),
                         ({"workspace": "w", "num_generations": 1, "per_device_train_batch_size": 2},
                          "at least 2"),
                         ({"workspace": "w", "num_generations": 3}, "multiple of num_generations"),
                         ({"workspace": "w", "wrong_reward": 1.5}, "wrong_reward"),
                         ({"workspace": "w", "temperature": 0}, "temperature"),
                         ({"workspace": "w", "dataset_x": 1}, "unknown grpo config field")]:
        with pytest.raises(InvalidRequest, match=needle):
            stage_config("grpo", data)


def test_bad_input_is_a_clear_error_before_training(service, shop):
    from zhinao.agent.store import AgentStore

    _analytics(service).workspaces.ensure(TENANT, "empty")
    with pytest.raises(InvalidRequest, match="no accepted examples"):
        service.train(TENANT, "grpo", {"workspace": "empty", "base_model": "smollm2-135m"})
    with pytest.raises(NotFound):
        service.train(TENANT, "grpo", {"workspace": "nowhere"})
    with pytest.raises(NotFound):  # another tenant's workspace is not found
        service.train(2, "grpo", {"workspace": "shop"})
    AgentStore(service.db).add_example(TENANT, "empty", "Fit a model", call={"tool": "run_model", "args": {}})
    with pytest.raises(InvalidRequest, match="none of workspace 'empty'"):
        service.train(TENANT, "grpo", {"workspace": "empty"})
    with pytest.raises(InvalidRequest, match="at least 8 usable examples"):  # 5 examples, 2 generations a prompt
        service.train(TENANT, "grpo", {"workspace": "shop", "num_generations": 2, "per_device_train_batch_size": 16})


def _smol(base_home):
    from zhinao.alignment.base_models import cache_dir, resolve
    from zhinao.settings import Settings

    s = Settings(home=base_home)
    return cache_dir(s, resolve("smollm2-135m", s))


@pytest.mark.slow
def test_cli_grpo_trains_logs_the_reward_changes_weights_and_sql_eval_scores_it(settings, base_home, tmp_path):
    """One real run (SmolLM2-135M, 2 steps of 2 prompts x 4 answers) through the CLI and the job runner."""
    import torch

    from zhinao.agent.store import AgentStore
    from zhinao.alignment.base_models import load_causal_lm
    from zhinao.cli.align import app
    from zhinao.cli.common import platform

    with platform() as p:
        wm = p.service("analytics").workspaces
        for name, pairs in (("shop", PAIRS), ("echo", ECHO)):
            wm.ensure(TENANT, name)
            wm.workspace(TENANT, name).write_table("orders", ORDERS)
            for q, sql in pairs:
                AgentStore(p.db).add_example(TENANT, name, q, sql)
    base = _smol(base_home)
    # questions a 135M model can answer sometimes, so that each group's rewards differ
    r = runner.invoke(app, ["grpo", "-w", "echo", "-b", str(base), "--steps", "2", "--output-name", "cli-grpo",
                            "--set", "max_completion_length=32", "--set", "learning_rate=0.005", "--set", "seed=1",
                            "--json"])
    assert r.exit_code == 0, r.output
    job = json.loads(r.stdout)
    assert job["status"] == "succeeded" and job["result"]["model"] == "cli-grpo", job
    m = job["result"]["metrics"]
    assert m["stage"] == "grpo" and m["steps"] == 2 and m["n_train"] == 2 and "step 2/2" in r.stderr
    assert len(m["reward_curve"]) == 2 and all(0 <= x <= 1 for x in m["reward_curve"])
    assert sum(m["reward_classes"].values()) == 16  # 2 steps x 8 completions, each scored once
    assert m["s_per_step"] > 0 and m["peak_rss_mb"] > 0
    assert any("reward" in h and "sql/right" in h for h in job["result"]["history"])
    with platform() as p:
        row = p.service("alignment").model(TENANT, "cli-grpo")
    assert row["stage"] == "grpo" and row["metrics"]["reward_classes"] == m["reward_classes"]
    if m["reward_classes"]["right"] + m["reward_classes"]["wrong"] == 0:
        pytest.fail(f"every sampled answer scored 0, nothing to learn from: {m['reward_classes']}")
    before, after = load_causal_lm(base).state_dict(), load_causal_lm(row["path"]).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "rewards varied but no weight changed"
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps({"id": f"t{i}", "q": q, "sql": s}) + "\n" for i, (q, s) in enumerate(PAIRS)))
    r = runner.invoke(app, ["sql-eval", "cli-grpo", "-w", "shop", "-q", str(qfile), "--limit", "0",
                            "--max-new-tokens", "24", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["n"] == 5 and 0 <= out["execution_accuracy"] <= 1 and sum(out["classes"].values()) == 5
    r = runner.invoke(app, ["grpo", "--json"])
    assert r.exit_code == 2 and "workspace is required" in r.output
    r = runner.invoke(app, ["sql-eval", "cli-grpo", "-w", "nowhere", "-q", str(qfile)])
    assert r.exit_code != 0 and "nowhere" in r.output
