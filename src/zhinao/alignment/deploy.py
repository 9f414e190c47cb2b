"""Deploy a trained model: its Hugging Face checkpoint back to GGUF, verified, then registered and served.

Why this route (RLHF-NOTES "Back to GGUF", route 3): the platform serves GGUF through
llama.cpp, and TRL leaves an fp32 ``transformers`` folder. The base model it was trained
from *is* a GGUF file already (a pack, converted to fp32 once by
:mod:`zhinao.alignment.base_models`), so everything but the weights — architecture
parameters, the tokenizer (vocabulary, merges, token types, special ids), the chat template
— is copied from that file's metadata, and only the tensors are written, with
``gguf.GGUFWriter`` under llama.cpp's names (``gguf.TensorNameMap``). Nothing is downloaded
and only the ``gguf`` package is needed (route 1, llama.cpp's ``convert_hf_to_gguf.py``,
needs its source tree plus sentencepiece/protobuf, which an installation does not have).

The one subtlety: for the ``llama`` architecture, Hugging Face stores q/k projection rows
in the "rotate-half" order while llama.cpp's RoPE pairs adjacent rows, so q and k are
re-permuted (the inverse of what transformers does when it loads a GGUF); ``qwen2`` uses
the NEOX RoPE, which is Hugging Face's own order, so it is written as is.

Nothing is half-registered: the file is written to a temporary name next to its final
place, loaded into llama.cpp in this process and checked against transformers on a few
prompts (tokenisation equal; greedy tokens equal, or where they part the transformers
logit of llama.cpp's token within ``tolerance`` of the best — an f16 near-tie, not a
broken conversion), and only then renamed and declared in the model registry. Each deploy
writes a new file (``<name>.<stamp>.gguf``), so an engine serving a previous version never
sees its file change; a failure leaves the previous model serving.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zhinao.errors import Conflict, InvalidRequest, NotFound

log = logging.getLogger(__name__)

OUTTYPES = ("f16", "f32", "q8_0")
#: prompts of the round-trip check (generic; English and Chinese, as the two base models are)
VERIFY_PROMPTS = (
    [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
    [{"role": "user", "content": "List three colours of the rainbow."}],
    [{"role": "user", "content": "用一句话介绍一下你自己。"}],
)
SUPPORTED_ARCHS = ("llama", "qwen2")
#: metadata the writer sets itself or that describes the old file's encoding, not the model
_SKIP_KEYS = ("GGUF.", "general.architecture", "general.file_type", "general.quantization_version")


@dataclass
class Verification:
    prompts: int = 0
    identical: int = 0  #: prompts whose greedy tokens were equal all the way
    tokenisation_equal: bool = True
    max_margin: float = 0.0  #: largest transformers logit gap at llama.cpp's token (0 = same choice)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"prompts": self.prompts, "identical": self.identical, "tokenisation_equal": self.tokenisation_equal,
                "max_margin": round(self.max_margin, 4), "samples": self.samples}


# -- the checkpoint's base GGUF ---------------------------------------------------------------------------------
def find_base_gguf(service: Any, tenant_id: int, name: str, settings: Any) -> Path:
    """The GGUF file a registered model was trained from, following its chain of bases (dpo -> sft -> pack).

    Raises:
        NotFound: the chain ends in a folder with no GGUF origin (give ``base_gguf``).
    """
    from zhinao.alignment import base_models

    seen: set[str] = set()
    ref = name
    while ref not in seen:
        seen.add(ref)
        row = service.find_model(tenant_id, ref)
        if row is not None:
            origin = Path(row["path"]) / "zhinao-base.json"
            if origin.is_file():
                return Path(json.loads(origin.read_text(encoding="utf-8"))["source"])
            ref = row["base"]
            continue
        folder = Path(ref).expanduser()
        if folder.is_dir():
            origin = folder / "zhinao-base.json"
            if origin.is_file():
                return Path(json.loads(origin.read_text(encoding="utf-8"))["source"])
            break
        try:
            src = base_models.resolve(ref, settings)
        except (NotFound, InvalidRequest):
            break
        if src.kind == "gguf":
            return src.path
        break
    raise NotFound(f"model {name!r} was not trained from a GGUF model pack, so its tokenizer and parameters "
                   "cannot be copied from one: give the GGUF it derives from (--base FILE.gguf)", param="base")


# -- conversion -------------------------------------------------------------------------------------------------
def _permute(w: Any, n_head: int) -> Any:
    """Hugging Face rotate-half row order -> llama.cpp's interleaved pairs (llama.cpp convert_hf_to_gguf)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise InvalidRequest(f"{folder} has no weights (*.safetensors or pytorch_model*.bin)", param="model")
    return files


@functools.lru_cache(maxsize=2)
def _read_gguf(path: str, mtime_ns: int, size: int) -> Any:
    """GGUFReader parses every metadata array element by element (~12 s for a 49k vocabulary): once per file."""
    import gguf

    return gguf.GGUFReader(path)


def _reader(path: Path) -> Any:
    st = path.stat()
    return _read_gguf(str(path), st.st_mtime_ns, st.st_size)


def _load_state(folder: Path) -> dict[str, Any]:
    import torch

    files = sorted(folder.glob("*.safetensors"))
    state: dict[str, Any] = {}
    if files:
        from safetensors import safe_open

        for f in files:
            with safe_open(str(f), framework="pt") as st:
                for k in st.keys():
                    state[k] = st.get_tensor(k).to(torch.float32).numpy()
        return state
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise InvalidRequest(f"{folder} has no weights (*.safetensors or pytorch_model*.bin)", param="model")
    for f in bins:
        for k, v in torch.load(f, map_location="cpu", weights_only=True).items():
            state[k] = v.to(torch.float32).numpy()
    return state


def _field_value(f: Any) -> Any:
    return f.contents()


def convert(hf_dir: Path | str, base_gguf: Path | str, out: Path | str, *, outtype: str = "f16",
            name: str | None = None) -> dict[str, Any]:
    """Write ``out``: the base GGUF's metadata with ``hf_dir``'s weights. Returns what was written.

    Raises:
        InvalidRequest: an unsupported architecture or out type, or a checkpoint whose shapes or
            tensor set do not match the base GGUF (another model, a changed vocabulary).
    """
    import gguf
    import numpy as np

    if outtype not in OUTTYPES:
        raise InvalidRequest(f"outtype must be one of {', '.join(OUTTYPES)}", param="outtype")
    hf_dir, base_gguf, out = Path(hf_dir), Path(base_gguf), Path(out)
    cfg_path = hf_dir / "config.json"
    if not cfg_path.is_file():
        raise InvalidRequest(f"{hf_dir} is not a Hugging Face model folder (no config.json)", param="model")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    _weight_files(hf_dir)
    reader = _reader(base_gguf)
    arch = _field_value(reader.fields["general.architecture"])
    if arch not in SUPPORTED_ARCHS:
        raise InvalidRequest(f"architecture {arch!r} of {base_gguf.name} is not supported for deploy "
                             f"(supported: {', '.join(SUPPORTED_ARCHS)})", param="base")
    hf_type = cfg.get("model_type")
    if hf_type != arch:
        raise InvalidRequest(f"the checkpoint is a {hf_type!r} model but {base_gguf.name} is {arch!r}; give the "
                             "GGUF it was trained from", param="base")
    n_layer = int(cfg["num_hidden_layers"])
    if int(_field_value(reader.fields[f"{arch}.block_count"])) != n_layer:
        raise InvalidRequest(f"the checkpoint has {n_layer} layers, {base_gguf.name} "
                             f"{_field_value(reader.fields[f'{arch}.block_count'])}: not its base", param="base")
    n_head = int(cfg["num_attention_heads"])
    n_kv = int(cfg.get("num_key_value_heads") or n_head)
    model_arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    names = gguf.get_tensor_name_map(model_arch, n_layer)
    wanted = {t.name: [int(x) for x in reversed(t.shape.tolist())] for t in reader.tensors}  # numpy order

    state = _load_state(hf_dir)
    tensors: dict[str, Any] = {}
    for key, arr in state.items():
        if key.endswith("rotary_emb.inv_freq"):  # recomputed by llama.cpp from the rope metadata
            continue
        new = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise InvalidRequest(f"tensor {key!r} of the checkpoint has no llama.cpp name for {arch!r}", param="model")
        if arch == "llama" and new.endswith("attn_q.weight"):
            arr = _permute(arr, n_head)
        elif arch == "llama" and new.endswith("attn_k.weight"):
            arr = _permute(arr, n_kv)
        tensors[new] = arr
    if "output.weight" in wanted and "output.weight" not in tensors:  # tied embeddings in the checkpoint
        tensors["output.weight"] = tensors.get("token_embd.weight")
    tensors = {k: v for k, v in tensors.items() if k in wanted or k != "output.weight"}
    missing, extra = sorted(set(wanted) - set(tensors)), sorted(set(tensors) - set(wanted))
    if missing or extra:
        raise InvalidRequest(f"the checkpoint's tensors do not match {base_gguf.name}: missing {missing[:5]}, "
                             f"unexpected {extra[:5]}", param="base")
    for k, arr in tensors.items():
        if list(arr.shape) != wanted[k]:
            raise InvalidRequest(f"tensor {k} has shape {list(arr.shape)} in the checkpoint but {wanted[k]} in "
                                 f"{base_gguf.name} (a changed vocabulary or another model)", param="base")
        if not np.isfinite(arr).all():
            raise InvalidRequest(f"tensor {k} of the checkpoint has non-finite values: the training diverged",
                                 param="model")

    writer = gguf.GGUFWriter(str(out), arch)
    for key, f in reader.fields.items():
        if key.startswith(_SKIP_KEYS):
            continue
        vtype = gguf.GGUFValueType(f.types[0])
        value = _field_value(f)
        if key == "general.name" and name:
            value = name
        sub = gguf.GGUFValueType(f.types[1]) if vtype == gguf.GGUFValueType.ARRAY and len(f.types) > 1 else None
        writer.add_key_value(key, value, vtype, sub_type=sub)
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    writer.add_file_type(ftype)
    if outtype == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for t in reader.tensors:  # the base file's order
        arr = np.ascontiguousarray(tensors[t.name])
        if arr.ndim == 1 or outtype == "f32":
            writer.add_tensor(t.name, arr.astype(np.float32))
        elif outtype == "f16":
            writer.add_tensor(t.name, arr.astype(np.float16))
        else:
            q = gguf.quants.quantize(arr.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(t.name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"arch": arch, "tensors": len(tensors), "outtype": outtype, "bytes": out.stat().st_size}


# -- verification -----------------------------------------------------------------------------------------------
def verify(gguf_path: Path | str, hf_dir: Path | str, *, max_tokens: int = 16, tolerance: float = 0.5,
           prompts: tuple[list[dict[str, str]], ...] = VERIFY_PROMPTS, threads: int = 1) -> Verification:
    """Load ``gguf_path`` in llama.cpp and compare it with transformers on ``prompts`` (greedy).

    Raises:
        InvalidRequest: the tokenisations differ, or llama.cpp chose a token transformers ranks
            more than ``tolerance`` logits below its best (the conversion is wrong).
    """
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    llm = Llama(model_path=str(gguf_path), n_ctx=512, n_threads=threads, n_batch=128, verbose=False, seed=0)
    v = Verification()
    try:
        eos = {i for i in (tok.eos_token_id, llm.token_eos()) if i is not None}
        for messages in prompts:
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            hf_ids = tok(text, add_special_tokens=False)["input_ids"]
            cpp_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            if list(cpp_ids) != list(hf_ids):
                v.tokenisation_equal = False
                raise InvalidRequest(f"llama.cpp tokenises the prompt differently from transformers "
                                     f"({len(cpp_ids)} vs {len(hf_ids)} tokens): the tokenizer metadata is wrong")
            with torch.no_grad():
                ref = model.generate(torch.tensor([hf_ids]), max_new_tokens=max_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id or tok.eos_token_id)[0, len(hf_ids):].tolist()
            got: list[int] = []
            llm.reset()
            for t in llm.generate(hf_ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0,
                                  reset=True):
                if t in eos:
                    got.append(int(t))
                    break
                got.append(int(t))
                if len(got) >= max_tokens:
                    break
            ref = ref[:len(got)] if len(ref) > len(got) else ref
            v.prompts += 1
            if got[:len(ref)] == ref[:len(got)]:
                v.identical += 1
            else:  # where they part: how far below transformers' best was llama.cpp's choice?
                with torch.no_grad():
                    logits = model(torch.tensor([hf_ids + got])).logits[0]
                for i, t in enumerate(got):
                    row = logits[len(hf_ids) - 1 + i]
                    v.max_margin = max(v.max_margin, float(row.max() - row[t]))
            v.samples.append({"prompt": messages[-1]["content"],
                              "transformers": tok.decode(ref, skip_special_tokens=True),
                              "llama_cpp": tok.decode(got, skip_special_tokens=True)})
    finally:
        llm.close() if hasattr(llm, "close") else None
        del llm
    if v.max_margin > tolerance:
        raise InvalidRequest(f"the GGUF's greedy output departs from transformers (a token {v.max_margin:.2f} logits "
                             f"below the best; tolerance {tolerance}): the conversion is wrong; samples {v.samples}")
    return v


# -- deploy -----------------------------------------------------------------------------------------------------
def _slug(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name or ""):
        raise InvalidRequest(f"model name {name!r}: letters, digits, '.', '_' or '-', up to 100", param="name")
    return name


def deploy(platform: Any, tenant_id: int, name: str, *, serve_as: str | None = None, base: str | None = None,
           outtype: str = "f16", replace: bool = False, check: bool = True, threads: int = 1,
           context_window: int | None = None) -> dict[str, Any]:
    """Convert aligned model ``name`` to GGUF, verify it, then register it as ``serve_as`` (default ``name``).

    Args:
        base: the GGUF the checkpoint derives from (default: found through the model's chain of bases).
        replace: serve the new file under a name that already exists (the old engine is drained).
        check: run :func:`verify` before registering (always on, except in tests of the failure path).

    Raises:
        NotFound: no such aligned model or base. Conflict: the served name exists and ``replace`` is off.
        InvalidRequest: the conversion or its verification failed (nothing was registered).
    """
    from zhinao.runtime.registry import ModelSpec

    svc = platform.service("alignment")
    row = svc.model(tenant_id, name)
    if row["stage"] == "rm":
        raise InvalidRequest(f"{name!r} is a reward model (a scorer, not a chat model); deploy a sft, dpo or ppo "
                             "model", param="name")
    serve_as = _slug(serve_as or name)
    exists = serve_as in platform.models
    if exists and not replace:
        raise Conflict(f"model {serve_as!r} is already registered; pass --replace to serve the new version under it, "
                       "or --as another name")
    if exists and platform.models.resolve(serve_as).spec.source not in ("db",):
        raise Conflict(f"model {serve_as!r} is declared by the {platform.models.resolve(serve_as).spec.source} and "
                       "cannot be replaced by a deploy; choose another name (--as)")
    base_path = Path(base).expanduser() if base else find_base_gguf(svc, tenant_id, name, platform.settings)
    if not base_path.is_file():
        raise NotFound(f"base GGUF {base_path} does not exist", param="base")
    hf_dir = Path(row["path"])
    folder = Path(platform.settings.model_dir) / "aligned"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d%H%M%S") + f"-{os.getpid()}"
    final = folder / f"{serve_as}.{stamp}.gguf"
    tmp = folder / f".{serve_as}.{stamp}.gguf.tmp"
    t0 = time.monotonic()
    try:
        written = convert(hf_dir, base_path, tmp, outtype=outtype, name=serve_as)
        t_convert = time.monotonic() - t0
        report = verify(tmp, hf_dir, threads=threads).as_dict() if check else None
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    spec = ModelSpec(name=serve_as, backend="llama-server", path=str(final), context_window=context_window,
                     description=f"aligned {row['stage']} model {name} (base {row['base']})", source="db")
    try:
        if exists:
            _replace_spec(platform, spec)
        else:
            platform.add_model(spec)
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    result = {"model": serve_as, "aligned_model": name, "path": str(final), "base_gguf": str(base_path), **written,
              "convert_s": round(t_convert, 2), "total_s": round(time.monotonic() - t0, 2), "verify": report,
              "replaced": exists}
    svc.update_metrics(tenant_id, name, {"deployed": {k: result[k] for k in ("model", "path", "outtype", "verify")}})
    return result


def _replace_spec(platform: Any, spec: Any) -> None:
    """Point an existing database-declared model at the new file: the store first, then the engine."""
    from sqlalchemy import select

    from zhinao.store.models import ModelRecord

    platform._check_names(spec)
    d = spec.to_dict()
    d.pop("source", None)
    with platform.db.session() as s:
        rec = s.scalar(select(ModelRecord).where(ModelRecord.name == spec.name))
        if rec is None:
            s.add(ModelRecord(name=spec.name, spec=d))
        else:
            rec.spec = d
    platform.models.register(spec, replace=True)
