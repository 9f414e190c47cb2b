"""Alignment benchmark (issue 13, Performance): s/step and peak memory per stage, ratios, the demo's figures.

Why a wrapper around ``zhinao.alignment.measure``: that module runs each (stage, LoRA or full) in its
own process so each peak RSS is its own; this script runs it for every thread count asked, then
prints ratios against a named baseline (full vs LoRA, N threads vs the first) and adds the demo
pipeline's wall time per stage and its report figures (reward-model pair accuracy, DPO and PPO win
rates over SFT with their intervals) from the JSON that ``zhinao align demo --json`` writes::

    python bench/alignment.py --stages sft,rm,dpo,ppo --modes lora,full --threads 1,2 --out results/align.json
    python bench/alignment.py --skip-measure --demo-result /tmp/align-demo/result.json

Data of the per-step measurement is measure.py's synthetic arithmetic (labelled so in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def measure(stages: str, modes: str, threads: int, steps: int, base: str, home: Path) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TRL_EXPERIMENTAL_SILENCE": "1"}
    cmd = [sys.executable, "-m", "zhinao.alignment.measure", "--stages", stages, "--modes", modes,
           "--threads", str(threads), "--steps", str(steps), "--base", base, "--home", str(home)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    rows = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            rows.append({**json.loads(line), "threads": threads})
    if proc.returncode != 0 and not rows:
        raise SystemExit(f"measure failed: {proc.stderr.strip()[-500:]}")
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """full/LoRA per stage and thread count; N threads / first thread count per stage and mode."""
    ok = [r for r in rows if "error" not in r and r.get("s_per_step")]
    key = {(r["stage"], r["lora"], r["threads"]): r for r in ok}
    out = []
    for (stage, lora, t), r in key.items():
        if not lora and (stage, True, t) in key:
            b = key[(stage, True, t)]
            out.append({"what": f"{stage} full vs LoRA ({t} thread)", "baseline": "lora",
                        "s_per_step": round(r["s_per_step"] / b["s_per_step"], 2),
                        "peak_rss": round(r["peak_rss_mb"] / b["peak_rss_mb"], 2)})
    threads = sorted({r["threads"] for r in ok})
    for (stage, lora, t), r in key.items():
        if t != threads[0] and (stage, lora, threads[0]) in key:
            b = key[(stage, lora, threads[0])]
            out.append({"what": f"{stage} {'LoRA' if lora else 'full'} {t} vs {threads[0]} threads",
                        "baseline": f"{threads[0]} thread", "s_per_step": round(r["s_per_step"] / b["s_per_step"], 2),
                        "peak_rss": round(r["peak_rss_mb"] / b["peak_rss_mb"], 2)})
    return out


def demo_figures(path: Path) -> dict:
    """Wall time per stage and the report's headline figures from a pipeline result JSON."""
    r = json.loads(path.read_text(encoding="utf-8"))
    fig = {"profile": r.get("profile"), "total_s": r.get("total_s"), "stages_s": r.get("stages"),
           "uptime_after": r.get("uptime_after"), "models": {}}
    for name, rep in (r.get("reports") or {}).items():
        m = {"kl_per_answer": rep["kl"]["per_answer"], "behaviour": rep["behaviour"]}
        if "reward_model" in rep:
            m["rm_pair_accuracy"] = {k: rep["reward_model"][k] for k in ("pair_accuracy", "n", "ci95")}
        for label, w in rep["win_rate"].items():
            for judge, v in w.items():
                m[f"win_{label}_{judge}"] = {k: v[k] for k in ("win_rate", "n", "ci95")}
        fig["models"][name] = m
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="sft,rm,dpo,ppo")
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--threads", default="1", help="comma-separated thread counts; the first is the baseline")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--home", default=None, help="home whose alignment/base cache holds the converted base")
    ap.add_argument("--skip-measure", action="store_true", help="only the demo figures")
    ap.add_argument("--demo-result", type=Path, default=None, help="JSON of `zhinao align demo --json`")
    ap.add_argument("--out", type=Path, default=None, help="write everything as JSON here")
    args = ap.parse_args(argv)
    result: dict = {"base": args.base, "data": "synthetic arithmetic (zhinao.alignment.measure)", "rows": []}
    if not args.skip_measure:
        home = Path(args.home or tempfile.mkdtemp(prefix="zhinao-align-bench-"))
        for t in [int(x) for x in args.threads.split(",")]:
            result["rows"] += measure(args.stages, args.modes, t, args.steps, args.base, home)
        result["ratios"] = ratios(result["rows"])
        print("| stage | mode | threads | s/step | peak RSS |")
        print("| --- | --- | --- | --- | --- |")
        for r in result["rows"]:
            if "error" in r:
                print(f"| {r['stage']} | {'LoRA' if r['lora'] else 'full'} | {r['threads']} | failed | |")
            else:
                print(f"| {r['stage']} | {'LoRA' if r['lora'] else 'full'} | {r['threads']} | {r['s_per_step']} | "
                      f"{r['peak_rss_mb'] / 1024:.2f} GB |")
        for q in result["ratios"]:
            print(f"{q['what']}: s/step x{q['s_per_step']}, peak RSS x{q['peak_rss']} (baseline {q['baseline']})")
    if args.demo_result is not None:
        result["demo"] = demo_figures(args.demo_result)
        d = result["demo"]
        print(f"align demo ({d['profile']}): {d['total_s']} s; {d['stages_s']}")
        for name, m in d["models"].items():
            print(f"  {name}: " + "; ".join(f"{k} {v['win_rate'] if 'win_rate' in v else v.get('pair_accuracy')} "
                                            f"{v['ci95']}" for k, v in m.items() if isinstance(v, dict) and "ci95" in v))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
