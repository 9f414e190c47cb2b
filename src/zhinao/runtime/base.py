"""The two runtime protocols: :class:`ChatModel` and :class:`Embedder`.

Everything above the runtime (gateway, knowledge, agent, apps) talks to models only
through these. A backend implements one required method (``stream`` / ``embed``);
optional abilities are class flags, as in simonw/llm. Messages, tools and
``response_format`` use OpenAI's shapes (plain dicts) so that a request can pass from
the wire to any backend unchanged.
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal


@dataclass
class GenerationParams:
    """Sampling and output-shape parameters (OpenAI field names)."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    #: ``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``
    response_format: dict[str, Any] | None = None
    #: OpenAI tool definitions: ``[{"type": "function", "function": {"name", "description", "parameters"}}]``
    tools: list[dict[str, Any]] | None = None
    #: ``"auto"``, ``"none"``, ``"required"`` or ``{"type": "function", "function": {"name": ...}}``
    tool_choice: str | dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {})}


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ChatDelta:
    """One streamed piece of a reply.

    ``tool_calls`` holds complete calls (``[{"id", "type": "function", "function": {"name",
    "arguments"}}]``); backends assemble partial calls before yielding them. The last
    delta carries ``finish_reason`` and ``usage``.
    """

    content: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass
class ChatResult:
    content: str
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    usage: Usage

    def json(self) -> Any:
        """The reply parsed as JSON (for schema-constrained output)."""
        return json.loads(self.content)


Message = dict[str, Any]


class ChatModel(abc.ABC):
    """A chat model: OpenAI-shaped messages in, streamed :class:`ChatDelta` out.

    Required: :meth:`stream`. A backend raises :class:`zhinao.errors.ContextOverflow`
    when the prompt does not fit, and stops generating promptly when the consumer
    closes the iterator (client disconnect).
    """

    #: backend name in the registry (``echo``, ``llamacpp``, ``llama-server``, ``openai``)
    backend: ClassVar[str] = ""
    supports_tools: ClassVar[bool] = True
    supports_json_schema: ClassVar[bool] = True
    supports_completions: ClassVar[bool] = False

    #: model name as served; set by the registry
    name: str = ""
    #: concurrent generations this instance can run (llama-server slots; 1 in-process)
    slots: int = 1
    #: context window in tokens
    context_window: int = 4096

    @abc.abstractmethod
    def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[ChatDelta]:
        """Generate a reply, yielding deltas; the final delta has finish_reason and usage."""

    async def complete(self, messages: Sequence[Message], params: GenerationParams) -> ChatResult:
        """Collect :meth:`stream` into one result."""
        parts: list[str] = []
        calls: list[dict[str, Any]] = []
        finish, usage = "stop", Usage()
        async for d in self.stream(messages, params):
            parts.append(d.content)
            if d.tool_calls:
                calls.extend(d.tool_calls)
            if d.finish_reason:
                finish = d.finish_reason
            if d.usage:
                usage = d.usage
        return ChatResult("".join(parts), calls or None, finish, usage)

    def stream_text(self, prompt: str, params: GenerationParams) -> AsyncIterator[ChatDelta]:
        """Raw text completion (``/v1/completions``); optional (``supports_completions``)."""
        raise NotImplementedError(f"backend {self.backend!r} has no raw text completion")

    async def start(self) -> None:
        """Load weights / start the engine. Idempotent."""

    async def close(self) -> None:
        """Release the engine. Idempotent."""

    async def health(self) -> bool:
        """True when the engine can take requests."""
        return True


class Embedder(abc.ABC):
    """Text to dense vectors. Required: :meth:`embed`.

    ``kind`` matters for asymmetric models (e5 prefixes "query: " / "passage: ").
    Vectors are L2-normalised so inner product is cosine similarity.
    """

    backend: ClassVar[str] = ""
    name: str = ""
    dim: int = 0

    @abc.abstractmethod
    def embed(self, texts: Sequence[str], kind: Literal["query", "passage"] = "passage") -> list[list[float]]:
        """Embed ``texts``; returns one vector per text, each of length :attr:`dim`."""

    def count_tokens(self, text: str) -> int:
        """Approximate token count (used for usage accounting)."""
        return max(1, len(text) // 3)
