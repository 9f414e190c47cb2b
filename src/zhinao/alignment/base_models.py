"""Base models for training: a GGUF pack converted to an fp32 transformers checkpoint once, or a folder.

Why a conversion: the platform serves GGUF files through llama.cpp, but TRL trains
``transformers`` models. ``from_pretrained(..., gguf_file=...)`` dequantizes the GGUF into
torch tensors, yet leaves a GGUF quantizer attached that refuses ``save_pretrained`` and
training ("cannot perform fine-tuning on purely quantized models", RLHF-NOTES);
``model.hf_quantizer.remove_quantization_config(model)`` turns it into a plain fp32 model.
The result is saved under ``home/alignment/base/<pack>`` (538 MB for the 135M model,
reloads in ~0.2 s instead of ~13 s), so each pack is converted once per home.

Every source is checked before anyone trains on it: a short greedy generation must produce
text and the model's loss on a plain sentence must be far below that of random weights
(ln(vocab) nats), which catches a bad dequantization or a wrong tokenizer.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhinao.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)

#: packs that can be trained (the image-free chat packs); Qwen's is found in the home's model folder
TRAINABLE_PACKS = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
SANITY_TEXT = "The quick brown fox jumps over the lazy dog. Water boils at one hundred degrees Celsius."
SANITY_PROMPT = [{"role": "user", "content": "Say hello in one short sentence."}]


@dataclass(frozen=True)
class BaseSource:
    """Where a base model comes from: a GGUF file (``gguf``) or a transformers folder (``hf``)."""

    name: str
    kind: str  #: gguf | hf
    path: Path


def resolve(name: str, settings: Any) -> BaseSource:
    """A pack name or alias, or a Hugging Face model folder.

    Raises:
        NotFound: a pack that is not installed (with the command that installs it), or no such folder.
        InvalidRequest: a folder that is not a transformers model.
    """
    from zhinao.runtime.packs import get_pack, installed_path

    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise InvalidRequest(f"{p} is not a Hugging Face model folder (no config.json)", param="base_model")
        return BaseSource(p.name, "hf", p)
    try:
        pack = get_pack(name)
    except NotFound:
        raise NotFound(f"base model {name!r} is neither a model pack ({', '.join(TRAINABLE_PACKS)}), "
                       f"a registered aligned model nor a model folder") from None
    found = installed_path(pack.name, settings.model_dir)
    if found is None:
        raise NotFound(f"model pack {pack.name} is not installed: zhinao models install {pack.name}")
    return BaseSource(pack.name, "gguf", found)


def check_causal_lm(folder: Path) -> None:
    """Refuse a folder whose config is not a causal language model (a classifier, an encoder).

    Raises:
        InvalidRequest: names the architecture found.
    """
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        cfg = AutoConfig.from_pretrained(folder)
    except Exception as e:  # noqa: BLE001 - any parse failure is the user's folder
        raise InvalidRequest(f"{folder}: config.json could not be read ({e})", param="base_model") from None
    archs = list(getattr(cfg, "architectures", None) or [])
    if any(a.endswith("ForCausalLM") for a in archs):
        return
    if not archs and cfg.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return
    raise InvalidRequest(f"{folder} is not a causal language model (architectures {archs or [cfg.model_type]}); "
                         "give a *ForCausalLM model folder", param="base_model")


def cache_dir(settings: Any, source: BaseSource) -> Path:
    return Path(settings.home) / "alignment" / "base" / source.name


def prepare(name: str, settings: Any) -> Path:
    """A transformers folder for ``name`` that training can load: converted once for a GGUF pack.

    Returns:
        The folder (``config.json``, weights, tokenizer, ``zhinao-base.json`` with the sanity check).
    """
    src = resolve(name, settings)
    if src.kind == "hf":
        check_causal_lm(src.path)
        return src.path
    out = cache_dir(settings, src)
    if (out / "zhinao-base.json").is_file():
        return out
    t0 = time.monotonic()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src.path.parent, gguf_file=src.path.name)
    model = AutoModelForCausalLM.from_pretrained(src.path.parent, gguf_file=src.path.name, dtype=torch.float32)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    sanity = sanity_check(model, tok)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "zhinao-base.json").write_text(json.dumps(
        {"source": str(src.path), "pack": src.name, "sanity": sanity,
         "convert_s": round(time.monotonic() - t0, 1)}, ensure_ascii=False, indent=1), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # atomic: a reader sees a complete folder or none
    log.info("converted %s to %s in %.1f s (%s)", src.path.name, out, time.monotonic() - t0, sanity)
    return out


def sanity_check(model: Any, tok: Any) -> dict[str, Any]:
    """Generate a few greedy tokens and measure the loss on a plain sentence.

    Raises:
        InvalidRequest: the weights look broken (no text, non-finite or random-level loss).
    """
    import torch

    model.eval()
    with torch.no_grad():
        enc = tok(SANITY_TEXT, return_tensors="pt")
        loss = float(model(**enc, labels=enc["input_ids"]).loss)
        ids = tok.apply_chat_template(SANITY_PROMPT, add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)
        out = model.generate(**ids, max_new_tokens=12, do_sample=False,
                             pad_token_id=tok.pad_token_id or tok.eos_token_id)
        text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    random_level = math.log(max(2, len(tok)))
    if not math.isfinite(loss) or loss > 0.7 * random_level or not text:
        raise InvalidRequest(f"the base model's weights look broken: loss {loss:.2f} nats on plain text "
                             f"(random weights ≈ {random_level:.1f}), reply {text!r}")
    return {"loss": round(loss, 3), "random_level": round(random_level, 2), "reply": text}


def load_tokenizer(folder: Path | str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(folder: Path | str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
