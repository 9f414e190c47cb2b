"""Schema linking: which tables, columns and stored values a question is about.

Small models lose most text-to-SQL points on linking, not on SQL syntax: they pick a wrong
column, or write ``InternetService = 'fiber'`` where the table stores ``'Fiber optic'``
(CHESS, DIN-SQL, RESDSQL all put a retrieval step before generation). So before the model
sees a question, :class:`SchemaIndex` finds

* the tables and columns whose names, descriptions or glossary terms match the question
  (BM25 over identifier words — ``customerID`` → ``customer id`` — and jieba tokens for
  Chinese; optionally dense scores from an embedder), and
* the **stored values** that match (BM25 over the distinct values of text columns, read
  once through the SQL sandbox), so the prompt can name the exact literal.

:meth:`SchemaIndex.prompt_text` renders the schema as compact ``CREATE TABLE`` text with
descriptions, value lists and join hints. Without ``linked`` the text depends only on the
workspace, byte for byte, so it can be the stable prefix of every prompt and llama-server
reuses its KV cache for it (``cache_prompt``); the per-question hints go after it.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zhinao.analytics.workspace import q

#: words of SQL that may stand bare in a glossary formula (not column names)
_SQL_WORDS = frozenset({"AND", "OR", "NOT", "IS", "NULL", "AS", "DISTINCT", "CASE", "WHEN", "THEN", "ELSE", "END",
                        "IN", "LIKE", "BETWEEN", "TRUE", "FALSE", "ALL", "OVER", "BY", "PARTITION", "ORDER"})

#: text columns with more distinct values than this keep only their most frequent ones
MAX_VALUES = 200
#: values longer than this are prose (titles, comments), not labels: not indexed
MAX_VALUE_CHARS = 80
#: a text column with at most this many distinct values shows all of them in the prompt
SHOW_ALL_VALUES = 12

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_PIECE = re.compile(r"[A-Za-z]+|\d+(?:\.\d+)?|[\u3400-\u9fff\uf900-\ufaff]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_STOP = frozenset("""a an the of in on at to for by with and or is are was were be been do does did what which who whom
whose how many much show list give find return tell me all each every that this these those there their its it as from
number count please than more less most least have has had get select display name names""".split()) - {"name", "names"}
_STOP_ZH = frozenset("的 了 是 在 和 与 及 或 有 多少 什么 哪些 哪个 各 每个 请 查询 一下 显示 列出 给出 统计 吗 呢 按 中 为".split())
#: values that name no entity: a question's "no" or "yes" is not evidence it means ``PhoneService = 'No'``
#: (the schema lists these values anyway), so they are never hinted from the question's words
_GENERIC_VALUES = frozenset("yes no y n true false t f none null nan other others unknown n/a na 0 1 是 否 无 有 其他 未知 "
                            "one two three four five six seven eight nine ten 一 二 两 三 四 五".split())
#: a value shared by this many columns is a category of the schema ("No internet service" in six
#: add-on columns), not a thing the question names: hinted only when written whole
_SHARED_VALUE_COLUMNS = 3
#: time units: questions use them for windows ("each month", "per day"), so a value made of them
#: ('Month-to-month', 'One year') is hinted only when written whole ("month-to-month", "one-year")
_TIME_WORDS = frozenset("second minute hour day week month quarter year daily weekly monthly yearly annual "
                        "秒 分钟 小时 天 日 周 星期 月 季度 年".split())
_TEXT_TYPES = ("VARCHAR", "TEXT", "STRING", "CHAR", "ENUM")
_NUM_TYPES = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC", "BIGINT", "HUGEINT", "SMALLINT", "TINYINT")


def _stem(w: str) -> str:
    """A light English stemmer: plurals only (``singers`` → ``singer``, ``countries`` → ``country``)."""
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("ses", "xes", "ches", "shes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def tokens(text: str, *, keep_stop: bool = False) -> list[str]:
    """Index terms of ``text``: identifier words split (``camelCase``, ``snake_case``),
    lower-cased and de-pluralised; Chinese cut by jieba (search mode) plus character bigrams."""
    out: list[str] = []
    for m in _PIECE.finditer(str(text or "")):
        piece = m.group()
        if _CJK.match(piece):
            import jieba

            for t in jieba.cut_for_search(piece):
                t = t.strip()
                if t and (keep_stop or t not in _STOP_ZH):
                    out.append(t)
            # character bigrams too: jieba cuts 离网率 as 离/网率, and a description's 月付 must
            # still meet the question's 月付用户
            out += [piece[i:i + 2] for i in range(len(piece) - 1) if piece[i:i + 2] not in _STOP_ZH or keep_stop]
            continue
        for sub in _CAMEL.split(piece):
            w = sub.lower()
            if w and (keep_stop or w not in _STOP):
                out.append(_stem(w))
    return out


class BM25:
    """Okapi BM25 over small in-memory documents (an inverted index; no dependency)."""

    def __init__(self, docs: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.n = len(docs)
        self.lengths = [len(d) for d in docs]
        self.avg = (sum(self.lengths) / self.n) if self.n else 0.0
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, d in enumerate(docs):
            for t, c in Counter(d).items():
                self.postings[t].append((i, c))

    def idf(self, term: str) -> float:
        df = len(self.postings.get(term, ()))
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5)) if df else 0.0

    def scores(self, query: Iterable[str]) -> dict[int, float]:
        out: dict[int, float] = defaultdict(float)
        for t in set(query):
            idf = self.idf(t)
            for i, c in self.postings.get(t, ()):
                norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / (self.avg or 1))
                out[i] += idf * c * (self.k1 + 1) / (c + norm)
        return dict(out)


@dataclass
class ColumnInfo:
    """One column as the prompt and the verifier see it."""

    table: str
    name: str
    type: str
    description: str = ""
    values: list[str] = field(default_factory=list)  #: most frequent first
    distinct: int | None = None  #: distinct non-null values (text columns)
    complete: bool = False  #: ``values`` holds every distinct value
    lo: Any = None  #: numeric / date range
    hi: Any = None

    @property
    def is_text(self) -> bool:
        return self.type.upper().startswith(_TEXT_TYPES)

    @property
    def is_number(self) -> bool:
        return any(t in self.type.upper() for t in _NUM_TYPES)


@dataclass
class TableInfo:
    name: str
    columns: list[ColumnInfo]
    rows: int = 0
    description: str = ""


@dataclass
class ValueHit:
    """A stored value the question seems to mention: ``table.column = value`` exactly as stored."""

    table: str
    column: str
    value: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "column": self.column, "value": self.value, "score": round(self.score, 3)}


@dataclass
class LinkedSchema:
    """What :meth:`SchemaIndex.link` found, best first."""

    tables: list[str]
    columns: list[tuple[str, str, float]]  #: (table, column, score)
    values: list[ValueHit]
    terms: list[dict[str, Any]]  #: glossary terms the question uses
    table_scores: dict[str, float] = field(default_factory=dict)  #: linking score of each ranked table

    def best_tables(self, ratio: float = 0.6, most: int = 3) -> list[str]:
        """The tables scoring at least ``ratio`` of the best one (the question's tables, as linked)."""
        if not self.table_scores:
            return []
        top = max(self.table_scores.values()) or 1.0
        return [t for t in self.tables if self.table_scores.get(t, 0.0) >= ratio * top][:most]

    def as_dict(self) -> dict[str, Any]:
        return {"tables": self.tables, "columns": [[t, c, round(s, 3)] for t, c, s in self.columns],
                "values": [v.as_dict() for v in self.values], "terms": [t.get("term") for t in self.terms]}


def _lit(v: Any) -> str:
    s = str(v)
    if len(s) > 40:
        s = s[:37] + "..."
    return "'" + s.replace("'", "''") + "'"


def _words(name: str) -> str:
    return " ".join(tokens(name, keep_stop=True))


class SchemaIndex:
    """The linkable schema of one workspace: tables, columns, types, descriptions, values, glossary.

    Build with :meth:`from_workspace` (reads through the sandbox) or directly from
    :class:`TableInfo` lists (tests, foreign catalogues).
    """

    def __init__(self, tables: Sequence[TableInfo], glossary: Sequence[Mapping[str, Any]] = (),
                 embed: Callable[[list[str]], list[list[float]]] | None = None):
        self.tables = sorted(tables, key=lambda t: t.name.lower())
        self.glossary = [dict(g) for g in glossary]
        self.embed = embed
        self._by_table = {t.name.lower(): t for t in self.tables}
        self._cols: list[ColumnInfo] = [c for t in self.tables for c in t.columns]
        # glossary formulas name columns ("Telco demo: AVG(MonthlyCharges)"): the term links them
        self._term_cols: dict[int, list[int]] = {}
        names = {c.name.lower(): i for i, c in enumerate(self._cols)}
        for gi, g in enumerate(self.glossary):
            found = [names[w.lower()] for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(g.get("formula") or ""))
                     if w.lower() in names]
            self._term_cols[gi] = sorted(set(found))
        col_docs = []
        for i, c in enumerate(self._cols):
            doc = tokens(c.name) * 2 + tokens(c.table) + tokens(c.description)
            for gi, cols in self._term_cols.items():
                if i in cols:
                    g = self.glossary[gi]
                    doc += tokens(str(g.get("term") or ""))  # the term itself; its English gloss is too generic
            col_docs.append(doc)
        self._col_bm25 = BM25(col_docs)
        self._tab_bm25 = BM25([tokens(t.name) * 2 + tokens(t.description) for t in self.tables])
        rows = {t.name: t.rows for t in self.tables}
        self._values: list[tuple[int, str]] = [(i, v) for i, c in enumerate(self._cols) if _labelish(c, rows.get(c.table))
                                               for v in c.values]
        self._val_tokens = [tokens(v, keep_stop=True) for _, v in self._values]
        # words of column and table names: a question's "internet service" names the column
        # InternetService, it is no evidence for the value 'No internet service'
        self._name_words = {w for c in self._cols for w in tokens(c.name, keep_stop=True)} | {
            w for t in self.tables for w in tokens(t.name, keep_stop=True)}
        spread = Counter(v.lower() for _, v in self._values)
        self._shared_values = {v for v, n in spread.items() if n >= _SHARED_VALUE_COLUMNS}
        self._val_bm25 = BM25(self._val_tokens)
        self._col_vecs: list[list[float]] | None = None
        if embed is not None and self._cols:
            self._col_vecs = embed([f"{c.table}.{_words(c.name)}: {c.description}" for c in self._cols])

    # -- building -------------------------------------------------------------------------
    @classmethod
    def from_workspace(cls, ws: Any, *, descriptions: Mapping[str, Mapping[str, str]] | None = None,
                       glossary: Sequence[Mapping[str, Any]] | None = None,
                       embed: Callable[[list[str]], list[list[float]]] | None = None,
                       table_descriptions: Mapping[str, str] | None = None,
                       max_values: int = MAX_VALUES) -> SchemaIndex:
        """Read the schema and the values of text columns through the sandbox (``ws.run_sql``).

        Args:
            ws: a :class:`~zhinao.analytics.workspace.Workspace`.
            descriptions: ``{table: {column: description}}`` (the datasets' column descriptions).
            glossary: the workspace's glossary terms (``term``, ``term_en``, ``definition_*``, ``formula``).
            embed: optional ``list[str] -> list[vector]`` for dense column scores.
            max_values: the most distinct values kept per text column (most frequent first).
        """
        descriptions = {str(k).lower(): dict(v) for k, v in (descriptions or {}).items()}
        tdesc = {str(k).lower(): v for k, v in (table_descriptions or {}).items()}
        res = ws.run_sql("SELECT table_name, column_name, data_type FROM information_schema.columns "
                         "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position", max_rows=100_000)
        cols: dict[str, list[ColumnInfo]] = defaultdict(list)
        for t, c, ty in res.rows():
            d = descriptions.get(str(t).lower(), {})
            cols[t].append(ColumnInfo(table=t, name=c, type=str(ty), description=str(d.get(c, "") or "")))
        tables = []
        for t, cs in cols.items():
            rows = _table_stats(ws, t, cs)
            _read_values(ws, t, cs, max_values)
            tables.append(TableInfo(t, cs, rows, tdesc.get(t.lower(), "")))
        return cls(tables, glossary or (), embed)

    # -- lookups --------------------------------------------------------------------------
    @property
    def table_names(self) -> list[str]:
        return [t.name for t in self.tables]

    def table(self, name: str) -> TableInfo | None:
        return self._by_table.get(str(name).lower())

    def column(self, table: str, name: str) -> ColumnInfo | None:
        t = self.table(table)
        if t is None:
            return None
        return next((c for c in t.columns if c.name.lower() == str(name).lower()), None)

    def schema_dict(self) -> dict[str, dict[str, str]]:
        """``{table: {column: type}}`` as sqlglot's optimizer takes it."""
        return {t.name: {c.name: c.type for c in t.columns} for t in self.tables}

    def n_columns(self) -> int:
        return len(self._cols)

    # -- linking --------------------------------------------------------------------------
    def link(self, question: str, k: int = 10) -> LinkedSchema:
        """Rank tables, columns, stored values and glossary terms for ``question``."""
        qt = tokens(question)
        ql = str(question or "").lower()
        col_score: dict[int, float] = defaultdict(float)
        raw = self._col_bm25.scores(qt)
        top = max(raw.values(), default=0.0) or 1.0
        for i, s in raw.items():
            col_score[i] += s / top
        for i, c in enumerate(self._cols):  # the name written out in the question
            spaced = _words(c.name)
            if len(c.name) > 2 and (c.name.lower() in ql or (spaced and f" {spaced} " in f" {' '.join(tokens(ql, keep_stop=True))} ")):
                col_score[i] += 0.5
        if self._col_vecs is not None and self.embed is not None:
            qv = self.embed([question])[0]
            for i, v in enumerate(self._col_vecs):
                col_score[i] += 0.5 * max(0.0, sum(a * b for a, b in zip(qv, v)))
        terms = self._link_terms(question, qt)
        for gi in terms:
            for i in self._term_cols.get(gi, ()):
                col_score[i] += 1.0
        values = self._link_values(question, qt)
        for h in values:
            i = next(j for j, c in enumerate(self._cols) if c.table == h.table and c.name == h.column)
            col_score[i] += 0.6 * min(1.0, h.score)
        tab_score: dict[str, float] = defaultdict(float)
        traw = self._tab_bm25.scores(qt)
        ttop = max(traw.values(), default=0.0) or 1.0
        for i, s in traw.items():
            tab_score[self.tables[i].name] += s / ttop
        for i, s in col_score.items():
            t = self._cols[i].table
            tab_score[t] = max(tab_score[t], s) + 0.1 * s
        ranked_cols = sorted(((self._cols[i].table, self._cols[i].name, s) for i, s in col_score.items() if s > 0),
                             key=lambda x: (-x[2], x[0], x[1]))[:k]
        ranked_tabs = [t for t, s in sorted(tab_score.items(), key=lambda x: (-x[1], x[0])) if s > 0]
        return LinkedSchema(ranked_tabs or self.table_names, ranked_cols, values, [self.glossary[g] for g in terms],
                            {t: round(s, 4) for t, s in tab_score.items() if s > 0})

    def _link_terms(self, question: str, qt: list[str]) -> list[int]:
        """Glossary terms written in the question (the term or its English name, any case)."""
        ql = str(question or "").lower()
        found = []
        for gi, g in enumerate(self.glossary):
            names = [str(g.get("term") or ""), str(g.get("term_en") or "")]
            if any(n and n.lower() in ql for n in names):
                found.append(gi)
        return found

    def _link_values(self, question: str, qt: list[str], limit: int = 8) -> list[ValueHit]:
        """Stored values the question names: written in it whole, or sharing a word with it that
        is the value's own — not a stop word, not a word of a column or table name, not a
        generic value ("no", "yes"), and at least half of the value's own words.

        Why so strict: a hint is an invitation to filter. Shown ``Contract = 'Month-to-month'``
        for "the average charge for each contract type", or ``OnlineSecurity = 'No internet
        service'`` for "each internet service type", the 0.5B model writes a ``WHERE`` where the
        question wants a ``GROUP BY`` (measured on the shipped set)."""
        ql = str(question or "").lower()
        qset = {t for t in qt if not t.replace(".", "").isdigit()}
        evidence = {t for t in qset if t not in self._name_words and t not in _GENERIC_VALUES and t not in _TIME_WORDS}
        scored: dict[int, float] = {}
        for i, s in self._val_bm25.scores(evidence).items():
            v = self._values[i][1].lower()
            if v in _GENERIC_VALUES or v in self._shared_values:
                continue
            own = {t for t in self._val_tokens[i] if t not in _STOP and t not in _STOP_ZH and t not in _GENERIC_VALUES
                   and t not in self._name_words and t not in _TIME_WORDS} or set(self._val_tokens[i])
            cover = len(own & evidence) / max(1, len(own))
            if cover < 0.5:
                continue
            scored[i] = s * (0.5 + cover)
        qflat = " ".join(re.findall(r"\w+", ql))  # "two-year" and "two year" alike
        for i, (_, v) in enumerate(self._values):  # written whole ("Paris", "Month-to-month")
            vl = v.lower()
            if len(vl) < 3 or vl in _GENERIC_VALUES:
                continue
            if _CJK.search(vl):
                if vl in ql:
                    scored[i] = scored.get(i, 0.0) + 10.0
                continue
            vflat = " ".join(re.findall(r"\w+", vl))
            if vflat and re.search(rf"(?<![a-z0-9]){re.escape(vflat)}(?![a-z0-9])", qflat):
                scored[i] = scored.get(i, 0.0) + 10.0
        if not scored:
            return []
        top = max(scored.values())
        hits, per_col, shown = [], Counter(), set()
        for i, s in sorted(scored.items(), key=lambda x: (-x[1], x[0])):
            if s < 0.35 * top:
                break
            ci, v = self._values[i]
            c = self._cols[ci]
            if per_col[ci] >= 3 or (v.lower() in self._shared_values and v.lower() in shown):
                continue
            per_col[ci] += 1
            shown.add(v.lower())
            hits.append(ValueHit(c.table, c.name, v, s / top))
            if len(hits) >= limit:
                break
        return hits

    # -- prompt text ----------------------------------------------------------------------
    def prompt_text(self, linked: LinkedSchema | None = None, *, glossary: bool = True) -> str:
        """The schema as compact ``CREATE TABLE`` text for a prompt.

        ``linked=None``: every table, byte-stable for the workspace (the cacheable prefix).
        With ``linked``: only its tables, then the value hits and matched glossary terms.
        """
        tables = self.tables if linked is None else [t for t in self.tables if t.name in set(linked.tables)]
        out = [self._create(t) for t in tables]
        joins = self.join_hints([t.name for t in tables])
        if joins:
            out.append("-- Likely joins:\n" + "\n".join(f"--   {a} = {b}" for a, b in joins))
        if glossary and self.glossary and linked is None:
            # only terms this workspace can compute: the rest explain words no query here uses, and
            # twenty lines of them distract a small model; a question that names one gets it as a hint
            usable = [g for g in self.glossary if self.usable_formula(g.get("formula") or "")]
            if usable:
                out.append("-- Business glossary:\n" + "\n".join(self._term_line(g) for g in usable))
        if linked is not None:
            hints = self.hint_text(linked)
            if hints:
                out.append(hints)
        return "\n\n".join(out)

    def hint_text(self, linked: LinkedSchema) -> str:
        """The per-question part: stored values and glossary terms the question mentions."""
        lines = []
        if linked.values:
            lines.append("-- Stored values the question names (filter on one only where the question asks for "
                         "that value; copy it exactly):")
            lines += [f"--   {v.table}.{v.column} = {_lit(v.value)}" for v in linked.values]
        if linked.terms:
            lines.append("-- Terms in the question:")
            lines += [self._term_line(g) for g in linked.terms]
        return "\n".join(lines)

    def usable_formula(self, formula: str) -> str:
        """The parts of a glossary formula that this workspace can compute, or "".

        A glossary is shared by workspaces: the default one says ``COUNT(churned) / COUNT(users
        at start); Telco demo: AVG(Churn = 'Yes')``. Shown on a table without those columns, a
        small model copies the names and writes ``users_at_start`` (seen on the Orange churn
        table). So each ``;``-separated part is kept only when every name in it that is not a
        function call, a string or a ``label:`` prefix is a column of this workspace.
        """
        known = {c.name.lower() for c in self._cols}
        kept = []
        for part in str(formula or "").split(";"):
            expr = re.sub(r"^\s*[^:()']{1,40}:\s*", "", part).strip()  # "Telco demo: ..." -> "..."
            bare = re.sub(r"'[^']*'|\"[^\"]*\"", " ", expr)
            names = [m.group(1) for m in re.finditer(r"([A-Za-z_\u4e00-\u9fff][\w\u4e00-\u9fff]*)\s*(\()?", bare)
                     if not m.group(2)]
            words = [n for n in names if n.upper() not in _SQL_WORDS]
            if not (expr and words and all(w.lower() in known for w in words)):
                continue
            # a quoted value must be one the named columns hold ('Yes' means nothing to a BOOLEAN Churn)
            cols = [c for c in self._cols if c.name.lower() in {w.lower() for w in words}]
            literals = re.findall(r"'([^']*)'", expr)
            if literals and not all(any(lit in c.values for c in cols) for lit in literals):
                continue
            kept.append(expr)
        return "; ".join(kept)

    def _term_line(self, g: Mapping[str, Any]) -> str:
        d = g.get("definition_en") or g.get("definition_zh") or ""
        formula = "; ".join(runnable_formula(f) for f in self.usable_formula(g.get("formula") or "").split("; ") if f)
        f = f" Formula here: {formula}" if formula else ""
        en = f" ({g['term_en']})" if g.get("term_en") and g.get("term_en") != g.get("term") else ""
        return f"--   {g.get('term')}{en}: {d}{f}"

    def _create(self, t: TableInfo) -> str:
        lines = []
        for c in t.columns:
            notes = []
            if c.description:
                notes.append(c.description)
            if c.is_text and c.values:
                if c.complete and len(c.values) <= SHOW_ALL_VALUES:
                    notes.append("values: " + ", ".join(_lit(v) for v in c.values))
                else:
                    notes.append("e.g. " + ", ".join(_lit(v) for v in c.values[:3]))
            elif c.lo is not None and c.hi is not None:
                notes.append(f"range {c.lo} .. {c.hi}")
            ident = c.name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c.name) else q(c.name)
            lines.append(f"  {ident} {c.type}" + (f",  -- {'; '.join(notes)}" if notes else ","))
        if lines:
            lines[-1] = lines[-1].replace(",  --", "  --", 1) if ",  --" in lines[-1] else lines[-1].rstrip(",")
        name = t.name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", t.name) else q(t.name)
        head = f"CREATE TABLE {name} (" + (f"  -- {t.rows} rows" if t.rows else "")
        if t.description:
            head += f"; {t.description}"
        return head + "\n" + "\n".join(lines) + "\n);"

    def ddl(self) -> str:
        """Plain ``CREATE TABLE`` statements (names and types only): the baseline's prompt."""
        out = []
        for t in self.tables:
            cols = ",\n".join(f"  {q(c.name)} {c.type}" for c in t.columns)
            out.append(f"CREATE TABLE {q(t.name)} (\n{cols}\n);")
        return "\n".join(out)

    def join_hints(self, tables: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """Column pairs that probably join: the same name in two tables (``Singer_ID``), or
        ``<table>_id`` / ``<table>id`` against that table's ``id`` — CSV imports carry no keys."""
        names = {t.lower() for t in (tables or self.table_names)}
        ts = [t for t in self.tables if t.name.lower() in names]
        out: list[tuple[str, str]] = []
        for i, a in enumerate(ts):
            for b in ts[i + 1:]:
                bcols = {c.name.lower(): c for c in b.columns}
                for c in a.columns:
                    o = bcols.get(c.name.lower())
                    if o is not None and _joinable(c, o) and _keyish(c.name):
                        out.append((f"{a.name}.{c.name}", f"{b.name}.{o.name}"))
            for b in ts:
                if b is a:
                    continue
                bid = next((c for c in b.columns if c.name.lower() == "id"), None)
                if bid is None:
                    continue
                stem = _stem(b.name.lower())
                for c in a.columns:
                    if c.name.lower() in (f"{stem}_id", f"{stem}id", f"{b.name.lower()}_id") and _joinable(c, bid):
                        out.append((f"{a.name}.{c.name}", f"{b.name}.{bid.name}"))
        return out


def condition_aggregates(root: Any) -> list[str]:
    """Rewrite, in place, aggregates over a condition in a sqlglot tree; returns what changed.

    ``AVG(Churn = 'Yes')`` → ``AVG(CASE WHEN Churn = 'Yes' THEN 1 ELSE 0 END)``: DuckDB has no AVG
    of a BOOLEAN (a glossary formula is often written this way, and the model copies it); SUM
    likewise. ``COUNT(Churn = 'Yes')`` → ``COUNT(CASE WHEN Churn = 'Yes' THEN 1 END)``: COUNT of a
    condition counts every row, which no question means — small models write it for "how many
    ... are". Here, not in the SQL engine, because the glossary lines of the prompt use it too.
    """
    from sqlglot import exp

    conds = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Like, exp.ILike, exp.And, exp.Or,
             exp.Not, exp.Is, exp.Between)
    fixes = []
    for agg in list(root.find_all(exp.Avg, exp.Sum, exp.Count)):
        arg = agg.this
        while isinstance(arg, exp.Paren):
            arg = arg.this
        if not isinstance(arg, conds):
            continue
        name = type(agg).__name__.upper()
        default = None if isinstance(agg, exp.Count) else exp.Literal.number(0)
        case = exp.Case(ifs=[exp.If(this=arg.copy(), true=exp.Literal.number(1))], default=default)
        agg.set("this", case)
        fixes.append(f"{name}(<condition>) → {name}(CASE WHEN <condition> THEN 1{' ELSE 0' if default else ''} END)")
    return fixes


def runnable_formula(expr: str) -> str:
    """A glossary formula as DuckDB runs it (``AVG(Churn = 'Yes')`` → ``AVG(CASE WHEN ...)``);
    unchanged where it does not parse as an expression."""
    try:
        import sqlglot

        root = sqlglot.parse_one(expr, read="duckdb")
    except Exception:  # noqa: BLE001 - prose formulas stay prose
        return expr
    return root.sql("duckdb") if condition_aggregates(root) else expr


def _labelish(c: ColumnInfo, rows: int | None) -> bool:
    """A text column whose values are labels a question may name (``'Fiber optic'``), not one
    that is nearly unique per row — ids, titles, free text — whose most frequent 200 values are
    an arbitrary sample that would only add noise to the value index."""
    if not c.values:
        return False
    if c.distinct is not None and rows and c.distinct > MAX_VALUES and c.distinct > 0.5 * rows:
        return False
    return True


def _keyish(name: str) -> bool:
    n = name.lower()
    return n.endswith(("id", "_id", "code", "_no", "key")) or n in ("name",)


def _joinable(a: ColumnInfo, b: ColumnInfo) -> bool:
    return (a.is_text and b.is_text) or (a.is_number and b.is_number)


def _table_stats(ws: Any, table: str, cols: list[ColumnInfo]) -> int:
    """Row count, distinct counts of text columns and ranges of numeric ones: one query."""
    parts = ["COUNT(*)"]
    for c in cols:
        if c.is_text:
            parts.append(f"COUNT(DISTINCT {q(c.name)})")
        elif c.is_number or c.type.upper().startswith(("DATE", "TIMESTAMP")):
            parts += [f"MIN({q(c.name)})", f"MAX({q(c.name)})"]
    row = ws.run_sql(f"SELECT {', '.join(parts)} FROM {q(table)}", max_rows=1).json_rows()[0]
    it = iter(row[1:])
    for c in cols:
        if c.is_text:
            c.distinct = int(next(it) or 0)
        elif c.is_number or c.type.upper().startswith(("DATE", "TIMESTAMP")):
            lo, hi = next(it), next(it)
            if isinstance(lo, float):
                lo, hi = round(lo, 4), round(hi, 4)
            c.lo, c.hi = lo, hi
    return int(row[0] or 0)


def _read_values(ws: Any, table: str, cols: list[ColumnInfo], max_values: int) -> None:
    """The most frequent distinct values of each text column (prose columns skipped)."""
    for c in cols:
        if not c.is_text or not c.distinct:
            continue
        sql = (f"SELECT v FROM (SELECT {q(c.name)} AS v, COUNT(*) AS n FROM {q(table)} "
               f"WHERE {q(c.name)} IS NOT NULL AND length({q(c.name)}) <= {MAX_VALUE_CHARS} "
               f"GROUP BY 1) ORDER BY n DESC, v LIMIT {int(max_values)}")
        vals = [str(r[0]) for r in ws.run_sql(sql, max_rows=max_values).rows()]
        if not vals:
            continue
        c.values = vals
        c.complete = len(vals) >= c.distinct
