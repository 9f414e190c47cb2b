"""The agent's built-in tools: describe the schema, run SQL, run a catalogue model, chart, explain.

Each is a :class:`zhinao.agent.base.Tool` (one ``run`` method) registered by entry point in
``pyproject.toml``. They share two rules:

- **Read only.** SQL goes through :func:`zhinao.analytics.sandbox.check_sql` and the
  workspace's sandbox (``ws.run_sql``: one read-only statement, timeout, memory cap, row cap);
  ``run_model`` fits and evaluates a catalogue model and scores rows *in memory* — it never
  writes a score table, so asking a question changes nothing in the workspace.
- **Errors the user can fix come back as** ``ToolResult(ok=False, error=...)``, never as an
  exception: the service narrates them and the session continues.

Model choice in ``run_model`` reads the catalogue's metadata (task, application, names, the
demo dataset an entry was written for) rather than a table of demo columns, so a tenant's
own churn table binds through :func:`zhinao.analytics.catalog.roles.bind` like the demo's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from typing import Any

from zhinao.agent.base import ToolContext, ToolResult
from zhinao.errors import ZhinaoError

log = logging.getLogger(__name__)

#: rows of a result kept in the conversation state (for charts and follow-ups)
STATE_ROWS = 200
#: rows of scored output shown after a model run
SCORE_ROWS = 10


def _err(e: BaseException) -> str:
    return e.message if isinstance(e, ZhinaoError) else f"{type(e).__name__}: {e}"


def is_zh(text: str) -> bool:
    """Chinese when the text holds CJK characters (the question's language decides the answer's)."""
    return bool(re.search(r"[\u4e00-\u9fff]", text or ""))


def answer_zh(ctx: ToolContext, text: str) -> bool:
    """The answer's language: the service's decision for this turn (the question without the
    workspace's Chinese table and column names), else the text's own."""
    v = (ctx.state or {}).get("_zh") if ctx is not None else None
    return v if isinstance(v, bool) else is_zh(text)


# -- the workspace as the tools see it ----------------------------------------------------

def workspace_tables(ctx: ToolContext) -> list[dict[str, Any]]:
    """``[{name, rows, description, columns: [{name, type, kind, description}]}]`` of the workspace.

    Datasets with profiles come from the analytics metadata; tables without a record (a
    workspace file written by hand, a benchmark import) from DuckDB's own schema.
    """
    out: list[dict[str, Any]] = []
    names = ctx.ws.tables()
    meta: dict[str, dict[str, Any]] = {}
    if ctx.analytics is not None:
        try:
            for d in ctx.analytics.workspaces.datasets(ctx.tenant_id, ctx.workspace):
                meta[d["name"]] = ctx.analytics.workspaces.dataset(ctx.tenant_id, ctx.workspace, d["name"])
        except ZhinaoError:
            meta = {}
    for name in names:
        d = meta.get(name) or {}
        prof = {c["name"]: c for c in (d.get("profile") or {}).get("columns", [])}
        desc = d.get("column_descriptions") or {}
        cols = [{"name": c, "type": t, "kind": (prof.get(c) or {}).get("kind", ""), "description": desc.get(c, "")}
                for c, t in ctx.ws.schema(name)]
        out.append({"name": name, "rows": d.get("rows"), "description": d.get("description") or "", "columns": cols})
    return out


def _row_count(ctx: ToolContext, table: str) -> int | None:
    from zhinao.analytics.workspace import q

    try:
        return int(ctx.ws.run_sql(f"SELECT COUNT(*) FROM {q(table)}").rows()[0][0])
    except ZhinaoError:
        return None


class DescribeSchema:
    name = "describe_schema"
    description = ("List the workspace's tables with their columns, types, descriptions and row counts: "
                   "what data is there, which fields a table has.")
    description_zh = "列出工作区的数据表、字段、类型、字段说明和行数：有哪些数据、表里有哪些字段。"
    parameters = {"type": "object", "properties": {"table": {"type": "string", "description": "one table (optional)"}}}
    examples = ("What tables are in this workspace?", "Which columns does the telco table have?",
                "有哪些数据表？", "telco 表有哪些字段？")

    async def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        try:
            tables = await asyncio.to_thread(workspace_tables, ctx)
        except ZhinaoError as e:
            return ToolResult(ok=False, error=_err(e))
        want = (args or {}).get("table")
        if want:
            tables = [t for t in tables if t["name"].lower() == str(want).lower()]
            if not tables:
                return ToolResult(ok=False, error=f"the workspace has no table {want!r}",
                                  data={"found": False})
        rows = []
        for t in tables:
            n = t["rows"] if t["rows"] is not None else _row_count(ctx, t["name"])
            t["rows"] = n
            for c in t["columns"]:
                rows.append([t["name"], c["name"], c["type"], c["description"], n])
        zh = answer_zh(ctx, str((args or {}).get("question", "")))
        if not tables:
            return ToolResult(ok=True, summary="工作区里还没有数据表。" if zh else "The workspace has no tables yet.",
                              columns=["table", "column", "type", "description", "rows"], rows=[],
                              data={"tables": []})
        if zh:
            names = "；".join(f"{t['name']}（{t['rows']} 行，{len(t['columns'])} 列）" for t in tables)
            summary = f"工作区有 {len(tables)} 张表：{names}。"
        else:
            names = ", ".join(f"{t['name']} ({t['rows']} rows, {len(t['columns'])} columns)" for t in tables)
            summary = f"{len(tables)} table(s): {names}."
        return ToolResult(ok=True, summary=summary,
                          columns=["table", "column", "type", "description", "rows"], rows=rows,
                          data={"tables": [{"name": t["name"], "rows": t["rows"],
                                            "columns": [c["name"] for c in t["columns"]]} for t in tables]})


# -- SQL ----------------------------------------------------------------------------------

def run_checked_sql(ctx: ToolContext, sql: str) -> ToolResult:
    """One statement through the checker (the workspace's tables only) and the sandbox."""
    from zhinao.analytics.sandbox import check_sql

    try:
        check_sql(sql, ctx.ws.tables())
        res = ctx.ws.run_sql(sql)
    except ZhinaoError as e:
        return ToolResult(ok=False, sql=sql, error=_err(e))
    rows = res.json_rows()
    note = f" (first {len(rows)} rows; more exist)" if res.truncated else ""
    return ToolResult(ok=True, sql=sql, columns=list(res.columns), rows=rows,
                      summary=f"{len(rows)} row(s) × {len(res.columns)} column(s){note}",
                      data={"truncated": bool(res.truncated), "repaired": False})


class RunSql:
    name = "run_sql"
    description = ("Answer a question about the data with one read-only SQL query over the workspace's tables "
                   "(counts, sums, averages, filters, top-k, group by, ratios, joins, time windows).")
    description_zh = "用一条只读 SQL 查询回答数据问题：计数、求和、平均、筛选、排名前几、分组、占比、关联、时间范围。"
    parameters = {"type": "object", "properties": {
        "question": {"type": "string", "description": "the question to translate into SQL"},
        "sql": {"type": "string", "description": "a SELECT statement to run as is"}}}
    examples = ("What is the average MonthlyCharges per Contract?", "How many customers have fiber optic internet?",
                "Top 5 cells by total activity", "各合约类型的平均月费是多少？", "有多少客户使用光纤宽带？",
                "流失客户的比例是多少？")

    async def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        args = args or {}
        sql = args.get("sql")
        if sql is not None and not isinstance(sql, str):
            return ToolResult(ok=False, error="run_sql: 'sql' must be a string")
        if sql:
            res = await asyncio.to_thread(run_checked_sql, ctx, sql)
            if res.ok:
                _remember(ctx, res, args.get("question") or "")
            return res
        question = args.get("question")
        if not isinstance(question, str) or not question.strip():
            return ToolResult(ok=False, error="run_sql needs a 'question' or an 'sql' statement")
        if ctx.model is None:
            return ToolResult(ok=False, error="no model is available to write SQL; pass an 'sql' statement")
        try:
            from zhinao.agent import sqlgen
        except ImportError:
            return ToolResult(ok=False, error="SQL generation (zhinao.agent.sqlgen) is not installed")
        index = ctx.state.get("_sql_index")
        if index is None:
            index = await asyncio.to_thread(sqlgen_index, ctx)
            ctx.state["_sql_index"] = index
        try:
            out = await sqlgen.answer_sql(ctx.model, ctx.ws, index, question,
                                          history=tuple(ctx.state.get("_history", ())),
                                          examples=tuple(ctx.state.get("_examples", ())))
        except ZhinaoError as e:
            return ToolResult(ok=False, error=_err(e))
        data = {"repaired": bool(out.repaired), "voted": bool(out.voted), "candidates": int(out.candidates or 0),
                "attempts": list(out.attempts or []), "truncated": bool(out.truncated)}
        if not out.ok:
            return ToolResult(ok=False, sql=out.sql or None, error=out.error or "no SQL could answer this", data=data)
        rows = [list(r) for r in (out.rows or [])]
        res = ToolResult(ok=True, sql=out.sql, columns=list(out.columns or []), rows=rows, data=data,
                         summary=f"{len(rows)} row(s) × {len(out.columns or [])} column(s)"
                                 + (" after repair" if out.repaired else ""))
        _remember(ctx, res, question)
        return res


def sqlgen_index(ctx: ToolContext):
    """The SQL helper's schema index of this workspace (descriptions and glossary included)."""
    from zhinao.agent.linking import SchemaIndex

    descriptions: dict[str, dict[str, str]] = {}
    glossary: list[dict[str, Any]] = []
    if ctx.analytics is not None:
        try:
            for d in ctx.analytics.workspaces.datasets(ctx.tenant_id, ctx.workspace):
                full = ctx.analytics.workspaces.dataset(ctx.tenant_id, ctx.workspace, d["name"])
                descriptions[d["name"]] = full.get("column_descriptions") or {}
            glossary = ctx.analytics.workspaces.glossary(ctx.tenant_id, ctx.workspace)
        except ZhinaoError:
            pass
    return SchemaIndex.from_workspace(ctx.ws, descriptions=descriptions or None, glossary=glossary or None,
                                      embed=ctx.state.get("_embed"))


def _remember(ctx: ToolContext, res: ToolResult, question: str) -> None:
    """The last result table, for charts, explanations and follow-ups."""
    ctx.state["last"] = {"question": question, "sql": res.sql, "columns": res.columns,
                         "rows": (res.rows or [])[:STATE_ROWS]}


# -- personal data in results ------------------------------------------------------------

#: aggregates that reveal no value of the column they read (``COUNT(DISTINCT phone)`` is fine)
_COUNTING = ("count", "approx_count_distinct", "count_if")


def _reads_personal(node: Any, tainted: set[str]) -> bool:
    """Whether an expression carries a value of a ``tainted`` column (lower-cased names): a
    column reference outside a counting aggregate, or a ``*``/``t.*`` over a tainted source."""
    from sqlglot import exp

    for col in node.find_all(exp.Column):
        name = col.name.lower() if col.name else ""
        if name not in tainted:
            continue
        p, counted = col.parent, False
        while p is not None and p is not node.parent:
            if isinstance(p, exp.Count) or (isinstance(p, exp.Anonymous) and str(p.name).lower() in _COUNTING) \
                    or type(p).__name__.lower() in ("approxdistinct", "countif"):
                counted = True
                break
            p = p.parent
        if not counted:
            return True
    return False


def personal_lineage(sql: str | None, columns: list[str], personal: set[str]) -> set[str]:
    """Result columns whose values are derived from a personal column (``personal``: the
    workspace's marked column names), by reading the statement: ``string_agg(phone, ',')``,
    ``'x' || phone``, ``phone / 10`` and an alias of any of them through subqueries and CTEs.

    Masking by result name or by value shape misses these — the concatenation of three phone
    numbers looks like no phone number — so a member could read every number the table holds
    through one aggregate. Counting aggregates stay readable (aggregates are fine); a name an
    alias shares with a tainted one is masked too (over-masking is the safe error).
    """
    if not sql or not columns or not personal:
        return set()
    from sqlglot import exp

    from zhinao.analytics.sandbox import parse_single_query

    try:
        root = parse_single_query(sql, "duckdb")
    except ZhinaoError:
        return set()
    tainted = {c.lower() for c in personal}
    if not any((c.name or "").lower() in tainted for c in root.find_all(exp.Column)):
        return set()
    selects = list(root.find_all(exp.Select))
    changed = True
    while changed:  # aliases of tainted expressions taint the queries that read them (fixpoint)
        changed = False
        for sel in selects:
            for e in sel.expressions:
                a = (e.alias_or_name or "").lower()
                if a and a not in tainted and _reads_personal(e, tainted):
                    tainted.add(a)
                    changed = True
    out = {c for c in columns if c.lower() in tainted}
    branches = [root]  # the outermost projections, by position (unaliased expressions, UNION branches)
    while branches and isinstance(branches[0], exp.Union):
        b = branches.pop(0)
        branches += [b.left, b.right]
    for b in branches:
        sel = b if isinstance(b, exp.Select) else b.find(exp.Select)
        if sel is None or any(isinstance(e, exp.Star) or e.find(exp.Star) for e in sel.expressions):
            continue
        if len(sel.expressions) == len(columns):
            out |= {c for c, e in zip(columns, sel.expressions) if _reads_personal(e, tainted)}
    return out


#: what a value derived from a personal column shows (a list of phones, a concatenation …)
REDACTED = "***"


def mask_personal(columns: list[str], rows: list[list[Any]], marks: dict[str, dict[str, str]] | None = None,
                  sql: str | None = None) -> tuple[list[list[Any]], list[str]]:
    """Rows with personal columns masked, and which were masked: columns named like a column
    marked personal in the workspace (``marks``: import-time detection plus the user's edits),
    columns whose values look personal themselves (a renamed phone column), and columns the
    statement ``sql`` derives from a marked column (``string_agg(phone, ',')``, ``phone || ''``:
    :func:`~zhinao.agent.tools_builtin.personal_lineage`), whose values are redacted whole."""
    if not columns or not rows:
        return rows, []
    try:
        from zhinao.agent import personal
    except ImportError:
        return rows, []
    import pandas as pd

    found: dict[str, str] = dict(personal.result_personal(columns, marks or {}))
    derived = personal_lineage(sql, columns, {c for cols in (marks or {}).values() for c in cols}) - set(found)
    try:
        if len(set(columns)) == len(columns):
            for c, k in personal.detect(pd.DataFrame(rows, columns=columns)).items():
                found.setdefault(c, k)
    except (ValueError, TypeError, KeyError) as e:  # values detect cannot read: the marks still apply
        log.warning("personal-data detection failed: %s", e)
    derived -= set(found)
    if not found and not derived:
        return rows, []
    out = [list(r) for r in personal.mask(columns, rows, found)] if found else [list(r) for r in rows]
    idx = [i for i, c in enumerate(columns) if c in derived]
    for r in out:
        for i in idx:
            if i < len(r) and r[i] is not None:
                r[i] = REDACTED
    return out, sorted(set(found) | derived)



# -- catalogue models ---------------------------------------------------------------------

#: which catalogue task a question asks for: (task, pattern); the first that matches wins
TASK_HINTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("classification", re.compile(r"churn|attrition|likely to (leave|cancel)|at risk|who will leave|propensity|"
                                  r"流失|离网|预警|挽留|会走", re.I)),
    ("association", re.compile(r"basket|bought together|buy together|cross[- ]?sell|association|co-?purchase|"
                               r"购物篮|一起买|一起购买|关联|交叉销售|搭配", re.I)),
    ("clustering", re.compile(r"segment|cluster|group (the |our )?(customers|users)|kinds? of customers|persona|"
                              r"分群|聚类|分成几类|分类|几类|细分|客群|画像", re.I)),
    ("forecast", re.compile(r"forecast|predict|next (week|day|month|hour)|tomorrow|future|trend|"
                            r"预测|下周|明天|未来|走势|趋势|将会|会怎样", re.I)),
)
#: preferred chart of a run, in order (``plots.json`` names vary per family; types do not)
CHART_TYPES = ("forecast", "lift", "line", "bar", "scatter", "graph", "table")


def task_of(question: str, default: str | None = None) -> str | None:
    for task, pat in TASK_HINTS:
        if pat.search(question or ""):
            return task
    return default


_STOP = frozenset("the a an and or of in on to for by with which what who are is be do does this that these those "
                  "from into per how why will would can could most more our your their its it as at "
                  "model train fit predict prediction report use using table data give".split())


def _words(text: str) -> set[str]:
    """Lower-cased words (plural 's' dropped, stop words out) and CJK bigrams, for overlap scores."""
    text = (text or "").lower()
    out = {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
           for w in re.findall(r"[a-z][a-z0-9]+", text) if w not in _STOP}
    cjk = re.findall(r"[\u4e00-\u9fff]+", text)
    for run in cjk:  # character bigrams: 离网 / 预警 / 话务
        out |= {run[i:i + 2] for i in range(max(1, len(run) - 1))}
    return out


#: algorithms that take far longer to fit on 2 cores (chosen only when the question names them)
_HEAVY = re.compile(r"transformer|pytorch|neural|perceptron|\bmlp\b", re.I)


def choose_model(catalogue: list[dict[str, Any]], question: str, tables: list[str], task: str | None) -> dict[str, Any] | None:
    """The catalogue entry for ``question``: the entries of ``task``, scored by the words they
    share with the question (names, application, algorithm) and by whether the workspace holds
    the table the entry was written for; the first key breaks ties (stable)."""
    cands = [m for m in catalogue if not task or m.get("task") == task or
             (task == "forecast" and m.get("theme") == "forecasting")]
    if not cands:
        return None
    q = _words(question)
    have = {t.lower() for t in tables}

    def score(m: dict[str, Any]) -> tuple[float, str]:
        own = " ".join(str(m.get(k, "")) for k in ("key", "name_en", "name_zh", "algorithm")).replace("_", " ")
        use = " ".join(str(m.get(k, "")) for k in ("application_en", "application_zh"))
        named = q & _words(own)
        # the entry's own names count double: an application text may name the models it is compared with
        s = 2 * len(named) + len((q & _words(use)) - named)
        s += 3 if (m.get("dataset") or "").lower() in have else 0
        s -= 2 if m.get("synthetic") else 0
        s -= 1 if _HEAVY.search(str(m.get("algorithm", ""))) else 0  # equal otherwise: the cheaper fit
        return (-s, m["key"])

    return sorted(cands, key=score)[0]


def _top_factors(expl: dict[str, Any], n: int = 5) -> list[str]:
    """The first named weights an explanation holds (coefficients, importances …), as text."""
    for key in ("top_features", "coefficients", "importances", "feature_importance", "permutation_importance",
                "odds_ratios", "top_rules_by_lift", "clusters", "segments"):
        v = expl.get(key)
        if isinstance(v, dict) and v:
            items = sorted(v.items(), key=lambda kv: -abs(kv[1]) if isinstance(kv[1], (int, float)) else 0)[:n]
            return [f"{k} ({v:.3g})" if isinstance(v, (int, float)) else str(k) for k, v in items]
        if isinstance(v, list) and v:
            out = []
            for it in v[:n]:
                if isinstance(it, dict) and ("segment" in it or "cluster" in it):
                    k = it.get("segment", it.get("cluster"))
                    prof = it.get("distinctive") or it.get("profile") or it.get("mode") or it.get("means") or {}
                    traits = ", ".join(f"{a}={b if not isinstance(b, dict) else next(iter(b), '')}"
                                       for a, b in list(prof.items())[:2]) if isinstance(prof, dict) else ""
                    out.append(f"#{k}: {it.get('size', '?')} rows" + (f" ({traits})" if traits else ""))
                elif isinstance(it, dict):
                    name = next((it[k] for k in ("feature", "name", "if") if it.get(k) is not None), None)
                    val = it.get("weight", it.get("coefficient", it.get("importance", it.get("lift", it.get("size")))))
                    then = it.get("then")
                    label = f"{name} → {then}" if then is not None else str(name)
                    out.append(f"{label} ({val:.3g})" if isinstance(val, (int, float)) else label)
                else:
                    out.append(str(it))
            return out
    return []


class RunModel:
    name = "run_model"
    description = ("Fit and evaluate a catalogue data-mining model on a workspace table: churn prediction, "
                   "customer segmentation (clustering), traffic forecasting, market-basket association rules; "
                   "reports metrics against a baseline, the explanation and the highest-scored rows.")
    description_zh = "在工作区数据表上训练并评估模型库中的挖掘模型：离网预测、客户分群（聚类）、话务量预测、购物篮关联规则；给出与基线比较的指标、解释和评分最高的行。"
    parameters = {"type": "object", "properties": {
        "key": {"type": "string", "description": "catalogue model key (optional: chosen from the question)"},
        "table": {"type": "string", "description": "workspace table (optional: the one the model binds to)"},
        "params": {"type": "object", "description": "column bindings and parameters, e.g. {\"target\": \"Churn\"}"},
        "task": {"type": "string", "enum": ["classification", "regression", "forecast", "clustering", "association"]},
        "question": {"type": "string"}}}
    examples = ("Which customers are most likely to churn, and why?", "Segment the customers into groups",
                "Forecast next week's traffic", "Which products are bought together?",
                "哪些客户最可能离网？为什么？", "把客户分成几类并描述每一类", "下周话务量会怎样？", "哪些商品经常一起购买？")

    async def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        if ctx.analytics is None:
            return ToolResult(ok=False, error="catalogue models need the analytics service")
        args = dict(args or {})
        try:
            return await asyncio.to_thread(self._run, ctx, args)
        except ZhinaoError as e:
            return ToolResult(ok=False, error=_err(e), data={"args": args})

    def _run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        an = ctx.analytics
        question = str(args.get("question") or "")
        params = args.get("params") or {}
        if not isinstance(params, dict):
            return ToolResult(ok=False, error="run_model: 'params' must be an object of column bindings")
        tables = ctx.ws.tables()
        if not tables:
            return ToolResult(ok=False, error="the workspace has no tables to run a model on", data={"found": False})
        cat = an.catalogue()
        key = args.get("key")
        if key:
            info = next((m for m in cat if m["key"] == key), None)
            if info is None:
                return ToolResult(ok=False, error=f"no catalogue model {key!r}; `zhinao data catalog` lists them")
        else:
            task = args.get("task") or task_of(question)
            info = choose_model(cat, question, tables, task)
            if info is None:
                return ToolResult(ok=False, error=f"no catalogue model does {task or 'this'}")
            key = info["key"]
        table = args.get("table")
        if table and table not in tables:
            return ToolResult(ok=False, error=f"the workspace has no table {table!r}; tables: {', '.join(tables)}",
                              data={"found": False})
        if not table:
            table, why = self._table_for(ctx, key, info, tables, question, params)
            if table is None:
                return ToolResult(ok=False, data={"found": False, "key": key},
                                  error=f"no table of this workspace fits model {key!r} ({info.get('name_en')}): {why}")
        run = an.start_run(ctx.tenant_id, key, workspace=ctx.workspace, dataset=table, params=params)
        if run["status"] in ("queued", "running"):
            run = an.runs.wait(ctx.tenant_id, run["id"], timeout=float(getattr(ctx.settings, "agent_model_timeout_s",
                                                                               600) or 600))
        call = {"tool": "run_model", "args": {"key": key, "table": table, "params": params}}
        if run["status"] != "succeeded":
            return ToolResult(ok=False, call=call, error=f"model {key!r} on {table!r} failed: {run.get('error')}",
                              data={"run_id": run["id"], "key": key, "table": table})
        metric = run.get("primary_metric")
        metrics, base = run.get("metrics") or {}, run.get("baseline") or {}
        expl = run.get("explanation") or {}
        factors = _top_factors(expl)
        chart = None
        try:
            plots = an.runs.plots(ctx.tenant_id, run["id"])
            for kind in CHART_TYPES:
                chart = next((p for p in plots.values() if isinstance(p, dict) and p.get("type") == kind), None)
                if chart:
                    break
        except ZhinaoError:
            pass
        columns, rows = None, None
        if info.get("scores"):
            try:
                model = an.runs.load_model(ctx.tenant_id, run["id"])
                out = model.predict_table(an.workspaces.frame(ctx.tenant_id, ctx.workspace, table)).head(SCORE_ROWS)
                from zhinao.analytics.runs import jsonable

                columns = [str(c) for c in out.columns]
                rows = [jsonable(list(r)) for r in out.itertuples(index=False, name=None)]
            except (ZhinaoError, NotImplementedError, KeyError, ValueError, TypeError):
                columns, rows = None, None
        m = metrics.get(metric) if metric else None
        b = base.get(metric) if metric else None
        summary = f"{info.get('name_en')} ({key}) on {table}"
        if isinstance(m, (int, float)) and not (isinstance(m, float) and math.isnan(m)):
            summary += f": {metric} {m:.3f}"
            if isinstance(b, (int, float)):
                summary += f" vs baseline {run.get('baseline_name') or ''} {b:.3f}".replace("  ", " ")
        if factors:
            summary += "; top factors: " + ", ".join(factors[:3])
        data = {"run_id": run["id"], "key": key, "table": table, "metric": metric, "metrics": metrics,
                "baseline": base, "baseline_name": run.get("baseline_name"), "beats_baseline": run.get("beats_baseline"),
                "factors": factors, "notes": list(expl.get("notes") or [])[:5], "binding": run.get("binding"),
                "name_en": info.get("name_en"), "name_zh": info.get("name_zh"), "task": info.get("task")}
        if rows is not None:
            ctx.state["last"] = {"question": question, "sql": None, "columns": columns, "rows": rows}
        return ToolResult(ok=True, summary=summary, columns=columns, rows=rows, chart=chart, call=call, data=data)

    @staticmethod
    def _table_for(ctx: ToolContext, key: str, info: dict[str, Any], tables: list[str], question: str,
                   params: dict[str, Any]) -> tuple[str | None, str]:
        """A table named in the question, else the entry's own dataset, else the first that binds."""
        ql = question.lower()
        named = [t for t in tables if t.lower() in ql]
        order = named + [t for t in tables if t.lower() == (info.get("dataset") or "").lower() and t not in named]
        order += [t for t in tables if t not in order]
        why = ""
        for t in order:
            tried = dict(params)
            for _ in range(5):  # each round settles one ambiguous role ("which column is the text?")
                prev = ctx.analytics.runs.preview_binding(ctx.tenant_id, key, ctx.workspace, t, tried)
                if prev["ok"]:
                    params.clear()
                    params.update(tried)  # the call shown in the answer carries the binding: re-runnable
                    return t, ""
                pick = RunModel._settle(ctx, t, prev.get("error") or "", question, set(map(str, tried.values())))
                if pick is None or pick[0] in tried:
                    break
                tried[pick[0]] = pick[1]
            why = why or prev["error"] or ""
        return None, why

    @staticmethod
    def _settle(ctx: ToolContext, table: str, error: str, question: str,
                taken: set[str] = frozenset()) -> tuple[str, str] | None:
        """``(role, column)`` for a binding the catalogue found ambiguous ("cannot tell which column
        is the 'text': '评论', '情感' all fit"): the candidate the question names, else for a
        ``text`` role the candidate with the longest values (a review, not its 2-valued label),
        for a ``target`` the candidate holding a value the question names ("负面"), and for the
        positive class the class the question names. None when the question does not decide it
        (the answer then says what to bind) — the agent guesses nothing the user did not say."""
        m = re.search(r"has classes '([^']+)' and '([^']+)': which one is the positive", error)
        if m:  # "which are most likely 负面": the class the question asks about is the event to predict
            named = [c for c in m.groups() if c.lower() in question.lower()]
            return ("positive", named[0]) if len(named) == 1 else None
        m = re.search(r"cannot tell which column is the '(\w+)': (.+?) all fit", error)
        if m:
            role, cands = m.group(1), re.findall(r"'([^']+)'", m.group(2))
        else:  # "bind the 'target' role to a categorical … column with -p target=COLUMN; columns: a, b"
            m = re.search(r"bind the '(\w+)' role to .*?; columns: (.+)$", error)
            if not m:
                return None
            role, cands = m.group(1), [c.strip() for c in m.group(2).split(",") if c.strip()]
        cands = [c for c in cands if c not in taken]  # a column already bound to another role
        if not cands:
            return None
        named = [c for c in cands if c.lower() in question.lower()]
        if len(named) == 1 and role != "target":
            return role, named[0]
        from zhinao.analytics.workspace import q

        if role == "text":
            lengths = []
            for c in cands:
                try:
                    v = ctx.ws.run_sql(f"SELECT AVG(LENGTH(CAST({q(c)} AS VARCHAR))) FROM {q(table)}").rows()[0][0]
                except ZhinaoError:
                    v = None
                lengths.append((float(v or 0), c))
            best = max(lengths)
            return (role, best[1]) if best[0] >= 8 and sorted(lengths)[-2][0] * 2 <= best[0] else None
        if role == "target":
            hits = []
            for c in cands:
                try:
                    vals = [str(r[0]) for r in ctx.ws.run_sql(
                        f"SELECT DISTINCT CAST({q(c)} AS VARCHAR) FROM {q(table)} LIMIT 50").rows()]
                except ZhinaoError:
                    vals = []
                if any(v and len(v) >= 2 and v.lower() in question.lower() for v in vals):
                    hits.append(c)
            if len(hits) == 1:  # "哪些评论最可能是负面的": the column holding 负面, not the one named 评论
                return role, hits[0]
        return (role, named[0]) if len(named) == 1 else None


# -- charts -------------------------------------------------------------------------------

def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else float(v)
    return None


_TIME_NAME = re.compile(r"date|time|day|month|year|week|hour|period|日期|时间|月|年|周|小时", re.I)
_TIME_VALUE = re.compile(r"^\d{4}-\d{2}(-\d{2})?([ T]\d{2}(:\d{2})?(:\d{2})?)?")


def chart_spec(columns: list[str], rows: list[list[Any]], *, x: str | None = None, y: str | None = None,
               kind: str | None = None, title: str = "") -> dict[str, Any] | None:
    """A :mod:`~zhinao.analytics.catalog.plots` spec for a result table: ``line`` for a time
    series, ``bar`` for categories, ``scatter`` for two numbers; None when nothing fits."""
    from zhinao.analytics.catalog import plots

    if not columns or not rows:
        return None
    idx = {c: i for i, c in enumerate(columns)}
    numeric = [c for c in columns if all(_num(r[idx[c]]) is not None or r[idx[c]] is None for r in rows)
               and any(_num(r[idx[c]]) is not None for r in rows)]
    if y is not None and y not in idx or x is not None and x not in idx:
        return None
    if y is None:
        ys = [c for c in numeric if c != x]
        if not ys:
            return None
        y = ys[-1]
    if x is None:
        others = [c for c in columns if c != y]
        x = next((c for c in others if c not in numeric), others[0] if others else None)
    if x is None:
        return None
    xi, yi = idx[x], idx[y]
    xs = [r[xi] for r in rows]
    is_time = bool(_TIME_NAME.search(x)) or all(isinstance(v, str) and _TIME_VALUE.match(v) for v in xs if v is not None)
    title = title or f"{y} by {x}"
    if kind is None:
        kind = "line" if is_time else "scatter" if x in numeric and not is_time and len(set(xs)) > 12 else "bar"
    if kind == "line":
        pts = sorted(([str(v) if not isinstance(v, (int, float)) else v, _num(r[yi])] for v, r in zip(xs, rows)),
                     key=lambda p: str(p[0]) if not isinstance(p[0], (int, float)) else p[0])
        return {"type": "line", "title": title, "x_label": x, "y_label": y,
                "series": [{"name": y, "points": pts[:plots.MAX_POINTS]}], "sampled": len(pts) > plots.MAX_POINTS}
    if kind == "scatter":
        pts = [[_num(a), _num(r[yi])] for a, r in zip(xs, rows) if _num(a) is not None]
        return plots.scatter({y: pts}, title, x_label=x, y_label=y)
    cats = [str(v) for v in xs][:50]
    return {"type": "bar", "title": title, "horizontal": False, "categories": cats,
            "series": [{"name": y, "values": [_num(r[yi]) for r in rows][:50]}], "sampled": len(rows) > 50}


class MakeChart:
    name = "make_chart"
    description = ("Draw a chart of the last result or of given columns: a line for a time series, bars for "
                   "categories, a scatter plot for two numbers.")
    description_zh = "把上一次的结果或指定的列画成图：时间序列画折线，类别画柱状图，两个数值画散点图。"
    parameters = {"type": "object", "properties": {
        "x": {"type": "string"}, "y": {"type": "string"},
        "kind": {"type": "string", "enum": ["line", "bar", "scatter"]},
        "columns": {"type": "array", "items": {"type": "string"}}, "rows": {"type": "array"}}}
    examples = ("Plot that as a bar chart", "Draw a line chart of daily traffic", "Show it as a chart",
                "画成柱状图", "把结果画个图", "用折线图展示每天的话务量")

    async def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        args = args or {}
        columns, rows = args.get("columns"), args.get("rows")
        if not (columns and rows):
            last = ctx.state.get("last") or {}
            columns, rows = last.get("columns"), last.get("rows")
        if not columns or not rows:
            return ToolResult(ok=False, error="there is no result to chart yet: ask a question about the data first")
        kind = args.get("kind") if args.get("kind") in ("line", "bar", "scatter") else None
        spec = chart_spec(list(columns), [list(r) for r in rows], x=args.get("x"), y=args.get("y"), kind=kind)
        if spec is None:
            return ToolResult(ok=False, error="the result has no numeric column to chart (or the named columns "
                                              f"are not in it: {', '.join(map(str, columns))})")
        return ToolResult(ok=True, chart=spec, summary=f"{spec['type']} chart: {spec['title']}")


# -- explanations -------------------------------------------------------------------------

def sql_in_words(sql: str, zh: bool = False) -> str:
    """What a SELECT does, read from its parse tree (no model: the words match the statement)."""
    from sqlglot import exp

    from zhinao.analytics.sandbox import parse_single_query

    try:
        root = parse_single_query(sql, "duckdb")
    except ZhinaoError as e:
        return _err(e)
    sel = root if isinstance(root, exp.Select) else root.find(exp.Select)
    if sel is None:
        return sql
    tables = sorted({t.name for t in root.find_all(exp.Table)})
    cols = [e.sql("duckdb") for e in sel.expressions]
    where = sel.args.get("where")
    group = sel.args.get("group")
    order = sel.args.get("order")
    limit = sel.args.get("limit")
    if zh:
        parts = [f"从表 {', '.join(tables)} 中取出 {'; '.join(cols)}"]
        if where is not None:
            parts.append(f"只保留满足 {where.this.sql('duckdb')} 的行")
        if group is not None:
            parts.append(f"按 {', '.join(g.sql('duckdb') for g in group.expressions)} 分组")
        if order is not None:
            parts.append(f"按 {', '.join(o.sql('duckdb') for o in order.expressions)} 排序")
        if limit is not None:
            parts.append(f"只取前 {limit.expression.sql('duckdb') if limit.expression else limit.sql('duckdb')} 行")
        return "，".join(parts) + "。"
    parts = [f"Reads {'; '.join(cols)} from {', '.join(tables)}"]
    if where is not None:
        parts.append(f"keeping rows where {where.this.sql('duckdb')}")
    if group is not None:
        parts.append(f"grouped by {', '.join(g.sql('duckdb') for g in group.expressions)}")
    if order is not None:
        parts.append(f"ordered by {', '.join(o.sql('duckdb') for o in order.expressions)}")
    if limit is not None:
        parts.append(f"keeping the first {limit.expression.sql('duckdb') if limit.expression else limit.sql('duckdb')} rows")
    return ", ".join(parts) + "."


class Explain:
    name = "explain"
    description = ("Explain a business term or a column from the workspace glossary and column descriptions "
                   "(ARPU, DOU, MOU, churn rate), or explain in words the SQL of the last answer.")
    description_zh = "根据工作区的业务术语表和字段说明解释一个术语或字段（ARPU、DOU、MOU、离网率），或用文字解释上一个回答的 SQL。"
    parameters = {"type": "object", "properties": {"term": {"type": "string"}, "question": {"type": "string"}}}
    examples = ("What does ARPU mean?", "Explain the SQL you used", "What is the tenure column?",
                "ARPU 是什么意思？", "解释一下刚才的 SQL", "离网率怎么定义？")

    async def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        args = args or {}
        question = str(args.get("question") or "")
        term = str(args.get("term") or "").strip()
        zh = answer_zh(ctx, question or term)
        text = (term or question).lower()
        found: list[list[Any]] = []
        if ctx.analytics is not None:
            try:
                for g in ctx.analytics.workspaces.glossary(ctx.tenant_id, ctx.workspace):
                    names = [g["term"], g["term_en"]]
                    if any(n and (n.lower() == text or re.search(r"(?<![a-z])" + re.escape(n.lower()) + r"(?![a-z])",
                                                                 text)) for n in names):
                        found.append(["glossary", g["term"], (g["definition_zh"] if zh else g["definition_en"])
                                      or g["definition_zh"] or g["definition_en"], g["formula"]])
            except ZhinaoError:
                pass
        try:
            tables = await asyncio.to_thread(workspace_tables, ctx)
        except ZhinaoError:
            tables = []
        for t in tables:
            for c in t["columns"]:
                if re.search(r"(?<![a-z0-9_])" + re.escape(c["name"].lower()) + r"(?![a-z0-9_])", text):
                    found.append(["column", f"{t['name']}.{c['name']}",
                                  c["description"] or f"{c['type']} column of {t['name']}", ""])
        last_sql = (ctx.state.get("last") or {}).get("sql")
        if not found and last_sql and re.search(r"\bsql\b|query|查询|语句|怎么算|how did you", text, re.I):
            words = sql_in_words(last_sql, zh)
            return ToolResult(ok=True, summary=words, sql=last_sql, data={"explained": "sql"})
        if not found:
            return ToolResult(ok=False, data={"found": False},
                              error=("术语表和字段说明里没有找到这个词。" if zh else
                                     "The glossary and the column descriptions do not define this term."))
        summary = " ".join(f"{n}: {d}" + (f" [{f}]" if f else "") for _, n, d, f in found[:3])
        return ToolResult(ok=True, summary=summary, columns=["source", "name", "definition", "formula"], rows=found,
                          data={"explained": "term"})


__all__ = ["DescribeSchema", "Explain", "MakeChart", "RunModel", "RunSql", "chart_spec", "choose_model",
           "is_zh", "mask_personal", "personal_lineage", "run_checked_sql", "sql_in_words", "task_of", "workspace_tables"]
