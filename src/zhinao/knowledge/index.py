"""The passage index in Milvus: dense vectors + BM25 (built-in jieba analyzer).

The retriever's ``hybrid`` mode fuses one dense and one BM25 search itself, with weights the
collection chose (:mod:`zhinao.knowledge.fusion`); :meth:`MilvusIndex.hybrid` (Milvus' own,
unweighted RRF) stays for comparisons and plug-ins.

One Milvus collection per knowledge-base collection. The same code runs against Milvus
Lite (a local file, the default) and a Milvus server (``http://host:19530``). Chunks carry
``doc_key = "<doc id>:<version>"`` so a reader can restrict a search to the active
versions the metadata store names; old versions are deleted once a new one is active.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
# milvus-lite 2.5 reads its own version through pkg_resources; the warning is not the user's concern
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

#: output fields returned with every hit
FIELDS = ["pk", "doc_id", "version", "doc_key", "idx", "page", "heading", "kind", "body"]
MAX_BODY = 8000  # characters; chunks are far smaller, this only guards the schema limit
#: jieba for Chinese (English words pass through whole), lower-cased; punctuation and
#: function words dropped so that question words ("怎么", "what") do not dominate BM25.
#: Punctuation goes through the stop list rather than the ``removepunct`` filter because the
#: native Milvus Lite 2.5 engine lacks that filter; the stop list works on every engine.
STOP_WORDS = ["的", "了", "吗", "呢", "吧", "啊", "是", "在", "和", "与", "或", "我", "你", "他", "她", "它", "我们",
              "怎么", "怎么办", "什么", "多少", "哪些", "哪个", "如何", "为什么", "能", "能不能", "可以", "会", "要",
              "有", "没有", "多久", "几", "吗", "么", "the", "a", "an", "is", "are", "do", "does", "did", "i", "my",
              "me", "you", "your", "what", "how", "when", "where", "which", "who", "why", "can", "of", "to", "in",
              "on", "for", "and", "or", "it", "be", "there", "much", "many", "long", "get", "if", "at", "with"]
PUNCTUATION = list("，。！？；：、“”‘’（）《》【】—…·,.!?;:'\"()[]{}<>-/\\|@#$%^&*_+=~`") + [" ", "\t", "\n", "\u3000"]
ANALYZER = {"tokenizer": "jieba", "filter": ["lowercase", {"type": "stop", "stop_words": STOP_WORDS + PUNCTUATION}]}


@dataclass
class Hit:
    pk: str
    doc_id: int
    version: int
    idx: int
    body: str
    page: int | None = None
    heading: list[str] = field(default_factory=list)
    kind: str = "text"
    score: float = 0.0  # retriever's own score (IP, BM25 or RRF)
    relevance: float | None = None  # cosine(query, passage) when known
    vector: list[float] | None = None
    doc: dict[str, Any] = field(default_factory=dict)  # title, source, tags... (joined from SQL)

    @classmethod
    def from_entity(cls, e: dict[str, Any], score: float) -> "Hit":
        page = e.get("page")
        heading = e.get("heading") or ""
        return cls(pk=e["pk"], doc_id=int(e["doc_id"]), version=int(e["version"]), idx=int(e["idx"]),
                   body=e.get("body") or "", page=None if page is None or page < 0 else int(page),
                   heading=json.loads(heading) if heading.startswith("[") else ([heading] if heading else []),
                   kind=e.get("kind") or "text", score=float(score), vector=e.get("dense"))


def chunk_pk(doc_id: int, version: int, idx: int) -> str:
    return f"{doc_id}:{version}:{idx}"


def quote_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


class MilvusIndex:
    """Thin wrapper over ``pymilvus.MilvusClient``; knows nothing of documents or users."""

    def __init__(self, uri: str, token: str | None = None, prefix: str = "zhinao_kb_"):
        from pymilvus import MilvusClient

        self.uri, self.prefix = uri, prefix
        try:
            self.client = MilvusClient(uri=uri, token=token or "")
        except Exception as e:  # Milvus Lite: one process per file; a server: unreachable
            from zhinao.errors import EngineUnavailable

            hint = ("the Milvus Lite file is probably open in another process (is `zhinao serve` running?); "
                    "stop it, or point the knowledge base at a Milvus server (kb milvus_uri)") if "://" not in uri \
                else "check that the Milvus server is running and the token is right"
            raise EngineUnavailable(f"cannot open the knowledge index at {uri}: {e}; {hint}") from e
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def name(self, collection_id: int) -> str:
        return f"{self.prefix}{collection_id}"

    # -- schema -------------------------------------------------------------------------
    def ensure(self, collection_id: int, dim: int) -> str:
        """Create the collection for ``collection_id`` when missing; return its name."""
        name = self.name(collection_id)
        if name in self._known:
            return name
        with self._lock:
            if not self.client.has_collection(name):
                self._create(name, dim)
            else:
                self.client.load_collection(name)
            self._known.add(name)
        return name

    def _create(self, name: str, dim: int) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("doc_id", DataType.INT64)
        schema.add_field("version", DataType.INT64)
        schema.add_field("doc_key", DataType.VARCHAR, max_length=40)
        schema.add_field("idx", DataType.INT64)
        schema.add_field("page", DataType.INT64)
        schema.add_field("heading", DataType.VARCHAR, max_length=2000)
        schema.add_field("kind", DataType.VARCHAR, max_length=16)
        schema.add_field("body", DataType.VARCHAR, max_length=MAX_BODY * 3)
        # what BM25 and the embedder see: title and heading path, then the passage
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_BODY * 4, enable_analyzer=True,
                         analyzer_params=ANALYZER)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["text"], output_field_names=["sparse"]))
        idx = self.client.prepare_index_params()
        idx.add_index(field_name="dense", index_type="AUTOINDEX", metric_type="IP")
        idx.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self.client.create_collection(name, schema=schema, index_params=idx, consistency_level="Strong")
        log.info("created Milvus collection %s (dim %d) at %s", name, dim, self.uri)

    def drop(self, collection_id: int) -> None:
        name = self.name(collection_id)
        if self.client.has_collection(name):
            self.client.drop_collection(name)
        self._known.discard(name)

    # -- writes -------------------------------------------------------------------------
    def insert(self, name: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.client.insert(name, rows)

    def delete(self, name: str, expr: str) -> None:
        self.client.delete(name, filter=expr)

    def flush(self, name: str) -> None:
        """Seal growing segments: searches over sealed, indexed data are ~25x faster."""
        try:
            self.client.flush(name)
        except Exception as e:  # older servers / Lite builds without flush: harmless
            log.debug("flush %s: %s", name, e)

    # -- reads --------------------------------------------------------------------------
    def count(self, name: str, expr: str = "") -> int:
        res = self.client.query(name, filter=expr or "idx >= 0", output_fields=["count(*)"])
        return int(res[0]["count(*)"]) if res else 0

    def query(self, name: str, expr: str, fields: list[str] | None = None, limit: int = 16384) -> list[dict]:
        return self.client.query(name, filter=expr, output_fields=fields or FIELDS, limit=limit)

    def get(self, name: str, pks: list[str]) -> list[dict]:
        return self.client.get(name, ids=pks, output_fields=FIELDS) if pks else []

    def _search(self, fn: Any, name: str, **kw: Any) -> list[list[dict]]:
        """Run a search; an empty collection answers with no hits.

        Milvus fails BM25 over a collection that never held a row (its average document length
        is 0/0: "Invalid sparse row: NaN or Inf"), which is where a reindex into a fresh Milvus
        server starts while the metadata store already lists the documents.
        """
        try:
            return fn(name, **kw)
        except Exception:
            if self.count(name) == 0:
                return [[]]
            raise

    def dense(self, name: str, vector: list[float], k: int, expr: str = "") -> list[Hit]:
        res = self._search(self.client.search, name, data=[vector], anns_field="dense", limit=k, filter=expr,
                           search_params={"metric_type": "IP"}, output_fields=FIELDS)
        hits = [Hit.from_entity(r["entity"], r["distance"]) for r in res[0]]
        for h in hits:  # inner product of unit vectors: the score is the cosine
            h.relevance = h.score
        return hits

    def bm25(self, name: str, text: str, k: int, expr: str = "") -> list[Hit]:
        res = self._search(self.client.search, name, data=[text], anns_field="sparse", limit=k, filter=expr,
                           search_params={"metric_type": "BM25"}, output_fields=FIELDS + ["dense"])
        return [Hit.from_entity(r["entity"], r["distance"]) for r in res[0]]

    def hybrid(self, name: str, vector: list[float], text: str, k: int, expr: str = "",
               rrf_k: int = 60, candidates: int | None = None) -> list[Hit]:
        from pymilvus import AnnSearchRequest, RRFRanker

        n = candidates or max(k * 4, 20)
        reqs = [AnnSearchRequest(data=[vector], anns_field="dense", param={"metric_type": "IP"}, limit=n,
                                 expr=expr or None),
                AnnSearchRequest(data=[text], anns_field="sparse", param={"metric_type": "BM25"}, limit=n,
                                 expr=expr or None)]
        res = self._search(self.client.hybrid_search, name, reqs=reqs, ranker=RRFRanker(rrf_k), limit=k,
                           output_fields=FIELDS + ["dense"])
        return [Hit.from_entity(r["entity"], r["distance"]) for r in res[0]]

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass
        if "://" not in self.uri:  # Milvus Lite: stop its local server process now, not at exit
            try:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)
            except Exception:
                pass
