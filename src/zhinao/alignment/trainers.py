"""The four stages on TRL: SFT, reward model, DPO, PPO — config in, registered model out.

Each stage maps its :mod:`zhinao.alignment.config` dataclass onto TRL's config with the CPU
facts of RLHF-NOTES (``use_cpu=True``; bf16 and gradient checkpointing off unless asked: TRL
defaults both on, which on this CPU is slower or unmeasured), trains, merges LoRA adapters
into the weights (``merge_and_unload``: the result is one plain checkpoint that the next stage,
the evaluator and a GGUF converter read without PEFT) and registers it by name.

Why PPO comes from ``trl.experimental.ppo`` with trl pinned to 1.12.0: TRL removed PPO after
1.12 (1.16 has neither ``PPOTrainer`` nor ``trl.experimental.ppo``); 1.12 runs SFT, reward and
DPO unchanged too, so one pin serves all four stages (docs/alignment.md).

Checkpoints and resume: the run folder is keyed by the job id (``job<N>``), so a job that
the runner resumes after a kill -9 finds its own ``checkpoint-*`` folders and continues
from the last (``resume_from_checkpoint``; PPO, whose trainer has no resume, restarts from
the last saved policy with the remaining batches). A model is registered only after its
merged checkpoint was written completely (written to a temporary folder, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from zhinao.alignment import base_models, datasets as ds
from zhinao.alignment.config import DpoStage, PpoStage, RewardStage, SftStage, StageConfig
from zhinao.errors import InvalidRequest

log = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _callback_class():
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Writes every log (loss, reward, KL, ...) to ``progress.jsonl``, reports job progress, and
        stops at a cancel or a shutdown (``check`` raises JobCancelled between steps)."""

        def __init__(self, path: Path, total: int, progress: Callable | None, check: Callable | None):
            self.path, self.total, self.progress, self.check = path, max(1, total), progress, check
            self.history: list[dict[str, Any]] = []
            self.t0 = time.monotonic()
            self.t_begin: float | None = None  #: training proper (after loading and tokenising)
            self.t_last: float | None = None
            self.steps_here = 0  #: steps run in this process (a resumed job counts only its own)

        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            self.t_begin = time.monotonic()

        def seconds_per_step(self) -> float | None:
            if not self.steps_here or self.t_begin is None or self.t_last is None:
                return None
            return round((self.t_last - self.t_begin) / self.steps_here, 2)

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            row = {"step": state.global_step, "t": round(time.monotonic() - self.t0, 2)}
            row.update({k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))})
            self.history.append(row)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if self.progress is not None:
                shown = {k: round(v, 4) for k, v in row.items() if k in _SHOWN}
                self.progress(min(0.95, state.global_step / self.total),
                              f"step {state.global_step}/{self.total} " + " ".join(f"{k}={v}" for k, v in shown.items()))

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            self.steps_here += 1
            self.t_last = time.monotonic()
            if self.check is not None:
                self.check()

    return ProgressCallback


_SHOWN = ("loss", "rewards/accuracies", "accuracy", "objective/kl", "objective/scores", "objective/rlhf_reward",
          "reward")


def _common_args(cfg: StageConfig, out: Path) -> dict[str, Any]:
    return dict(output_dir=str(out), per_device_train_batch_size=cfg.per_device_train_batch_size,
                gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
                max_steps=cfg.max_steps, num_train_epochs=cfg.num_train_epochs, logging_steps=cfg.logging_steps,
                save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2, seed=cfg.seed,
                use_cpu=True, bf16=cfg.bf16, gradient_checkpointing=cfg.gradient_checkpointing,
                report_to=[], disable_tqdm=True, dataloader_num_workers=0)


def _quiet(trainer: Any) -> Any:
    """No log lines on stdout (transformers' printer/tqdm): ``--json`` output must stay one document;
    our callback records every log."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    return trainer


def _lora(cfg: StageConfig, task_type: str):
    if not cfg.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules="all-linear", task_type=task_type)


def _merged(model: Any) -> Any:
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def _last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out)) if out.is_dir() else None


def _save(model: Any, tok: Any, dest: Path) -> Path:
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def _loss_summary(history: list[dict[str, Any]], key: str = "loss") -> dict[str, Any]:
    vals = [h[key] for h in history if key in h]
    return {"first_loss": round(vals[0], 4), "last_loss": round(vals[-1], 4)} if vals else {}


# -- the stages -------------------------------------------------------------------------------
def train_sft(cfg: SftStage, base: Path, train: list[ds.Record], ev: list[ds.Record], out: Path,
              callbacks: list[Any]) -> tuple[Any, Any, dict[str, Any]]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tok = base_models.load_tokenizer(base)
    rows = [{"prompt": ds._msgs(r.prompt), "completion": [{"role": "assistant", "content": r.completion}]}
            for r in train if isinstance(r, ds.Demonstration)]
    args = SFTConfig(**_common_args(cfg, out), max_length=cfg.max_length, completion_only_loss=cfg.completion_only_loss)
    trainer = SFTTrainer(model=base_models.load_causal_lm(base), args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tok, peft_config=_lora(cfg, "CAUSAL_LM"), callbacks=callbacks)
    _quiet(trainer)
    trainer.train(resume_from_checkpoint=_last_checkpoint(out))
    return _merged(trainer.model), tok, {}


def _seqcls(folder: Path, tok: Any) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification

    m = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=torch.float32)
    m.config.pad_token_id = tok.pad_token_id
    return m


def _pref_rows(records: list[ds.Record]) -> list[dict[str, Any]]:
    return [r.to_trl() for r in records if isinstance(r, ds.Comparison)]


def train_rm(cfg: RewardStage, base: Path, train: list[ds.Record], ev: list[ds.Record], out: Path,
             callbacks: list[Any]) -> tuple[Any, Any, dict[str, Any]]:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from zhinao.alignment.evaluate import pair_accuracy

    tok = base_models.load_tokenizer(base)
    args = RewardConfig(**_common_args(cfg, out), max_length=cfg.max_length,
                        center_rewards_coefficient=cfg.center_rewards_coefficient or None)
    trainer = RewardTrainer(model=_seqcls(base, tok), args=args, train_dataset=Dataset.from_list(_pref_rows(train)),
                            processing_class=tok, peft_config=_lora(cfg, "SEQ_CLS"), callbacks=callbacks)
    _quiet(trainer)
    trainer.train(resume_from_checkpoint=_last_checkpoint(out))
    model = _merged(trainer.model)
    model.eval()
    extra: dict[str, Any] = {}
    if any(isinstance(r, ds.Comparison) for r in ev):
        extra["eval"] = pair_accuracy(model, tok, ev, cfg.max_length)
    return model, tok, extra


def train_dpo(cfg: DpoStage, base: Path, train: list[ds.Record], ev: list[ds.Record], out: Path,
              callbacks: list[Any]) -> tuple[Any, Any, dict[str, Any]]:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tok = base_models.load_tokenizer(base)
    args = DPOConfig(**_common_args(cfg, out), max_length=cfg.max_length, beta=cfg.beta, loss_type=[cfg.loss_type])
    # ref_model=None: with LoRA the reference is the base with the adapter off; in full
    # training TRL keeps a frozen copy of the starting (SFT) model
    trainer = DPOTrainer(model=base_models.load_causal_lm(base), ref_model=None, args=args,
                         train_dataset=Dataset.from_list(_pref_rows(train)), processing_class=tok,
                         peft_config=_lora(cfg, "CAUSAL_LM"), callbacks=callbacks)
    _quiet(trainer)
    trainer.train(resume_from_checkpoint=_last_checkpoint(out))
    return _merged(trainer.model), tok, {}


def train_ppo(cfg: PpoStage, base: Path, train: list[ds.Record], ev: list[ds.Record], out: Path,
              callbacks: list[Any], reward_path: Path) -> tuple[Any, Any, dict[str, Any]]:
    import copy

    from datasets import Dataset
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    tok = base_models.load_tokenizer(base)
    tok.padding_side = "left"
    prompts, seen = [], set()
    for r in [*train, *ev]:
        k = ds.prompt_key(r.prompt)
        if k not in seen:
            seen.add(k)
            prompts.append(ds._msgs(r.prompt))

    def encode(msgs_list):
        return Dataset.from_list([{"input_ids": tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                                                         return_dict=True)["input_ids"]}
                                  for m in msgs_list])

    n_batch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    if len(prompts) < n_batch:
        raise InvalidRequest(f"ppo needs at least per_device_train_batch_size x gradient_accumulation_steps = {n_batch} "
                             f"distinct prompts; the dataset has {len(prompts)}", param="per_device_train_batch_size")
    done = _ppo_done_steps(out)
    start = base
    last = _last_checkpoint(out)
    policy = base_models.load_causal_lm(base)
    if last is not None:  # resume: the policy saved at the last checkpoint, the batches still to run
        policy = _ppo_policy_from(last, policy)
    remaining = max(1, cfg.max_steps - done)
    common = _common_args(cfg, out)
    for k in ("max_steps", "num_train_epochs"):
        common.pop(k)
    args = PPOConfig(**common, total_episodes=remaining * n_batch, num_mini_batches=1,
                     response_length=cfg.response_length, kl_coef=cfg.kl_coef, num_ppo_epochs=cfg.num_ppo_epochs,
                     temperature=cfg.temperature, stop_token="eos", missing_eos_penalty=cfg.missing_eos_penalty,
                     num_sample_generations=0, per_device_eval_batch_size=1)
    ref = None if cfg.lora else copy.deepcopy(policy)
    trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref,
                         reward_model=_seqcls(reward_path, tok), value_model=_seqcls(reward_path, tok),
                         train_dataset=encode(prompts), eval_dataset=encode(prompts[:1]),
                         peft_config=_lora(cfg, "CAUSAL_LM"), callbacks=callbacks)
    _quiet(trainer)
    trainer.train()
    (out / "ppo-done.json").write_text(json.dumps({"steps": done + trainer.state.global_step}), encoding="utf-8")
    return _merged(trainer.model.policy), tok, {"resumed_from_step": done, "start": str(start)}


def _ppo_done_steps(out: Path) -> int:
    last = _last_checkpoint(out)
    if last is None:
        return 0
    state = Path(last) / "trainer_state.json"
    try:
        return int(json.loads(state.read_text())["global_step"])
    except (OSError, KeyError, ValueError):
        return int(Path(last).name.split("-")[-1])


def _ppo_policy_from(ckpt: str, policy: Any) -> Any:
    """The policy saved in a PPO checkpoint: full weights, or a LoRA adapter over ``policy``."""
    p = Path(ckpt)
    if (p / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(policy, p).merge_and_unload()
    return base_models.load_causal_lm(p)


# -- one call per stage ---------------------------------------------------------------------------
def run_stage(service: Any, tenant_id: int, cfg: StageConfig, *, job_id: int | None = None,
              progress: Callable | None = None, check: Callable | None = None) -> dict[str, Any]:
    """Train ``cfg``'s stage and register the result; returns the model row and its metrics.

    Raises:
        InvalidRequest / NotFound: a dataset without records of the stage's kind, a prompt
            over the context length, an unknown base or reward model.
    """
    import torch

    torch.set_num_threads(cfg.threads)
    kind = "sft" if cfg.stage == "sft" else "preference"
    train, ds_row = service.records(tenant_id, cfg.dataset, "train")
    if ds_row is not None:
        ev, _ = service.records(tenant_id, cfg.dataset, "eval")
    else:
        train, ev = ds.split_by_prompt(train, 0.2, cfg.seed)
    if cfg.stage == "ppo":  # PPO only needs prompts: any dataset kind gives them
        if not train:
            raise InvalidRequest(f"dataset {cfg.dataset!r} is empty", param="dataset")
    else:
        ds.require_usable(train, kind, where=f"dataset {cfg.dataset!r} (train split)")
    base = _base_folder(service, tenant_id, cfg.base_model)
    reward_path = None
    if cfg.stage == "ppo":
        reward_path = _reward_folder(service, tenant_id, cfg.reward_model)
    tok = base_models.load_tokenizer(base)
    ds.check_lengths(train + ev, tok, cfg.max_length)

    name = cfg.output_name or f"{Path(cfg.dataset).stem.split('@')[0]}-{cfg.stage}".lower()
    key = f"job{job_id}" if job_id is not None else f"{name}-" + hashlib.sha256(
        json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    run = service.run_dir(tenant_id, key)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({"stage": cfg.stage, **cfg.to_dict()}, indent=1), encoding="utf-8")
    total = cfg.max_steps if cfg.max_steps > 0 else 0
    cb = _callback_class()(run / "progress.jsonl", total, progress, check)
    t0 = time.monotonic()
    ckpt = run / "checkpoints"
    if cfg.stage == "sft":
        model, tok, extra = train_sft(cfg, base, train, ev, ckpt, [cb])
    elif cfg.stage == "rm":
        model, tok, extra = train_rm(cfg, base, train, ev, ckpt, [cb])
    elif cfg.stage == "dpo":
        model, tok, extra = train_dpo(cfg, base, train, ev, ckpt, [cb])
    else:
        model, tok, extra = train_ppo(cfg, base, train, ev, ckpt, [cb], reward_path)
    wall = time.monotonic() - t0
    if check is not None:
        check()  # a cancel that came during the last step: register nothing
    dest = _save(model, tok, run / "model")
    steps = max([h["step"] for h in cb.history] or [0])
    metrics = {"stage": cfg.stage, "steps": steps, "wall_s": round(wall, 1),
               "s_per_step": cb.seconds_per_step(), "peak_rss_mb": peak_rss_mb(),
               "n_train": len(train), "n_eval": len(ev), "lora": cfg.lora, **_loss_summary(cb.history, "loss/policy_avg" if cfg.stage == "ppo" else "loss"),
               **extra}
    if cfg.stage == "ppo":
        for k in ("objective/kl", "objective/scores", "objective/rlhf_reward"):
            vals = [h[k] for h in cb.history if k in h]
            if vals:
                metrics[k.split("/")[-1]] = {"first": round(vals[0], 4), "last": round(vals[-1], 4)}
    (run / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    row = service.register_model(tenant_id, name, stage=cfg.stage, base=cfg.base_model, path=str(dest),
                                 dataset_id=ds_row["id"] if ds_row else None, job_id=job_id, config=cfg.to_dict(),
                                 metrics=metrics)
    shutil.rmtree(ckpt, ignore_errors=True)  # the merged model is kept; resumable state is no longer needed
    return {"model": row["name"], "path": str(dest), "metrics": metrics, "history": cb.history[-50:]}


def _base_folder(service: Any, tenant_id: int, name: str) -> Path:
    """A registered aligned model (usually the SFT model), else a pack or a model folder."""
    row = service.find_model(tenant_id, name)
    if row is not None:
        if row["stage"] == "rm":
            raise InvalidRequest(f"{name!r} is a reward model; a policy stage starts from a causal LM",
                                 param="base_model")
        return Path(row["path"])
    return base_models.prepare(name, service.settings)


def _reward_folder(service: Any, tenant_id: int, name: str) -> Path:
    row = service.find_model(tenant_id, name)
    if row is not None:
        if row["stage"] != "rm":
            raise InvalidRequest(f"{name!r} is a {row['stage']} model, not a reward model", param="reward_model")
        return Path(row["path"])
    p = Path(name)
    if p.is_dir():
        return p
    raise InvalidRequest(f"reward model {name!r} not found: train one with `zhinao align rm`", param="reward_model")
