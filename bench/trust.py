"""Trust benchmark: a real `zhinao serve` under 64 concurrent clients on loopback.

What a demanding operator asks of the gateway under overload: no 5xx at all, every refusal a
429 that carries Retry-After (the queue is bounded on purpose), and memory that stays flat
while the flood lasts. The baseline is the same server idle right after warm-up, in the same
run: memory is reported as a ratio against it.

The load is bounded in count and time and goes to 127.0.0.1 only.

    .venv/bin/python bench/trust.py [--model PATH] [--clients 64] [--seconds 60] [--queue-depth 16]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform as pyplatform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ADMIN_KEY, ROOT, free_port, pct, start, stop, wait_http  # noqa: E402


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (the gateway and its llama-server)."""
    pids, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p in pids:
            continue
        pids.add(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                children = Path(f"/proc/{p}/task/{t}/children").read_text().split()
                todo.extend(int(c) for c in children)
        except OSError:
            continue
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


async def client_loop(client: httpx.AsyncClient, url: str, headers: dict, deadline: float, stats: dict,
                      latencies: list[float], max_requests: int) -> None:
    body = {"model": "bench", "messages": [{"role": "user", "content": "用一句话介绍5G套餐。"}],
            "max_tokens": 16, "temperature": 0}
    sent = 0
    while time.monotonic() < deadline and sent < max_requests:
        sent += 1
        t0 = time.perf_counter()
        try:
            r = await client.post(url, json=body, headers=headers, timeout=120)
        except httpx.HTTPError as e:
            stats[f"transport:{type(e).__name__}"] += 1
            if stats[f"transport:{type(e).__name__}"] == 1:
                print("  transport error:", repr(e), flush=True)
            await asyncio.sleep(0.5)
            continue
        latencies.append(time.perf_counter() - t0)
        stats[r.status_code] += 1
        if r.status_code == 429:
            ra = r.headers.get("retry-after")
            try:
                stats["429:" + str(r.json()["error"].get("code") or r.json()["error"].get("type"))] += 1
            except (ValueError, KeyError, TypeError):
                stats["429:unparsed"] += 1
            if ra is None:
                stats["429_without_retry_after"] += 1
            # a well-behaved client backs off, but not for long, so the flood keeps its pressure
            await asyncio.sleep(min(float(ra or 1), 1.0))
        elif r.status_code >= 500:
            stats["5xx_bodies"] += 1
            print("  5xx:", r.status_code, r.text[:200], flush=True)


async def flood(base: str, headers: dict, clients: int, seconds: float, pid: int) -> dict:
    stats: collections.Counter = collections.Counter()
    latencies: list[float] = []
    rss: list[tuple[float, float]] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients)

    async def sample() -> None:
        t0 = time.monotonic()
        while time.monotonic() < deadline + 1:
            rss.append((time.monotonic() - t0, tree_rss_mb(pid)))
            await asyncio.sleep(2)

    async with httpx.AsyncClient(limits=limits) as client:
        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(client_loop(client, f"{base}/v1/chat/completions", headers, deadline, stats,
                                           latencies, max_requests=2000) for _ in range(clients)))
        sampler.cancel()
    return {"stats": dict((str(k), v) for k, v in stats.items()), "latencies": latencies, "rss": rss}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="GGUF path (default: the installed default pack)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--queue-depth", type=int, default=16)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.model is None:
        from zhinao.runtime import packs
        from zhinao.settings import get_settings

        args.model = str(packs.ensure_default_model(get_settings()).path)
    tmp = Path(tempfile.mkdtemp(prefix="zhinao-trust-"))
    home = tmp / "home"
    home.mkdir()
    model_dir = Path(args.model).resolve().parent
    (home / "models.toml").write_text(
        f'[[models]]\nname = "bench"\nbackend = "llama-server"\npath = "{Path(args.model).resolve()}"\n'
        f"slots = {args.slots}\nthreads = {args.threads}\ncontext_window = 2048\n", encoding="utf-8")
    port = free_port()
    env = {"ZHINAO_HOME": str(home), "ZHINAO_ADMIN_KEY": ADMIN_KEY, "ZHINAO_DEFAULT_MODEL": "bench",
           "ZHINAO_QUEUE_DEPTH": str(args.queue_depth), "ZHINAO_QUEUE_TIMEOUT_S": "30",
           "ZHINAO_LOG_LEVEL": "WARNING", "ZHINAO_MODEL_DIRS": json.dumps([str(model_dir)])}
    p = start([str(ROOT / ".venv" / "bin" / "zhinao"), "serve", "--host", "127.0.0.1", "--port", str(port)],
              env=env, log=tmp / "serve.log")
    base = f"http://127.0.0.1:{port}"
    h = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        wait_http(f"{base}/readyz", timeout=300)
        httpx.post(f"{base}/v1/chat/completions", headers=h, timeout=120,
                   json={"model": "bench", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        time.sleep(2)
        idle = tree_rss_mb(p.pid)
        print(f"idle after warm-up (baseline): {idle:.0f} MB", flush=True)
        res = asyncio.run(flood(base, h, args.clients, args.seconds, p.pid))
        alive = httpx.get(f"{base}/healthz", timeout=10).status_code
    finally:
        stop(p)
    rss = [m for _, m in res["rss"]]
    half = len(rss) // 2
    first, second = rss[:half] or rss, rss[half:] or rss
    stats = res["stats"]
    n5xx = sum(v for k, v in stats.items() if k.isdigit() and int(k) >= 500)
    out = {
        "machine": f"{pyplatform.node()} {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
        "clients": args.clients, "seconds": args.seconds, "queue_depth": args.queue_depth, "slots": args.slots,
        "statuses": stats, "5xx": n5xx, "429_without_retry_after": stats.get("429_without_retry_after", 0),
        "latency_p50_s": pct(res["latencies"], 0.5), "latency_p95_s": pct(res["latencies"], 0.95),
        "rss_idle_mb": idle, "rss_peak_mb": max(rss), "rss_mean_first_half_mb": sum(first) / len(first),
        "rss_mean_second_half_mb": sum(second) / len(second),
        "rss_peak_over_idle": max(rss) / idle, "rss_second_over_first_half": (sum(second) / len(second)) / (sum(first) / len(first)),
        "healthz_after": alive,
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
