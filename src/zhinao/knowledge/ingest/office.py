"""Word (DOCX) and PowerPoint (PPTX): headings become the heading path, slides pages."""

from __future__ import annotations

import io
import re
import zipfile

from zhinao.errors import InvalidRequest
from zhinao.knowledge.ingest import ParsedDocument, Section, register_parser


def _open_zip(data: bytes, filename: str, kind: str) -> None:
    if data[:4] == b"\xd0\xcf\x11\xe0":  # OLE2: encrypted OOXML or the old binary format
        raise InvalidRequest(f"{filename}: the {kind} is encrypted or in the old binary format; "
                             "save it as an unprotected .docx/.pptx/.xlsx", code="encrypted_file")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise InvalidRequest(f"{filename}: the {kind} is corrupted (not a valid Office Open XML zip)",
                             code="corrupt_file")


@register_parser("docx", ".docx")
def parse_docx(data: bytes, filename: str) -> ParsedDocument:
    import docx

    _open_zip(data, filename, "DOCX")
    d = docx.Document(io.BytesIO(data))
    path: list[tuple[int, str]] = []
    sections: list[Section] = []
    title = (d.core_properties.title or "").strip()
    body = d.element.body
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            p = Paragraph(child, d)
            text = p.text.strip()
            if not text:
                continue
            style = (p.style.name if p.style is not None else "") or ""
            m = re.match(r"(?:Heading|标题)\s*(\d)", style)
            if style == "Title":
                title = title or text
                continue
            if m:
                level = int(m.group(1))
                path = [(lv, h) for lv, h in path if lv < level] + [(level, text)]
                continue
            sections.append(Section(text, heading=[h for _, h in path]))
        elif tag == "tbl":
            table = Table(child, d)
            rows = [[c.text.strip() for c in r.cells] for r in table.rows]
            if not rows:
                continue
            header = rows[0]
            for r in rows[1:] or rows:
                sections.append(Section(row_text(header, r) if len(rows) > 1 else " | ".join(r),
                                        heading=[h for _, h in path], kind="row"))
    if not title and path:
        title = path[0][1]
    return ParsedDocument(title=title, doc_type="docx", sections=sections)


def row_text(header: list[str], row: list[str]) -> str:
    """A table row as self-contained text: ``列名：值；列名：值``."""
    parts = []
    for i, v in enumerate(row):
        v = str(v).strip()
        if not v:
            continue
        h = str(header[i]).strip() if i < len(header) and header[i] is not None else ""
        parts.append(f"{h}: {v}" if h and h != v else v)
    return "; ".join(parts)


@register_parser("pptx", ".pptx")
def parse_pptx(data: bytes, filename: str) -> ParsedDocument:
    from pptx import Presentation

    _open_zip(data, filename, "PPTX")
    prs = Presentation(io.BytesIO(data))
    sections: list[Section] = []
    title = (prs.core_properties.title or "").strip()
    for i, slide in enumerate(prs.slides, 1):
        slide_title = ""
        if slide.shapes.title is not None and slide.shapes.title.has_text_frame:
            slide_title = slide.shapes.title.text_frame.text.strip()
        if i == 1 and not title:
            title = slide_title
        for shape in slide.shapes:
            if shape == slide.shapes.title:
                continue
            if shape.has_text_frame:
                text = "\n".join(p.text for p in shape.text_frame.paragraphs if p.text.strip())
                if text.strip():
                    sections.append(Section(text.strip(), page=i, heading=[slide_title] if slide_title else []))
            if getattr(shape, "has_table", False) and shape.has_table:
                rows = [[c.text.strip() for c in r.cells] for r in shape.table.rows]
                for r in rows[1:]:
                    sections.append(Section(row_text(rows[0], r), page=i,
                                            heading=[slide_title] if slide_title else [], kind="row"))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                sections.append(Section(notes, page=i, heading=[slide_title] if slide_title else []))
    return ParsedDocument(title=title, doc_type="pptx", sections=sections)
