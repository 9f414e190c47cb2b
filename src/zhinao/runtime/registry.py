"""Backends register by name; models are declared as :class:`ModelSpec`.

Built-in backends are declared as entry points in ``pyproject.toml``
(``zhinao.chat_backends`` / ``zhinao.embedding_backends``) exactly as a third-party
package would declare its own, so an external backend is a first-class citizen.
Models come from the TOML file (``[[models]]`` tables) and from the database; both
produce :class:`ModelSpec`.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zhinao.errors import InvalidRequest
from zhinao.runtime.base import ChatModel, Embedder

CHAT_GROUP = "zhinao.chat_backends"
EMBED_GROUP = "zhinao.embedding_backends"

_extra_chat: dict[str, type[ChatModel]] = {}
_extra_embed: dict[str, type[Embedder]] = {}


def register_chat_backend(name: str, cls: type[ChatModel]) -> None:
    """Register a backend at run time (tests, notebooks); entry points are the usual way."""
    _extra_chat[name] = cls


def register_embedding_backend(name: str, cls: type[Embedder]) -> None:
    _extra_embed[name] = cls


def _load(group: str, extra: dict[str, type], name: str) -> type:
    if name in extra:
        return extra[name]
    for ep in importlib.metadata.entry_points(group=group):
        if ep.name == name:
            return ep.load()
    raise InvalidRequest(f"unknown backend {name!r}; available: {', '.join(backend_names(group, extra))}")


def backend_names(group: str = CHAT_GROUP, extra: dict[str, type] | None = None) -> list[str]:
    extra = _extra_chat if extra is None and group == CHAT_GROUP else (extra or _extra_embed)
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=group)} | set(extra))


def chat_backend(name: str) -> type[ChatModel]:
    return _load(CHAT_GROUP, _extra_chat, name)


def embedding_backend(name: str) -> type[Embedder]:
    return _load(EMBED_GROUP, _extra_embed, name)


@dataclass
class ModelSpec:
    """A served model: which backend, which weights, how much parallelism.

    ``options`` go to the backend constructor unchanged (e.g. ``delay_s`` for echo).
    """

    name: str
    backend: str
    path: str | None = None  #: GGUF file for local backends
    aliases: list[str] = field(default_factory=list)
    slots: int | None = None  #: parallel generations per replica (llama-server -np)
    replicas: int = 1
    threads: int | None = None
    context_window: int | None = None
    base_url: str | None = None  #: for the ``openai`` backend
    api_key: str | None = None
    remote_name: str | None = None  #: model name on the remote server
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    source: str = "config"  #: config | db

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("api_key", None)
        return d

    def constructor_kwargs(self) -> dict[str, Any]:
        kw = {k: v for k, v in asdict(self).items()
              if k not in ("aliases", "replicas", "description", "options", "source", "backend") and v is not None}
        kw.update(self.options)
        return kw


#: ``options`` a declaration through the API may carry, per built-in backend: tuning knobs only.
#: Nothing here names a file, a program or a command line (no ``binary``, no ``extra_args``):
#: llama-server's binary is fixed by the installation (``ZHINAO_LLAMA_SERVER_BIN``). A
#: third-party backend lists its own as a ``request_options`` class attribute (default none).
REQUEST_OPTIONS: dict[str, frozenset[str]] = {
    "echo": frozenset({"delay_s"}),
    "llamacpp": frozenset({"n_batch", "repeat_penalty", "top_k", "min_p"}),
    "llama-server": frozenset(),
    "openai": frozenset({"timeout_s"}),
}
LOCAL_BACKENDS = ("llamacpp", "llama-server")
GGUF_MAGIC = b"GGUF"


def request_options(backend: str) -> frozenset[str]:
    if backend in REQUEST_OPTIONS:
        return REQUEST_OPTIONS[backend]
    return frozenset(getattr(chat_backend(backend), "request_options", ()))


def check_options(spec: ModelSpec) -> None:
    """Refuse ``options`` outside the backend's allow-list, and any non-scalar value."""
    allowed = request_options(spec.backend)
    bad = sorted(set(spec.options) - allowed)
    if bad:
        raise InvalidRequest(f"model {spec.name!r}: option(s) {', '.join(bad)} are not accepted for backend "
                             f"{spec.backend!r} (allowed: {', '.join(sorted(allowed)) or 'none'})", param="options")
    for k, v in spec.options.items():
        if not isinstance(v, (int, float, str, bool)):
            raise InvalidRequest(f"model {spec.name!r}: option {k!r} must be a number, string or boolean",
                                 param="options")


def check_model_file(path: str, roots: list[Path], also: list[Path] = ()) -> str:
    """Resolve ``path`` (following symlinks) and return it if it is a GGUF file inside ``roots``.

    ``also`` are individual files always allowed (installed model packs' own files). Raises
    :class:`InvalidRequest` naming what to fix otherwise.
    """
    try:
        real = Path(path).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidRequest(f"path {path!r} does not exist (give a GGUF file inside the model folders: "
                             f"{', '.join(map(str, roots))})", param="path") from None
    allowed = [Path(a).resolve() for a in also]
    if real not in allowed and not any(real.is_relative_to(r) for r in roots):
        raise InvalidRequest(f"path {path!r} is outside the model folders ({', '.join(map(str, roots))}); put the "
                             "GGUF file there or ask the operator to add a folder to ZHINAO_MODEL_DIRS",
                             param="path", code="path_not_allowed")
    if not real.is_file():
        raise InvalidRequest(f"path {path!r} is not a regular file", param="path")
    with open(real, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise InvalidRequest(f"path {path!r} is not a GGUF model file (no GGUF header)", param="path",
                                 code="not_gguf")
    return str(real)


def check_request_spec(spec: ModelSpec, *, roots: list[Path], pack_files: list[Path] = (),
                       egress_allow: list[str] = ("loopback",)) -> ModelSpec:
    """Validate a model declared through the API (the operator's, still over the network).

    The backend must exist; ``options`` are tuning knobs only; a local backend's ``path``
    must be a GGUF file inside the model folders (stored resolved, so a symlink swapped
    later cannot redirect it); a remote ``base_url`` must pass the egress policy; fields
    that do not belong to the backend are refused rather than ignored.
    """
    from zhinao.runtime import egress

    if spec.backend not in backend_names():
        raise InvalidRequest(f"unknown backend {spec.backend!r}; available: {', '.join(backend_names())}",
                             param="backend")
    check_options(spec)
    if spec.backend in LOCAL_BACKENDS:
        if not spec.path:
            raise InvalidRequest(f"path (a GGUF file) is required for backend {spec.backend!r}", param="path")
        spec.path = check_model_file(spec.path, roots, list(pack_files))
    elif spec.path is not None:
        raise InvalidRequest(f"path is only for the local backends ({', '.join(LOCAL_BACKENDS)})", param="path")
    if spec.backend == "openai" and not spec.base_url:
        raise InvalidRequest("base_url is required for backend 'openai'", param="base_url")
    if spec.base_url is not None:
        if spec.backend in ("echo", *LOCAL_BACKENDS):
            raise InvalidRequest(f"base_url is not used by backend {spec.backend!r}", param="base_url")
        egress.check_url(spec.base_url, egress_allow)
    return spec


def load_model_file(path: Path) -> list[ModelSpec]:
    """Read ``[[models]]`` tables from a TOML file; a missing file declares nothing."""
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InvalidRequest(f"{path}: invalid TOML: {e}") from e
    specs = []
    for entry in data.get("models", []):
        try:
            specs.append(ModelSpec(**entry, source="config"))
        except TypeError as e:
            raise InvalidRequest(f"{path}: bad model entry {entry.get('name')!r}: {e}") from e
    return specs


def save_model_file(path: Path, specs: list[ModelSpec]) -> None:
    """Write specs back as TOML (only simple scalar/list/table values are used)."""

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {fmt(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    lines = ["# Zhinao model declarations (zhinao models add/remove edit this file)", ""]
    for s in specs:
        lines.append("[[models]]")
        for k, v in asdict(s).items():
            if k == "source" or v in (None, [], {}, ""):
                continue
            lines.append(f"{k} = {fmt(v)}")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
