"""The "Alignment / 对齐" console page in a real browser against the real platform.

Compare mode with the server's model (the deterministic ``echo`` model, whose three draws agree,
so the page shows one distinct answer): the reviewer writes a better answer, a tie is refused
with the server's message, the ranking is saved and comes back through the API as one pair;
then the admin builds a preference dataset from it on the datasets tab, and the training tab
shows its start form with that dataset.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PROMPT = "宽带可以暂停吗？ Can I pause my broadband?"
BETTER = "可以：每年最多暂停 3 个月，在营业厅或 App 办理。 Yes, up to 3 months a year, in a shop or the app."


def test_compare_mode_ranks_and_saves_then_builds_a_dataset(admin_page, live_server):
    page = admin_page
    token = page.console_token
    page.goto(live_server.base_url + "/#/alignment/compare")
    page.locator("[data-testid=nav] a[data-page=alignment]").wait_for()
    assert page.locator("[data-testid=page-title]").inner_text().strip() == "对齐"

    page.fill("[data-testid=align-prompt]", PROMPT)
    page.select_option("[data-testid=align-n]", "3")
    with page.expect_response(lambda r: r.url.endswith("/api/alignment/compare") and r.request.method == "POST") as resp:
        page.click("[data-testid=align-sample]")
    assert resp.value.status == 201
    answers = page.locator("[data-testid=align-answer]")
    answers.first.wait_for()
    assert answers.count() == 1  # echo: three draws, one text
    assert answers.first.locator("[data-testid=align-answer-text]").inner_text().strip() == PROMPT

    page.fill("[data-testid=align-write]", BETTER)
    page.click("[data-testid=align-add]")
    page.locator("[data-testid=align-answer][data-source=reviewer]").wait_for()
    assert answers.count() == 2
    model_sel = page.locator("[data-testid=align-answer][data-source=model] [data-testid=align-rank]")
    written_sel = page.locator("[data-testid=align-answer][data-source=reviewer] [data-testid=align-rank]")

    # a tie is refused with the server's message, nothing saved
    model_sel.select_option("1")
    written_sel.select_option("1")
    page.click("[data-testid=align-save]")
    page.locator(".toast.error").filter(has_text="tie").wait_for()
    assert live_server.api("GET", "/api/alignment/compare?ranked=true", token=token).json() == []

    model_sel.select_option("2")
    page.click("[data-testid=align-save]")
    page.locator("[data-testid=align-saved]").filter(has_text="1").wait_for()
    saved = live_server.api("GET", "/api/alignment/compare?ranked=true", token=token).json()
    assert len(saved) == 1 and saved[0]["pairs"] == 1
    by_id = {a["id"]: a for a in saved[0]["answers"]}
    assert [by_id[i]["text"] for i in saved[0]["ranking"]] == [BETTER, PROMPT]
    page.locator("[data-testid=align-recent] tbody tr").first.wait_for()

    # the admin turns the ranking into a preference dataset on the datasets tab
    page.click("[data-testid=align-tab-datasets]")
    page.locator("[data-testid=align-build]").wait_for()
    page.fill("[data-testid=align-build] input[name=name]", "console-pairs")
    page.click("[data-testid=align-build] button[type=submit]")
    page.locator("[data-testid=align-datasets] tbody tr").filter(has_text="console-pairs@1").wait_for()
    ds = live_server.api("GET", "/api/alignment/datasets", token=token).json()
    mine = [d for d in ds if d["name"] == "console-pairs"]
    assert len(mine) == 1 and mine[0]["kind"] == "preference" and mine[0]["n_train"] + mine[0]["n_eval"] == 1

    # the training tab offers it as a stage's dataset
    page.click("[data-testid=align-tab-training]")
    page.locator("[data-testid=align-start]").wait_for()
    options = page.locator("[data-testid=align-start] select[name=dataset] option").all_inner_texts()
    assert any(o.startswith("console-pairs@1") for o in options), options
