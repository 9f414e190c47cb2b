"""Structure-following, token-bounded chunking with overlap.

Sections from a parser are packed into chunks that never cross a page or heading
boundary. Text is cut at sentence ends (Chinese 。！？； and their ASCII cousins, then
commas, then raw token windows for run-on text), and consecutive chunks of one section
share ``overlap`` tokens so an answer cut at a boundary is still found whole. Table rows
and Q&A pairs are atomic: several may share a chunk, none is split (unless one alone is
over the limit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from zhinao.knowledge.ingest import Section

_WORD = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z0-9_]+(?:[.'’-][A-Za-z0-9_]+)*|[^\sA-Za-z0-9_\u3400-\u9fff]")
_SENT_END = re.compile(r"(?<=[。！？；!?;])|(?<=\.)(?=\s)|\n+")
_CLAUSE = re.compile(r"(?<=[，、,：:])")


def count_tokens(text: str) -> int:
    """CJK characters + words + punctuation: close to a BPE count for mixed zh/en text."""
    return len(_WORD.findall(text))


@dataclass
class Chunk:
    text: str
    index: int = 0
    page: int | None = None
    heading: list[str] = field(default_factory=list)
    kind: str = "text"

    @property
    def heading_path(self) -> str:
        return " > ".join(self.heading)


def split_sentences(text: str) -> list[str]:
    """Split after sentence-ending punctuation, keeping it with its sentence."""
    return [s for s in (p.strip() for p in _SENT_END.split(text)) if s]


def _hard_split(text: str, max_tokens: int) -> list[str]:
    """Cut run-on text: at clause marks first, then by token windows."""
    pieces = [p for p in _CLAUSE.split(text) if p]
    out: list[str] = []
    buf = ""
    for p in pieces:
        if count_tokens(p) > max_tokens:
            if buf:
                out.append(buf)
                buf = ""
            toks = list(_WORD.finditer(p))
            for i in range(0, len(toks), max_tokens):
                window = toks[i:i + max_tokens]
                out.append(p[window[0].start():window[-1].end()])
            continue
        if buf and count_tokens(buf + p) > max_tokens:
            out.append(buf)
            buf = p
        else:
            buf += p
    if buf:
        out.append(buf)
    return out


def _join(a: str, b: str) -> str:
    if not a:
        return b
    if re.search(r"[\u3000-\u9fff\uff00-\uffef]$", a) or re.match(r"[\u3000-\u9fff\uff00-\uffef]", b):
        return a + b
    return a + " " + b


def _pack(units: list[str], max_tokens: int, overlap: int, sep_atomic: bool) -> list[str]:
    """Greedy packing of units under ``max_tokens``, carrying the tail as overlap."""
    chunks: list[str] = []
    cur: list[str] = []
    cur_tok = 0
    for u in units:
        t = count_tokens(u)
        if cur and cur_tok + t > max_tokens:
            chunks.append(_render(cur, sep_atomic))
            carry: list[str] = []
            if overlap and not sep_atomic:
                acc = 0
                for prev in reversed(cur):
                    pt = count_tokens(prev)
                    if acc + pt > overlap:
                        break
                    carry.insert(0, prev)
                    acc += pt
            cur, cur_tok = carry, sum(count_tokens(c) for c in carry)
        cur.append(u)
        cur_tok += t
    if cur:
        chunks.append(_render(cur, sep_atomic))
    return chunks


def _render(units: list[str], atomic: bool) -> str:
    if atomic:
        return "\n".join(units)
    out = ""
    for u in units:
        out = _join(out, u)
    return out


def chunk_sections(sections: list[Section], max_tokens: int = 220, overlap: int = 40) -> list[Chunk]:
    """Turn parsed sections into chunks that keep page and heading path."""
    if overlap >= max_tokens:
        overlap = max_tokens // 4
    chunks: list[Chunk] = []
    # group consecutive sections sharing page, heading and kind
    groups: list[tuple[tuple, list[Section]]] = []
    for s in sections:
        key = (s.page, tuple(s.heading), "text" if s.kind == "text" else "atomic")
        if groups and groups[-1][0] == key:
            groups[-1][1].append(s)
        else:
            groups.append((key, [s]))
    for (page, heading, kind), group in groups:
        if kind == "atomic":
            units: list[str] = []
            for s in group:
                units.extend(_hard_split(s.text, max_tokens) if count_tokens(s.text) > max_tokens else [s.text])
            texts = _pack(units, max_tokens, 0, sep_atomic=True)
            ckind = group[0].kind
        else:
            units = []
            for s in group:
                for sent in split_sentences(s.text):
                    units.extend(_hard_split(sent, max_tokens) if count_tokens(sent) > max_tokens else [sent])
            texts = _pack(units, max_tokens, overlap, sep_atomic=False)
            ckind = "text"
        for t in texts:
            chunks.append(Chunk(text=t, page=page, heading=list(heading), kind=ckind))
    for i, c in enumerate(chunks):
        c.index = i
    return chunks
