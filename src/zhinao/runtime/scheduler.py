"""Admission control in front of each model: slots, a fair queue, timeouts.

A model has ``capacity`` concurrent generations (llama-server slots × replicas; one for
an in-process engine). Requests beyond that wait in per-tenant FIFO queues served
round-robin across tenants, so one tenant's burst cannot starve another. The queue is
bounded (then :class:`RateLimited` with Retry-After) and waiting is bounded in time.
A waiter that is cancelled (client disconnect) leaves the queue without taking a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from zhinao.errors import RateLimited


@dataclass
class SchedulerStats:
    capacity: int
    busy: int
    queued: int
    admitted: int = 0
    rejected: int = 0
    queued_by_tenant: dict[str, int] = field(default_factory=dict)


class FairScheduler:
    """Slots + round-robin-per-tenant waiting queue for one model."""

    def __init__(self, capacity: int, *, max_queue: int = 64, queue_timeout_s: float = 120.0):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.busy = 0
        self._queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._queued = 0
        self.admitted = 0
        self.rejected = 0
        self._avg_hold_s = 1.0  # moving average of slot hold time, for Retry-After

    @property
    def queued(self) -> int:
        return self._queued

    def stats(self) -> SchedulerStats:
        return SchedulerStats(self.capacity, self.busy, self._queued, self.admitted, self.rejected,
                              {t: len(q) for t, q in self._queues.items() if q})

    def _retry_after(self) -> float:
        return max(1.0, self._avg_hold_s * (self._queued + 1) / self.capacity)

    async def _acquire(self, tenant: str) -> None:
        if self.busy < self.capacity and self._queued == 0:
            self.busy += 1
            self.admitted += 1
            return
        if self._queued >= self.max_queue:
            self.rejected += 1
            raise RateLimited(
                f"the model is at capacity ({self.capacity} running, {self._queued} waiting); retry later",
                retry_after=self._retry_after(), code="queue_full")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(tenant, deque()).append(fut)
        self._queued += 1
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout=self.queue_timeout_s)
        except BaseException as e:
            if fut.done() and not fut.cancelled():
                # we were granted the slot in the same instant we gave up: hand it on
                self._release_slot()
            else:
                fut.cancel()
                self._remove(tenant, fut)
            if isinstance(e, asyncio.TimeoutError):
                self.rejected += 1
                raise RateLimited(f"waited {self.queue_timeout_s:.0f}s for a free slot; retry later",
                                  retry_after=self._retry_after(), code="queue_timeout") from None
            raise
        self.admitted += 1

    def _remove(self, tenant: str, fut: asyncio.Future[None]) -> None:
        q = self._queues.get(tenant)
        if q is not None and fut in q:
            q.remove(fut)
            self._queued -= 1
            if not q:
                del self._queues[tenant]

    def _release_slot(self) -> None:
        """Give the slot to the next tenant in round-robin order, or free it."""
        while self._queues:
            tenant, q = next(iter(self._queues.items()))
            fut = q.popleft()
            self._queued -= 1
            # rotate: this tenant goes to the back of the line
            del self._queues[tenant]
            if q:
                self._queues[tenant] = q
            if not fut.done():
                fut.set_result(None)
                return  # slot passes directly to the waiter (busy unchanged)
        self.busy -= 1

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str = "") -> AsyncIterator[None]:
        """Hold one generation slot for the duration of the block."""
        await self._acquire(tenant)
        t0 = time.monotonic()
        try:
            yield
        finally:
            self._avg_hold_s = 0.9 * self._avg_hold_s + 0.1 * (time.monotonic() - t0)
            self._release_slot()
