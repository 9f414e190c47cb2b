"""The ``write_code`` tool: SAS / SQL / Python (pandas) code for a data task, with an explanation.

The talk's example — "写一段 SAS 代码…" — is a request for code, not for an answer. The
model writes the code with the workspace's schema in its prompt; then the code is
**checked by running it** where it can run:

- **SQL** (DuckDB): :func:`zhinao.analytics.sandbox.check_sql` against the workspace's tables,
  then ``ws.run_sql`` (the read-only sandbox: timeout, memory limit, row cap);
- **Python** (pandas): :func:`zhinao.agent.pysandbox.run_python` on a temporary copy of the
  table(s) it uses (personal columns masked in the copy unless the caller may see them);
- **SAS** cannot run here: :func:`check_sas` checks its structure (every DATA/PROC step closed
  by ``RUN;``/``QUIT;``, balanced quotes, parentheses and comments, known PROCs, the datasets
  it reads exist in the workspace or are created earlier in the program), and the answer says
  plainly that it was not executed.

A failed check gets **one** bounded repair: the model sees the error message and writes the
code again. The result is a :class:`~zhinao.agent.base.ToolResult` whose ``code`` is
``{"language", "source", "executed", "output", "checks", "explanation", "repaired"}``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from zhinao.agent.base import ToolContext, ToolResult
from zhinao.errors import ZhinaoError
from zhinao.runtime.base import GenerationParams

LANGUAGES = ("sql", "python", "sas")
#: rows of a table copied for a Python check (the check is about the code, not the whole table)
COPY_MAX_ROWS = 200_000
#: known SAS procedures (Base, STAT, ETS, graphics); an unknown one is reported, not fatal to the rest
KNOWN_PROCS = frozenset("""
sql means summary freq sort print univariate reg logistic glm glmselect corr tabulate report transpose import export
contents datasets format sgplot sgpanel sgscatter gplot gchart arima forecast esm timeseries expand hpforest
hpsplit hplogistic hpreg fastclus cluster tree princomp factor varclus rank standard stdize surveyselect npar1way
ttest anova mixed genmod phreg lifetest discrim nlin optmodel iml append compare copy delete printto template
score candisc stepdisc distance ucm autoreg varmax model boxplot chart shewhart plot catalog options pwencode
""".split())


@dataclass
class SasCheck:
    """One structural check of a SAS program."""

    check: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail}


def language_of(request: str, default: str = "python") -> str:
    """The language a request asks for: SAS, SQL or Python (pandas); ``default`` when none is named."""
    q = (request or "").lower()
    if re.search(r"(?<![a-z])sas(?![a-z])", q):
        return "sas"
    if re.search(r"python|pandas|(?<![a-z])py(?![a-z])|脚本", q):
        return "python"
    if re.search(r"(?<![a-z])sql(?![a-z])|查询语句", q):
        return "sql"
    return default


# -- SAS: structure only ------------------------------------------------------------------

def _strip_sas_comments(src: str) -> tuple[str, list[SasCheck]]:
    """The program with ``/* */`` comments blanked (newlines kept, so lines still count)."""
    checks: list[SasCheck] = []
    out, i, n = [], 0, len(src)
    quote = None
    while i < n:
        c = src[i]
        if quote:
            out.append(c)
            if c == quote:
                quote = None
            i += 1
        elif c in "'\"":
            quote = c
            out.append(c)
            i += 1
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if j < 0:
                checks.append(SasCheck("comments", False, f"line {src.count(chr(10), 0, i) + 1}: a /* comment is "
                                       "never closed with */"))
                out.append(re.sub(r"[^\n]", " ", src[i:]))
                break
            out.append(re.sub(r"[^\n]", " ", src[i:j + 2]))
            i = j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out), checks


def _statements(src: str) -> tuple[list[tuple[int, str]], str | None]:
    """``[(line, statement)]`` split on ``;`` outside quotes, and an unclosed quote's message."""
    stmts, buf, quote, line, start_line, q_line = [], [], None, 1, 1, 1
    for c in src:
        if c == "\n":
            line += 1
        if quote:
            buf.append(c)
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
            q_line = line
        if c == ";":
            text = "".join(buf).strip()
            if text:
                stmts.append((_first_line(buf, start_line), text))
            buf, start_line = [], line
            continue
        buf.append(c)
    rest = "".join(buf).strip()
    if quote:
        return stmts, f"line {q_line}: a {quote} quote is never closed"
    if rest:
        stmts.append((_first_line(buf, start_line), rest + "\x00"))  # \x00: not ended by ';'
    return stmts, None


def _first_line(buf: list[str], start: int) -> int:
    text = "".join(buf)
    lead = len(text) - len(text.lstrip())
    return start + text[:lead].count("\n")


#: a dataset name: ``lib.name``, ``name``, or a name literal ``'外卖评价'n`` (with or without a libref)
_DATASET = r"((?:[A-Za-z_]\w*\.)?(?:[A-Za-z_]\w*|'[^']+'n|\"[^\"]+\"n))"


def _names(text: str, pattern: str) -> list[str]:
    return [m.group(1) for m in re.finditer(pattern, text, flags=re.IGNORECASE)]


def _no_options(text: str) -> str:
    """Dataset options removed (``telco(keep=a b where=(x>1))`` -> ``telco``), nested ones too."""
    prev = None
    while prev != text:
        prev, text = text, re.sub(r"\([^()]*\)", " ", text)
    return text


def check_sas(source: str, tables: list[str] | tuple[str, ...] = ()) -> list[SasCheck]:
    """Structural checks of a SAS program (it cannot run here).

    Args:
        tables: the workspace's tables; the datasets the program reads must be among them
            (``WORK.x``/``x``) or be created earlier in the program.

    Returns:
        The checks, each with ``ok`` and a detail naming the line; all ``ok`` means the
        structure is sound (not that the program is correct).
    """
    checks: list[SasCheck] = []
    if not isinstance(source, str) or not source.strip():
        return [SasCheck("program", False, "no SAS code")]
    body, com = _strip_sas_comments(source)
    checks += com
    stmts, quote_err = _statements(body)
    checks.append(SasCheck("quotes", quote_err is None, quote_err or "balanced"))
    depth, bad_paren = 0, None
    for ln, st in stmts:
        for c in re.sub(r"'[^']*'|\"[^\"]*\"", "", st):
            depth += (c == "(") - (c == ")")
            if depth < 0 and bad_paren is None:
                bad_paren = f"line {ln}: ')' without a matching '('"
        if depth > 0 and bad_paren is None and not st.endswith("\x00"):
            bad_paren = f"line {ln}: '(' is not closed before the end of the statement"
            depth = 0
    checks.append(SasCheck("parentheses", bad_paren is None and depth == 0, bad_paren or
                           ("balanced" if depth == 0 else "'(' is never closed")))

    known = {t.lower() for t in tables}
    created: set[str] = set()
    unknown_tables: list[str] = []
    unknown_procs: list[str] = []
    unclosed: list[str] = []
    steps = 0
    open_step: tuple[str, int] | None = None  # ("DATA" | "PROC X", line)
    unterminated = None

    def need(name: str, ln: int) -> None:
        low = re.sub(r"""^(.*?)['"]([^'"]+)['"]n$""", r"\1\2", name, flags=re.I).lower()  # '外卖评价'n
        lib, _, mem = low.rpartition(".")
        mem = mem or low
        if lib in ("", "work") and mem not in known and mem not in created and low not in created:
            if mem not in ("_null_", "_data_", "_last_"):
                unknown_tables.append(f"line {ln}: {name}")

    def made(name: str) -> None:
        low = name.lower()
        created.add(low)
        created.add(low.rpartition(".")[2])

    for ln, st in stmts:
        if st.endswith("\x00"):
            unterminated = f"line {ln}: the last statement does not end with ';'"
            st = st[:-1]
        s = " ".join(st.split())
        low = s.lower()
        if low.startswith("*"):  # a statement comment: * text;
            continue
        head = low.split(" ", 1)[0].split("(", 1)[0]
        if head == "data" and not low.startswith("data="):
            if open_step:
                unclosed.append(f"{open_step[0]} step at line {open_step[1]} is not closed by RUN;")
            open_step, steps = ("DATA", ln), steps + 1
            for name in _names(_no_options(s[4:]), rf"(?:^|\s){_DATASET}(?=\s|$)"):
                if name.lower() != "_null_":
                    made(name)
            continue
        if head == "proc":
            if open_step:
                unclosed.append(f"{open_step[0]} step at line {open_step[1]} is not closed by RUN;")
            m = re.match(r"proc\s+(\w+)", low)
            pname = m.group(1) if m else "?"
            if pname not in KNOWN_PROCS:
                unknown_procs.append(f"line {ln}: PROC {pname.upper()}")
            open_step, steps = (f"PROC {pname.upper()}", ln), steps + 1
            for name in _names(s, rf"\bdata\s*=\s*{_DATASET}"):
                need(name, ln)
            for name in _names(s, rf"\bout\s*=\s*{_DATASET}"):
                made(name)
            continue
        if head in ("run", "quit"):
            if open_step is None and head == "run":
                pass  # a stray RUN; is harmless
            open_step = None
            continue
        if open_step is None and head not in ("libname", "options", "title", "footnote", "filename", "ods",
                                              "%let", "%put", "goptions", "%macro", "%mend", "endsas"):
            if not head.startswith("%"):
                unclosed.append(f"line {ln}: statement {head.upper()} outside a DATA or PROC step")
            continue
        # inside a step: what it reads and creates
        if head in ("set", "merge", "update", "modify"):
            for name in _names(_no_options(s[len(head):]), rf"(?:^|\s){_DATASET}(?=\s|$)"):
                if name.lower() not in ("end", "nobs", "point", "key", "by"):
                    need(name, ln)
        if open_step and open_step[0] == "PROC SQL":
            for name in _names(s, rf"\bcreate\s+(?:table|view)\s+{_DATASET}"):
                made(name)
            for name in _names(s, rf"\b(?:from|join)\s+{_DATASET}"):
                if name.lower() != "select":
                    need(name, ln)
        for name in _names(s, rf"\bout\s*=\s*{_DATASET}"):
            made(name)
        for name in _names(s, rf"\bdata\s*=\s*{_DATASET}"):
            need(name, ln)
    if open_step:
        closer = "QUIT;" if open_step[0] == "PROC SQL" else "RUN;"
        unclosed.append(f"{open_step[0]} step at line {open_step[1]} is not closed by {closer}")
    checks.append(SasCheck("steps", steps > 0, f"{steps} DATA/PROC step(s)" if steps else
                           "no DATA or PROC step: this is not a SAS program"))
    checks.append(SasCheck("steps closed", not unclosed and unterminated is None,
                           " / ".join(unclosed + ([unterminated] if unterminated else [])) or
                           "every step ends with RUN; or QUIT;"))
    checks.append(SasCheck("procedures", not unknown_procs,
                           ("unknown procedure(s): " + ", ".join(unknown_procs)) if unknown_procs else "all known"))
    checks.append(SasCheck("tables", not unknown_tables,
                           ("not in the workspace: " + ", ".join(dict.fromkeys(unknown_tables)))
                           if unknown_tables else "every dataset read exists in the workspace or is created first"))
    checks.append(_check_sas_names(source))
    return checks


def _check_sas_names(source: str) -> SasCheck:
    """SAS names are ASCII (``VALIDVARNAME=V7``): a Chinese column or table name must be a name
    literal ``'订单金额'n`` under ``OPTIONS VALIDVARNAME=ANY;`` — bare, the program does not run,
    and every Chinese workspace's columns are Chinese."""
    bare = re.sub(r"/\*.*?\*/", " ", source, flags=re.S)
    literals = re.findall(r"(['\"])[^'\"]*\1n\b", bare, flags=re.I)
    bare = re.sub(r"(['\"])[^'\"]*\1n?", " ", bare, flags=re.I)  # strings and name literals
    bare = re.sub(r"^\s*\*[^;]*;", " ", bare, flags=re.M)  # * comment;
    cjk = re.findall(r"[\u4e00-\u9fff][\w\u4e00-\u9fff]*", bare)
    if cjk:
        n = cjk[0]
        return SasCheck("names", False, f"{', '.join(dict.fromkeys(cjk[:4]))}: SAS names must be ASCII; write "
                                        f"'{n}'n (a name literal) and start with OPTIONS VALIDVARNAME=ANY;")
    if literals and not re.search(r"validvarname\s*=\s*any", source, re.I):
        return SasCheck("names", False, "name literals ('…'n) need OPTIONS VALIDVARNAME=ANY; before the first step")
    return SasCheck("names", True, "valid SAS names")


# -- the model's reply ----------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+\-]*)[^\n]*\n(.*?)(?:```|$)", re.DOTALL)


def split_reply(reply: str, language: str) -> tuple[str, str]:
    """``(code, explanation)`` from a reply holding one fenced code block (or bare code)."""
    reply = reply or ""
    m = _FENCE.search(reply)
    if m:
        code = m.group(2).strip()
        explanation = (reply[:m.start()] + " " + reply[m.end():]).strip()
        explanation = re.sub(r"```.*", "", explanation, flags=re.DOTALL).strip()
        return code, re.sub(r"[ \t]*\n(?:[ \t]*\n)+", "\n", explanation)  # the block's place leaves blank lines
    text = reply.strip()
    if language == "sql":
        m2 = re.search(r"(?is)\b(with|select)\b.*", text)
        if m2:
            code = m2.group(0)
            end = code.find(";")
            return (code[:end + 1] if end >= 0 else code).strip(), text[:m2.start()].strip()
    return text, ""


_LOADING = re.compile(r"^\s*[A-Za-z_]\w*\s*=\s*(?:pd|pandas)\.read_\w+\(.*\)\s*(?:#.*)?$")


def drop_table_loading(source: str) -> tuple[str, list[str]]:
    """Python with the lines that load a table from a file (``df = pd.read_csv('telco.csv')``)
    removed: the sandbox gives the table as ``df`` and refuses file reads, and small models
    write such a line out of habit. Returns the code and the lines removed."""
    kept, dropped = [], []
    for line in source.splitlines():
        if _LOADING.match(line):
            dropped.append(line.strip())
            name = line.split("=", 1)[0].strip()
            if name != "df" and not any(k == name for k in ("result", "tables")):
                kept.append(f"{name} = df")
        else:
            kept.append(line)
    return "\n".join(kept), dropped


def _schema_lines(ctx: ToolContext, tables: list[str]) -> list[str]:
    """``- table(col TYPE, ...)`` per table, plus the values of short text columns from the
    dataset profile where the analytics metadata has one (``InternetService: DSL, Fiber optic, No``)."""
    profiles: dict[str, dict[str, Any]] = {}
    if ctx.analytics is not None:
        for t in tables:
            try:
                profiles[t] = ctx.analytics.workspaces.dataset(ctx.tenant_id, ctx.workspace, t).get("profile") or {}
            except ZhinaoError:
                pass
    lines = []
    for t in tables:
        try:
            cols = ctx.ws.schema(t)
        except ZhinaoError:
            continue
        lines.append(f"- {t}(" + ", ".join(f"{c} {typ}" for c, typ in cols) + ")")
        for c in (profiles.get(t) or {}).get("columns", []):
            top = c.get("top_values") or []
            if c.get("kind") == "text" and top and c.get("distinct", 99) <= 8:
                lines.append(f"    {c['name']}: " + ", ".join(str(v.get("value")) for v in top))
    return lines


def pick_tables(ws_tables: list[str], columns: dict[str, list[str]], text: str) -> list[str]:
    """Tables a request is about: those it names, else those whose columns it names, else the first."""
    low = (text or "").lower()
    named = [t for t in ws_tables if re.search(rf"(?<![\w]){re.escape(t.lower())}(?![\w])", low)]
    if named:
        return sorted(named, key=lambda t: low.find(t.lower()))
    by_col = [t for t in ws_tables if any(len(c) > 3 and c.lower() in low for c in columns.get(t, []))]
    if by_col:
        return by_col[:3]
    return ws_tables[:1]


def _system_prompt(language: str, schema: list[str], main: str | None, zh: bool) -> str:
    tables = "\n".join(schema) or "(no tables)"
    explain = "然后用一两句中文解释代码做了什么。" if zh else "Then explain in one or two sentences what it does."
    if language == "sql":
        how = ("Write one DuckDB SQL SELECT query (read-only) over these tables. Reply with the query in one "
               "```sql code block. ")
    elif language == "python":
        how = ("Write Python (pandas) code. The table " + (f"`{main}` " if main else "")
               + "is already loaded as the pandas DataFrame `df`; every table is also in the dict `tables` by "
               "name. `pd` and `np` are imported. Do not read or write files, do not import anything but pandas, "
               "numpy, math, statistics, datetime, re, json, collections, itertools. Put the final answer "
               "(a DataFrame, Series or number) in a variable named `result`. Reply with the code in one "
               "```python code block. ")
    else:
        how = ("Write a SAS program: DATA steps ending with RUN; and PROC steps ending with RUN; (PROC SQL with "
               "QUIT;). The tables are SAS datasets in the WORK library with the same names and columns. "
               + ("Names that are not ASCII must be name literals such as '订单金额'n, and the program starts "
                  "with OPTIONS VALIDVARNAME=ANY;. " if re.search(r"[^\x00-\x7f]", tables) else "")
               + "Reply with the program in one ```sas code block. ")
    return f"You are a data analyst who writes correct, short code.\nTables:\n{tables}\n\n{how}{explain}"


# -- the tool ---------------------------------------------------------------------------------

class WriteCode:
    """Code for a data task, checked by running it (SQL, Python) or by its structure (SAS)."""

    name = "write_code"
    description = ("Write SAS, SQL or Python (pandas) code for a data task on the workspace's tables, with an "
                   "explanation; SQL and Python are checked by running them in a sandbox, SAS by its structure.")
    description_zh = "写一段 SAS / SQL / Python（pandas）代码并解释：SQL 和 Python 在沙箱里运行验证，SAS 检查程序结构。"
    parameters = {"type": "object", "properties": {
        "question": {"type": "string", "description": "what the code should do"},
        "language": {"type": "string", "enum": list(LANGUAGES), "description": "sql, python or sas (default: "
                     "from the request, else python)"}}, "required": ["question"]}
    examples = ("写一段 SAS 代码，按合约类型统计平均月费", "Write pandas code that computes churn rate by contract",
                "写一段 SQL 查询每种网络服务的客户数", "Give me Python code to find the top 10 customers by total charges",
                "Write a SAS program to sort the telco table by tenure")

    async def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        args = args or {}
        question = args.get("question") or args.get("request") or ""
        if not isinstance(question, str) or not question.strip():
            return ToolResult(ok=False, error="write_code needs a 'question' saying what the code should do")
        language = str(args.get("language") or language_of(question)).lower()
        if language in ("pandas", "py"):
            language = "python"
        if language not in LANGUAGES:
            return ToolResult(ok=False, error=f"write_code writes {', '.join(LANGUAGES)}, not {language!r}")
        if ctx.model is None:
            return ToolResult(ok=False, error="no model is available to write code")
        from zhinao.agent.tools_builtin import answer_zh

        zh = answer_zh(ctx, question)
        ws_tables = await asyncio.to_thread(ctx.ws.tables)
        if not ws_tables:
            return ToolResult(ok=False, error="工作区里还没有数据表，请先导入数据。" if zh else
                              "the workspace has no tables yet: import a table first, then ask for code over it",
                              data={"found": False})
        columns = await asyncio.to_thread(lambda: {t: [c for c, _ in ctx.ws.schema(t)] for t in ws_tables})
        main_tables = pick_tables(ws_tables, columns, question)
        shown = list(dict.fromkeys([*main_tables, *ws_tables]))[:12]
        schema = await asyncio.to_thread(_schema_lines, ctx, shown)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": _system_prompt(language, schema, main_tables[0] if main_tables else None,
                                                         zh)},
            {"role": "user", "content": question.strip()}]
        params = GenerationParams(temperature=0.0, max_tokens=700)
        reply = await ctx.model(messages, params, purpose="agent.code")
        source, explanation = split_reply(reply, language)
        outcome = await self._check(ctx, language, source, ws_tables, main_tables)
        source = outcome.get("source", source)
        repaired = False
        if not outcome["ok"] and source:
            messages += [{"role": "assistant", "content": reply},
                         {"role": "user", "content": f"The code did not pass its check: {outcome['error']}\n"
                                                     f"Fix it. Reply with the corrected code in one ```{language} "
                                                     "code block."}]
            reply2 = await ctx.model(messages, params, purpose="agent.repair")
            source2, explanation2 = split_reply(reply2, language)
            if source2:
                outcome2 = await self._check(ctx, language, source2, ws_tables, main_tables)
                if outcome2["ok"] or not outcome["ok"]:
                    source, outcome, repaired = outcome2.get("source", source2), outcome2, True
                    explanation = explanation2 or explanation
        return self._result(language, source, explanation, outcome, repaired, zh)

    async def _check(self, ctx: ToolContext, language: str, source: str, ws_tables: list[str],
                     main_tables: list[str]) -> dict[str, Any]:
        if not source.strip():
            return {"ok": False, "executed": False, "error": "the reply held no code", "checks": [], "output": ""}
        if language == "sas":
            checks = check_sas(source, ws_tables)
            bad = [c for c in checks if not c.ok]
            return {"ok": not bad, "executed": False, "checks": [c.as_dict() for c in checks], "output": "",
                    "error": "; ".join(f"{c.check}: {c.detail}" for c in bad) or None}
        if language == "sql":
            return await asyncio.to_thread(_check_sql, ctx, source)
        source, dropped = drop_table_loading(source)
        out = await asyncio.to_thread(_check_python, ctx, source, ws_tables, main_tables)
        out["source"] = source
        if dropped:
            out["checks"].insert(0, {"check": "fixed", "ok": True, "detail": "removed line(s) that read the table "
                                     "from a file (it is given as `df`): " + " / ".join(dropped)})
        return out

    @staticmethod
    def _result(language: str, source: str, explanation: str, outcome: dict[str, Any], repaired: bool,
                zh: bool) -> ToolResult:
        if language == "sas":
            note = ("（未执行：本平台不能运行 SAS，只检查了程序结构" + ("，结构检查通过。）" if outcome["ok"] else "，发现问题。）")
                    if zh else "(Not executed: SAS cannot run here; only its structure was checked"
                    + (" and it passed.)" if outcome["ok"] else ", and problems were found.)"))
            explanation = (explanation + " " + note).strip()
        elif not explanation:
            explanation = ("代码已在沙箱中运行验证。" if zh else "The code was run in the sandbox to check it.") \
                if outcome["ok"] else ""
        code = {"language": language, "source": source, "executed": bool(outcome.get("executed")),
                "output": outcome.get("output") or "", "checks": outcome.get("checks") or [],
                "explanation": explanation, "repaired": repaired}
        res = ToolResult(ok=bool(outcome["ok"]), summary=explanation[:400], code=code,
                         columns=outcome.get("columns"), rows=outcome.get("rows"),
                         sql=source if language == "sql" and outcome["ok"] else None,
                         data={"repaired": repaired, "masked_columns": outcome.get("masked") or []},
                         error=None if outcome["ok"] else (outcome.get("error") or "the code did not pass its check"))
        return res


def _marks(ctx: ToolContext) -> dict[str, dict[str, str]]:
    """Personal-column marks of the workspace (the analytics metadata), or {} without it."""
    from zhinao.agent import personal

    if ctx.analytics is None:
        return {}
    try:
        return personal.workspace_marks(ctx.analytics.workspaces, ctx.tenant_id, ctx.workspace)
    except ZhinaoError:
        return {}


def _check_sql(ctx: ToolContext, sql: str) -> dict[str, Any]:
    from zhinao.agent import personal
    from zhinao.analytics.sandbox import check_sql

    sql = sql.strip().rstrip(";").strip()
    try:
        check_sql(sql, ctx.ws.tables())
        res = ctx.ws.run_sql(sql, max_rows=200)
    except ZhinaoError as e:
        return {"ok": False, "executed": False, "error": e.message, "checks": [{"check": "run", "ok": False,
                                                                               "detail": e.message}], "output": ""}
    cols, rows = list(res.columns), res.json_rows()
    masked: list[str] = []
    if not ctx.allow_personal:
        from zhinao.agent.tools_builtin import mask_personal  # names, value shapes and the statement's lineage

        rows, masked = mask_personal(cols, rows, _marks(ctx), sql)
    head = "\n".join([" | ".join(cols)] + [" | ".join("" if v is None else str(v) for v in r) for r in rows[:10]])
    more = f"\n... ({len(rows)}{'+' if res.truncated else ''} rows)" if len(rows) > 10 or res.truncated else ""
    return {"ok": True, "executed": True, "columns": cols, "rows": rows, "masked": masked, "output": head + more,
            "checks": [{"check": "parse", "ok": True, "detail": "one read-only SELECT over the workspace's tables"},
                       {"check": "run", "ok": True, "detail": f"{len(rows)} row(s) in {res.elapsed_ms:.0f} ms"}]}


def _check_python(ctx: ToolContext, source: str, ws_tables: list[str], main_tables: list[str]) -> dict[str, Any]:
    from zhinao.agent import personal, pysandbox

    try:
        pysandbox.check_code(source)
    except pysandbox.CodeRefused as e:
        return {"ok": False, "executed": False, "error": e.message, "output": "",
                "checks": [{"check": "ast", "ok": False, "detail": e.message}]}
    low = source.lower()
    used = [t for t in ws_tables if re.search(rf"['\"]{re.escape(t.lower())}['\"]", low) or
            re.search(rf"(?<![\w.]){re.escape(t.lower())}(?![\w])", low)]
    names = list(dict.fromkeys([*main_tables[:1], *used]))[:4]
    marks = {} if ctx.allow_personal else _marks(ctx)
    frames, masked = {}, []
    for t in names:
        df = ctx.ws.read_table(t, COPY_MAX_ROWS)
        if not ctx.allow_personal:
            tmarks = marks.get(t) if ctx.analytics is not None else personal.detect(df)
            if tmarks:
                df = personal.mask_frame(df, tmarks)
                masked += [c for c in tmarks if c in df.columns]
        frames[t] = df
    limits = pysandbox.PyLimits.from_settings(ctx.settings) if ctx.settings is not None else pysandbox.PyLimits()
    out = pysandbox.run_python(source, frames, limits=limits)
    checks = [{"check": "ast", "ok": True, "detail": "imports and names allowed"},
              {"check": "run", "ok": out.ok, "detail": (out.error or f"ran in {out.elapsed_ms:.0f} ms on a copy of "
                                                        + ", ".join(names))}]
    return {"ok": out.ok, "executed": out.error_kind not in ("refused",), "error": out.error,
            "columns": out.columns, "rows": out.rows, "masked": masked, "output": out.output_text(),
            "checks": checks, "isolation": out.isolation}


__all__ = ["KNOWN_PROCS", "LANGUAGES", "SasCheck", "WriteCode", "check_sas", "drop_table_loading", "language_of",
           "pick_tables", "split_reply"]
