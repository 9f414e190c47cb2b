"""The Knowledge page's citations in a real browser: section heading and page per citation, the cited
sentence marked (<mark>) inside its passage, zh and en (real platform, hash embedder, echo model)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FAQ = ("# 星河通信常见问题\n\n## 亲情号码\n\n亲情号码最多可以添加 4 个成员。成员之间互相通话免费。\n\n"
       "## 停机保号\n\n停机保号每月收取 3 元功能费。保号期最长 12 个月，到期后自动复机。\n").encode()


def _ask(page, question: str):
    page.fill("[data-testid=kb-question]", question)
    page.click("[data-testid=kb-ask]")
    page.wait_for_selector("[data-testid=kb-citations] li [data-testid=kb-cite-section]")
    return page.locator("[data-testid=kb-citations] li").first


def test_citations_show_section_and_the_cited_sentence_marked(admin_page, live_server):
    from playwright.sync_api import expect

    page, token = admin_page, admin_page.console_token
    r = live_server.api("POST", "/api/kb/collections", token=token, json={"name": "cite-kb"})
    assert r.status_code == 201, r.text
    r = live_server.api("POST", "/api/kb/cite-kb/documents", token=token, data={"wait": "true"},
                        files=[("files", ("faq.md", FAQ, "text/markdown"))])
    assert r.status_code == 202 and r.json()["job"]["status"] == "succeeded", r.text
    page.click("[data-testid=nav] a[data-page=knowledge]")
    page.wait_for_selector("[data-testid=kb-collection]")
    page.select_option("[data-testid=kb-collection]", "cite-kb")
    page.wait_for_selector("[data-testid=kb-question]")

    first = _ask(page, "停机保号每月收取多少功能费？")
    expect(first.locator("[data-testid=kb-cite-section]")).to_have_text(" · 停机保号")  # the section, not only the file
    mark = first.locator("mark")
    expect(mark).to_have_count(1)
    sentence = mark.inner_text()
    assert sentence in FAQ.decode() and "停机保号" in sentence  # a sentence of the cited passage, verbatim
    assert mark.get_attribute("title") == "引用的句子"
    excerpt = first.locator("[data-testid=kb-cite-excerpt]").inner_text()
    assert sentence in excerpt and len(excerpt) > len(sentence)  # marked inside its passage, not alone

    page.click("[data-testid=lang-switch] >> nth=0 >> [data-lang=en]")
    page.wait_for_selector("[data-testid=kb-question]")
    first = _ask(page, "亲情号码最多可以添加几个成员？")
    expect(first.locator("[data-testid=kb-cite-section]")).to_have_text(" · 亲情号码")
    assert first.locator("mark").get_attribute("title") == "Cited sentence"
    assert first.locator("mark").inner_text() in FAQ.decode()
    page.click("[data-testid=lang-switch] >> nth=0 >> [data-lang=zh]")
