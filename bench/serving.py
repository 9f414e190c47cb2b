"""Serving benchmark: Zhinao versus the engines it wraps, at concurrency 1, 4, 8, 16.

Systems, all on the same GGUF, threads and reply length:
  (a) llama-cpp-python in-process (one generation at a time, behind a lock)
  (b) llama_cpp.server, llama-cpp-python's own OpenAI server (needs its [server] extra)
  (c) llama.cpp's llama-server called directly, N parallel slots
  (d) Zhinao: `zhinao serve` over a Zhinao-supervised llama-server with the same slots
Prints aggregate tokens/s and time-to-first-token p50/p95, ratios against (c) and (b), and a
two-tenant fairness run (16 concurrent requests per tenant through Zhinao).

    .venv/bin/python bench/serving.py [--model PATH] [--threads 2] [--slots 8] [--tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as pyplatform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PROMPT = ("Write a detailed, friendly explanation for a mobile customer of how 5G roaming charges work, "
          "with examples. Do not stop early.")
ADMIN_KEY = "zk-bench-admin-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))
    return xs[k]


async def one_request(client: httpx.AsyncClient, url: str, model: str, tokens: int, headers: dict,
                      events: list | None = None, tag: object = None) -> tuple[float, int]:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens,
            "temperature": 0.7, "seed": 1, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft, n_chunks, usage_tokens = None, 0, None
    async with client.stream("POST", url, json=body, headers=headers) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            d = json.loads(line[6:])
            if d.get("error"):
                raise RuntimeError(str(d["error"]))
            if d.get("usage"):
                usage_tokens = d["usage"].get("completion_tokens")
            for ch in d.get("choices") or []:
                if (ch.get("delta") or {}).get("content"):
                    n_chunks += 1
                    if events is not None:
                        events.append((time.perf_counter(), tag))
                    if ttft is None:
                        ttft = time.perf_counter() - t0
    return (ttft if ttft is not None else time.perf_counter() - t0), (usage_tokens or n_chunks)


async def load(url: str, model: str, conc: int, n_req: int, tokens: int, headers: dict | None = None,
               tag_headers: list[dict] | None = None) -> dict:
    """n_req requests with `conc` in flight; returns aggregate tok/s, TTFT percentiles, errors."""
    sem = asyncio.Semaphore(conc)
    ttfts: list[float] = []
    toks: list[int] = []
    errors: list[str] = []
    per_tag: dict[int, int] = {}
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=conc + 4)) as client:
        async def worker(i: int) -> None:
            h = tag_headers[i % len(tag_headers)] if tag_headers else (headers or {})
            async with sem:
                try:
                    ttft, n = await one_request(client, url, model, tokens, h)
                    ttfts.append(ttft)
                    toks.append(n)
                    if tag_headers:
                        per_tag[i % len(tag_headers)] = per_tag.get(i % len(tag_headers), 0) + n
                except Exception as e:  # counted, reported
                    errors.append(str(e)[:200])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(n_req)))
        wall = time.perf_counter() - t0
    return {"conc": conc, "requests": n_req, "tokens": sum(toks), "wall_s": wall,
            "tok_s": sum(toks) / wall if wall else 0.0, "ttft_p50": pct(ttfts, 0.5), "ttft_p95": pct(ttfts, 0.95),
            "errors": len(errors), "error_sample": errors[:2], "per_tag": per_tag}


async def fairness(url: str, model: str, tokens: int, tenant_headers: list[dict], conc: int = 16,
                   rounds: int = 3, head_start: float = 1.0) -> dict:
    """Two tenants, each keeping `conc` requests in flight for `rounds` rounds.

    Tenant A starts `head_start` seconds early and so fills the queue first: a FIFO
    gateway would serve A's backlog before B's. Counted: streamed tokens per tenant in the
    contended window, from B's start until the first tenant has finished all its requests.
    """
    events: list[tuple[float, int]] = []
    errors: list[str] = []
    done: dict[int, float] = {}
    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=2 * conc + 4)) as client:
        async def tenant(tag: int, delay: float) -> None:
            await asyncio.sleep(delay)
            sem = asyncio.Semaphore(conc)

            async def one() -> None:
                async with sem:
                    try:
                        await one_request(client, url, model, tokens, tenant_headers[tag], events, tag)
                    except Exception as e:  # counted, reported
                        errors.append(str(e)[:200])
            await asyncio.gather(*(one() for _ in range(conc * rounds)))
            done[tag] = time.perf_counter()

        t0 = time.perf_counter()
        await asyncio.gather(tenant(0, 0.0), tenant(1, head_start))
    lo, hi = t0 + head_start, min(done.values())
    per_tag = {tag: sum(1 for t, g in events if g == tag and lo <= t <= hi) for tag in (0, 1)}
    return {"per_tag": per_tag, "window_s": hi - lo, "errors": len(errors), "error_sample": errors[:2]}


def wait_http(url: str, timeout: float = 180, headers: dict | None = None) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def start(cmd: list[str], env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()


def levels(args) -> list[tuple[int, int]]:
    return [(c, max(args.min_requests, 2 * c)) for c in args.conc]


# -- (a) in-process --------------------------------------------------------------------------
def bench_inprocess(args) -> list[dict]:
    from llama_cpp import Llama

    llm = Llama(model_path=args.model, n_threads=args.threads, n_ctx=2048, verbose=False)
    lock = threading.Lock()

    def gen() -> tuple[float, int]:
        t0 = time.perf_counter()
        with lock:
            ttft, n = None, 0
            for ch in llm.create_chat_completion(messages=[{"role": "user", "content": PROMPT}],
                                                 max_tokens=args.tokens, temperature=0.7, seed=1, stream=True):
                if ch["choices"][0]["delta"].get("content"):
                    n += 1
                    if ttft is None:
                        ttft = time.perf_counter() - t0
        return ttft or 0.0, n

    out = []
    for conc, n_req in levels(args):
        from concurrent.futures import ThreadPoolExecutor

        t0 = time.perf_counter()
        with ThreadPoolExecutor(conc) as ex:
            res = list(ex.map(lambda _: gen(), range(n_req)))
        wall = time.perf_counter() - t0
        toks = sum(n for _, n in res)
        ttfts = [t for t, _ in res]
        out.append({"conc": conc, "requests": n_req, "tokens": toks, "wall_s": wall, "tok_s": toks / wall,
                    "ttft_p50": pct(ttfts, 0.5), "ttft_p95": pct(ttfts, 0.95), "errors": 0})
        print(f"  (a) c={conc}: {out[-1]['tok_s']:.1f} tok/s", flush=True)
    del llm
    return out


# -- (b) llama_cpp.server ----------------------------------------------------------------------
def bench_python_server(args, tmp: Path) -> list[dict] | None:
    try:
        import llama_cpp.server  # noqa: F401
        import sse_starlette  # noqa: F401
        import starlette_context  # noqa: F401
    except ImportError as e:
        print(f"  (b) skipped: {e} (pip install 'llama-cpp-python[server]' deps: sse-starlette starlette-context)")
        return None
    port = free_port()
    p = start([sys.executable, "-m", "llama_cpp.server", "--model", args.model, "--n_threads", str(args.threads),
               "--n_ctx", "2048", "--host", "127.0.0.1", "--port", str(port)], log=tmp / "b.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models")
        out = []
        for conc, n_req in levels(args):
            out.append(asyncio.run(load(f"http://127.0.0.1:{port}/v1/chat/completions", "m", conc, n_req, args.tokens)))
            print(f"  (b) c={conc}: {out[-1]['tok_s']:.1f} tok/s errors={out[-1]['errors']}", flush=True)
        return out
    finally:
        stop(p)


# -- (c) llama-server direct --------------------------------------------------------------------
def llama_server_bin() -> str:
    cand = ROOT / ".venv" / "bin" / "llama-server"
    return str(cand) if cand.exists() else (shutil.which("llama-server") or "llama-server")


def bench_llama_server(args, tmp: Path) -> list[dict]:
    port = free_port()
    p = start([llama_server_bin(), "-m", args.model, "-np", str(args.slots), "-c", str(2048 * args.slots),
               "-t", str(args.threads), "--host", "127.0.0.1", "--port", str(port), "--jinja"], log=tmp / "c.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        out = []
        for conc, n_req in levels(args):
            out.append(asyncio.run(load(f"http://127.0.0.1:{port}/v1/chat/completions", "m", conc, n_req, args.tokens)))
            print(f"  (c) c={conc}: {out[-1]['tok_s']:.1f} tok/s errors={out[-1]['errors']}", flush=True)
        return out
    finally:
        stop(p)


# -- (d) Zhinao ---------------------------------------------------------------------------------
def bench_zhinao(args, tmp: Path) -> tuple[list[dict], dict]:
    home = tmp / "zhinao-home"
    home.mkdir()
    (home / "models.toml").write_text(
        f'[[models]]\nname = "bench"\nbackend = "llama-server"\npath = "{args.model}"\n'
        f"slots = {args.slots}\nthreads = {args.threads}\ncontext_window = 2048\n", encoding="utf-8")
    port = free_port()
    env = {"ZHINAO_HOME": str(home), "ZHINAO_ADMIN_KEY": ADMIN_KEY, "ZHINAO_DEFAULT_MODEL": "bench",
           "ZHINAO_QUEUE_DEPTH": "256", "ZHINAO_QUEUE_TIMEOUT_S": "1800", "ZHINAO_LOG_LEVEL": "WARNING"}
    p = start([str(ROOT / ".venv" / "bin" / "zhinao"), "serve", "--host", "127.0.0.1", "--port", str(port)],
              env=env, log=tmp / "d.log")
    base = f"http://127.0.0.1:{port}"
    h = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        wait_http(f"{base}/readyz", timeout=300)
        out = []
        for conc, n_req in levels(args):
            out.append(asyncio.run(load(f"{base}/v1/chat/completions", "bench", conc, n_req, args.tokens, h)))
            print(f"  (d) c={conc}: {out[-1]['tok_s']:.1f} tok/s errors={out[-1]['errors']}", flush=True)
        # fairness: two tenants, 16 concurrent requests each (see fairness())
        tenant_headers = []
        for name in ("tenant-a", "tenant-b"):
            t = httpx.post(f"{base}/api/tenants", headers=h, json={"name": name}).json()
            k = httpx.post(f"{base}/api/keys", headers=h, json={"name": name, "tenant_id": t["id"]}).json()
            tenant_headers.append({"Authorization": f"Bearer {k['key']}"})
        fair = asyncio.run(fairness(f"{base}/v1/chat/completions", "bench", args.tokens, tenant_headers))
        print(f"  (d) fairness: tokens per tenant in the contended window {fair['per_tag']}", flush=True)
        return out, fair
    finally:
        stop(p)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="GGUF path (default: the installed default pack)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--conc", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--min-requests", type=int, default=4)
    ap.add_argument("--skip", default="", help="comma list of a,b,c,d to skip")
    ap.add_argument("--json", default=None, help="write raw results here")
    args = ap.parse_args()
    if args.model is None:
        from zhinao.runtime import packs
        from zhinao.settings import get_settings

        args.model = str(packs.ensure_default_model(get_settings()).path)
    skip = set(args.skip.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="zhinao-bench-"))
    print(f"model={args.model} threads={args.threads} slots={args.slots} tokens={args.tokens} "
          f"cpus={os.cpu_count()} python={pyplatform.python_version()}", flush=True)
    res: dict = {}
    if "a" not in skip:
        res["a"] = bench_inprocess(args)
    if "b" not in skip:
        res["b"] = bench_python_server(args, tmp)
    if "c" not in skip:
        res["c"] = bench_llama_server(args, tmp)
    if "d" not in skip:
        res["d"], res["fair"] = bench_zhinao(args, tmp)

    print("\n| system | c | tok/s | TTFT p50 s | TTFT p95 s | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    names = {"a": "(a) llama-cpp-python in-process", "b": "(b) llama_cpp.server", "c": "(c) llama-server direct",
             "d": "(d) Zhinao"}
    for k in "abcd":
        for r in res.get(k) or []:
            print(f"| {names[k]} | {r['conc']} | {r['tok_s']:.1f} | {r['ttft_p50']:.2f} | {r['ttft_p95']:.2f} | "
                  f"{r['errors']} |")
    if res.get("c") and res.get("d"):
        print("\nratios (d)/(c):", ", ".join(f"c={c['conc']}: {d['tok_s'] / c['tok_s']:.2f}"
                                             for c, d in zip(res["c"], res["d"])))
    if res.get("b") and res.get("d"):
        print("ratios (d)/(b):", ", ".join(f"c={b['conc']}: {d['tok_s'] / b['tok_s']:.2f}"
                                           for b, d in zip(res["b"], res["d"])))
    if res.get("fair"):
        v = list(res["fair"]["per_tag"].values())
        if len(v) == 2 and min(v):
            print(f"fairness: tenant tokens {v}, ratio {max(v) / min(v):.2f} (target <= 1.5), "
                  f"errors {res['fair']['errors']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
