"""Scheduling through the gateway: slots, fair sharing between tenants, queue limits, and a
client that disconnects mid-stream (a real socket: a uvicorn server in a thread)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from tests.gateway.conftest import AUTH
from zhinao.gateway.app import create_app


@pytest.fixture
def app(platform):
    return create_app(platform, warm_default=False)


async def _keys(c: httpx.AsyncClient, n_tenants: int = 2) -> list[dict]:
    out = []
    for i in range(n_tenants):
        t = (await c.post("/api/tenants", headers=AUTH, json={"name": f"t{i}"})).json()
        k = (await c.post("/api/keys", headers=AUTH, json={"name": f"k{i}", "tenant_id": t["id"]})).json()
        out.append({"Authorization": f"Bearer {k['key']}"})
    return out


async def _until(cond, timeout_s: float = 60.0, what: str = "condition") -> None:
    """Wait for ``cond()`` (polled), bounded by a generous timeout: no fixed sleeps."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)


def test_two_tenants_share_fairly(app, platform):
    """Tenant A floods first (all 16 requests waiting); tenant B arrives later and is still served
    alternately with A. A FIFO scheduler serves all of A first: B's mean completion rank would be
    16 places behind A's, and B would have none of the first 16."""
    sched = platform.models.resolve("slow").scheduler

    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as c:
                ha, hb = await _keys(c)
                order: list[str] = []

                async def one(h, tag):
                    r = await c.post("/v1/chat/completions", headers=h, json={
                        "model": "slow", "messages": [{"role": "user", "content": " ".join(["w"] * 5)}]})
                    assert r.status_code == 200, r.text
                    order.append(tag)

                tasks = [asyncio.create_task(one(ha, "a")) for _ in range(16)]
                await _until(lambda: sched.busy + sched.queued == 16 and not order, what="A's 16 requests admitted")
                tasks += [asyncio.create_task(one(hb, "b")) for _ in range(16)]
                await asyncio.gather(*tasks)
                return order

    order = asyncio.run(run())
    assert sorted(order) == ["a"] * 16 + ["b"] * 16
    first_half = order[:16]
    assert first_half.count("b") >= 6, order  # 2 of A were already running; then alternation
    rank = {tag: sum(i for i, t in enumerate(order) if t == tag) / 16 for tag in "ab"}
    assert rank["b"] - rank["a"] <= 8, (rank, order)  # fair: ~2-5 (A had a head start); FIFO: 16


def test_queue_full_is_429(app, platform):
    platform.models.resolve("slow").scheduler.max_queue = 2

    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as c:
                body = {"model": "slow", "messages": [{"role": "user", "content": " ".join(["w"] * 40)}]}
                tasks = [asyncio.create_task(c.post("/v1/chat/completions", headers=AUTH, json=body))
                         for _ in range(6)]
                res = await asyncio.gather(*tasks)
                codes = sorted(r.status_code for r in res)
                assert codes == [200] * 4 + [429] * 2, codes  # 2 running + 2 queued, the rest refused
                r429 = next(r for r in res if r.status_code == 429)
                assert int(r429.headers["retry-after"]) >= 1 and "capacity" in r429.json()["error"]["message"]

    asyncio.run(run())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_disconnect_mid_stream_frees_the_slot_for_the_queue(app, platform):
    """Two streams fill both slots of ``slow`` (1000 tokens each: 20 s at 0.02 s/token) and a third
    request waits. Both streaming clients close their sockets after a few chunks: the waiting
    request gets a slot, both slots come free, and the stopped generations are billed for what
    they produced before the disconnect, not for the 2 × 1000 tokens a generation that ignored
    the disconnect would have run to."""
    sched = platform.models.resolve("slow").scheduler
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    streams: list = []
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start within 60 s"
            time.sleep(0.02)
        long = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": " ".join(["w"] * 1000)}],
                "max_tokens": 1000}
        short = {"model": "slow", "messages": [{"role": "user", "content": "w w w"}]}
        for _ in range(2):
            c = httpx.Client(timeout=60)
            cm = c.stream("POST", base + "/v1/chat/completions", headers=AUTH, json=long)
            r = cm.__enter__()
            assert r.status_code == 200, r.read()
            lines = r.iter_lines()
            n = 0
            while n < 3:  # a few chunks of real output
                n += next(lines).startswith("data: ")
            streams.append((c, cm, lines))  # keep the iterator: collecting it would close the stream
        assert sched.busy == 2
        waiting: dict = {}
        t = threading.Thread(target=lambda: waiting.update(r=httpx.post(base + "/v1/chat/completions",
                                                                         headers=AUTH, json=short, timeout=120)))
        t.start()
        deadline = time.monotonic() + 30
        while sched.queued < 1:
            assert time.monotonic() < deadline, "the third request never queued"
            time.sleep(0.01)
        for c, cm, _ in streams:  # the client goes away: close the socket mid-stream
            cm.__exit__(None, None, None)
            c.close()
        streams.clear()
        t.join(timeout=120)
        assert not t.is_alive() and waiting["r"].status_code == 200, waiting
        deadline = time.monotonic() + 30
        while sched.busy or sched.queued:
            assert time.monotonic() < deadline, f"slots not freed: {sched.stats()}"
            time.sleep(0.02)
        deadline = time.monotonic() + 30
        while True:  # the stopped streams are recorded (after their generator closed)
            rows = httpx.get(base + "/api/usage?group_by=model", headers=AUTH).json()["rows"]
            row = next((r for r in rows if r["model"] == "slow"), None)
            if row and row["requests"] >= 3:
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.05)
        assert row["completion_tokens"] < 1000, row  # ignoring the disconnect: 2 × 1000 + 3
    finally:
        for c, cm, _ in streams:
            cm.__exit__(None, None, None)
            c.close()
        server.should_exit = True
        thread.join(timeout=30)
