"""Benchmark the analyst agent's SQL engine: plain prompting vs the agent's machinery.

    .venv/bin/python bench/agent.py --set spider --models 0.5b --limit 100 --seed 0
    .venv/bin/python bench/agent.py --set both --models 0.5b,1.5b --limit 200 --ttft

Spider dev (``/work/shared/benchmarks/spider-dev``) is measured as a user meets it: each
database's CSVs imported into its own workspace (``WorkspaceManager.import_path``) in a fresh
temporary ``ZHINAO_HOME``, an empty example library, no Spider text in any prompt. For every
question the same model answers twice in the same run — ``plain_sql`` (CREATE TABLE in the
system prompt, one greedy answer) and ``answer_sql`` (linking, verification, fixes, repair,
voting) — and both prediction files are scored by the benchmark's own ``check.py`` by id.

Model calls go through the metered client (:func:`zhinao.maas.client.clients_for_engine`)
over a supervised llama-server (``cache_prompt`` on), as the server runs them. ``--ttft``
also times the first token of a repeated schema prompt against a cold one.

The shipped set (``src/zhinao/agent/demo/eval_questions.jsonl``, its SQL questions) runs over
the demo workspace the same ways, scored by ``zhinao.agent.evaluate.run_eval``; with
``--examples empty,seeded`` the agent also answers a third time with the demo's shipped sample
example library (``agent/demo/accepted_examples.jsonl``, none of its questions or SQL an eval
one) retrieved as the service retrieves it. The headline is the empty library:

    .venv/bin/python bench/agent.py --set shipped --models 0.5b --limit 40 --seed 0 --examples empty,seeded
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

SPIDER = Path(os.environ.get("ZHINAO_SPIDER_DIR", "/work/shared/benchmarks/spider-dev"))
PACKS = {"0.5b": "qwen2.5-coder-0.5b", "1.5b": "qwen2.5-coder-1.5b"}
ROOT = Path(__file__).resolve().parents[1]


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))]


def load_check():
    spec = importlib.util.spec_from_file_location("spider_check", SPIDER / "check.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def model_path(key: str) -> Path:
    from zhinao.runtime.packs import installed_path
    from zhinao.settings import Settings

    name = PACKS.get(key, key)
    found = installed_path(name, Settings().model_dir)
    if found is None:
        raise SystemExit(f"the {name} pack is not installed: .venv/bin/zhinao models install {name}")
    return Path(found)


class Harness:
    """A temporary platform: settings, a SQLite store, workspaces, the metered client."""

    def __init__(self, home: Path, engine: Any):
        from zhinao.agent.sqlgen import ClientModel
        from zhinao.analytics.workspace import WorkspaceManager
        from zhinao.capability import migration_dirs
        from zhinao.maas.client import clients_for_engine
        from zhinao.maas.tenancy import Principal
        from zhinao.settings import Settings
        from zhinao.store.db import Database

        self.settings = Settings(home=home, env="test")
        self.db = Database(self.settings.db_url)
        self.db.migrate(migration_dirs())
        self.workspaces = WorkspaceManager(self.db, home)
        who = Principal(tenant_id=1, tenant="bench", user_id=None, username=None, key_id=None, role="admin")
        self.model = ClientModel(clients_for_engine(engine, db=self.db, settings=self.settings)(who, "agent"))

    def import_db(self, db_id: str) -> Any:
        self.workspaces.ensure(1, db_id)
        for csv in sorted((SPIDER / db_id).glob("*.csv")):
            self.workspaces.import_path(1, db_id, csv, name=csv.stem.lower(), replace=True)
        return self.workspaces.workspace(1, db_id)


async def run_spider(h: Harness, questions: list[dict[str, Any]], config: Any, out_dir: Path, tag: str,
                     log: Any) -> dict[str, Any]:
    from zhinao.agent.linking import SchemaIndex
    from zhinao.agent.sqlgen import answer_sql, plain_sql

    by_db: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for q in questions:
        by_db[q["db"]].append(q)
    preds: dict[str, list[dict[str, Any]]] = {"plain": [], "agent": []}
    lat: dict[str, list[float]] = {"plain": [], "agent": []}
    extra: dict[str, dict[str, Any]] = {}
    done = 0
    for db_id in sorted(by_db):
        ws = h.import_db(db_id)
        index = SchemaIndex.from_workspace(ws)
        ddl = index.ddl()
        for q in by_db[db_id]:
            p = await plain_sql(h.model, ws, q["q"], ddl=ddl, max_rows=config.max_rows)
            a = await answer_sql(h.model, ws, index, q["q"], config=config)
            preds["plain"].append({"id": q["id"], "sql": p.sql})
            preds["agent"].append({"id": q["id"], "sql": a.sql if a.ok else (a.sql or None)})
            lat["plain"].append(p.ms / 1000)
            lat["agent"].append(a.ms / 1000)
            extra[q["id"]] = {"plain_ok": p.ok, "agent_ok": a.ok, "repaired": a.repaired, "voted": a.voted,
                              "fixes": a.fixes, "attempts": len(a.attempts), "plain_error": p.error,
                              "agent_error": a.error, "ms_plain": p.ms, "ms_agent": a.ms}
            done += 1
            log(f"  [{tag}] {done}/{len(questions)} {q['id']} plain {'ok' if p.ok else 'error'} {p.ms / 1000:.1f} s, "
                f"agent {'ok' if a.ok else 'error'} {a.ms / 1000:.1f} s, {len(a.attempts)} attempts"
                f"{', fixed' if a.fixes else ''}{', repaired' if a.repaired else ''}")
            with open(out_dir / f"spider-{tag}-progress.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"id": q["id"], "plain_sql": p.sql, "agent_sql": a.sql, **extra[q["id"]]},
                                    ensure_ascii=False, default=str) + "\n")
    check = load_check()
    result: dict[str, Any] = {}
    for mode in ("plain", "agent"):
        path = out_dir / f"spider-{tag}-{mode}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for pr in preds[mode]:
                fh.write(json.dumps({"id": pr["id"], "sql": pr["sql"] or "SELECT NULL WHERE FALSE"},
                                    ensure_ascii=False) + "\n")
        res, _ = check.score(questions, check.load_jsonl(path), str(SPIDER), 10.0)
        for r in res:
            extra[r["id"]][f"{mode}_correct"] = r["ok"]
            extra[r["id"]][f"{mode}_status"] = r["status"]
        by_h: dict[str, list[bool]] = defaultdict(list)
        for r in res:
            by_h[r["hardness"]].append(r["ok"])
        result[mode] = {
            "accuracy": round(sum(r["ok"] for r in res) / len(res), 4), "n": len(res),
            "by_hardness": {k: {"accuracy": round(sum(v) / len(v), 4), "n": len(v)}
                            for k, v in sorted(by_h.items(), key=lambda kv: ["easy", "medium", "hard", "extra"].index(kv[0]))},
            "executed": round(sum(extra[q["id"]][f"{mode}_ok"] for q in questions) / len(questions), 4),
            "p50_s": round(pct(lat[mode], 50), 2), "p95_s": round(pct(lat[mode], 95), 2),
            "predictions": str(path)}
    rep = [e for e in extra.values() if e["repaired"]]
    result["agent"]["repaired_share"] = round(len(rep) / len(questions), 4)
    result["agent"]["repaired_correct"] = sum(1 for e in rep if e.get("agent_correct"))
    result["agent"]["voted_share"] = round(sum(e["voted"] for e in extra.values()) / len(questions), 4)
    with open(out_dir / f"spider-{tag}-details.jsonl", "w", encoding="utf-8") as fh:
        for qid, e in extra.items():
            fh.write(json.dumps({"id": qid, **e}, ensure_ascii=False, default=str) + "\n")
    return result


async def measure_ttft(engine: Any, system: str, questions: list[str], repeats: int = 3) -> dict[str, Any]:
    """First-token time of the same long system prompt (cached prefix) vs a fresh one each time."""
    from zhinao.runtime.base import GenerationParams

    params = GenerationParams(temperature=0.0, max_tokens=4)

    async def first_token(sys_text: str, q: str) -> float:
        t0 = time.perf_counter()
        gen = engine.stream([{"role": "system", "content": sys_text}, {"role": "user", "content": q}], params)
        try:
            async for d in gen:
                if d.content:
                    break
        finally:
            await gen.aclose()
        return time.perf_counter() - t0

    await first_token(system, questions[0])  # warm the engine and cache this prefix
    cold, warm = [], []
    for i in range(repeats):
        q = questions[(i + 1) % len(questions)]
        cold.append(await first_token(f"[session {uuid.uuid4().hex}]\n" + system, q))
        await first_token(system, questions[0])  # bring the shared prefix back into the slot
        warm.append(await first_token(system, q))
    c, w = statistics.median(cold), statistics.median(warm)
    return {"cold_s": round(c, 3), "repeated_s": round(w, 3), "ratio": round(w / c, 3) if c else None,
            "prompt_chars": len(system), "repeats": repeats}


def demo_index(h: Harness) -> tuple[Any, Any]:
    """The demo workspace (every shipped demo table: telco, thucnews, milan_total, groceries — the
    shipped questions ask all four) with its descriptions and glossary."""
    from zhinao.agent.linking import SchemaIndex
    from zhinao.analytics.glossary import DEFAULT_GLOSSARY
    from zhinao.analytics.service import DEMO_TABLES

    h.workspaces.ensure(1, "demo")
    have = {d["name"] for d in h.workspaces.datasets(1, "demo")}
    for key in DEMO_TABLES:
        if key not in have:
            h.workspaces.import_demo(1, "demo", key)
    ws = h.workspaces.workspace(1, "demo")
    desc = {d["name"]: h.workspaces.dataset(1, "demo", d["name"]).get("column_descriptions") or {}
            for d in h.workspaces.datasets(1, "demo")}
    glossary = h.workspaces.glossary(1, "demo") or [
        dict(zip(("term", "term_en", "definition_zh", "definition_en", "formula"), g)) for g in DEFAULT_GLOSSARY]
    return ws, SchemaIndex.from_workspace(ws, descriptions=desc, glossary=glossary)


def _summary(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, per category / language, latency and repairs of one mode's per-question records."""
    def share(key: str) -> dict[str, Any]:
        groups: dict[str, list[bool]] = defaultdict(list)
        for r in recs:
            groups[r[key]].append(r["correct"])
        return {k: {"execution_accuracy": round(sum(v) / len(v), 4), "correct": sum(v), "n": len(v)}
                for k, v in sorted(groups.items())}

    ms = [r["ms"] for r in recs if not r.get("error")]
    n = len(recs)
    return {"execution_accuracy": round(sum(r["correct"] for r in recs) / n, 4) if n else 0.0,
            "correct": sum(r["correct"] for r in recs), "n": n,
            "p50_ms": round(pct(ms, 50), 1), "p95_ms": round(pct(ms, 95), 1),
            "repaired_share": round(sum(bool(r.get("repaired")) for r in recs) / n, 4) if n else 0.0,
            "by_lang": share("lang"), "by_category": share("category"),
            "failed_ids": [r["id"] for r in recs if not r["correct"]]}


async def run_shipped(h: Harness, config: Any, log: Any, limit: int = 0, seed: int = 0,
                      examples: tuple[str, ...] = ("empty",), out_dir: Path | None = None,
                      tag: str = "") -> dict[str, Any]:
    """The shipped question set's SQL questions over the demo workspace: plain, and the agent with
    each example library of ``examples`` — ``empty`` (the headline: no worked examples) and
    ``seeded`` (the demo's shipped sample library, ``agent/demo/accepted_examples.jsonl``, loaded
    into the bench workspace's store and retrieved as the service retrieves it: the 3 closest by
    :meth:`~zhinao.agent.store.AgentStore.similar_examples`). The modes run question by question,
    so a load change hits them alike and a stopped run still has comparable partial results
    (``shipped-<tag>-progress.jsonl``). Each answer is scored by
    :func:`zhinao.agent.evaluate.run_eval` (its tool-call questions need the agent service: the
    ``zhinao agent eval`` figures cover them)."""
    try:
        from zhinao.agent import evaluate
    except ImportError:
        return {"skipped": "zhinao.agent.evaluate is not there yet"}
    from zhinao.agent.base import AgentAnswer
    from zhinao.agent.sqlgen import answer_sql, plain_sql

    if not evaluate.DEMO_QUESTIONS.is_file():
        return {"skipped": f"{evaluate.DEMO_QUESTIONS} is not there yet"}
    qs = [q for q in evaluate.load_questions(evaluate.DEMO_QUESTIONS) if q.get("sql")]
    if limit and limit < len(qs):  # the same seeded sample for every mode
        qs = random.Random(seed).sample(qs, limit)
    ws, index = demo_index(h)
    ddl = index.ddl()
    store = None
    if "seeded" in examples:
        from zhinao.agent.demo_examples import seed_demo_examples
        from zhinao.agent.store import AgentStore

        store = AgentStore(h.db)
        store.clear_examples(1, "demo")
        log(f"  seeded the demo library with {seed_demo_examples(store, 1, 'demo')} examples")
    last: dict[str, Any] = {}

    def as_answer(o: Any) -> AgentAnswer:
        last.clear()
        last.update(sql=o.sql, fixes=o.fixes, attempts=len(o.attempts), linked=o.linked, error=o.error)
        return AgentAnswer(answer="", sql=o.sql, columns=o.columns, rows=o.rows if o.ok else [], repaired=o.repaired)

    async def ask_plain(text: str) -> AgentAnswer:
        return as_answer(await plain_sql(h.model, ws, text, ddl=ddl, max_rows=config.max_rows))

    async def ask_agent(text: str) -> AgentAnswer:
        return as_answer(await answer_sql(h.model, ws, index, text, config=config))

    async def ask_seeded(text: str) -> AgentAnswer:
        exs = await asyncio.to_thread(store.similar_examples, 1, "demo", text, 3)  # type: ignore[union-attr]
        out = as_answer(await answer_sql(h.model, ws, index, text, examples=exs, config=config))
        last["examples"] = [e["question"] for e in exs]
        return out

    def gold(sql: str) -> list[list[Any]]:
        return ws.run_sql(sql, max_rows=config.max_rows).json_rows()

    modes = [("plain", ask_plain)] + [("agent" if e == "empty" else f"agent_{e}", ask_seeded if e == "seeded" else ask_agent)
                                      for e in examples]
    recs: dict[str, list[dict[str, Any]]] = {m: [] for m, _ in modes}
    progress = (out_dir / f"shipped-{tag}-progress.jsonl") if out_dir else None
    for i, q in enumerate(qs, 1):
        line = []
        for mode, ask in modes:
            rep = await evaluate.run_eval(ask, [q], gold)
            rec = {**rep["results"][0], "lang": q["lang"], "category": q["category"],
                   **(rep["failures"][0] if rep["failures"] else {}), **last, "mode": mode}
            rec.setdefault("pred_sql", None)
            recs[mode].append(rec)
            line.append(f"{mode} {'ok' if rec['correct'] else 'miss'} {rec['ms'] / 1000:.1f} s")
            if progress is not None:
                with open(progress, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"qid": q["id"], "gold_sql": q["sql"], **rec}, ensure_ascii=False,
                                        default=str) + "\n")
        log(f"  [shipped {tag}] {i}/{len(qs)} {q['id']}: " + ", ".join(line))
    out: dict[str, Any] = {"n_sql_questions": len(qs), "examples": list(examples)}
    for mode, _ in modes:
        out[mode] = _summary(recs[mode])
        log(f"  shipped {mode}: {out[mode]['execution_accuracy']}")
    return out


def make_engine(kind: str, name: str, path: Path, threads: int, ctx: int, settings: Any, slots: int = 2) -> Any:
    """llama-server (what the platform serves; ``cache_prompt``), or llama.cpp in this process
    where the llama-server binary is not built. Two slots: the plain and the agent prompt
    each keep their own cached prefix (the server picks the slot by longest common prefix)."""
    from zhinao.runtime.llama_server import LlamaServerChatModel, find_llama_server
    from zhinao.runtime.llamacpp import LlamaCppChatModel

    if kind == "llama-server":
        try:
            find_llama_server(settings.llama_server_bin)
        except Exception as e:  # noqa: BLE001 - any reason the binary is unusable
            raise SystemExit(f"llama-server is not available ({e}); use --engine llamacpp") from None
        return LlamaServerChatModel(name, path=str(path), slots=slots, threads=threads, context_window=ctx,
                                    settings=settings)
    return LlamaCppChatModel(name, path=str(path), threads=threads, context_window=ctx)


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    from zhinao.agent.sqlgen import SqlConfig
    from zhinao.settings import Settings

    out_dir = Path(a.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    check = load_check()
    questions = check.load_jsonl(str(SPIDER / "questions.jsonl"))
    if a.limit and a.limit < len(questions):
        questions = random.Random(a.seed).sample(questions, a.limit)
    config = SqlConfig(candidates=a.candidates, budget_s=a.budget_s, max_repairs=a.max_repairs,
                       json_mode=a.json_mode, max_rows=5000,
                       fix_identifiers=not a.no_fixes, fix_values=not a.no_fixes)
    report: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores ({platform.node()})",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "threads": a.threads, "slots": a.slots, "engine": a.engine, "config": config.__dict__, "models": {}}
    examples = tuple(dict.fromkeys(e.strip() for e in a.examples.split(",") if e.strip())) or ("empty",)
    bad = [e for e in examples if e not in ("empty", "seeded")]
    if bad:
        raise SystemExit(f"--examples takes empty, seeded or both (comma-separated), not {', '.join(bad)}")
    report["examples"] = {"shipped": list(examples), "spider": ["empty"]}
    for key in [m.strip() for m in a.models.split(",") if m.strip()]:
        path = model_path(key)
        with tempfile.TemporaryDirectory(prefix="zhinao-bench-agent-") as tmp:
            home = Path(tmp)
            os.environ["ZHINAO_HOME"] = str(home)
            settings = Settings(home=home, env="test")
            engine = make_engine(a.engine, PACKS.get(key, key), path, a.threads, a.ctx, settings, a.slots)
            await engine.start()
            try:
                h = Harness(home, engine)
                entry: dict[str, Any] = {"pack": PACKS.get(key, key), "file": path.name}
                if a.ttft:
                    from zhinao.agent.linking import SchemaIndex
                    from zhinao.agent.sqlgen import SYSTEM

                    ws = h.import_db("world_1")
                    system = SYSTEM.format(schema=SchemaIndex.from_workspace(ws).prompt_text())
                    entry["ttft"] = await measure_ttft(engine, system, [
                        "How many rows are there?", "List the first five names.", "What is the largest value?",
                        "Count the distinct codes."])
                    log(f"[{key}] ttft {entry['ttft']}")
                if a.set in ("spider", "both"):
                    t0 = time.perf_counter()
                    entry["spider"] = await run_spider(h, questions, config, out_dir, key, log)
                    entry["spider"]["wall_s"] = round(time.perf_counter() - t0, 1)
                    log(f"[{key}] spider plain {entry['spider']['plain']['accuracy']} "
                        f"agent {entry['spider']['agent']['accuracy']}")
                if a.set in ("shipped", "both"):
                    entry["shipped"] = await run_shipped(h, config, log, a.limit, a.seed, examples=examples,
                                                         out_dir=out_dir, tag=key)
                report["models"][key] = entry
            finally:
                await engine.close()
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("spider", "shipped", "both"), default="spider")
    ap.add_argument("--models", default="0.5b", help="comma-separated: 0.5b, 1.5b (or a pack name)")
    ap.add_argument("--limit", type=int, default=100, help="seeded random sample of Spider dev / of the shipped SQL questions (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads (1 is steadier on busy cores)")
    ap.add_argument("--slots", type=int, default=2, help="llama-server slots (one per prompt family keeps its cache)")
    ap.add_argument("--engine", choices=("llama-server", "llamacpp"), default="llama-server")
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--candidates", type=int, default=1)
    ap.add_argument("--budget-s", dest="budget_s", type=float, default=20.0)
    ap.add_argument("--max-repairs", dest="max_repairs", type=int, default=2)
    ap.add_argument("--json-mode", dest="json_mode", action="store_true")
    ap.add_argument("--no-fixes", dest="no_fixes", action="store_true")
    ap.add_argument("--examples", default="empty",
                    help="the agent's example library on the shipped set: empty, seeded, or empty,seeded (both, "
                         "one run); Spider is always measured with an empty library")
    ap.add_argument("--ttft", action="store_true", help="also time a repeated vs a cold schema prompt")
    ap.add_argument("--out-dir", default="bench/results/agent")
    ap.add_argument("--out", default="", help="the JSON result (default OUT_DIR/agent-<set>.json)")
    a = ap.parse_args(argv)
    report = asyncio.run(main_async(a))
    out = Path(a.out or Path(a.out_dir) / f"agent-{a.set}.json")
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
