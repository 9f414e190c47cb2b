"""The Audit / 审计 console page in a real browser against the real platform."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_operator_sees_rows_verifies_the_chain_and_a_tenant_admin_sees_their_own(page, admin_page, live_server):
    r = live_server.api("POST", "/api/tenants", json={"name": "audit-t"})
    assert r.status_code in (201, 409), r.text
    tid = live_server.api("GET", "/api/tenants").json()
    tid = next(t["id"] for t in tid if t["name"] == "audit-t")
    r = live_server.api("POST", "/api/users", json={"username": "audit-admin", "password": "password-123",
                                                     "role": "admin", "tenant_id": tid})
    assert r.status_code in (201, 409), r.text

    pg = admin_page
    pg.goto(live_server.base_url + "/#/audit")
    pg.wait_for_selector("[data-testid=audit-table] tbody tr")
    assert pg.locator("[data-testid=page-title]").inner_text().strip() == "审计"
    assert "/api/tenants" in pg.locator("[data-testid=audit-table]").inner_text()
    pg.click("[data-testid=audit-verify]")
    pg.wait_for_selector("[data-testid=audit-verify-result] .badge.ok")
    assert "哈希链完整" in pg.locator("[data-testid=audit-verify-result]").inner_text()
    pg.select_option("[data-testid=audit-action]", "login")
    pg.wait_for_function("() => [...document.querySelectorAll('[data-testid=audit-table] tbody tr')]"
                         ".every((tr) => tr.innerText.includes('/api/auth/login'))")

    # a tenant admin: the page is there, without the chain check, showing only their tenant
    token = live_server.api("POST", "/api/auth/login", token="-",
                            json={"username": "audit-admin", "password": "password-123", "tenant": "audit-t"})
    assert token.status_code == 200, token.text
    ctx = pg.context.browser.new_context(locale="en-US")
    other = ctx.new_page()
    errors: list[str] = []
    other.on("pageerror", lambda e: errors.append(str(e)))
    other.add_init_script(f"localStorage.setItem('zhinao.token', {json.dumps(token.json()['token'])});"
                          "localStorage.setItem('zhinao.lang', 'en');")
    other.goto(live_server.base_url + "/#/audit")
    other.wait_for_selector("[data-testid=audit-table]")
    assert other.locator("[data-testid=page-title]").inner_text().strip() == "Audit"
    assert other.locator("[data-testid=audit-verify]").count() == 0
    rows = live_server.api("GET", "/api/audit", token=token.json()["token"]).json()["rows"]
    assert rows and all(tid in (x["tenant_id"], x["target_tenant_id"]) for x in rows)
    ctx.close()
    assert not errors, errors
