"""Finding 10: a key with ``tokens_per_day: 20`` got one 334-token reply.

Limits were checked before generation and charged after it, so one request could spend far
beyond the quota, and concurrent requests all saw the same unspent budget. Now the prompt and
the reply budget are reserved atomically before generation (capped to what is left, the
reply's ``max_tokens`` lowered to fit) and settled with the real count afterwards.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from zhinao.errors import QuotaExceeded, RateLimited
from zhinao.gateway.app import create_app
from zhinao.maas.limits import LimitService, MemoryCounters, RedisCounters
from zhinao.maas.tenancy import Principal
from zhinao.platform import Platform


def principal(key_id=1, **limits):
    return Principal(tenant_id=1, tenant="t", user_id=None, username=None, key_id=key_id, role="member",
                     limits={"rpm": None, "tpm": None, "tokens_per_day": None, **limits})


@pytest.fixture(params=["memory", "redis"])
def limits(request):
    counters = MemoryCounters() if request.param == "memory" else RedisCounters(request.getfixturevalue("redis_url"))
    return LimitService(counters, lambda kind, sid: 0, lambda tid: {})


def day_used(svc: LimitService, key_id: int) -> int:
    _, day, _, _ = svc._now()
    return svc.c.get(f"tpd:k{key_id}:{day}") or 0


# -- the limit service, on local counters and on the real Redis -----------------------------------
def test_reply_budget_is_capped_to_what_is_left(limits):
    p = principal(tokens_per_day=20)
    r = limits.reserve(p, prompt_tokens=3, max_tokens=None, default_budget=4000)  # no max_tokens: whole context
    assert r.max_tokens == 17 and day_used(limits, 1) == 20  # the whole rest is held while it runs
    r.settle(3 + 5)
    assert day_used(limits, 1) == 8  # the unused 12 came back
    r2 = limits.reserve(p, prompt_tokens=3, max_tokens=100, default_budget=4000)
    assert r2.max_tokens == 20 - 8 - 3
    r2.settle(3 + 9)
    assert day_used(limits, 1) == 20
    with pytest.raises(QuotaExceeded, match="resets at"):
        limits.reserve(p, prompt_tokens=1, max_tokens=1, default_budget=4000)


def test_a_prompt_that_does_not_fit_is_refused_and_holds_nothing(limits):
    p = principal(tokens_per_day=20)
    with pytest.raises(QuotaExceeded, match="needs at least 26 and only 20 are left") as e:
        limits.reserve(p, prompt_tokens=25, max_tokens=10, default_budget=4000)
    assert e.value.status == 429 and int(e.value.headers["Retry-After"]) >= 1
    assert day_used(limits, 1) == 0
    assert limits.reserve(p, prompt_tokens=5, max_tokens=10, default_budget=4000).max_tokens == 10


def test_a_small_max_tokens_is_kept_and_unused_reservation_returned(limits):
    p = principal(tokens_per_day=1000, tpm=500)
    r = limits.reserve(p, prompt_tokens=10, max_tokens=50, default_budget=4000)
    assert r.max_tokens == 50 and r.held == 60
    minute, day, _, _ = limits._now()
    assert limits.c.get(f"tpm:k1:{minute}") == 60
    r.settle(10 + 7)
    r.settle(10 + 7)  # idempotent
    assert day_used(limits, 1) == 17 and limits.c.get(f"tpm:k1:{minute}") == 17


def test_tpm_is_reserved_too(limits):
    p = principal(tpm=30)
    r = limits.reserve(p, prompt_tokens=5, max_tokens=None, default_budget=4000)
    assert r.max_tokens == 25
    with pytest.raises(RateLimited, match="tokens/min"):
        limits.reserve(p, prompt_tokens=5, max_tokens=1, default_budget=4000)
    r.release()
    assert limits.reserve(p, prompt_tokens=5, max_tokens=1, default_budget=4000).max_tokens == 1


def test_tenant_and_key_hold_the_same_amount(limits):
    svc = LimitService(limits.c, lambda kind, sid: 0, lambda tid: {"tokens_per_day": 50})
    p = principal(key_id=3, tokens_per_day=30)
    r = svc.reserve(p, prompt_tokens=4, max_tokens=None, default_budget=4000)
    assert r.max_tokens == 26  # the key's 30 is the tighter
    _, day, _, _ = svc._now()
    assert svc.c.get(f"tpd:t1:{day}") == 30 and svc.c.get(f"tpd:k3:{day}") == 30
    r.settle(10)
    assert svc.c.get(f"tpd:t1:{day}") == 10 and svc.c.get(f"tpd:k3:{day}") == 10


def test_concurrent_reservations_never_share_the_budget(limits):
    """32 threads race for 20 tokens; what they hold together never exceeds 20."""
    p = principal(key_id=9, tokens_per_day=20)
    start = threading.Barrier(32)

    def one(_):
        start.wait()
        try:
            return limits.reserve(p, prompt_tokens=2, max_tokens=5, default_budget=4000)
        except QuotaExceeded:
            return None

    with ThreadPoolExecutor(32) as pool:
        got = [r for r in pool.map(one, range(32)) if r is not None]
    assert got and sum(r.held for r in got) <= 20
    assert day_used(limits, 9) == sum(r.held for r in got)
    assert all(r.max_tokens >= 1 for r in got)


# -- through the real app --------------------------------------------------------------------------
@pytest.fixture
def app_platform(settings):
    settings.models_path.parent.mkdir(parents=True, exist_ok=True)
    settings.models_path.write_text('[[models]]\nname = "slow"\nbackend = "echo"\nslots = 4\n'
                                    'options = { delay_s = 0.05 }\n', encoding="utf-8")
    return Platform(settings)


@pytest.fixture
def client(app_platform):
    with TestClient(create_app(app_platform, warm_default=False)) as c:
        yield c


def key(platform, **limits) -> tuple[dict, int]:
    tid = platform.tenancy.tenant_by_name("default")["id"]
    k = platform.tenancy.create_key(tid, name="quota", role="member", **limits)
    return {"Authorization": f"Bearer {k['key']}"}, k["id"]


WORDS15 = " ".join(f"w{i}" for i in range(15))  # echo: 18 prompt tokens, a 15-token reply


def test_no_reply_exceeds_the_remaining_daily_budget(client, app_platform):
    auth, key_id = key(app_platform, tokens_per_day=20)
    r = client.post("/v1/chat/completions", headers=auth,
                    json={"model": "echo", "messages": [{"role": "user", "content": WORDS15}]})
    assert r.status_code == 200, r.text
    u = r.json()["usage"]
    assert u["prompt_tokens"] == 18 and u["completion_tokens"] == 2  # 20 - 18 left for the reply
    assert r.json()["choices"][0]["finish_reason"] == "length"
    assert u["total_tokens"] <= 20
    r = client.post("/v1/chat/completions", headers=auth,
                    json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota", r.text
    assert int(r.headers["Retry-After"]) >= 1


def test_a_prompt_larger_than_the_quota_is_refused_before_generation(client, app_platform):
    auth, key_id = key(app_platform, tokens_per_day=10)
    r = client.post("/v1/chat/completions", headers=auth,
                    json={"model": "echo", "messages": [{"role": "user", "content": WORDS15}], "stream": True})
    assert r.status_code == 429 and "needs at least" in r.json()["error"]["message"], r.text
    assert app_platform.usage.used_today("k", key_id) == 0


def test_two_concurrent_requests_cannot_both_spend_the_same_budget(client, app_platform):
    auth, key_id = key(app_platform, tokens_per_day=24)
    words9 = " ".join(f"w{i}" for i in range(9))  # 12 prompt tokens, a 9-token reply: 21 each
    body = {"model": "slow", "messages": [{"role": "user", "content": words9}]}
    go = threading.Barrier(2)

    def one(_):
        go.wait()
        return client.post("/v1/chat/completions", headers=auth, json=body)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, range(2)))
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 429], [r.text for r in results]
    assert time.perf_counter() - t0 < 10
    assert app_platform.usage.used_today("k", key_id) <= 24


def test_settling_returns_the_unused_reservation(client, app_platform):
    auth, key_id = key(app_platform, tokens_per_day=100)
    day_key = f"tpd:k{key_id}:{app_platform.limits._now()[1]}"
    r = client.post("/v1/chat/completions", headers=auth,
                    json={"model": "echo", "max_tokens": 50, "messages": [{"role": "user", "content": "a b c d e"}]})
    assert r.status_code == 200 and r.json()["usage"]["total_tokens"] == 13, r.text
    assert app_platform.limits.c.get(day_key) == 13  # 58 were held, 45 came back
    # what came back is spendable: an 80-token budget now fits 100 - 13 - 8 = 79
    r = client.post("/v1/chat/completions", headers=auth,
                    json={"model": "echo", "max_tokens": 80, "messages": [{"role": "user", "content": "a b c d e"}]})
    assert r.status_code == 200 and app_platform.limits.c.get(day_key) == 26
    # an embedding is held and settled the same way (its size is known up front)
    r = client.post("/v1/embeddings", headers=auth, json={"model": "hash", "input": "a b c"})
    assert r.status_code == 200 and app_platform.limits.c.get(day_key) == 29, r.text
