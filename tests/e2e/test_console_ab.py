"""The A/B panel of the alignment page (models tab) in a real browser against the real platform.

The operator registers a second echo model on the live server (``echo`` is its default), starts
an experiment at 50% from the panel, chats through the real conversation route until both arms
answered, rates the turns through the feedback route, and the panel shows per arm the turns, the
rated turns, the 👍 rate with its Wilson interval and the difference with Newcombe's (as the API
computes them; the chart's error bars are those intervals). The share is changed, then rolled
back after the confirmation: share 0, and new conversations are all answered by the base model.
Members never see the panel and the API refuses them.
"""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CANDIDATE = "echo-ab-candidate"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _new_turn(live_server, token: str, text: str) -> tuple[int, str]:
    """A new conversation's first turn: (turn id, the model that really answered it)."""
    conv = live_server.api("POST", "/api/conversations", token=token, json={})
    assert conv.status_code in (200, 201), conv.text
    conv_id = conv.json()["id"]
    events = live_server.chat(conv_id, text, token=token)
    done = next(e for e in events if e.get("type") == "done")
    # the stream names the model asked for; the turn log records the one that answered (the arm)
    turns = live_server.api("GET", f"/api/conversations/{conv_id}", token=token).json()["turns"]
    assert [t["id"] for t in turns] == [done["turn_id"]]
    return done["turn_id"], turns[0]["model"]


def _rollback_running(live_server) -> None:
    for e in live_server.api("GET", "/api/experiments").json():
        if e["status"] == "running":
            live_server.api("POST", f"/api/experiments/{e['id']}/rollback")


def test_operator_starts_an_ab_at_half_compares_the_arms_and_rolls_back(admin_page, live_server):
    page = admin_page
    token = page.console_token
    r = live_server.api("POST", "/api/models", json={"name": CANDIDATE, "backend": "echo"})
    assert r.status_code in (201, 409), r.text
    _rollback_running(live_server)
    try:
        page.goto(live_server.base_url + "/#/alignment/models")
        page.locator("[data-testid=ab-panel]").wait_for()
        page.locator("[data-testid=ab-new]").wait_for()
        assert "A/B" in page.locator(".card-h h3").filter(has_text="A/B").inner_text()
        page.select_option("[data-testid=ab-base]", "echo")
        page.select_option("[data-testid=ab-candidate]", CANDIDATE)
        page.fill("[data-testid=ab-new] [data-testid=ab-share-input]", "50")
        assert page.locator("[data-testid=ab-new] [data-testid=ab-share-label]").inner_text() == "50%"
        page.fill("[data-testid=ab-name]", "e2e-ab")
        with page.expect_response(lambda r: r.url.endswith("/api/experiments") and r.request.method == "POST") as resp:
            page.click("[data-testid=ab-start]")
        assert resp.value.status == 201, resp.value.text()
        assert resp.value.request.post_data_json == {"base": "echo", "candidate": CANDIDATE, "share": 0.5, "name": "e2e-ab"}
        exp_id = resp.value.json()["id"]
        page.locator("[data-testid=ab-status][data-status=running]").wait_for()
        assert page.locator("[data-testid=ab-share]").inner_text() == "50%"
        assert page.locator("[data-testid=ab-arms] tbody tr").count() == 2
        assert page.locator("[data-testid=ab-diff]").get_attribute("data-significant") == "false"

        # real traffic: new conversations until each arm answered two; base 👍 👎, candidate 👍 👍
        turns: dict[str, list[int]] = {"echo": [], CANDIDATE: []}
        for i in range(60):
            if all(len(v) >= 2 for v in turns.values()):
                break
            turn, model = _new_turn(live_server, token, f"A/B 测试问题 {i} question")
            turns[model].append(turn)
        assert all(len(v) >= 2 for v in turns.values()), {k: len(v) for k, v in turns.items()}
        for turn, rating in ((turns["echo"][0], 1), (turns["echo"][1], -1), (turns[CANDIDATE][0], 1),
                             (turns[CANDIDATE][1], 1)):
            fb = live_server.api("POST", f"/api/turns/{turn}/feedback", token=token, json={"rating": rating})
            assert fb.status_code == 200, fb.text

        page.click("[data-testid=ab-refresh]")
        page.locator("[data-testid=ab-diff][data-significant]").filter(has_text="+50.0").wait_for()
        cmp = live_server.api("GET", f"/api/experiments/{exp_id}", token=token).json()
        for arm, model, rate in (("base", "echo", 0.5), ("candidate", CANDIDATE, 1.0)):
            a = cmp["arms"][arm]
            assert (a["model"], a["turns"], a["rated"], a["up_rate"]) == (model, len(turns[model]), 2, rate)
            row = page.locator("[data-testid=ab-arms] tbody tr").filter(has=page.locator(f"[data-arm={arm}]"))
            assert row.locator("[data-testid=ab-turns]").inner_text() == str(len(turns[model]))
            assert row.locator("[data-testid=ab-rated]").inner_text() == "2"
            assert row.locator("[data-testid=ab-rate]").inner_text() == _pct(rate)
            assert row.locator("[data-testid=ab-ci]").inner_text() == f"[{_pct(a['ci95'][0])}, {_pct(a['ci95'][1])}]"
        lo, hi = cmp["difference"]["ci95"]
        assert lo < 0 < hi  # two ratings per arm prove nothing, and the page says so
        assert f"{100 * lo:.1f}" in page.locator("[data-testid=ab-diff]").inner_text()
        page.locator("[data-testid=ab-chart] .echart canvas").wait_for()
        # the chart's bars and error bars are the API's rates and intervals, in %
        opt = page.evaluate("(cmp) => { const o = window.ZhinaoAlignmentAB.option(cmp, 'en');"
                            " return { bars: o.series[0].data.map((d) => d.value), errs: o.series[1].data }; }", cmp)
        arms = [cmp["arms"]["base"], cmp["arms"]["candidate"]]
        assert opt["bars"] == [50.0, 100.0, 50.0]
        want = [[i, 100 * c[0], 100 * c[1]] for i, c in enumerate([a["ci95"] for a in arms] + [[lo, hi]])]
        assert [e[0] for e in opt["errs"]] == [0, 1, 2]
        for got_e, want_e in zip(opt["errs"], want, strict=True):  # shown to 0.1 point
            assert got_e[1:] == pytest.approx(want_e[1:], abs=0.051)

        # change the share
        page.fill("[data-testid=ab-experiment] [data-testid=ab-share-input]", "80")
        with page.expect_response(lambda r: r.url.endswith(f"/api/experiments/{exp_id}") and r.request.method == "PATCH") as resp:
            page.click("[data-testid=ab-share-apply]")
        assert resp.value.status == 200 and resp.value.request.post_data_json == {"share": 0.8}
        page.locator("[data-testid=ab-share][data-share='0.8']").wait_for()
        assert page.locator("[data-testid=ab-share]").inner_text() == "80%"

        # one click back (after the confirmation): share 0, the base model answers every new conversation
        page.click("[data-testid=ab-rollback]")
        page.click("[data-testid=confirm-ok]")
        page.locator("[data-testid=ab-status][data-status=rolled_back]").wait_for()
        assert page.locator("[data-testid=ab-share]").inner_text() == "0%"
        assert page.locator("[data-testid=ab-rollback]").count() == 0
        page.locator("[data-testid=ab-new]").wait_for()  # a new one can be started
        got = live_server.api("GET", f"/api/experiments/{exp_id}", token=token).json()["experiment"]
        assert (got["status"], got["share"]) == ("rolled_back", 0.0)
        after = [_new_turn(live_server, token, f"回滚之后 after rollback {i}")[1] for i in range(6)]
        assert after == ["echo"] * 6  # at share 0.8 six conversations all on base would be a 1-in-15625 fluke

        # the same panel in English
        page.evaluate("localStorage.setItem('zhinao.lang', 'en')")
        page.reload()
        page.locator("[data-testid=ab-status][data-status=rolled_back]").wait_for()
        assert page.locator("[data-testid=ab-status]").inner_text() == "rolled back"
        assert page.locator(".card-h h3").filter(has_text="A/B experiment").count() == 1
        assert page.locator("[data-testid=ab-arms] [data-arm=candidate]").inner_text() == "candidate"
    finally:
        _rollback_running(live_server)
        page.evaluate("localStorage.removeItem('zhinao.lang')")


def test_members_never_see_the_ab_panel(page, live_server):
    r = live_server.api("POST", "/api/users", json={"username": "e2e-ab-member", "password": "member-pass-123",
                                                   "role": "member"})
    assert r.status_code == 201, r.text
    token = live_server.login("e2e-ab-member", "member-pass-123")
    page.add_init_script(f"localStorage.setItem('zhinao.token', {json.dumps(token)});")
    page.goto(live_server.base_url + "/#/alignment/models")
    page.locator("[data-testid=align-prompt]").wait_for()  # the compare tab, the only one members have
    assert page.locator("[data-testid=ab-panel]").count() == 0
    assert page.locator("[data-testid=align-tab-models]").count() == 0
    assert live_server.api("GET", "/api/experiments", token=token).status_code == 403
    assert live_server.api("POST", "/api/experiments", token=token,
                           json={"base": "echo", "candidate": CANDIDATE, "share": 0.5}).status_code == 403
