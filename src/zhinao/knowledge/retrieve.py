"""Retrievers (BM25, dense, hybrid) and rerankers, registered by name like plugins.

``Retriever`` has one required method, :meth:`Retriever.retrieve`. A retriever gets a
:class:`Scope` (which Milvus collection, which active document versions, what filter)
from the service, so it never decides who may see what. Rerankers run after retrieval
and may re-order or re-score hits.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from typing import ClassVar

from zhinao.errors import InvalidRequest
from zhinao.knowledge.index import Hit, MilvusIndex, quote_list
from zhinao.runtime.base import Embedder

#: above this many active documents the version filter is applied after the search
PREFILTER_MAX_KEYS = 4000


@dataclass
class Scope:
    """Where to search: a Milvus collection restricted to the active versions of visible docs."""

    collection: str
    active_keys: set[str]  # "doc_id:version" the asking user may see
    expr: str = ""  # extra Milvus filter (rarely needed; SQL-side filters become active_keys)
    docs: dict[int, dict[str, Any]] = field(default_factory=dict)  # doc id -> title, source, ...
    #: False when the reader sees every active document: then the collection holds little else
    #: (versions being replaced, for seconds) and a post-filter is cheaper than a long ``in`` list
    restricted: bool = True

    @property
    def prefiltered(self) -> bool:
        return self.restricted and len(self.active_keys) <= PREFILTER_MAX_KEYS

    def filter_expr(self) -> str:
        parts = [self.expr] if self.expr else []
        if self.prefiltered:
            parts.append(f"doc_key in {quote_list(sorted(self.active_keys))}")
        return " and ".join(f"({p})" for p in parts)

    def admit(self, hits: list[Hit]) -> list[Hit]:
        return [h for h in hits if f"{h.doc_id}:{h.version}" in self.active_keys]


class Retriever(abc.ABC):
    """Query text in, ranked passages out."""

    name: ClassVar[str] = ""

    def __init__(self, index: MilvusIndex, embedder: Embedder, rrf_k: int = 60):
        self.index, self.embedder, self.rrf_k = index, embedder, rrf_k

    @abc.abstractmethod
    def retrieve(self, query: str, k: int, scope: Scope) -> list[Hit]:
        """The ``k`` best passages for ``query`` within ``scope``, best first."""

    def _over(self, k: int, scope: Scope) -> int:
        # post-filtering needs head room: ask for more when the filter is applied afterwards
        if scope.prefiltered:
            return k
        return k * 2 if not scope.restricted else k * 4

    def _qvec(self, query: str) -> list[float]:
        return self.embedder.embed([query], kind="query")[0]


def _with_relevance(hits: list[Hit], qvec: list[float]) -> list[Hit]:
    for h in hits:
        if h.vector is not None:
            h.relevance = float(sum(a * b for a, b in zip(qvec, h.vector)))
            h.vector = None
    return hits


class DenseRetriever(Retriever):
    name = "dense"

    def retrieve(self, query: str, k: int, scope: Scope) -> list[Hit]:
        if not scope.active_keys:
            return []
        q = self._qvec(query)
        hits = self.index.dense(scope.collection, q, self._over(k, scope), scope.filter_expr())
        return _with_relevance(scope.admit(hits), q)[:k]


class BM25Retriever(Retriever):
    name = "bm25"

    def retrieve(self, query: str, k: int, scope: Scope) -> list[Hit]:
        if not scope.active_keys:
            return []
        hits = self.index.bm25(scope.collection, query, self._over(k, scope), scope.filter_expr())
        hits = scope.admit(hits)[:k]
        if hits:
            _with_relevance(hits, self._qvec(query))
        return hits


class HybridRetriever(Retriever):
    """Dense + BM25 fused with reciprocal-rank fusion inside Milvus."""

    name = "hybrid"

    def retrieve(self, query: str, k: int, scope: Scope) -> list[Hit]:
        if not scope.active_keys:
            return []
        q = self._qvec(query)
        hits = self.index.hybrid(scope.collection, q, query, self._over(k, scope), scope.filter_expr(),
                                 rrf_k=self.rrf_k)
        return _with_relevance(scope.admit(hits), q)[:k]


RETRIEVERS: dict[str, type[Retriever]] = {}


def register_retriever(cls: type[Retriever]) -> type[Retriever]:
    RETRIEVERS[cls.name] = cls
    return cls


for _cls in (DenseRetriever, BM25Retriever, HybridRetriever):
    register_retriever(_cls)


def make_retriever(name: str, index: MilvusIndex, embedder: Embedder, rrf_k: int = 60) -> Retriever:
    if name not in RETRIEVERS:
        raise InvalidRequest(f"unknown retriever {name!r}; choose one of {sorted(RETRIEVERS)}", param="mode")
    return RETRIEVERS[name](index, embedder, rrf_k=rrf_k)


# -- rerank -------------------------------------------------------------------------------
Reranker = Callable[[str, list[Hit], Embedder], list[Hit]]
RERANKERS: dict[str, Reranker] = {}


def register_reranker(name: str) -> Callable[[Reranker], Reranker]:
    def deco(fn: Reranker) -> Reranker:
        RERANKERS[name] = fn
        return fn
    return deco


@register_reranker("none")
def _no_rerank(query: str, hits: list[Hit], embedder: Embedder) -> list[Hit]:
    return hits


@register_reranker("embedding")
def _embedding_rerank(query: str, hits: list[Hit], embedder: Embedder) -> list[Hit]:
    """Order by cosine similarity to the query (what a cross-encoder would refine)."""
    return sorted(hits, key=lambda h: -(h.relevance if h.relevance is not None else -1.0))


@register_reranker("overlap")
def _overlap_rerank(query: str, hits: list[Hit], embedder: Embedder) -> list[Hit]:
    """Blend cosine with the share of query terms (jieba) the passage contains."""
    import jieba

    terms = {t.lower() for t in jieba.cut_for_search(query) if t.strip() and len(t.strip()) > 1}
    if not terms:
        return hits

    def score(pos_hit: tuple[int, Hit]) -> float:
        pos, h = pos_hit
        body = h.body.lower()
        cover = sum(1 for t in terms if t in body) / len(terms)
        return 0.5 * cover + 0.5 * (h.relevance or 0.0) + 0.1 / (1 + pos)

    return [h for _, h in sorted(enumerate(hits), key=lambda ph: -score(ph))]


def get_reranker(name: str) -> Reranker:
    if name not in RERANKERS:
        raise InvalidRequest(f"unknown reranker {name!r}; choose one of {sorted(RERANKERS)}", param="rerank")
    return RERANKERS[name]


def cosine(a: list[float], b: list[float]) -> float:
    na = math.sqrt(sum(x * x for x in a)) or 1.0
    nb = math.sqrt(sum(x * x for x in b)) or 1.0
    return sum(x * y for x, y in zip(a, b)) / (na * nb)
