"""Rate limits (requests/min, tokens/min) and quotas (tokens/day), per key and per tenant.

Checked before generation, charged after it. Counters live in-process by default and in
Redis when ``ZHINAO_REDIS_URL`` is set, so several gateway replicas share one budget.
Windows are fixed (minute / UTC day); the daily counter is seeded from the usage table
the first time it is touched, so a restart does not hand out a fresh quota.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Protocol

from zhinao.errors import QuotaExceeded, RateLimited
from zhinao.maas.tenancy import Principal


class Counters(Protocol):
    """A tiny counter store: the one extension point for limit backends."""

    def incr(self, key: str, amount: int, ttl_s: int) -> int: ...
    def get(self, key: str) -> int | None: ...
    def seed(self, key: str, value: int, ttl_s: int) -> None:
        """Set ``key`` only if absent."""


class MemoryCounters:
    def __init__(self) -> None:
        self._d: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str) -> int | None:
        v = self._d.get(key)
        if v is None:
            return None
        if v[1] < time.time():
            del self._d[key]
            return None
        return v[0]

    def incr(self, key: str, amount: int, ttl_s: int) -> int:
        with self._lock:
            cur = self._live(key)
            exp = self._d[key][1] if cur is not None else time.time() + ttl_s
            new = (cur or 0) + amount
            self._d[key] = (new, exp)
            if len(self._d) > 100_000:  # drop expired entries now and then
                now = time.time()
                self._d = {k: v for k, v in self._d.items() if v[1] >= now}
            return new

    def get(self, key: str) -> int | None:
        with self._lock:
            return self._live(key)

    def seed(self, key: str, value: int, ttl_s: int) -> None:
        with self._lock:
            if self._live(key) is None:
                self._d[key] = (value, time.time() + ttl_s)


class RedisCounters:
    def __init__(self, url: str, prefix: str = "zhinao:"):
        import redis

        self.r = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    def incr(self, key: str, amount: int, ttl_s: int) -> int:
        k = self.prefix + key
        pipe = self.r.pipeline()
        pipe.incrby(k, amount)
        pipe.expire(k, ttl_s, nx=True)
        return int(pipe.execute()[0])

    def get(self, key: str) -> int | None:
        v = self.r.get(self.prefix + key)
        return int(v) if v is not None else None

    def seed(self, key: str, value: int, ttl_s: int) -> None:
        self.r.set(self.prefix + key, value, ex=ttl_s, nx=True)


def make_counters(redis_url: str | None) -> Counters:
    return RedisCounters(redis_url) if redis_url else MemoryCounters()


class LimitService:
    """Enforces limits. ``used_today(scope_kind, scope_id)`` reads the usage table."""

    def __init__(self, counters: Counters, used_today: Callable[[str, int], int],
                 tenant_limits: Callable[[int], dict[str, int | None]]):
        self.c = counters
        self.used_today = used_today
        self.tenant_limits = tenant_limits

    @staticmethod
    def _now() -> tuple[int, str, float, float]:
        now = time.time()
        minute = int(now // 60)
        day = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d")
        to_minute = 60 - now % 60
        to_day = 86400 - now % 86400
        return minute, day, to_minute, to_day

    def _scopes(self, p: Principal) -> list[tuple[str, int, dict[str, int | None]]]:
        scopes = [("t", p.tenant_id, self.tenant_limits(p.tenant_id))]
        if p.key_id is not None:
            scopes.append(("k", p.key_id, p.limits))
        return scopes

    def _day_key(self, kind: str, sid: int, day: str) -> str:
        key = f"tpd:{kind}{sid}:{day}"
        if self.c.get(key) is None:
            self.c.seed(key, self.used_today(kind, sid), 90000)
        return key

    def check(self, p: Principal) -> None:
        """Raise 429 when a limit is reached; counts the request against rpm."""
        minute, day, to_minute, to_day = self._now()
        scopes = self._scopes(p)
        for kind, sid, lim in scopes:
            label = "tenant" if kind == "t" else "API key"
            tpd = lim.get("tokens_per_day")
            if tpd is not None:
                used = self.c.get(self._day_key(kind, sid, day)) or 0
                if used >= tpd:
                    reset = datetime.fromtimestamp(time.time() + to_day, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    raise QuotaExceeded(f"the {label}'s daily token quota ({tpd}) is used up ({used} tokens today); "
                                        f"it resets at {reset}", retry_after=to_day)
            tpm = lim.get("tpm")
            if tpm is not None and (self.c.get(f"tpm:{kind}{sid}:{minute}") or 0) >= tpm:
                raise RateLimited(f"the {label}'s token rate limit ({tpm} tokens/min) is reached; "
                                  f"retry in {to_minute:.0f}s", retry_after=to_minute)
        for kind, sid, lim in scopes:
            rpm = lim.get("rpm")
            if rpm is not None:
                n = self.c.incr(f"rpm:{kind}{sid}:{minute}", 1, 120)
                if n > rpm:
                    label = "tenant" if kind == "t" else "API key"
                    raise RateLimited(f"the {label}'s request rate limit ({rpm} requests/min) is reached; "
                                      f"retry in {to_minute:.0f}s", retry_after=to_minute)

    def charge(self, p: Principal, tokens: int) -> None:
        """Add tokens used by a finished request to the minute and day counters."""
        if tokens <= 0:
            return
        minute, day, _, _ = self._now()
        for kind, sid, lim in self._scopes(p):
            if lim.get("tpm") is not None:
                self.c.incr(f"tpm:{kind}{sid}:{minute}", tokens, 120)
            if lim.get("tokens_per_day") is not None:
                self.c.incr(self._day_key(kind, sid, day), tokens, 90000)
