"""Document parsers: one module per format family, registered by extension like plugins.

A parser turns bytes into a :class:`ParsedDocument`: a title and structural
:class:`Section` s (a page, a heading path, a table row, a Q&A pair). Chunking works on
sections so that chunk boundaries follow the document's own structure. Every failure is
an :class:`~zhinao.errors.InvalidRequest` naming the file and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

from zhinao.errors import InvalidRequest


@dataclass
class Section:
    text: str
    page: int | None = None
    heading: list[str] = field(default_factory=list)
    #: ``text`` flows and may be split; ``row`` and ``qa`` are atomic units (never split mid-way)
    kind: Literal["text", "row", "qa"] = "text"


@dataclass
class ParsedDocument:
    title: str
    doc_type: str
    sections: list[Section]
    meta: dict[str, Any] = field(default_factory=dict)


Parser = Callable[[bytes, str], ParsedDocument]
_PARSERS: dict[str, tuple[str, Parser]] = {}  # extension -> (doc_type, parser)


def register_parser(doc_type: str, *extensions: str) -> Callable[[Parser], Parser]:
    def deco(fn: Parser) -> Parser:
        for ext in extensions:
            _PARSERS[ext.lower()] = (doc_type, fn)
        return fn
    return deco


def supported_extensions() -> list[str]:
    _load_builtins()
    return sorted(_PARSERS)


def doc_type_of(filename: str) -> str | None:
    _load_builtins()
    entry = _PARSERS.get(PurePath(filename).suffix.lower())
    return entry[0] if entry else None


def parse_document(data: bytes, filename: str) -> ParsedDocument:
    """Parse ``data`` (the file's bytes) according to ``filename``'s extension.

    Raises:
        InvalidRequest: empty file, unsupported type, corrupted/encrypted file, no text.
    """
    _load_builtins()
    ext = PurePath(filename).suffix.lower()
    if ext not in _PARSERS:
        raise InvalidRequest(f"{filename}: unsupported file type {ext or '(none)'!r}; supported: "
                             + ", ".join(sorted(_PARSERS)), code="unsupported_type")
    if not data:
        raise InvalidRequest(f"{filename}: the file is empty (0 bytes)", code="empty_file")
    doc_type, parser = _PARSERS[ext]
    try:
        doc = parser(data, filename)
    except InvalidRequest:
        raise
    except Exception as e:  # a library's own exception for a malformed file
        raise InvalidRequest(f"{filename}: cannot read this {doc_type.upper()} file "
                             f"(corrupted or not really {doc_type}): {type(e).__name__}: {e}",
                             code="corrupt_file") from e
    doc.sections = [s for s in doc.sections if s.text.strip()]
    if not doc.sections:
        raise InvalidRequest(f"{filename}: no text could be extracted", code="no_text")
    doc.doc_type = doc_type
    if not doc.title:
        doc.title = PurePath(filename).stem
    return doc


_loaded = False


def _load_builtins() -> None:
    """Import the built-in parser modules (they register themselves)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from zhinao.knowledge.ingest import html, office, pdf, qa, tabular, text  # noqa: F401
