"""Facts in an answer must be in the passage it cites: extraction, verification, quoting.

Qwen2.5-0.5B copies the shape of a passage and changes its numbers ("一个月一共18元" for a
26-yuan plan, "5分钟语音" for 500; issue 11), so after generation every checkable fact of
the answer — a number with its unit (prices, volumes, durations, dates, phone numbers),
a Latin name or code (5G, VoLTE, APP names), a quoted name (「…」《》) — is looked up in
the text of the passages the answer cites (heading and title included). A fact that is not
there makes the answer unfaithful; the caller then quotes the answering sentences instead.

Numbers are compared as numbers, not substrings: "5" is not in "500", "26" is not in "260".
Full-width forms are folded (NFKC), thousands separators dropped, and simple Chinese
numerals ("三档", "十二个月", "两年") are read as digits on the passage side, so "3档" is
grounded by "三档". Units are compared through a small synonym table (G = GB, 块 = 元).
Imports nothing of the knowledge service.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

#: a citation marker as the answer writes it ([1], 【2】)
CITE = re.compile(r"[\[【](\d{1,2})[\]】]")
#: a sentence: up to Chinese or Latin end punctuation (a full stop only before a space or the end,
#: so that "25.5 yuan" stays whole), a semicolon, or a line break
SENTENCE = re.compile(r"[^。！？!?；;\n]*?(?:[。！？!?；;]+|\.(?=\s|$)|\n|$)")

_UNITS = {
    "元": "元", "块": "元", "块钱": "元", "yuan": "元", "rmb": "元", "¥": "元", "角": "角", "分钱": "分钱",
    "gb": "gb", "g": "gb", "mb": "mb", "m": "mb", "kb": "kb", "tb": "tb", "mbps": "mbps", "m宽带": "mbps",
    "gbps": "gbps", "kbps": "kbps", "兆": "mbps",
    "分钟": "分钟", "min": "分钟", "mins": "分钟", "minutes": "分钟", "minute": "分钟",
    "秒": "秒", "s": "秒", "seconds": "秒", "小时": "小时", "h": "小时", "hours": "小时", "hour": "小时",
    "天": "天", "日": "日", "days": "天", "day": "天", "个月": "月", "月": "月", "months": "月", "month": "月",
    "年": "年", "years": "年", "year": "年", "周": "周", "weeks": "周", "week": "周",
    "%": "%", "折": "折", "次": "次", "条": "条", "张": "张", "个": "个", "位": "位", "档": "档", "倍": "倍",
    "人": "人", "台": "台", "部": "部", "项": "项", "种": "种", "款": "款",
}
_UNIT_RE = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
#: a number (optionally decimal) and the unit right after it
_NUM = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(" + _UNIT_RE + r")?(?![a-z])", re.I)
#: Latin names and codes: a capitalised word, an all-caps word or a letter-digit mix (5G, VoLTE, IPTV)
_LATIN = re.compile(r"\b(?:[A-Z][a-zA-Z]*[A-Z][a-zA-Z0-9]*|[A-Z]{2,}[0-9]*|\d+[A-Za-z]+\d*[A-Za-z]*|[A-Za-z]+\d+[A-Za-z]*)\b")
_CAPWORD = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]{2,}\b")
_QUOTED = re.compile(r"[「《“『]([^」》”』\n]{2,30})[」》”』]")
_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_NUM = re.compile(r"[零〇一二两三四五六七八九十百千]+")
_COMMON_EN = {"The", "This", "That", "These", "There", "Please", "You", "Your", "For", "When", "With", "And",
              "Yes", "No", "Not", "If", "It", "Its", "In", "On", "At", "To", "Of", "By", "Or", "An", "As", "From",
              "Passage", "Source", "Sources", "According", "Answer", "Note", "Customers", "Customer", "We", "Our"}


def fold(text: str) -> str:
    """NFKC, lower case, thousands separators out, no space between a number and its unit."""
    t = unicodedata.normalize("NFKC", text or "").lower()
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    return re.sub(r"(?<=\d)\s+(?=[^\d\s])", "", t)


def _cn_value(s: str) -> int | None:
    """The value of a simple Chinese numeral (up to 9999), or None."""
    if all(c in _CN_DIGIT for c in s):  # a digit sequence: 二〇二六
        return int("".join(str(_CN_DIGIT[c]) for c in s)) if len(s) > 1 or s in _CN_DIGIT else None
    total, cur = 0, 0
    for c in s:
        if c in _CN_DIGIT:
            cur = _CN_DIGIT[c]
        else:
            mult = {"十": 10, "百": 100, "千": 1000}[c]
            total += (cur or 1) * mult
            cur = 0
    return total + cur


def cn_digits(text: str) -> str:
    """``text`` with simple Chinese numerals written as digits (三档 -> 3档, 十二个月 -> 12个月)."""
    def repl(m: re.Match) -> str:
        v = _cn_value(m.group(0))
        return m.group(0) if v is None else str(v)

    return _CN_NUM.sub(repl, text)


@dataclass
class Fact:
    text: str  #: as written in the answer
    kind: str  #: number, name, quoted
    value: str = ""  #: the number (kind number)
    unit: str = ""  #: canonical unit or ""


def facts(answer: str) -> list[Fact]:
    """The checkable facts of an answer: numbers with units, Latin names and codes, quoted names."""
    body = CITE.sub(" ", answer or "")
    out: list[Fact] = []
    seen: set[tuple[str, str, str]] = set()
    folded = fold(body)
    for m in _NUM.finditer(folded):
        unit = _UNITS.get((m.group(2) or "").lower(), "")
        key = ("number", m.group(1), unit)
        if key not in seen:
            seen.add(key)
            out.append(Fact(m.group(0).strip(), "number", m.group(1), unit))
    for rx in (_LATIN, _CAPWORD):
        for m in rx.finditer(body):
            w = m.group(0)
            if w in _COMMON_EN or re.fullmatch(r"\d+(?:" + _UNIT_RE + r")", w, re.I):
                continue  # a number with a unit, checked above
            key = ("name", w.lower(), "")
            if key not in seen:
                seen.add(key)
                out.append(Fact(w, "name"))
    for m in _QUOTED.finditer(body):
        key = ("quoted", m.group(1), "")
        if key not in seen:
            seen.add(key)
            out.append(Fact(m.group(1), "quoted"))
    return out


def numbers_in(text: str) -> dict[str, set[str]]:
    """Number -> units seen right after it ("" for a bare number) in a folded text."""
    out: dict[str, set[str]] = {}
    for m in _NUM.finditer(text):
        out.setdefault(_canon_num(m.group(1)), set()).add(_UNITS.get((m.group(2) or "").lower(), ""))
    return out


def _canon_num(s: str) -> str:
    return s.rstrip("0").rstrip(".") if "." in s else str(int(s)) if s.isdigit() else s


@dataclass
class Grounding:
    ok: bool
    facts: list[str] = field(default_factory=list)  #: every checked fact
    unsupported: list[str] = field(default_factory=list)  #: facts not found in the cited text
    reason: str = ""  #: why not ok: unsupported facts, marker only, empty


def supported(fact: Fact, text: str, nums: dict[str, set[str]]) -> bool:
    if fact.kind == "number":
        units = nums.get(_canon_num(fact.value))
        if units is None:
            return False
        # a number with a unit needs that unit (or the number written bare) in the passage
        return not fact.unit or fact.unit in units or "" in units
    return fold(fact.text) in text


def verify(answer: str, passages: list[str], *, question: str = "") -> Grounding:
    """Whether every fact of ``answer`` appears in ``passages`` (the texts it cites).

    ``question``: facts the user wrote themselves (the plan they ask about) may be repeated
    only when a cited passage carries them as well; they are not exempt, but an answer that
    is nothing but markers or whitespace is never ok.
    """
    stripped = CITE.sub("", answer or "")
    if len(re.sub(r"[\W_]+", "", stripped)) < 2:
        return Grounding(False, reason="marker only" if CITE.search(answer or "") else "empty")
    text = fold(" \n".join(passages))
    text = text + "\n" + cn_digits(text)
    nums = numbers_in(text)
    fs = facts(answer)
    bad = [f.text for f in fs if not supported(f, text, nums)]
    return Grounding(not bad, [f.text for f in fs], bad, "unsupported: " + ", ".join(bad) if bad else "")


def sentences(text: str) -> list[str]:
    """The sentences (and list items: one per line) of a passage, stripped, non-empty."""
    out = []
    for m in SENTENCE.finditer(text or ""):
        s = m.group(0).strip()
        if len(re.sub(r"[\W_]+", "", s)) >= 2:
            out.append(s)
    return out


def _opens_entry(sentence: str) -> bool:
    """Whether a sentence starts the next FAQ entry (a question line), where a quote must stop."""
    return sentence.endswith(("?", "？")) or bool(re.match(r"^\s*(?:问|Q)\s*[:：]", sentence))


def quote(passage: str, sentence: str, *, max_chars: int = 220) -> str:
    """The answering sentence from ``passage``, grown with what follows while it is a lead-in.

    A sentence ending in a colon or a very short one ("办理方式：") introduces a list: the
    items after it are the answer, so they are added until ``max_chars``. A clause ending in a
    semicolon is not a sentence's end: "至营业厅、10086人工台办理；或通过微信公众号办理。" is one
    answer in two clauses (the sentence splitter cuts at "；"), so the clauses up to the full stop
    are added too (measured: the quote of a "where do I ..." question stopped at the first way).
    """
    sents = sentences(passage)
    if sentence not in sents:
        return sentence
    i = sents.index(sentence)
    # an FAQ's question line ("问：补卡收费吗？") is not the answer: the line after it is
    while sents[i].endswith(("?", "？")) and i + 1 < len(sents):
        i += 1
    out = [re.sub(r"^\s*(?:答|回答|A)\s*[:：]\s*", "", sents[i])]
    while i + 1 < len(sents) and (out[-1].endswith((":", "：", "；", ";")) or len("".join(out)) < 24) \
            and len("".join(out)) + len(sents[i + 1]) <= max_chars and not _opens_entry(sents[i + 1]):
        i += 1
        out.append(sents[i])
    joined = out[0]
    for s in out[1:]:
        joined += ("\n" if joined.endswith((":", "：")) or re.match(r"^\s*(?:\d+[、.)）]|[-•*])", s) else " "
                   if not re.search(r"[\u4e00-\u9fff]", s) else "") + s
    return joined
