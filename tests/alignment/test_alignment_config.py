"""Stage configs: YAML loading, validation errors that name the field, help text on every field."""

from __future__ import annotations

import dataclasses

import pytest

from zhinao.alignment.config import STAGES, DpoStage, GrpoStage, PpoStage, SftStage, stage_config
from zhinao.errors import InvalidRequest


def test_yaml_loads_top_level_or_under_the_stage_name(tmp_path):
    p = tmp_path / "sft.yaml"
    p.write_text("base_model: smollm2-135m\ndataset: faq\nlora: false\nmax_steps: 7\nlearning_rate: 3.0e-4\n")
    c = SftStage.from_yaml(p)
    assert (c.lora, c.max_steps, c.learning_rate, c.dataset) == (False, 7, 3e-4, "faq")
    p.write_text("dpo:\n  dataset: pairs\n  beta: 0.3\n")
    d = DpoStage.from_yaml(p)
    assert d.beta == 0.3 and d.lora is True  # the default


@pytest.mark.parametrize("stage, data, needle", [
    ("sft", {"dataset": "x", "max_stepz": 3}, "unknown sft config field(s): max_stepz"),
    ("sft", {"dataset": "x", "lora": "yes"}, "sft.lora must be true or false"),
    ("sft", {"dataset": "x", "max_steps": 0}, "max_steps"),
    ("sft", {"dataset": "x", "learning_rate": 2}, "learning_rate must be in (0, 1)"),
    ("sft", {}, "dataset is required"),
    ("rm", {"dataset": "x", "per_device_train_batch_size": 0}, "per_device_train_batch_size must be a positive"),
    ("dpo", {"dataset": "x", "beta": 0}, "beta must be > 0"),
    ("dpo", {"dataset": "x", "loss_type": "magic"}, "loss_type"),
    ("ppo", {"dataset": "x"}, "reward_model is required"),
    ("ppo", {"dataset": "x", "reward_model": "r", "response_length": 0}, "response_length"),
    ("sft", {"dataset": "x", "output_name": "Bad Name"}, "output_name must be a lowercase slug"),
    ("grpo", {}, "workspace is required"),
    ("nope", {}, "unknown stage 'nope'"),
])
def test_bad_configs_are_refused_with_the_field_named(stage, data, needle):
    with pytest.raises(InvalidRequest) as e:
        stage_config(stage, data)
    assert needle in str(e.value)


def test_bad_yaml_and_missing_file_are_clear(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("dataset: [unclosed\n")
    with pytest.raises(InvalidRequest, match="not valid YAML"):
        SftStage.from_yaml(p)
    with pytest.raises(InvalidRequest, match="not found"):
        SftStage.from_yaml(tmp_path / "missing.yaml")


def test_every_field_of_every_stage_has_help_and_round_trips():
    for cls in STAGES.values():
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
        data = {"dataset": "d", "reward_model": "r"} if cls is PpoStage else {"dataset": "d"}
        if cls is GrpoStage:  # trains on a workspace's accepted examples, not on a dataset
            data = {"workspace": "w"}
        c = cls.from_dict(data)
        assert cls.from_dict(c.to_dict()) == c
