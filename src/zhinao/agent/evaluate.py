"""Execution accuracy of the analyst agent on a question set (issue 12, item 6).

A question is a JSON object: ``id``, ``lang`` (``zh``/``en``), ``q``, ``category`` and either a
gold ``sql`` (with ``ordered``: whether the gold's row order is part of the answer) or a gold
``call`` — ``{"tool": "run_model", "args": {...}, "expect": {...}}`` — for questions a SQL
statement cannot answer (fit a churn model, forecast next week's traffic).

Why execution accuracy and not SQL text: many statements give the same answer (a CTE or a
subquery, ``AVG(x = 'Yes')`` or ``SUM(CASE ...) / COUNT(*)``), and the user only sees the
result. The comparison follows the Spider ``check.py`` rule: column names are ignored, each
value is normalised (numbers to 4 places, NULL, dates and timestamps as ISO text) and rows are
compared as a multiset unless the gold is ordered. A tool-call question is scored by its
expectation: the agent ran that tool, with one of the accepted model keys, on the expected
table, and reported the named metric.

``run_eval`` takes the agent as a plain async callable (question text -> :class:`AgentAnswer`)
and the gold rows as another callable, so the same scorer runs in ``zhinao agent eval``, in
``bench/agent.py`` (per model, beside the plain prompt-to-SQL baseline) and in the tests.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import decimal
import inspect
import json
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from zhinao.errors import InvalidRequest

#: where the shipped set lives
DEMO_QUESTIONS = Path(__file__).parent / "demo" / "eval_questions.jsonl"
LANGS = ("zh", "en")

_ISO_DT = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?:Z|[+-]\d{2}:?\d{2})?$")


# -- normalisation and comparison -------------------------------------------------------------

def _iso_datetime(date: str, time_part: str) -> str:
    """``2013-11-01``, ``00:00`` -> ``2013-11-01``; other times as ``YYYY-MM-DD HH:MM:SS``."""
    hms = (time_part + ":00")[:8] if len(time_part) == 5 else time_part[:8]
    frac = time_part[8:] if len(time_part) > 8 else ""
    if hms == "00:00:00" and not frac.strip(".0"):
        return date
    return f"{date} {hms}" + (frac.rstrip("0").rstrip(".") if frac else "")


def normalise(v: Any) -> Any:
    """One result value in a form two engines agree on.

    Numbers (int, float, Decimal, bool) become floats rounded to 4 places (so ``1``, ``1.0``
    and ``Decimal('1.00')`` match, and ``SUM`` of integers as HUGEINT matches a Python int);
    NaN and None become None; dates and timestamps become ISO text, a timestamp at midnight
    the bare date (``date_trunc('day', ts)`` is a TIMESTAMP in DuckDB, a DATE elsewhere) —
    and text holding an ISO timestamp (what JSON rows carry) is normalised the same way.
    """
    if v is None:
        return None
    if isinstance(v, bool):
        return float(int(v))
    if isinstance(v, (int, float, decimal.Decimal)):
        try:
            x = float(v)
        except (OverflowError, ValueError):
            return str(v)
        if math.isnan(x) or math.isinf(x):
            return None
        r = round(x, 4)
        return 0.0 if r == 0 else r  # -0.0 == 0.0, but keep one spelling for the multiset key
    if isinstance(v, _dt.datetime):
        return _iso_datetime(v.date().isoformat(), v.time().isoformat())
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, _dt.time):
        return v.isoformat()
    if isinstance(v, str):
        m = _ISO_DT.match(v.strip())
        return _iso_datetime(m.group(1), m.group(2)) if m else v
    if isinstance(v, (list, tuple)):
        return tuple(normalise(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), normalise(x)) for k, x in v.items()))
    return str(v)


def normalise_rows(rows: Iterable[Sequence[Any]] | None) -> list[tuple[Any, ...]]:
    return [tuple(normalise(v) for v in row) for row in (rows or [])]


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # None sorts and hashes apart from every number and string
    return tuple(("\0none",) if v is None else v for v in row)


def same_result(gold_rows: Iterable[Sequence[Any]] | None, pred_rows: Iterable[Sequence[Any]] | None,
                ordered: bool = False) -> bool:
    """True when the predicted result equals the gold one (Spider's execution-match rule).

    Column names play no part (rows are value lists); the number of columns does. Without
    ``ordered`` the rows are compared as multisets (duplicates count), with it in sequence.
    """
    g, p = normalise_rows(gold_rows), normalise_rows(pred_rows)
    if len(g) != len(p):
        return False
    if ordered:
        return g == p
    return Counter(map(_key, g)) == Counter(map(_key, p))


# -- the question file ------------------------------------------------------------------------

def check_question(q: Any, where: str = "") -> dict[str, Any]:
    """One question, checked: the fields every scorer relies on; raises InvalidRequest."""
    at = f"{where}: " if where else ""
    if not isinstance(q, dict):
        raise InvalidRequest(f"{at}a question is a JSON object, got {type(q).__name__}")
    for f in ("id", "q"):
        if not isinstance(q.get(f), str) or not q[f].strip():
            raise InvalidRequest(f"{at}field {f!r} (non-empty text) is required")
    has_sql, has_call = isinstance(q.get("sql"), str) and q["sql"].strip(), isinstance(q.get("call"), dict)
    if bool(has_sql) == bool(has_call):
        raise InvalidRequest(f"{at}question {q['id']!r} needs exactly one of 'sql' (text) or 'call' (object)")
    if has_call:
        call = q["call"]
        if not isinstance(call.get("tool"), str) or not isinstance(call.get("args", {}), dict):
            raise InvalidRequest(f"{at}question {q['id']!r}: 'call' needs 'tool' (text) and 'args' (object)")
        if not isinstance(call.get("expect", {}), dict):
            raise InvalidRequest(f"{at}question {q['id']!r}: 'call.expect' must be an object")
    out = dict(q)
    out.setdefault("lang", "zh" if re.search(r"[\u3400-\u9fff]", q["q"]) else "en")
    out.setdefault("category", "other")
    out["ordered"] = bool(q.get("ordered", False))
    return out


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    """The questions of a JSON-lines file (blank lines and ``#`` comments skipped).

    Raises:
        NotFound-like InvalidRequest when the file is missing, InvalidRequest naming the line
        of a malformed question or a repeated id.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidRequest(f"question file {str(p)!r} not found", param="questions")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"{p.name} line {n}: not JSON ({e.msg})", param="questions") from None
        q = check_question(raw, f"{p.name} line {n}")
        if q["id"] in seen:
            raise InvalidRequest(f"{p.name} line {n}: id {q['id']!r} repeated", param="questions")
        seen.add(q["id"])
        out.append(q)
    if not out:
        raise InvalidRequest(f"{p.name} holds no questions", param="questions")
    return out


# -- scoring tool-call questions --------------------------------------------------------------

_MODEL_ARGS = ("key", "model", "model_key")
_TABLE_ARGS = ("table", "dataset")


def _calls_of(answer: Any) -> list[dict[str, Any]]:
    """The tool calls an answer made, the final re-runnable ``call`` first."""
    out = []
    call = getattr(answer, "call", None)
    if isinstance(call, dict):
        out.append({"tool": call.get("tool"), "args": call.get("args") or {}, "ok": True, "call": call})
    for tc in getattr(answer, "tool_calls", None) or []:
        d = tc if isinstance(tc, dict) else tc.as_dict() if hasattr(tc, "as_dict") else {}
        out.append({"tool": d.get("tool"), "args": d.get("args") or {}, "ok": bool(d.get("ok", True)), "call": d})
    return out


def _mentions(obj: Any, word: str) -> bool:
    """``word`` is a key, a string value, or (in prose) a token anywhere inside ``obj``."""
    w = word.lower()
    if isinstance(obj, str):
        return re.search(r"(?<![a-z0-9_@])" + re.escape(w) + r"(?![a-z0-9_@])", obj.lower()) is not None
    if isinstance(obj, dict):
        return any(_mentions(k, word) or _mentions(v, word) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return any(_mentions(x, word) for x in obj)
    return False


def call_matches(expect: dict[str, Any], gold_call: dict[str, Any], answer: Any) -> tuple[bool, str]:
    """Does ``answer`` satisfy a tool-call question? Returns (ok, why not).

    ``expect`` keys (all optional): ``models`` (accepted model keys; default the gold call's
    ``args.key``), ``dataset`` (default the gold's ``args.table``), ``metric`` (a metric name
    the answer must report — in the result table, the call, a tool call's summary or the
    narrative; the ``run_model`` tool's summary names the model's primary metric).
    Argument names follow the ``run_model`` tool (``key``, ``table``); ``model``/``dataset``
    (the analytics API's names) are accepted too.
    """
    tool = gold_call.get("tool")
    gargs = gold_call.get("args") or {}
    gold_model = next((gargs[k] for k in _MODEL_ARGS if gargs.get(k)), None)
    models = list(expect.get("models") or ([gold_model] if gold_model else []))
    dataset = expect.get("dataset", next((gargs[k] for k in _TABLE_ARGS if gargs.get(k)), None))
    calls = [c for c in _calls_of(answer) if c["tool"] == tool and c["ok"]]
    if not calls:
        return False, f"no successful {tool} call"
    why = ""
    for c in calls:
        a = c["args"]
        model = next((a[k] for k in _MODEL_ARGS if a.get(k)), None)
        if models and model not in models:
            why = f"model {model!r} not among {models}"
            continue
        table = next((a[k] for k in _TABLE_ARGS if a.get(k)), None)
        if dataset and table is not None and table != dataset:
            why = f"table {table!r}, expected {dataset!r}"
            continue
        break
    else:
        return False, why
    metric = expect.get("metric")
    if metric:
        shown = [getattr(answer, "columns", None), getattr(answer, "rows", None), getattr(answer, "call", None),
                 getattr(answer, "answer", "")] + [c["call"].get("summary", "") for c in calls]
        if not any(_mentions(x, metric) for x in shown):
            return False, f"metric {metric!r} not reported"
    return True, ""


# -- the run ----------------------------------------------------------------------------------

def _percentile(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    i = (len(s) - 1) * p
    lo, hi = math.floor(i), math.ceil(i)
    return float(s[lo] + (s[hi] - s[lo]) * (i - lo))


async def _maybe_await(x: Any) -> Any:
    return await x if inspect.isawaitable(x) else x


def _share(d: dict[str, list[bool]]) -> dict[str, dict[str, Any]]:
    return {k: {"n": len(v), "correct": sum(v), "execution_accuracy": round(sum(v) / len(v), 4) if v else 0.0}
            for k, v in sorted(d.items())}


async def run_eval(ask: Callable[[str], Awaitable[Any]], questions: Sequence[dict[str, Any]],
                   gold_rows_fn: Callable[[str], Any], *, model_name: str | None = None,
                   concurrency: int = 1, on_result: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """Ask every question, score each answer, and report.

    Args:
        ask: ``await ask(question_text)`` -> an :class:`~zhinao.agent.base.AgentAnswer` (or any
            object with ``rows``, ``sql``, ``call``, ``tool_calls``, ``repaired``). An exception
            counts as a wrong answer (its message is kept in ``failures``).
        questions: from :func:`load_questions` (or :func:`check_question`-shaped dicts).
        gold_rows_fn: ``gold_rows_fn(sql)`` -> the gold statement's rows (may be async), e.g.
            ``lambda sql: ws.run_sql(sql).json_rows()``; called once per SQL question.
        model_name: recorded in the report.
        concurrency: questions in flight at once (1 = one after another, as latency is measured).
        on_result: called with each question's record as it is scored, errors included (progress output).

    Returns:
        ``{model, n, correct, execution_accuracy, by_category, by_lang, by_kind, p50_ms, p95_ms,
        mean_ms, repaired_share, errors, failures: [{id, q, category, lang, reason, gold, pred ...}],
        results: [{id, correct, ms, repaired}]}``.
    """
    qs = [check_question(q, f"question {i + 1}") for i, q in enumerate(questions)]
    if not qs:
        raise InvalidRequest("no questions to evaluate", param="questions")
    sem = asyncio.Semaphore(max(1, int(concurrency)))

    async def one(q: dict[str, Any]) -> dict[str, Any]:
        rec = await score(q)
        if on_result is not None:
            on_result(rec)
        return rec

    async def score(q: dict[str, Any]) -> dict[str, Any]:
        rec: dict[str, Any] = {"id": q["id"], "q": q["q"], "lang": q["lang"], "category": q["category"],
                               "kind": "sql" if q.get("sql") else "call", "correct": False, "repaired": False,
                               "ms": 0.0, "reason": ""}
        gold: Any = None
        if q.get("sql"):
            try:
                gold = await _maybe_await(gold_rows_fn(q["sql"]))
            except Exception as e:  # a broken gold is reported, never scored as the agent's fault silently
                rec.update(reason=f"gold SQL failed: {e}", gold_error=True)
                return rec
        async with sem:
            t0 = time.perf_counter()
            try:
                answer = await ask(q["q"])
            except Exception as e:
                rec.update(ms=(time.perf_counter() - t0) * 1000, reason=f"error: {type(e).__name__}: {e}", error=True)
                return rec
            rec["ms"] = (time.perf_counter() - t0) * 1000
        rec["repaired"] = bool(getattr(answer, "repaired", False))
        rec["pred_sql"] = getattr(answer, "sql", None)
        if q.get("sql"):
            pred = getattr(answer, "rows", None) or []
            rec["correct"] = same_result(gold, pred, q["ordered"])
            if not rec["correct"]:
                rec.update(reason="no SQL result" if not getattr(answer, "sql", None) and not pred else "result differs",
                           gold=[list(r) for r in normalise_rows(gold)[:5]], pred=[list(r) for r in normalise_rows(pred)[:5]],
                           gold_rows=len(gold or []), pred_rows=len(pred))
        else:
            call = q["call"]
            ok, why = call_matches(call.get("expect") or {}, call, answer)
            rec["correct"], rec["reason"] = ok, why
            if not ok:
                rec["pred_call"] = getattr(answer, "call", None)
        return rec

    results = await asyncio.gather(*(one(q) for q in qs))
    by_cat: dict[str, list[bool]] = {}
    by_lang: dict[str, list[bool]] = {}
    by_kind: dict[str, list[bool]] = {}
    for r in results:
        by_cat.setdefault(r["category"], []).append(r["correct"])
        by_lang.setdefault(r["lang"], []).append(r["correct"])
        by_kind.setdefault(r["kind"], []).append(r["correct"])
    answered = [r for r in results if not r.get("gold_error")]
    ms = [r["ms"] for r in answered if not r.get("error")]
    correct = sum(r["correct"] for r in results)
    keep = ("id", "q", "lang", "category", "reason", "pred_sql", "gold", "pred", "gold_rows", "pred_rows", "pred_call")
    return {
        "model": model_name,
        "n": len(results),
        "correct": correct,
        "execution_accuracy": round(correct / len(results), 4),
        "by_category": _share(by_cat),
        "by_lang": _share(by_lang),
        "by_kind": _share(by_kind),
        "p50_ms": round(_percentile(ms, 0.5), 1),
        "p95_ms": round(_percentile(ms, 0.95), 1),
        "mean_ms": round(sum(ms) / len(ms), 1) if ms else 0.0,
        "repaired_share": round(sum(r["repaired"] for r in answered) / len(answered), 4) if answered else 0.0,
        "errors": sum(1 for r in results if r.get("error")),
        "gold_errors": sum(1 for r in results if r.get("gold_error")),
        "failures": [{k: r[k] for k in keep if k in r} for r in results if not r["correct"]],
        "results": [{"id": r["id"], "correct": r["correct"], "ms": round(r["ms"], 1), "repaired": r["repaired"]}
                    for r in results],
    }


def gold_model(questions: Sequence[dict[str, Any]], name: str = "gold"):
    """A chat model that answers like a perfect one on ``questions``: the gold SQL for a SQL
    question, the right route for a routing choice (``sql``, or ``model``/``forecast`` for a
    tool-call question).

    Why: run through the real :class:`~zhinao.agent.service.AgentService`, it measures the
    *ceiling* of the agent's machinery — what routing, verification, masking and narration
    lose even when every model reply is right — apart from what a small model loses. It is
    a real implementation of the runtime's chat-model protocol (the echo backend), not a mock.
    """
    from zhinao.runtime.echo import EchoChatModel, minimal_instance

    by_text = sorted(((q["q"], q) for q in questions), key=lambda kv: -len(kv[0]))  # longest first: no prefix clash

    class GoldModel(EchoChatModel):
        def _reply(self, messages, params):
            users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
            last = users[-1] if users else ""
            q = next((q for text, q in by_text if text in last), None)
            rf = params.response_format or {}
            if q is None:
                return super()._reply(messages, params)
            route = "sql" if q.get("sql") else "forecast" if q.get("category") == "forecast" else "model"
            if rf.get("type") == "json_schema":
                schema = rf.get("json_schema", {}).get("schema", {})
                props = schema.get("properties", {})
                out = minimal_instance(schema) if isinstance(minimal_instance(schema), dict) else {}
                if "route" in props:
                    enum = props["route"].get("enum") or [route]
                    out["route"] = route if route in enum else enum[0]
                if "sql" in props and q.get("sql"):
                    out["sql"] = q["sql"]
                return json.dumps(out, ensure_ascii=False), None
            if q.get("sql"):
                return f"```sql\n{q['sql']}\n```", None
            return super()._reply(messages, params)

    return GoldModel(name=name)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few human lines for the CLI (the JSON report holds everything)."""
    lines = [f"model {report.get('model') or '-'}: execution accuracy {report['execution_accuracy']:.1%} "
             f"({report['correct']}/{report['n']}), p50 {report['p50_ms'] / 1000:.2f} s, p95 {report['p95_ms'] / 1000:.2f} s, "
             f"repaired {report['repaired_share']:.1%}"
             + (f", {report['errors']} error(s) — see failures" if report.get("errors") else "")
             + (f", {report['gold_errors']} gold statement(s) failed" if report.get("gold_errors") else "")]
    for title, key in (("category", "by_category"), ("language", "by_lang")):
        parts = [f"{k} {v['execution_accuracy']:.0%} ({v['correct']}/{v['n']})" for k, v in report[key].items()]
        lines.append(f"  by {title}: " + ", ".join(parts))
    return lines
