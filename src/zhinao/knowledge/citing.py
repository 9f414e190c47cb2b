"""Citations people can use: which section, which page, which sentence.

Five citations into one FAQ file all read the same when a citation shows only the document
title (issue 11). So each citation also carries its heading path (``heading_path``:
"中国移动业务常见问题 > 流量比较划算的套餐"), its page (PDF) and the **cited sentence**: the
sentence of the passage the answer draws on (most shared terms and numbers with the answer;
with the question when there is no answer text to go on), plus ``excerpt``, a window of the
passage around that sentence, for a display that marks the sentence in its context
(``kb ask`` prints it; the console highlights it).

An answering step that already knows its sentence (the extractive answer quotes one) sets
``sentence`` itself; :func:`annotate` keeps it and fills only what is missing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from zhinao.knowledge.chunking import split_sentences

_NUM = re.compile(r"\d+(?:\.\d+)?")
#: characters of passage shown around the cited sentence
EXCERPT_CHARS = 300


def _terms(text: str) -> set[str]:
    import jieba

    out = {t.lower() for t in jieba.cut(text) if len(t.strip()) > 1}
    return out | set(_NUM.findall(text))


def cited_sentence(answer: str, passage: str, question: str = "") -> str | None:
    """The sentence of ``passage`` that ``answer`` (else ``question``) shares most terms with.

    Numbers weigh double: "26元" in an answer points at the sentence with 26, not at the one
    that only shares "套餐". None when nothing is shared (the citation then shows no sentence
    rather than a wrong one).
    """
    sents = split_sentences(passage)
    if not sents:
        return None
    for basis in (answer, question):
        words = _terms(re.sub(r"[\[【]\d{1,2}[\]】]", " ", basis or ""))
        if not words:
            continue
        best, best_score = None, 0.0
        for s in sents:
            st = _terms(s)
            shared = words & st
            score = sum(2.0 if _NUM.fullmatch(w) else 1.0 for w in shared)
            if score > best_score:
                best, best_score = s, score
        if best is not None:
            return best
    return None


def excerpt(passage: str, sentence: str | None, limit: int = EXCERPT_CHARS) -> str:
    """At most ``limit`` characters of ``passage`` that hold ``sentence`` (the start when it has none)."""
    if not sentence or sentence not in passage or len(passage) <= limit:
        return passage[:limit]
    at = passage.index(sentence)
    room = max(0, limit - len(sentence))
    start = max(0, at - room // 2)
    end = min(len(passage), max(at + len(sentence), start + limit))
    start = max(0, min(start, end - limit))
    return passage[start:end]


def annotate(citations: list[dict[str, Any]], answer: str, question: str = "",
             bodies: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Add ``heading_path``, ``sentence`` and ``excerpt`` to each citation (in place; returned).

    ``bodies``: the passages' full texts by passage id (a citation carries only a 300-character
    snippet); missing ones fall back to the snippet.
    """
    bodies = bodies or {}
    for c in citations:
        c.setdefault("heading_path", " > ".join(c.get("heading") or []))
        text = bodies.get(str(c.get("passage_id", ""))) or c.get("text") or c.get("snippet") or ""
        if not c.get("sentence"):
            # an answer speaks for the passages it cites; the others are matched to the question
            c["sentence"] = cited_sentence(answer if c.get("cited") else "", text, question)
        if c.get("sentence") and c["sentence"] not in text:
            c["excerpt"] = c["sentence"]
        else:
            c["excerpt"] = excerpt(text, c.get("sentence"))
    return citations


async def annotate_stream(stream: AsyncIterator[Any], question: str,
                          bodies: Callable[[list[dict[str, Any]]], dict[str, str]]) -> AsyncIterator[Any]:
    """``stream`` (deltas, some carrying ``citations``) with every citation list annotated.

    The first list (before any answer text) is matched to the question; the last one, to
    the answer streamed so far. ``bodies(citations)`` gives the passages' full texts.
    """
    parts: list[str] = []
    async for d in stream:
        if getattr(d, "content", None):
            parts.append(d.content)
        cites = getattr(d, "citations", None)
        if cites:
            annotate(cites, "".join(parts), question, bodies(cites))
        yield d
