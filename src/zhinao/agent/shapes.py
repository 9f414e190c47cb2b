"""Question shapes: one-line SQL rules for the shapes a question has (ratio, per group, top-k, time).

Split from :mod:`zhinao.agent.sqlgen` (the prompt builder calls :func:`question_hints`); the words
recognised are any analyst's, English and Chinese, nothing about one schema.
"""

from __future__ import annotations

import re
from typing import Any

from zhinao.agent.linking import LinkedSchema, SchemaIndex

#: identifiers a query must quote to use as a column name
_KEYWORDS = frozenset("timestamp date time interval order group select from where user year month day hour".split())

# -- question shapes ---------------------------------------------------------------------
#
# The 0.5B model knows SQL but not which shape a question wants: it answers "the churn rate of
# each contract" with ``WHERE Contract = ...``, "the top 3" without ``LIMIT``, "a fraction" with
# ``COUNT(*)``. Each shape below is recognised from words any analyst's question uses (English
# and Chinese, nothing about one schema) and adds one line after the schema, only when it
# applies, so the model reads the one rule it needs and not a list of all of them.

_RATIO = re.compile(r"\b(rate|ratio|fraction|share|percentage|percent|proportion)s?\b|率|比例|占比|比重|百分比|份额", re.I)
_PERCENT = re.compile(r"\b(percentage|percent)\b|%|百分比|百分之", re.I)
_EACH = re.compile(r"\b(each|every|per)\b|\b(grouped|broken down|split) by\b|\bby (type|group|category|segment)\b|"
                   r"各(?!自)|(?<!平均)每(个|种|类|一|位)|按|分别|不同", re.I)
_SUPERLATIVE = re.compile(r"\b(top|highest|lowest|most|least|largest|smallest|fewest|biggest|busiest|quietest)\b|"
                          r"最(高|多|低|少|大|小|忙|闲|长|短)|前\s*\d+", re.I)
_LOW = re.compile(r"\b(lowest|least|smallest|fewest|quietest|bottom)\b|最(低|少|小|闲|短)", re.I)
_WHICH = re.compile(r"\b(which|top|list the \d+|the \d+)\b|哪|前\s*\d+|\d+\s*(个|种|位|天|名|类|项)", re.I)
#: k of "top k": a number of things ("3 regions", "前 10 种"), never part of a date, an hour or a range
_COUNT_K = re.compile(r"(?<![\d\-/:.])(\d{1,3})(?![\d\-/:.]|\s*[年月日号时点%])(?=\s*(?:个|种|位|天|名|类|项|家)|\s+[a-z])",
                      re.I)
#: a time window or a time grouping: a date, a named period, "each day / by month", 每天 / 按月 — not
#: a bare mention of a unit ("how many hours are recorded" wants COUNT(*), no window)
_TIME = re.compile(r"\b(19|20)\d\d\b|\b(january|february|march|april|june|july|august|september|october|november|"
                   r"december|weekends?|weekdays?|mornings?|evenings?|nights?|daily|weekly|hourly|"
                   r"(each|every|per|by|of the) (day|date|week|month|hour|year)|day of (the )?(week|month)|"
                   r"hour of (the )?day|(first|last|busiest|quietest|latest|earliest) (day|date|week|month|hour))\b|"
                   r"\d+\s*(年|月|日|号|点)|周末|工作日|星期|早上|晚上|上午|下午|凌晨|每(天|日|周|月|小时)|按(日|天|周|月|小时)|"
                   r"(最后|第一|最早|最晚)一?(天|日|周|个月)|哪一?(天|日|周|个月|个小时)", re.I)


def question_hints(question: str, index: SchemaIndex, linked: LinkedSchema | None = None) -> list[str]:
    """One-line SQL shape rules for the shapes ``question`` has (ratio, per-group, top-k, time),
    as ``--`` comment lines to put after the schema. Empty for a plain lookup.

    Why per question: a small model follows the one rule in front of it; shown every rule for
    every question, it applies them where they do not belong (``GROUP BY`` on a single count)."""
    text = str(question or "")
    out: list[str] = []
    best = linked.best_tables() if linked is not None else []
    if best and len(index.table_names) > 1:
        # the 0.5B model otherwise picks a table by habit (a time question answered on groceries)
        out.append(f"-- The question's words match table{'s' if len(best) > 1 else ''} {', '.join(best)} best.")
    each = bool(_EACH.search(text))
    if _RATIO.search(text):
        scale = "100.0 * AVG(...)" if _PERCENT.search(text) else "a fraction between 0 and 1, not a percentage"
        out.append("-- A rate or share of rows: AVG(CASE WHEN <condition> THEN 1 ELSE 0 END) over the rows it is a "
                   "share of; of a total: SUM(CASE WHEN <condition> THEN x ELSE 0 END) / SUM(x) "
                   f"({scale}). The condition is what is counted; a WHERE only narrows the base.")
    if each:
        out.append("-- 'each / per / 各 / 按 <column>': GROUP BY that column and SELECT the column and the measure; "
                   "no WHERE on its values.")
    if _SUPERLATIVE.search(text) and (_WHICH.search(text) or each):
        m = _COUNT_K.search(text)
        k = int(m.group(1)) if m and 0 < int(m.group(1)) <= 100 else 1
        order = "ASC" if _LOW.search(text) else "DESC"
        # not "the label": the 0.5B model wrote a column named label into every ranking
        out.append(f"-- Top / bottom: ORDER BY the measure {order} LIMIT {k}; SELECT the ranked column and the measure.")
    if _TIME.search(text):
        cols = _time_columns(index, linked)
        if cols:
            c = cols[0]
            table = (linked.tables if linked is not None and linked.tables else index.table_names)[0]
            # the periods the question names, resolved to bounds; else a worked month from the column's
            # own range. A template such as '<the day after>' was copied literally by the 0.5B model
            # (TIMESTAMP '<2014-01-01'), and a worked month it was not asked about was copied too
            periods = question_periods(text)[:2] or [_example_period(index, linked)]
            spans = "; ".join(f"{label} is {c} >= TIMESTAMP '{lo}' AND {c} < TIMESTAMP '{nxt}'"
                              for lo, nxt, label in periods)
            out.append(f"-- Time ({', '.join(cols[:3])} of {table}): {spans} (end exclusive); a day is "
                       f"CAST({c} AS DATE); hour({c}), month({c}), dayofweek({c}) (0 = Sunday, 6 = Saturday).")
    return out


def _time_columns(index: SchemaIndex, linked: LinkedSchema | None) -> list[str]:
    """DATE / TIMESTAMP columns of the table the question is most about (the best linked one),
    written as the query must write them (``"timestamp"`` is a keyword: quoted)."""
    names = list(linked.tables) if linked is not None and linked.tables else index.table_names
    out = []
    for tn in names[:1]:  # the table the question is about; "个月" in a customer question is no time window
        t = index.table(tn)
        for c in (t.columns if t else []):
            if c.type.upper().startswith(("DATE", "TIMESTAMP")):
                ident = c.name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c.name) and c.name.lower() not in _KEYWORDS \
                    else '"' + c.name.replace('"', '""') + '"'
                out.append(ident)
    return out


_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_ISO_DAY = re.compile(r"\b((?:19|20)\d\d)-(\d{1,2})-(\d{1,2})\b")
_ZH_DAY = re.compile(r"((?:19|20)\d\d)\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")
_ZH_MONTH = re.compile(r"((?:19|20)\d\d)\s*年\s*(\d{1,2})\s*月(?!\s*\d{1,2}\s*[日号])")
_EN_MONTH = re.compile(r"\b(" + "|".join(_MONTHS) + r")\s+((?:19|20)\d\d)\b", re.I)


def question_periods(question: str) -> list[tuple[str, str, str]]:
    """The calendar days and months ``question`` names, as ``(start, end exclusive, words)``:
    "2013-12-25", "2013 年 12 月 25 日" (a day), "December 2013", "2013 年 11 月" (a month),
    in the order written. Why: the small model gets the end of a period wrong (``< '2013-12-31'``
    for December) far more often than the start."""
    import datetime as _dt

    found: list[tuple[int, str, str, str]] = []

    def add(pos: int, start: Any, end: Any, words: str) -> None:
        found.append((pos, start.isoformat(), end.isoformat(), words))

    for rx in (_ISO_DAY, _ZH_DAY):
        for m in rx.finditer(question or ""):
            try:
                d = _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
            add(m.start(), d, d + _dt.timedelta(days=1), m.group(0))
    months = [(m.start(), int(m.group(1)), int(m.group(2)), m.group(0)) for m in _ZH_MONTH.finditer(question or "")]
    months += [(m.start(), int(m.group(2)), _MONTHS.index(m.group(1).lower()) + 1, m.group(0))
               for m in _EN_MONTH.finditer(question or "")]
    for pos, y, mo, words in months:
        if not 1 <= mo <= 12:
            continue
        start = _dt.date(y, mo, 1)
        add(pos, start, _dt.date(y + 1, 1, 1) if mo == 12 else _dt.date(y, mo + 1, 1), words)
    return [(a, b, w) for _, a, b, w in sorted(found)]


def _example_period(index: SchemaIndex, linked: LinkedSchema | None) -> tuple[str, str, str]:
    """The first whole month of the question's table's time column: ('2013-11-01', '2013-12-01',
    'November 2013'); a fixed month where the range is unknown."""
    import datetime as _dt

    names = list(linked.tables) if linked is not None and linked.tables else index.table_names
    t = index.table(names[0]) if names else None
    lo = next((c.lo for c in (t.columns if t else []) if c.type.upper().startswith(("DATE", "TIMESTAMP"))
               and c.lo is not None), None)
    try:
        d = _dt.date.fromisoformat(str(lo)[:10])
    except ValueError:
        d = _dt.date(2024, 1, 1)
    start = d.replace(day=1)
    nxt = (start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1))
    return start.isoformat(), nxt.isoformat(), start.strftime("%B %Y")
