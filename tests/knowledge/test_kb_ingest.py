"""Parsers on real files of every supported type, and their clear per-file errors."""

from __future__ import annotations

import io
import json

import pytest

from zhinao.errors import InvalidRequest
from zhinao.knowledge.ingest import parse_document


def make_pdf(pages: list[str]) -> bytes:
    """A minimal, valid PDF with a text layer (Helvetica, one text line per page)."""
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
        content_id = len(objs)
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
                    "/Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(f"{len(objs)} 0 R")
    objs[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n{o}\nendobj\n".encode())
    xref = out.tell()
    out.write(f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def test_pdf_pages_are_kept():
    doc = parse_document(make_pdf(["Roaming day pass costs 25 yuan.", "Number portability is free."]), "guide.pdf")
    assert doc.doc_type == "pdf"
    assert [(s.page, s.text) for s in doc.sections] == [(1, "Roaming day pass costs 25 yuan."),
                                                       (2, "Number portability is free.")]


def encrypted_pdf() -> bytes:
    """A real password-protected PDF (pypdf encryption)."""
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter()
    for page in PdfReader(io.BytesIO(make_pdf(["secret tariff"]))).pages:
        w.add_page(page)
    w.encrypt(user_password="s3cret", owner_password="owner")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def test_encrypted_pdf_gets_a_clear_error():
    with pytest.raises(InvalidRequest, match="encrypted") as e:
        parse_document(encrypted_pdf(), "locked.pdf")
    assert e.value.code == "encrypted_file"


@pytest.mark.parametrize("data", [b"%PDF-1.4\n1 0 obj garbage", b"not a pdf at all", make_pdf(["ok"])[:60]])
def test_corrupted_pdf_gets_a_clear_error(data):
    with pytest.raises(InvalidRequest, match="locked.pdf|broken.pdf") as e:
        parse_document(data, "broken.pdf")
    assert e.value.code in ("corrupt_file", "no_text")


def test_zero_byte_and_unsupported():
    with pytest.raises(InvalidRequest, match="empty") as e:
        parse_document(b"", "a.txt")
    assert e.value.code == "empty_file"
    with pytest.raises(InvalidRequest, match="unsupported file type '.exe'"):
        parse_document(b"MZ\x90", "setup.exe")


def test_gbk_and_gb18030_text_is_decoded():
    text = "宽带故障排查\n\n光猫 LOS 灯红色闪烁表示光信号中断。"
    for enc in ("gbk", "gb18030", "utf-8", "utf-16"):
        doc = parse_document(text.encode(enc), "faults.txt")
        assert "光信号中断" in doc.sections[-1].text, enc
        assert doc.title == "宽带故障排查"


def test_txt_numbered_headings_become_heading_path():
    doc = parse_document("一、报修\n拨打 10010 报修。\n\n二、收费\n上门免费。".encode(), "a.txt")
    assert [(s.heading, s.text) for s in doc.sections] == [(["一、报修"], "拨打 10010 报修。"),
                                                          (["二、收费"], "上门免费。")]


def test_markdown_heading_path_and_front_matter():
    md = "---\nsample: true\n---\n# 资费\n\n## 副卡\n\n每张 **10 元**。\n\n### 限制\n\n最多 4 张。\n\n## 结转\n\n可结转。"
    doc = parse_document(md.encode(), "p.md")
    assert doc.title == "资费"
    assert [(s.heading, s.text) for s in doc.sections] == [
        (["资费", "副卡"], "每张 10 元。"), (["资费", "副卡", "限制"], "最多 4 张。"), (["资费", "结转"], "可结转。")]


def test_html_scripts_and_styles_are_stripped():
    page = ("<html><head><title>T</title><script>alert('x')</script><style>p{}</style></head><body>"
            "<h1>Roaming</h1><p onclick=\"evil()\">Day pass <b>25</b> yuan.</p><script>steal()</script>"
            "<iframe src='x'></iframe><table><tr><th>Zone</th><th>Price</th></tr><tr><td>Asia</td><td>25</td></tr>"
            "</table><div>Bare div text.</div></body></html>")
    doc = parse_document(page.encode(), "r.html")
    text = " ".join(s.text for s in doc.sections)
    assert "alert" not in text and "steal" not in text and "<" not in text and "evil" not in text
    assert "Day pass 25 yuan." in text and "Asia | 25" in text and "Bare div text." in text
    assert doc.title == "T"
    assert all(s.heading == ["Roaming"] for s in doc.sections)


def test_csv_rows_keep_column_names_gbk():
    data = "套餐,月租\n畅享59,59\n畅享99,99\n".encode("gbk")
    doc = parse_document(data, "plans.csv")
    assert [s.text for s in doc.sections] == ["套餐: 畅享59; 月租: 59", "套餐: 畅享99; 月租: 99"]
    assert all(s.kind == "row" for s in doc.sections)


def test_jsonl_qa_pairs_and_bad_line():
    lines = [json.dumps({"question": "补卡收费吗？", "answer": "免费。", "category": "安全"}, ensure_ascii=False),
             json.dumps({"q": "Late fee?", "a": "0.1% per day."})]
    doc = parse_document("\n".join(lines).encode(), "faq.jsonl")
    assert [s.text for s in doc.sections] == ["问：补卡收费吗？\n答：免费。", "Q: Late fee?\nA: 0.1% per day."]
    assert doc.sections[0].heading == ["安全"] and doc.sections[0].kind == "qa"
    with pytest.raises(InvalidRequest, match="line 2"):
        parse_document(lines[0].encode() + b"\n{not json", "faq.jsonl")


def test_docx_headings_and_tables():
    import docx

    d = docx.Document()
    d.add_heading("携号转网", level=1)
    d.add_heading("条件", level=2)
    d.add_paragraph("在网满 120 天。")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "项目", "费用"
    t.cell(1, 0).text, t.cell(1, 1).text = "手续费", "免费"
    buf = io.BytesIO()
    d.save(buf)
    doc = parse_document(buf.getvalue(), "mnp.docx")
    assert doc.title == "携号转网"
    assert [(s.heading, s.text, s.kind) for s in doc.sections] == [
        (["携号转网", "条件"], "在网满 120 天。", "text"), (["携号转网", "条件"], "项目: 手续费; 费用: 免费", "row")]


def test_pptx_slides_are_pages():
    from pptx import Presentation

    prs = Presentation()
    for title, body in [("5G 新通话", "无需下载 App。"), ("资费", "每月 60 分钟免费。")]:
        s = prs.slides.add_slide(prs.slide_layouts[1])
        s.shapes.title.text = title
        s.placeholders[1].text = body
    buf = io.BytesIO()
    prs.save(buf)
    doc = parse_document(buf.getvalue(), "deck.pptx")
    assert [(s.page, s.heading, s.text) for s in doc.sections] == [(1, ["5G 新通话"], "无需下载 App。"),
                                                                  (2, ["资费"], "每月 60 分钟免费。")]


def test_xlsx_rows_per_sheet():
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "套餐"
    ws.append(["名称", "月租"])
    ws.append(["畅享59", 59])
    buf = io.BytesIO()
    wb.save(buf)
    doc = parse_document(buf.getvalue(), "plans.xlsx")
    assert [(s.page, s.heading, s.text) for s in doc.sections] == [(1, ["套餐"], "名称: 畅享59; 月租: 59")]


def test_fake_office_file_is_reported_corrupt():
    with pytest.raises(InvalidRequest, match="corrupted") as e:
        parse_document(b"this is not a zip", "report.docx")
    assert e.value.code == "corrupt_file"
