"""Conversation turns and feedback: the platform's raw material for RLHF.

Each turn stores the exact prompt sent to the model (messages snapshot), the
parameters and the reply. Feedback (👍/👎, a corrected answer, a comment) is one row
per (turn, user), updatable. Regenerations are sibling turns (``parent_turn_id``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from zhinao.errors import InvalidRequest, NotFound
from zhinao.store.db import Database, utcnow
from zhinao.store.models import ChatTurn, Conversation, Feedback

MAX_TITLE = 60


def _conv_dict(c: Conversation) -> dict[str, Any]:
    return {"id": c.id, "title": c.title, "model": c.model, "source": c.source,
            "created_at": c.created_at.isoformat(), "updated_at": c.updated_at.isoformat()}


def _fb_dict(f: Feedback | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"id": f.id, "turn_id": f.turn_id, "rating": f.rating, "corrected_answer": f.corrected_answer,
            "comment": f.comment}


def _user_message(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages or []):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else str(c)
    return ""


class ConversationService:
    def __init__(self, db: Database):
        self.db = db

    # -- conversations -------------------------------------------------------------------
    def create(self, tenant_id: int, user_id: int | None, *, title: str = "", model: str = "",
               source: str = "console") -> dict[str, Any]:
        with self.db.session() as s:
            c = Conversation(tenant_id=tenant_id, user_id=user_id, title=title[:300], model=model, source=source)
            s.add(c)
            s.flush()
            return _conv_dict(c)

    def _owned(self, s, conv_id: int, tenant_id: int, user_id: int | None) -> Conversation:
        c = s.get(Conversation, conv_id)
        if c is None or c.tenant_id != tenant_id or c.user_id != user_id:
            raise NotFound(f"conversation {conv_id} not found")
        return c

    def list(self, tenant_id: int, user_id: int | None, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.session() as s:
            q = (select(Conversation).where(Conversation.tenant_id == tenant_id, Conversation.user_id == user_id,
                                             Conversation.source == "console")
                 .order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit))
            return [_conv_dict(c) for c in s.scalars(q)]

    def get(self, conv_id: int, tenant_id: int, user_id: int | None) -> dict[str, Any]:
        with self.db.session() as s:
            c = self._owned(s, conv_id, tenant_id, user_id)
            turns = s.scalars(select(ChatTurn).where(ChatTurn.conversation_id == c.id).order_by(ChatTurn.id)).all()
            fbs = {f.turn_id: f for f in s.scalars(select(Feedback).where(
                Feedback.turn_id.in_([t.id for t in turns] or [-1]), Feedback.user_id == user_id))}
            return {**_conv_dict(c), "turns": [
                {"id": t.id, "parent_turn_id": t.parent_turn_id, "user_message": _user_message(t.messages),
                 "response": t.response, "model": t.model, "finish_reason": t.finish_reason,
                 "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
                 "latency_ms": round(t.latency_ms, 1), "created_at": t.created_at.isoformat(),
                 "feedback": _fb_dict(fbs.get(t.id))} for t in turns]}

    def delete(self, conv_id: int, tenant_id: int, user_id: int | None) -> None:
        with self.db.session() as s:
            s.delete(self._owned(s, conv_id, tenant_id, user_id))

    def history(self, conv_id: int, tenant_id: int, user_id: int | None,
                before_turn: int | None = None) -> tuple[list[dict[str, Any]], str]:
        """Messages of the conversation's current branch (latest sibling of each turn), and its model."""
        with self.db.session() as s:
            c = self._owned(s, conv_id, tenant_id, user_id)
            turns = s.scalars(select(ChatTurn).where(ChatTurn.conversation_id == c.id).order_by(ChatTurn.id)).all()
            replaced = {t.parent_turn_id for t in turns if t.parent_turn_id}
            msgs: list[dict[str, Any]] = []
            for t in turns:
                if before_turn is not None and t.id >= before_turn:
                    break
                if t.id in replaced:
                    continue
                msgs.append({"role": "user", "content": _user_message(t.messages)})
                msgs.append({"role": "assistant", "content": t.response})
            return msgs, c.model

    def turn_prompt(self, turn_id: int, tenant_id: int, user_id: int | None) -> tuple[int, list[dict[str, Any]]]:
        with self.db.session() as s:
            t = s.get(ChatTurn, turn_id)
            if t is None or t.tenant_id != tenant_id or t.user_id != user_id:
                raise NotFound(f"turn {turn_id} not found")
            return t.conversation_id, list(t.messages)

    def next_prompt(self, conv_id: int, tenant_id: int, user_id: int | None, *, content: str = "",
                    system: str | None = None, regenerate_turn_id: int | None = None,
                    ) -> tuple[list[dict[str, Any]], int | None, str]:
        """The messages for the conversation's next turn: ``(messages, parent_turn_id, model)``.

        A new message is the system prompt (if any), the current branch's history and the
        user's ``content``; a regeneration answers the same prompt as the turn it replaces
        (its sibling). ``model`` is the one the conversation last used ("" if none yet).
        """
        if regenerate_turn_id is not None:
            owner, prompt = self.turn_prompt(regenerate_turn_id, tenant_id, user_id)
            if owner != conv_id:
                raise InvalidRequest("regenerate_turn_id belongs to another conversation", param="regenerate_turn_id")
            return prompt, regenerate_turn_id, self.get(conv_id, tenant_id, user_id)["model"]
        if not content.strip():
            raise InvalidRequest("content must not be empty", param="content")
        history, model = self.history(conv_id, tenant_id, user_id)
        messages = ([{"role": "system", "content": system}] if system else []) + history + \
            [{"role": "user", "content": content}]
        return messages, None, model

    def touch(self, conv_id: int, *, title_from: str | None = None, model: str | None = None) -> None:
        with self.db.session() as s:
            c = s.get(Conversation, conv_id)
            if c is None:
                return
            c.updated_at = utcnow()
            if title_from and not c.title:
                t = " ".join(title_from.split())
                c.title = t[:MAX_TITLE] + ("…" if len(t) > MAX_TITLE else "")
            if model:
                c.model = model

    # -- turns ---------------------------------------------------------------------------
    def record_turn(self, *, tenant_id: int, user_id: int | None, key_id: int | None, model: str,
                    messages: list[dict[str, Any]], params: dict[str, Any], response: str,
                    tool_calls: list[dict[str, Any]] | None, finish_reason: str | None, prompt_tokens: int,
                    completion_tokens: int, latency_ms: float, conversation_id: int | None = None,
                    parent_turn_id: int | None = None) -> int:
        with self.db.session() as s:
            t = ChatTurn(conversation_id=conversation_id, parent_turn_id=parent_turn_id, tenant_id=tenant_id,
                         user_id=user_id, key_id=key_id, model=model, messages=messages, params=params,
                         response=response, tool_calls=tool_calls, finish_reason=finish_reason,
                         prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, latency_ms=latency_ms)
            s.add(t)
            s.flush()
            return t.id

    def finish_turn(self, turn_id: int, *, response: str, tool_calls: list[dict[str, Any]] | None,
                    finish_reason: str | None, prompt_tokens: int, completion_tokens: int, latency_ms: float) -> None:
        """Complete a turn that was opened before generation (console turns are opened first)."""
        with self.db.session() as s:
            t = s.get(ChatTurn, turn_id)
            if t is None:
                return
            t.response, t.tool_calls, t.finish_reason = response, tool_calls, finish_reason
            t.prompt_tokens, t.completion_tokens, t.latency_ms = prompt_tokens, completion_tokens, latency_ms

    # -- feedback ------------------------------------------------------------------------
    def feedback(self, turn_id: int, tenant_id: int, user_id: int | None, *, rating: int | None,
                 corrected_answer: str | None = None, comment: str | None = None,
                 clear_rating: bool = False) -> dict[str, Any]:
        """Create or update the caller's feedback on a turn; ``clear_rating`` withdraws a 👍/👎."""
        if rating not in (None, 1, -1):
            raise InvalidRequest("rating must be 1 (👍), -1 (👎) or null", param="rating")
        if rating is None and not corrected_answer and not comment and not clear_rating:
            raise InvalidRequest("give a rating, a corrected answer or a comment")
        with self.db.session() as s:
            t = s.get(ChatTurn, turn_id)
            if t is None or t.tenant_id != tenant_id:
                raise NotFound(f"turn {turn_id} not found")
            f = s.scalar(select(Feedback).where(Feedback.turn_id == turn_id, Feedback.user_id == user_id))
            if f is None:
                f = Feedback(turn_id=turn_id, tenant_id=tenant_id, user_id=user_id)
                s.add(f)
            if rating is not None or clear_rating:
                f.rating = rating
            if corrected_answer is not None:
                f.corrected_answer = corrected_answer
            if comment is not None:
                f.comment = comment
            s.flush()
            return _fb_dict(f)

    def list_feedback(self, tenant_id: int | None, limit: int = 500) -> list[dict[str, Any]]:
        with self.db.session() as s:
            q = (select(Feedback, ChatTurn).join(ChatTurn, ChatTurn.id == Feedback.turn_id)
                 .order_by(Feedback.id.desc()).limit(limit))
            if tenant_id is not None:
                q = q.where(Feedback.tenant_id == tenant_id)
            return [{**_fb_dict(f), "user_message": _user_message(t.messages), "response": t.response,
                     "messages": t.messages, "model": t.model, "created_at": f.created_at.isoformat()}
                    for f, t in s.execute(q)]
