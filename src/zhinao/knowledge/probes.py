"""Probe questions a collection generates from its own passages, and the fusion choice they make.

No benchmark and no hand-written questions: a collection is its own test. From a bounded,
seeded sample of its passages come probes, each with the passage(s) it came from as gold:

* **title** probes — a section heading as the whole question (people type "流量比较划算的套餐");
  gold: every passage of that section. Headings are where a collection says, in its
  authors' words, what a passage is about: the closest thing to a question it holds.
  They are the probes whenever a collection has at least :data:`MIN_TITLES` distinct ones.
* **sentence** probes — for collections without enough headings: an informative sentence
  of a passage (no link, not boilerplate every passage shares), "paraphrase-lite": stop
  words gone, about 30% of its content terms dropped, order kept; gold: the passages holding it.

Why titles first, measured (docs/benchmarks.md, issue 11): sentence probes share the
passage's exact words, so they over-reward BM25. On the China Mobile FAQ they chose
BM25-only (probe MRR 0.97) while paraphrased questions there favour dense (MRR 0.99 vs
0.90); dropping more terms, reordering or adding a distractor term did not change that.
Title probes chose dense-leaning fusion there and BM25 + reranker on the demo corpus, the
right way round on both.

:func:`tune` runs every probe once through dense and once through BM25 search (the two
real searches, not a model of them), then scores each of
:data:`zhinao.knowledge.fusion.CANDIDATES` on those lists offline, and keeps the best by MRR@10
(recall@5, then no reranker, then the weight leaning toward the retriever that did
better alone, then the candidate order, break ties). Cost: ≤ ``n`` query embeddings (one
batch) and 2·``n`` searches, about a second for 60 probes on Milvus Lite.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import Any

from zhinao.knowledge.chunking import split_sentences
from zhinao.knowledge.fusion import CANDIDATES, FusionProfile, fuse
from zhinao.knowledge.index import PUNCTUATION, STOP_WORDS, Hit
from zhinao.knowledge.rerank import OverlapReranker

#: at most this many passages are read to draw probes from (bounded on a large collection)
SAMPLE_CHUNKS = 2000
#: a collection with fewer passages keeps the default (there is nothing to choose between)
MIN_CHUNKS = 4
#: results per list and probe: what fusion and the reranker may draw on
DEPTH = 30
_STOP = set(STOP_WORDS) | set(PUNCTUATION)
_CJK = re.compile(r"[\u3400-\u9fff]")
_URL = re.compile(r"https?://|www\.|\w+\.(?:com|cn|html?)\b", re.I)
#: share of a sentence's content terms a sentence probe keeps, and whether it reorders them
KEEP, REORDER = 0.7, False
#: below this many title probes, sentence probes fill up to ``n``
MIN_TITLES = 12


@dataclass
class Probe:
    query: str
    gold: frozenset[str]  # passage ids (pk) that answer it
    kind: str  # "title" | "sentence"


def _terms(text: str) -> list[str]:
    import jieba

    return [t for t in (w.strip() for w in jieba.cut(text)) if t and t.lower() not in _STOP]


def _join(terms: list[str]) -> str:
    out = ""
    for t in terms:
        if out and not (_CJK.match(t) or _CJK.search(out[-1:])):
            out += " "
        out += t
    return out


def paraphrase_lite(sentence: str, rng: random.Random, keep: float = KEEP, reorder: bool = REORDER) -> str | None:
    """``sentence`` as a question might hold it: content terms only, some dropped (optionally reordered)."""
    terms = list(dict.fromkeys(_terms(sentence)))
    if len(terms) < 3:
        return None
    n = max(2, round(len(terms) * keep))
    kept = sorted(rng.sample(range(len(terms)), n))
    picked = [terms[i] for i in kept]
    if reorder and len(picked) > 2:  # move one run of terms to the front: same words, another order
        cut = rng.randrange(1, len(picked))
        picked = picked[cut:] + picked[:cut]
    return _join(picked)


def _informative(sent: str, df: dict[str, int], n_chunks: int) -> bool:
    """A sentence a question could be about: no link, and a word that is not everywhere (not boilerplate)."""
    if _URL.search(sent):
        return False
    terms = _terms(sent)
    if len(terms) < 4:
        return False
    return any(df.get(t, 0) <= max(2, n_chunks // 10) for t in terms)


def make_probes(chunks: list[dict[str, Any]], *, n: int = 60, seed: str = "") -> list[Probe]:
    """Up to ``n`` probes from ``chunks`` (dicts with ``pk``, ``doc_key``, ``heading``, ``body``), seeded."""
    rng = random.Random(f"zhinao-probes:{seed}")
    by_section: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for c in chunks:
        by_section.setdefault((c["doc_key"], tuple(c["heading"])), set()).add(c["pk"])
    # titles: section headings that name one section (a heading every document shares names none)
    count: dict[str, int] = {}
    for (_, head) in by_section:
        if head:
            count[head[-1]] = count.get(head[-1], 0) + 1
    titles = [(head[-1], pks) for (_, head), pks in by_section.items()
              if head and count[head[-1]] == 1 and len(_terms(head[-1])) >= 1 and len(head[-1]) >= 2
              and (len(head) > 1 or len(by_section) > 1)]
    rng.shuffle(titles)
    probes = [Probe(t, frozenset(pks), "title") for t, pks in titles[:n]]
    if len(probes) >= MIN_TITLES:
        return probes
    df: dict[str, int] = {}
    for c in chunks:
        for t in set(_terms(c["body"])):
            df[t] = df.get(t, 0) + 1
    order = list(range(len(chunks)))
    rng.shuffle(order)
    for i in order:
        if len(probes) >= n:
            break
        c = chunks[i]
        sents = [s for s in split_sentences(c["body"]) if _informative(s, df, len(chunks))]
        if not sents:
            continue
        sent = rng.choice(sents)
        q = paraphrase_lite(sent, rng)
        if not q:
            continue
        gold = frozenset(x["pk"] for x in chunks if sent in x["body"])
        probes.append(Probe(q, gold, "sentence"))
    return probes


def _rank_metrics(ranked: list[list[str]], probes: list[Probe]) -> tuple[float, float]:
    mrr = r5 = 0.0
    for pks, p in zip(ranked, probes):
        first = next((i for i, pk in enumerate(pks[:10]) if pk in p.gold), None)
        if first is not None:
            mrr += 1.0 / (first + 1)
            r5 += first < 5
    n = max(1, len(probes))
    return mrr / n, r5 / n


def tune(index: Any, embedder: Any, name: str, active_keys: set[str] | frozenset[str], *, n: int = 60,
         rrf_k: int = 60, rerank_pool: int = 20) -> FusionProfile | None:
    """The best :class:`FusionProfile` for the index collection ``name`` on its own probes.

    None when the collection is too small to tell candidates apart (it keeps the default).
    """
    rows = [r for r in index.query(name, "idx >= 0", fields=["pk", "doc_key", "heading", "body"],
                                   limit=SAMPLE_CHUNKS) if r["doc_key"] in active_keys]
    if len(rows) < MIN_CHUNKS or n <= 0:
        return None
    chunks = [{"pk": r["pk"], "doc_key": r["doc_key"], "body": r.get("body") or "",
               "heading": Hit.from_entity({**r, "doc_id": 0, "version": 0, "idx": 0}, 0.0).heading} for r in rows]
    chunks.sort(key=lambda c: c["pk"])
    probes = make_probes(chunks, n=n, seed=name)
    if len(probes) < 3:
        return None
    vecs = embedder.embed([p.query for p in probes], kind="query")
    keys = set(active_keys)
    lists: list[tuple[list[Hit], list[Hit]]] = []
    for p, v in zip(probes, vecs):
        dense = [h for h in index.dense(name, v, DEPTH) if f"{h.doc_id}:{h.version}" in keys]
        bm25 = [h for h in index.bm25(name, p.query, DEPTH) if f"{h.doc_id}:{h.version}" in keys]
        for h in bm25:
            if h.vector is not None:
                h.relevance, h.vector = float(sum(a * b for a, b in zip(v, h.vector))), None
        lists.append((dense, bm25))
    reranker = OverlapReranker()
    scored = []
    for pos, (w, rr) in enumerate(CANDIDATES):
        ranked = []
        for p, (dense, bm25) in zip(probes, lists):
            fused = fuse(_copy(dense), _copy(bm25), w, 1.0 - w, rrf_k)
            if rr == "overlap":
                fused = reranker.rerank(p.query, fused[:max(10, rerank_pool)])
            ranked.append([h.pk for h in fused])
        mrr, r5 = _rank_metrics(ranked, probes)
        scored.append({"dense": w, "bm25": round(1.0 - w, 4), "rerank": rr, "mrr": round(mrr, 4),
                       "recall@5": round(r5, 4), "_pos": pos})
    # ties (common: a small collection's probes often cannot tell fusions apart) lean toward the
    # retriever that did better alone, then follow the candidate order (no reranker first)
    alone = {s["dense"]: s["mrr"] for s in scored if s["rerank"] == "none" and s["dense"] in (0.0, 1.0)}
    lean = 1 if alone.get(1.0, 0) > alone.get(0.0, 0) else -1 if alone.get(0.0, 0) > alone.get(1.0, 0) else 0
    best = max(scored, key=lambda s: (s["mrr"], s["recall@5"], s["rerank"] == "none", lean * s["dense"], -s["_pos"]))
    for s in scored:
        s.pop("_pos")
    return FusionProfile(dense=best["dense"], bm25=best["bm25"], rerank=best["rerank"], probes=len(probes),
                         probe_mrr=best["mrr"], candidates=scored, chunks=len(rows),
                         computed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _copy(hits: list[Hit]) -> list[Hit]:
    """Fresh Hit objects: :func:`fuse` writes its score into the hits it returns."""
    return [Hit(pk=h.pk, doc_id=h.doc_id, version=h.version, idx=h.idx, body=h.body, page=h.page,
                heading=h.heading, kind=h.kind, score=h.score, relevance=h.relevance, doc=h.doc) for h in hits]
