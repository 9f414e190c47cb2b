"""PDF through its text layer (pypdf), one section per page paragraph; no OCR.

pypdf stops inflating a stream past its own output limit (75 MB) and raises
``LimitReachedError``; that is reported as what it is, a file that unpacks too far, not
as corruption. Time spent on huge content streams is bounded by the parser worker.
"""

from __future__ import annotations

import io
import re

from zhinao.errors import InvalidRequest
from zhinao.knowledge.ingest import ParsedDocument, Section, register_parser
from zhinao.safety.archive import ArchiveRejected


def _too_large(filename: str, e: Exception) -> ArchiveRejected:
    from pypdf import filters

    limit = getattr(filters, "ZLIB_MAX_OUTPUT_LENGTH", 75_000_000) / 1e6
    return ArchiveRejected(f"{filename}: a compressed stream in this PDF unpacks to more than {limit:.0f} MB (the "
                           "reader's limit per stream); refused as a decompression bomb — split or re-save the PDF",
                           code="unpacked_too_large")


@register_parser("pdf", ".pdf")
def parse_pdf(data: bytes, filename: str) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        from pypdf.errors import LimitReachedError
    except ImportError:  # pypdf < 3.17 has no output limits: the worker's memory cap is the only bound
        class LimitReachedError(Exception):  # noqa: N818  (never raised)
            pass

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise InvalidRequest(f"{filename}: not a PDF (missing %PDF header); the file is corrupted or mislabelled",
                             code="corrupt_file")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = 0
            if not ok:
                raise InvalidRequest(f"{filename}: the PDF is encrypted (password protected); "
                                     "upload a decrypted copy", code="encrypted_file")
        pages = list(reader.pages)
    except InvalidRequest:
        raise
    except LimitReachedError as e:
        raise _too_large(filename, e) from e
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise InvalidRequest(f"{filename}: the PDF is corrupted and cannot be read: {e}", code="corrupt_file") from e
    sections: list[Section] = []
    for i, page in enumerate(pages, 1):
        try:
            text = page.extract_text() or ""
        except LimitReachedError as e:
            raise _too_large(filename, e) from e
        except Exception as e:  # one broken page must not lose the others
            raise InvalidRequest(f"{filename}: page {i} cannot be read: {e}", code="corrupt_file") from e
        text = re.sub(r"[ \t]+\n", "\n", text)
        for para in re.split(r"\n\s*\n", text):
            para = _join_lines(para)
            if para:
                sections.append(Section(para, page=i))
    if not sections:
        raise InvalidRequest(f"{filename}: the PDF has no text layer (a scan?); OCR it first", code="no_text")
    title = ""
    try:
        title = (reader.metadata.title or "") if reader.metadata else ""
    except Exception:
        pass
    return ParsedDocument(title=str(title).strip(), doc_type="pdf", sections=sections)


def _join_lines(text: str) -> str:
    """Rejoin lines broken by layout: no space between CJK characters, one between words."""
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    out = ""
    for ln in lines:
        if out and not (_cjk(out[-1]) and _cjk(ln[0])):
            out += " "
        out += ln
    return out


def _cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef"
