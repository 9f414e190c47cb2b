"""Training data from the product: demonstrations and comparisons, scrubbed, deduplicated, split.

The loop the talk calls 从数据标注到数据矫正 (from labelling to correcting): reviewers do not
write datasets, they use the chat and mark answers. This module turns what the platform
stored into TRL's two formats:

- a **demonstration** (SFT) is the prompt as the model saw it plus an answer someone approved
  (👍) or wrote (a corrected answer): ``{"messages": [...prompt, {"role": "assistant", ...}]}``;
- a **comparison** (reward model, DPO, PPO prompts) is the prompt with a chosen and a rejected
  answer, in TRL's explicit-prompt form: ``{"prompt": [...], "chosen": [assistant msg],
  "rejected": [assistant msg]}``. A corrected answer beats the answer it corrects; among
  regenerated siblings (turns that answer the same prompt: ``parent_turn_id`` chains) a 👍
  sibling beats a 👎 one.

Order matters and is fixed: scrub personal data, then deduplicate (two answers that differ
only in a phone number are one example), then split train/eval **by prompt** so no prompt is
in both (otherwise eval accuracy measures memorisation). The split is a hash of the prompt
and a seed, so the same data gives the same split on every machine.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from zhinao.alignment.scrub import ScrubReport, scrub, scrub_messages
from zhinao.errors import InvalidRequest
from zhinao.store.db import Database
from zhinao.store.models import ChatTurn, Feedback

ROLES = ("system", "user", "assistant", "tool")


# -- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Demonstration:
    """A prompt (message list ending with a user turn) and the answer to learn."""

    prompt: tuple[tuple[str, str], ...]
    completion: str
    source: str = ""

    def to_trl(self) -> dict[str, Any]:
        return {"messages": [*_msgs(self.prompt), {"role": "assistant", "content": self.completion}]}


@dataclass(frozen=True)
class Comparison:
    """A prompt with a better (chosen) and a worse (rejected) answer."""

    prompt: tuple[tuple[str, str], ...]
    chosen: str
    rejected: str
    source: str = ""

    def to_trl(self) -> dict[str, Any]:
        return {"prompt": _msgs(self.prompt), "chosen": [{"role": "assistant", "content": self.chosen}],
                "rejected": [{"role": "assistant", "content": self.rejected}]}


Record = Demonstration | Comparison


def _msgs(prompt: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in prompt]


def _prompt_tuple(messages: Iterable[dict[str, Any]], where: str) -> tuple[tuple[str, str], ...]:
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise InvalidRequest(f"{where}: each message needs a role in {ROLES} and a content string")
        c = m.get("content")
        if isinstance(c, list):  # OpenAI content parts: keep the text ones
            c = "".join(p.get("text", "") for p in c if isinstance(p, dict))
        out.append((m["role"], c if isinstance(c, str) else ""))
    if not out or out[-1][0] != "user":
        raise InvalidRequest(f"{where}: the prompt must end with a user message")
    return tuple(out)


def _norm(s: str) -> str:
    return " ".join(s.split())


def prompt_key(prompt: tuple[tuple[str, str], ...]) -> str:
    """The identity of a prompt for dedupe and the split: roles and whitespace-normalised text."""
    return json.dumps([[r, _norm(c)] for r, c in prompt], ensure_ascii=False)


def record_key(rec: Record) -> str:
    if isinstance(rec, Demonstration):
        return prompt_key(rec.prompt) + "\x00" + _norm(rec.completion)
    return prompt_key(rec.prompt) + "\x00" + _norm(rec.chosen) + "\x00" + _norm(rec.rejected)


# -- from the product ---------------------------------------------------------------------------
@dataclass
class Collected:
    """What :func:`collect` found, before scrubbing and dedupe."""

    demonstrations: list[Demonstration] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


def _root(turn_id: int, parent: dict[int, int | None]) -> int:
    seen = set()
    while parent.get(turn_id) and turn_id not in seen:
        seen.add(turn_id)
        turn_id = parent[turn_id]  # type: ignore[assignment]
    return turn_id


def collect(db: Database, tenant_id: int, *, limit: int = 100_000) -> Collected:
    """Demonstrations and comparisons from a tenant's turns and feedback.

    Several reviewers may rate one turn: their ratings are summed (net 👍 > 0 approves it,
    < 0 rejects it); every distinct corrected answer counts. Turns without a reply or with
    a tool call (not plain text to learn) are skipped.
    """
    out = Collected()
    with db.session() as s:
        rows = s.execute(select(Feedback, ChatTurn).join(ChatTurn, ChatTurn.id == Feedback.turn_id)
                         .where(Feedback.tenant_id == tenant_id).order_by(Feedback.id).limit(limit)).all()
        turns: dict[int, ChatTurn] = {}
        net: dict[int, int] = defaultdict(int)
        corrections: dict[int, list[str]] = defaultdict(list)
        for f, t in rows:
            turns[t.id] = t
            if f.rating:
                net[t.id] += int(f.rating)
            if f.corrected_answer and f.corrected_answer.strip() and f.corrected_answer.strip() not in corrections[t.id]:
                corrections[t.id].append(f.corrected_answer.strip())
        # sibling structure: every turn of the conversations involved (regenerations point to their parent)
        conv_ids = {t.conversation_id for t in turns.values() if t.conversation_id is not None}
        parent: dict[int, int | None] = {}
        if conv_ids:
            for tid, pid in s.execute(select(ChatTurn.id, ChatTurn.parent_turn_id)
                                      .where(ChatTurn.conversation_id.in_(conv_ids))):
                parent[tid] = pid
    stats = defaultdict(int)
    groups: dict[int, list[int]] = defaultdict(list)
    for tid, t in turns.items():
        if not (t.response or "").strip() or t.tool_calls:
            stats["skipped_no_text_reply"] += 1
            continue
        try:
            prompt = _prompt_tuple(t.messages or [], f"turn {tid}")
        except InvalidRequest:
            stats["skipped_bad_prompt"] += 1
            continue
        src = f"turn:{tid}"
        for fixed in corrections[tid]:
            out.demonstrations.append(Demonstration(prompt, fixed, src + ":corrected"))
            if _norm(fixed) != _norm(t.response):
                out.comparisons.append(Comparison(prompt, fixed, t.response, src + ":corrected>original"))
        if net[tid] > 0 and not corrections[tid]:
            out.demonstrations.append(Demonstration(prompt, t.response, src + ":approved"))
        groups[_root(tid, parent)].append(tid)
    for members in groups.values():
        good = [i for i in members if net[i] > 0]
        bad = [i for i in members if net[i] < 0]
        for g in good:
            for b in bad:
                tg, tb = turns[g], turns[b]
                prompt = _prompt_tuple(tg.messages, f"turn {g}")
                if prompt_key(prompt) == prompt_key(_prompt_tuple(tb.messages, f"turn {b}")):
                    out.comparisons.append(Comparison(prompt, tg.response, tb.response, f"turns:{g}>{b}"))
    stats["feedback_rows"] = len(rows)
    agent = collect_agent(db, tenant_id, limit=limit)
    out.demonstrations += agent.demonstrations
    out.comparisons += agent.comparisons
    stats.update(agent.stats)
    out.stats = dict(stats)
    return out


def agent_text(answer: str, sql: str | None) -> str:
    """The analyst agent's reply as one assistant message: the narrative, then its SQL."""
    answer = (answer or "").strip()
    return f"{answer}\n\n```sql\n{sql.strip()}\n```" if sql and sql.strip() else answer


def collect_agent(db: Database, tenant_id: int, *, limit: int = 100_000) -> Collected:
    """The analyst agent's verdicts: an accepted answer is a demonstration; a corrected one is a
    demonstration of the correction and a comparison correction > original. Skipped (empty) when
    the agent capability is not installed."""
    out = Collected()
    try:
        from zhinao.agent.models import AgentAnswerRecord
    except ImportError:
        return out
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        with db.session() as s:
            rows = s.scalars(select(AgentAnswerRecord).where(
                AgentAnswerRecord.tenant_id == tenant_id, AgentAnswerRecord.status.in_(("accepted", "corrected")))
                .order_by(AgentAnswerRecord.id).limit(limit)).all()
    except (OperationalError, ProgrammingError):  # its branch was never migrated on this store
        return out
    for r in rows:
        if not (r.question or "").strip():
            continue
        prompt = (("user", r.question.strip()),)
        original = agent_text((r.answer or {}).get("answer", ""), r.sql)
        src = f"agent:{r.id}"
        if r.status == "accepted" and original:
            out.demonstrations.append(Demonstration(prompt, original, src + ":accepted"))
        elif r.status == "corrected":
            c = r.correction or {}
            fixed = agent_text(c.get("answer") or (r.answer or {}).get("answer", ""), c.get("sql") or r.sql)
            if fixed:
                out.demonstrations.append(Demonstration(prompt, fixed, src + ":corrected"))
                if original and _norm(fixed) != _norm(original):
                    out.comparisons.append(Comparison(prompt, fixed, original, src + ":corrected>original"))
    out.stats = {"agent_answers": len(rows)}
    return out


# -- cleaning ---------------------------------------------------------------------------------
def clean(records: Iterable[Record], names: Iterable[str] = ()) -> tuple[list[Record], dict[str, Any]]:
    """Scrub, drop identical pairs and empty answers, then deduplicate (first occurrence kept).

    Returns the records and what was removed (``scrubbed``: counts by kind).
    """
    names = tuple(names)
    report = ScrubReport()
    seen: set[str] = set()
    out: list[Record] = []
    dropped = defaultdict(int)
    for rec in records:
        prompt = tuple((m["role"], m["content"]) for m in scrub_messages(_msgs(rec.prompt), names, report))
        if isinstance(rec, Demonstration):
            rec = Demonstration(prompt, scrub(rec.completion, names, report), rec.source)
            if not rec.completion.strip():
                dropped["empty_answer"] += 1
                continue
        else:
            rec = Comparison(prompt, scrub(rec.chosen, names, report), scrub(rec.rejected, names, report), rec.source)
            if not rec.chosen.strip() or not rec.rejected.strip():
                dropped["one_sided"] += 1
                continue
            if _norm(rec.chosen) == _norm(rec.rejected):
                dropped["identical_pair"] += 1
                continue
        key = record_key(rec)
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        out.append(rec)
    return out, {"dropped": dict(dropped), "scrubbed": report.counts}


def split_by_prompt(records: list[Record], eval_fraction: float = 0.2, seed: int = 0) -> tuple[list[Record], list[Record]]:
    """Train and eval parts with no prompt in both.

    Prompts are ordered by ``sha256(seed, prompt)`` and the first ``round(eval_fraction * n)``
    (at least one when there are two prompts or more and ``eval_fraction > 0``) go to eval.

    Raises:
        InvalidRequest: ``eval_fraction`` outside [0, 1).
    """
    if not 0 <= eval_fraction < 1:
        raise InvalidRequest("eval_fraction must be in [0, 1)", param="eval_fraction")
    keys = sorted({prompt_key(r.prompt) for r in records},
                  key=lambda k: hashlib.sha256(f"{seed}\x00{k}".encode()).hexdigest())
    n_eval = round(eval_fraction * len(keys))
    if eval_fraction > 0 and len(keys) >= 2:
        n_eval = min(max(n_eval, 1), len(keys) - 1)
    held = set(keys[:n_eval])
    train = [r for r in records if prompt_key(r.prompt) not in held]
    ev = [r for r in records if prompt_key(r.prompt) in held]
    return train, ev


def require_usable(records: list[Record], kind: str, where: str = "dataset") -> None:
    """Refuse what cannot train: nothing at all, or a preference set without both sides.

    Raises:
        InvalidRequest: with what to do about it.
    """
    if kind not in ("sft", "preference"):
        raise InvalidRequest(f"dataset kind must be sft or preference, not {kind!r}", param="kind")
    want = Demonstration if kind == "sft" else Comparison
    usable = [r for r in records if isinstance(r, want)]
    if not usable:
        hint = ("rate answers 👍 or correct them" if kind == "sft"
                else "rate regenerated answers 👍 and 👎, or correct answers, so each prompt has a chosen and a rejected reply")
        raise InvalidRequest(f"{where} has no {'demonstrations' if kind == 'sft' else 'comparisons'}: {hint}")


# -- JSONL ------------------------------------------------------------------------------------
def to_jsonl(records: Iterable[Record]) -> str:
    """Canonical JSONL (sorted keys, UTF-8 text): the bytes the content hash is taken over."""
    return "".join(json.dumps(r.to_trl(), ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def write_jsonl(path: Path | str, records: Iterable[Record]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_jsonl(records), encoding="utf-8")
    return path


def _answer(v: Any, where: str, side: str) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list) and v and isinstance(v[-1], dict) and v[-1].get("role") == "assistant":
        return v[-1].get("content") or ""
    raise InvalidRequest(f"{where}: {side!r} must be a list of messages ending with an assistant message")


def parse_record(obj: Any, where: str) -> Record:
    """One JSONL object in TRL's formats: ``messages`` (SFT) or ``prompt``/``chosen``/``rejected``.

    Raises:
        InvalidRequest: the object is neither, a side is missing, or chosen equals rejected.
    """
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{where}: each line must be a JSON object")
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or len(msgs) < 2 or not isinstance(msgs[-1], dict) \
                or msgs[-1].get("role") != "assistant":
            raise InvalidRequest(f"{where}: 'messages' must end with the assistant's answer")
        return Demonstration(_prompt_tuple(msgs[:-1], where), msgs[-1].get("content") or "", "import")
    if "prompt" in obj:
        missing = [k for k in ("chosen", "rejected") if not obj.get(k)]
        if missing:
            raise InvalidRequest(f"{where}: one-sided comparison, {' and '.join(missing)} missing or empty")
        p = obj["prompt"]
        prompt = _prompt_tuple([{"role": "user", "content": p}] if isinstance(p, str) else p, where)
        chosen, rejected = _answer(obj["chosen"], where, "chosen"), _answer(obj["rejected"], where, "rejected")
        if not chosen.strip() or not rejected.strip():
            raise InvalidRequest(f"{where}: one-sided comparison, an answer is empty")
        if _norm(chosen) == _norm(rejected):
            raise InvalidRequest(f"{where}: chosen and rejected are identical; a pair must differ")
        return Comparison(prompt, chosen, rejected, "import")
    raise InvalidRequest(f"{where}: expected 'messages' (SFT) or 'prompt', 'chosen', 'rejected' (preference)")


def iter_jsonl(path: Path | str) -> Iterator[Record]:
    path = Path(path)
    if not path.is_file():
        raise InvalidRequest(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidRequest(f"{path.name} line {i}: not JSON ({e.msg})") from None
            yield parse_record(obj, f"{path.name} line {i}")


def read_jsonl(path: Path | str, kind: str | None = None) -> list[Record]:
    """Every record of a JSONL file; with ``kind``, refuse a file without usable records."""
    records = list(iter_jsonl(path))
    if kind is not None:
        require_usable(records, kind, where=str(path))
    return records


def content_hash(train: Iterable[Record], ev: Iterable[Record]) -> str:
    h = hashlib.sha256()
    h.update(to_jsonl(train).encode("utf-8"))
    h.update(b"\x00eval\x00")
    h.update(to_jsonl(ev).encode("utf-8"))
    return h.hexdigest()


def check_lengths(records: Iterable[Record], tokenizer: Any, max_length: int, *, prompt_share: float = 0.75) -> None:
    """Refuse prompts the model cannot see whole (TRL would silently truncate them).

    A prompt may use ``prompt_share`` of ``max_length``: the rest is left for the answer.

    Raises:
        InvalidRequest: names the first prompt that is too long and its token count.
    """
    limit = int(max_length * prompt_share)
    for i, rec in enumerate(records):
        ids = tokenizer.apply_chat_template(_msgs(rec.prompt), tokenize=True, add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        if len(ids) > limit:
            head = _norm(rec.prompt[-1][1])[:40]
            raise InvalidRequest(
                f"record {i + 1}: prompt of {len(ids)} tokens is over the limit of {limit} "
                f"({prompt_share:.0%} of max_length {max_length}): {head!r}… — shorten it or raise max_length")
