"""The web side of knowledge results: passage links, HTML highlighting, a plain-text source list.

The knowledge service returns data (a passage's collection and id, its text); what a
browser or an OpenAI client needs to show it is made here, in the web layer, for
``/api/kb`` (search, retrieve, passages, chat), ``/v1`` ``kb:<c>`` answers and the console.
Imports no FastAPI.
"""

from __future__ import annotations

import html
import re
from typing import Any


def passage_url(collection: str, passage_id: str) -> str:
    return f"/api/kb/{collection}/passages/{passage_id}"


def highlight(text: str, query: str) -> str:
    """HTML-escaped ``text`` with query terms wrapped in <mark> (safe to insert as HTML)."""
    import jieba

    terms = sorted({t.strip() for t in jieba.cut_for_search(query) if len(t.strip()) > 1 or
                    ("\u4e00" <= t <= "\u9fff" and t.strip())}, key=len, reverse=True)
    esc = html.escape(text)
    if not terms:
        return esc
    pat = re.compile("|".join(re.escape(html.escape(t)) for t in terms), re.I)
    return pat.sub(lambda m: f"<mark>{m.group(0)}</mark>", esc)


def web_passage(d: dict[str, Any], query: str | None = None) -> dict[str, Any]:
    """A passage or citation dict from the service, with its link (and highlighting for ``query``)."""
    out = {**d, "url": passage_url(str(d.get("collection", "")), str(d.get("passage_id", "")))}
    if query is not None and "text" in d:
        out["highlight"] = highlight(d["text"], query)
    return out


def link_citations(citations: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [web_passage(c) for c in citations or []]


def sources_footer(citations: list[dict[str, Any]], lang: str) -> str:
    """A plain-text source list, for clients that only show the message text (any OpenAI client)."""
    shown = [c for c in citations if c.get("cited")] or citations
    lines = ["", "", "参考资料：" if lang == "zh" else "Sources:"]
    for c in shown:
        page = (f"（第 {c['page']} 页）" if lang == "zh" else f" (p. {c['page']})") if c.get("page") else ""
        url = c.get("url") or passage_url(str(c.get("collection", "")), str(c.get("passage_id", "")))
        lines.append(f"[{c['n']}] {c['title']}{page} — {url}")
    return "\n".join(lines)
