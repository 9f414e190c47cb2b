"""Seconds per step and peak memory of each stage: ``python -m zhinao.alignment.measure``.

Each (stage, LoRA or full) runs in its own process so that its peak resident memory is its
own (``ru_maxrss`` never goes down inside a process). The data is synthetic arithmetic made
here with a fixed seed (right vs wrong sums; labelled synthetic in the output), batch 4,
max_length 128, one torch thread unless ``--threads``. Prints one JSON object per run and a
Markdown table at the end (docs/alignment.md keeps the measured one).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

STAGES = ("sft", "rm", "dpo", "ppo")


def _data(n: int = 48, seed: int = 0):
    from zhinao.alignment import datasets as ds

    rnd = random.Random(seed)
    pairs = []
    for i in range(n):
        a, b = rnd.randint(10, 99), rnd.randint(10, 99)
        wrong = a + b + rnd.choice([-10, -2, -1, 1, 2, 10])
        pairs.append(ds.Comparison((("user", f"A customer used {a} GB in May and {b} GB in June. "
                                             f"How much in total? [{i}]"),),
                                   f"In total {a + b} GB ({a} + {b}).", f"In total {wrong} GB ({a} + {b})."))
    return pairs, [ds.Demonstration(p.prompt, p.chosen) for p in pairs]


def one(args: argparse.Namespace) -> dict:
    """One stage in this process (the child side)."""
    from zhinao.alignment.service import AlignmentService
    from zhinao.capability import migration_dirs
    from zhinao.settings import Settings
    from zhinao.store.db import Database

    home = Path(args.home)
    db = Database(f"sqlite:///{home / 'measure.db'}")
    db.migrate(migration_dirs())
    svc = AlignmentService(Settings(home=home), db)
    pairs, demos = _data()
    svc.build_dataset(1, "m-pairs", "preference", pairs)
    svc.build_dataset(1, "m-demos", "sft", demos)
    cfg = {"base_model": args.base, "lora": args.lora, "max_steps": args.steps, "save_steps": 1000,
           "max_length": 128, "per_device_train_batch_size": 4, "threads": args.threads,
           "output_name": f"m-{args.stage}-{'lora' if args.lora else 'full'}",
           "dataset": "m-demos" if args.stage == "sft" else "m-pairs"}
    if args.stage == "ppo":
        cfg.update(reward_model="m-rm-lora", response_length=24, max_steps=max(2, args.steps // 2))
    r = svc.train(1, args.stage, cfg)
    m = r["metrics"]
    return {"stage": args.stage, "base": args.base, "lora": args.lora, "steps": m["steps"],
            "s_per_step": m["s_per_step"], "peak_rss_mb": m["peak_rss_mb"], "first_loss": m.get("first_loss"),
            "last_loss": m.get("last_loss"), **({"eval": m["eval"]} if "eval" in m else {}),
            **({k: m[k] for k in ("kl", "scores") if k in m})}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--home", default=None, help="home whose alignment/base cache holds the converted base")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stage", default="sft", help=argparse.SUPPRESS)
    ap.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(one(args)), flush=True)
        return 0
    home = Path(args.home or tempfile.mkdtemp(prefix="zhinao-measure-"))
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TRL_EXPERIMENTAL_SILENCE": "1"}
    for stage in args.stages.split(","):
        for mode in args.modes.split(","):
            cmd = [sys.executable, "-m", "zhinao.alignment.measure", "--one", "--stage", stage, "--home", str(home),
                   "--base", args.base, "--steps", str(args.steps), "--threads", str(args.threads)]
            if mode == "lora":
                cmd.append("--lora")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                row = {"stage": stage, "lora": mode == "lora", "error": proc.stderr.strip().splitlines()[-1:]}
            else:
                row = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"\n| stage | mode | s/step | peak RSS | loss first → last |  (base {args.base}, synthetic data, "
          f"batch 4, max_length 128, {args.threads} thread)")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        if "error" in r:
            print(f"| {r['stage']} | {'LoRA' if r['lora'] else 'full'} | failed: {r['error']} | | |")
        else:
            print(f"| {r['stage']} | {'LoRA' if r['lora'] else 'full'} | {r['s_per_step']} | "
                  f"{r['peak_rss_mb'] / 1024:.1f} GB | {r['first_loss']} → {r['last_loss']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
