"""Document parsers: one module per format family, registered by extension like plugins.

A parser turns bytes into a :class:`ParsedDocument`: a title and structural
:class:`Section` s (a page, a heading path, a table row, a Q&A pair). Chunking works on
sections so that chunk boundaries follow the document's own structure. Every failure is
an :class:`~zhinao.errors.InvalidRequest` naming the file and what is wrong with it.

Uploads are untrusted: :func:`parse_isolated` (what ingestion calls) refuses zip bombs on
their central directory first, then runs :func:`parse_document` in a worker process with
memory, CPU and wall-clock limits (:mod:`zhinao.safety`), which a cancelled job kills.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

from zhinao.errors import InvalidRequest, ZhinaoError
from zhinao.safety.archive import ArchiveLimits, inspect_zip, is_zip
from zhinao.safety.isolate import IsolatedRunner, ParseLimits, runner_for


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


#: document types stored as zip archives (checked against the archive limits before parsing)
ARCHIVE_TYPES = frozenset({"docx", "pptx", "xlsx"})


def parse_document(data: bytes, filename: str, limits: ArchiveLimits | None = None) -> ParsedDocument:
    """Parse ``data`` (the file's bytes) according to ``filename``'s extension, in this process.

    Zip-based formats are checked against ``limits`` (default :class:`ArchiveLimits`) first,
    nested archives included. Ingestion calls :func:`parse_isolated`, which runs this in a
    bounded worker; calling it directly is for trusted files and tests.

    Raises:
        InvalidRequest: empty file, unsupported type, corrupted/encrypted file, no text.
        ArchiveRejected: the archive would unpack beyond ``limits`` (413).
    """
    _load_builtins()
    ext = PurePath(filename).suffix.lower()
    if ext not in _PARSERS:
        raise InvalidRequest(f"{filename}: unsupported file type {ext or '(none)'!r}; supported: "
                             + ", ".join(sorted(_PARSERS)), code="unsupported_type")
    if not data:
        raise InvalidRequest(f"{filename}: the file is empty (0 bytes)", code="empty_file")
    doc_type, parser = _PARSERS[ext]
    if doc_type in ARCHIVE_TYPES and is_zip(data):
        inspect_zip(data, filename, limits, deep=True)
    try:
        doc = parser(data, filename)
    except (ZhinaoError, MemoryError):  # MemoryError: the worker reports it as a memory limit
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


# -- isolated parsing ---------------------------------------------------------------------------
#: what each parser worker imports before its memory is capped (so the cap is for the file)
WORKER_PRELOAD = ("zhinao.knowledge.ingest.html", "zhinao.knowledge.ingest.office", "zhinao.knowledge.ingest.pdf",
                  "zhinao.knowledge.ingest.qa", "zhinao.knowledge.ingest.tabular", "zhinao.knowledge.ingest.text",
                  "docx", "pptx", "openpyxl", "pypdf", "bs4", "charset_normalizer")


def parse_wire(data: bytes, filename: str, archive: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`parse_document` with a JSON-safe result: what the worker process runs and sends back."""
    doc = parse_document(data, filename, ArchiveLimits(**archive) if archive else None)
    return {"title": doc.title, "doc_type": doc.doc_type, "meta": doc.meta,
            "sections": [[s.text, s.page, s.heading, s.kind] for s in doc.sections]}


def from_wire(d: dict[str, Any]) -> ParsedDocument:
    """The :class:`ParsedDocument` back from :func:`parse_wire`'s plain data (checked, not trusted)."""
    sections = []
    for text, page, heading, kind in d.get("sections") or []:
        if kind not in ("text", "row", "qa"):
            kind = "text"
        sections.append(Section(str(text), page=int(page) if isinstance(page, int) else None,
                                heading=[str(h) for h in heading or []], kind=kind))
    meta = d.get("meta") if isinstance(d.get("meta"), dict) else {}
    return ParsedDocument(title=str(d.get("title") or ""), doc_type=str(d.get("doc_type") or ""),
                          sections=sections, meta=meta)


def parse_isolated(data: bytes, filename: str, *, archive: ArchiveLimits | None = None,
                   limits: ParseLimits | None = None, check: Callable[[], None] | None = None,
                   runner: IsolatedRunner | None = None) -> ParsedDocument:
    """Parse an untrusted file: archive limits here, then :func:`parse_document` in a bounded worker.

    The central directory of a zip-based file is checked in this process first (no
    inflation, milliseconds), so a bomb never reaches a worker; the worker checks again,
    nested archives included, and parses under ``limits`` (memory, CPU, wall clock).

    Args:
        check: called while the worker runs; when it raises (a cancelled job) the worker is
            killed at once and the exception propagates.
        runner: a specific worker pool (benchmarks measure one); default the shared one.

    Raises:
        InvalidRequest / ArchiveRejected / ParseTimeout / ParseMemoryExceeded / WorkerCrashed:
            the file fails, with a message saying why.
    """
    archive = archive or ArchiveLimits()
    limits = limits or ParseLimits()
    doc_type = doc_type_of(filename)
    if doc_type in ARCHIVE_TYPES and data and is_zip(data):
        inspect_zip(data, filename, archive, deep=False)
    runner = runner or runner_for(limits, WORKER_PRELOAD)
    wire = runner.run("zhinao.knowledge.ingest:parse_wire", data, {"filename": filename, "archive": archive.as_dict()},
                      timeout_s=limits.timeout_s, check=check, what=filename)
    return from_wire(wire)
