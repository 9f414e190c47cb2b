"""Rate limits and quotas, in memory and in the real Redis (shared between replicas).

Time is a :class:`Clock` the tests move, never the wall: the fixed-minute limiter this replaced
failed ``retry_after >= 1`` whenever a minute boundary fell between two calls, and let a client
make 2 × rpm requests across one.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from zhinao.errors import QuotaExceeded, RateLimited
from zhinao.maas.limits import FailoverCounters, LimitService, LimitsCollector, MemoryCounters, RedisCounters
from zhinao.maas.tenancy import Principal

from tests.conftest import require


class Clock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def principal(key_id=1, **limits):
    return Principal(tenant_id=1, tenant="t", user_id=None, username=None, key_id=key_id, role="member",
                     limits={"rpm": None, "tpm": None, "tokens_per_day": None, **limits})


def service(counters, used=0, tenant_limits=None, clock=None):
    return LimitService(counters, lambda kind, sid: used, lambda tid: tenant_limits or {},
                        clock=clock or time.time)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["memory", "redis"])
def counters_factory(request, clock):
    """Counters on this process or on the real Redis (a fresh key prefix: other sessions share it)."""
    if request.param == "memory":
        shared = MemoryCounters(clock)
        return lambda: shared
    url = request.getfixturevalue("redis_url")
    prefix = f"zhinao-test:{uuid.uuid4().hex[:8]}:"
    return lambda: RedisCounters(url, prefix)


def test_rpm(counters_factory, clock):
    s = service(counters_factory(), clock=clock)
    p = principal(rpm=3)
    for _ in range(3):
        s.check(p)
    with pytest.raises(RateLimited, match="3 requests/min") as e:
        s.check(p)
    assert e.value.retry_after == pytest.approx(60)  # the first call leaves the window in exactly 60 s


def test_rpm_retry_after_is_exact_across_a_minute_boundary(counters_factory, clock):
    """The old limiter: calls at :59.5 and then :00.0 of the next minute were in different windows,
    and retry_after was 0.5 (the time to the next boundary), not the time the oldest call leaves."""
    clock.t = 1_800_000_000 // 60 * 60 + 59.5  # half a second before a minute boundary
    s = service(counters_factory(), clock=clock)
    p = principal(rpm=2)
    s.check(p)
    clock.advance(0.5)  # the boundary
    s.check(p)
    clock.advance(0.25)
    with pytest.raises(RateLimited) as e:
        s.check(p)
    assert e.value.retry_after == pytest.approx(59.25)  # the first call leaves at +60 s
    assert e.value.headers["Retry-After"] == "60" and "retry in 60s" in e.value.message
    clock.advance(59.25)
    s.check(p)  # exactly when promised
    with pytest.raises(RateLimited) as e:
        s.check(p)
    assert e.value.retry_after == pytest.approx(0.5)  # the second call (at the boundary) leaves 0.5 s later


def test_no_60s_window_holds_more_than_rpm(counters_factory, clock):
    """A client that retries every 0.5 s for 4 minutes, minute boundaries included: every 60 s
    window, wherever it starts, holds at most rpm admitted requests (fixed windows gave 2 × rpm)."""
    rpm = 5
    s = service(counters_factory(), clock=clock)
    p = principal(rpm=rpm)
    admitted = []
    for _ in range(480):
        try:
            s.check(p)
            admitted.append(clock.t)
        except RateLimited as e:
            assert 0 < e.retry_after <= 60
        clock.advance(0.5)
    worst = max(sum(1 for t in admitted if a <= t < a + 60) for a in admitted)
    assert worst == rpm
    assert len(admitted) >= 4 * rpm  # and the limit is not stricter than rpm per 60 s either


def test_a_refused_request_is_not_counted(counters_factory, clock):
    """Tenant allows it, the key refuses it: the tenant's log must not keep the refused call."""
    s = service(counters_factory(), tenant_limits={"rpm": 3}, clock=clock)
    s.check(principal(key_id=1, rpm=1))
    for _ in range(5):
        with pytest.raises(RateLimited, match="API key"):
            s.check(principal(key_id=1, rpm=1))
    s.check(principal(key_id=2))
    s.check(principal(key_id=3))  # 3 admitted for the tenant, the 5 refused ones did not count
    with pytest.raises(RateLimited, match="tenant"):
        s.check(principal(key_id=4))


def test_tpm_and_daily_quota(counters_factory, clock):
    s = service(counters_factory(), clock=clock)
    p = principal(tpm=100, tokens_per_day=150)
    s.check(p)
    s.charge(p, 120)
    with pytest.raises(RateLimited, match="tokens/min") as e:
        s.check(p)
    assert e.value.retry_after == pytest.approx(60 - clock.t % 60)
    s.charge(p, 40)
    with pytest.raises(QuotaExceeded, match="resets at") as e:
        s.check(p)
    assert e.value.retry_after == pytest.approx(86400 - clock.t % 86400)
    clock.advance(86400)  # a new day: the quota is back
    s.check(p)


def test_daily_quota_survives_restart_via_usage_table(counters_factory, clock):
    s = service(counters_factory(), used=500, clock=clock)  # the usage table says 500 tokens were used today
    with pytest.raises(QuotaExceeded):
        s.check(principal(key_id=7, tokens_per_day=400))


def test_tenant_limits_apply_to_all_keys(counters_factory, clock):
    s = service(counters_factory(), tenant_limits={"rpm": 2}, clock=clock)
    s.check(principal(key_id=1))
    s.check(principal(key_id=2))
    with pytest.raises(RateLimited, match="tenant"):
        s.check(principal(key_id=3))


@pytest.mark.redis
def test_two_replicas_share_redis_counters(redis_url, clock):
    prefix = f"zhinao-test:{uuid.uuid4().hex[:8]}:"
    a = service(RedisCounters(redis_url, prefix), clock=clock)
    b = service(RedisCounters(redis_url, prefix), clock=clock)
    p = principal(key_id=42, rpm=2)
    a.check(p)
    b.check(p)
    with pytest.raises(RateLimited):
        a.check(p)


# -- Redis going away mid-request ----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A redis-server of this test's own (the shared one on 6379 must never be stopped)."""

    def __init__(self):
        exe = shutil.which("redis-server")
        require(exe is not None, "redis-server is not installed (scripts/test_deps.sh installs it)")
        self.exe, self.port, self.proc = exe, _free_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # ready when it accepts a connection
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not listen on port {self.port} within 30 s")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def own_redis():
    r = OwnRedis()
    r.start()
    yield r
    if r.proc is not None and r.proc.poll() is None:
        r.kill()


def test_redis_going_away_degrades_to_local_counting_and_recovers(own_redis, clock, caplog):
    """Before: a ConnectionError from the limiter was a 500 for every request while Redis was down."""
    counters = FailoverCounters(RedisCounters(own_redis.url, timeout_s=1), MemoryCounters(clock), retry_s=5,
                                clock=clock)
    s = service(counters, clock=clock)
    peer = service(RedisCounters(own_redis.url), clock=clock)  # another replica, on the shared counters
    p = principal(key_id=5, rpm=3)
    s.check(p)
    peer.check(p)  # 2 of 3 used, shared
    assert s.status() == {"backend": "redis", "degraded": False, "failures": 0, "degraded_since": None}

    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="zhinao.maas.limits"):
        s.check(p)  # decided locally (the local log is empty), no exception
    assert "Redis is unreachable" in caplog.text
    st = s.status()
    assert st["degraded"] is True and st["failures"] == 1
    s.check(p)
    s.check(p)
    with pytest.raises(RateLimited):  # local counting still enforces rpm
        s.check(p)
    gauges = {m.name: m.samples[0].value for m in LimitsCollector(s).collect()}
    assert gauges["zhinao_limits_degraded"] == 1 and gauges["zhinao_limits_redis_outages"] == 1

    own_redis.start()  # back, empty (--save ''); the next try after retry_s reconnects
    clock.advance(5)
    peer.check(p)
    peer.check(p)
    peer.check(p)  # the peer filled the shared log ...
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zhinao.maas.limits"):
        with pytest.raises(RateLimited):  # ... and this replica sees it: shared counting resumed
            s.check(principal(key_id=5, rpm=3))
    assert "reachable again" in caplog.text
    assert s.status()["degraded"] is False
    assert next(iter(LimitsCollector(s).collect())).samples[0].value == 0


def test_redis_gone_through_the_api_gives_200_then_429_not_500(own_redis, settings, monkeypatch):
    """The gateway with ZHINAO_REDIS_URL pointing at a Redis that is killed mid-run."""
    from fastapi.testclient import TestClient

    from zhinao.gateway.app import create_app
    from tests.conftest import ADMIN_KEY

    monkeypatch.setenv("ZHINAO_REDIS_URL", own_redis.url)
    monkeypatch.setenv("ZHINAO_METRICS_TOKEN", "metrics-token-for-the-test")
    from zhinao.settings import get_settings

    get_settings.cache_clear()
    with TestClient(create_app(warm_default=False)) as c:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        r = c.post("/api/keys", json={"name": "limited", "rpm": 2}, headers=admin)
        assert r.status_code in (200, 201), r.text
        key = {"Authorization": f"Bearer {r.json()['key']}"}
        body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
        assert c.post("/v1/chat/completions", json=body, headers=key).status_code == 200
        own_redis.kill()
        assert c.post("/v1/chat/completions", json=body, headers=key).status_code == 200  # decided locally
        assert c.post("/v1/chat/completions", json=body, headers=key).status_code == 200
        r = c.post("/v1/chat/completions", json=body, headers=key)
        assert r.status_code == 429 and "requests/min" in r.json()["error"]["message"], r.text
        m = c.get("/metrics", headers={"Authorization": "Bearer metrics-token-for-the-test"})
        assert "zhinao_limits_degraded 1.0" in m.text
    get_settings.cache_clear()
