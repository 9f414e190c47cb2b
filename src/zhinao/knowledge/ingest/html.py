"""HTML: scripts, styles and other active content are dropped; only text is kept.

Nothing from an HTML file is ever rendered raw: passages are plain text, and the
console escapes them again when it shows them.
"""

from __future__ import annotations

from zhinao.knowledge.ingest import ParsedDocument, Section, register_parser
from zhinao.knowledge.ingest.text import decode_text

_DROP = ("script", "style", "noscript", "iframe", "object", "embed", "template", "svg", "canvas",
         "form", "button", "input", "select", "textarea", "nav", "footer", "head")
_BLOCKS = {"p", "li", "pre", "blockquote", "dd", "dt", "td", "th", "caption", "figcaption", "address"}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}


def html_to_sections(markup: str) -> tuple[str, list[Section]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_DROP):
        tag.decompose()
    path: list[tuple[int, str]] = []
    sections: list[Section] = []
    body = soup.body or soup
    for el in body.find_all(list(_HEADINGS) + list(_BLOCKS) + ["tr", "div", "section", "article"]):
        name = el.name
        if name in ("div", "section", "article"):
            # a container holding bare text (no block children) is a paragraph of its own
            if el.find(list(_HEADINGS) + list(_BLOCKS) + ["tr", "div", "section", "article", "table"]) is None:
                text = el.get_text(" ", strip=True)
                if text:
                    sections.append(Section(text, heading=[h for _, h in path]))
            continue
        if name in _HEADINGS:
            text = el.get_text(" ", strip=True)
            if text:
                level = _HEADINGS[name]
                path = [(lv, h) for lv, h in path if lv < level] + [(level, text)]
                if not title:
                    title = text
            continue
        if name == "tr":
            cells = [c.get_text(" ", strip=True) for c in el.find_all(["td", "th"])]
            if any(cells):
                sections.append(Section(" | ".join(cells), heading=[h for _, h in path], kind="row"))
            continue
        if name in ("td", "th") or el.find_parent(["p", "li", "pre", "blockquote", "td", "th"]) is not None:
            continue  # cells belong to their row; nested blocks to their parent
        text = el.get_text(" ", strip=True)
        if text:
            sections.append(Section(text, heading=[h for _, h in path]))
    if not sections:  # markup without block elements: take the text as it is
        text = body.get_text("\n", strip=True)
        if text:
            sections.append(Section(text))
    return title, sections


@register_parser("html", ".html", ".htm", ".xhtml")
def parse_html(data: bytes, filename: str) -> ParsedDocument:
    title, sections = html_to_sections(decode_text(data, filename))
    return ParsedDocument(title=title, doc_type="html", sections=sections)
