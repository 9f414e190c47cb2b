"""The one-command demo (``make align-demo`` → ``zhinao align demo``): data → SFT → RM → DPO, PPO → report → deploy.

Why a pipeline and not a shell script: each stage is skipped when its registered model was
trained with exactly the config the profile asks for (the config is stored on the model's row),
so a re-run after a crash or a Ctrl-C continues where it stopped and a second run registers
nothing twice; the dataset imports are idempotent already (same content → same version).

Data: only the demo files' ``train`` split is imported; the ``eval`` split and the false-premise
and refusal sets are held out for the report, so no model ever trained on what it is judged on.

Profiles (steps per stage; everything else is the stage's defaults, LoRA, one thread):

- ``ci``: a few steps each and a tiny report, for the slow test (minutes on a shared machine);
- ``demo``: enough steps for the reward model and DPO to move on the demo data (target ≤ 30 min
  on two quiet cores; ``bench/alignment.py`` records the measured wall time).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from zhinao.alignment import datasets as ds
from zhinao.errors import InvalidRequest

NAMES = {"sft": "demo-sft", "rm": "demo-rm", "dpo": "demo-dpo", "ppo": "demo-ppo"}
DEPENDS = {"sft": set(), "rm": {"sft"}, "dpo": {"sft"}, "ppo": {"sft", "rm"}}
DATASETS = {"sft": "demo-demonstrations", "preference": "demo-comparisons"}

PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"sft": {"max_steps": 3, "per_device_train_batch_size": 2, "learning_rate": 5e-4},
           "rm": {"max_steps": 3, "per_device_train_batch_size": 2, "learning_rate": 5e-4},
           "dpo": {"max_steps": 3, "per_device_train_batch_size": 2, "learning_rate": 1e-4},
           "ppo": {"max_steps": 2, "per_device_train_batch_size": 2, "response_length": 12},
           "report": {"limit": 3, "pair_limit": 6, "max_new_tokens": 16},
           "max_length": 320, "deploy": ["demo-dpo"]},
    "demo": {"sft": {"max_steps": 30, "per_device_train_batch_size": 4, "learning_rate": 3e-4},
             "rm": {"max_steps": 40, "per_device_train_batch_size": 4, "learning_rate": 1e-4},
             "dpo": {"max_steps": 20, "per_device_train_batch_size": 4, "learning_rate": 5e-5},
             "ppo": {"max_steps": 6, "per_device_train_batch_size": 4, "response_length": 32},
             "report": {"limit": 16, "pair_limit": None, "max_new_tokens": 48},
             "max_length": 384, "deploy": ["demo-dpo", "demo-ppo"]},
}


def _records(name: str) -> list[ds.Record]:
    from zhinao.alignment import demo

    return [ds.parse_record(r, f"demo {name} {r.get('id', '')}") for r in demo.load(name, split="train")]


def stage_configs(profile: str, base_model: str = "smollm2-135m", threads: int = 1) -> dict[str, dict[str, Any]]:
    """The four stages' configs of ``profile`` (what the pipeline trains and compares for idempotency)."""
    if profile not in PROFILES:
        raise InvalidRequest(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}", param="profile")
    p = PROFILES[profile]
    common = {"max_length": p["max_length"], "threads": threads, "save_steps": 1000}
    return {
        "sft": {**common, **p["sft"], "dataset": DATASETS["sft"], "base_model": base_model, "output_name": NAMES["sft"]},
        "rm": {**common, **p["rm"], "dataset": DATASETS["preference"], "base_model": NAMES["sft"],
               "output_name": NAMES["rm"]},
        "dpo": {**common, **p["dpo"], "dataset": DATASETS["preference"], "base_model": NAMES["sft"],
                "output_name": NAMES["dpo"]},
        "ppo": {**common, **p["ppo"], "dataset": DATASETS["preference"], "base_model": NAMES["sft"],
                "output_name": NAMES["ppo"], "reward_model": NAMES["rm"]},
    }


def run(platform: Any, tenant_id: int, *, profile: str = "demo", base_model: str = "smollm2-135m",
        threads: int = 1, deploy: bool = True, report: bool = True,
        echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo end to end; returns the wall time per stage, what was skipped, and the reports.

    Raises:
        InvalidRequest: an unknown profile; NotFound: the base model pack is not installed.
    """
    from zhinao.alignment.config import stage_config

    svc = platform.service("alignment")
    cfgs = stage_configs(profile, base_model, threads)
    out: dict[str, Any] = {"profile": profile, "base_model": base_model, "stages": {}, "skipped": [], "reports": {}}
    t_all = time.monotonic()

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        t0 = time.monotonic()
        r = fn()
        out["stages"][stage] = round(time.monotonic() - t0, 1)
        echo(f"[align demo] {stage}: {out['stages'][stage]} s")
        return r

    def data() -> dict[str, Any]:
        return {kind: svc.build_dataset(tenant_id, name, kind, _records("demonstrations" if kind == "sft"
                                                                         else "comparisons"),
                                        eval_fraction=0.1, source=f"demo:{kind}")
                for kind, name in DATASETS.items()}

    rows = timed("data", data)
    out["datasets"] = {k: {"name": v["name"], "version": v["version"], "n_train": v["n_train"], "n_eval": v["n_eval"],
                           "reused": v["reused"]} for k, v in rows.items()}
    retrained: set[str] = set()
    for stage in ("sft", "rm", "dpo", "ppo"):
        want = stage_config(stage, cfgs[stage]).to_dict()
        have = svc.find_model(tenant_id, NAMES[stage])
        upstream_new = bool(retrained & DEPENDS[stage])
        if have is not None and have["config"] == want and not upstream_new:
            out["skipped"].append(stage)
            echo(f"[align demo] {stage}: {NAMES[stage]} is up to date, skipped")
            continue
        r = timed(stage, lambda s=stage: svc.train(tenant_id, s, cfgs[s]))
        retrained.add(stage)
        m = r["metrics"]
        echo(f"[align demo]   {NAMES[stage]}: {m['steps']} steps, {m.get('s_per_step')} s/step, loss "
             f"{m.get('first_loss')} -> {m.get('last_loss')}" +
             (f", eval pair accuracy {m['eval']['pair_accuracy']}" if "eval" in m else ""))
    if report:
        from zhinao.alignment.report import Evaluator, report as make_report, summary_lines

        rp = PROFILES[profile]["report"]
        ev = Evaluator(max_new_tokens=rp["max_new_tokens"], max_length=PROFILES[profile]["max_length"] + 64,
                       threads=threads)

        def reports() -> None:
            for name in (NAMES["dpo"], NAMES["ppo"]):
                rep = make_report(svc, tenant_id, name, reward_model=NAMES["rm"], limit=rp["limit"],
                                  pair_limit=rp["pair_limit"], evaluator=ev)
                out["reports"][name] = {k: v for k, v in rep.items() if k != "examples"}
                for line in summary_lines(rep):
                    echo(line)

        timed("report", reports)
    if deploy:
        from zhinao.alignment.deploy import deploy as do_deploy

        def deploys() -> None:
            out["deployed"] = {}
            for name in PROFILES[profile]["deploy"]:
                row = svc.model(tenant_id, name)
                done = (row["metrics"] or {}).get("deployed")
                if done and name in platform.models and name not in retrained_names:
                    out["deployed"][name] = {"model": done["model"], "skipped": True}
                    continue
                r = do_deploy(platform, tenant_id, name, replace=name in platform.models, threads=threads)
                out["deployed"][name] = {"model": r["model"], "path": r["path"], "verify": r["verify"]}

        retrained_names = {NAMES[s] for s in retrained}
        timed("deploy", deploys)
    out["total_s"] = round(time.monotonic() - t_all, 1)
    echo(f"[align demo] total {out['total_s']} s; models: {', '.join(NAMES.values())}")
    return out


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=1)
