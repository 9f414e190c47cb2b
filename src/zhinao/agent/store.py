"""The agent's persistence: conversations, answers with the user's verdict, the example library.

:class:`AgentStore` is the only code that reads or writes the agent's tables
(:mod:`zhinao.agent.models`). Every method takes the caller's ``tenant_id`` and filters by it,
so a row of another tenant is indistinguishable from a row that does not exist (``NotFound``,
never ``PermissionDenied``: an id must not confirm that another tenant has it). Where
``owner`` is given (the API passes the caller's user id for members), rows of other users
of the same tenant are hidden the same way.

The example library is what lifts a small model most on a workspace it has seen before
(Vanna: ~3% -> ~80% with the right context): users accept or correct an answer, the question
and its SQL (or tool call) become an example, and :meth:`AgentStore.similar_examples` brings
the closest ones into the next prompt. Retrieval is BM25 over jieba tokens (Chinese and
English in one tokenizer, no model needed), fused with cosine similarity when an embedder is
given — the question's embedding is stored with the example on first use, so each example is
embedded once per embedder (a change of dimension re-embeds).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from zhinao.agent.models import AgentAnswerRecord, AgentExample, AgentSession
from zhinao.errors import InvalidRequest, NotFound
from zhinao.store.db import Database, utcnow

log = logging.getLogger(__name__)

SOURCES = ("accepted", "corrected", "manual")
STATUSES = ("accepted", "corrected")
#: an answer's stored table is cut here (the answer keeps the SQL, which re-runs it in full)
MAX_STORED_ROWS = 500
MAX_QUESTION_CHARS = 4000

#: ``_UNSET`` for ``owner``: no per-user filter (None is a real owner: rows made by an API key)
_UNSET: Any = object()

Embed = Callable[[list[str]], list[list[float]]]


def _json(v: Any) -> Any:
    """JSON-ready copy (dates, decimals, numpy scalars as strings or numbers): what a JSON column holds."""
    return json.loads(json.dumps(v, ensure_ascii=False, default=_default))


def _default(v: Any) -> Any:
    if hasattr(v, "item"):  # numpy scalar
        try:
            return v.item()
        except (TypeError, ValueError):
            pass
    return str(v)


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() + "Z" if d is not None else None


# -- retrieval ---------------------------------------------------------------------------------

#: words that say how a question asks, not what it asks about (BM25 would count them otherwise)
STOPWORDS = frozenset(
    "the a an of in on for to by with and or is are was were be what which who whom how many much "
    "do does did show me list give tell please per each from at as it its this that these those "
    "all there their our my your i we you can could would should".split()
    + list("的了是在和与及或吗呢吧啊请把给我们你个各")
    + ["多少", "哪些", "什么", "怎么", "如何", "一下", "显示", "列出", "查询", "一个", "每个"])
_PUNCT = re.compile(r"^[\W_]+$", re.UNICODE)


def tokens(text: str) -> list[str]:
    """jieba tokens of ``text``, lower case, without punctuation and stop words (zh and en)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # "Building prefix dict ..." belongs in no terminal
    out = []
    for t in jieba.lcut(text.lower()):
        t = t.strip()
        if not t or _PUNCT.match(t) or t in STOPWORDS:
            continue
        if t.isascii() and len(t) > 3 and t.endswith("s") and not t.endswith("ss"):
            t = t[:-1]  # customers ~ customer, plans ~ plan
        out.append(t)
    return out


def bm25(query: Sequence[str], docs: Sequence[Sequence[str]], *, k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Okapi BM25 score of each tokenised doc for the tokenised query (0.0 when no term is shared)."""
    n = len(docs)
    if not n or not query:
        return [0.0] * n
    avg = sum(len(d) for d in docs) / n or 1.0
    df = Counter(t for d in docs for t in set(d))
    out = []
    for d in docs:
        tf = Counter(d)
        s = 0.0
        for t in set(query):
            if t not in tf:
                continue
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            s += idf * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(d) / avg))
        out.append(s)
    return out


def _norm_question(q: str) -> str:
    return " ".join(q.lower().split()).rstrip("?？。.!！ ")


# -- the store ---------------------------------------------------------------------------------

class AgentStore:
    """Sessions, answers and examples of every tenant, each read filtered by ``tenant_id``."""

    def __init__(self, db: Database):
        self.db = db
        self._cache: dict[tuple[int, str], _Library] = {}
        self._lock = threading.Lock()

    # -- sessions --------------------------------------------------------------------------
    def new_session(self, tenant_id: int, user_id: int | None, workspace: str) -> str:
        """A new conversation over ``workspace``; returns its id (a uuid4)."""
        if not workspace:
            raise InvalidRequest("a session needs a workspace", param="workspace")
        sid = str(uuid.uuid4())
        now = utcnow()
        with self.db.session() as s:
            s.add(AgentSession(id=sid, tenant_id=tenant_id, user_id=user_id, workspace=workspace, state={},
                               created_at=now, updated_at=now))
        return sid

    def _session(self, s: Any, session_id: str, tenant_id: int, owner: Any = _UNSET) -> AgentSession:
        row = s.get(AgentSession, str(session_id)) if session_id else None
        if row is None or row.tenant_id != tenant_id or (owner is not _UNSET and row.user_id != owner):
            raise NotFound(f"agent session {session_id!r} not found", param="session_id")
        return row

    def state(self, session_id: str, tenant_id: int, *, owner: Any = _UNSET) -> dict[str, Any]:
        """The session's state (previous question, SQL, tables ...) for a follow-up.

        Raises:
            NotFound: no such session in this tenant (or of this owner).
        """
        with self.db.session() as s:
            return dict(self._session(s, session_id, tenant_id, owner).state or {})

    def save_state(self, session_id: str, tenant_id: int, state: dict[str, Any]) -> None:
        with self.db.session() as s:
            row = self._session(s, session_id, tenant_id)
            row.state = _json(state or {})
            row.updated_at = utcnow()

    def session(self, tenant_id: int, session_id: str, *, owner: Any = _UNSET) -> dict[str, Any]:
        """The session with its answers (oldest first, without their result tables)."""
        with self.db.session() as s:
            row = self._session(s, session_id, tenant_id, owner)
            answers = s.scalars(select(AgentAnswerRecord).where(
                AgentAnswerRecord.tenant_id == tenant_id, AgentAnswerRecord.session_id == row.id)
                .order_by(AgentAnswerRecord.id)).all()
            return {"id": row.id, "workspace": row.workspace, "user_id": row.user_id, "state": row.state or {},
                    "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
                    "answers": [self._answer_dict(a, full=False) for a in answers]}

    def sessions(self, tenant_id: int, *, owner: Any = _UNSET, workspace: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
        """The tenant's sessions (of ``owner`` when given), most recently used first, each with its
        first question and how many answers it holds — what a "continue a conversation" list shows."""
        q = select(AgentSession).where(AgentSession.tenant_id == tenant_id)
        if owner is not _UNSET:
            q = q.where(AgentSession.user_id.is_(None) if owner is None else AgentSession.user_id == owner)
        if workspace:
            q = q.where(AgentSession.workspace == workspace)
        with self.db.session() as s:
            rows = list(s.scalars(q.order_by(AgentSession.updated_at.desc(), AgentSession.id).limit(max(1, limit))))
            ids = [r.id for r in rows]
            counts: dict[str, tuple[int, int]] = {}
            if ids:  # answers per session and the first one (its question names the conversation)
                for sid, n, first in s.execute(
                        select(AgentAnswerRecord.session_id, func.count(AgentAnswerRecord.id),
                               func.min(AgentAnswerRecord.id))
                        .where(AgentAnswerRecord.tenant_id == tenant_id, AgentAnswerRecord.session_id.in_(ids))
                        .group_by(AgentAnswerRecord.session_id)):
                    counts[sid] = (int(n), int(first))
            firsts = {r.id: r.question for r in s.scalars(select(AgentAnswerRecord).where(
                AgentAnswerRecord.id.in_([f for _, f in counts.values()])))} if counts else {}
            return [{"id": r.id, "workspace": r.workspace, "user_id": r.user_id,
                     "question": firsts.get(counts.get(r.id, (0, 0))[1]), "answers": counts.get(r.id, (0, 0))[0],
                     "created_at": _iso(r.created_at), "updated_at": _iso(r.updated_at)} for r in rows]

    # -- answers ---------------------------------------------------------------------------
    def record_answer(self, tenant_id: int, user_id: int | None, session_id: str | None, workspace: str,
                      question: str, answer: Any) -> int:
        """Store ``answer`` (an :class:`~zhinao.agent.base.AgentAnswer` or its dict); returns its id and
        sets ``answer.answer_id``. A ``session_id`` must be a session of this tenant."""
        d = answer.as_dict() if hasattr(answer, "as_dict") else dict(answer)
        rows = d.get("rows") or []
        if len(rows) > MAX_STORED_ROWS:
            d["rows"] = rows[:MAX_STORED_ROWS]
            d["rows_stored"] = MAX_STORED_ROWS
            d["rows_total"] = len(rows)
        now = utcnow()
        with self.db.session() as s:
            if session_id:
                self._session(s, session_id, tenant_id).updated_at = now
            row = AgentAnswerRecord(
                tenant_id=tenant_id, user_id=user_id, session_id=session_id or None, workspace=workspace,
                question=str(question)[:MAX_QUESTION_CHARS], answer=_json(d), sql=d.get("sql"),
                route=str(d.get("route") or "")[:32], model=d.get("model"), latency_ms=float(d.get("latency_ms") or 0),
                found=bool(d.get("found", True)), status=None, correction=None, created_at=now, updated_at=now)
            s.add(row)
            s.flush()
            answer_id = row.id
            row.answer = {**row.answer, "answer_id": answer_id}
        if hasattr(answer, "answer_id"):
            answer.answer_id = answer_id
        return answer_id

    def _answer_row(self, s: Any, tenant_id: int, answer_id: int, owner: Any = _UNSET) -> AgentAnswerRecord:
        try:
            key = int(answer_id)
        except (TypeError, ValueError):
            key = None
        row = s.get(AgentAnswerRecord, key) if key is not None else None
        if row is None or row.tenant_id != tenant_id or (owner is not _UNSET and row.user_id != owner):
            raise NotFound(f"agent answer {answer_id} not found", param="answer_id")
        return row

    @staticmethod
    def _answer_dict(r: AgentAnswerRecord, *, full: bool = True) -> dict[str, Any]:
        out = {"id": r.id, "session_id": r.session_id, "workspace": r.workspace, "user_id": r.user_id,
               "question": r.question, "sql": r.sql, "route": r.route, "model": r.model,
               "latency_ms": r.latency_ms, "found": r.found, "status": r.status, "correction": r.correction,
               "created_at": _iso(r.created_at), "updated_at": _iso(r.updated_at)}
        a = r.answer or {}
        if full:
            out["answer"] = a
        else:
            out["answer"] = {k: a.get(k) for k in ("answer", "sql", "call", "route", "found", "columns")}
        return out

    def answer(self, tenant_id: int, answer_id: int, *, owner: Any = _UNSET) -> dict[str, Any]:
        """The stored answer: ``answer`` holds the AgentAnswer dict as shown; ``status``/``correction``
        the user's verdict.

        Raises:
            NotFound: no such answer in this tenant (or of this owner).
        """
        with self.db.session() as s:
            return self._answer_dict(self._answer_row(s, tenant_id, answer_id, owner))

    def set_status(self, tenant_id: int, answer_id: int, status: str, correction: dict[str, Any] | None = None,
                   *, owner: Any = _UNSET) -> dict[str, Any]:
        """Record the user's verdict: ``accepted``, or ``corrected`` with ``{"sql"?, "answer"?}``."""
        if status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}", param="status")
        if status == "corrected" and not (correction and (correction.get("sql") or correction.get("answer"))):
            raise InvalidRequest("a correction needs the right SQL or the right answer", param="sql")
        with self.db.session() as s:
            row = self._answer_row(s, tenant_id, answer_id, owner)
            row.status = status
            row.correction = _json(correction) if correction else None
            row.updated_at = utcnow()
            s.flush()
            return self._answer_dict(row)

    def answers(self, tenant_id: int, *, workspace: str | None = None, status: str | None = None,
                owner: Any = _UNSET, limit: int = 100) -> list[dict[str, Any]]:
        """Recent answers (for the feedback export and the console), newest first."""
        q = select(AgentAnswerRecord).where(AgentAnswerRecord.tenant_id == tenant_id)
        if workspace:
            q = q.where(AgentAnswerRecord.workspace == workspace)
        if status:
            q = q.where(AgentAnswerRecord.status == status)
        if owner is not _UNSET:
            q = q.where(AgentAnswerRecord.user_id.is_(None) if owner is None else AgentAnswerRecord.user_id == owner)
        with self.db.session() as s:
            return [self._answer_dict(r, full=False)
                    for r in s.scalars(q.order_by(AgentAnswerRecord.id.desc()).limit(max(1, limit)))]

    # -- the example library ---------------------------------------------------------------
    def add_example(self, tenant_id: int, workspace: str, question: str, sql: str | None = None,
                    call: dict[str, Any] | None = None, source: str = "accepted", *, created_by: int | None = None,
                    answer_id: int | None = None) -> int:
        """Add a worked example (question -> SQL or tool call) to ``workspace``'s library; returns its id.

        One example per question: the same question again (case, spacing and the final "?" aside)
        replaces the earlier SQL/call — the latest verdict is the one the user stands by.

        Raises:
            InvalidRequest: an empty question, neither SQL nor a call, an unknown source.
        """
        question = (question or "").strip()
        if not question:
            raise InvalidRequest("an example needs a question", param="question")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidRequest(f"an example's question is at most {MAX_QUESTION_CHARS} characters",
                                 param="question")
        sql = (sql or "").strip() or None
        if sql is None and not call:
            raise InvalidRequest("an example needs the SQL or the tool call that answers its question", param="sql")
        if call is not None and not (isinstance(call, dict) and isinstance(call.get("tool"), str)):
            raise InvalidRequest('a tool call is {"tool": name, "args": {...}}', param="call")
        if source not in SOURCES:
            raise InvalidRequest(f"source must be one of {', '.join(SOURCES)}", param="source")
        if not workspace:
            raise InvalidRequest("an example belongs to a workspace", param="workspace")
        key = _norm_question(question)
        with self.db.session() as s:
            for ex in s.scalars(select(AgentExample).where(AgentExample.tenant_id == tenant_id,
                                                           AgentExample.workspace == workspace)):
                if _norm_question(ex.question) == key:
                    ex.question, ex.sql, ex.call, ex.source = question, sql, _json(call) if call else None, source
                    ex.created_by, ex.answer_id, ex.created_at = created_by, answer_id, utcnow()
                    return ex.id
            row = AgentExample(tenant_id=tenant_id, workspace=workspace, question=question, sql=sql,
                               call=_json(call) if call else None, source=source, created_by=created_by,
                               answer_id=answer_id, embedding=None, created_at=utcnow())
            s.add(row)
            s.flush()
            return row.id

    @staticmethod
    def _example_dict(r: AgentExample) -> dict[str, Any]:
        return {"id": r.id, "workspace": r.workspace, "question": r.question, "sql": r.sql, "call": r.call,
                "source": r.source, "created_by": r.created_by, "answer_id": r.answer_id,
                "created_at": _iso(r.created_at)}

    def examples(self, tenant_id: int, workspace: str) -> list[dict[str, Any]]:
        """The workspace's library, newest first."""
        with self.db.session() as s:
            return [self._example_dict(r) for r in s.scalars(
                select(AgentExample).where(AgentExample.tenant_id == tenant_id, AgentExample.workspace == workspace)
                .order_by(AgentExample.id.desc()))]

    def example(self, tenant_id: int, example_id: int) -> dict[str, Any]:
        with self.db.session() as s:
            row = s.get(AgentExample, int(example_id))
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"example {example_id} not found", param="id")
            return self._example_dict(row)

    def delete_example(self, tenant_id: int, example_id: int, *, workspace: str | None = None) -> None:
        with self.db.session() as s:
            row = s.get(AgentExample, int(example_id))
            if row is None or row.tenant_id != tenant_id or (workspace is not None and row.workspace != workspace):
                raise NotFound(f"example {example_id} not found", param="id")
            s.delete(row)

    def clear_examples(self, tenant_id: int, workspace: str) -> int:
        """Empty the workspace's library; returns how many examples went."""
        with self.db.session() as s:
            r = s.execute(delete(AgentExample).where(AgentExample.tenant_id == tenant_id,
                                                     AgentExample.workspace == workspace))
            return int(r.rowcount or 0)

    def _library(self, s: Any, tenant_id: int, workspace: str) -> "_Library | None":
        """The workspace's examples with their tokens, cached in this process until the library changes
        (count, newest id or newest time differ: an add, a replacement, a delete — in any process)."""
        where = (AgentExample.tenant_id == tenant_id, AgentExample.workspace == workspace)
        sig = tuple(s.execute(select(func.count(), func.max(AgentExample.id), func.max(AgentExample.created_at))
                              .where(*where)).one())
        if not sig[0]:
            return None
        key = (tenant_id, workspace)
        with self._lock:
            lib = self._cache.get(key)
        if lib is not None and lib.sig == sig:
            return lib
        rows = list(s.scalars(select(AgentExample).where(*where).order_by(AgentExample.id)))
        lib = _Library(sig=sig, ids=[r.id for r in rows], dicts=[self._example_dict(r) for r in rows],
                       tokens=[tokens(r.question) for r in rows], questions=[r.question for r in rows],
                       vectors=[r.embedding for r in rows])
        with self._lock:
            if len(self._cache) >= 256:  # a bound for servers with many workspaces
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = lib
        return lib

    def similar_examples(self, tenant_id: int, workspace: str, question: str, k: int = 3,
                         embed: Embed | None = None, *, min_score: float = 0.0) -> list[dict[str, Any]]:
        """The ``k`` examples of the workspace closest to ``question``, best first, each with a ``score``.

        Without ``embed``: BM25 over jieba tokens; an example sharing no term is never returned.
        With ``embed`` (``list[str] -> list[list[float]]``): cosine similarity of the questions'
        embeddings, fused with the normalised BM25 score (0.7 / 0.3), so a shared rare term (a
        column value, a table name) still counts. Empty library, or nothing alike: ``[]``.
        """
        if k <= 0 or not (question or "").strip():
            return []
        with self.db.session() as s:
            lib = self._library(s, tenant_id, workspace)
            if lib is None:
                return []
            lexical = bm25(tokens(question), lib.tokens)
            top = max(lexical) or 1.0
            scores = np.asarray(lexical, dtype=float) / top
            if embed is None:
                keep = scores > 0
            else:
                q_vec = np.asarray(embed([question])[0], dtype=float)
                missing = [i for i, v in enumerate(lib.vectors) if not v or len(v) != len(q_vec)]
                if missing:  # embedded once, stored with the example
                    fresh = embed([lib.questions[i] for i in missing])
                    by_id = {lib.ids[i]: [float(x) for x in v] for i, v in zip(missing, fresh)}
                    for r in s.scalars(select(AgentExample).where(AgentExample.id.in_(list(by_id)))):
                        r.embedding = by_id[r.id]
                    for i in missing:
                        lib.vectors[i] = by_id[lib.ids[i]]
                m = np.asarray(lib.vectors, dtype=float)  # (n, dim)
                norms = np.linalg.norm(m, axis=1) * (np.linalg.norm(q_vec) or 1.0)
                cos = (m @ q_vec) / np.where(norms == 0, 1.0, norms)
                scores = 0.7 * cos + 0.3 * scores
                keep = np.ones(len(scores), dtype=bool)
            order = sorted((i for i in range(len(scores)) if keep[i] and scores[i] > min_score),
                           key=lambda i: (-scores[i], -lib.ids[i]))
            return [{**lib.dicts[i], "score": round(float(scores[i]), 4)} for i in order[:k]]


@dataclass
class _Library:
    """One workspace's examples as retrieval reads them (see :meth:`AgentStore._library`)."""

    sig: tuple[Any, ...]
    ids: list[int]
    dicts: list[dict[str, Any]]
    tokens: list[list[str]]
    questions: list[str]
    vectors: list[list[float] | None]
