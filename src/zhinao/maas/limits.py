"""Rate limits (requests/min, tokens/min) and quotas (tokens/day), per key and per tenant.

**Requests per minute** are a sliding log: every admitted request leaves its timestamp, and a
request is admitted only while fewer than ``rpm`` timestamps lie in the last 60 s. So no 60 s
window, wherever it starts, holds more than ``rpm`` admitted requests, and ``retry_after`` is
exact: the moment the oldest timestamp in the window leaves it. (The fixed minute windows this
replaced let a client make ``2 × rpm`` requests across a minute boundary, and told it "retry in
0 s".) The log costs one entry per admitted request per scope, bounded by ``rpm``.

**Tokens** are *reserved* before a generation starts (:meth:`LimitService.reserve`): the prompt
plus ``max_tokens`` (or the model's whole remaining context when the request sets none) is added
to the minute and day counters at once, capped to what is left, and the reply's ``max_tokens``
is lowered to the cap. Afterwards the :class:`Reservation` is settled with the real count and
the unused part is returned. Checking first and charging after (the old way) let one request
with ``tokens_per_day: 20`` get a 334-token reply, and let concurrent requests all see the same
unspent budget; a reservation is one atomic add per counter, so two requests can never both
spend the same tokens. Token counters stay in fixed windows (the minute, the UTC day) because a
hold must be adjustable after the fact; across a minute boundary a client can therefore spend up
to ``2 × tpm`` within 60 s (the daily quota bounds the total). The daily counter is seeded from
the usage table the first time it is touched, so a restart does not hand out a fresh quota.

**Where counters live**: in-process by default, in Redis when ``ZHINAO_REDIS_URL`` is set, so
several gateway replicas share one budget (the sliding log is a Lua script, atomic on the
server; timestamps come from the replica's clock, which must be NTP-synced). When Redis goes
away mid-request the limiter does not fail the request: :class:`FailoverCounters` logs a warning,
raises its ``degraded`` flag (:meth:`LimitService.status`, the ``zhinao_limits_degraded`` gauge),
and counts in process until Redis answers again (retried every ``retry_s``), then shared
counting resumes.

Every time read goes through an injectable ``clock`` (``time.time`` by default), so tests move
time instead of sleeping or hoping no minute boundary falls between two calls.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from zhinao.errors import QuotaExceeded, RateLimited
from zhinao.maas.tenancy import Principal

log = logging.getLogger(__name__)

Clock = Callable[[], float]
RPM_WINDOW_S = 60.0


class Counters(Protocol):
    """A tiny counter store: the one extension point for limit backends.

    ``now`` is passed in by the caller (the limit service's clock), so every backend agrees
    on time and tests can move it.
    """

    def incr(self, key: str, amount: int, ttl_s: int) -> int: ...
    def get(self, key: str) -> int | None: ...
    def seed(self, key: str, value: int, ttl_s: int) -> None:
        """Set ``key`` only if absent."""

    def hit(self, key: str, limit: int, window_s: float, now: float) -> tuple[float, str]:
        """Sliding log: admit one event at ``now`` if fewer than ``limit`` lie in ``(now - window_s, now]``.

        Returns:
            ``(0.0, member)`` when admitted (``member`` undoes it with :meth:`unhit`), else
            ``(retry_after, "")``: seconds until enough old events have left the window.
        """

    def unhit(self, key: str, member: str) -> None:
        """Remove one admitted event (a later scope refused the request)."""


class MemoryCounters:
    """Counters in this process (one gateway replica, or the fallback while Redis is away)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._d: dict[str, tuple[int, float]] = {}
        self._logs: dict[str, deque[tuple[float, str]]] = {}
        self._lock = threading.Lock()
        self.clock = clock

    def _live(self, key: str) -> int | None:
        v = self._d.get(key)
        if v is None:
            return None
        if v[1] < self.clock():
            del self._d[key]
            return None
        return v[0]

    def incr(self, key: str, amount: int, ttl_s: int) -> int:
        with self._lock:
            cur = self._live(key)
            exp = self._d[key][1] if cur is not None else self.clock() + ttl_s
            new = (cur or 0) + amount
            self._d[key] = (new, exp)
            if len(self._d) > 100_000:  # drop expired entries now and then
                now = self.clock()
                self._d = {k: v for k, v in self._d.items() if v[1] >= now}
            return new

    def get(self, key: str) -> int | None:
        with self._lock:
            return self._live(key)

    def seed(self, key: str, value: int, ttl_s: int) -> None:
        with self._lock:
            if self._live(key) is None:
                self._d[key] = (value, self.clock() + ttl_s)

    def hit(self, key: str, limit: int, window_s: float, now: float) -> tuple[float, str]:
        if limit <= 0:
            return window_s, ""
        with self._lock:
            q = self._logs.setdefault(key, deque())
            while q and q[0][0] <= now - window_s:
                q.popleft()
            if len(q) < limit:
                member = uuid.uuid4().hex
                q.append((now, member))
                if len(self._logs) > 100_000:  # forget idle logs now and then
                    self._logs = {k: v for k, v in self._logs.items() if v and v[-1][0] > now - window_s}
                return 0.0, member
            return q[len(q) - limit][0] + window_s - now, ""

    def unhit(self, key: str, member: str) -> None:
        with self._lock:
            q = self._logs.get(key)
            if q:
                self._logs[key] = deque(e for e in q if e[1] != member)


# KEYS[1] the log; ARGV: now, window_s, limit, member. Returns "0" (admitted) or the retry delay.
_HIT_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


class RedisCounters:
    """Counters shared by every replica through Redis.

    Connection errors propagate (no client-side retries: redis-py's default would stall a
    request for seconds of backoff); :class:`FailoverCounters` decides what to do with them.
    """

    def __init__(self, url: str, prefix: str = "zhinao:", *, timeout_s: float = 2.0):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.r = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                      retry=Retry(NoBackoff(), 0))
        self.prefix = prefix
        self._hit = self.r.register_script(_HIT_LUA)

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

    def hit(self, key: str, limit: int, window_s: float, now: float) -> tuple[float, str]:
        if limit <= 0:
            return window_s, ""
        member = f"{now!r}:{uuid.uuid4().hex}"
        wait = float(self._hit(keys=[self.prefix + key], args=[repr(now), repr(window_s), limit, member]))
        return (0.0, member) if wait <= 0 else (wait, "")

    def unhit(self, key: str, member: str) -> None:
        self.r.zrem(self.prefix + key, member)


class FailoverCounters:
    """Redis while it answers, in-process counters while it does not.

    A request never fails because Redis is down: the first error logs a warning, sets
    :attr:`degraded` and counts :attr:`failures`; until ``retry_s`` has passed every call goes to
    the local counters (no connect timeout per request), then Redis is tried again and, when it
    answers, shared counting resumes (logged). While degraded each replica enforces the limits
    on its own, so N replicas admit up to N × the limit: the trade for staying up.
    """

    def __init__(self, primary, fallback: MemoryCounters | None = None, *, retry_s: float = 5.0,
                 clock: Clock = time.time, errors: tuple[type[BaseException], ...] | None = None):
        if errors is None:
            import redis

            errors = (redis.ConnectionError, redis.TimeoutError, OSError)
        self.primary = primary
        self.fallback = fallback or MemoryCounters(clock)
        self.retry_s = retry_s
        self.clock = clock
        self.errors = errors
        self.degraded = False
        self.failures = 0  #: times Redis was found gone
        self.degraded_since: float | None = None
        self._next_try = 0.0
        self._lock = threading.Lock()

    def _call(self, name: str, *args):
        if self.degraded and self.clock() < self._next_try:
            return getattr(self.fallback, name)(*args)
        try:
            out = getattr(self.primary, name)(*args)
        except self.errors as e:
            with self._lock:
                if not self.degraded:
                    self.failures += 1
                    self.degraded_since = self.clock()
                    log.warning("Redis is unreachable (%s): rate limits and quotas are counted in this process "
                                "until it is back (retried every %.0fs)", e, self.retry_s)
                self.degraded = True
                self._next_try = self.clock() + self.retry_s
            return getattr(self.fallback, name)(*args)
        if self.degraded:
            with self._lock:
                if self.degraded:
                    log.warning("Redis is reachable again: rate limits and quotas are shared again "
                                "(counted locally for %.0fs)", self.clock() - (self.degraded_since or 0))
                    self.degraded, self.degraded_since = False, None
        return out

    def incr(self, key: str, amount: int, ttl_s: int) -> int:
        return self._call("incr", key, amount, ttl_s)

    def get(self, key: str) -> int | None:
        return self._call("get", key)

    def seed(self, key: str, value: int, ttl_s: int) -> None:
        self._call("seed", key, value, ttl_s)

    def hit(self, key: str, limit: int, window_s: float, now: float) -> tuple[float, str]:
        return self._call("hit", key, limit, window_s, now)

    def unhit(self, key: str, member: str) -> None:
        self._call("unhit", key, member)


class LimitsCollector:
    """Prometheus collector: ``zhinao_limits_degraded`` (1 while counting locally because Redis is
    gone) and ``zhinao_limits_redis_outages`` (times Redis was found gone since start)."""

    def __init__(self, limits: "LimitService"):
        self.limits = limits

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self.limits.status()
        yield GaugeMetricFamily("zhinao_limits_degraded", "1 while rate limits are counted in this process "
                                "because Redis is unreachable", value=1 if st["degraded"] else 0)
        yield CounterMetricFamily("zhinao_limits_redis_outages", "Times Redis was found unreachable by the limiter",
                                  value=st.get("failures", 0))


def make_counters(redis_url: str | None, *, clock: Clock = time.time) -> Counters:
    """Local counters, or Redis with the local fallback when ``redis_url`` is set."""
    if not redis_url:
        return MemoryCounters(clock)
    return FailoverCounters(RedisCounters(redis_url), MemoryCounters(clock), clock=clock)


class LimitService:
    """Enforces limits. ``used_today(scope_kind, scope_id)`` reads the usage table.

    Args:
        clock: seconds since the epoch; every window and Retry-After is computed from it.
    """

    def __init__(self, counters: Counters, used_today: Callable[[str, int], int],
                 tenant_limits: Callable[[int], dict[str, int | None]], *, clock: Clock = time.time):
        self.c = counters
        self.used_today = used_today
        self.tenant_limits = tenant_limits
        self.clock = clock

    def status(self) -> dict:
        """Where the counters live and whether they are degraded to this process."""
        c = self.c
        if isinstance(c, FailoverCounters):
            return {"backend": "redis", "degraded": c.degraded, "failures": c.failures,
                    "degraded_since": c.degraded_since}
        return {"backend": "redis" if isinstance(c, RedisCounters) else "memory", "degraded": False}

    def _now(self) -> tuple[int, str, float, float]:
        now = self.clock()
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
        reset = datetime.fromtimestamp(self.clock() + to_day, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return QuotaExceeded(f"the {self._label(kind)}'s daily token quota ({tpd}) is used up ({used} tokens "
                             f"today{why}); it resets at {reset}", retry_after=to_day)

    def _tpm_error(self, kind: str, tpm: int, to_minute: float, why: str = "") -> RateLimited:
        return RateLimited(f"the {self._label(kind)}'s token rate limit ({tpm} tokens/min) is reached{why}; "
                           f"retry in {math.ceil(to_minute)}s", retry_after=to_minute)

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

    def _count_request(self, scopes) -> None:
        """One request against every scope's rpm, all or nothing (a refused request leaves no trace)."""
        now = self.clock()
        taken: list[tuple[str, str]] = []
        for kind, sid, lim in scopes:
            rpm = lim.get("rpm")
            if rpm is None:
                continue
            key = f"rpm:{kind}{sid}"
            wait, member = self.c.hit(key, int(rpm), RPM_WINDOW_S, now)
            if member:
                taken.append((key, member))
                continue
            for k, m in taken:
                self.c.unhit(k, m)
            raise RateLimited(f"the {self._label(kind)}'s request rate limit ({rpm} requests/min) is "
                              f"reached; retry in {math.ceil(wait)}s", retry_after=wait)

    def check(self, p: Principal) -> None:
        """Raise 429 when a limit is reached; counts the request against rpm.

        For calls whose size is known only afterwards (embeddings); generations use :meth:`reserve`.
        """
        minute, day, to_minute, to_day = self._now()
        scopes = self._scopes(p)
        self._check_spent(scopes, minute, day, to_minute, to_day)
        self._count_request(scopes)

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
        self._count_request(scopes)
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
