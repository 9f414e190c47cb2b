"""Decompression bombs and slow files, generated in a second or two (tests and bench/bombs.py).

A 1 GiB member is not deflated byte by byte (6 s here): one 1 MiB block of the repeated
text is deflated with a full flush, which resets the compressor, so every further block
compresses to the very same bytes and the stream is those bytes repeated. The CRC is
computed over the real content, so the archives are valid: Python's zipfile would inflate
them to the end, and the old ingestion code did exactly that.

Every generator returns plain bytes; nothing here is part of the product.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

MiB = 1024 * 1024

CONTENT_TYPES = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                 b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                 b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                 b'<Default Extension="xml" ContentType="application/xml"/>'
                 b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                 b'wordprocessingml.document.main+xml"/></Types>')
RELS = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'officeDocument" Target="word/document.xml"/></Relationships>')
W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


class Member:
    """A zip member given as already-deflated bytes (or deflated here from ``data``)."""

    def __init__(self, name: str, data: bytes | None = None, *, deflated: bytes | None = None, crc: int = 0,
                 size: int = 0, stored: bool = False):
        self.name = name
        if data is not None:
            self.size, self.crc = len(data), zlib.crc32(data)
            if stored:
                self.method, self.payload = 0, data
            else:
                c = zlib.compressobj(6, zlib.DEFLATED, -15)
                self.method, self.payload = 8, c.compress(data) + c.flush()
        else:
            self.method, self.payload, self.crc, self.size = 8, deflated or b"", crc, size


def _repeat(head: bytes, unit: bytes, total: int, tail: bytes, checksum=zlib.crc32) -> tuple[bytes, int, int]:
    """Raw deflate of ``head + unit * n + tail`` (~``total`` bytes), its checksum and its size."""
    block = unit * max(1, MiB // len(unit))
    n = max(1, (total - len(head) - len(tail)) // len(block))
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    one = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)  # the compressor is reset: every block is `one`
    last = c.compress(tail) + c.flush()
    value = checksum(head)
    for _ in range(n):
        value = checksum(block, value)
    value = checksum(tail, value)
    return first + one * n + last, value, len(head) + len(block) * n + len(tail)


def repeated_member(name: str, head: bytes, unit: bytes, total: int, tail: bytes) -> Member:
    """``head + unit * n + tail`` of about ``total`` bytes, deflated in well under a second per GiB."""
    payload, crc, size = _repeat(head, unit, total, tail)
    return Member(name, deflated=payload, crc=crc, size=size)


def build_zip(members: list[Member]) -> bytes:
    """A plain zip (no zip64: members stay under 4 GiB) from prepared members."""
    out, central = io.BytesIO(), []
    for m in members:
        name = m.name.encode()
        offset = out.tell()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0x800, m.method, 0, 0x21, m.crc,
                              len(m.payload), m.size, len(name), 0))
        out.write(name)
        out.write(m.payload)
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0x800, m.method, 0, 0x21, m.crc,
                                   len(m.payload), m.size, len(name), 0, 0, 0, 0, 0, offset) + name)
    start = out.tell()
    cd = b"".join(central)
    out.write(cd)
    n = len(members)
    if n > 0xFFFF:  # zip64 end records carry the count; the classic one says "see zip64"
        end64 = out.tell()
        out.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(cd), start))
        out.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, end64, 1))
        n = 0xFFFF
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(cd), start, 0))
    return out.getvalue()


def docx_bytes(document_xml_member: Member, extra: list[Member] = ()) -> bytes:
    return build_zip([Member("[Content_Types].xml", CONTENT_TYPES), Member("_rels/.rels", RELS),
                      document_xml_member, *extra])


def docx_bomb(unpacked: int = 1024 * MiB) -> bytes:
    """A DOCX whose word/document.xml is ~1 GiB of one repeated paragraph (~1 MB on disk)."""
    head = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ' + W + b"><w:body>"
    unit = b"<w:p><w:r><w:t>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</w:t></w:r></w:p>"
    return docx_bytes(repeated_member("word/document.xml", head, unit, unpacked, b"</w:body></w:document>"))


def normal_docx(paragraphs: int = 40) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading("资费说明", 1)
    for i in range(paragraphs):
        d.add_paragraph(f"第 {i} 条：套餐 {i} 的月租为 {10 + i} 元，流量 {i} GB。")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def normal_xlsx(rows: int = 200) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "话务"
    ws.append(["cell_id", "day", "traffic"])
    for i in range(rows):
        ws.append([f"C{i:04d}", f"2024-01-{i % 28 + 1:02d}", float(i % 17)])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _replace_member(archive: bytes, name: str, member: Member) -> bytes:
    """The same zip with one member's content swapped for ``member`` (others copied as they are)."""
    zin = zipfile.ZipFile(io.BytesIO(archive))
    members = []
    for info in zin.infolist():
        if info.filename == name:
            member.name = name
            members.append(member)
        else:
            members.append(Member(info.filename, zin.read(info.filename)))
    return build_zip(members)


def xlsx_bomb(unpacked: int = 1024 * MiB) -> bytes:
    """A real XLSX (openpyxl's) whose sheet1.xml is ~1 GiB of one repeated row (~1 MB on disk)."""
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.'
            b'org/spreadsheetml/2006/main"><sheetData>')
    unit = b'<row><c t="inlineStr"><is><t>AAAAAAAAAAAAAAAAAAAA</t></is></c><c><v>1</v></c></row>'
    return _replace_member(normal_xlsx(3), "xl/worksheets/sheet1.xml",
                           repeated_member("", head, unit, unpacked, b"</sheetData></worksheet>"))


def many_members_zip(n: int = 100_000) -> bytes:
    """A DOCX-looking zip with ``n`` empty stored members (a few MB; the central directory is the bomb)."""
    members = [Member("[Content_Types].xml", CONTENT_TYPES), Member("_rels/.rels", RELS),
               Member("word/document.xml", b"<w:document " + W + b"><w:body><w:p><w:r><w:t>x</w:t></w:r></w:p>"
                      b"</w:body></w:document>")]
    empty = Member("x", b"", stored=True)
    for i in range(n):
        m = Member.__new__(Member)
        m.name, m.method, m.payload, m.crc, m.size = f"word/media/i{i}.bin", 0, b"", empty.crc, 0
        members.append(m)
    return build_zip(members)


def nested_bomb(inner_unpacked: int = 256 * MiB) -> bytes:
    """A small DOCX embedding an XLSX whose sheet is a bomb: the outer member's ratio is ~1:1."""
    document = Member("word/document.xml", b"<w:document " + W + b"><w:body><w:p><w:r><w:t>see the sheet</w:t>"
                      b"</w:r></w:p></w:body></w:document>")
    inner = Member("word/embeddings/Microsoft_Excel_Worksheet.xlsx", xlsx_bomb(inner_unpacked), stored=True)
    return docx_bytes(document, [inner])


def lying_zip(unpacked: int = 1024 * MiB) -> bytes:
    """A DOCX whose central directory declares document.xml as 1 KiB while it inflates to ~1 GiB.

    The declared sizes pass every size and ratio check; ``zipfile`` would cut the output at
    1 KiB, but only after inflating the whole payload in one call.
    """
    real = repeated_member("word/document.xml", b'<w:document ' + W + b"><w:body>",
                           b"<w:p><w:r><w:t>lie</w:t></w:r></w:p>", unpacked, b"</w:body></w:document>")
    real.size = 1024  # declared; zipfile stops there and then fails the CRC
    return docx_bytes(real)


def _pdf(objects: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def pdf_with_content(content: bytes | None = None, *, deflated: bytes | None = None) -> bytes:
    """A one-page PDF with Helvetica and the given page content stream (FlateDecode)."""
    stream = deflated if deflated is not None else zlib.compress(content or b"")
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                 b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                 b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                 b"/Resources << /Font << /F1 5 0 R >> >> >>",
                 f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream + b"\nendstream",
                 b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"])


def normal_pdf(lines: int = 30) -> bytes:
    ops = b"BT /F1 12 Tf 72 720 Td 14 TL " + b"".join(
        f"(Tariff {i}: monthly fee {10 + i} yuan, data {i} GB.) '".encode() for i in range(lines)) + b" ET"
    return pdf_with_content(ops)


def _zlib_repeated(head: bytes, unit: bytes, total: int, tail: bytes) -> bytes:
    """A zlib stream (what FlateDecode holds) of ``head + unit * n + tail``."""
    payload, adler, _ = _repeat(head, unit, total, tail, checksum=zlib.adler32)
    return b"\x78\x9c" + payload + struct.pack(">I", adler)


def pdf_bomb(unpacked: int = 1024 * MiB) -> bytes:
    """A PDF whose page content stream inflates to ~1 GiB (~1 MB on disk)."""
    return pdf_with_content(deflated=_zlib_repeated(b"BT /F1 12 Tf 72 720 Td ", b"(A) Tj " * 16, unpacked, b" ET"))


def slow_pdf(unpacked: int = 60 * MiB) -> bytes:
    """A PDF under pypdf's 75 MB stream limit whose text extraction runs for a long time."""
    return pdf_with_content(deflated=_zlib_repeated(b"BT /F1 12 Tf 72 720 Td 14 TL ", b"(slow text) ' " * 8,
                                                    unpacked, b" ET"))


def xml_entity_bomb() -> bytes:
    """'Billion laughs' in an XLSX sheet (lxml refuses entity expansion by default; checked anyway)."""
    lol = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           + b"".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
                      for i in range(1, 10))
           + b']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row>'
           b'<c t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>')
    return _replace_member(normal_xlsx(3), "xl/worksheets/sheet1.xml", Member("", lol))
