"""The Knowledge console page in a real browser against the real platform (hash embedder, echo model)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MNP = "# 携号转网\n\n## 办理条件\n\n号码在网满 120 天，且没有欠费。\n\n## 费用\n\n携号转网免收手续费。".encode()
XSS = b"<html><body><script>window.__pwned = 1</script><p>IPTV <b>LAN2</b> port &lt;img src=x onerror=alert(1)&gt;</p></body></html>"


def test_knowledge_page_upload_ask_search_delete(admin_page, live_server):
    from playwright.sync_api import expect

    page = admin_page
    page.click("[data-testid=nav] a[data-page=knowledge]")
    page.wait_for_selector("[data-testid=kb-create]")
    page.fill("[data-testid=kb-create] input[name=name]", "e2e-kb")
    page.click("[data-testid=kb-create] button[type=submit]")
    page.wait_for_selector("[data-testid=kb-files]")
    page.set_input_files("[data-testid=kb-files]", [
        {"name": "mnp.md", "mimeType": "text/markdown", "buffer": MNP},
        {"name": "iptv.html", "mimeType": "text/html", "buffer": XSS},
        {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""},
    ])
    page.fill("[data-testid=kb-tags]", "policy")
    page.click("[data-testid=kb-upload]")
    page.wait_for_selector("[data-testid=kb-docs] [data-status=ready] >> nth=1", timeout=60_000)
    assert page.locator("[data-testid=kb-upload-status]").inner_text().startswith("完成")
    assert page.locator("[data-testid=kb-docs] tbody tr").count() == 2  # the empty file was refused

    page.fill("[data-testid=kb-question]", "携号转网办理条件")
    page.click("[data-testid=kb-ask]")
    page.wait_for_selector("[data-testid=kb-citations] li")
    expect(page.locator("[data-testid=kb-answer]")).to_have_text("携号转网办理条件")  # echo model
    assert "携号转网" in page.locator("[data-testid=kb-citations] li").first.inner_text()
    page.locator("[data-testid=kb-citations] li a").first.click()  # the citation opens its passage
    page.wait_for_selector(".modal")
    assert "120" in page.locator(".modal").inner_text() or "手续费" in page.locator(".modal").inner_text()
    page.keyboard.press("Escape")
    page.locator(".modal-bg").click(position={"x": 5, "y": 5})

    page.fill("[data-testid=kb-search-q]", "IPTV LAN2 port")
    page.click("[data-testid=kb-search]")
    page.wait_for_selector("[data-testid=kb-search-results] mark")
    text = page.locator("[data-testid=kb-search-results]").inner_text()
    assert "iptv.html" in text and "<img" in text  # shown as text, never as markup
    assert page.locator("script", has_text="__pwned").count() == 0
    assert page.locator("[data-testid=kb-search-results] img").count() == 0

    page.locator("[data-testid=kb-docs] tbody tr", has_text="iptv.html").locator("[data-testid=kb-delete]").click()
    page.click("[data-testid=confirm-ok]")
    expect(page.locator("[data-testid=kb-docs] tbody tr")).to_have_count(1)
    docs = live_server.api("GET", "/api/kb/e2e-kb/documents", token=page.console_token).json()
    assert [d["source"] for d in docs] == ["mnp.md"] and docs[0]["tags"] == ["policy"]
