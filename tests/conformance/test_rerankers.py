"""The ``Reranker`` conformance suite, over every registered reranker (entry points included).

The contract (``zhinao.knowledge.rerank.Reranker``): a list of the hits it was given, each at
most once, never an invented one; ``[]`` stays ``[]``; hits without ``relevance`` accepted;
the same order for the same input when ``deterministic``; ``reorders = False`` means the
given order; unknown names are a 400 naming the choices.
"""

from __future__ import annotations

import copy

import pytest

from zhinao.errors import InvalidRequest
from zhinao.knowledge.index import Hit
from zhinao.knowledge.rerank import Reranker, get_reranker, make_reranker, reranker_names
from zhinao.runtime.echo import HashEmbedder

NAMES = reranker_names()
QUERIES = ["国际漫游资费", "roaming day pass price", "?", "宽带 装机 身份证"]


def pool() -> list[Hit]:
    bodies = ["宽带装机需要身份证原件。", "套餐资费每月 59 元。", "国际漫游资费按目的地区域计费，亚洲日套餐 25 元。",
              "The Asia roaming day pass costs 25 yuan per day.", "携号转网需要在网满 120 天。", "停机保号每月 5 元。"]
    rel = [0.81, 0.62, None, 0.93, 0.40, 0.62]  # ties and an unknown relevance on purpose
    return [Hit(pk=f"{i}:1:0", doc_id=i, version=1, idx=0, body=b, relevance=r, score=1.0 / (1 + i))
            for i, (b, r) in enumerate(zip(bodies, rel))]


def test_the_built_ins_are_registered_by_entry_point():
    assert {"none", "embedding", "overlap"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_is_a_reranker_with_its_registered_name(name):
    cls = get_reranker(name)
    assert issubclass(cls, Reranker) and cls.name == name
    assert isinstance(cls.reorders, bool) and isinstance(cls.deterministic, bool)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("query", QUERIES)
def test_returns_only_given_hits_each_once(name, query):
    hits = pool()
    out = make_reranker(name, embedder=HashEmbedder()).rerank(query, hits)
    assert isinstance(out, list) and all(isinstance(h, Hit) for h in out)
    assert all(any(h is g for g in hits) for h in out), "a reranker may drop hits, never invent them"
    assert len({id(h) for h in out}) == len(out), "a hit came back twice"


@pytest.mark.parametrize("name", NAMES)
def test_empty_stays_empty(name):
    assert make_reranker(name, embedder=HashEmbedder()).rerank("漫游", []) == []


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_when_promised_and_input_left_alone(name):
    r = make_reranker(name, embedder=HashEmbedder())
    hits = pool()
    before = copy.deepcopy(hits)
    first = [h.pk for h in r.rerank("国际漫游资费", hits)]
    assert [(h.pk, h.relevance, h.body) for h in hits] == [(h.pk, h.relevance, h.body) for h in before], \
        "rerank changed the list or the hits it was given"
    if r.deterministic:
        assert all([h.pk for h in r.rerank("国际漫游资费", pool())] == first for _ in range(3))


@pytest.mark.parametrize("name", NAMES)
def test_a_reranker_that_does_not_reorder_keeps_the_order(name):
    r = make_reranker(name, embedder=HashEmbedder())
    if not r.reorders:
        hits = pool()
        assert [h.pk for h in r.rerank("国际漫游资费", hits)] == [h.pk for h in hits]


def test_the_flag_is_what_widens_the_pool():
    # the service retrieves rerank_candidates passages only for rerankers that reorder
    assert get_reranker("none").reorders is False
    assert get_reranker("embedding").reorders and get_reranker("overlap").reorders


def test_unknown_names_are_a_400_naming_the_choices():
    with pytest.raises(InvalidRequest, match="unknown reranker 'cross-encoder'.*overlap") as e:
        make_reranker("cross-encoder")
    assert e.value.status == 400


def test_a_plain_function_is_refused_as_a_reranker():
    from zhinao.knowledge.rerank import register_reranker

    with pytest.raises(TypeError, match="Reranker"):
        register_reranker(lambda q, hits: hits)  # type: ignore[arg-type]
