"""The Analytics console page in a real browser against the real platform.

Loads the demo workspace, reads a profile, edits a column description, runs a catalogue
model with scoring from the catalogue, and confirms each step through the HTTP API.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_analytics_demo_profile_describe_run_and_score(admin_page, live_server):
    page = admin_page
    token = page.console_token
    page.goto(live_server.base_url + "/#/analytics")
    page.locator("[data-testid=nav] a[data-page=analytics]").wait_for()
    assert page.locator("[data-testid=page-title]").inner_text().strip() == "数据分析"
    page.click("[data-testid=load-demo]")
    page.locator("[data-testid=datasets] a[data-testid=ds-link]", has_text="telco").wait_for(timeout=60_000)
    page.locator("[data-testid=ds-link]", has_text="telco").click()
    page.wait_for_selector("[data-testid=profile]")
    assert page.locator("[data-testid=ds-name]").inner_text().endswith("telco")
    assert page.locator("[data-testid=glossary]").count() == 0  # glossary lives on the list view
    tenure = page.locator("input[data-col=tenure]")
    assert "在网时长" in tenure.input_value()  # shipped description of the demo column
    tenure.fill("在网月数（UI 修改）")
    page.click("[data-testid=save-descriptions]")
    page.wait_for_selector(".toast.ok")
    ds = live_server.api("GET", "/api/analytics/workspaces/demo/datasets/telco", token=token).json()
    assert ds["column_descriptions"]["tenure"] == "在网月数（UI 修改）"

    page.click("[data-testid=tab-catalogue]")
    page.click("[data-testid=run-churn_logistic]")
    modal = page.locator("[data-testid=run-modal]")
    modal.locator("[data-testid=run-dataset]").select_option("telco")
    modal.locator("[data-testid=run-score-table]").fill("risk_ui")
    modal.locator("[data-testid=run-start]").click()
    page.wait_for_selector("[data-testid=run-status][data-status=succeeded]", timeout=120_000)
    assert page.locator("[data-testid=beats-baseline]").inner_text() == "优于基线"
    assert page.locator("[data-testid=run-metrics] tr").count() >= 6  # header + 5 metrics
    page.wait_for_selector("[data-testid=run-charts] .echart canvas")  # interactive (ECharts); PNGs are exports
    assert page.locator("[data-testid=export-png]").count() >= 1
    runs = live_server.api("GET", "/api/analytics/runs", token=token).json()
    assert runs[0]["model_key"] == "churn_logistic" and runs[0]["status"] == "succeeded"
    assert runs[0]["score_table"] == "risk_ui"
    risk = live_server.api("GET", "/api/analytics/workspaces/demo/datasets/risk_ui/rows?limit=3", token=token).json()
    # issue 10: the scored table keeps every input column and adds the positive-class score and the prediction
    telco_cols = [c["name"] for c in ds["profile"]["columns"]]
    assert risk["columns"][:len(telco_cols)] == telco_cols and {"score", "prediction"} <= set(risk["columns"])
    at = risk["columns"].index("score")
    assert risk["rows"] and all(0 <= row[at] <= 1 for row in risk["rows"])
