"""The "Ask your data / 问数" console page in a real browser against the real platform.

Asks the demo workspace a question, sees the result table, the interactive chart and the SQL
in the code panel, switches the chart type, accepts the answer (the example library grows —
checked through the API), asks a follow-up in the same session, and corrects an answer
through the editor (tried in the sandbox first).

The session's server runs the deterministic ``echo`` model, which cannot write SQL; the
question is therefore one the agent answers without a model — a SELECT typed as the
question, which it runs in the sandbox as it is — and the follow-up only has to keep the
session (its answer, from the echo model, says it could not answer).
"""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTION = "SELECT Contract, COUNT(*) AS customers FROM telco GROUP BY Contract ORDER BY Contract"


def _ask(page, text: str) -> dict:
    """Type a question, send it, and return the JSON body the page posted."""
    page.fill("[data-testid=agent-question]", text)
    with page.expect_request(lambda r: r.url.endswith("/api/agent/ask") and r.method == "POST") as req:
        page.click("[data-testid=agent-ask]")
    return json.loads(req.value.post_data or "{}")


def test_agent_page_asks_shows_table_chart_sql_and_accepts(admin_page, live_server):
    page = admin_page
    token = page.console_token
    r = live_server.api("POST", "/api/analytics/demo", token=token)
    assert r.status_code == 200, r.text
    page.goto(live_server.base_url + "/#/agent/demo")
    page.locator("[data-testid=nav] a[data-page=agent]").wait_for()
    assert page.locator("[data-testid=page-title]").inner_text().strip() == "问数"
    assert page.locator("[data-testid=agent-ws]").input_value() == "demo"

    body = _ask(page, QUESTION)
    assert body["workspace"] == "demo" and body["question"] == QUESTION and "session_id" not in body
    turn = page.locator("[data-testid=agent-turn]").first
    turn.locator("[data-testid=agent-table]").wait_for(timeout=60_000)
    # the table: one row per contract type, with the counts of the real data
    rows = turn.locator("[data-testid=agent-table] tbody tr")
    assert rows.count() == 3
    cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(3)]
    assert [c[0] for c in cells] == ["Month-to-month", "One year", "Two year"]
    counts = [int(c[1].replace(",", "")) for c in cells]
    truth = live_server.api("POST", "/api/analytics/workspaces/demo/query", token=token,
                            json={"sql": QUESTION}).json()["rows"]
    assert counts == [r[1] for r in truth] and sum(counts) == 7043
    assert turn.locator("[data-testid=agent-answer]").inner_text().strip()
    # the interactive chart (ECharts on a canvas) and the SQL in the code panel
    turn.locator("[data-testid=agent-chart] .echart canvas").wait_for()
    assert turn.locator("[data-testid=agent-chart] .echart").get_attribute("data-type") == "bar"
    code = turn.locator("[data-testid=agent-code-text]")
    assert code.get_attribute("data-kind") == "sql" and "GROUP BY Contract" in code.inner_text()
    turn.locator("[data-testid=agent-chart-kind]").select_option("line")
    turn.locator("[data-testid=agent-chart] .echart[data-type=line] canvas").wait_for()
    turn.locator("[data-testid=agent-copy]").click()
    page.wait_for_selector(".toast")  # copied, or the clipboard refused: either way the user is told

    # Accept: the question and its SQL join the workspace's example library
    answer_id = turn.get_attribute("data-answer-id")
    assert answer_id and answer_id.isdigit()
    turn.locator("[data-testid=agent-accept]").click()
    turn.locator("[data-testid=agent-verdict][data-status=accepted]").wait_for()
    examples = live_server.api("GET", "/api/agent/examples?workspace=demo", token=token).json()
    mine = [e for e in examples if e["question"] == QUESTION]
    assert mine and mine[0]["source"] == "accepted" and "GROUP BY Contract" in (mine[0]["sql"] or "")
    stored = live_server.api("GET", f"/api/agent/answers/{answer_id}", token=token).json()
    assert stored["status"] == "accepted"

    # a follow-up goes into the same session
    session = page.locator("[data-testid=agent-session]").get_attribute("data-session")
    assert session
    follow = _ask(page, "now only for fiber customers")
    assert follow["session_id"] == session
    second = page.locator("[data-testid=agent-turn]").nth(1)
    second.locator("[data-testid=agent-answer], [data-testid=agent-error]").first.wait_for(timeout=120_000)
    assert second.locator("[data-testid=agent-answer]").count() == 1, second.inner_text()

    # Correct: the editor holds the SQL; a corrected statement is tried, then recorded
    turn.locator("[data-testid=agent-correct]").click()
    dialog = page.locator("[data-testid=agent-correct-dialog]")
    sql_box = dialog.locator("[data-testid=agent-correct-sql]")
    assert "GROUP BY Contract" in sql_box.input_value()
    corrected = ("SELECT Contract, COUNT(*) AS customers FROM telco WHERE InternetService = 'Fiber optic' "
                 "GROUP BY Contract ORDER BY Contract")
    sql_box.fill(corrected)
    dialog.locator("[data-testid=agent-correct-try]").click()
    dialog.locator("[data-testid=agent-correct-table] tbody tr").first.wait_for()
    assert dialog.locator("[data-testid=agent-correct-table] tbody tr").count() == 3
    dialog.locator("[data-testid=agent-correct-submit]").click()
    turn.locator("[data-testid=agent-verdict][data-status=corrected]").wait_for()
    stored = live_server.api("GET", f"/api/agent/answers/{answer_id}", token=token).json()
    assert stored["status"] == "corrected"
    examples = live_server.api("GET", "/api/agent/examples?workspace=demo", token=token).json()
    assert any(e["source"] == "corrected" and e["sql"] == corrected for e in examples)

    # "New conversation" forgets the session: the next question starts a new one
    page.click("[data-testid=agent-new]")
    assert page.locator("[data-testid=agent-turn]").count() == 0
    body = _ask(page, QUESTION)
    assert "session_id" not in body
    page.locator("[data-testid=agent-turn] [data-testid=agent-table]").wait_for(timeout=60_000)


def test_agent_page_in_english_says_what_the_data_lacks(admin_page, live_server):
    """The page in English; a question about a table the workspace does not have gets a
    clear "not in the data" answer (no table), and the page stays usable."""
    page = admin_page
    live_server.api("POST", "/api/analytics/demo", token=page.console_token)
    page.goto(live_server.base_url + "/#/agent/demo")
    page.click("[data-testid=lang-switch] button[data-lang=en]")
    page.locator("[data-testid=agent-question]").wait_for()
    assert page.locator("[data-testid=page-title]").inner_text().strip() == "Ask your data"
    _ask(page, "How many invoices are in the invoices_2024 table?")
    turn = page.locator("[data-testid=agent-turn]").first
    turn.locator("[data-testid=agent-answer], [data-testid=agent-error]").first.wait_for(timeout=60_000)
    text = turn.inner_text()
    assert "invoices_2024" in text
    turn.locator(".agent-narrative.not-found").wait_for()  # shown as "not in the data", not as a result
    assert turn.locator("[data-testid=agent-table] tbody tr").count() == 0
    assert page.locator("[data-testid=agent-ask]").is_enabled()
