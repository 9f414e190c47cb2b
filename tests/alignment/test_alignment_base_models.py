"""Base models: the GGUF pack converted once (sane weights), folders checked for a causal LM."""

from __future__ import annotations

import json
import time

import pytest

from zhinao.alignment import base_models
from zhinao.errors import InvalidRequest, NotFound
from zhinao.settings import Settings


def test_the_135m_pack_is_converted_once_and_passed_the_sanity_check(base_home):
    s = Settings(home=base_home)
    t0 = time.monotonic()
    folder = base_models.prepare("smollm2-135m", s)  # cached by the session fixture
    assert time.monotonic() - t0 < 2
    meta = json.loads((folder / "zhinao-base.json").read_text())
    assert meta["sanity"]["loss"] < 0.7 * meta["sanity"]["random_level"] and meta["sanity"]["reply"]
    base_models.check_causal_lm(folder)
    assert base_models.prepare("SmolLM2-135M-Instruct", s) == folder  # an alias is the same pack


def test_sanity_check_catches_random_weights(base_home):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = base_models.prepare("smollm2-135m", Settings(home=base_home))
    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(folder)
    cfg.num_hidden_layers = 2
    broken = AutoModelForCausalLM.from_config(cfg)
    with pytest.raises(InvalidRequest, match="look broken"):
        base_models.sanity_check(broken, base_models.load_tokenizer(folder))


def test_a_folder_that_is_not_a_causal_lm_is_refused(base_home, tmp_path):
    from transformers import AutoConfig

    folder = base_models.prepare("smollm2-135m", Settings(home=base_home))
    cfg = AutoConfig.from_pretrained(folder)
    cfg.architectures = ["LlamaForSequenceClassification"]
    (tmp_path / "clf").mkdir()
    cfg.save_pretrained(tmp_path / "clf")
    with pytest.raises(InvalidRequest, match="not a causal language model"):
        base_models.prepare(str(tmp_path / "clf"), Settings(home=tmp_path / "h"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRequest, match="no config.json"):
        base_models.prepare(str(tmp_path / "empty"), Settings(home=tmp_path / "h"))


def test_unknown_and_uninstalled_bases_say_what_to_do(tmp_path):
    with pytest.raises(NotFound, match="neither a model pack"):
        base_models.resolve("gpt-17", Settings(home=tmp_path))
    with pytest.raises(NotFound, match="zhinao models install qwen2.5-coder-1.5b"):
        base_models.resolve("qwen2.5-coder-1.5b", Settings(home=tmp_path))


@pytest.mark.slow
def test_the_default_qwen_pack_converts_from_its_gguf_and_passes_the_sanity_check(default_pack_path, tmp_path):
    """Qwen2.5-Coder-0.5B Q4_K_M (the Chinese base) dequantized into transformers (~2 min, 2.4 GB here)."""
    from pathlib import Path

    import torch

    torch.set_num_threads(1)
    s = Settings(home=tmp_path / "home")
    s.model_dir.mkdir(parents=True)
    (s.model_dir / Path(default_pack_path).name).symlink_to(default_pack_path)
    folder = base_models.prepare("qwen2.5-coder-0.5b", s)
    meta = json.loads((folder / "zhinao-base.json").read_text())
    assert meta["pack"] == "qwen2.5-coder-0.5b" and meta["sanity"]["reply"]
    assert meta["sanity"]["loss"] < 0.7 * meta["sanity"]["random_level"]
    tok = base_models.load_tokenizer(folder)
    assert tok.decode(tok("话费余额")["input_ids"]) == "话费余额"  # the Chinese tokenizer came through whole
