"""The ``Retriever`` protocol: query text in, ranked passages out, within a :class:`Scope`.

One required method, :meth:`Retriever.retrieve`; optional abilities are class flags
(``modes``, ``gives_relevance``), as for :class:`zhinao.runtime.base.ChatModel`. A retriever
gets a :class:`Scope` from the service (which collection, which active document versions
the reader may see), so it never decides who may see what: it must return only passages
whose ``doc_id:version`` is in ``scope.active_keys``.

Backends register by entry point (group ``zhinao.retrievers`` in ``pyproject.toml``),
built-ins exactly like extensions; ``ZHINAO_KB_RETRIEVER`` picks one (default ``milvus``:
dense and BM25 search inside Milvus, hybrid as weighted RRF of the two with weights chosen per
collection, :mod:`.fusion`). Rerankers live in :mod:`.rerank`.
"""

from __future__ import annotations

import abc
import importlib.metadata
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from zhinao.errors import InvalidRequest
from zhinao.knowledge.index import Hit, MilvusIndex, quote_list
from zhinao.runtime.base import Embedder

# kept importable from here: service.py and older plugins import the rerank names from this module
from zhinao.knowledge.rerank import (RERANKERS, Reranker, get_reranker, make_reranker,  # noqa: F401
                                     register_reranker, reranker_names)

#: entry point group of retriever backends
GROUP = "zhinao.retrievers"
#: above this many active documents the version filter is applied after the search
PREFILTER_MAX_KEYS = 4000


@dataclass
class Scope:
    """Where to search: a collection restricted to the active versions of visible docs."""

    collection: str  # the index's collection name (Milvus: ``zhinao_kb_<id>``)
    active_keys: set[str]  # "doc_id:version" the asking user may see
    expr: str = ""  # extra Milvus filter (rarely needed; SQL-side filters become active_keys)
    docs: dict[int, dict[str, Any]] = field(default_factory=dict)  # doc id -> title, source, ...
    #: False when the reader sees every active document: then the collection holds little else
    #: (versions being replaced, for seconds) and a post-filter is cheaper than a long ``in`` list
    restricted: bool = True
    #: how ``hybrid`` fuses dense and BM25 for this collection (a :class:`~zhinao.knowledge.fusion.FusionProfile`
    #: chosen on the collection's own probes); None: equal-weight RRF
    fusion: Any = None

    @property
    def prefiltered(self) -> bool:
        return self.restricted and len(self.active_keys) <= PREFILTER_MAX_KEYS

    def filter_expr(self) -> str:
        parts = [self.expr] if self.expr else []
        if self.prefiltered:
            parts.append(f"doc_key in {quote_list(sorted(self.active_keys))}")
        return " and ".join(f"({p})" for p in parts)

    def admit(self, hits: list[Hit]) -> list[Hit]:
        """The hits this scope may see (the last word, whatever the backend's filter did)."""
        return [h for h in hits if f"{h.doc_id}:{h.version}" in self.active_keys]


class Retriever(abc.ABC):
    """Query text in, ranked passages out. Required: :meth:`retrieve`.

    A backend is built from the knowledge base's parts as keywords: ``index`` (the
    passage store, a :class:`~zhinao.knowledge.index.MilvusIndex`), ``embedder`` and
    ``config`` (:class:`zhinao.knowledge.config.KBConfig`); it may ignore what it does
    not use. Contract (``tests/conformance/test_retrievers.py``): a list of
    :class:`Hit`, at most ``k``, best first, only passages admitted by ``scope``, ``[]``
    for an empty scope, the same answer for the same query over the same data, and
    :class:`~zhinao.errors.InvalidRequest` for a mode outside :attr:`modes`.
    """

    #: backend name in the registry (``milvus``)
    name: ClassVar[str] = ""
    #: search modes this backend offers; the first is its default
    modes: ClassVar[tuple[str, ...]] = ("hybrid",)
    #: whether hits carry ``relevance`` (query-passage cosine): the "not found" threshold
    #: of the knowledge chat and the ``embedding`` reranker read it
    gives_relevance: ClassVar[bool] = True

    def __init__(self, *, index: MilvusIndex | None = None, embedder: Embedder | None = None,
                 config: Any = None):
        self.index, self.embedder, self.config = index, embedder, config

    @abc.abstractmethod
    def retrieve(self, query: str, *, scope: Scope, k: int, mode: str | None = None) -> list[Hit]:
        """The ``k`` best passages for ``query`` within ``scope``, best first."""

    def check_mode(self, mode: str | None) -> str:
        """``mode`` if this backend offers it (None: the default); else a 400 naming the choices."""
        if mode is None:
            return self.modes[0]
        if mode not in self.modes:
            raise InvalidRequest(f"unknown retriever mode {mode!r} for retriever {self.name!r}; "
                                 f"choose one of {list(self.modes)}", param="mode")
        return mode

    def close(self) -> None:
        """Release what the backend opened itself (the shared index belongs to the service)."""


def _with_relevance(hits: list[Hit], qvec: list[float]) -> list[Hit]:
    for h in hits:
        if h.vector is not None:
            h.relevance = float(sum(a * b for a, b in zip(qvec, h.vector)))
            h.vector = None
    return hits


class MilvusRetriever(Retriever):
    """Dense (inner product of unit vectors) and BM25 (jieba) search inside Milvus; hybrid fuses them.

    ``hybrid`` runs both searches and fuses them by weighted RRF with the collection's
    :class:`~zhinao.knowledge.fusion.FusionProfile` (``scope.fusion``), re-ordering the fused
    pool with the overlap reranker where the profile says it helps.
    """

    name = "milvus"
    modes = ("hybrid", "dense", "bm25")

    def __init__(self, *, index: MilvusIndex | None = None, embedder: Embedder | None = None,
                 config: Any = None):
        if index is None or embedder is None:
            raise InvalidRequest("the milvus retriever needs the knowledge index and an embedder")
        super().__init__(index=index, embedder=embedder, config=config)
        self.rrf_k = int(getattr(config, "rrf_k", 60) or 60)

    def retrieve(self, query: str, *, scope: Scope, k: int, mode: str | None = None) -> list[Hit]:
        mode = self.check_mode(mode)
        if k < 1:
            raise InvalidRequest(f"k must be at least 1, got {k}", param="k")
        if not scope.active_keys:
            return []
        n, expr = self._over(k, scope), scope.filter_expr()
        if mode == "bm25":
            hits = scope.admit(self.index.bm25(scope.collection, query, n, expr))[:k]
            return _with_relevance(hits, self._qvec(query)) if hits else hits
        q = self._qvec(query)
        if mode == "dense":
            return _with_relevance(scope.admit(self.index.dense(scope.collection, q, n, expr)), q)[:k]
        return self._hybrid(query, q, scope, k, expr)

    def _hybrid(self, query: str, q: list[float], scope: Scope, k: int, expr: str) -> list[Hit]:
        from zhinao.knowledge.fusion import DEFAULT, fuse
        from zhinao.knowledge.rerank import OverlapReranker

        prof = scope.fusion or DEFAULT
        pool = max(k, int(getattr(self.config, "rerank_candidates", 20) or 20)) if prof.rerank != "none" else k
        depth = self._over(max(pool * 2, 20), scope)  # each list deeper than the fused cut
        dense = scope.admit(self.index.dense(scope.collection, q, depth, expr)) if prof.dense > 0 else []
        bm25 = scope.admit(self.index.bm25(scope.collection, query, depth, expr)) if prof.bm25 > 0 else []
        hits = _with_relevance(fuse(dense, bm25, prof.dense, prof.bm25, self.rrf_k), q)
        if prof.rerank == "overlap":
            hits = OverlapReranker().rerank(query, hits[:pool])
        return hits[:k]

    @staticmethod
    def _over(k: int, scope: Scope) -> int:
        # post-filtering needs head room: ask for more when the filter is applied afterwards
        if scope.prefiltered:
            return k
        return k * 2 if not scope.restricted else k * 4

    def _qvec(self, query: str) -> list[float]:
        return self.embedder.embed([query], kind="query")[0]


# -- registry ------------------------------------------------------------------------------
_extra: dict[str, type[Retriever]] = {}


def register_retriever(cls: type[Retriever], name: str | None = None) -> type[Retriever]:
    """Register a backend at run time (tests, notebooks); entry points are the usual way."""
    _extra[name or cls.name] = cls
    return cls


def retriever_names() -> list[str]:
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=GROUP)} | set(_extra))


def retriever_class(name: str) -> type[Retriever]:
    """The backend registered as ``name``; unknown names are a 400 naming the choices."""
    if name in _extra:
        return _extra[name]
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Retriever)):
                raise InvalidRequest(f"entry point {GROUP}:{name} is {cls!r}, not a Retriever subclass")
            return cls
    raise InvalidRequest(f"unknown retriever {name!r} (setting kb_retriever); choose one of {retriever_names()}",
                         param="retriever")


def make_retriever(name: str, *, index: MilvusIndex | None = None, embedder: Embedder | None = None,
                   config: Any = None) -> Retriever:
    return retriever_class(name)(index=index, embedder=embedder, config=config)


def cosine(a: list[float], b: list[float]) -> float:
    na = math.sqrt(sum(x * x for x in a)) or 1.0
    nb = math.sqrt(sum(x * x for x in b)) or 1.0
    return sum(x * y for x, y in zip(a, b)) / (na * nb)
