"""Sign-in backoff: wrong passwords slow down per account and per client address.

Each key (``user:<tenant>/<name>``, ``ip:<address>``) may fail a few times for free; after
that every further failure doubles a lock-out (``base_s``, 2x, 4x … up to ``max_s``) during
which sign-in for that key answers 429 with Retry-After *before* the password is checked,
so a locked account cannot be probed and scrypt time cannot be spent on guesses. A success
clears the account's counter (not the address's: one good password must not reset a
spraying client). Failures older than ``window_s`` are forgotten.

The state lives in this process (one gateway process per installation is the embedded
deployment); the clock is injectable so tests can move time without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zhinao.errors import RateLimited


@dataclass
class _Entry:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self, *, user_free: int = 5, ip_free: int = 20, base_s: float = 1.0, max_s: float = 300.0,
                 window_s: float = 900.0, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000):
        self.user_free, self.ip_free = user_free, ip_free
        self.base_s, self.max_s, self.window_s = base_s, max_s, window_s
        self.clock = clock
        self.max_entries = max_entries  #: bound memory under a spray of random usernames
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def keys(account: str, ip: str | None) -> list[str]:
        return [f"user:{account.lower()}"] + ([f"ip:{ip}"] if ip else [])

    def _free(self, key: str) -> int:
        return self.ip_free if key.startswith("ip:") else self.user_free

    def check(self, keys: Iterable[str]) -> None:
        """Raise :class:`RateLimited` while any key is locked out."""
        now = self.clock()
        with self._lock:
            wait = max((e.locked_until - now for k in keys if (e := self._entries.get(k)) is not None), default=0.0)
        if wait > 0:
            raise RateLimited(f"too many failed sign-ins; try again in {int(wait + 0.999)} s",
                              retry_after=wait, code="login_throttled")

    def failure(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for k in keys:
                e = self._entries.pop(k, None) or _Entry()
                if now - e.last_failure > self.window_s:
                    e.failures = 0
                e.failures += 1
                e.last_failure = now
                over = e.failures - self._free(k)
                if over >= 0:
                    e.locked_until = now + min(self.max_s, self.base_s * (2 ** min(over, 30)))
                self._entries[k] = e  # most recent last
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def success(self, keys: Iterable[str]) -> None:
        with self._lock:
            for k in keys:
                if k.startswith("user:"):
                    self._entries.pop(k, None)
