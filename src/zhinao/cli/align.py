"""``zhinao align``: datasets from feedback, the training stages as jobs, reward-model and SQL eval.

Runs in this process on the home's store, as the platform operator of tenant ``default``
(like ``zhinao data --local``). A training command submits an ``alignment.train`` job to the
platform's job runner and follows it (progress on stderr); Ctrl-C cancels it, and a job
killed with the process resumes from its last checkpoint the next time the platform starts
(``zhinao serve``, or any ``zhinao align`` training command). ``eval`` needs no job::

    zhinao align data faq-pairs --kind preference          # from stored feedback
    zhinao align data demo-sft --kind sft --from-jsonl demos.jsonl
    zhinao align sft --dataset demo-sft --set max_steps=20 --output-name my-sft
    zhinao align rm  --dataset faq-pairs --base-model my-sft --output-name my-rm
    zhinao align dpo --dataset faq-pairs --base-model my-sft
    zhinao align ppo --dataset faq-pairs --base-model my-sft --reward-model my-rm
    zhinao align grpo -w demo --steps 20                   # SQL skill, rewarded by execution in the sandbox
    zhinao align sql-eval demo-grpo -w demo --limit 40     # its execution accuracy, plain prompt, greedy
    zhinao align eval --reward-model my-rm --pairs held-out.jsonl --json
    zhinao align deploy my-dpo                             # back to GGUF, checked, registered, served
    zhinao align ab start --candidate my-dpo --share 0.2   # A/B: 20% of conversations for the default model
    zhinao align ab status; zhinao align ab rollback
    zhinao align report my-dpo --limit 16                  # win rates over SFT and base, KL, behaviour
    zhinao align demo --profile ci                         # the whole loop on the demo data (make align-demo)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from zhinao.cli import output
from zhinao.cli.common import console, err_console, handle_errors
from zhinao.cli.output import JSON
from zhinao.errors import InvalidRequest

app = typer.Typer(no_args_is_help=True, help="Align models on the platform's feedback / 对齐")


def _service(p: Any) -> Any:
    return p.service("alignment")


def _tenant(p: Any) -> int:
    from zhinao.cli.common import cli_principal

    return cli_principal(p).tenant_id


@app.command("data")
@handle_errors
def data(name: str = typer.Argument(..., help="Dataset name (a slug); a new version when the content changed"),
         kind: str = typer.Option("preference", "--kind", help="sft (demonstrations) | preference (comparisons)"),
         from_jsonl: Path = typer.Option(None, "--from-jsonl", help="Import a TRL-format JSONL file instead of the "
                                         "stored feedback"),
         eval_fraction: float = typer.Option(0.2, help="Share of prompts held out for evaluation"),
         seed: int = typer.Option(0, help="Seed of the split by prompt"),
         names: str = typer.Option("", help="Comma-separated personal names to scrub besides marked ones"),
         export: Path = typer.Option(None, "--export", help="Also copy train.jsonl and eval.jsonl into this folder"),
         as_json: bool = JSON) -> None:
    """Build a dataset version: scrub, dedupe, split by prompt. 构建数据集。"""
    from zhinao.cli.common import platform

    with platform() as p:
        svc, tenant = _service(p), _tenant(p)
        kw = {"names": tuple(n.strip() for n in names.split(",") if n.strip()), "eval_fraction": eval_fraction,
              "seed": seed}
        if from_jsonl is not None:
            row = svc.import_jsonl(tenant, name, from_jsonl, kind, **kw)
        else:
            row = svc.build_dataset(tenant, name, kind, **kw)
    if export is not None:
        import shutil

        export.mkdir(parents=True, exist_ok=True)
        for split in ("train", "eval"):
            shutil.copyfile(Path(row["path"]) / f"{split}.jsonl", export / f"{split}.jsonl")
    if as_json:
        output.print_json(row)
        return
    state = "unchanged, same version" if row.get("reused") else "new version"
    console.print(f"{row['name']} v{row['version']} ({row['kind']}, {state}): {row['n_train']} train, "
                  f"{row['n_eval']} eval; hash {row['content_hash'][:12]}")


@app.command("datasets")
@handle_errors
def datasets_(as_json: bool = JSON) -> None:
    """List dataset versions. 数据集列表。"""
    from zhinao.cli.common import platform

    with platform() as p:
        rows = _service(p).datasets(_tenant(p))
    if as_json:
        output.print_json(rows)
    else:
        output.records(rows, ["name", "version", "kind", "n_train", "n_eval", "created_at"])


@app.command("models")
@handle_errors
def models_(as_json: bool = JSON) -> None:
    """List trained models. 已训练模型。"""
    from zhinao.cli.common import platform

    with platform() as p:
        rows = _service(p).models(_tenant(p))
    if as_json:
        output.print_json(rows)
    else:
        output.records([{**r, "steps": r["metrics"].get("steps"), "last_loss": r["metrics"].get("last_loss")}
                        for r in rows], ["name", "stage", "base", "steps", "last_loss", "created_at"])


def _parse_sets(sets: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in sets or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise InvalidRequest(f"--set {item!r}: use field=value", param="set")
        out[k.strip()] = yaml.safe_load(v)
    return out


def _train(stage: str, config: Path | None, sets: list[str], overrides: dict[str, Any], as_json: bool,
           help_config: bool, detach: bool) -> None:
    from zhinao.alignment.config import STAGES

    if help_config:
        rows = STAGES[stage].help()
        if as_json:
            output.print_json(rows)
        else:
            output.records(rows, ["name", "default", "help"])
        return
    cfg: dict[str, Any] = {}
    if config is not None:
        cfg = STAGES[stage].from_yaml(config).to_dict()
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    cfg.update(_parse_sets(sets))
    STAGES[stage].from_dict(cfg)  # refuse a bad field before anything loads
    from zhinao.cli.common import platform

    with platform() as p:
        svc, tenant = _service(p), _tenant(p)
        job_id = svc.submit(tenant, stage, cfg)
        if detach:
            output.print_json({"job_id": job_id}) if as_json else console.print(f"job {job_id} queued")
            return
        job = _follow(p, job_id)
    if as_json:
        output.print_json(job)
    elif job["status"] == "succeeded" and stage == "grpo":
        r = job["result"]
        m = r["metrics"]
        console.print(f"grpo: registered [bold]{r['model']}[/bold] after {m['steps']} steps on {m['n_train']} "
                      f"accepted examples ({m.get('s_per_step')} s/step, peak {m.get('peak_rss_mb')} MB); reward "
                      f"{m.get('first_reward')} -> {m.get('last_reward')}; answers {m.get('reward_classes')}")
    elif job["status"] == "succeeded":
        r = job["result"]
        m = r["metrics"]
        console.print(f"{stage}: registered [bold]{r['model']}[/bold] after {m['steps']} steps "
                      f"({m.get('s_per_step')} s/step, peak {m.get('peak_rss_mb')} MB); loss "
                      f"{m.get('first_loss')} -> {m.get('last_loss')}" +
                      (f"; eval pair accuracy {m['eval']['pair_accuracy']} (n={m['eval']['n']})" if "eval" in m else ""))
    if job["status"] != "succeeded":
        err_console.print(f"[red]job {job_id} {job['status']}:[/red] {job.get('error') or job.get('message')}")
        raise typer.Exit(1)


def _follow(p: Any, job_id: int) -> dict[str, Any]:
    last = ""
    try:
        while True:
            job = p.jobs.get(job_id)
            if job["message"] != last:
                last = job["message"]
                err_console.print(f"[dim]{job['progress']:.0%}[/dim] {last}", highlight=False)
            if job["status"] not in ("queued", "running"):
                return job
            time.sleep(1.0)
    except KeyboardInterrupt:
        p.jobs.cancel(job_id, wait_s=30)
        err_console.print(f"job {job_id} cancelled")
        raise typer.Exit(130) from None


CONFIG = typer.Option(None, "--config", help="YAML file with the stage's fields")
SET = typer.Option(None, "--set", help="field=value (repeatable); wins over --config")
DATASET = typer.Option(None, "--dataset", "-d", help="Dataset name[@version] or a JSONL file")
BASE = typer.Option(None, "--base-model", "-b", help="Pack name, registered model, or model folder")
OUT = typer.Option(None, "--output-name", help="Name to register the trained model under")
HELP_CONFIG = typer.Option(False, "--help-config", help="List the stage's config fields with their help")
DETACH = typer.Option(False, "--detach", help="Queue the job and return (it runs in a server's job runner)")


@app.command("sft")
@handle_errors
def sft(config: Path = CONFIG, sets: list[str] = SET, dataset: str = DATASET, base_model: str = BASE,
        output_name: str = OUT, as_json: bool = JSON, help_config: bool = HELP_CONFIG, detach: bool = DETACH) -> None:
    """Stage 1: supervised fine-tuning on demonstrations. 监督微调。"""
    _train("sft", config, sets, {"dataset": dataset, "base_model": base_model, "output_name": output_name},
           as_json, help_config, detach)


@app.command("rm")
@handle_errors
def rm(config: Path = CONFIG, sets: list[str] = SET, dataset: str = DATASET, base_model: str = BASE,
       output_name: str = OUT, as_json: bool = JSON, help_config: bool = HELP_CONFIG, detach: bool = DETACH) -> None:
    """Stage 2: reward model from comparisons. 奖励模型。"""
    _train("rm", config, sets, {"dataset": dataset, "base_model": base_model, "output_name": output_name},
           as_json, help_config, detach)


@app.command("dpo")
@handle_errors
def dpo(config: Path = CONFIG, sets: list[str] = SET, dataset: str = DATASET, base_model: str = BASE,
        output_name: str = OUT, as_json: bool = JSON, help_config: bool = HELP_CONFIG, detach: bool = DETACH) -> None:
    """Stage 3 (cheaper): DPO on comparisons. 直接偏好优化。"""
    _train("dpo", config, sets, {"dataset": dataset, "base_model": base_model, "output_name": output_name},
           as_json, help_config, detach)


@app.command("ppo")
@handle_errors
def ppo(config: Path = CONFIG, sets: list[str] = SET, dataset: str = DATASET, base_model: str = BASE,
        output_name: str = OUT,
        reward_model: str = typer.Option(None, "--reward-model", "-r", help="Registered reward model"),
        as_json: bool = JSON, help_config: bool = HELP_CONFIG, detach: bool = DETACH) -> None:
    """Stage 3: PPO against the reward model, KL to the SFT reference. 强化学习。"""
    _train("ppo", config, sets, {"dataset": dataset, "base_model": base_model, "output_name": output_name,
                                 "reward_model": reward_model}, as_json, help_config, detach)


@app.command("grpo")
@handle_errors
def grpo(workspace: str = typer.Option(None, "--workspace", "-w", help="Analytics workspace whose accepted "
                                       "question -> SQL examples train the model and whose sandbox scores it"),
         config: Path = CONFIG, sets: list[str] = SET, base_model: str = BASE, output_name: str = OUT,
         steps: int = typer.Option(None, "--steps", help="Optimizer steps (max_steps)"),
         as_json: bool = JSON, help_config: bool = HELP_CONFIG, detach: bool = DETACH) -> None:
    """SQL skill by GRPO: sampled queries rewarded by execution in the sandbox, no reward model. 执行奖励强化学习。"""
    _train("grpo", config, sets, {"workspace": workspace, "base_model": base_model, "output_name": output_name,
                                  "max_steps": steps}, as_json, help_config, detach)


@app.command("sql-eval")
@handle_errors
def sql_eval(model: str = typer.Argument(..., help="Registered aligned model, pack name, or model folder"),
             workspace: str = typer.Option(..., "--workspace", "-w", help="Workspace the questions are about"),
             questions: Path = typer.Option(None, "--questions", "-q", help="Question JSONL with gold 'sql' "
                                            "(default: the agent's shipped evaluation set)"),
             limit: int = typer.Option(40, "--limit", help="Seeded sample of the SQL questions (0: all), as "
                                       "bench/agent.py --set shipped --limit draws it"),
             seed: int = typer.Option(0, "--seed"),
             max_new_tokens: int = typer.Option(256, help="Tokens per greedy answer"),
             threads: int = typer.Option(1, help="torch threads"),
             as_json: bool = JSON) -> None:
    """Execution accuracy of a model with the plain schema prompt, greedy. SQL 执行准确率。"""
    from zhinao.alignment import grpo as g
    from zhinao.cli.common import platform

    if limit < 0:
        raise InvalidRequest("--limit must be >= 0", param="limit")
    qs = g.shipped_sql_questions(limit, seed, questions)
    with platform() as p:
        svc, tenant = _service(p), _tenant(p)
        folder = g._base(svc, tenant, model)
        ws = g.workspace_for(svc, tenant, workspace)
        r = g.evaluate_sql_skill(folder, ws, qs, max_new_tokens=max_new_tokens, threads=threads,
                                 progress=lambda s: err_console.print(f"[dim]{s}[/dim]", highlight=False))
    r = {"model": model, "workspace": workspace, "limit": limit, "seed": seed, **{k: v for k, v in r.items()
                                                                                if k != "model"}}
    if as_json:
        sys.stdout.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    else:
        console.print(f"execution accuracy {r['execution_accuracy']:.1%} ({r['correct']}/{r['n']}); classes "
                      f"{r['classes']}; {r['s_per_question']} s/question")


@app.command("eval")
@handle_errors
def eval_(reward_model: str = typer.Option(..., "--reward-model", "-r", help="Registered reward model or its folder"),
          pairs: Path = typer.Option(..., "--pairs", "-p", help="Preference JSONL (prompt, chosen, rejected)"),
          max_length: int = typer.Option(1024, help="Tokens scored per answer"),
          threads: int = typer.Option(1, help="torch threads"),
          as_json: bool = JSON) -> None:
    """Pair accuracy of a reward model on a preference file. 奖励模型评估。"""
    from zhinao.alignment import datasets as ds
    from zhinao.alignment.evaluate import load_reward_model, pair_accuracy

    records = ds.read_jsonl(pairs, "preference")
    folder = Path(reward_model)
    if not folder.is_dir():
        from zhinao.cli.common import platform

        with platform() as p:
            row = _service(p).model(_tenant(p), reward_model)
        if row["stage"] != "rm":
            raise InvalidRequest(f"{reward_model!r} is a {row['stage']} model, not a reward model",
                                 param="reward_model")
        folder = Path(row["path"])
    import torch

    torch.set_num_threads(threads)
    t0 = time.monotonic()
    model, tok = load_reward_model(folder)
    result = {"reward_model": reward_model, "pairs": str(pairs), **pair_accuracy(model, tok, records, max_length),
              "seconds": round(time.monotonic() - t0, 2)}
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        console.print(f"pair accuracy {result['pair_accuracy']:.1%} on {result['n']} pairs "
                      f"(95% CI {result['ci95'][0]:.1%}-{result['ci95'][1]:.1%}), mean margin {result['mean_margin']}")


@app.command("deploy")
@handle_errors
def deploy_(name: str = typer.Argument(..., help="Registered sft/dpo/ppo model"),
            base: Path = typer.Option(None, "--base", help="The GGUF the model derives from (default: found "
                                      "through its chain of base models)"),
            serve_as: str = typer.Option(None, "--as", help="Name to serve it under (default: NAME)"),
            outtype: str = typer.Option("f16", "--outtype", help="f16 | f32 | q8_0"),
            replace: bool = typer.Option(False, "--replace", help="Serve the new version under an existing name"),
            threads: int = typer.Option(1, help="torch / llama.cpp threads for the check"),
            as_json: bool = JSON) -> None:
    """Back to GGUF, checked against transformers, registered and served. 部署模型。"""
    from zhinao.alignment.deploy import deploy
    from zhinao.cli.common import platform

    with platform() as p:
        with console.status(f"converting {name} to GGUF and checking it …"):
            r = deploy(p, _tenant(p), name, serve_as=serve_as, base=str(base) if base else None, outtype=outtype,
                       replace=replace, threads=threads)
    if as_json:
        output.print_json(r)
        return
    v = r["verify"] or {}
    console.print(f"deployed [bold]{r['model']}[/bold] ({r['outtype']}, {r['bytes'] / 1e6:.0f} MB) at {r['path']}; "
                  f"greedy output equal to transformers on {v.get('identical')}/{v.get('prompts')} prompts; "
                  f"{r['total_s']} s")


ab_app = typer.Typer(no_args_is_help=True, help="A/B experiment: a share of the tenant's chat traffic to a candidate")
app.add_typer(ab_app, name="ab")


def _experiments(p: Any) -> Any:
    from zhinao.maas.experiments import ExperimentService

    return ExperimentService(p.db, p.models)


@ab_app.command("start")
@handle_errors
def ab_start(candidate: str = typer.Option(..., "--candidate", help="Model that takes the share"),
             base: str = typer.Option(None, "--base", "-b", help="Model the traffic asks for (default: the "
                                      "platform's default model)"),
             share: float = typer.Option(..., "--share", "-s", help="Candidate's part of the conversations, 0-1"),
             name: str = typer.Option("", "--name"), as_json: bool = JSON) -> None:
    """Start an experiment. 开始 A/B 实验。"""
    from zhinao.cli.common import platform

    with platform() as p:
        e = _experiments(p).start(_tenant(p), base or p.models.canonical(None), candidate, share, name=name)
    if as_json:
        output.print_json(e)
    else:
        console.print(f"experiment {e['id']}: {e['share']:.0%} of conversations for {e['base']} go to {e['candidate']}")


@ab_app.command("share")
@handle_errors
def ab_share(share: float = typer.Argument(..., help="New share, 0-1"), as_json: bool = JSON) -> None:
    """Change the running experiment's share. 调整流量比例。"""
    from zhinao.cli.common import platform

    with platform() as p:
        e = _experiments(p).set_share(_tenant(p), share)
    output.print_json(e) if as_json else console.print(f"experiment {e['id']}: share {e['share']:.0%}")


@ab_app.command("status")
@handle_errors
def ab_status(experiment_id: int = typer.Option(None, "--id", help="Experiment id (default: running, else latest)"),
              as_json: bool = JSON) -> None:
    """Per arm: turns, rated, 👍 rate with its 95% interval; the difference. 对比结果。"""
    from zhinao.cli.common import platform

    with platform() as p:
        r = _experiments(p).compare(_tenant(p), experiment_id)
    if as_json:
        output.print_json(r)
        return
    e, d = r["experiment"], r["difference"]
    console.print(f"experiment {e['id']} ({e['status']}, share {e['share']:.0%}): {e['base']} vs {e['candidate']}")
    output.table(["arm", "model", "turns", "rated", "👍", "👍 rate", "95% CI"],
                 [[arm, a["model"], a["turns"], a["rated"], a["thumbs_up"],
                   "" if a["up_rate"] is None else f"{a['up_rate']:.1%}",
                   f"{a['ci95'][0]:.1%}–{a['ci95'][1]:.1%}"] for arm, a in r["arms"].items()])
    if d["ci95"] is None:
        console.print("difference: not enough ratings on both arms yet")
    else:
        console.print(f"candidate − base: {d['candidate_minus_base']:+.1%} (95% CI {d['ci95'][0]:+.1%} to "
                      f"{d['ci95'][1]:+.1%}){'' if d['significant'] else ', not significant'}")


@ab_app.command("rollback")
@handle_errors
def ab_rollback(as_json: bool = JSON) -> None:
    """Share to 0, experiment rolled back: the base model serves everything. 回滚。"""
    from zhinao.cli.common import platform

    with platform() as p:
        e = _experiments(p).rollback(_tenant(p))
    output.print_json(e) if as_json else console.print(f"experiment {e['id']} {e['status']}: {e['base']} serves all")


@app.command("report")
@handle_errors
def report_(name: str = typer.Argument(..., help="Registered sft/dpo/ppo model"),
            reward_model: str = typer.Option(None, "--reward-model", "-r", help="Judge (default: the PPO config's, "
                                             "else the newest reward model)"),
            pairs: Path = typer.Option(None, "--pairs", "-p", help="Held-out preference JSONL (default: the demo's "
                                       "eval split)"),
            limit: int = typer.Option(16, "--limit", help="Held-out prompts answered per model (and per behaviour set)"),
            max_new_tokens: int = typer.Option(64, help="Tokens per greedy answer"),
            threads: int = typer.Option(1, help="torch threads"),
            as_json: bool = JSON) -> None:
    """Evaluation report: RM accuracy, win rates over SFT and base, KL, false-premise and refusal rates. 评估报告。"""
    from zhinao.alignment.report import report, summary_lines
    from zhinao.cli.common import platform

    with platform() as p:
        rep = report(_service(p), _tenant(p), name, reward_model=reward_model, pairs=pairs, limit=limit,
                     max_new_tokens=max_new_tokens, threads=threads)
    if as_json:
        sys.stdout.write(json.dumps(rep, ensure_ascii=False) + "\n")
    else:
        for line in summary_lines(rep):
            console.print(line, highlight=False)


@app.command("demo")
@handle_errors
def demo_(profile: str = typer.Option("demo", "--profile", help="ci (a few steps each) | demo"),
          base_model: str = typer.Option("smollm2-135m", "--base-model", "-b", help="Pack name or model folder"),
          threads: int = typer.Option(1, help="torch threads"),
          no_deploy: bool = typer.Option(False, "--no-deploy", help="Stop after the report"),
          as_json: bool = JSON) -> None:
    """The whole loop on the demo data: data → SFT → RM → DPO, PPO → report → deploy. 一键演示。"""
    from zhinao.alignment import pipeline
    from zhinao.cli.common import platform

    with platform() as p:
        r = pipeline.run(p, _tenant(p), profile=profile, base_model=base_model, threads=threads,
                         deploy=not no_deploy, echo=lambda s: err_console.print(s, highlight=False))
    if as_json:
        sys.stdout.write(pipeline.dumps(r) + "\n")
    else:
        console.print(f"align demo ({profile}): {r['total_s']} s; per stage {r['stages']}")
