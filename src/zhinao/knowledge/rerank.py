"""The ``Reranker`` protocol: re-order the passages a retriever found.

One required method, :meth:`Reranker.rerank`; abilities are class flags. Rerankers run
after retrieval, on a wider pool (``kb_rerank_candidates``) when :attr:`Reranker.reorders`
is set, and the service keeps the best ``k``. Built-ins (``none``, ``embedding``,
``overlap``) register by entry point (group ``zhinao.rerankers``) exactly like extensions;
``ZHINAO_KB_RERANKER`` or a request's ``rerank`` picks one, and an unknown name is a 400
naming the choices.
"""

from __future__ import annotations

import abc
import importlib.metadata
from typing import ClassVar

from zhinao.errors import InvalidRequest
from zhinao.knowledge.index import Hit
from zhinao.runtime.base import Embedder

#: entry point group of rerankers
GROUP = "zhinao.rerankers"


class Reranker(abc.ABC):
    """Query and hits in, the same hits re-ordered out. Required: :meth:`rerank`.

    Contract (``tests/conformance/test_rerankers.py``): the result holds only hits it was
    given, each at most once (it may drop, never invent); ``[]`` stays ``[]``; hits without
    ``relevance`` are accepted; when :attr:`deterministic`, the same input gives the same
    order. Built with the knowledge base's embedder (``embedder=``), which it may ignore.
    """

    #: name in the registry (``none``, ``embedding``, ``overlap``)
    name: ClassVar[str] = ""
    #: False for the identity: the service then retrieves only ``k`` passages, not a wider pool
    reorders: ClassVar[bool] = True
    #: same query and hits in, same order out
    deterministic: ClassVar[bool] = True

    def __init__(self, *, embedder: Embedder | None = None):
        self.embedder = embedder

    @abc.abstractmethod
    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        """``hits`` (best first by the retriever) in the order this reranker prefers."""


class NoReranker(Reranker):
    """Keep the retriever's order."""

    name = "none"
    reorders = False

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        return list(hits)


class EmbeddingReranker(Reranker):
    """Order by cosine similarity to the query (what a cross-encoder would refine); unknown last."""

    name = "embedding"

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        return sorted(hits, key=lambda h: -(h.relevance if h.relevance is not None else -1.0))


class OverlapReranker(Reranker):
    """Blend cosine with the share of query terms (jieba, two characters or more) the passage contains.

    The passage is its heading path and its body: an exact-title question ("流量比较划算的套餐")
    names the heading, often not the body (issue 11: scoring the body only dropped such
    passages out of the top 10).
    """

    name = "overlap"

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        import jieba

        terms = {t.lower() for t in jieba.cut_for_search(query) if t.strip() and len(t.strip()) > 1}
        if not terms:
            return list(hits)

        def score(pos_hit: tuple[int, Hit]) -> float:
            pos, h = pos_hit
            body = (" > ".join(h.heading) + "\n" + h.body).lower() if h.heading else h.body.lower()
            cover = sum(1 for t in terms if t in body) / len(terms)
            return 0.5 * cover + 0.5 * (h.relevance or 0.0) + 0.1 / (1 + pos)

        return [h for _, h in sorted(enumerate(hits), key=lambda ph: -score(ph))]


# -- registry ------------------------------------------------------------------------------
_extra: dict[str, type[Reranker]] = {}
#: the run-time registrations (tests pop theirs from here); entry points are not listed
RERANKERS = _extra


def register_reranker(cls: type[Reranker], name: str | None = None) -> type[Reranker]:
    """Register a reranker at run time (tests, notebooks); entry points are the usual way."""
    if not (isinstance(cls, type) and issubclass(cls, Reranker)):
        raise TypeError(f"{cls!r} is not a Reranker subclass (implement Reranker.rerank)")
    _extra[name or cls.name] = cls
    return cls


def reranker_names() -> list[str]:
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=GROUP)} | set(_extra))


def get_reranker(name: str) -> type[Reranker]:
    """The reranker class registered as ``name``; unknown names are a 400 naming the choices."""
    if name in _extra:
        return _extra[name]
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Reranker)):
                raise InvalidRequest(f"entry point {GROUP}:{name} is {cls!r}, not a Reranker subclass")
            return cls
    raise InvalidRequest(f"unknown reranker {name!r}; choose one of {reranker_names()}", param="rerank")


def make_reranker(name: str, *, embedder: Embedder | None = None) -> Reranker:
    return get_reranker(name)(embedder=embedder)
