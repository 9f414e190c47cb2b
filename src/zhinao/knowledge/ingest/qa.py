"""JSON Lines of question/answer pairs (FAQ exports): one atomic passage per pair."""

from __future__ import annotations

import json

from zhinao.errors import InvalidRequest
from zhinao.knowledge.ingest import ParsedDocument, Section, register_parser
from zhinao.knowledge.ingest.text import decode_text

_Q = ("question", "q", "query", "问题", "prompt")
_A = ("answer", "a", "response", "答案", "回答")


@register_parser("jsonl", ".jsonl")
def parse_jsonl(data: bytes, filename: str) -> ParsedDocument:
    sections = []
    for n, line in enumerate(decode_text(data, filename).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"{filename}: line {n} is not valid JSON: {e.msg}", code="corrupt_file") from e
        if not isinstance(obj, dict):
            raise InvalidRequest(f"{filename}: line {n} must be a JSON object", code="corrupt_file")
        q = next((obj[k] for k in _Q if obj.get(k)), None)
        a = next((obj[k] for k in _A if obj.get(k)), None)
        if not q or not a:
            raise InvalidRequest(f"{filename}: line {n} needs a question and an answer "
                                 f"(keys {'/'.join(_Q[:2])} and {'/'.join(_A[:2])})", code="corrupt_file")
        cat = obj.get("category") or obj.get("topic")
        sections.append(Section(f"问：{q}\n答：{a}" if _has_cjk(str(q)) else f"Q: {q}\nA: {a}",
                                heading=[str(cat)] if cat else [], kind="qa"))
    return ParsedDocument(title="", doc_type="jsonl", sections=sections)


def _has_cjk(s: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in s)
