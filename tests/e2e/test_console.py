"""The web console in a real browser against the real platform (echo model, 0.02 s per token).

Each test checks behaviour through the UI and then confirms it through the HTTP API.
"""

from __future__ import annotations

import json
import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LONG = " ".join(f"word{i}" for i in range(400))  # ~8 s of echo: long enough to stop mid-way
REPLY = "[data-testid=msg-assistant]"


def last_reply(page):
    return page.locator(REPLY).last


def send(page, text: str, *, shown: bool = True) -> None:
    """Send once the chat is ready (its model list loaded), and wait until the message is shown:
    a click before the page had finished loading used to be lost, and the test then timed out
    waiting for a reply to a message that was never sent."""
    page.wait_for_selector("[data-testid=model-select] option", state="attached")
    sent = page.locator("[data-testid=msg-user]").count()
    page.fill("[data-testid=chat-input]", text)
    page.click("[data-testid=send-btn]")
    if shown:  # (a refused message stays in the input instead)
        page.wait_for_function("n => document.querySelectorAll('[data-testid=msg-user]').length > n", arg=sent)


def wait_done(page, timeout: float = 20_000) -> None:
    page.wait_for_selector(f"{REPLY}[data-state=done] >> nth=-1", timeout=timeout)
    page.wait_for_selector("[data-testid=send-btn]:visible")


def current_conversation(page) -> int:
    m = re.search(r"#/chat/(\d+)", page.url)
    assert m, f"no conversation id in {page.url}"
    return int(m.group(1))


def conversation(live_server, page, cid: int) -> dict:
    r = live_server.api("GET", f"/api/conversations/{cid}", token=page.console_token)
    assert r.status_code == 200, r.text
    return r.json()


def _until_models_idle(live_server, timeout_s: float = 60.0) -> None:
    """Poll /api/status until no model has a generation running or queued (bounded, not slept)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        models = live_server.api("GET", "/api/status").json()["models"]
        if all(m["busy"] == 0 and m["queued"] == 0 for m in models):
            return
        assert time.monotonic() < deadline, models
        time.sleep(0.05)


def test_sign_in_and_language_switch(page, live_server):
    page.goto(live_server.base_url + "/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not-the-password")
    page.click("[data-testid=login-form] button[type=submit]")
    page.wait_for_selector("[data-testid=login-error]:not(:empty)")
    assert page.locator("[data-testid=nav]").count() == 0

    page.fill("input[name=password]", live_server.admin_password)
    page.click("[data-testid=login-form] button[type=submit]")
    chat_link = page.locator("[data-testid=nav] a[data-page=chat]")
    chat_link.wait_for()
    assert chat_link.inner_text().strip() == "智能对话"
    # admin pages are listed for the operator (the bootstrap admin), with the role shown
    for pid in ("usage", "status", "keys", "tenants", "users", "models", "feedback"):
        assert page.locator(f"[data-testid=nav] a[data-page={pid}]").count() == 1, pid
    assert page.locator("[data-testid=who-role]").get_attribute("data-role") == "operator"

    page.click("[data-testid=lang-switch] >> nth=0 >> [data-lang=en]")
    page.wait_for_function("document.querySelector('[data-testid=nav] a[data-page=chat]').innerText.trim() === 'Chat'")
    assert page.locator("[data-testid=send-btn]").inner_text().strip() == "Send"
    page.reload()  # the choice and the session survive a reload
    page.wait_for_selector("[data-testid=nav] a[data-page=chat]")
    assert page.locator("[data-testid=nav] a[data-page=chat]").inner_text().strip() == "Chat"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.click("[data-testid=lang-switch] >> nth=0 >> [data-lang=zh]")
    page.wait_for_function("document.querySelector('[data-testid=page-title]').innerText.trim() === '智能对话'")

    page.click("[data-testid=sign-out]")
    page.wait_for_selector("[data-testid=login-form]")
    assert page.evaluate("localStorage.getItem('zhinao.token')") is None


def test_chat_streams_incrementally_and_matches_echo(admin_page, live_server):
    page = admin_page
    text = "智脑 streaming check: " + " ".join(f"token{i}" for i in range(120))
    send(page, text)
    # Read the reply while it is still streaming: it must be a non-empty strict prefix.
    partial = page.wait_for_function("""() => {
        const m = [...document.querySelectorAll('[data-testid=msg-assistant]')].pop();
        const t = m && m.querySelector('[data-testid=reply]').innerText.trim();
        return m && m.dataset.state === 'streaming' && t && t.length > 10 ? t : false;
    }""").json_value()
    wait_done(page)
    final = last_reply(page).locator("[data-testid=reply]").inner_text().strip()
    assert final == text
    assert len(partial) < len(final) and final.startswith(partial.rstrip("▍").strip())
    page.screenshot(path="/tmp/console-chat.png")

    cid = current_conversation(page)
    conv = conversation(live_server, page, cid)
    assert conv["turns"][-1]["response"] == text
    assert conv["title"]  # the first message named the conversation
    assert page.locator(f"[data-testid=conv-item][data-id='{cid}']").count() == 1


def test_stop_a_long_generation(admin_page, live_server):
    page = admin_page
    send(page, LONG)
    page.wait_for_function("""() => {
        const m = [...document.querySelectorAll('[data-testid=msg-assistant]')].pop();
        return m && m.dataset.state === 'streaming' && m.innerText.includes('word20');
    }""")
    page.click("[data-testid=stop-btn]")
    page.wait_for_selector(f"{REPLY}[data-state=stopped]", timeout=5_000)
    assert page.locator("[data-testid=stopped]").count() == 1
    stopped_text = last_reply(page).locator("[data-testid=reply]").inner_text().strip()
    assert 0 < len(stopped_text) < len(LONG) and LONG.startswith(stopped_text)
    _until_models_idle(live_server)  # the server has stopped generating: anything in flight has arrived
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # and is painted
    assert last_reply(page).locator("[data-testid=reply]").inner_text().strip() == stopped_text  # nothing more arrives
    assert page.locator("[data-testid=send-btn]").is_visible()
    # The server stopped generating too: what it stored is not the whole answer.
    conv = conversation(live_server, page, current_conversation(page))
    assert len(conv["turns"][-1]["response"] or "") < len(LONG)


def test_regenerate_keeps_both_versions(admin_page, live_server):
    page = admin_page
    send(page, "alpha beta gamma")
    wait_done(page)
    first_id = int(last_reply(page).get_attribute("data-turn-id"))
    page.click(f"{REPLY} >> nth=-1 >> [data-testid=regenerate]")
    page.wait_for_selector("[data-testid=version]:has-text('2 / 2')")
    wait_done(page)
    second_id = int(last_reply(page).get_attribute("data-turn-id"))
    assert second_id != first_id
    assert last_reply(page).locator("[data-testid=reply]").inner_text().strip() == "alpha beta gamma"

    conv = conversation(live_server, page, current_conversation(page))
    turns = {t["id"]: t for t in conv["turns"]}
    assert turns[second_id]["parent_turn_id"] == first_id
    assert turns[second_id]["user_message"] == turns[first_id]["user_message"] == "alpha beta gamma"
    page.click(f"{REPLY} >> nth=-1 >> [aria-label='上一个版本']")
    page.wait_for_selector("[data-testid=version]:has-text('1 / 2')")
    assert int(last_reply(page).get_attribute("data-turn-id")) == first_id


def test_thumbs_up_and_correction_reach_feedback_api(admin_page, live_server):
    page = admin_page
    send(page, "What is 5G slicing?")
    wait_done(page)
    turn_id = int(last_reply(page).get_attribute("data-turn-id"))
    page.click(f"{REPLY} >> nth=-1 >> [data-testid=fb-up]")
    page.wait_for_selector(f"{REPLY} >> nth=-1 >> [data-testid=fb-up][aria-pressed=true]")

    def feedback_for(tid: int) -> dict | None:
        r = live_server.api("GET", "/api/feedback")
        assert r.status_code == 200, r.text
        return next((f for f in r.json() if f["turn_id"] == tid), None)

    fb = feedback_for(turn_id)
    assert fb is not None and fb["rating"] == 1 and not fb["corrected_answer"]

    corrected = "5G 网络切片：在同一物理网络上划分多个逻辑网络。"
    page.click(f"{REPLY} >> nth=-1 >> [data-testid=fb-correct]")
    page.fill("[data-testid=correct-input]", corrected)
    page.click("[data-testid=correct-save]")
    page.wait_for_selector("[data-testid=correction]")
    assert corrected in page.locator("[data-testid=correction]").inner_text()
    fb = feedback_for(turn_id)
    assert fb["corrected_answer"] == corrected
    assert fb["rating"] == 1  # correcting does not lose the rating
    assert fb["user_message"] == "What is 5G slicing?"

    page.click(f"{REPLY} >> nth=-1 >> [data-testid=fb-down]")
    page.wait_for_selector(f"{REPLY} >> nth=-1 >> [data-testid=fb-down][aria-pressed=true]")
    assert page.locator(f"{REPLY} >> nth=-1 >> [data-testid=fb-up]").get_attribute("aria-pressed") == "false"
    fb = feedback_for(turn_id)
    assert fb["rating"] == -1 and fb["corrected_answer"] == corrected  # changing the rating keeps the correction
    page.reload()  # what the page shows after a reload comes from the server
    page.wait_for_selector(f"{REPLY}[data-turn-id='{turn_id}'] [data-testid=fb-down][aria-pressed=true]")
    assert corrected in page.locator(f"{REPLY}[data-turn-id='{turn_id}'] [data-testid=correction]").inner_text()


def test_reply_html_is_shown_as_text(admin_page, live_server):
    page = admin_page
    # inline HTML inside a Markdown paragraph, then a raw HTML block
    evil = ('**bold** <img src=x onerror="window.__xss = 2"> [click](javascript:window.__xss=3)\n\n'
            '<script>window.__xss = 1</script>')
    send(page, evil)
    wait_done(page)
    reply = last_reply(page).locator("[data-testid=reply]")
    assert reply.locator("script, img, iframe").count() == 0
    assert reply.locator("strong").inner_text() == "bold"  # Markdown still renders
    text = reply.inner_text()
    assert "<script>" in text and "onerror" in text  # the HTML is visible as text
    hrefs = reply.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href') || '')")
    assert not any(h.lower().startswith("javascript") for h in hrefs)
    # an image error queued after the reply's: once it has fired, any handler in the reply would have too
    page.evaluate("""() => { const i = new Image(); i.onerror = () => { window.__probe = 1; };
                             i.src = 'data:image/png;base64,not-an-image'; document.body.appendChild(i); }""")
    page.wait_for_function("window.__probe === 1")
    assert page.evaluate("window.__xss") is None
    # the conversation list shows the title as text too
    assert page.locator("[data-testid=conv-list] img, [data-testid=conv-list] script").count() == 0


def test_usage_page_matches_usage_api(admin_page, live_server):
    page = admin_page
    token = page.console_token
    conv = live_server.api("POST", "/api/conversations", token=token, json={"model": "echo"}).json()
    events = live_server.chat(conv["id"], "usage probe one two three", token=token)
    assert events[-1]["type"] == "done"

    page.goto(live_server.base_url + "/#/usage")
    page.wait_for_selector("[data-testid=usage-total]")
    api = live_server.api("GET", "/api/usage?days=30&group_by=day", token=token).json()
    assert api["totals"]["total_tokens"] > 0
    # the page may have loaded a moment before; reload once so both read the same state
    page.reload()
    page.wait_for_selector("[data-testid=usage-total]")
    api = live_server.api("GET", "/api/usage?days=30&group_by=day", token=token).json()
    for tid, key in (("total", "total_tokens"), ("prompt", "prompt_tokens"),
                     ("completion", "completion_tokens"), ("requests", "requests")):
        shown = page.locator(f"[data-testid=usage-{tid}]").get_attribute("data-value")
        assert int(float(shown)) == int(api["totals"][key]), key
    # the chart carries each day's numbers
    for row in api["rows"]:
        day = str(row["day"])[:10]
        bar = page.locator(f"[data-testid=usage-chart] g[data-day='{day}']")
        assert bar.count() == 1, day
        assert int(bar.get_attribute("data-prompt")) == row["prompt_tokens"]
        assert int(bar.get_attribute("data-completion")) == row["completion_tokens"]
    assert page.locator("[data-testid=usage-chart] rect[fill='#3b82f6']").count() >= 1
    # stacked by model: the bars carry group_by=day,model totals
    page.select_option("[data-testid=usage-stack]", "model")
    page.wait_for_selector("[data-testid=usage-chart] g[data-m0]")
    by_model = live_server.api("GET", "/api/usage?days=30&group_by=day,model", token=token).json()["rows"]
    today = max(str(r["day"])[:10] for r in by_model)
    names = sorted({r["model"] for r in by_model})
    bar = page.locator(f"[data-testid=usage-chart] g[data-day='{today}']")
    for i, name in enumerate(names):
        want = sum(r["total_tokens"] for r in by_model if r["model"] == name and str(r["day"])[:10] == today)
        assert int(bar.get_attribute(f"data-m{i}")) == want, name
    page.select_option("[data-testid=usage-stack]", "kind")
    assert page.locator("[data-testid=usage-by-model] td", has_text="echo").count() >= 1
    page.screenshot(path="/tmp/console-usage.png", full_page=True)


def test_created_key_is_shown_once_and_works(admin_page, live_server):
    page = admin_page
    page.goto(live_server.base_url + "/#/keys")
    page.fill("[data-testid=key-form] input[name=name]", "e2e-bot")
    page.fill("[data-testid=key-form] input[name=rpm]", "120")
    page.click("[data-testid=key-form] button[type=submit]")
    secret = page.locator("[data-testid=new-key-secret]").inner_text().strip()
    assert secret.startswith("zk-") and len(secret) > 20
    assert live_server.api("GET", "/v1/models", token=secret).status_code == 200  # the key is real
    page.click("[data-testid=new-key-close]")
    row = page.locator("[data-testid=keys-table] tr", has_text="e2e-bot")
    row.wait_for()
    assert secret not in page.content()
    page.reload()
    page.locator("[data-testid=keys-table] tr", has_text="e2e-bot").wait_for()
    assert secret not in page.content()
    keys = live_server.api("GET", "/api/keys", token=page.console_token).json()
    mine = next(k for k in keys if k["name"] == "e2e-bot")
    assert mine["rpm"] == 120 and "key" not in mine

    # revoke it from the UI: the secret stops working
    row.locator("[data-testid=revoke-key]").click()
    page.click("[data-testid=confirm-ok]")
    page.locator("[data-testid=keys-table] tr", has_text="e2e-bot").locator(".badge.bad").wait_for()
    assert live_server.api("GET", "/v1/models", token=secret).status_code == 401


def test_status_page_polls(admin_page, live_server):
    page = admin_page
    page.goto(live_server.base_url + "/#/status")
    row = page.locator("[data-testid=status-models] tr", has_text="echo")
    row.wait_for()
    assert row.locator(".badge.ok").count() == 1
    first = page.locator("[data-testid=status-updated]").inner_text()
    page.wait_for_function("(prev) => document.querySelector('[data-testid=status-updated]').innerText !== prev",
                           arg=first, timeout=8_000)


def test_admin_pages_render_in_english(admin_page, live_server):
    page = admin_page
    page.click("[data-testid=lang-switch] >> nth=0 >> [data-lang=en]")
    expected = {"tenants": "Tenants", "users": "Users", "models": "Models", "feedback": "Feedback"}
    for pid, title in expected.items():
        page.goto(f"{live_server.base_url}/#/{pid}")
        page.wait_for_function("(t) => document.querySelector('[data-testid=page-title]').innerText.trim() === t", arg=title)
        page.wait_for_selector("[data-testid=content] .card")
    page.goto(f"{live_server.base_url}/#/tenants")
    tenants = live_server.api("GET", "/api/tenants").json()
    assert tenants
    for tenant in tenants:
        page.locator("[data-testid=tenants-table] tr", has_text=tenant["name"]).first.wait_for()
    assert page.locator("[data-testid=tenants-table] th", has_text="Display name").count() == 1


def test_conversation_list_switch_and_delete(admin_page, live_server):
    page = admin_page
    token = page.console_token
    convs = []
    for text in ("first topic 第一个话题", "second topic 第二个话题"):
        c = live_server.api("POST", "/api/conversations", token=token, json={"model": "echo"}).json()
        live_server.chat(c["id"], text, token=token)
        convs.append(c["id"])
    page.reload()  # the list was loaded before these conversations existed
    first = page.locator(f"[data-testid=conv-item][data-id='{convs[0]}']")
    first.click()
    page.wait_for_selector("[data-testid=msg-user]:has-text('第一个话题')")
    assert page.locator("[data-testid=conv-title]").inner_text().startswith("first topic")
    assert page.url.endswith(f"#/chat/{convs[0]}")

    first.hover()
    first.locator("button").click()
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-testid=welcome]")
    assert page.locator(f"[data-testid=conv-item][data-id='{convs[0]}']").count() == 0
    assert live_server.api("GET", f"/api/conversations/{convs[0]}", token=token).status_code == 404
    assert page.locator(f"[data-testid=conv-item][data-id='{convs[1]}']").count() == 1


def test_member_sees_chat_but_not_admin_pages(admin_page, live_server, browser):
    page = admin_page
    page.goto(live_server.base_url + "/#/users")
    form = page.locator("[data-testid=user-form]")
    form.locator("input[name=username]").fill("e2e-member")
    form.locator("input[name=password]").fill("member-pass-123")
    form.locator("button[type=submit]").click()
    page.locator("[data-testid=users-table] tr", has_text="e2e-member").wait_for()

    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        member = ctx.new_page()
        member.goto(live_server.base_url + "/")
        member.fill("input[name=username]", "e2e-member")
        member.fill("input[name=password]", "member-pass-123")
        member.click("[data-testid=login-form] button[type=submit]")
        member.wait_for_selector("[data-testid=nav] a[data-page=chat]")
        for pid in ("tenants", "users", "feedback"):
            assert member.locator(f"[data-testid=nav] a[data-page={pid}]").count() == 0, pid
        member.goto(live_server.base_url + "/#/tenants")  # not listed: falls back to the first page
        member.wait_for_selector("[data-testid=chat-input]")
        # echo is a test model, offered to operators only: the member chats with a real one (SmolLM2,
        # shipped in a dependency), so the reply is generated text, not the question echoed back
        member.wait_for_selector("[data-testid=model-select] option", state="attached")
        chosen = member.locator("[data-testid=model-select]").input_value()
        assert chosen and chosen != "echo"
        send(member, "member question")
        wait_done(member, timeout=300_000)  # the first message starts the model's engine (after the analytics page tests' runs on the same server)
        assert last_reply(member).locator("[data-testid=reply]").inner_text().strip()
        errors: list[str] = []
        member.on("pageerror", lambda e: errors.append(str(e)))
        for pid in ("usage", "status", "keys", "models"):  # the pages a member has work for a member
            member.goto(f"{live_server.base_url}/#/{pid}")
            member.wait_for_selector("[data-testid=content] .card")
            member.wait_for_load_state("networkidle")  # every call the page made has answered (no fixed wait)
            assert member.locator(".toast.error").count() == 0, (pid, member.locator(".toast.error").all_inner_texts())
        assert member.locator("[data-testid=model-form]").count() == 0  # only admins add models
        assert not errors
    finally:
        ctx.close()
    # the member's conversation is not the admin's
    admin_titles = [c["title"] for c in live_server.api("GET", "/api/conversations", token=page.console_token).json()]
    assert "member question" not in admin_titles


def test_server_error_is_shown_and_the_message_kept(admin_page, live_server):
    page = admin_page
    # a model that vanished after the page loaded: the server refuses with a clear 4xx
    page.wait_for_selector("[data-testid=model-select] option", state="attached")  # loaded: not overwritten
    page.evaluate("""() => { const s = document.querySelector('[data-testid=model-select]');
        s.appendChild(new Option('no-such-model', 'no-such-model')); s.value = 'no-such-model'; }""")
    send(page, "keep me", shown=False)
    toast = page.locator(".toast.error")
    toast.wait_for()
    assert "no-such-model" in toast.inner_text()
    assert page.locator("[data-testid=chat-input]").input_value() == "keep me"
    assert page.locator("[data-testid=send-btn]").is_visible()


def test_generation_settings_are_sent_and_remembered(admin_page, live_server):
    page = admin_page
    page.click("[data-testid=params-toggle]")
    page.fill("[data-testid=param-max-tokens]", "3")
    page.locator("[data-testid=param-max-tokens]").dispatch_event("change")
    send(page, "one two three four five six")
    wait_done(page)
    assert last_reply(page).locator("[data-testid=reply]").inner_text().strip() == "one two three"
    assert last_reply(page).locator(".badge.warn").count() == 1  # "hit the length limit"
    turn = conversation(live_server, page, current_conversation(page))["turns"][-1]
    assert turn["finish_reason"] == "length" and turn["completion_tokens"] == 3
    page.reload()
    page.wait_for_selector("[data-testid=param-max-tokens]", state="attached")
    assert page.locator("[data-testid=param-max-tokens]").input_value() == "3"


def test_tenant_create_edit_disable(admin_page, live_server):
    page = admin_page
    page.goto(live_server.base_url + "/#/tenants")
    form = page.locator("[data-testid=tenant-form]")
    form.locator("input[name=name]").fill("e2e-sales")
    form.locator("input[name=display_name]").fill("销售部")
    form.locator("input[name=tpm]").fill("1000")
    form.locator("button[type=submit]").click()
    row = page.locator("[data-testid=tenants-table] tr", has_text="e2e-sales")
    row.wait_for()
    assert "销售部" in row.inner_text()

    def tenant() -> dict:
        return next(t for t in live_server.api("GET", "/api/tenants").json() if t["name"] == "e2e-sales")

    assert tenant()["tpm"] == 1000 and tenant()["display_name"] == "销售部"
    row.get_by_role("button", name="编辑").click()
    page.locator(".modal input[name=tokens_per_day]").fill("50000")
    page.locator(".modal button[type=submit]").click()
    page.wait_for_selector(".modal", state="detached")
    page.locator("[data-testid=tenants-table] tr", has_text="e2e-sales").get_by_text("50,000").wait_for()
    assert tenant()["tokens_per_day"] == 50000 and tenant()["tpm"] == 1000
    page.locator("[data-testid=tenants-table] tr", has_text="e2e-sales").get_by_role("button", name="停用").click()
    page.locator("[data-testid=tenants-table] tr", has_text="e2e-sales").locator(".badge.bad").wait_for()
    assert tenant()["disabled"] is True


def test_tenant_admin_sees_only_their_tenant(admin_page, live_server, browser):
    """A tenant admin has the admin pages of their tenant, none of the operator's sections, and
    the console shows each person's role (the API refuses the rest anyway)."""
    page = admin_page
    assert page.locator("[data-testid=who-role]").get_attribute("data-role") == "operator"
    tid = live_server.api("POST", "/api/tenants", json={"name": "e2e-branch"}).json()["id"]
    r = live_server.api("POST", "/api/users", json={"username": "e2e-tadmin", "password": "tadmin-pass-123",
                                                     "role": "admin", "tenant_id": tid})
    assert r.status_code == 201, r.text
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        ta = ctx.new_page()
        errors: list[str] = []
        ta.on("pageerror", lambda e: errors.append(str(e)))
        ta.goto(live_server.base_url + "/")
        ta.fill("input[name=username]", "e2e-branch/e2e-tadmin")
        ta.fill("input[name=password]", "tadmin-pass-123")
        ta.click("[data-testid=login-form] button[type=submit]")
        ta.wait_for_selector("[data-testid=nav] a[data-page=chat]")
        assert ta.locator("[data-testid=who-role]").get_attribute("data-role") == "admin"
        for pid in ("users", "keys", "feedback", "usage", "models"):
            assert ta.locator(f"[data-testid=nav] a[data-page={pid}]").count() == 1, pid
        assert ta.locator("[data-testid=nav] a[data-page=tenants]").count() == 0
        ta.goto(live_server.base_url + "/#/models")
        ta.locator("[data-testid=models-table]").wait_for()
        assert ta.locator("[data-testid=model-form]").count() == 0
        assert ta.locator("[data-testid=models-granted-note]").count() == 1
        ta.goto(live_server.base_url + "/#/users")
        ta.locator("[data-testid=users-table] tr", has_text="e2e-tadmin").wait_for()
        assert ta.locator("[data-testid=users-tenant]").count() == 0  # no tenant picker
        assert "admin" not in [c.strip() for c in ta.locator("[data-testid=users-table] td b").all_inner_texts()]
        roles = ta.locator("[data-testid=user-form] select[name=role] option").all_inner_texts()
        assert not any("运营" in r or "operator" in r.lower() for r in roles)
        ta.goto(live_server.base_url + "/#/usage")
        ta.locator("[data-testid=usage-total]").wait_for()
        assert ta.get_by_text("全部租户").count() == 0
        assert not errors
    finally:
        ctx.close()


# -- a newcomer's first chat: the best installed model, echo only for operators -----------

@pytest.fixture(scope="module")
def newcomer_server(tmp_path_factory, default_pack_path):
    """`zhinao serve` as after `make run`: no default-model setting, the default pack linked into
    home/models (as `zhinao models install` does from the shared pack folder), no models.toml.
    --no-warm: the page only lists models, no engine needs to start."""
    from pathlib import Path

    from tests.e2e.conftest import start_server

    home = tmp_path_factory.mktemp("zhinao-newcomer")
    (home / "models").mkdir()
    (home / "models" / Path(default_pack_path).name).symlink_to(default_pack_path)
    with start_server(home, {}, ("--no-warm",), ready="/healthz") as server:
        yield server


def _signed_in(browser, server, username: str, password: str):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    token = server.login(username, password)
    pg.add_init_script(f"localStorage.setItem('zhinao.token', {json.dumps(token)});")
    pg.goto(server.base_url + "/#/chat")
    pg.wait_for_selector("[data-testid=model-select] option", state="attached")
    return ctx, pg, errors


def test_chat_opens_on_the_default_pack_and_members_never_see_echo(newcomer_server, browser):
    server = newcomer_server
    models = {m["name"]: m for m in server.api("GET", "/api/models").json()}
    assert models["qwen2.5-coder-0.5b"]["default"] is True and models["qwen2.5-coder-0.5b"]["test_model"] is False
    assert models["echo"]["test_model"] is True and models["echo"]["default"] is False
    r = server.api("POST", "/api/users", json={"username": "newcomer", "password": "newcomer-pass-123", "role": "member"})
    assert r.status_code == 201, r.text

    ctx, member, errors = _signed_in(browser, server, "newcomer", "newcomer-pass-123")
    try:
        assert member.locator("[data-testid=who-role]").get_attribute("data-role") == "member"
        assert member.locator("[data-testid=model-select]").input_value() == "qwen2.5-coder-0.5b"
        offered = member.locator("[data-testid=model-select] option").evaluate_all("os => os.map(o => o.value)")
        assert "echo" not in offered and "qwen2.5-coder-0.5b" in offered
        assert not errors
    finally:
        ctx.close()

    ctx, op, errors = _signed_in(browser, server, "admin", server.admin_password)
    try:
        assert op.locator("[data-testid=model-select]").input_value() == "qwen2.5-coder-0.5b"
        echo = op.locator("[data-testid=model-select] option[value=echo]")
        assert echo.get_attribute("data-test-model") == "true" and "测试模型" in echo.inner_text()
        assert not errors
    finally:
        ctx.close()


def test_a_member_does_not_see_echo_even_when_it_is_the_configured_default(live_server, browser):
    """The session server's default is echo (ZHINAO_DEFAULT_MODEL=echo): the operator starts on it,
    a member starts on a real model and is not offered echo."""
    r = live_server.api("POST", "/api/users", json={"username": "e2e-member-models", "password": "member-pass-123",
                                                     "role": "member"})
    assert r.status_code == 201, r.text
    ctx, member, errors = _signed_in(browser, live_server, "e2e-member-models", "member-pass-123")
    try:
        offered = member.locator("[data-testid=model-select] option").evaluate_all("os => os.map(o => o.value)")
        assert "echo" not in offered and offered, offered
        assert member.locator("[data-testid=model-select]").input_value() == offered[0]
        assert not errors
    finally:
        ctx.close()
    ctx, op, errors = _signed_in(browser, live_server, "admin", live_server.admin_password)
    try:
        assert op.locator("[data-testid=model-select]").input_value() == "echo"
    finally:
        ctx.close()
