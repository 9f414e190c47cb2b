"""Deploy: a trained checkpoint back to GGUF, served by llama-server like any model (issue 13 item 8).

The slow test takes an untouched SmolLM2-135M checkpoint (the fp32 folder training starts
from; a fine-tune changes only the numbers in it), registers it as an aligned model, deploys
it, and then asks the *platform* for replies — the llama-server engine the registry starts
on the new file — and compares them with transformers' greedy text for the same messages.
The failure tests need no weights: a checkpoint that does not fit its base is refused
before anything is written, nothing is registered, and the model already serving under the
name keeps its file.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from zhinao.errors import Conflict, InvalidRequest, NotFound
from zhinao.platform import Platform

PROMPTS = ([{"role": "user", "content": "Name a large animal that lives in the sea."}],
           [{"role": "user", "content": "Write one short sentence about the morning."}])


def _base_folder(base_home: Path) -> Path:
    return base_home / "alignment" / "base" / "smollm2-135m"


@pytest.fixture
def plat(settings):
    p = Platform(settings)
    p.bootstrap()  # tenant default, as the CLI and the server create it
    yield p
    asyncio.run(p.models.close())


def _register(p: Platform, name: str, path: Path, *, base: str = "smollm2-135m", stage: str = "sft") -> None:
    tenant = p.tenancy.tenant_by_name("default")["id"]
    p.service("alignment").register_model(tenant, name, stage=stage, base=base, path=str(path), dataset_id=None,
                                          job_id=None, config={}, metrics={})


def _tenant(p: Platform) -> int:
    return p.tenancy.tenant_by_name("default")["id"]


def _hf_greedy(folder: Path, messages, n: int) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.eos_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


async def _served(p: Platform, model: str, messages, n: int) -> str:
    from zhinao.cli.common import cli_principal
    from zhinao.maas.generation import GenerationService
    from zhinao.runtime.base import GenerationParams

    gen = GenerationService(p).start(cli_principal(p), model, messages, GenerationParams(temperature=0, max_tokens=n),
                                     endpoint="test", record_turn=False)
    async for _ in gen:
        pass
    return gen.content


@pytest.mark.slow
def test_deployed_gguf_is_served_with_transformers_greedy_text(plat, base_home):
    import torch

    torch.set_num_threads(1)
    from zhinao.alignment.deploy import deploy

    p = plat
    folder = _base_folder(base_home)
    _register(p, "tiny-sft", folder)
    r = deploy(p, _tenant(p), "tiny-sft", outtype="f16")
    assert r["model"] == "tiny-sft" and r["arch"] == "llama" and r["tensors"] == 272
    assert r["verify"]["tokenisation_equal"] and r["verify"]["identical"] == r["verify"]["prompts"] >= 2
    path = Path(r["path"])
    assert path.is_file() and path.read_bytes()[:4] == b"GGUF" and path.parent == p.settings.model_dir / "aligned"
    assert not list(path.parent.glob(".*.tmp")), "the temporary file is gone"
    spec = p.models.resolve("tiny-sft").spec
    assert (spec.backend, spec.path, spec.source) == ("llama-server", str(path), "db")
    # the platform checks an API declaration of this file the same way: it lies inside the model folders
    assert p.check_model_request(type(spec)(name="x", backend="llama-server", path=str(path))).path == str(path)
    # served by llama-server through the platform: the same greedy text as transformers
    n = 12
    served = asyncio.run(asyncio.wait_for(_gather(p, n), 300))
    for messages, text in zip(PROMPTS, served):
        assert text.strip() and text.strip() == _hf_greedy(folder, messages, n).strip(), (messages, text)
    # it survives a restart: the declaration is in the store
    assert "tiny-sft" in Platform(p.settings).models
    # the aligned model's row records the deployment
    row = p.service("alignment").model(_tenant(p), "tiny-sft")
    assert row["metrics"]["deployed"]["path"] == str(path)
    # a second deploy under the same name needs --replace, and writes a new file (the old engine's stays)
    with pytest.raises(Conflict):
        deploy(p, _tenant(p), "tiny-sft")
    r2 = deploy(p, _tenant(p), "tiny-sft", replace=True, outtype="q8_0", check=False)
    assert r2["replaced"] and r2["path"] != r["path"] and p.models.resolve("tiny-sft").spec.path == r2["path"]
    assert Path(r["path"]).is_file()


async def _gather(p: Platform, n: int) -> list[str]:
    try:
        return [await _served(p, "tiny-sft", m, n) for m in PROMPTS]
    finally:
        await p.models.close()


@pytest.mark.slow
def test_verify_catches_a_wrong_conversion(base_home, tmp_path):
    """Without the q/k re-permutation the llama GGUF answers differently: verify must say so."""
    import gguf
    import numpy as np

    from zhinao.alignment import deploy as d

    folder = _base_folder(base_home)
    src = json.loads((folder / "zhinao-base.json").read_text())["source"]
    out = tmp_path / "wrong.gguf"
    real = d._permute
    try:
        d._permute = lambda w, n_head: np.ascontiguousarray(w)  # the bug: HF row order written as is
        d.convert(folder, src, out, outtype="f16")
    finally:
        d._permute = real
    assert gguf.GGUFReader(str(out)).tensors
    with pytest.raises(InvalidRequest, match="departs from transformers"):
        d.verify(out, folder, max_tokens=8, prompts=PROMPTS[:1])


def test_a_checkpoint_that_does_not_fit_its_base_registers_nothing(plat, tmp_path):
    from zhinao.alignment.deploy import deploy
    from zhinao.platform import smollm2_path
    from zhinao.runtime.registry import ModelSpec

    p = plat
    base = smollm2_path()
    assert base, "the SmolLM2 pack ships with the install"
    bad = tmp_path / "bad-ckpt"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 7,
                                                "num_attention_heads": 9, "architectures": ["LlamaForCausalLM"]}))
    _register(p, "bad-sft", bad)
    (bad / "model.safetensors").write_bytes(b"")  # present (the shapes are refused before it is read)
    # a model already serving under the name keeps its file through a failed --replace
    keep = p.settings.model_dir / "keep.gguf"
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base, keep)
    p.add_model(ModelSpec(name="bad-sft", backend="llama-server", path=str(keep), source="db"))
    before = set(p.models.names())
    with pytest.raises(InvalidRequest, match="layers"):
        deploy(p, _tenant(p), "bad-sft", replace=True)
    assert set(p.models.names()) == before and p.models.resolve("bad-sft").spec.path == str(keep)
    assert Platform(p.settings).models.resolve("bad-sft").spec.path == str(keep)
    aligned = p.settings.model_dir / "aligned"
    assert not aligned.exists() or not any(aligned.iterdir()), list(aligned.iterdir())
    # another architecture than the base GGUF's
    (bad / "config.json").write_text(json.dumps({"model_type": "qwen2", "num_hidden_layers": 30,
                                                "num_attention_heads": 9}))
    with pytest.raises(InvalidRequest, match="qwen2"):
        deploy(p, _tenant(p), "bad-sft", serve_as="bad-new")
    assert "bad-new" not in p.models
    # no weights at all
    (bad / "model.safetensors").unlink()
    with pytest.raises(InvalidRequest, match="no weights"):
        deploy(p, _tenant(p), "bad-sft", serve_as="bad-new")
    assert "bad-new" not in p.models and (not aligned.exists() or not any(aligned.iterdir()))


def test_bad_requests(plat, tmp_path):
    from zhinao.alignment.deploy import deploy, find_base_gguf
    from zhinao.platform import smollm2_path

    p = plat
    with pytest.raises(NotFound):
        deploy(p, _tenant(p), "no-such-model")
    _register(p, "some-rm", tmp_path, stage="rm")
    with pytest.raises(InvalidRequest, match="reward model"):
        deploy(p, _tenant(p), "some-rm")
    _register(p, "x-sft", tmp_path)
    with pytest.raises(Conflict):
        deploy(p, _tenant(p), "x-sft", serve_as="echo")  # a built-in name is never taken over
    with pytest.raises(InvalidRequest):
        deploy(p, _tenant(p), "x-sft", serve_as="bad name")
    # the base is found through the chain dpo -> sft -> pack
    _register(p, "x-dpo", tmp_path, base="x-sft", stage="dpo")
    svc = p.service("alignment")
    assert find_base_gguf(svc, _tenant(p), "x-dpo", p.settings) == Path(smollm2_path())
    # a chain that ends in a plain folder names the fix
    _register(p, "y-sft", tmp_path, base=str(tmp_path))
    with pytest.raises(NotFound, match="--base"):
        find_base_gguf(svc, _tenant(p), "y-sft", p.settings)


@pytest.mark.slow
def test_qwen2_checkpoint_round_trips_without_a_qk_permute(default_pack_path, tmp_path):
    """The qwen2 architecture (q/k/v biases, NEOX RoPE, tied output): converted as is, same greedy tokens."""
    import torch

    torch.set_num_threads(1)
    from zhinao.alignment import deploy as d
    from zhinao.alignment.base_models import prepare
    from zhinao.settings import Settings

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / Path(default_pack_path).name).symlink_to(default_pack_path)
    folder = prepare("qwen2.5-coder-0.5b", Settings(home=home))
    out = tmp_path / "qwen.gguf"
    w = d.convert(folder, default_pack_path, out, outtype="f16")
    assert w["arch"] == "qwen2"
    zh = [{"role": "user", "content": "用一句话说明天空为什么是蓝色的。"}]
    v = d.verify(out, folder, max_tokens=10, prompts=(PROMPTS[0], zh))
    assert v.tokenisation_equal and v.identical == v.prompts == 2, v.as_dict()
