"""The "Alignment / 对齐" console page in a real browser against the real platform.

Compare mode with the server's model (the deterministic ``echo`` model, whose three draws agree,
so the page shows one distinct answer): the reviewer writes a better answer, a tie is refused
with the server's message, the ranking is saved and comes back through the API as one pair;
then the admin builds a preference dataset from it on the datasets tab, and the training tab
shows its start form with that dataset.
"""

from __future__ import annotations

import json

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
    page.select_option("[data-testid=align-model]", "echo")  # the operator sees the test model, labelled
    with page.expect_response(lambda r: r.url.endswith("/api/alignment/compare") and r.request.method == "POST") as resp:
        page.click("[data-testid=align-sample]")
    assert resp.value.status == 201
    sent = resp.value.request.post_data_json
    assert (sent["prompt"], sent["n"], sent["model"]) == (PROMPT, 3, "echo")
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
    # the session's server is shared: other pages' feedback (thumbs, the agent's corrections) may add pairs
    assert len(mine) == 1 and mine[0]["kind"] == "preference" and mine[0]["n_train"] + mine[0]["n_eval"] >= 1
    rows = [json.loads(line) for line in live_server.api(
        "GET", "/api/alignment/datasets/console-pairs/export?split=all", token=token).text.splitlines() if line]
    ranked = [r for r in rows if r["chosen"][-1]["content"] == BETTER]
    assert len(ranked) == 1 and ranked[0]["rejected"][-1]["content"] == PROMPT, rows

    # the training tab offers it as a stage's dataset
    page.click("[data-testid=align-tab-training]")
    page.locator("[data-testid=align-start]").wait_for()
    options = page.locator("[data-testid=align-start] select[name=dataset] option").all_inner_texts()
    assert any(o.startswith("console-pairs@1") for o in options), options


def test_training_tab_draws_the_recorded_loss_and_kl_series(admin_page, live_server):
    """A job's recorded series (the trainer's progress.jsonl rows) become the loss and KL charts.

    The job names a dataset that does not exist, so it fails at once without training; the rows
    are written where the trainer's callback writes them (the job's run folder), in its format.
    """
    import json

    page = admin_page
    token = page.console_token
    r = live_server.api("POST", "/api/alignment/jobs", token=token,
                        json={"stage": "ppo", "config": {"dataset": "no-such-data", "reward_model": "no-rm",
                                                         "max_steps": 3}})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    tenant = live_server.api("GET", "/api/me", token=token).json()["tenant_id"]
    run = live_server.home / "alignment" / "runs" / f"t{tenant}" / f"job{job_id}"
    run.mkdir(parents=True, exist_ok=True)
    rows = [{"step": s, "t": s * 0.5, "loss": 1.0 / s, "objective/kl": 0.01 * s, "objective/scores": 0.1 * s}
            for s in (1, 2, 3)]
    (run / "progress.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    page.goto(f"{live_server.base_url}/#/alignment/training/{job_id}")
    page.locator("[data-testid=align-job] [data-testid=align-job-status][data-status=failed]").wait_for(timeout=30_000)
    for chart in ("loss", "reward", "kl"):
        page.locator(f"[data-testid=align-chart][data-chart={chart}] .echart canvas").wait_for()
    assert "no-such-data" in page.locator("[data-testid=align-job]").inner_text()
    assert page.locator("[data-testid=align-jobs] tbody tr").count() >= 1


def test_a_member_gets_compare_mode_only_in_english(page, live_server):
    """Members rank answers but do not train: only the compare tab, and the page in English."""
    import json

    r = live_server.api("POST", "/api/users", json={"username": "e2e-align-member", "password": "member-pass-123",
                                                   "role": "member"})
    assert r.status_code == 201, r.text
    token = live_server.login("e2e-align-member", "member-pass-123")
    page.add_init_script(f"localStorage.setItem('zhinao.token', {json.dumps(token)});"
                         "localStorage.setItem('zhinao.lang', 'en');")
    page.goto(live_server.base_url + "/#/alignment/training")  # a tab members do not have: compare instead
    page.locator("[data-testid=align-prompt]").wait_for()
    assert page.locator("[data-testid=page-title]").inner_text().strip() == "Alignment"
    assert page.locator("[data-testid^=align-tab-]").all_inner_texts() == ["Compare"]
    page.fill("[data-testid=align-prompt]", "Is roaming free in the EU?")
    page.click("[data-testid=align-sample]")
    page.locator("[data-testid=align-answer]").first.wait_for()
    assert live_server.api("POST", "/api/alignment/jobs", token=token,
                           json={"stage": "sft", "config": {"dataset": "x"}}).status_code == 403
