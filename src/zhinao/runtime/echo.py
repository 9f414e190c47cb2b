"""Deterministic backends: a real implementation of the protocols, used by tests.

``EchoChatModel`` answers with the last user message, streams it word by word, honours
``max_tokens``, ``stop``, JSON schemas (emits the minimal valid instance) and tools
(calls the chosen function with schema-valid arguments). ``delay_s`` per token lets the
scheduler and cancellation be tested against something that takes time.
``HashEmbedder`` maps text to a stable unit vector from hashed character n-grams.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from zhinao.errors import ContextOverflow
from zhinao.runtime.base import ChatDelta, ChatModel, Embedder, GenerationParams, Message, Usage
from zhinao.runtime.tooling import resolve_choice

_TOKEN = re.compile(r"\s*\S+")


def count_tokens(text: str) -> int:
    """Whitespace words plus CJK characters: a cheap, deterministic token count."""
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return len(_TOKEN.findall(text)) + cjk


def minimal_instance(schema: dict[str, Any]) -> Any:
    """The smallest JSON value that satisfies a (simple) JSON schema."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return minimal_instance(schema[key][0])
    t = schema.get("type", "object")
    if isinstance(t, list):
        t = t[0]
    if t == "object":
        props = schema.get("properties", {})
        req = schema.get("required", list(props))
        return {k: minimal_instance(props.get(k, {})) for k in req}
    if t == "array":
        return [minimal_instance(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    if t == "string":
        return "echo" if schema.get("minLength", 0) <= 4 else "e" * schema["minLength"]
    if t == "integer":
        return int(schema.get("minimum", 0))
    if t == "number":
        return float(schema.get("minimum", 0))
    if t == "boolean":
        return False
    return None


class EchoChatModel(ChatModel):
    backend = "echo"
    supports_completions = True
    test_model = True  #: not a language model: the console offers it to operators only, labelled as a test

    def __init__(self, name: str = "echo", *, slots: int = 1, context_window: int = 2048,
                 delay_s: float = 0.0, **_: Any):
        self.name, self.slots, self.context_window, self.delay_s = name, slots, context_window, delay_s
        self.generated_tokens = 0  # observable by tests: stops growing after cancellation

    def _prompt_tokens(self, messages: Sequence[Message]) -> int:
        return sum(count_tokens(str(m.get("content") or "")) + 3 for m in messages)

    def _reply(self, messages: Sequence[Message], params: GenerationParams) -> tuple[str, list | None]:
        rf = params.response_format or {}
        tools = params.tools or []
        choice = params.tool_choice
        if tools and choice != "none":
            resolve_choice(tools, choice)  # a forced tool that is not offered: InvalidRequest, as every backend
            fn = None
            if isinstance(choice, dict):
                fn = next((t for t in tools if t["function"]["name"] == choice["function"]["name"]), None)
            elif choice == "required" or any(m.get("role") == "user" and "tool" in str(m.get("content")) for m in messages):
                fn = tools[0]
            if fn is not None:
                args = minimal_instance(fn["function"].get("parameters", {"type": "object"}))
                call_id = "call_" + hashlib.sha1(json.dumps(args).encode()).hexdigest()[:12]
                return "", [{"id": call_id, "type": "function",
                             "function": {"name": fn["function"]["name"], "arguments": json.dumps(args)}}]
        if rf.get("type") == "json_schema":
            return json.dumps(minimal_instance(rf["json_schema"].get("schema", {})), ensure_ascii=False), None
        if rf.get("type") == "json_object":
            return json.dumps({"echo": self._last_user(messages)}, ensure_ascii=False), None
        return self._last_user(messages), None

    @staticmethod
    def _last_user(messages: Sequence[Message]) -> str:
        for m in reversed(messages):
            if m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, list):  # OpenAI content parts
                    c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
                return str(c or "")
        return ""

    async def _emit(self, text: str, prompt_tokens: int, params: GenerationParams,
                    tool_calls: list | None) -> AsyncIterator[ChatDelta]:
        if prompt_tokens > self.context_window:
            raise ContextOverflow(
                f"This model's maximum context length is {self.context_window} tokens; the prompt has "
                f"{prompt_tokens}. Shorten the messages or use a model with a larger context.")
        if tool_calls:
            yield ChatDelta(tool_calls=tool_calls)
            yield ChatDelta(finish_reason="tool_calls", usage=Usage(prompt_tokens, 1))
            return
        limit = params.max_tokens if params.max_tokens is not None else 1 << 30
        pieces = _TOKEN.findall(text) or ([text] if text else [])
        out, n, finish = "", 0, "stop"
        for piece in pieces:
            if n >= limit:
                finish = "length"
                break
            cut = next((s for s in params.stop if s and s in out + piece), None)
            if cut:
                piece = (out + piece).split(cut, 1)[0][len(out):]
                if piece:
                    yield ChatDelta(content=piece)
                    n += 1
                break
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            out += piece
            n += 1
            self.generated_tokens += 1
            yield ChatDelta(content=piece)
        yield ChatDelta(finish_reason=finish, usage=Usage(prompt_tokens, n))

    async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[ChatDelta]:
        text, calls = self._reply(messages, params)
        async for d in self._emit(text, self._prompt_tokens(messages), params, calls):
            yield d

    async def stream_text(self, prompt: str, params: GenerationParams) -> AsyncIterator[ChatDelta]:
        async for d in self._emit(prompt, count_tokens(prompt), params, None):
            yield d


class HashEmbedder(Embedder):
    """Character n-gram hashing into ``dim`` buckets; deterministic and dependency-free."""

    backend = "hash"

    def __init__(self, name: str = "hash", dim: int = 384, **_: Any):
        self.name, self.dim = name, dim

    def embed(self, texts: Sequence[str], kind: Literal["query", "passage"] = "passage") -> list[list[float]]:
        out = []
        for text in texts:
            v = [0.0] * self.dim
            t = text.lower()
            for n in (1, 2, 3):
                for i in range(max(0, len(t) - n + 1)):
                    h = int.from_bytes(hashlib.blake2b(t[i:i + n].encode(), digest_size=8).digest(), "little")
                    v[h % self.dim] += 1.0 if (h >> 63) else -1.0
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / norm for x in v])
        return out

    def count_tokens(self, text: str) -> int:
        return count_tokens(text)
