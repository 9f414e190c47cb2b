"""The Knowledge console page in a real browser against the real platform (hash embedder, echo model)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MNP = "# 携号转网\n\n## 办理条件\n\n号码在网满 120 天，且没有欠费。\n\n## 费用\n\n携号转网免收手续费。".encode()
MNP_V2 = "# 携号转网\n\n## 办理条件\n\n号码在网满 90 天即可办理。\n\n## 费用\n\n携号转网免收手续费。".encode()
XSS = b"<html><body><script>window.__pwned = 1</script><p>IPTV <b>LAN2</b> port &lt;img src=x onerror=alert(1)&gt;</p></body></html>"


def test_knowledge_page_upload_ask_search_delete(admin_page, live_server):
    from playwright.sync_api import expect

    page = admin_page
    page.click("[data-testid=nav] a[data-page=knowledge]")
    page.wait_for_selector("[data-testid=kb-create]")
    page.fill("[data-testid=kb-create] input[name=name]", "e2e-kb")
    page.click("[data-testid=kb-create] button[type=submit]")
    page.wait_for_selector("[data-testid=kb-files]")
    # the session's browser may still show a collection an earlier test made: work in ours
    page.wait_for_selector("[data-testid=kb-collection] option[value=e2e-kb]", state="attached")
    page.select_option("[data-testid=kb-collection]", "e2e-kb")
    page.wait_for_selector("[data-testid=kb-files]")
    page.set_input_files("[data-testid=kb-files]", [
        {"name": "mnp.md", "mimeType": "text/markdown", "buffer": MNP},
        {"name": "iptv.html", "mimeType": "text/html", "buffer": XSS},
        {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""},
        {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7 truncated"},
    ])
    page.fill("[data-testid=kb-tags]", "policy")
    page.click("[data-testid=kb-upload]")
    page.wait_for_selector("[data-testid=kb-docs] [data-status=ready] >> nth=1", timeout=180_000)  # ingestion ends with the fusion choice
    expect(page.locator("[data-testid=kb-upload-status]")).to_contain_text("完成")
    # the empty file was refused at upload; the corrupted PDF failed while indexing; the others went on
    assert page.locator("[data-testid=kb-docs] tbody tr").count() == 3
    errors = page.locator("[data-testid=kb-upload-errors]")
    expect(errors.locator("li[data-source='empty.txt']")).to_contain_text("empty")
    expect(errors.locator("li[data-source='broken.pdf']")).to_contain_text("corrupted")
    expect(page.locator("[data-testid=kb-docs] tbody tr", has_text="broken.pdf").locator("[data-status=failed]")) \
        .to_have_count(1)
    progress = page.locator("[data-testid=kb-progress]")
    assert progress.get_attribute("aria-valuenow") == "100" and progress.is_visible()
    row = page.locator("[data-testid=kb-docs] tbody tr", has_text="mnp.md")
    assert "就绪" in row.inner_text() and "携号转网" in row.inner_text()  # status and title columns

    # drag and drop: a real drop event carrying a file, as the browser makes it
    page.evaluate("""([name, text]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([text], name, { type: "text/plain" }));
        document.querySelector("[data-testid=kb-drop]").dispatchEvent(
            new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""", ["outage.txt", "停机保号\n\n停机保号业务每月收取 5 元功能费。"])
    expect(page.locator("[data-testid=kb-docs] tbody tr", has_text="outage.txt")).to_have_count(1, timeout=120_000)
    expect(page.locator("[data-testid=kb-docs] tbody tr", has_text="outage.txt").locator("[data-status=ready]")) \
        .to_have_count(1, timeout=120_000)

    # replace: the document keeps its row; the new text answers, the old one never again
    with page.expect_file_chooser() as chooser:
        row.locator("[data-testid=kb-replace]").click()
    chooser.value.set_files({"name": "mnp.md", "mimeType": "text/markdown", "buffer": MNP_V2})
    expect(page.locator("[data-testid=kb-upload-status]")).to_contain_text("replaced 1", timeout=120_000)
    assert page.locator("[data-testid=kb-docs] tbody tr").count() == 4
    page.fill("[data-testid=kb-search-q]", "携号转网 在网 天")
    page.click("[data-testid=kb-search]")
    expect(page.locator("[data-testid=kb-search-results]")).to_contain_text("90 天")
    assert "120" not in page.locator("[data-testid=kb-search-results]").inner_text()

    page.fill("[data-testid=kb-question]", "携号转网办理条件")
    page.click("[data-testid=kb-ask]")
    page.wait_for_selector("[data-testid=kb-citations] li")
    # extractive answer (the default, issue 11): the replaced version's sentence, never the old one
    expect(page.locator("[data-testid=kb-answer]")).to_contain_text("90 天")
    assert "120" not in page.locator("[data-testid=kb-answer]").inner_text()
    assert "携号转网" in page.locator("[data-testid=kb-citations] li").first.inner_text()
    page.locator("[data-testid=kb-citations] li a").first.click()  # the citation opens its passage
    page.wait_for_selector(".modal")
    passage = page.locator(".modal").inner_text()
    assert ("90 天" in passage or "手续费" in passage) and "120" not in passage
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
    expect(page.locator("[data-testid=kb-docs] tbody tr")).to_have_count(3)
    docs = live_server.api("GET", "/api/kb/e2e-kb/documents", token=page.console_token).json()
    assert sorted(d["source"] for d in docs) == ["broken.pdf", "mnp.md", "outage.txt"]
    mnp = next(d for d in docs if d["source"] == "mnp.md")
    assert mnp["tags"] == ["policy"] and mnp["version"] == 2
