"""Scoring with a reward model: pair accuracy on held-out comparisons.

Pair accuracy is the share of comparisons whose chosen answer gets the higher reward; ties
count as wrong (a model that scores everything equally must read 0%, not 50%). The text
scored is the chat template applied to prompt + answer, as TRL's RewardTrainer does it, so
the number measured here is the one the trainer optimised.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from zhinao.alignment.datasets import Comparison, Record, _msgs


def load_reward_model(folder: Path | str) -> tuple[Any, Any]:
    """(model, tokenizer) of a reward model folder; refuses a folder that is not one."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from zhinao.alignment.base_models import load_tokenizer
    from zhinao.errors import InvalidRequest

    cfg = AutoConfig.from_pretrained(folder)
    if getattr(cfg, "num_labels", None) != 1 or not any(
            a.endswith("ForSequenceClassification") for a in (cfg.architectures or [])):
        raise InvalidRequest(f"{folder} is not a reward model (a sequence classifier with one output)",
                             param="reward_model")
    tok = load_tokenizer(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    model.eval()
    return model, tok


def score(model: Any, tok: Any, prompt: list[dict[str, str]], answer: str, max_length: int = 1024) -> float:
    """The reward of ``answer`` to ``prompt`` (one forward pass)."""
    import torch

    text = tok.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=False)
    enc = tok(text, return_tensors="pt", truncation=True, max_length=max_length, add_special_tokens=False)
    with torch.no_grad():
        return float(model(**enc).logits[0, 0])


def pair_accuracy(model: Any, tok: Any, records: list[Record], max_length: int = 1024) -> dict[str, Any]:
    """``pair_accuracy``, ``n``, the mean margin and a 95% Wilson interval over the comparisons."""
    pairs = [r for r in records if isinstance(r, Comparison)]
    right, margins = 0, []
    for r in pairs:
        p = _msgs(r.prompt)
        m = score(model, tok, p, r.chosen, max_length) - score(model, tok, p, r.rejected, max_length)
        margins.append(m)
        right += m > 0
    n = len(pairs)
    acc = right / n if n else 0.0
    lo, hi = wilson(right, n)
    return {"pair_accuracy": round(acc, 4), "n": n, "correct": right,
            "mean_margin": round(sum(margins) / n, 4) if n else 0.0, "ci95": [round(lo, 4), round(hi, 4)]}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (stays inside [0, 1] for small n)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)
