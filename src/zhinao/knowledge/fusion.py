"""Hybrid search that never loses to its parts: weighted RRF with weights chosen per collection.

Plain RRF gives dense and BM25 the same say. On a collection where one of them is clearly
better (the China Mobile FAQ: paraphrased questions, dense r@5 1.00 vs hybrid 0.92, issue 11)
the weaker list drags good passages down. So the weights are a property of the collection:
:func:`zhinao.knowledge.probes.tune` asks the collection's own generated probe questions
(headings, and sentences with terms dropped and reordered; the passage they came from is
gold) and picks, among the :data:`CANDIDATES` (dense only, BM25 only, several weightings,
each with the overlap reranker on or off), the one with the best probe MRR. The choice is a
:class:`FusionProfile`, kept per collection in a small JSON file beside the index
(:class:`FusionStore`) and recomputed after every ingestion job (so ``kb reindex`` too).

Fusion happens here rather than in Milvus' ``RRFRanker`` because that ranker takes no
weights, and the ``WeightedRanker``'s score normalisation mixes BM25's unbounded scores
with cosines on a scale that depends on the collection.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zhinao.knowledge.index import Hit

log = logging.getLogger(__name__)

#: (dense weight, reranker) pairs tried on the probes; BM25's weight is ``1 - dense``.
#: Order is the tie-break: on equal probe scores the earlier (balanced, no reranker) wins.
WEIGHTS = (0.5, 0.65, 0.35, 0.8, 0.2, 1.0, 0.0)
RERANKS = ("none", "overlap")
CANDIDATES: tuple[tuple[float, str], ...] = tuple((w, r) for r in RERANKS for w in WEIGHTS)


@dataclass
class FusionProfile:
    """How ``hybrid`` search combines dense and BM25 results for one collection."""

    dense: float = 0.5  # weight of the dense list in the RRF sum
    bm25: float = 0.5  # weight of the BM25 list
    rerank: str = "none"  # "overlap": the fused pool is re-ordered by query-term cover (heading + body) and cosine
    probes: int = 0  # how many probe questions chose it (0: the untuned default)
    probe_mrr: float | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)  # every candidate's probe scores
    chunks: int = 0  # passages in the collection when it was chosen
    computed_at: str | None = None

    @property
    def label(self) -> str:
        if self.bm25 == 0:
            base = "dense"
        elif self.dense == 0:
            base = "bm25"
        else:
            base = f"rrf(dense {self.dense:g}, bm25 {self.bm25:g})"
        return base + ("" if self.rerank == "none" else f"+{self.rerank}")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FusionProfile":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


#: what ``hybrid`` does before a collection has been tuned (plain, equal-weight RRF)
DEFAULT = FusionProfile()


def fuse(dense: list[Hit], bm25: list[Hit], w_dense: float, w_bm25: float, rrf_k: int = 60) -> list[Hit]:
    """Weighted reciprocal-rank fusion: ``sum_i w_i / (rrf_k + rank_i)`` (ranks from 1), best first.

    A passage found by both lists keeps the dense copy (it carries the cosine as ``relevance``).
    With a weight of 0 a list contributes nothing, so (1, 0) is dense search exactly.
    """
    score: dict[str, float] = {}
    first: dict[str, Hit] = {}
    order: dict[str, int] = {}
    for w, hits in ((w_dense, dense), (w_bm25, bm25)):
        if w <= 0:
            continue
        for rank, h in enumerate(hits, 1):
            score[h.pk] = score.get(h.pk, 0.0) + w / (rrf_k + rank)
            if h.pk not in first:
                first[h.pk], order[h.pk] = h, len(order)
            elif first[h.pk].relevance is None and h.relevance is not None:
                first[h.pk].relevance = h.relevance
    ranked = sorted(score, key=lambda pk: (-score[pk], order[pk]))
    out = []
    for pk in ranked:
        h = first[pk]
        h.score = score[pk]
        out.append(h)
    return out


class FusionStore:
    """One JSON file per index collection (``<root>/<milvus collection>.json``), cached by mtime.

    Beside the blobs in the knowledge home, so every worker that shares the home (and the
    Milvus server) reads the same choice.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[str, tuple[float, FusionProfile]] = {}
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def get(self, name: str) -> FusionProfile | None:
        p = self._path(name)
        try:
            mtime = p.stat().st_mtime
        except OSError:
            return None
        hit = self._cache.get(name)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        try:
            prof = FusionProfile.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as e:  # a torn or hand-edited file: fall back to the default
            log.warning("ignoring fusion profile %s: %s", p, e)
            return None
        with self._lock:
            self._cache[name] = (mtime, prof)
        return prof

    def put(self, name: str, prof: FusionProfile) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(prof.as_dict(), f, ensure_ascii=False, indent=1)
        os.replace(tmp, self._path(name))  # readers see the old file or the new one, never half

    def drop(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except OSError:
            pass
        with self._lock:
            self._cache.pop(name, None)
