"""Rate limits (requests/min, tokens/min) and quotas (tokens/day), per key and per tenant.

A generation *reserves* its tokens before it starts (:meth:`LimitService.reserve`): the
prompt plus ``max_tokens`` (or the model's whole remaining context when the request sets
none) is added to the minute and day counters at once, capped to what is left, and the
reply's ``max_tokens`` is lowered to the cap. Afterwards :meth:`Reservation` is settled
with the real count and the unused part is returned. Checking first and charging after
(the old way) let one request with ``tokens_per_day: 20`` get a 334-token reply, and let
concurrent requests all see the same unspent budget; a reservation is one atomic add per
counter, so two requests can never both spend the same tokens.

Counters live in-process by default and in Redis when ``ZHINAO_REDIS_URL`` is set, so
several gateway replicas share one budget. Windows are fixed (minute / UTC day); the daily
counter is seeded from the usage table the first time it is touched, so a restart does not
hand out a fresh quota.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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

    def _label(self, kind: str) -> str:
        return "tenant" if kind == "t" else "API key"

    def _quota_error(self, kind: str, tpd: int, used: int, to_day: float, why: str = "") -> QuotaExceeded:
        reset = datetime.fromtimestamp(time.time() + to_day, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return QuotaExceeded(f"the {self._label(kind)}'s daily token quota ({tpd}) is used up ({used} tokens "
                             f"today{why}); it resets at {reset}", retry_after=to_day)

    def _tpm_error(self, kind: str, tpm: int, to_minute: float, why: str = "") -> RateLimited:
        return RateLimited(f"the {self._label(kind)}'s token rate limit ({tpm} tokens/min) is reached{why}; "
                           f"retry in {to_minute:.0f}s", retry_after=to_minute)

    def _check_spent(self, scopes, minute: int, day: str, to_minute: float, to_day: float) -> None:
        for kind, sid, lim in scopes:
            tpd = lim.get("tokens_per_day")
            if tpd is not None:
                used = self.c.get(self._day_key(kind, sid, day)) or 0
                if used >= tpd:
                    raise self._quota_error(kind, tpd, used, to_day)
            tpm = lim.get("tpm")
            if tpm is not None and (self.c.get(f"tpm:{kind}{sid}:{minute}") or 0) >= tpm:
                raise self._tpm_error(kind, tpm, to_minute)

    def _count_request(self, scopes, minute: int, to_minute: float) -> None:
        for kind, sid, lim in scopes:
            rpm = lim.get("rpm")
            if rpm is not None:
                n = self.c.incr(f"rpm:{kind}{sid}:{minute}", 1, 120)
                if n > rpm:
                    raise RateLimited(f"the {self._label(kind)}'s request rate limit ({rpm} requests/min) is "
                                      f"reached; retry in {to_minute:.0f}s", retry_after=to_minute)

    def check(self, p: Principal) -> None:
        """Raise 429 when a limit is reached; counts the request against rpm.

        For calls whose size is known only afterwards (embeddings); generations use :meth:`reserve`.
        """
        minute, day, to_minute, to_day = self._now()
        scopes = self._scopes(p)
        self._check_spent(scopes, minute, day, to_minute, to_day)
        self._count_request(scopes, minute, to_minute)

    def reserve(self, p: Principal, *, prompt_tokens: int, max_tokens: int | None,
                default_budget: int) -> "Reservation":
        """Count the request against rpm and hold ``prompt_tokens`` + the reply's budget.

        Args:
            prompt_tokens: estimated prompt size (must fit, or the request is refused).
            max_tokens: the reply budget the client asked for; None means ``default_budget``
                (the model's remaining context), so a request without ``max_tokens`` cannot
                outgrow the quota either; 0 for calls without a reply (embeddings).
            default_budget: reply tokens the model could produce when unbounded.

        Returns:
            A :class:`Reservation` whose ``max_tokens`` is the reply budget that fits every
            limit (None when no token limit applies); settle it after the generation.

        Raises:
            QuotaExceeded / RateLimited (429 with Retry-After) when the budget is spent or not
            even the prompt plus one reply token fits.
        """
        minute, day, to_minute, to_day = self._now()
        scopes = self._scopes(p)
        self._check_spent(scopes, minute, day, to_minute, to_day)
        self._count_request(scopes, minute, to_minute)
        prompt_tokens = max(0, int(prompt_tokens))
        budget = max(0, int(max_tokens if max_tokens is not None else default_budget))
        need = prompt_tokens + (1 if budget else 0)  # the prompt and, for a reply, one token of it
        want = prompt_tokens + budget
        counters: list[tuple[str, int, int, str, str]] = []  # key, limit, ttl, scope kind, limit kind
        for kind, sid, lim in scopes:
            if lim.get("tokens_per_day") is not None:
                counters.append((self._day_key(kind, sid, day), lim["tokens_per_day"], 90000, kind, "tpd"))
            if lim.get("tpm") is not None:
                counters.append((f"tpm:{kind}{sid}:{minute}", lim["tpm"], 120, kind, "tpm"))
        res = Reservation(self, prompt_tokens=prompt_tokens)
        if not counters:
            return res
        grant = want
        for key, limit, ttl, kind, what in counters:
            after = self.c.incr(key, want, ttl)  # one atomic add: concurrent requests see each other
            held = want - max(0, after - limit)
            if held < need:  # not even the prompt and one reply token fit
                self.c.incr(key, -want, ttl)
                res.release()
                used = after - want
                why = f"; this request needs at least {need} and only {max(0, limit - used)} are left"
                if what == "tpd":
                    raise self._quota_error(kind, limit, used, to_day, why)
                raise self._tpm_error(kind, limit, to_minute, why)
            if held < want:
                self.c.incr(key, held - want, ttl)  # give back what does not fit
            res.holds.append([key, held, ttl])
            grant = min(grant, held)
        for h in res.holds:  # every counter holds the same amount: the smallest grant
            if h[1] > grant:
                self.c.incr(h[0], grant - h[1], h[2])
                h[1] = grant
        res.max_tokens = grant - prompt_tokens
        return res

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


@dataclass
class Reservation:
    """Tokens held on the counters for one generation, until :meth:`settle`.

    The holds stay on the counters they were taken from (this minute's, today's), so a
    reply that ends after the minute turns still settles the minute it was admitted in.
    """

    limits: LimitService
    prompt_tokens: int = 0
    #: the reply budget that fits every limit; None when no token limit applies
    max_tokens: int | None = None
    holds: list[list] = field(default_factory=list)  #: [counter key, tokens held, ttl]
    settled: bool = False

    @property
    def held(self) -> int:
        return self.holds[0][1] if self.holds else 0

    def settle(self, used: int) -> None:
        """Replace the hold with the real count (returns the unused part). Idempotent."""
        if self.settled:
            return
        self.settled = True
        used = max(0, int(used))
        for key, held, ttl in self.holds:
            if used != held:
                self.limits.c.incr(key, used - held, ttl)

    def release(self) -> None:
        """Give the whole hold back (the request never ran)."""
        self.settle(0)
