"""The ``Retriever`` conformance suite, over every registered retriever and each of its modes.

Runs on a real Milvus Lite index in a temporary folder with the deterministic hash embedder.
The contract (``zhinao.knowledge.retrieve.Retriever``): a list of :class:`Hit`, at most ``k``,
best first by the backend's own score, only passages the :class:`Scope` admits (an old
version or a hidden document never comes back, with the filter applied before or after the
search), ``[]`` for an empty scope, relevance filled in when ``gives_relevance``, the same
answer twice, and a 400 naming the choices for an unknown mode or backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from zhinao.errors import InvalidRequest
from zhinao.knowledge.config import KBConfig
from zhinao.knowledge.index import Hit, MilvusIndex, chunk_pk
from zhinao.knowledge.retrieve import Retriever, Scope, make_retriever, retriever_class, retriever_names
from zhinao.runtime.echo import HashEmbedder

# (doc id, version, passages); doc 3 version 1 was replaced by version 2; doc 4 is hidden from the reader
CORPUS = [
    (1, 1, ["携号转网需要在网满 120 天，且无欠费。", "办理携号转网请携带身份证原件到营业厅。"]),
    (2, 1, ["国际漫游资费按目的地区域计费，亚洲日套餐 25 元。", "The Asia roaming day pass costs 25 yuan per day."]),
    (3, 1, ["停机保号每月 5 元，最长保留 12 个月。"]),
    (3, 2, ["停机保号每月 8 元，最长保留 6 个月。"]),
    (4, 1, ["渠道佣金结算规则：每月 10 日结算上月佣金。"]),
    (5, 1, ["宽带装机需要身份证原件和房产证明。", "宽带故障请先重启光猫，再拨打 10086。", "家庭宽带 300M 套餐月租 99 元。"]),
]
ACTIVE = {"1:1", "2:1", "3:2", "5:1"}  # what the reader may see: not 3:1 (replaced), not 4:1 (hidden)
QUERIES = ["停机保号每月 5 元，最长保留 12 个月。", "渠道佣金结算规则", "携号转网 在网", "roaming day pass",
           "宽带故障怎么办"]


def _build_milvus(index: MilvusIndex, embedder: HashEmbedder) -> Retriever:
    return make_retriever("milvus", index=index, embedder=embedder, config=KBConfig())


#: how each registered backend is built here; a registered name missing from this table fails the suite
FACTORIES: dict[str, Callable[[MilvusIndex, HashEmbedder], Retriever]] = {"milvus": _build_milvus}
NAMES = retriever_names()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real Milvus Lite collection holding every version in CORPUS (as ingestion leaves it mid-replace)."""
    index = MilvusIndex(str(tmp_path_factory.mktemp("milvus") / "milvus.db"), prefix="conf_")
    embedder = HashEmbedder()
    name = index.ensure(1, embedder.dim)
    rows = []
    for doc_id, version, passages in CORPUS:
        vecs = embedder.embed(passages, kind="passage")
        rows += [{"pk": chunk_pk(doc_id, version, i), "doc_id": doc_id, "version": version,
                  "doc_key": f"{doc_id}:{version}", "idx": i, "page": -1, "heading": json.dumps([]), "kind": "text",
                  "body": body, "text": body, "dense": v} for i, (body, v) in enumerate(zip(passages, vecs))]
    index.insert(name, rows)
    index.flush(name)
    yield index, embedder, name
    index.close()


@pytest.fixture(params=NAMES)
def retriever(request, world):
    index, embedder, _ = world
    if request.param not in FACTORIES:
        pytest.fail(f"retriever {request.param!r} is registered but this suite cannot build it: add a factory")
    r = FACTORIES[request.param](index, embedder)
    yield r
    r.close()


def scopes(world) -> list[Scope]:
    _, _, name = world
    return [Scope(collection=name, active_keys=set(ACTIVE)),  # filter inside the search
            Scope(collection=name, active_keys=set(ACTIVE), restricted=False)]  # filter after it


def test_milvus_is_the_default_and_registered_by_entry_point():
    assert "milvus" in NAMES and KBConfig().retriever == "milvus"
    assert retriever_class("milvus").modes[0] == "hybrid"


@pytest.mark.parametrize("name", NAMES)
def test_is_a_retriever_with_its_registered_name(name):
    cls = retriever_class(name)
    assert issubclass(cls, Retriever) and cls.name == name
    assert cls.modes and all(isinstance(m, str) for m in cls.modes) and len(set(cls.modes)) == len(cls.modes)
    assert isinstance(cls.gives_relevance, bool)


def test_every_mode_answers_within_the_scope(retriever, world):
    for mode in retriever.modes:
        for scope in scopes(world):
            for q in QUERIES:
                for k in (1, 3, 20):
                    hits = retriever.retrieve(q, scope=scope, k=k, mode=mode)
                    assert isinstance(hits, list) and all(isinstance(h, Hit) for h in hits), (mode, q)
                    assert len(hits) <= k
                    keys = {f"{h.doc_id}:{h.version}" for h in hits}
                    assert keys <= ACTIVE, f"{retriever.name}/{mode} returned {keys - ACTIVE} for {q!r}"
                    assert len({h.pk for h in hits}) == len(hits), "a passage came back twice"
                    scores = [h.score for h in hits]
                    assert scores == sorted(scores, reverse=True), f"{mode}: not best first: {scores}"
                    if retriever.gives_relevance:
                        assert all(isinstance(h.relevance, float) and -1.01 <= h.relevance <= 1.01 for h in hits)


def test_the_replaced_version_and_the_hidden_document_never_come_back(retriever, world):
    for mode in retriever.modes:
        for scope in scopes(world):
            # the exact text of the replaced version and of the hidden document
            old = retriever.retrieve("停机保号每月 5 元，最长保留 12 个月。", scope=scope, k=5, mode=mode)
            assert all((h.doc_id, h.version) != (3, 1) for h in old), mode
            hidden = retriever.retrieve("渠道佣金结算规则：每月 10 日结算上月佣金。", scope=scope, k=5, mode=mode)
            assert all(h.doc_id != 4 for h in hidden), mode


def test_an_exact_passage_is_found(retriever, world):
    scope = scopes(world)[0]
    for mode in retriever.modes:
        hits = retriever.retrieve("宽带故障请先重启光猫，再拨打 10086。", scope=scope, k=3, mode=mode)
        assert "5:1:1" in [h.pk for h in hits], (mode, [h.pk for h in hits])


def test_an_empty_scope_finds_nothing(retriever, world):
    _, _, name = world
    for mode in retriever.modes:
        assert retriever.retrieve("携号转网", scope=Scope(collection=name, active_keys=set()), k=5, mode=mode) == []


def test_same_question_same_answer(retriever, world):
    scope = scopes(world)[0]
    for mode in retriever.modes:
        runs = [[(h.pk, round(h.score, 6)) for h in retriever.retrieve("携号转网 在网", scope=scope, k=5, mode=mode)]
                for _ in range(3)]
        assert runs[0] and runs[0] == runs[1] == runs[2], mode


def test_no_mode_means_the_first_mode(retriever, world):
    scope = scopes(world)[0]
    a = retriever.retrieve("国际漫游", scope=scope, k=4)
    b = retriever.retrieve("国际漫游", scope=scope, k=4, mode=retriever.modes[0])
    assert [h.pk for h in a] == [h.pk for h in b]


def test_an_unknown_mode_is_a_400_naming_the_modes(retriever, world):
    with pytest.raises(InvalidRequest, match="magic") as e:
        retriever.retrieve("携号转网", scope=scopes(world)[0], k=3, mode="magic")
    assert e.value.status == 400 and all(m in e.value.message for m in retriever.modes)


def test_an_unknown_backend_is_a_400_naming_the_backends():
    with pytest.raises(InvalidRequest, match="unknown retriever 'elastic'.*milvus") as e:
        make_retriever("elastic")
    assert e.value.status == 400
