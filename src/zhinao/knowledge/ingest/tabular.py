"""CSV and XLSX, row-aware: each row becomes one self-contained passage with its column names."""

from __future__ import annotations

import csv
import io

from zhinao.knowledge.ingest import ParsedDocument, Section, register_parser
from zhinao.knowledge.ingest.office import _open_zip, row_text
from zhinao.knowledge.ingest.text import decode_text


@register_parser("csv", ".csv", ".tsv")
def parse_csv(data: bytes, filename: str) -> ParsedDocument:
    text = decode_text(data, filename)
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;|")
    except csv.Error:
        dialect = csv.excel_tab if filename.lower().endswith(".tsv") else csv.excel
    rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    if not rows:
        return ParsedDocument(title="", doc_type="csv", sections=[])
    header = rows[0]
    sections = [Section(row_text(header, r), heading=[], kind="row") for r in rows[1:]]
    return ParsedDocument(title="", doc_type="csv", sections=sections, meta={"columns": header})


@register_parser("xlsx", ".xlsx", ".xlsm")
def parse_xlsx(data: bytes, filename: str) -> ParsedDocument:
    import openpyxl

    _open_zip(data, filename, "XLSX")
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    sections: list[Section] = []
    for page, ws in enumerate(wb.worksheets, 1):
        rows = [["" if v is None else str(v) for v in r] for r in ws.iter_rows(values_only=True)]
        rows = [r for r in rows if any(c.strip() for c in r)]
        if not rows:
            continue
        header = rows[0]
        for r in rows[1:]:
            sections.append(Section(row_text(header, r), page=page, heading=[ws.title], kind="row"))
    title = (wb.properties.title or "").strip() if wb.properties else ""
    wb.close()
    return ParsedDocument(title=title, doc_type="xlsx", sections=sections)
