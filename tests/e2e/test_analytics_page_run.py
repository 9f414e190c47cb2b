"""The analytics run dialog on a user's own table, in a real browser against the real platform.

A table the catalogue was not written for — the shipped telco customers with every column
renamed into Chinese, the target written 是/否, an empty 备注 column — is uploaded to a workspace.
In the console (zh) the run dialog for the logistic churn model must show the binding the server
infers (target 是否流失 found by its name, 客户编号 as the id, the empty column left out), show a
bad binding's error inline, run for real, and draw the run's charts with ECharts; the score
picker offers only tables that fit the model; statuses, algorithms and tasks are translated.

Fixtures (``live_server``, ``admin_page``) from tests/e2e/conftest.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zhinao.analytics.datasets import data_path

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WS = "user_ui"
RENAME = {"customerID": "客户编号", "gender": "性别", "SeniorCitizen": "老年用户", "Partner": "有配偶", "Dependents": "有家属",
          "tenure": "在网月数", "PhoneService": "语音业务", "MultipleLines": "多线", "InternetService": "宽带类型",
          "OnlineSecurity": "网络安全", "OnlineBackup": "云备份", "DeviceProtection": "设备保护", "TechSupport": "技术支持",
          "StreamingTV": "视频点播", "StreamingMovies": "电影点播", "Contract": "合约类型", "PaperlessBilling": "电子账单",
          "PaymentMethod": "付款方式", "MonthlyCharges": "月费", "TotalCharges": "累计费用", "Churn": "是否流失"}


def _user_table(tmp: Path) -> tuple[Path, Path]:
    import pandas as pd

    df = pd.read_csv(data_path("telco", "Telco-Customer-Churn.csv"), dtype={"customerID": str})
    df = df.sample(1500, random_state=11).rename(columns=RENAME)
    df["是否流失"] = df["是否流失"].map({"Yes": "是", "No": "否"})
    df["备注"] = None
    main = tmp / "客户表.csv"
    df.to_csv(main, index=False)
    other = tmp / "话单.csv"  # a table that lacks the model's columns
    pd.DataFrame({"主叫": ["138" + str(i).zfill(8) for i in range(30)], "时长": range(30)}).to_csv(other, index=False)
    return main, other


def _upload(live_server, token, path: Path, name: str) -> None:
    with open(path, "rb") as f:
        r = live_server.api("POST", f"/api/analytics/workspaces/{WS}/datasets", token=token,
                            files={"file": (path.name, f, "text/csv")}, data={"name": name, "replace": "true"})
    assert r.status_code == 201, r.text


def test_run_dialog_binds_a_user_table_runs_and_draws(admin_page, live_server, tmp_path):
    page = admin_page
    page.set_default_timeout(60_000)  # a busy CI machine: binding and the first run take longer there
    token = page.console_token
    r = live_server.api("POST", "/api/analytics/workspaces", token=token, json={"name": WS})
    assert r.status_code in (201, 409), r.text
    main, other = _user_table(tmp_path)
    _upload(live_server, token, main, "客户表")
    _upload(live_server, token, other, "话单")
    page.evaluate(f"localStorage.setItem('zhinao.analytics.ws', {WS!r})")

    # catalogue in zh: algorithm and task translated
    page.goto(live_server.base_url + "/#/analytics/catalogue")
    row = page.locator("[data-testid=catalogue] tr", has=page.locator("[data-testid=run-churn_logistic]"))
    row.wait_for()
    assert "逻辑回归" in row.locator("[data-testid=algorithm]").inner_text()
    assert row.locator("[data-testid=task]").inner_text() == "分类"
    # every entry: no English word left in a zh algorithm name (names such as KMeans, PageRank, CART stay)
    algos = page.locator("[data-testid=catalogue] [data-testid=algorithm]").all_inner_texts()
    assert len(algos) >= 15 and not [a for a in algos if re.search(r"\b[a-z]{3,}\b", a)], algos
    assert not [x for x in page.locator("[data-testid=catalogue] [data-testid=task]").all_inner_texts() if re.search("[A-Za-z]", x)]

    # the dialog: pick the user's table, the inferred binding is shown
    page.click("[data-testid=run-churn_logistic]")
    modal = page.locator("[data-testid=run-modal]")
    modal.locator("[data-testid=run-dataset]").select_option("客户表")
    page.wait_for_selector("[data-testid=bind-status][data-ok=true]", timeout=30_000)
    assert modal.locator("[data-testid=role-target]").input_value() == "是否流失"
    assert modal.locator("[data-testid=inferred-target]").is_visible()
    feats = modal.locator("[data-testid=role-features]")
    assert feats.locator("input[data-col=在网月数]").is_checked() and feats.locator("input[data-col=合约类型]").is_checked()
    assert not feats.locator("input[data-col=客户编号]").is_checked() and not feats.locator("input[data-col=备注]").is_checked()
    dropped = modal.locator("[data-testid=bind-dropped]").inner_text()
    assert "备注（全为空）" in dropped  # left out, with the reason in Chinese
    assert modal.locator("[data-testid=role-id]").input_value() == "客户编号"  # the id column is the id role, not a feature
    assert "数值" in feats.inner_text() and "类别" in feats.inner_text()  # kinds shown, in Chinese

    # a bad binding: the error is shown inline, naming the column; undoing it clears it
    feats.locator("input[data-col=备注]").check()
    page.wait_for_selector("[data-testid=bind-status][data-ok=false]", timeout=30_000)
    err = modal.locator("[data-testid=bind-error]")
    assert err.is_visible() and "备注" in err.inner_text()
    modal.locator("[data-testid=reset-features]").click()
    page.wait_for_selector("[data-testid=bind-status][data-ok=true]", timeout=30_000)
    assert not err.is_visible()

    modal.locator("[data-testid=run-start]").click()
    page.wait_for_selector("[data-testid=run-status][data-status=succeeded]", timeout=180_000)
    assert page.locator("[data-testid=run-status]").inner_text() == "成功"
    assert page.locator("[data-testid=beats-baseline]").inner_text() == "优于基线"
    binding = page.locator("[data-testid=run-binding]").inner_text()
    assert "是否流失" in binding and "自动推断" in binding
    # interactive charts: an ECharts canvas drawn from the run's plot specs; PNGs kept as exports
    page.wait_for_selector("[data-testid=run-charts] .echart canvas", timeout=30_000)
    assert page.locator("[data-testid=export-png]").count() >= 1
    stray = page.evaluate("() => [...document.querySelector('[data-testid=run-detail]').childNodes]"
                          ".filter((n) => n.nodeType === 3 && n.textContent.trim()).map((n) => n.textContent)")
    assert stray == [], stray  # no bare text (a null appended as "null")
    # explanation as tables, never a JSON dump
    expl = page.locator("[data-testid=run-explanation]")
    assert expl.locator("table").count() >= 1 and expl.locator("pre").count() == 0
    # the score picker offers the table that fits, not the one without the model's columns
    options = page.locator("[data-testid=score-dataset] option").all_inner_texts()
    assert any(o.startswith("客户表") for o in options) and not any(o.startswith("话单") for o in options)

    run_id = int(page.url.rsplit("/", 1)[-1])
    rec = live_server.api("GET", f"/api/analytics/runs/{run_id}", token=token).json()
    assert rec["status"] == "succeeded" and rec["binding"]["columns"]["target"] == "是否流失"
    assert rec["binding"]["columns"]["id"] == "客户编号" and "客户编号" not in rec["binding"]["columns"]["features"]
    assert "features" in rec["binding"]["inferred"] and "备注" not in rec["binding"]["columns"]["features"]
    assert rec["plots"], "the run stored no interactive plot specs"

    # statuses in the runs list follow the language switch
    page.goto(live_server.base_url + "/#/analytics/runs")
    badge = page.locator(f"[data-testid=runs] tr:has(a[href='#/analytics/runs/{run_id}']) [data-status]")
    assert badge.inner_text() == "成功"
    page.click("[data-testid=lang-switch] button[data-lang=en]")
    badge = page.locator(f"[data-testid=runs] tr:has(a[href='#/analytics/runs/{run_id}']) [data-status]")
    badge.wait_for()
    assert badge.inner_text() == "succeeded"
