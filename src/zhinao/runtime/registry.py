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
