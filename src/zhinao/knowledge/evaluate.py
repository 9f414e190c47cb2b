"""Retrieval and citation evaluation on a QA set with gold passages.

A QA line is ``{"question", "source", "gold"}``: the passage that answers is the one
from document ``source`` whose text contains the verbatim ``gold`` snippet, so the
labels survive any change of chunking. An optional ``heading`` (a section title, or a list
of them) also requires the passage's section to be that one: in a FAQ where two sections
share a sentence, the question names which it means. Metrics: recall@k (the gold passage is in the
top k), MRR@10, nDCG@10 (binary gains) and, when answers are generated, citation
accuracy (the answer cites a passage that contains the gold snippet).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

from zhinao.errors import InvalidRequest
from zhinao.runtime.base import GenerationParams

#: questions the demo corpus cannot answer: the assistant must say so
OFF_TOPIC = ["怎么做红烧肉？", "量子计算机的原理是什么？", "明天北京会下雨吗？", "推荐一部好看的科幻电影",
             "Who won the football world cup in 2010?", "How do I bake sourdough bread?",
             "What is the capital of Australia?", "Explain the rules of chess castling."]


def load_qa(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"{path}: line {n} is not JSON: {e.msg}") from e
        if not r.get("question") or not r.get("gold"):
            raise InvalidRequest(f"{path}: line {n} needs 'question' and 'gold' (and ideally 'source')")
        rows.append(r)
    if not rows:
        raise InvalidRequest(f"{path}: no questions")
    return rows


def _relevant(hit: Any, qa: dict[str, Any]) -> bool:
    src = qa.get("source")
    body = hit["text"] if isinstance(hit, dict) else hit.body
    hsrc = hit.get("source") if isinstance(hit, dict) else hit.doc.get("source")
    if not (qa["gold"] in body and (not src or hsrc == src or str(hsrc).endswith("/" + src))):
        return False
    want = qa.get("heading")
    if not want:
        return True
    heading = (hit.get("heading") if isinstance(hit, dict) else hit.heading) or []
    return bool(heading) and heading[-1] in ([want] if isinstance(want, str) else list(want))


def retrieval_metrics(rels: list[list[bool]], ks: tuple[int, ...] = (1, 3, 5, 10)) -> dict[str, float]:
    n = len(rels)
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = sum(any(r[:k]) for r in rels) / n
    mrr = 0.0
    ndcg = 0.0
    for r in rels:
        first = next((i for i, x in enumerate(r[:10]) if x), None)
        if first is not None:
            mrr += 1.0 / (first + 1)
        dcg = sum(1.0 / math.log2(i + 2) for i, x in enumerate(r[:10]) if x)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(10, max(1, sum(r)))))
        ndcg += dcg / ideal
    out["mrr@10"] = mrr / n
    out["ndcg@10"] = ndcg / n
    return out


def evaluate(service: Any, principal: Any, collection: str, qa: list[dict[str, Any]] | str | Path, *,
             modes: tuple[str, ...] = ("bm25", "dense", "hybrid"), answers: int = 0,
             model: str | None = None, refusals: bool = True) -> dict[str, Any]:
    """Run every question through each retriever; optionally generate ``answers`` answers.

    A mode is a retriever name, optionally with a reranker: ``hybrid+overlap`` retrieves the
    reranker's candidate pool with hybrid search and reports the reranked top 10.
    """
    rows = load_qa(qa) if not isinstance(qa, list) else qa
    report: dict[str, Any] = {"collection": collection, "questions": len(rows), "modes": {}}
    if hasattr(service, "fusion_profile"):  # what "hybrid" is for this collection (chosen on its probes)
        prof = service.fusion_profile(principal, collection)
        report["fusion"] = {k: prof.get(k) for k in ("label", "dense", "bm25", "rerank", "probes", "probe_mrr")}
    for mode in modes:
        rels, lat = [], []
        for r in rows:
            t0 = time.perf_counter()
            retriever, _, reranker = mode.partition("+")
            hits = service.retrieve(principal, collection, r["question"], k=10, mode=retriever,
                                    rerank_with=reranker or "none")
            lat.append((time.perf_counter() - t0) * 1000)
            rels.append([_relevant(h, r) for h in hits])
        m = retrieval_metrics(rels)
        lat.sort()
        m["p50_ms"] = lat[len(lat) // 2]
        m["p95_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
        report["modes"][mode] = m
    if refusals:
        thr = service.relevance_threshold
        def best(q: str) -> float:
            return max([h.relevance or 0.0 for h in service.retrieve(principal, collection, q, k=3)], default=0.0)

        best_on = [best(r["question"]) for r in rows]
        best_off = [best(q) for q in OFF_TOPIC]
        report["refusal_scores"] = {"answerable": sorted(best_on)[:5], "off_topic": sorted(best_off)[-5:]}
        report["refusal"] = {"threshold": thr,
                             "answerable_kept": sum(b >= thr for b in best_on) / len(best_on),
                             "off_topic_refused": sum(b < thr for b in best_off) / len(best_off)}
    if answers:
        report["answers"] = asyncio.run(_answers(service, principal, collection, spread(rows, answers), model))
    return report


def spread(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` questions evenly spaced through the set, so that a small answer sample covers every
    document and both languages (the set is ordered by document and language)."""
    if n >= len(rows):
        return list(rows)
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


async def _answers(service: Any, principal: Any, collection: str, rows: list[dict[str, Any]],
                   model: str | None) -> dict[str, Any]:
    """Citation accuracy: the share of answers that cite (by the model's [n] markers, or by overlap when
    it writes none) at least one passage containing the question's gold snippet."""
    ok = cited_any = found = 0
    by_lang: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    for r in rows:
        res = await service.chat(principal, collection, [{"role": "user", "content": r["question"]}],
                                 GenerationParams(temperature=0.0, max_tokens=160), model=model)
        found += bool(res["found"])
        cited = [c for c in res["citations"] if c.get("cited")]
        cited_any += any(c.get("cited_by") == "model" for c in cited)
        hit = any(r["gold"] in c["snippet"] or _gold_in_passage(service, principal, collection, c, r) for c in cited)
        ok += hit
        by_lang.setdefault(r.get("lang", "?"), []).append(int(hit))
    n = len(rows)
    return {"n": n, "model": model, "citation_accuracy": ok / n, "answers_with_model_markers": cited_any / n,
            "found": found / n, "seconds": round(time.perf_counter() - t0, 1),
            "citation_accuracy_by_lang": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_lang.items())}}


def _gold_in_passage(service: Any, principal: Any, collection: str, c: dict[str, Any], r: dict[str, Any]) -> bool:
    try:
        p = service.passage(principal, collection, c["passage_id"])
    except Exception:
        return False
    return _relevant(p, r)


def markdown_table(report: dict[str, Any]) -> str:
    lines = ["| retriever | recall@1 | recall@3 | recall@5 | recall@10 | MRR@10 | nDCG@10 | p50 ms | p95 ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mode, m in report["modes"].items():
        lines.append(f"| {mode} | {m['recall@1']:.3f} | {m['recall@3']:.3f} | {m['recall@5']:.3f} | "
                     f"{m['recall@10']:.3f} | {m['mrr@10']:.3f} | {m['ndcg@10']:.3f} | {m['p50_ms']:.0f} | "
                     f"{m['p95_ms']:.0f} |")
    return "\n".join(lines)
