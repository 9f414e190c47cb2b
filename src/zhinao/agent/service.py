"""``AgentService``: a conversation over one analytics workspace (issue 12).

One question becomes one turn: check the workspace is the caller's tenant's; refuse writes
and catch what the data cannot answer before any model runs; route (embeddings, the model
below a margin — :mod:`zhinao.agent.router`); run the tool(s); narrate the result in the
question's language from the numbers in it (:mod:`zhinao.agent.narrate`); mask personal
columns unless the caller's role may see them; store the answer and the session's state,
so a follow-up ("now only for fiber customers") re-asks the previous question with the
added filter, with the previous question and SQL before it.

Every model call goes through ``llm(principal, "agent")`` — the MaaS layer's
:class:`~zhinao.maas.client.LLMClient` — wrapped as a :class:`~zhinao.agent.base.ModelFn`
whose ``purpose`` names the usage row; the service never holds an engine. Bad input (a
missing table, data the workspace lacks, a delete request, SQL pasted into a question, an
empty workspace, a malformed model reply) is a clear answer with ``found`` False and nothing
written — the session continues; only a bad request itself (an empty question, a workspace
of another tenant, a session that is not the caller's) is an error (4xx).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from zhinao.agent import narrate as nr
from zhinao.agent.base import AgentAnswer, ToolCall, ToolContext, ToolResult, tools
from zhinao.agent.router import DEFAULT_MARGIN, FACT_REQUEST, ROUTES, Router
from zhinao.agent.tools_builtin import (DescribeSchema, Explain, MakeChart, RunModel, RunSql, chart_spec, is_zh,
                                        mask_personal, sqlgen_index, task_of)
from zhinao.errors import InvalidRequest, NotFound, ZhinaoError
from zhinao.runtime.base import GenerationParams, Message

log = logging.getLogger(__name__)

#: the usage rows' capability name (each call's ``purpose`` refines it: agent.sql, agent.route …)
CAPABILITY = "agent"
MAX_QUESTION_CHARS = 2000
#: result rows kept in the session state (charts and follow-ups read them)
STATE_ROWS = 50
#: earlier turns ({"question", "sql"}) kept for follow-ups
HISTORY = 4

_BUILTIN = {t.name: t for t in (DescribeSchema(), RunSql(), RunModel(), MakeChart(), Explain())}

#: a request to change data; the agent is read-only, so it answers with a refusal
_WRITE_EN = re.compile(r"\b(delete|drop|truncate|insert\s+into|update|alter\s+table|wipe|erase|overwrite|"
                       r"remove\s+(all|every|the)\b|replace\s+into|grant|create\s+table|merge\s+into)\b", re.I)
_WRITE_ZH = re.compile(r"删除|删掉|删了|清空|清除|清掉|抹掉|修改数据|修改表|修改.*的值|更新数据|更新表|更新.*为|"
                       r"把.*改为|插入|写入|覆盖|建表|销毁")
#: a request to read files, URLs or other databases of the server (the agent reads the workspace's tables only)
_FILE_REQUEST = re.compile(
    r"\b(read_(csv|csv_auto|text|blob|parquet|json|json_auto|ndjson|xlsx|xls)|glob|parquet_scan|sniff_csv|"
    r"sqlite_scan|postgres_scan|mysql_scan|iceberg_scan|delta_scan)\s*\(|\battach\s+(database\s+)?['\"]|"
    r"\bcopy\b[^;]{0,200}\b(to|from)\s+['\"]|\b(file|https?|s3|gcs)://|"
    r"(?<![\w.])(/etc|/proc|/root|/home|/var|/usr|/tmp|/dev|/sys|~)/[\w.\-/]*|[a-z]:\\\\|\.\./", re.I)
#: a follow-up of the previous question (only when the session has one)
_FOLLOW_EN = re.compile(r"^\s*(now|and|also|what about|how about|only|just|same|but|then|instead|except)\b|"
                        r"\bonly (for|the|in|with|customers|those)\b|\bjust (for|the)\b|\binstead\b|\bexcluding\b", re.I)
_FOLLOW_ZH = re.compile(r"^\s*(那|那么|再|只看|只要|仅|换成|改成|其中|同样|如果只|如果是|按照|改为|换)|只看|只统计|仅限|"
                        r"只算|只要|排除|去掉")
#: a question that asks for a model by name (without one of run_model's task words, the embeddings'
#: "model" route sent "What is the most common label?" to an HMM word tagger)
_MODEL_WORDS = re.compile(r"\b(model|train|fit|classif\w*|regress\w*|predict\w*|score|cluster\w*|knn|"
                          r"naive bayes|tree|hmm|arima|apriori|likely|likelihood|probabilit\w*|risk|why)\b|"
                          r"模型|训练|分类|回归|预测|评分|聚类|分词|可能|概率|风险|倾向|为什么|原因", re.I)
#: a question that is itself one SQL statement
_SQL_START = re.compile(r"^\s*(select|with)\b", re.I)
#: names a question gives as tables ("the orders table", "表 orders", "orders 表")
_TABLE_REFS = (re.compile(r"\btable\s+(?:named\s+|called\s+)?[`\"'“]?([A-Za-z_][A-Za-z0-9_]*)", re.I),
               re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)[`\"'”]?\s+table\b", re.I),
               re.compile(r"表\s*[`\"'“「]?([A-Za-z_][A-Za-z0-9_]*)"),
               re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[`\"'”」]?\s*(?:表|数据表)"))
_NOT_NAMES = {"the", "a", "an", "this", "that", "which", "each", "every", "my", "our", "your", "has", "have", "with",
              "of", "in", "is", "are", "data", "what", "any", "one", "new", "same", "other", "result", "results",
              "pivot", "lookup", "whole", "entire", "full", "its", "their", "to", "as", "from", "for", "and", "or",
              "and", "all", "by", "on", "summary", "sql", "frequency", "contingency", "look", "truth", "time"}


class MeteredModel:
    """The :class:`~zhinao.agent.base.ModelFn` over one principal's :class:`LLMClient`.

    Keeps the chat turns it made (the platform's RLHF turn log), so an accepted or corrected
    answer can carry feedback on the turn that produced its SQL.
    """

    def __init__(self, client: Any, model: str | None = None):
        self.client, self.model = client, model
        self.turns: list[tuple[str, int]] = []
        self.engine_model: str | None = None

    async def __call__(self, messages: Sequence[Message], params: GenerationParams, *,
                       purpose: str = CAPABILITY) -> str:
        gen = await self.client.complete(list(messages), params, model=self.model, purpose=purpose)
        if getattr(gen, "turn_id", None):
            self.turns.append((purpose, int(gen.turn_id)))
        self.engine_model = getattr(gen, "engine_model", None) or getattr(gen, "model", None) or self.engine_model
        return gen.content or ""


def write_request(question: str) -> bool:
    """True for a request to delete, update or write data (in words or as SQL)."""
    return bool(_WRITE_EN.search(question) or _WRITE_ZH.search(question))


_SQL_WORDS = frozenset("select from where group by order having limit as and or not in is null join on with count sum "
                       "avg min max distinct case when then else end like between union all desc asc".split())


def mostly_zh(text: str) -> bool:
    """Chinese when the text (the question without its table and column names) has at least as
    many CJK characters as English words — "How many reviews mention 送餐 or 配送?" is English
    with Chinese search terms; "用 Python 统计每个城市的评论数" is Chinese. SQL keywords don't count."""
    cjk = len(re.findall(r"[\u4e00-\u9fff]", text or ""))
    sql = bool(re.match(r"\s*(select|with)\b", text or "", re.I))
    words = [w for w in re.findall(r"[A-Za-z]{2,}", text or "") if not (sql and w.lower() in _SQL_WORDS)]
    return cjk > 0 and cjk >= len(words)


def ambiguity_note(sql: str | None, question: str, schema: dict[str, set[str]], zh: bool) -> str:
    """A note when the query read a column that other tables of the workspace have too and the
    question named no table ("the most common label" with ``label`` in news and hotel_reviews):
    the answer says which table it used, so a user who meant the other one can say so."""
    if not sql or len(schema) < 2:
        return ""
    try:
        import sqlglot
        from sqlglot import exp

        root = sqlglot.parse_one(sql, read="duckdb")
    except Exception:  # noqa: BLE001 - a statement sqlglot cannot read gets no note
        return ""
    used = {t.name for t in root.find_all(exp.Table)}
    low = question.lower()
    if any(t.lower() in low for t in schema):
        return ""
    shared: dict[str, list[str]] = {}
    for c in root.find_all(exp.Column):
        name = (c.name or "").lower()
        others = sorted(t for t, cols in schema.items() if t not in used and name in cols)
        if name and others and any(name in schema.get(t, set()) for t in used):
            shared.setdefault(c.name, others)
    if not shared:
        return ""
    col, others = next(iter(shared.items()))
    here = ", ".join(sorted(used))
    return (f"（注意：{', '.join(others)} 表里也有 {col} 列，这里用的是 {here}；如果指的是另一张表，请在问题里写明表名。）"
            if zh else f" (Note: {', '.join(others)} also has a column {col}; this used {here} — name the table "
            "if you meant another.)")


def file_request(question: str) -> bool:
    """True for a question that asks to read a file, a URL or another database of the server
    (``read_csv('/etc/passwd')``, ``ATTACH '…'``, ``../``): answered with a refusal before any
    model runs — the model would otherwise write code or SQL around the path, and a checker that
    drops the file read would run something the user did not ask for."""
    return bool(_FILE_REQUEST.search(question))


def follow_up_base(state: dict[str, Any]) -> str | None:
    """The question a follow-up refines: the previous data question *asked* (answered or not —
    "now only for X" after a failed turn means that turn's question), else the last answered."""
    asked = state.get("asked") or {}
    if asked.get("route") == "sql" and asked.get("question"):
        return str(asked["question"])
    last = state.get("last") or {}
    return str(last["question"]) if last.get("sql") and last.get("question") else None


def is_follow_up(question: str, state: dict[str, Any]) -> bool:
    if follow_up_base(state) is None:
        return False
    return bool(_FOLLOW_EN.search(question) or _FOLLOW_ZH.search(question))


_MISSING_COLUMN = re.compile(r"column '([^']+)' does not exist|Referenced column \"([^\"]+)\" not found", re.I)


def lacking_column(question: str, error: str | None, columns: set[str]) -> str | None:
    """The column a failed query needed that the workspace does not have *and the question asked
    for* ("average revenue per department" over tables without any revenue): the data lacks it, so
    the answer says so. None when the model merely misspelt a column that exists (``order金额``
    for 订单金额: not in the question) or the name is close to a real column."""
    import difflib

    m = _MISSING_COLUMN.search(error or "")
    if not m:
        return None
    bad = (m.group(1) or m.group(2) or "").strip().strip('"').split(".")[-1]
    low = bad.lower()
    if len(low) < 2 or low not in question.lower():
        return None
    if any(low in c or c in low for c in columns if len(c) >= 3) or difflib.get_close_matches(low, list(columns), 1, 0.8):
        return None
    return bad


def missing_tables(question: str, tables: Sequence[str], columns: set[str]) -> list[str]:
    """Tables the question names that the workspace lacks; [] when any named one exists."""
    have = {t.lower() for t in tables}
    named: list[str] = []
    for pat in _TABLE_REFS:
        for m in pat.finditer(question):
            n = m.group(1)
            if n.lower() in _NOT_NAMES or n.lower() in columns:
                continue
            named.append(n)
    if not named or any(n.lower() in have for n in named):
        return []
    return sorted(set(named))


_IDENT = re.compile(r"\b([A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+)\b")
_DEMO_PREFIX = re.compile(r"^\s*[\w ]*demo\s*:\s*", re.I)


def lacking_terms(question: str, glossary: Sequence[dict[str, Any]], columns: set[str]) -> list[tuple[str, list[str]]]:
    """Glossary terms the question asks about that no column of the workspace can compute.

    A term's ``formula`` lists ways to compute it, separated by ``;`` (``SUM(data_volume) /
    COUNT(DISTINCT user); Telco demo: AVG(MonthlyCharges)``). A way is possible when every
    column-like name in it (``snake_case``) is a column here, or when it names a column here;
    a term is lacking only when it has column-like names and no way is possible — "DOU" over
    a table without any usage volume, not "penetration rate", whose formula is prose.
    """
    out = []
    low = question.lower()
    for g in glossary:
        names = [n for n in (g.get("term"), g.get("term_en")) if n]
        if not any(re.search(r"(?<![a-z])" + re.escape(n.lower()) + r"(?![a-z])", low) for n in names):
            continue
        ways = [w for w in str(g.get("formula") or "").split(";") if w.strip()]
        idents = [[i for i in _IDENT.findall(_DEMO_PREFIX.sub("", w))] for w in ways]
        if not ways or not any(idents):
            continue
        possible = False
        for w, ids in zip(ways, idents):
            words = {x.lower() for x in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", _DEMO_PREFIX.sub("", w))}
            if (ids and all(i.lower() in columns for i in ids)) or (not ids and words & columns):
                possible = True
                break
        if not possible:
            missing = sorted({i for ids in idents for i in ids if i.lower() not in columns})
            out.append((str(g.get("term")), missing))
    return out


def may_see_personal(principal: Any, settings: Any = None) -> bool:
    """Whether the caller's role may see columns marked personal (``Settings.agent_personal_roles``)."""
    try:
        from zhinao.agent import personal
    except ImportError:  # a build without the personal-data module: only admins see raw values
        return getattr(principal, "role", "") in ("admin", "operator")
    return bool(personal.may_see_personal(principal, settings))


class AgentService:
    """Ask a workspace; accept or correct answers (the example library and the feedback store)."""

    def __init__(self, *, settings: Any, db: Any, analytics: Any, llm: Callable[[Any, str], Any] | None,
                 embedder: Any, store: Any):
        """``llm``: ``llm(principal, capability) -> LLMClient`` (None: no model — SQL given as SQL,
        schema, explanations, catalogue models still work); ``embedder``: an Embedder or a
        zero-argument callable giving it; ``store``: an :class:`~zhinao.agent.store.AgentStore`
        (None: sessions live in memory and nothing is recorded)."""
        self.settings, self.db, self.analytics, self.llm, self.store = settings, db, analytics, llm, store
        self._embedder = embedder
        self._router: Router | None = None
        self._lock = threading.Lock()
        self._memory: dict[str, dict[str, Any]] = {}  #: sessions without a store
        self._indexes: dict[tuple[int, str], tuple[Any, Any]] = {}

    # -- parts ------------------------------------------------------------------------------
    @property
    def embedder(self) -> Any:
        e = self._embedder
        if e is not None and callable(e) and not hasattr(e, "embed"):
            self._embedder = e = e()
        return e

    def embed(self, texts: Sequence[str], kind: str = "query") -> list[list[float]]:
        return self.embedder.embed(list(texts), kind)

    def tools(self) -> dict[str, Any]:
        """The registered tools (entry points, ``register_tool``), the built-ins where absent."""
        return {**_BUILTIN, **dict(tools())}

    @property
    def router(self) -> Router:
        with self._lock:
            if self._router is None:
                have = self.tools()
                routes = [r for r, t in ROUTES.items() if t in have]
                emb = self.embedder
                self._router = Router(self.embed, tools=have, routes=routes, margin=DEFAULT_MARGIN,
                                      cache_key=(type(emb).__name__, getattr(emb, "name", ""), getattr(emb, "dim", 0)))
            return self._router

    def _index(self, ctx: ToolContext) -> Any:
        """The SQL helper's schema index, rebuilt when the workspace's datasets change."""
        sig = tuple((d["name"], d.get("rows"), d.get("updated_at"))
                    for d in self.analytics.workspaces.datasets(ctx.tenant_id, ctx.workspace))
        sig += (tuple(ctx.ws.tables()), len(self.analytics.workspaces.glossary(ctx.tenant_id, ctx.workspace)))
        key = (ctx.tenant_id, ctx.workspace)
        hit = self._indexes.get(key)
        if hit and hit[0] == sig:
            return hit[1]
        index = sqlgen_index(ctx)
        self._indexes[key] = (sig, index)
        return index

    # -- sessions ---------------------------------------------------------------------------
    def _session(self, principal: Any, workspace: str, session_id: str | None) -> tuple[str, dict[str, Any]]:
        tid, uid = principal.tenant_id, getattr(principal, "user_id", None)
        if self.store is None:
            if session_id:
                st = self._memory.get(session_id)
                if st is None or st.get("_tenant") != tid:
                    raise NotFound(f"agent session {session_id!r} not found", param="session_id")
                return session_id, {k: v for k, v in st.items() if k != "_tenant"}
            import uuid

            sid = str(uuid.uuid4())
            self._memory[sid] = {"_tenant": tid, "workspace": workspace}
            return sid, {"workspace": workspace}
        if session_id:
            owner = {} if getattr(principal, "is_admin", False) else {"owner": uid}
            state = self.store.state(session_id, tid, **owner)
            if state.get("workspace") not in (None, workspace):
                raise InvalidRequest(f"session {session_id} is over workspace {state.get('workspace')!r}, "
                                     f"not {workspace!r}; start a new session", param="session_id")
            return session_id, state
        return self.store.new_session(tid, uid, workspace), {"workspace": workspace}

    def _save(self, principal: Any, sid: str, state: dict[str, Any]) -> None:
        clean = {k: v for k, v in state.items() if not k.startswith("_")}
        last = clean.get("last")
        if isinstance(last, dict) and last.get("rows"):
            clean["last"] = {**last, "rows": last["rows"][:STATE_ROWS]}
        if self.store is None:
            self._memory[sid] = {**clean, "_tenant": principal.tenant_id}
        else:
            self.store.save_state(sid, principal.tenant_id, clean)

    # -- asking -----------------------------------------------------------------------------
    async def ask(self, principal: Any, workspace: str, question: str, *, session_id: str | None = None,
                  model: str | None = None) -> AgentAnswer:
        """Answer ``question`` over ``workspace``; see the module docstring for what happens."""
        answer: AgentAnswer | None = None
        async for ev in self._turn(principal, workspace, question, session_id=session_id, model=model):
            if ev["event"] == "answer":
                answer = ev["answer"]
        assert answer is not None
        return answer

    async def ask_stream(self, principal: Any, workspace: str, question: str, *, session_id: str | None = None,
                         model: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """``{"event": "tool", ...}`` per tool call as it finishes, then ``{"event": "answer", "answer": {...}}``."""
        async for ev in self._turn(principal, workspace, question, session_id=session_id, model=model):
            if ev["event"] == "answer":
                yield {"event": "answer", "answer": ev["answer"].as_dict()}
            else:
                yield ev

    async def _turn(self, principal: Any, workspace: str, question: str, *, session_id: str | None,
                    model: str | None) -> AsyncIterator[dict[str, Any]]:
        t0 = time.perf_counter()
        if not isinstance(question, str) or not question.strip():
            raise InvalidRequest("the question is empty", param="question")
        question = question.strip()
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidRequest(f"a question is at most {MAX_QUESTION_CHARS} characters", param="question")
        tid = principal.tenant_id
        ws = await asyncio.to_thread(self.analytics.workspaces.workspace, tid, workspace)  # 404 for other tenants
        client = self.llm(principal, CAPABILITY) if self.llm is not None else None
        canonical = None
        if client is not None:
            canonical = client.check(model)  # scope and grant now (403/404), nothing charged
        mfn = MeteredModel(client, model) if client is not None else None
        sid, state = await asyncio.to_thread(self._session, principal, workspace, session_id)
        tables = await asyncio.to_thread(ws.tables)
        zh = is_zh(question) and mostly_zh(await asyncio.to_thread(self._without_names, ws, tables, question))
        ctx = ToolContext(tenant_id=tid, workspace=workspace, ws=ws, analytics=self.analytics, model=mfn,
                          settings=self.settings, principal=principal, allow_personal=may_see_personal(principal, self.settings),
                          state={**state, "_zh": zh, "_question": question})
        answer = AgentAnswer(answer="", session_id=sid, language="zh" if zh else "en", model=canonical)
        main: ToolResult | None = None
        route = ""
        if write_request(question):
            route, answer.found, answer.answer = "refuse", False, nr.refusal_text(zh)
        elif file_request(question) and not _SQL_START.match(question):  # SQL itself: the sandbox says why
            route, answer.found, answer.answer = "refuse", False, nr.file_refusal_text(zh)
        elif not tables:
            route, answer.found, answer.answer = "schema", False, nr.empty_text(zh, workspace)
        else:
            cols = await asyncio.to_thread(self._column_names, ws, tables)
            missing = missing_tables(question, tables, cols)
            if missing:
                route, answer.found = "sql", False
                answer.answer = nr.missing_table_text(missing, tables, zh)
        if not answer.answer:
            async for ev in self._plan(ctx, question, answer, zh):
                if ev["event"] == "tool":
                    yield ev
                else:
                    route, main = ev["route"], ev["result"]
        answer.route = route
        if main is not None:
            self._fill(answer, main, route, zh, ctx)
        if mfn is not None and mfn.engine_model:
            answer.model = answer.model or mfn.engine_model
        answer.latency_ms = round((time.perf_counter() - t0) * 1000, 1)
        await asyncio.to_thread(self._finish, principal, workspace, question, answer, ctx, mfn)
        yield {"event": "answer", "answer": answer}

    @staticmethod
    def _without_names(ws: Any, tables: Sequence[str], question: str) -> str:
        """The question without the workspace's table and column names: the language of the words
        around them decides the answer's ("Write SAS code for the average 订单金额 per 城市" is
        English; "每个城市的平均订单金额是多少？" stays Chinese without its names)."""
        names = set(tables)
        for t in tables:
            names |= {c for c, _ in ws.schema(t)}
        for n in sorted(names, key=len, reverse=True):
            if re.search(r"[\u4e00-\u9fff]", n):
                question = question.replace(n, " ")
            elif len(n) >= 2:
                question = re.sub(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])", " ", question)
        return question

    @staticmethod
    def _column_names(ws: Any, tables: Sequence[str]) -> set[str]:
        return {c.lower() for t in tables for c, _ in ws.schema(t)}

    async def _call(self, ctx: ToolContext, answer: AgentAnswer, name: str, args: dict[str, Any]) -> ToolResult:
        """Run one tool; any failure a user or a model reply can cause becomes ``ok=False``."""
        tool = self.tools().get(name)
        t0 = time.perf_counter()
        if tool is None:
            res = ToolResult(ok=False, error=f"the {name} tool is not installed on this platform")
        else:
            try:
                res = await tool.run(ctx, dict(args))
            except ZhinaoError as e:
                res = ToolResult(ok=False, error=e.message)
            except (ValueError, TypeError, KeyError) as e:  # e.g. a malformed model reply a tool did not expect
                log.warning("agent tool %s failed: %s", name, e, exc_info=True)
                res = ToolResult(ok=False, error=f"{name} could not use the model's reply ({type(e).__name__}: {e})")
            if not isinstance(res, ToolResult):
                res = ToolResult(ok=False, error=f"the {name} tool returned {type(res).__name__}, not a ToolResult")
        shown = {k: v for k, v in args.items() if k not in ("rows",)}
        answer.tool_calls.append(ToolCall(tool=name, args=shown, ok=res.ok, summary=res.summary, error=res.error,
                                          ms=round((time.perf_counter() - t0) * 1000, 1)))
        return res

    async def _plan(self, ctx: ToolContext, question: str, answer: AgentAnswer,
                    zh: bool) -> AsyncIterator[dict[str, Any]]:
        """Choose the route and call the tools; yields tool events, then ``{"event": "done", ...}``."""
        state = ctx.state

        async def call(name: str, args: dict[str, Any]) -> ToolResult:
            res = await self._call(ctx, answer, name, args)
            events.append({"event": "tool", **answer.tool_calls[-1].as_dict()})
            return res

        events: list[dict[str, Any]] = []
        if _SQL_START.match(question) and ";" not in question.strip().rstrip(";"):
            res = await call("run_sql", {"sql": question.strip().rstrip(";"), "question": question})
            for ev in events:
                yield ev
            yield {"event": "done", "route": "sql", "result": res}
            return
        follow = is_follow_up(question, state)
        if follow:
            decision_route = "sql"  # no routing: a follow-up refines the previous query
            state["_history"] = list(state.get("history") or [])[-HISTORY:]
        else:
            decision = await self.router.route(question, ctx.model)
            decision_route = decision.route
            state["_route"] = decision.as_dict()
        route = decision_route
        if route == "model" and not follow and not task_of(question) and not _MODEL_WORDS.search(question):
            route = "sql"  # no churn / segments / baskets / forecast and no model asked for: a query answers it
        res: ToolResult | None = None
        if route == "sql" and not follow:
            lacking = await asyncio.to_thread(self._lacking, ctx, question)
            if lacking:
                res = ToolResult(ok=False, data={"found": False}, error=nr.lacking_text(lacking, zh))
                for ev in events:
                    yield ev
                yield {"event": "done", "route": route, "result": res}
                return
        if route == "sql":
            if ctx.model is None:
                res = ToolResult(ok=False, error="no model is available to write SQL on this platform")
            else:
                await self._prepare_sql(ctx, question)
                q = question
                if follow:
                    prev = follow_up_base(state)
                    q = (f"{prev}（{question}）" if zh else f"{prev} ({question})")
                state["asked"] = {"question": q, "route": "sql"}
                res = await call("run_sql", {"question": q})
                if not res.ok and "candidates" in res.data:
                    cols = await asyncio.to_thread(self._column_names, ctx.ws, ctx.ws.tables())
                    bad = lacking_column(q, res.error, cols)
                    if bad:
                        res = ToolResult(ok=False, sql=res.sql, data={"found": False},
                                         error=nr.lacking_column_text(bad, zh))
                if res.ok:
                    hist = list(state.get("history") or [])
                    hist.append({"question": q, "sql": res.sql})
                    state["history"] = hist[-HISTORY:]
                    chart = chart_spec(res.columns or [], res.rows or [])
                    if chart and 2 <= len(res.rows or []) <= 50:
                        res.chart = chart
        elif route in ("model", "forecast"):
            args: dict[str, Any] = {"question": question}
            if route == "forecast":
                args["task"] = "forecast"
            elif task_of(question):
                args["task"] = task_of(question)
            res = await call("run_model", args)
        elif route == "chart":
            own_data = bool(FACT_REQUEST.search(question))  # "plot the average charge per contract"
            if (own_data or not (state.get("last") or {}).get("rows")) and ctx.model is not None:
                await self._prepare_sql(ctx, question)
                first = await call("run_sql", {"question": question})
                while events:  # the SQL's event now, before the chart is drawn
                    yield events.pop(0)
                if not first.ok:
                    res = first
            if res is None:
                res = await call("make_chart", {"question": question})
                last = state.get("last") or {}
                if res.ok and last:
                    res.columns, res.rows, res.sql = last.get("columns"), last.get("rows"), last.get("sql")
        elif route == "code":
            res = await call("write_code", {"question": question})
        elif route == "schema":
            res = await call("describe_schema", {"question": question})
        else:
            res = await call("explain", {"question": question})
        while events:
            yield events.pop(0)
        yield {"event": "done", "route": route, "result": res}

    async def _prepare_sql(self, ctx: ToolContext, question: str) -> None:
        """The schema index (cached per workspace) and the library's closest worked examples."""
        if "_sql_index" not in ctx.state:
            try:
                ctx.state["_sql_index"] = await asyncio.to_thread(self._index, ctx)
            except ImportError:
                return
        if self.store is not None and "_examples" not in ctx.state:
            try:
                ctx.state["_examples"] = await asyncio.to_thread(
                    self.store.similar_examples, ctx.tenant_id, ctx.workspace, question, 3,
                    (lambda texts: self.embed(texts, "query")) if self.embedder is not None else None)
            except ZhinaoError:
                ctx.state["_examples"] = []

    def _fill(self, answer: AgentAnswer, res: ToolResult, route: str, zh: bool, ctx: ToolContext) -> None:
        answer.sql = res.sql if res.ok or res.sql else None
        if not res.ok:
            answer.sql = None  # the final statement *executed*: a failed one was not
        answer.columns = list(res.columns or [])
        answer.rows = [list(r) for r in (res.rows or [])]
        answer.chart, answer.code, answer.call = res.chart, res.code, res.call
        answer.repaired = bool(res.data.get("repaired"))
        answer.found = bool(res.ok) and res.data.get("found", True) is not False
        if answer.rows and not ctx.allow_personal:
            answer.rows, answer.masked_columns = mask_personal(answer.columns, answer.rows, self._marks(ctx),
                                                               res.sql)
            if answer.masked_columns and answer.chart:
                answer.chart = None  # a chart of a personal column would show what the table masks
            if answer.masked_columns and ctx.state.get("last"):
                ctx.state["last"] = {**ctx.state["last"], "rows": answer.rows}
        answer.answer = nr.narrate(route, ToolResult(ok=res.ok, summary=res.summary, columns=answer.columns,
                                                     rows=answer.rows, chart=answer.chart, code=res.code,
                                                     data=res.data, error=res.error), zh)
        if route in ("sql", "chart") and answer.found and answer.sql:
            try:
                schema = {t: {c.lower() for c, _ in ctx.ws.schema(t)} for t in ctx.ws.tables()}
            except ZhinaoError:
                schema = {}
            answer.answer += ambiguity_note(answer.sql, str(ctx.state.get("_question") or ""), schema, zh) \
                if schema else ""

    def _lacking(self, ctx: ToolContext, question: str) -> list[tuple[str, list[str]]]:
        try:
            glossary = self.analytics.workspaces.glossary(ctx.tenant_id, ctx.workspace)
        except ZhinaoError:
            return []
        return lacking_terms(question, glossary, self._column_names(ctx.ws, ctx.ws.tables()))

    def _marks(self, ctx: ToolContext) -> dict[str, dict[str, str]]:
        try:
            from zhinao.agent.personal import workspace_marks
        except ImportError:
            return {}
        try:
            return workspace_marks(self.analytics.workspaces, ctx.tenant_id, ctx.workspace)
        except ZhinaoError:
            return {}

    def _finish(self, principal: Any, workspace: str, question: str, answer: AgentAnswer, ctx: ToolContext,
                mfn: MeteredModel | None) -> None:
        state = ctx.state
        state["workspace"] = workspace
        turn = next((t for p, t in reversed(mfn.turns) if p in ("agent.sql", "agent.repair", "agent.code")),
                    None) if mfn else None
        if self.store is not None:
            self.store.record_answer(principal.tenant_id, getattr(principal, "user_id", None), answer.session_id,
                                     workspace, question, answer)
            if turn is not None and answer.answer_id is not None:
                turns = dict(state.get("turns") or {})
                turns[str(answer.answer_id)] = turn
                state["turns"] = dict(list(turns.items())[-20:])
        self._save(principal, answer.session_id, state)

    # -- verdicts ---------------------------------------------------------------------------
    def _answer(self, principal: Any, answer_id: int) -> dict[str, Any]:
        if self.store is None:
            raise NotFound("answers are not stored on this platform (no agent store)")
        owner = {} if getattr(principal, "is_admin", False) else {"owner": getattr(principal, "user_id", None)}
        return self.store.answer(principal.tenant_id, answer_id, **owner)

    def _turn_of(self, principal: Any, rec: dict[str, Any]) -> int | None:
        sid = rec.get("session_id")
        if not sid:
            return None
        try:
            st = self.store.state(sid, principal.tenant_id)
        except NotFound:
            return None
        t = (st.get("turns") or {}).get(str(rec["id"]))
        return int(t) if t else None

    def _feedback(self, principal: Any, rec: dict[str, Any], rating: int, corrected: str | None) -> dict[str, Any] | None:
        turn = self._turn_of(principal, rec)
        if turn is None or self.db is None:
            return None
        from zhinao.maas.conversations import ConversationService

        try:
            return ConversationService(self.db).feedback(turn, principal.tenant_id, getattr(principal, "user_id", None),
                                                         rating=rating, corrected_answer=corrected)
        except NotFound:
            return None

    def accept(self, principal: Any, answer_id: int) -> dict[str, Any]:
        """The user stands by the answer: its SQL (or model call) joins the workspace's library,
        and the turn that wrote it gets a 👍 in the feedback store."""
        rec = self._answer(principal, answer_id)
        shown = rec.get("answer") or {}
        sql, call = rec.get("sql") or shown.get("sql"), shown.get("call")
        if not rec.get("found", True) or not (sql or call):
            raise InvalidRequest("this answer ran no SQL or model call, so there is nothing to add to the example "
                                 "library; correct it with the right SQL instead", param="answer_id")
        ex = self.store.add_example(principal.tenant_id, rec["workspace"], rec["question"], sql=sql, call=call,
                                    source="accepted", created_by=getattr(principal, "user_id", None),
                                    answer_id=rec["id"])
        self.store.set_status(principal.tenant_id, rec["id"], "accepted")
        fb = self._feedback(principal, rec, 1, None)
        return {"answer_id": rec["id"], "example_id": ex, "status": "accepted", "feedback": fb}

    def correct(self, principal: Any, answer_id: int, *, sql: str | None = None,
                answer: str | None = None) -> dict[str, Any]:
        """The user gives the right SQL (checked and run read-only first) or the right answer text:
        the SQL joins the library as ``corrected``; the correction goes to the feedback store."""
        sql = (sql or "").strip().rstrip(";").strip() or None
        answer = (answer or "").strip() or None
        if not sql and not answer:
            raise InvalidRequest("a correction needs the right SQL or the right answer", param="sql")
        rec = self._answer(principal, answer_id)
        ex = None
        if sql:
            from zhinao.agent.tools_builtin import run_checked_sql

            ws = self.analytics.workspaces.workspace(principal.tenant_id, rec["workspace"])
            ctx = ToolContext(tenant_id=principal.tenant_id, workspace=rec["workspace"], ws=ws)
            res = run_checked_sql(ctx, sql)
            if not res.ok:
                raise InvalidRequest(f"the corrected SQL does not run: {res.error}", param="sql")
            ex = self.store.add_example(principal.tenant_id, rec["workspace"], rec["question"], sql=sql,
                                        source="corrected", created_by=getattr(principal, "user_id", None),
                                        answer_id=rec["id"])
        correction = {k: v for k, v in (("sql", sql), ("answer", answer)) if v}
        self.store.set_status(principal.tenant_id, rec["id"], "corrected", correction)
        fb = self._feedback(principal, rec, -1, answer or sql)
        return {"answer_id": rec["id"], "example_id": ex, "status": "corrected", "feedback": fb}


__all__ = ["AgentService", "MeteredModel", "ambiguity_note", "file_request", "follow_up_base", "mostly_zh", "is_follow_up", "lacking_column", "lacking_terms", "may_see_personal", "missing_tables", "write_request"]
