"""FairScheduler: capacity, round-robin between tenants, bounded queue, timeouts, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from zhinao.errors import RateLimited
from zhinao.runtime.scheduler import FairScheduler


def test_capacity_and_round_robin():
    async def run():
        s = FairScheduler(1, max_queue=100)
        order = []
        gate = asyncio.Event()

        async def job(tenant, i):
            async with s.slot(tenant):
                if i == -1:
                    await gate.wait()
                order.append(tenant)

        first = asyncio.create_task(job("a", -1))
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(job("a", i)) for i in range(4)]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(job("b", i)) for i in range(4)]
        await asyncio.sleep(0)
        assert s.busy == 1 and s.queued == 8
        gate.set()
        await asyncio.gather(first, *tasks)
        return order

    order = asyncio.run(run())
    assert order[1:] == ["a", "b"] * 4  # alternates although all of A queued first


def test_queue_bound_and_timeout():
    async def run():
        s = FairScheduler(1, max_queue=1, queue_timeout_s=0.2)
        hold = asyncio.Event()

        async def holder():
            async with s.slot("a"):
                await hold.wait()

        h = asyncio.create_task(holder())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(s.slot("b").__aenter__())
        await asyncio.sleep(0)
        with pytest.raises(RateLimited, match="capacity"):
            await s.slot("c").__aenter__()
        with pytest.raises(RateLimited, match="waited"):
            await waiter
        assert s.queued == 0
        hold.set()
        await h
        assert s.busy == 0

    asyncio.run(run())


def test_cancelled_waiter_leaves_queue_without_leaking_slot():
    async def run():
        s = FairScheduler(1)
        hold = asyncio.Event()

        async def holder():
            async with s.slot("a"):
                await hold.wait()

        h = asyncio.create_task(holder())
        await asyncio.sleep(0)
        w = asyncio.create_task(s.slot("b").__aenter__())
        await asyncio.sleep(0)
        assert s.queued == 1
        w.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w
        assert s.queued == 0
        hold.set()
        await h
        assert s.busy == 0
        async with s.slot("c"):
            assert s.busy == 1

    asyncio.run(run())
