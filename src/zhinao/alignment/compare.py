"""Compare mode: sample 2-4 answers to one prompt, let a reviewer rank them, keep the comparisons.

A thumb says "good" or "bad" about one answer; a ranking says which of several answers to the
*same* prompt is better, which is what a reward model and DPO learn from (InstructGPT's
labellers ranked 4-9 samples per prompt). The reviewer's ranking of ``k`` answers becomes every
"higher beats lower" pair, ``k*(k-1)/2`` comparisons: 3 answers ranked give 3 pairs.

Answers are drawn through the one metered model client (``llm(principal, "alignment")`` with
purpose ``alignment.compare``), so the key's scope, the tenant's grant, the quotas and the usage
row are the same as a chat call. Each draw uses its own seed and temperature; draws that came back
with the same text are kept once (``samples`` counts them), because two identical answers cannot
make a pair. A reviewer may also write an answer (the talk's 从数据标注到数据矫正: correcting
rather than labelling); a written answer ranked first is also a demonstration.

Sessions and answers live in this module's two tables (migration ``l002_compare`` in the
``alignment`` branch); :func:`collect_compare` hands ranked sessions to
:func:`zhinao.alignment.datasets.collect` as :class:`~zhinao.alignment.datasets.Comparison`
records, so ``zhinao align data`` and the console's "build from feedback" include them. A new
ranking of a session replaces the old one (the reviewer changed their mind).

Scoping: a member sees and ranks the sessions they started; a tenant admin those of the tenant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from zhinao.alignment import datasets as ds
from zhinao.errors import InvalidRequest, NotFound
from zhinao.store.db import Base, Database, utcnow

CAPABILITY = "alignment"
PURPOSE = "alignment.compare"
MIN_ANSWERS, MAX_ANSWERS = 2, 4
MAX_PROMPT_CHARS = 8000
MAX_ANSWER_CHARS = 20000
#: the temperatures the draws spread over (seeds differ too): one near-greedy, the rest freer
DEFAULT_TEMPERATURES = (0.3, 0.8, 1.1, 1.4)


class CompareSession(Base):
    """One prompt put to the model several times; ``ranking`` is answer ids, best first."""

    __tablename__ = "alignment_compare_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  #: the API key, when no user signed in
    model: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  #: messages ending with the user's
    ranking: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    ranked_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ranked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CompareAnswer(Base):
    """A distinct answer of a session: drawn by the model (``params``) or written by a reviewer."""

    __tablename__ = "alignment_compare_answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("alignment_compare_sessions.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  #: 1-based order shown side by side
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))  #: model | reviewer
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  #: temperature, seed of each draw
    samples: Mapped[int] = mapped_column(Integer, default=1)  #: draws that gave this text
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# -- pure parts ------------------------------------------------------------------------------
def pairs_from_ranking(ordered: Sequence[str]) -> list[tuple[str, str]]:
    """Every (chosen, rejected) pair a best-first ranking implies: i beats j for every i < j.

    Raises:
        InvalidRequest: fewer than two answers, or two with the same text (no pair can differ).
    """
    if len(ordered) < MIN_ANSWERS:
        raise InvalidRequest(f"rank at least {MIN_ANSWERS} answers: one answer makes no comparison",
                             param="ranks")
    seen: dict[str, int] = {}
    for i, text in enumerate(ordered):
        k = " ".join(text.split())
        if k in seen:
            raise InvalidRequest(f"answers ranked {seen[k] + 1} and {i + 1} are the same text; a pair must differ",
                                 param="ranks")
        seen[k] = i
    return [(ordered[i], ordered[j]) for i in range(len(ordered)) for j in range(i + 1, len(ordered))]


def order_from_ranks(ranks: Mapping[int, int], answer_ids: Sequence[int],
                     shown: Mapping[int, int] | None = None) -> list[int]:
    """Answer ids best first from ``{answer_id: rank}`` (1 = best). Unranked answers are left out.

    ``shown`` maps an id to the number the reviewer sees ("answer 2"), for the messages.

    Raises:
        InvalidRequest: an id not of this session, a rank below 1, a tie, or fewer than two ranked.
    """
    if not isinstance(ranks, Mapping):
        raise InvalidRequest("ranks must be an object {answer_id: rank}, 1 = best", param="ranks")
    known = set(answer_ids)
    shown = shown or {}
    label = lambda i: f"answer {shown.get(i, i)}"  # noqa: E731
    by_rank: dict[int, int] = {}
    for aid, rank in ranks.items():
        try:
            aid, rank = int(aid), int(rank)
        except (TypeError, ValueError):
            raise InvalidRequest("ranks must map answer ids to whole numbers (1 = best)", param="ranks") from None
        if aid not in known:
            raise InvalidRequest(f"answer {aid} is not an answer of this comparison; its answers are "
                                 f"{sorted(known)}", param="ranks")
        if rank < 1:
            raise InvalidRequest(f"rank of {label(aid)} must be 1 or more (1 = best)", param="ranks")
        if rank in by_rank:
            raise InvalidRequest(f"{label(by_rank[rank])} and {label(aid)} are both ranked {rank}: a tie says neither "
                                 "is better, so it makes no comparison; give each answer its own rank",
                                 param="ranks")
        by_rank[rank] = aid
    if len(by_rank) < MIN_ANSWERS:
        raise InvalidRequest(f"rank at least {MIN_ANSWERS} answers: one answer makes no comparison", param="ranks")
    return [by_rank[r] for r in sorted(by_rank)]


def _prompt(prompt: str | Sequence[Mapping[str, Any]], system: str | None) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidRequest("the prompt is empty: write the question to compare answers to", param="prompt")
        msgs = [{"role": "user", "content": prompt}]
    else:
        msgs = [{"role": str(m.get("role")), "content": m.get("content")} for m in prompt if isinstance(m, Mapping)]
    if system and system.strip():
        msgs = [{"role": "system", "content": system}, *[m for m in msgs if m["role"] != "system"]]
    tup = ds._prompt_tuple(msgs, "prompt")  # roles known, text content, ends with the user
    if sum(len(c) for _, c in tup) > MAX_PROMPT_CHARS:
        raise InvalidRequest(f"the prompt is over {MAX_PROMPT_CHARS} characters; shorten it", param="prompt")
    if not tup[-1][1].strip():
        raise InvalidRequest("the last user message is empty", param="prompt")
    return [{"role": r, "content": c} for r, c in tup]


def _answer_dict(a: CompareAnswer) -> dict[str, Any]:
    return {"id": a.id, "position": a.position, "text": a.text, "source": a.source, "params": a.params,
            "samples": a.samples}


def _session_dict(s: CompareSession, answers: list[CompareAnswer]) -> dict[str, Any]:
    ranking = list(s.ranking or [])
    n = len(ranking)
    return {"id": s.id, "model": s.model, "prompt": s.prompt, "user_id": s.user_id,
            "answers": [_answer_dict(a) for a in sorted(answers, key=lambda a: a.position)],
            "ranking": ranking, "pairs": n * (n - 1) // 2, "ranked_by": s.ranked_by,
            "ranked_at": s.ranked_at.isoformat() if s.ranked_at else None,
            "created_at": s.created_at.isoformat() if s.created_at else None}


def _owns(principal: Any, row: CompareSession) -> bool:
    if principal.user_id is not None:
        return row.user_id == principal.user_id
    return row.user_id is None and row.key_id is not None and row.key_id == principal.key_id


# -- the service -----------------------------------------------------------------------------
class CompareService:
    """Compare sessions of a tenant. ``llm(principal, capability) -> LLMClient`` draws the answers."""

    def __init__(self, db: Database, llm: Any = None):
        self.db, self.llm = db, llm

    async def sample(self, principal: Any, prompt: str | Sequence[Mapping[str, Any]], *, n: int = 3,
                     model: str | None = None, system: str | None = None, max_tokens: int = 256,
                     temperatures: Sequence[float] | None = None, seed: int = 0) -> dict[str, Any]:
        """Draw ``n`` answers (concurrently, one fair slot each), store the distinct ones.

        Raises:
            InvalidRequest: n outside 2-4, an empty or too long prompt, bad temperatures.
            PermissionDenied / ModelNotFound / RateLimited: from the model client, before any draw.
        """
        if not MIN_ANSWERS <= int(n) <= MAX_ANSWERS:
            raise InvalidRequest(f"n must be {MIN_ANSWERS} to {MAX_ANSWERS} answers, not {n}", param="n")
        if not 1 <= int(max_tokens) <= 4096:
            raise InvalidRequest("max_tokens must be 1 to 4096", param="max_tokens")
        if not 0 <= int(seed) <= 2**31 - 1 - MAX_ANSWERS:  # engines take a 32-bit seed; each draw adds one
            raise InvalidRequest(f"seed must be 0 to {2**31 - 1 - MAX_ANSWERS}", param="seed")
        temps = list(temperatures) if temperatures else list(DEFAULT_TEMPERATURES[:n])
        if len(temps) != n or any(not 0 <= float(t) <= 2 for t in temps):
            raise InvalidRequest(f"temperatures: give {n} values in [0, 2] (one per answer), or none",
                                 param="temperatures")
        msgs = _prompt(prompt, system)
        if self.llm is None:
            raise InvalidRequest("compare mode needs the platform's model client; none is configured")
        from zhinao.runtime.base import GenerationParams

        client = self.llm(principal, CAPABILITY)
        name = client.check(model)
        params = [GenerationParams(temperature=float(t), seed=int(seed) + i, max_tokens=int(max_tokens))
                  for i, t in enumerate(temps)]
        # start() authorises and reserves every draw before any runs: a quota refusal leaves nothing
        gens = [client.start(msgs, p, model=name, purpose=PURPOSE, record_turn=False) for p in params]

        async def run(gen: Any) -> str:
            async for _ in gen:
                pass
            return gen.content or ""

        texts = await asyncio.gather(*(run(g) for g in gens))
        distinct: dict[str, dict[str, Any]] = {}
        for text, p in zip(texts, params, strict=True):
            key = " ".join(text.split())
            if not key:
                continue  # an empty draw (stopped at once) is no answer
            d = distinct.setdefault(key, {"text": text.strip(), "params": {"draws": []}, "samples": 0})
            d["samples"] += 1
            d["params"]["draws"].append({"temperature": p.temperature, "seed": p.seed})
        with self.db.session() as s:
            row = CompareSession(tenant_id=principal.tenant_id, user_id=principal.user_id,
                                 key_id=None if principal.user_id is not None else principal.key_id,
                                 model=name, prompt=msgs)
            s.add(row)
            s.flush()
            answers = [CompareAnswer(session_id=row.id, position=i, text=d["text"][:MAX_ANSWER_CHARS],
                                     source="model", params=d["params"], samples=d["samples"])
                       for i, d in enumerate(distinct.values(), 1)]
            s.add_all(answers)
            s.flush()
            return _session_dict(row, answers)

    def _get(self, s: Any, principal: Any, session_id: int) -> CompareSession:
        row = s.get(CompareSession, int(session_id))
        if row is None or row.tenant_id != principal.tenant_id or (
                not principal.is_admin and not _owns(principal, row)):
            raise NotFound(f"comparison {session_id} not found")
        return row

    def _answers(self, s: Any, session_id: int) -> list[CompareAnswer]:
        return list(s.scalars(select(CompareAnswer).where(CompareAnswer.session_id == session_id)
                              .order_by(CompareAnswer.position)))

    def get(self, principal: Any, session_id: int) -> dict[str, Any]:
        with self.db.session() as s:
            row = self._get(s, principal, session_id)
            return _session_dict(row, self._answers(s, row.id))

    def list(self, principal: Any, *, ranked: bool | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first; members get their own, admins the tenant's."""
        with self.db.session() as s:
            q = select(CompareSession).where(CompareSession.tenant_id == principal.tenant_id)
            if not principal.is_admin:
                q = q.where(CompareSession.user_id == principal.user_id) if principal.user_id is not None else \
                    q.where(CompareSession.user_id.is_(None), CompareSession.key_id == principal.key_id)
            if ranked is True:
                q = q.where(CompareSession.ranking.is_not(None))
            elif ranked is False:
                q = q.where(CompareSession.ranking.is_(None))
            rows = list(s.scalars(q.order_by(CompareSession.id.desc()).limit(min(max(int(limit), 1), 500))))
            return [_session_dict(r, self._answers(s, r.id)) for r in rows]

    def add_answer(self, principal: Any, session_id: int, text: str) -> dict[str, Any]:
        """A reviewer's own answer joins the session (at most four answers in all).

        Raises:
            InvalidRequest: empty, too long, the same as an answer already there, or a fifth answer.
        """
        text = (text or "").strip()
        if not text:
            raise InvalidRequest("the answer is empty", param="text")
        if len(text) > MAX_ANSWER_CHARS:
            raise InvalidRequest(f"the answer is over {MAX_ANSWER_CHARS} characters", param="text")
        with self.db.session() as s:
            row = self._get(s, principal, session_id)
            answers = self._answers(s, row.id)
            key = " ".join(text.split())
            for a in answers:
                if " ".join(a.text.split()) == key:
                    raise InvalidRequest(f"this is the same text as answer {a.position}; write a different one",
                                         param="text")
            if len(answers) >= MAX_ANSWERS:
                raise InvalidRequest(f"a comparison holds at most {MAX_ANSWERS} answers", param="text")
            new = CompareAnswer(session_id=row.id, position=max((a.position for a in answers), default=0) + 1,
                                text=text, source="reviewer", params={"user_id": principal.user_id}, samples=0)
            s.add(new)
            s.flush()
            return _session_dict(row, [*answers, new])

    def rank(self, principal: Any, session_id: int, ranks: Mapping[int, int]) -> dict[str, Any]:
        """Store the reviewer's ranking (replacing an earlier one); returns the session with its pairs.

        Raises:
            InvalidRequest: a tie, a single answer, an unknown answer id (see :func:`order_from_ranks`).
        """
        with self.db.session() as s:
            row = self._get(s, principal, session_id)
            answers = self._answers(s, row.id)
            order = order_from_ranks(ranks, [a.id for a in answers], {a.id: a.position for a in answers})
            by_id = {a.id: a for a in answers}
            pairs = pairs_from_ranking([by_id[i].text for i in order])
            row.ranking, row.ranked_by, row.ranked_at = order, principal.user_id, utcnow()
            s.flush()
            out = _session_dict(row, answers)
            out["pairs"] = len(pairs)
            return out

    def comparisons(self, tenant_id: int, *, limit: int = 100_000) -> ds.Collected:
        """The tenant's ranked sessions as dataset records (see :func:`collect_compare`)."""
        return collect_compare(self.db, tenant_id, limit=limit)


def collect_compare(db: Database, tenant_id: int, *, limit: int = 100_000) -> ds.Collected:
    """Ranked sessions as comparisons (every higher over every lower) and, where the top answer was
    written by a reviewer, a demonstration. Empty when this branch was never migrated."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    out = ds.Collected()
    try:
        with db.session() as s:
            rows = list(s.scalars(select(CompareSession).where(
                CompareSession.tenant_id == tenant_id, CompareSession.ranking.is_not(None))
                .order_by(CompareSession.id).limit(limit)))
            answers: dict[int, dict[int, CompareAnswer]] = {}
            if rows:
                for a in s.scalars(select(CompareAnswer).where(CompareAnswer.session_id.in_([r.id for r in rows]))):
                    answers.setdefault(a.session_id, {})[a.id] = a
                    s.expunge(a)
            for r in rows:
                s.expunge(r)
    except (OperationalError, ProgrammingError):
        return out
    for r in rows:
        try:
            prompt = ds._prompt_tuple(r.prompt or [], f"comparison {r.id}")
        except InvalidRequest:
            continue
        have = answers.get(r.id, {})
        order = [have[i] for i in (r.ranking or []) if i in have]
        if len(order) < MIN_ANSWERS:
            continue
        for i, better in enumerate(order):
            for worse in order[i + 1:]:
                out.comparisons.append(ds.Comparison(prompt, better.text, worse.text,
                                                     f"compare:{r.id}:{better.id}>{worse.id}"))
        if order[0].source == "reviewer":
            out.demonstrations.append(ds.Demonstration(prompt, order[0].text, f"compare:{r.id}:{order[0].id}:written"))
    out.stats = {"compare_rankings": len(rows)}
    return out
