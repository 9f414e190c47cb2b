"""Personal data out of training text: phones, Chinese ID numbers, emails, bank cards, marked names.

Why here and first: a fine-tuned model can reproduce what it was trained on verbatim, so a
customer's phone number in one corrected answer could be read out to another customer. Every
text that goes into a dataset passes :func:`scrub` before it is hashed, deduplicated or
written, so two answers that differ only in a phone number are one example, and nothing
personal reaches a JSONL file or a checkpoint.

Replacements are typed placeholders (``[PHONE]``, ``[ID]``, ``[EMAIL]``, ``[CARD]``,
``[NAME]``): the model still learns *that* a number goes there, not which one. Names are only
replaced where they are marked (``姓名：张三``, ``Name: John Smith``, ``张先生``) or given by
the caller (``names=``): guessing names in free text would mangle product words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
#: 18-digit resident ID (GB 11643): 6 region digits, birth date 19xx/20xx, 3 sequence, check digit
CN_ID = re.compile(r"(?<!\d)[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?!\d)")
#: mainland mobile numbers, with +86 / 86 and spaces or dashes in the usual 3-4-4 places
CN_MOBILE = re.compile(r"(?<![\d+])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")
#: landlines: area code 0xx(x) then 7-8 digits (010-12345678, 0755 1234567)
CN_LANDLINE = re.compile(r"(?<!\d)0\d{2,3}[ -]\d{7,8}(?!\d)")
#: bank cards: 16-19 digits (after IDs and phones are gone)
CARD = re.compile(r"(?<!\d)\d{16,19}(?!\d)")
#: a name after a label: 姓名/联系人/客户姓名/机主 ：X, Name: X
MARKED_NAME = re.compile(
    r"(?P<label>(?:客户)?姓名|联系人|机主|户主|收件人|(?i:name))(?P<sep>\s*[:：]\s*)"
    r"(?P<name>[\u4e00-\u9fff·]{2,4}|[A-Z][a-z]+(?: [A-Z][a-z]+){0,2})")
#: a Chinese surname followed by an honorific (张先生, 李女士)
HONORIFIC = re.compile(r"(?<![\u4e00-\u9fff])[\u4e00-\u9fff](?=先生|女士|小姐)")


def valid_cn_id(s: str) -> bool:
    """True when the 18-character ID's check digit is right (ISO 7064 MOD 11-2)."""
    if len(s) != 18 or not s[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(s[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == s[17].upper()


@dataclass
class ScrubReport:
    """How many of each kind were replaced (the dataset version records it)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int = 1) -> None:
        if n:
            self.counts[kind] = self.counts.get(kind, 0) + n

    def merge(self, other: "ScrubReport") -> None:
        for k, v in other.counts.items():
            self.add(k, v)


def scrub(text: str, names: Iterable[str] = (), report: ScrubReport | None = None) -> str:
    """``text`` with personal data replaced by placeholders.

    Args:
        text: any user or model text.
        names: names known to be personal (the customer's, from a CRM field); replaced wherever seen.
        report: counts are added to it.
    """
    if not text:
        return text
    rep = report if report is not None else ScrubReport()

    def sub(pattern: re.Pattern[str], placeholder: str, kind: str, s: str, check=None) -> str:
        def one(m: re.Match[str]) -> str:
            if check is not None and not check(m.group(0)):
                return m.group(0)
            rep.add(kind)
            return placeholder
        return pattern.sub(one, s)

    out = sub(EMAIL, "[EMAIL]", "email", text)
    out = sub(CN_ID, "[ID]", "id_number", out, check=valid_cn_id)
    out = sub(CN_MOBILE, "[PHONE]", "phone", out)
    out = sub(CN_LANDLINE, "[PHONE]", "phone", out)
    out = sub(CARD, "[CARD]", "card", out)

    def marked(m: re.Match[str]) -> str:
        rep.add("name")
        return f"{m.group('label')}{m.group('sep')}[NAME]"

    out = MARKED_NAME.sub(marked, out)
    out = sub(HONORIFIC, "[NAME]", "name", out)
    for name in sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True):
        n = out.count(name)
        if n:
            rep.add("name", n)
            out = out.replace(name, "[NAME]")
    return out


def scrub_messages(messages: list[dict], names: Iterable[str] = (),
                   report: ScrubReport | None = None) -> list[dict]:
    """Each message's text content scrubbed (role kept; non-text parts dropped)."""
    names = tuple(names)
    return [{"role": m["role"], "content": scrub(m.get("content") or "", names, report)} for m in messages]
