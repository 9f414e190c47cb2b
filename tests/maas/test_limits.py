"""Rate limits and quotas, in memory and in the real Redis (shared between replicas)."""

from __future__ import annotations

import pytest

from zhinao.errors import QuotaExceeded, RateLimited
from zhinao.maas.limits import LimitService, MemoryCounters, RedisCounters
from zhinao.maas.tenancy import Principal


def principal(key_id=1, **limits):
    return Principal(tenant_id=1, tenant="t", user_id=None, username=None, key_id=key_id, role="member",
                     limits={"rpm": None, "tpm": None, "tokens_per_day": None, **limits})


def service(counters, used=0, tenant_limits=None):
    return LimitService(counters, lambda kind, sid: used, lambda tid: tenant_limits or {})


@pytest.fixture(params=["memory", "redis"])
def counters_factory(request):
    if request.param == "memory":
        shared = MemoryCounters()
        return lambda: shared
    url = request.getfixturevalue("redis_url")
    return lambda: RedisCounters(url)


def test_rpm(counters_factory):
    s = service(counters_factory())
    p = principal(rpm=3)
    for _ in range(3):
        s.check(p)
    with pytest.raises(RateLimited, match="3 requests/min") as e:
        s.check(p)
    assert 1 <= e.value.retry_after <= 60


def test_tpm_and_daily_quota(counters_factory):
    s = service(counters_factory())
    p = principal(tpm=100, tokens_per_day=150)
    s.check(p)
    s.charge(p, 120)
    with pytest.raises(RateLimited, match="tokens/min"):
        s.check(p)
    s.charge(p, 40)
    with pytest.raises(QuotaExceeded, match="resets at"):
        s.check(p)


def test_daily_quota_survives_restart_via_usage_table(counters_factory):
    s = service(counters_factory(), used=500)  # the usage table says 500 tokens were used today
    with pytest.raises(QuotaExceeded):
        s.check(principal(key_id=7, tokens_per_day=400))


def test_tenant_limits_apply_to_all_keys(counters_factory):
    s = service(counters_factory(), tenant_limits={"rpm": 2})
    s.check(principal(key_id=1))
    s.check(principal(key_id=2))
    with pytest.raises(RateLimited, match="tenant"):
        s.check(principal(key_id=3))


@pytest.mark.redis
def test_two_replicas_share_redis_counters(redis_url):
    a, b = service(RedisCounters(redis_url)), service(RedisCounters(redis_url))
    p = principal(key_id=42, rpm=2)
    a.check(p)
    b.check(p)
    with pytest.raises(RateLimited):
        a.check(p)
