"""One configuration dataclass per stage, as TRL does it: fields carry their help text.

Why our own dataclasses in front of TRL's ``SFTConfig``/``RewardConfig``/``DPOConfig``/
``PPOConfig``: TRL's have ~150 fields whose defaults suit GPUs (``bf16=True``, gradient
checkpointing); ours hold the dozen an operator sets, validated before a job starts (a typo
in a YAML file is a 4xx with the field's name, not a stack trace ten minutes into a job), with
CPU defaults, and :mod:`zhinao.alignment.trainers` maps them onto TRL's. ``help`` metadata is
what ``zhinao align sft --help-config`` and docs/alignment.md show.

A YAML file holds one stage's fields at the top level (or under the stage's name)::

    base_model: smollm2-135m
    dataset: demo-sft
    lora: true
    max_steps: 20
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from zhinao.errors import InvalidRequest


def _f(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002 - the dataclasses/TRL word
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class StageConfig:
    """Fields every stage shares."""

    stage: ClassVar[str] = ""
    #: False for a stage that reads its data elsewhere (GRPO: a workspace's accepted examples)
    needs_dataset: ClassVar[bool] = True

    output_name: str = _f("", "Name the trained model is registered under (a slug); default <dataset>-<stage>.")
    base_model: str = _f("smollm2-135m", "Model to start from: a pack name (smollm2-135m, qwen2.5-coder-0.5b), "
                         "a registered aligned model's name, or a Hugging Face model folder.")
    dataset: str = _f("", "Dataset name (its latest version) or name@version, or a JSONL file path.")
    lora: bool = _f(True, "Train LoRA adapters (PEFT) and merge them, instead of every weight.")
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA scaling numerator (alpha / r scales the update).")
    lora_dropout: float = _f(0.05, "Dropout on the LoRA branch.")
    learning_rate: float = _f(1e-4, "Peak learning rate (AdamW).")
    per_device_train_batch_size: int = _f(4, "Examples per step (no gradient accumulation by default).")
    gradient_accumulation_steps: int = _f(1, "Steps whose gradients add up before one optimizer update.")
    max_steps: int = _f(20, "Optimizer steps to run (-1: num_train_epochs).")
    num_train_epochs: float = _f(1.0, "Epochs when max_steps is -1.")
    max_length: int = _f(256, "Tokens per example (prompt + answer); prompts over 75% of it are refused.")
    save_steps: int = _f(10, "Write a checkpoint every N steps (a killed job resumes from the last one).")
    logging_steps: int = _f(1, "Record loss (and reward / KL) every N steps.")
    seed: int = _f(0, "Seed for data order, LoRA init and sampling.")
    bf16: bool = _f(False, "bfloat16 autocast; off by default: fp32 is the measured, reproducible CPU path.")
    gradient_checkpointing: bool = _f(False, "Recompute activations to save memory (cost 5-70% time here).")
    threads: int = _f(1, "torch threads; 1 stays steady when the cores are shared (RLHF-NOTES).")

    def validate(self) -> "StageConfig":
        """Check ranges and combinations; returns self.

        Raises:
            InvalidRequest: naming the field and what is allowed.
        """
        pos = ["lora_r", "lora_alpha", "per_device_train_batch_size", "gradient_accumulation_steps",
               "max_length", "save_steps", "logging_steps", "threads"]
        for name in pos:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InvalidRequest(f"{self.stage}.{name} must be a positive integer, got {v!r}", param=name)
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1):
            raise InvalidRequest(f"{self.stage}.learning_rate must be in (0, 1), got {self.learning_rate!r}",
                                 param="learning_rate")
        if not 0 <= self.lora_dropout < 1:
            raise InvalidRequest(f"{self.stage}.lora_dropout must be in [0, 1)", param="lora_dropout")
        if self.max_steps == 0 or self.max_steps < -1:
            raise InvalidRequest(f"{self.stage}.max_steps must be a positive integer or -1 (use epochs)",
                                 param="max_steps")
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            raise InvalidRequest(f"{self.stage}.num_train_epochs must be > 0 when max_steps is -1",
                                 param="num_train_epochs")
        if not self.base_model:
            raise InvalidRequest(f"{self.stage}.base_model is required", param="base_model")
        if self.needs_dataset and not self.dataset:
            raise InvalidRequest(f"{self.stage}.dataset is required (a dataset name or a JSONL file)",
                                 param="dataset")
        if self.output_name:
            import re

            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", self.output_name):
                raise InvalidRequest(f"{self.stage}.output_name must be a lowercase slug (a-z, 0-9, . _ -)",
                                     param="output_name")
        return self

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StageConfig":
        """Build and validate from a mapping; unknown fields and wrong types are refused."""
        if not isinstance(data, dict):
            raise InvalidRequest(f"{cls.stage} config must be a mapping of field: value")
        if cls.stage in data and isinstance(data[cls.stage], dict):
            data = data[cls.stage]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise InvalidRequest(f"unknown {cls.stage} config field(s): {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(fields))}")
        kw: dict[str, Any] = {}
        for k, v in data.items():
            kw[k] = _coerce(cls.stage, k, fields[k], v)
        return cls(**kw).validate()

    @classmethod
    def from_yaml(cls, path: Path | str) -> "StageConfig":
        import yaml

        p = Path(path)
        if not p.is_file():
            raise InvalidRequest(f"config file {p} not found")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise InvalidRequest(f"{p.name}: not valid YAML ({e})") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def help(cls) -> list[dict[str, Any]]:
        """Each field's name, type, default and help (for ``--help-config`` and the docs)."""
        return [{"name": f.name, "type": str(f.type), "default": f.default, "help": f.metadata.get("help", "")}
                for f in dataclasses.fields(cls)]


def _coerce(stage: str, name: str, f: dataclasses.Field, v: Any) -> Any:
    want = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(want, bool):
        if isinstance(v, bool):
            return v
        raise InvalidRequest(f"{stage}.{name} must be true or false, got {v!r}", param=name)
    if isinstance(want, int):
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        raise InvalidRequest(f"{stage}.{name} must be an integer, got {v!r}", param=name)
    if isinstance(want, float):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        raise InvalidRequest(f"{stage}.{name} must be a number, got {v!r}", param=name)
    if isinstance(want, str):
        if isinstance(v, str):
            return v
        raise InvalidRequest(f"{stage}.{name} must be a string, got {v!r}", param=name)
    return v


@dataclass
class SftStage(StageConfig):
    """Stage 1: supervised fine-tuning on demonstrations (TRL SFTTrainer), loss on the answer only."""

    stage: ClassVar[str] = "sft"
    learning_rate: float = _f(2e-4, "Peak learning rate (AdamW).")
    completion_only_loss: bool = _f(True, "Loss on the assistant's answer only, not on the prompt.")


@dataclass
class RewardStage(StageConfig):
    """Stage 2: a scalar reward model from comparisons (TRL RewardTrainer, pairwise loss)."""

    stage: ClassVar[str] = "rm"
    base_model: str = _f("smollm2-135m", "Model whose body the reward head goes on: usually the SFT model's name.")
    learning_rate: float = _f(1e-4, "Peak learning rate (AdamW).")
    center_rewards_coefficient: float = _f(0.0, "Pulls mean reward to 0 (TRL's coefficient; 0 = off).")


@dataclass
class DpoStage(StageConfig):
    """Stage 3 (the cheap way): DPO on comparisons directly, the SFT model as its own reference."""

    stage: ClassVar[str] = "dpo"
    learning_rate: float = _f(5e-5, "Peak learning rate (AdamW).")
    beta: float = _f(0.1, "KL strength against the reference model: higher stays closer to it.")
    loss_type: str = _f("sigmoid", "DPO loss: sigmoid (the paper), ipo, hinge.")

    def validate(self) -> "DpoStage":
        super().validate()
        if not self.beta > 0:
            raise InvalidRequest("dpo.beta must be > 0", param="beta")
        if self.loss_type not in ("sigmoid", "ipo", "hinge"):
            raise InvalidRequest("dpo.loss_type must be sigmoid, ipo or hinge", param="loss_type")
        return self


@dataclass
class PpoStage(StageConfig):
    """Stage 3: PPO against the reward model with a KL penalty to the SFT reference (trl.experimental.ppo)."""

    stage: ClassVar[str] = "ppo"
    learning_rate: float = _f(3e-6, "Peak learning rate (AdamW) of policy and value model.")
    reward_model: str = _f("", "Registered reward model's name (stage rm) or its folder; required.")
    response_length: int = _f(24, "Tokens sampled per prompt during rollouts.")
    kl_coef: float = _f(0.05, "KL penalty to the SFT reference per token.")
    num_ppo_epochs: int = _f(1, "PPO epochs over each batch of rollouts.")
    temperature: float = _f(0.7, "Sampling temperature of the rollouts.")
    missing_eos_penalty: float = _f(1.0, "Subtracted from the reward of a reply that did not end (no EOS).")
    max_steps: int = _f(4, "PPO batches (each: rollouts, rewards, one update) to run.")

    def validate(self) -> "PpoStage":
        super().validate()
        if not self.reward_model:
            raise InvalidRequest("ppo.reward_model is required: the name of a trained reward model",
                                 param="reward_model")
        if self.max_steps < 1:
            raise InvalidRequest("ppo.max_steps must be a positive integer", param="max_steps")
        for name in ("response_length", "num_ppo_epochs"):
            if getattr(self, name) < 1:
                raise InvalidRequest(f"ppo.{name} must be a positive integer", param=name)
        if self.kl_coef < 0 or not self.temperature > 0:
            raise InvalidRequest("ppo.kl_coef must be >= 0 and ppo.temperature > 0", param="kl_coef")
        return self


@dataclass
class GrpoStage(StageConfig):
    """Stage 3 for SQL: GRPO with an execution reward (TRL GRPOTrainer), no reward model.

    The accepted question -> SQL pairs of a workspace are verifiable: a sampled query that runs
    in the sandbox and returns the accepted query's result is right (Arctic-Text2SQL-R1). Each
    prompt is sampled ``num_generations`` times and each answer scored against its group's mean
    (:mod:`zhinao.alignment.grpo`). The data is the agent store's examples of ``workspace``,
    never a file: over HTTP a config may name no server path."""

    stage: ClassVar[str] = "grpo"
    needs_dataset: ClassVar[bool] = False
    base_model: str = _f("qwen2.5-coder-0.5b", "Model to start from: a pack name, a registered aligned model's "
                         "name, or a Hugging Face model folder.")
    workspace: str = _f("", "Analytics workspace whose accepted question -> SQL examples (agent store) are the "
                        "training prompts and whose sandboxed DuckDB scores the answers; required.")
    learning_rate: float = _f(5e-5, "Peak learning rate (AdamW); LoRA tolerates ~10x a full fine-tune's.")
    per_device_train_batch_size: int = _f(8, "Completions per step (prompts x num_generations; a multiple of "
                                          "num_generations).")
    num_generations: int = _f(4, "Answers sampled per prompt; rewards are compared within each group of these.")
    max_completion_length: int = _f(160, "Tokens sampled per answer; an answer cut off here scores as it parses.")
    max_length: int = _f(1536, "Tokens of a prompt (schema + question) at most; longer ones are refused.")
    temperature: float = _f(1.0, "Sampling temperature of the groups (diversity is what GRPO learns from).")
    top_p: float = _f(1.0, "Nucleus sampling of the groups.")
    beta: float = _f(0.0, "KL strength to the start model; 0 skips the reference forward pass (TRL's default "
                      "since DAPO/Dr. GRPO; on CPU it costs a third more per step).")
    epsilon: float = _f(0.2, "PPO-style clip range of the probability ratio.")
    wrong_reward: float = _f(0.1, "Reward of a query that runs but returns another result (Arctic-Text2SQL-R1: "
                             "0.1); a refused or failing query gets 0, a right one 1.")
    sql_timeout_s: float = _f(5.0, "Sandbox timeout per scored query (a sampled cross join must not stall a step).")
    max_rows: int = _f(1000, "Rows compared per result; an accepted query returning more is left out of training.")
    max_steps: int = _f(10, "Optimizer steps (each: sample the groups, score them, one update).")
    save_steps: int = _f(5, "Write a checkpoint every N steps (a killed job resumes from the last one).")

    def validate(self) -> "GrpoStage":
        super().validate()
        if not self.workspace:
            raise InvalidRequest("grpo.workspace is required: the analytics workspace whose accepted examples "
                                 "train the model", param="workspace")
        for name in ("num_generations", "max_completion_length", "max_rows"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InvalidRequest(f"grpo.{name} must be a positive integer, got {v!r}", param=name)
        if self.num_generations < 2:
            raise InvalidRequest("grpo.num_generations must be at least 2 (GRPO compares answers within a group)",
                                 param="num_generations")
        n = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if n % self.num_generations:
            raise InvalidRequest(f"grpo.per_device_train_batch_size x gradient_accumulation_steps ({n}) must be a "
                                 f"multiple of num_generations ({self.num_generations})", param="num_generations")
        if not self.temperature > 0 or not 0 < self.top_p <= 1:
            raise InvalidRequest("grpo.temperature must be > 0 and grpo.top_p in (0, 1]", param="temperature")
        if self.beta < 0 or not 0 < self.epsilon < 1:
            raise InvalidRequest("grpo.beta must be >= 0 and grpo.epsilon in (0, 1)", param="beta")
        if not 0 <= self.wrong_reward < 1:
            raise InvalidRequest("grpo.wrong_reward must be in [0, 1) (below a right answer's 1)",
                                 param="wrong_reward")
        if not self.sql_timeout_s > 0:
            raise InvalidRequest("grpo.sql_timeout_s must be > 0", param="sql_timeout_s")
        return self


STAGES: dict[str, type[StageConfig]] = {c.stage: c for c in (SftStage, RewardStage, DpoStage, PpoStage, GrpoStage)}


def stage_config(stage: str, data: dict[str, Any] | None = None) -> StageConfig:
    """The validated config of ``stage`` (sft | rm | dpo | ppo | grpo) from a mapping."""
    if stage not in STAGES:
        raise InvalidRequest(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}", param="stage")
    return STAGES[stage].from_dict(dict(data or {}))
