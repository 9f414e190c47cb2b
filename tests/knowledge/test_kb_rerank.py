"""The rerank step: built-in rerankers order as documented, plugins see a wider pool, names are checked."""

from __future__ import annotations

import pytest
from kbutil import ADMIN, close_service, make_service

from zhinao.errors import InvalidRequest
from zhinao.knowledge.index import Hit
from zhinao.knowledge.rerank import RERANKERS, Reranker, get_reranker, make_reranker, register_reranker
from zhinao.runtime.echo import HashEmbedder


def _hit(n: int, body: str, relevance: float | None) -> Hit:
    return Hit(pk=f"{n}:1:0", doc_id=n, version=1, idx=0, body=body, relevance=relevance)


def test_embedding_reranker_orders_by_cosine_and_puts_unknown_last():
    hits = [_hit(1, "a", 0.2), _hit(2, "b", None), _hit(3, "c", 0.9), _hit(4, "d", 0.5)]
    out = make_reranker("embedding", embedder=HashEmbedder()).rerank("q", hits)
    assert [h.doc_id for h in out] == [3, 4, 1, 2]


def test_overlap_reranker_promotes_passages_that_contain_the_query_terms():
    # equal cosine: the passage that names both query terms must rise above the fused rank order
    hits = [_hit(1, "宽带装机需要身份证原件。", 0.80),
            _hit(2, "套餐资费每月 59 元。", 0.80),
            _hit(3, "国际漫游资费按目的地区域计费，亚洲日套餐 25 元。", 0.80)]
    out = make_reranker("overlap").rerank("国际漫游资费", hits)
    assert out[0].doc_id == 3
    assert out[1].doc_id == 2  # shares 资费 with the question; the first passage shares nothing
    # and with nothing to go on (no multi-character terms) it keeps the given order
    assert [h.doc_id for h in make_reranker("overlap").rerank("?", hits)] == [1, 2, 3]


def test_unknown_reranker_is_a_clear_error():
    with pytest.raises(InvalidRequest, match="unknown reranker 'cross'.*embedding"):
        get_reranker("cross")


@pytest.fixture()
def kb(tmp_path):
    svc = make_service(tmp_path, rerank_candidates=12)
    svc.create_collection(ADMIN, "lib")
    files = [(f"doc{i}.md", f"# 文档 {i}\n\n第 {i} 号资费说明：漫游资费、套餐资费与宽带资费的条款 {i}。".encode())
             for i in range(15)]
    svc.add_documents(ADMIN, "lib", files, wait=True)
    yield svc
    close_service(svc)


def test_a_plugin_reranker_sees_the_candidate_pool_and_only_k_are_kept(kb):
    seen: list[int] = []

    class Reverse(Reranker):  # a real reranker: deliberately the opposite of the retriever
        name = "test-reverse"

        def rerank(self, query, hits):
            seen.append(len(hits))
            return list(reversed(hits))

    register_reranker(Reverse)

    try:
        plain = kb.retrieve(ADMIN, "lib", "漫游资费", k=3, rerank_with="none")
        pool = kb.retrieve(ADMIN, "lib", "漫游资费", k=12, rerank_with="none")
        reranked = kb.retrieve(ADMIN, "lib", "漫游资费", k=3, rerank_with="test-reverse")
        assert seen == [12]  # it was shown rerank_candidates passages, not just k
        assert len(reranked) == 3
        # the three it kept are the last three of the pool, which plain top-3 retrieval never returns
        assert [h.pk for h in reranked] == [h.pk for h in reversed(pool[-3:])]
        assert not {h.pk for h in reranked} & {h.pk for h in plain}
        assert all(h.doc.get("title") for h in reranked)  # document info is still joined after reranking
    finally:
        RERANKERS.pop("test-reverse", None)


def test_unknown_reranker_fails_before_searching(kb):
    with pytest.raises(InvalidRequest, match="unknown reranker"):
        kb.retrieve(ADMIN, "lib", "漫游资费", rerank_with="nope")

