"""Plain text and Markdown, with encoding detection (UTF-8, UTF-16, GBK/GB18030, Big5...)."""

from __future__ import annotations

import re
from pathlib import PurePath

from zhinao.errors import InvalidRequest
from zhinao.knowledge.ingest import ParsedDocument, Section, register_parser


def decode_text(data: bytes, filename: str = "") -> str:
    """Decode bytes whose encoding nobody told us: BOM, strict UTF-8, GB18030, then detection.

    GB18030 is tried before statistical detection because Chinese office files saved as
    "ANSI" are GBK (a subset of GB18030) and short ones fool detectors.
    """
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(enc)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
        if _looks_like_text(text):
            return text
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise InvalidRequest(f"{filename}: not a text file (no text encoding fits)", code="bad_encoding")
    return str(best)


def _looks_like_text(text: str) -> bool:
    if not text:
        return True
    bad = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\r\n\t\f") or "\ue000" <= ch <= "\uf8ff")
    return bad / len(text) < 0.01


def _paragraph_sections(text: str, heading: list[str] | None = None) -> list[Section]:
    parts = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return [Section(p.strip(), heading=list(heading or [])) for p in parts if p.strip()]


_TXT_HEADING = re.compile(r"^(第[一二三四五六七八九十百\d]+[章节条部分]|[一二三四五六七八九十]+[、.．]|\d+(\.\d+)*[.、．]?\s)")


def _txt_sections(text: str) -> list[Section]:
    """Paragraphs; a numbered short first line ("一、…", "2. …", "第三章 …") starts a heading."""
    out: list[Section] = []
    heading: list[str] = []
    for sec in _paragraph_sections(text):
        first, _, rest = sec.text.partition("\n")
        first = first.strip()
        if _TXT_HEADING.match(first) and len(first) <= 40 and first[-1] not in "。！？.!?；;，,":
            heading = [first]
            if not rest.strip():
                continue
            sec = Section(rest.strip())
        sec.heading = list(heading)
        out.append(sec)
    return out


@register_parser("txt", ".txt", ".text", ".log")
def parse_txt(data: bytes, filename: str) -> ParsedDocument:
    text = decode_text(data, filename)
    if "\x00" in text:
        raise InvalidRequest(f"{filename}: looks binary, not text", code="corrupt_file")
    # page breaks (form feed) become pages, as pdftotext writes them
    pages = text.split("\f")
    sections = []
    for i, page in enumerate(pages, 1):
        for s in _txt_sections(page):
            s.page = i if len(pages) > 1 else None
            sections.append(s)
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    # a short first line that is not a sentence is the title, as in most plain-text notices
    title = first if 0 < len(first) <= 40 and first[-1] not in "。！？.!?；;，," else PurePath(filename).stem
    return ParsedDocument(title=title, doc_type="txt", sections=sections)


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_MD_FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_sections(text: str) -> tuple[str, list[Section]]:
    """Split Markdown by headings; each section keeps its heading path (h1 > h2 > ...)."""
    path: list[tuple[int, str]] = []
    sections: list[Section] = []
    buf: list[str] = []
    title = ""
    in_fence = False
    front = re.match(r"^---\n.*?\n---\n", text, re.S)  # YAML front matter is metadata, not text
    if front:
        text = text[front.end():]

    def flush() -> None:
        if buf:
            sections.extend(_paragraph_sections("\n".join(buf), [h for _, h in path]))
            buf.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        if _MD_FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _MD_HEADING.match(line)
        if m:
            flush()
            level, name = len(m.group(1)), _strip_inline(m.group(2))
            path = [(lv, h) for lv, h in path if lv < level] + [(level, name)]
            if not title and level == 1:
                title = name
            continue
        buf.append(_strip_inline(line) if not in_fence else line)
    flush()
    return title, sections


def _strip_inline(line: str) -> str:
    line = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", line)  # images -> alt text
    line = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", line)  # links -> text
    line = re.sub(r"(\*\*|__)(.+?)\1", r"\2", line)
    line = re.sub(r"<[^>]+>", "", line)  # inline HTML is never kept raw
    return line


@register_parser("md", ".md", ".markdown")
def parse_md(data: bytes, filename: str) -> ParsedDocument:
    title, sections = markdown_sections(decode_text(data, filename))
    return ParsedDocument(title=title, doc_type="md", sections=sections)
