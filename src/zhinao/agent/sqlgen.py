"""Question → verified, executed SQL: the agent's text-to-SQL engine.

:func:`answer_sql` is what raises a 0.5B model the most, in the order the literature and the
best open agents found it pays (each step measured in ``bench/agent.py``):

1. **Linking first** (:mod:`zhinao.agent.linking`): the schema goes in as a byte-stable
   prefix (llama-server reuses its KV cache), then the stored values and glossary terms the
   question mentions, then worked examples, the conversation so far and the question.
2. **Verify before running**: sqlglot parses the reply against the real schema (one
   read-only statement through :func:`zhinao.analytics.sandbox.check_sql`; every table and
   column resolved by sqlglot's qualifier). Cheap deterministic fixes small models need —
   a misspelt or mis-qualified column, ``LIKE`` that DuckDB would match case-sensitively, a
   literal that is not how the value is stored (``'fiber'`` → ``'Fiber optic'``) — are applied
   here, each recorded.
3. **Execute in the sandbox** (``ws.run_sql``: timeout, memory limit, row cap). Nothing but
   one SELECT ever reaches DuckDB, and through the sandbox only.
4. **Repair from the error message**, bounded by ``config.max_repairs``.
5. **Execution-guided voting** (OmniSQL, CHASE-SQL): with ``config.candidates > 1``, sampled
   candidates are executed too and the result most of them agree on wins, within
   ``config.budget_s``.

:func:`plain_sql` is the baseline the benchmark reports beside it: CREATE TABLE statements in
the system prompt, one greedy answer, nothing else.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from zhinao.agent.base import ModelFn
from zhinao.agent.linking import LinkedSchema, SchemaIndex, condition_aggregates, tokens
from zhinao.analytics.sandbox import check_sql, parse_single_query, plain
from zhinao.errors import InvalidRequest, RateLimited
from zhinao.runtime.base import GenerationParams, Message

SYSTEM = ("You are an expert data analyst. You write one DuckDB SQL query that answers the user's question "
          "over the database below.\n\n{schema}\n\n"
          "Rules: use only these tables and columns; select only what the question asks for; "
          "compare text with the stored values shown; answer with the SQL in one ```sql block and nothing else.")
PLAIN_SYSTEM = ("You write DuckDB SQL. Database schema:\n\n{ddl}\n\n"
                "Answer the user's question with one SQL query in a ```sql block.")
REPAIR = ("That query failed: {error}\nWrite the corrected query (one SELECT) in a ```sql block.")
SQL_SCHEMA = {"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"],
              "additionalProperties": False}


@dataclass
class SqlConfig:
    """How hard :func:`answer_sql` tries. Defaults suit the embedded 0.5B model on 2 cores."""

    max_repairs: int = 2  #: model repair rounds after a verify/execute error
    candidates: int = 1  #: >1: sample more and vote by execution result
    budget_s: float = 20.0  #: wall-clock budget for the extra candidates
    temperature: float = 0.8  #: for the sampled candidates (the first answer is greedy)
    max_tokens: int = 400
    json_mode: bool = False  #: ask for {"sql": ...} under a JSON schema instead of a fenced block
    fix_identifiers: bool = True  #: misspelt / mis-qualified columns fixed without the model
    fix_values: bool = True  #: literals snapped to the stored value; LIKE made case-insensitive
    hints: bool = True  #: linked values and glossary terms after the schema
    shape_hints: bool = True  #: one-line rules for the question's shape (ratio, per group, top-k, time)
    full_schema_columns: int = 150  #: schemas this small go in whole (the cacheable prefix)
    link_k: int = 12
    max_rows: int = 1000
    seed: int = 0


@dataclass
class SqlOutcome:
    """What :func:`answer_sql` did: the final statement, its result, and every attempt."""

    sql: str | None
    columns: list[str]
    rows: list[list[Any]]
    ok: bool
    error: str | None
    attempts: list[dict[str, Any]]
    repaired: bool  #: an error was caught (verifier or engine) and the final SQL fixed it
    voted: bool
    candidates: int
    truncated: bool
    fixes: list[str] = field(default_factory=list)  #: deterministic fixes applied to the final SQL
    linked: dict[str, Any] | None = None
    ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- extraction ---------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:sql|duckdb|SQL)?\s*\n?(.*?)(?:```|$)", re.DOTALL)
_START = re.compile(r"\b(WITH|SELECT|FROM)\b", re.IGNORECASE)
_STATEMENT = re.compile(r"\s*(INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|COPY|ATTACH|DETACH|PRAGMA|SET|INSTALL|LOAD|"
                        r"MERGE|TRUNCATE|EXPORT|IMPORT|CALL|VACUUM|CHECKPOINT|USE|BEGIN|COMMIT)\b", re.IGNORECASE)


def extract_sql(reply: str) -> str:
    """The SQL in a model reply: a ``{"sql": ...}`` object, a fenced block, or the text from
    the first SELECT/WITH; one statement, no trailing semicolon."""
    text = (reply or "").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            if isinstance(obj, dict) and isinstance(obj.get("sql"), str):
                text = obj["sql"].strip()
        except ValueError:
            pass
    m = _FENCE.search(text)
    if m and m.group(1).strip():
        text = m.group(1).strip()
    elif not _STATEMENT.match(text):  # prose around a query; a write statement stays whole (refused)
        s = _START.search(text)
        if s:
            text = text[s.start():]
    text = text.strip()
    if ";" in text:  # keep the first statement; the sandbox refuses several anyway
        first = text.split(";", 1)[0].strip()
        rest = text.split(";", 1)[1].strip()
        if not rest or not _START.match(rest):
            text = first
        else:
            text = text.rstrip("; \n")
    return text


# -- verification and deterministic fixes ------------------------------------------------

class _Unfixable(InvalidRequest):
    code = "sql_unverified"


def _scope_tables(root: Any, index: SchemaIndex) -> tuple[dict[str, str], set[str]]:
    """alias → real table name for every workspace table in the query; plus CTE/derived names."""
    from sqlglot import exp

    aliases: dict[str, str] = {}
    derived = {str(c.alias_or_name).lower() for c in root.find_all(exp.CTE)}
    for sq in root.find_all(exp.Subquery):
        if sq.alias:
            derived.add(sq.alias.lower())
    for t in root.find_all(exp.Table):
        info = index.table(t.name)
        if info is not None and t.name.lower() not in derived:
            aliases[(t.alias or t.name).lower()] = info.name
            aliases.setdefault(info.name.lower(), info.name)
    return aliases, derived


def _output_aliases(root: Any) -> set[str]:
    from sqlglot import exp

    out = {a.alias.lower() for a in root.find_all(exp.Alias) if a.alias}
    for cte in root.find_all(exp.CTE):
        for col in cte.args.get("alias", exp.TableAlias()).columns if cte.args.get("alias") else []:
            out.add(col.name.lower())
    return out


def fix_sql(sql: str, index: SchemaIndex, linked: LinkedSchema | None = None, *,
            identifiers: bool = True, values: bool = True) -> tuple[str, list[str]]:
    """Apply the deterministic fixes; returns the (possibly) rewritten SQL and what changed."""
    from sqlglot import exp

    root = parse_single_query(sql, "duckdb")
    fixes: list[str] = []
    aliases, derived = _scope_tables(root, index)
    outputs = _output_aliases(root)
    tables = sorted(set(aliases.values()))
    if identifiers:
        for t in root.find_all(exp.Table):  # table name in the wrong case or misspelt
            if t.name.lower() in derived or index.table(t.name) is not None:
                continue
            close = difflib.get_close_matches(t.name.lower(), [n.lower() for n in index.table_names], 1, 0.8)
            if close:
                real = index.table(close[0]).name  # type: ignore[union-attr]
                fixes.append(f"table {t.name} → {real}")
                t.set("this", exp.to_identifier(real))
                aliases[(t.alias or real).lower()] = real
                aliases.setdefault(real.lower(), real)
        tables = sorted(set(aliases.values()))
        for col in list(root.find_all(exp.Column)):
            name = col.name
            if not name or isinstance(col.this, exp.Star):
                continue
            qual = col.table.lower() if col.table else ""
            if qual and qual in derived:
                continue
            if qual and qual in aliases:
                t = aliases[qual]
                if index.column(t, name) is not None:
                    continue
                used: dict[str, str] = {}
                for a, real in aliases.items():  # the name the query uses for each table
                    if a != real.lower() or real not in used:
                        used[real] = a
                owners = sorted({used[real] for real in set(aliases.values()) if index.column(real, name) is not None})
                sel = col.find_ancestor(exp.Select)  # only a table of the column's own SELECT
                local = {(x.alias or x.name).lower() for x in (sel or root).find_all(exp.Table)}
                owners = [o for o in owners if o in local]
                if len(owners) == 1:  # right column, wrong table
                    written = {(x.alias or x.name).lower(): (x.alias or x.name) for x in root.find_all(exp.Table)}
                    owner = written.get(owners[0], owners[0])
                    fixes.append(f"{col.table}.{name} → {owner}.{name}")
                    col.set("table", exp.to_identifier(owner))
                    continue
                close = _close_column(name, [t], index)
                if close:
                    fixes.append(f"{col.table}.{name} → {col.table}.{close}")
                    col.set("this", exp.to_identifier(close))
                    continue
                # misspelt *and* on the wrong table (T2.internet_service_type for T1's InternetService):
                # the one other table of this SELECT with a close column
                written = {(x.alias or x.name).lower(): (x.alias or x.name) for x in (sel or root).find_all(exp.Table)}
                near = {a: c for a in local if a in aliases and a != qual
                        and (c := _close_column(name, [aliases[a]], index))}
                if len(near) == 1:
                    (a, c), = near.items()
                    fixes.append(f"{col.table}.{name} → {written.get(a, a)}.{c}")
                    col.set("table", exp.to_identifier(written.get(a, a)))
                    col.set("this", exp.to_identifier(c))
                continue
            if qual or name.lower() in outputs:
                continue
            if any(index.column(t, name) is not None for t in tables):
                continue
            if col.this.args.get("quoted") and isinstance(col.parent, (exp.EQ, exp.NEQ, exp.In, exp.Like,
                                                                       exp.ILike, exp.GT, exp.LT, exp.GTE, exp.LTE)):
                # SQLite habit: "France" meant a string; DuckDB reads an unknown column
                fixes.append(f'"{name}" → \'{name}\'')
                col.replace(exp.Literal.string(name))
                continue
            close = _close_column(name, tables, index)
            if close:
                fixes.append(f"{name} → {close}")
                col.set("this", exp.to_identifier(close))
        fixes += _drop_unused_joins(root)
    if values:
        for node in list(root.find_all(exp.Like)):
            node.replace(exp.ILike(this=node.this, expression=node.expression))
            fixes.append("LIKE → ILIKE")
        for node in list(root.find_all(exp.EQ, exp.NEQ, exp.In)):
            col = node.this if isinstance(node.this, exp.Column) else None
            lits: list[Any]
            if isinstance(node, exp.In):
                lits = [e for e in node.expressions if isinstance(e, exp.Literal) and e.is_string]
            else:
                other = node.expression
                if col is None and isinstance(node.expression, exp.Column):
                    col, other = node.expression, node.this
                lits = [other] if isinstance(other, exp.Literal) and other.is_string else []
            if col is None or not lits:
                continue
            info = _resolve(col, aliases, index)
            if info is None or not info.is_text or not info.values:
                continue
            for lit in lits:
                new = _snap_value(lit.this, info, linked)
                if new is not None and new != lit.this:
                    fixes.append(f"{info.name} = '{lit.this}' → '{new}'")
                    lit.replace(exp.Literal.string(new))
        fixes += condition_aggregates(root)
    if not fixes:
        return sql, []
    return root.sql("duckdb"), list(dict.fromkeys(fixes))


def _drop_unused_joins(root: Any) -> list[str]:
    """Drop a joined table that no column of the query refers to — not in the SELECT list, not in
    WHERE, not even in its own ON (``JOIN milan_total AS T2 ON T1.customerID = T1.customerID``).

    Small models add a join by habit (Spider-style ``T1``/``T2``), and once the wrong-table fix
    has moved the columns to the table that has them, the leftover join only multiplies the rows
    of every COUNT and SUM. A join that any column uses is kept, whatever it does."""
    from sqlglot import exp

    fixes = []
    for sel in list(root.find_all(exp.Select)):
        for join in list(sel.args.get("joins") or []):
            t = join.this
            if not isinstance(t, exp.Table) or join.args.get("using"):
                continue
            name = (t.alias or t.name).lower()
            used = any((c.table or "").lower() == name for c in sel.find_all(exp.Column))
            star = any(isinstance(x, exp.Star) or (isinstance(x, exp.Column) and isinstance(x.this, exp.Star))
                       for x in sel.expressions)
            if star:
                continue
            if used:
                if _drop_cross_join(sel, join, name):
                    fixes.append(f"join of {t.name} on an always-true condition dropped")
                continue
            join.pop()
            fixes.append(f"unused join of {t.name} dropped")
    return fixes


def _drop_cross_join(sel: Any, join: Any, name: str) -> bool:
    """A join ``ON T2.x = T2.x`` (the same column on both sides: always true, a cross join no
    question means) whose table only appears in top-level ``WHERE ... AND`` filters: the join and
    those filters go — they filtered an unrelated table, and the cross join multiplied the rows.
    Anything else (the table in the SELECT list, GROUP BY, ORDER BY, HAVING, under an OR) stays."""
    from sqlglot import exp

    on = join.args.get("on")
    if not (isinstance(on, exp.EQ) and on.this.sql() == on.expression.sql() and isinstance(on.this, exp.Column)):
        return False

    def refers(node: Any) -> bool:
        return any((c.table or "").lower() == name for c in node.find_all(exp.Column)) if node is not None else False

    if any(refers(e) for e in sel.expressions) or any(refers(sel.args.get(k)) for k in ("group", "order", "having")):
        return False
    where = sel.args.get("where")
    parts = list(where.this.flatten()) if where is not None and isinstance(where.this, exp.And) else (
        [where.this] if where is not None else [])
    if any(refers(p) and isinstance(p, exp.Or) for p in parts):
        return False
    keep = [p for p in parts if not refers(p)]
    join.pop()
    if where is not None:
        if keep:
            sel.set("where", exp.Where(this=exp.and_(*[k.copy() for k in keep])))
        else:
            sel.set("where", None)
    return True


def _flat(name: str) -> str:
    """``name`` without case, spaces and punctuation; CJK characters are kept (\\W is Unicode-aware)."""
    return re.sub(r"[\W_]+", "", name.lower())


def _close_column(name: str, tables: Sequence[str], index: SchemaIndex) -> str | None:
    """The one column of ``tables`` whose name is closest to ``name`` (``namee`` → ``Name``,
    ``customer_id`` → ``customerID``), if it is close enough to be a typo, not another column."""
    cands: dict[str, str] = {}
    for t in tables:
        info = index.table(t)
        for c in (info.columns if info else []):
            cands.setdefault(c.name.lower(), c.name)
            if _flat(c.name):  # an all-CJK name must not flatten to "" (every such name would match)
                cands.setdefault(_flat(c.name), c.name)
    flat = _flat(name)
    if flat and flat in cands:
        return cands[flat]
    close = difflib.get_close_matches(name.lower(), list(cands), 1, 0.8)
    return cands[close[0]] if close else None


def _resolve(col: Any, aliases: Mapping[str, str], index: SchemaIndex):
    if col.table:
        real = aliases.get(col.table.lower())
        return index.column(real, col.name) if real else None
    found = [index.column(t, col.name) for t in set(aliases.values())]
    found = [c for c in found if c is not None]
    return found[0] if len(found) == 1 else None


def _snap_value(lit: str, info: Any, linked: LinkedSchema | None) -> str | None:
    """The stored value a literal most likely means, or None to keep it."""
    if lit in info.values:
        return None
    low = {v.lower(): v for v in info.values}
    if lit.lower() in low:
        return low[lit.lower()]
    if lit.strip() != lit and lit.strip() in info.values:
        return lit.strip()
    if not info.complete:
        return None  # the value may exist beyond the ones read
    hits = [h.value for h in (linked.values if linked else []) if h.table == info.table and h.column == info.name]
    lt = set(tokens(lit, keep_stop=True))
    contained = [v for v in info.values if lt and lt <= set(tokens(v, keep_stop=True))]
    if len(contained) == 1:
        return contained[0]
    for h in hits:
        if h in contained:
            return h
    close = difflib.get_close_matches(lit.lower(), list(low), 1, 0.75)
    return low[close[0]] if close else None


def verify_sql(sql: str, index: SchemaIndex) -> None:
    """Refuse what would fail or is not allowed, with a message the model can act on.

    One read-only statement over the workspace's tables (:func:`check_sql`), every column
    resolvable (sqlglot's qualifier against the real schema)."""
    import sqlglot
    from sqlglot.errors import OptimizeError
    from sqlglot.optimizer.qualify import qualify

    check_sql(sql, index.table_names)
    try:
        qualify(sqlglot.parse_one(sql, read="duckdb"), schema=index.schema_dict(), dialect="duckdb",
                validate_qualify_columns=True, quote_identifiers=False)
    except OptimizeError as e:
        msg = str(e).split(". Line:")[0]
        m = re.search(r"Column '\"?([^'\"]+)\"?' could not be resolved|Unknown column: (\S+)", msg)
        if not m:
            return  # the qualifier's own limits (unusual syntax): let the engine decide
        bad = m.group(1) or m.group(2)
        raise _Unfixable(f"column {bad!r} does not exist; {_columns_hint(sql, index)}", param="sql") from None
    except Exception:  # noqa: BLE001 - a qualifier crash is not a verdict on the SQL
        return


def _columns_hint(sql: str, index: SchemaIndex) -> str:
    import sqlglot
    from sqlglot import exp

    try:
        names = {t.name.lower() for t in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table)}
    except Exception:  # noqa: BLE001
        names = set()
    parts = []
    for t in index.tables:
        if t.name.lower() in names:
            parts.append(f"{t.name} has columns " + ", ".join(c.name for c in t.columns))
    return "; ".join(parts) or "tables: " + ", ".join(index.table_names)


# -- execution ---------------------------------------------------------------------------

def _norm(v: Any) -> Any:
    v = plain(v)
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return 0.0 if round(float(v), 4) == 0 else round(float(v), 4)
    return v


def result_key(rows: Sequence[Sequence[Any]]) -> tuple:
    """A result as a hashable multiset of normalised rows (the vote compares these)."""
    return tuple(sorted(Counter(tuple(_norm(x) for x in r) for r in rows).items(), key=repr))


async def _execute(ws: Any, sql: str, max_rows: int) -> tuple[list[str], list[list[Any]], bool]:
    res = await asyncio.to_thread(ws.run_sql, sql, max_rows)
    return list(res.columns), res.json_rows(), bool(res.truncated)


@dataclass
class _Try:
    sql: str | None
    error: str | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False
    fixes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.sql is not None


async def _check_and_run(ws: Any, index: SchemaIndex, reply: str, linked: LinkedSchema | None,
                         config: SqlConfig) -> _Try:
    """Extract, fix, verify and execute one reply; any failure becomes ``error`` (for repair)."""
    sql = extract_sql(reply)
    if not sql:
        return _Try(None, "the reply contained no SQL query")
    fixes: list[str] = []
    try:
        if config.fix_identifiers or config.fix_values:
            sql, fixes = fix_sql(sql, index, linked, identifiers=config.fix_identifiers, values=config.fix_values)
        verify_sql(sql, index)
        cols, rows, trunc = await _execute(ws, sql, config.max_rows)
    except RateLimited:
        raise
    except InvalidRequest as e:
        return _Try(sql, e.message, fixes=fixes)
    return _Try(sql, None, cols, rows, trunc, fixes)


from zhinao.agent.shapes import question_hints, question_periods  # noqa: E402,F401 (re-exported)




# -- prompts -----------------------------------------------------------------------------

def build_messages(index: SchemaIndex, question: str, *, linked: LinkedSchema | None = None,
                   history: Sequence[Mapping[str, Any]] = (), examples: Sequence[Mapping[str, Any]] = (),
                   config: SqlConfig | None = None) -> list[Message]:
    """The prompt: a system message that depends only on the workspace (the KV-cache prefix),
    then worked examples and earlier turns as chat pairs, then hints and the question."""
    config = config or SqlConfig()
    whole = index.n_columns() <= config.full_schema_columns or linked is None
    schema = index.prompt_text() if whole else index.prompt_text(
        LinkedSchema(linked.tables, linked.columns, [], []))
    msgs: list[Message] = [{"role": "system", "content": SYSTEM.format(schema=schema)}]
    for ex in examples:
        if ex.get("question") and ex.get("sql"):
            msgs += [{"role": "user", "content": str(ex["question"])},
                     {"role": "assistant", "content": _as_reply(str(ex["sql"]), config)}]
    for turn in history:
        if turn.get("question") and turn.get("sql"):
            msgs += [{"role": "user", "content": str(turn["question"])},
                     {"role": "assistant", "content": _as_reply(str(turn["sql"]), config)}]
    hint = index.hint_text(linked) if (linked is not None and config.hints) else ""
    if config.hints and config.shape_hints:
        shapes = question_hints(question, index, linked)
        if shapes:
            hint = (hint + "\n" if hint else "") + "\n".join(shapes)
    if history and any(t.get("sql") for t in history):
        question = f"Follow-up to the previous question (keep its filters unless told otherwise): {question}"
    msgs.append({"role": "user", "content": (hint + "\n\n" if hint else "") + question})
    return msgs


def _as_reply(sql: str, config: SqlConfig) -> str:
    return json.dumps({"sql": sql}, ensure_ascii=False) if config.json_mode else f"```sql\n{sql}\n```"


def _params(config: SqlConfig, *, temperature: float = 0.0, seed: int | None = None) -> GenerationParams:
    rf = ({"type": "json_schema", "json_schema": {"name": "sql", "schema": SQL_SCHEMA, "strict": True}}
          if config.json_mode else None)
    return GenerationParams(temperature=temperature, top_p=0.95 if temperature else 1.0,
                            max_tokens=config.max_tokens, seed=seed, response_format=rf)


# -- the engine --------------------------------------------------------------------------

async def answer_sql(model: ModelFn, ws: Any, index: SchemaIndex, question: str, *,
                     history: Sequence[Mapping[str, Any]] = (), examples: Sequence[Mapping[str, Any]] = (),
                     config: SqlConfig | None = None) -> SqlOutcome:
    """Answer ``question`` with one verified SELECT executed in the sandbox.

    Args:
        model: the metered model call (:class:`~zhinao.agent.base.ModelFn`).
        ws: the workspace (``ws.run_sql`` is the only way SQL runs).
        index: its :class:`~zhinao.agent.linking.SchemaIndex`.
        history: earlier turns of the conversation, ``{"question", "sql"}``, oldest first.
        examples: worked examples ``{"question", "sql"}`` from the workspace's library.
        config: :class:`SqlConfig`.

    Returns:
        :class:`SqlOutcome`; ``ok`` False with ``error`` when no attempt ran (never raises
        for a bad reply; raises the model's own errors, e.g. quota, unchanged).
    """
    if not str(question or "").strip():
        raise InvalidRequest("the question is empty", param="question")
    config = config or SqlConfig()
    t0 = time.perf_counter()
    linked = index.link(question, k=config.link_k)
    msgs = build_messages(index, question, linked=linked, history=history, examples=examples, config=config)
    attempts: list[dict[str, Any]] = []

    async def attempt(messages: list[Message], params: GenerationParams, stage: str, purpose: str) -> tuple[str, _Try]:
        ts = time.perf_counter()
        reply = await model(messages, params, purpose=purpose)
        tr = await _check_and_run(ws, index, reply, linked, config)
        attempts.append({"sql": tr.sql, "stage": stage, "error": tr.error, "fixes": tr.fixes,
                         "rows": len(tr.rows) if tr.ok else None, "ms": round((time.perf_counter() - ts) * 1000, 1)})
        return reply, tr

    reply, first = await attempt(msgs, _params(config), "generate", "agent.sql")
    best, convo, repaired = first, list(msgs), False
    for _ in range(max(0, config.max_repairs)):
        if best.ok:
            break
        convo += [{"role": "assistant", "content": reply},
                  {"role": "user", "content": REPAIR.format(error=best.error)}]
        reply, tr = await attempt(convo, _params(config), "repair", "agent.repair")
        if tr.ok:
            best, repaired = tr, True
        else:
            best = tr
    voted, n_cands = False, 1
    if config.candidates > 1:
        pool = [best] if best.ok else []
        for i in range(config.candidates - 1):
            if time.perf_counter() - t0 > config.budget_s:
                break
            _, tr = await attempt(msgs, _params(config, temperature=config.temperature, seed=config.seed + i + 1),
                                  "vote", "agent.sql")
            n_cands += 1
            if tr.ok:
                pool.append(tr)
        if pool:
            winner = _vote(pool)
            voted = winner is not best
            if voted and not best.ok:
                repaired = True
            best = winner
    fixed = bool(best.ok and best.fixes and any(k not in ("LIKE → ILIKE",) for k in best.fixes))
    return SqlOutcome(sql=best.sql, columns=best.columns, rows=best.rows, ok=best.ok, error=best.error,
                      attempts=attempts, repaired=bool(best.ok and (repaired or fixed)), voted=voted,
                      candidates=n_cands, truncated=best.truncated, fixes=best.fixes, linked=linked.as_dict(),
                      ms=round((time.perf_counter() - t0) * 1000, 1))


def _vote(pool: Sequence[_Try]) -> _Try:
    """The candidate whose result most candidates share; an empty result counts half (a wrong
    filter often returns nothing); ties go to the earliest (the greedy answer first)."""
    weight: Counter = Counter()
    first: dict[tuple, _Try] = {}
    for tr in pool:
        k = result_key(tr.rows)
        weight[k] += 0.5 if not tr.rows else 1.0
        first.setdefault(k, tr)
    order = {k: i for i, k in enumerate(first)}
    best = max(weight, key=lambda k: (weight[k], -order[k]))
    return first[best]


async def plain_sql(model: ModelFn, ws: Any, question: str, *, ddl: str, max_rows: int = 1000,
                    max_tokens: int = 400) -> SqlOutcome:
    """The baseline: CREATE TABLE statements in the system prompt, one greedy answer, executed
    in the sandbox as it came (no linking, examples, fixes, repair or voting)."""
    t0 = time.perf_counter()
    msgs: list[Message] = [{"role": "system", "content": PLAIN_SYSTEM.format(ddl=ddl)},
                           {"role": "user", "content": question}]
    reply = await model(msgs, GenerationParams(temperature=0.0, max_tokens=max_tokens), purpose="agent.sql")
    sql = extract_sql(reply)
    cols: list[str] = []
    rows: list[list[Any]] = []
    err, trunc = None, False
    try:
        if not sql:
            raise InvalidRequest("the reply contained no SQL query")
        cols, rows, trunc = await _execute(ws, sql, max_rows)
    except RateLimited:
        raise
    except InvalidRequest as e:
        err = e.message
    ms = round((time.perf_counter() - t0) * 1000, 1)
    return SqlOutcome(sql=sql or None, columns=cols, rows=rows, ok=err is None, error=err,
                      attempts=[{"sql": sql, "stage": "generate", "error": err, "fixes": [], "ms": ms}],
                      repaired=False, voted=False, candidates=1, truncated=trunc, ms=ms)

class EngineModel:
    """A :class:`~zhinao.agent.base.ModelFn` straight over a :class:`~zhinao.runtime.base.ChatModel`
    (tests and unmetered benchmarks; the service meters through :class:`ClientModel`)."""

    def __init__(self, engine: Any):
        self.engine = engine

    async def __call__(self, messages: Sequence[Message], params: GenerationParams, *, purpose: str = "agent") -> str:
        return (await self.engine.complete(messages, params)).content


class ClientModel:
    """A :class:`~zhinao.agent.base.ModelFn` over the metered :class:`~zhinao.maas.client.LLMClient`:
    each call is one generation with its usage row named by ``purpose``."""

    def __init__(self, client: Any, model: str | None = None, *, record_turn: bool = False):
        self.client, self.model, self.record_turn = client, model, record_turn

    async def __call__(self, messages: Sequence[Message], params: GenerationParams, *, purpose: str = "agent") -> str:
        gen = await self.client.complete(messages, params, model=self.model, purpose=purpose,
                                         record_turn=self.record_turn)
        return gen.content
