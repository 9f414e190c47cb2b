"""The OpenAI wire protocol, spoken once: streaming client, SSE parsing, tool-call
assembly and error mapping, shared by every backend that talks HTTP to an engine.

``llama-server`` (supervised by Zhinao), vLLM, Ollama and hosted APIs all accept the
same ``/chat/completions`` request, so the same :class:`OpenAIWire` drives them; only
where the server lives differs. ``base_url`` is an OpenAI base URL *including* the
version path (``http://host:8000/v1``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import httpx

from zhinao.errors import (
    ContextOverflow,
    EngineUnavailable,
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    ZhinaoError,
)
from zhinao.runtime.base import ChatDelta, ChatModel, Embedder, GenerationParams, Message, Usage
from zhinao.runtime.tooling import resolve_choice

log = logging.getLogger(__name__)

_CONTEXT_MARKERS = ("context length", "context size", "context window", "maximum context", "too many tokens")


def map_error(status: int, body: bytes | str, *, where: str, retry_after: str | None = None) -> ZhinaoError:
    """Turn an engine's HTTP error into the error class it means for *our* client.

    Upstream 401/403/404 are Zhinao's misconfiguration (wrong key or model name), not the
    caller's fault, so they become 503 with the upstream message kept for the operator.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    err: dict[str, Any] = {}
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        inner = parsed.get("error", parsed)
        err = inner if isinstance(inner, dict) else {"message": str(inner)}
    message = str(err.get("message") or text.strip() or f"HTTP {status}")[:2000]
    etype, code = str(err.get("type") or ""), str(err.get("code") or "")
    lowered = message.lower()
    if (etype == "exceed_context_size_error" or code == "context_length_exceeded"
            or (status in (400, 413, 422) and any(m in lowered for m in _CONTEXT_MARKERS))):
        if err.get("n_prompt_tokens") and err.get("n_ctx"):
            message = (f"The prompt has {err['n_prompt_tokens']} tokens but the model's context window is "
                       f"{err['n_ctx']} tokens. Shorten the messages or use a model with a larger context.")
        return ContextOverflow(message)
    if status == 413:
        return PayloadTooLarge(message)
    if status == 429:
        try:
            ra = float(retry_after) if retry_after else 1.0
        except ValueError:
            ra = 1.0
        return RateLimited(f"{where} is rate limiting: {message}", retry_after=ra)
    if status in (401, 403, 404):
        return EngineUnavailable(f"{where} refused the request (HTTP {status}: {message}); "
                                 "check the model's base_url, api_key and remote_name")
    if 400 <= status < 500:
        return InvalidRequest(f"{where} rejected the request: {message}")
    return EngineUnavailable(f"{where} failed (HTTP {status}): {message}")


def chat_payload(model: str, messages: Sequence[Message], params: GenerationParams, *,
                 stream: bool = True) -> dict[str, Any]:
    """An OpenAI ``/chat/completions`` body; only parameters the caller set are sent."""
    body: dict[str, Any] = {"model": model, "messages": list(messages), "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    body.update(_sampling(params))
    if params.response_format:
        body["response_format"] = params.response_format
    if params.tools:
        body["tools"] = params.tools
        if params.tool_choice is not None:
            body["tool_choice"] = params.tool_choice
    return body


def completion_payload(model: str, prompt: str, params: GenerationParams, *, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    body.update(_sampling(params))
    return body


def _sampling(params: GenerationParams) -> dict[str, Any]:
    out: dict[str, Any] = {"temperature": params.temperature, "top_p": params.top_p}
    if params.max_tokens is not None:
        out["max_tokens"] = params.max_tokens
    if params.stop:
        out["stop"] = [params.stop] if isinstance(params.stop, str) else list(params.stop)
    if params.seed is not None:
        out["seed"] = params.seed
    return out


class ToolCallAssembler:
    """Collects streamed ``tool_calls`` fragments (by ``index``) into complete calls."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, fragments: list[dict[str, Any]]) -> None:
        for pos, frag in enumerate(fragments):
            idx = frag.get("index", pos)
            call = self._calls.setdefault(idx, {"id": "", "type": "function",
                                                "function": {"name": "", "arguments": ""}})
            if frag.get("id"):
                call["id"] = frag["id"]
            fn = frag.get("function") or {}
            if fn.get("name"):
                call["function"]["name"] += fn["name"]
            if fn.get("arguments"):
                args = fn["arguments"]
                call["function"]["arguments"] += args if isinstance(args, str) else json.dumps(args)

    def calls(self) -> list[dict[str, Any]]:
        out = []
        for idx in sorted(self._calls):
            call = self._calls[idx]
            if not call["id"]:
                call["id"] = f"call_{idx}"
            if not call["function"]["arguments"]:
                call["function"]["arguments"] = "{}"
            out.append(call)
        return out


async def iter_sse(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """JSON payloads of an SSE stream's ``data:`` events, until ``[DONE]``."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
            continue
        if line.startswith("error:"):  # some servers use a non-standard error line
            data.append(line[6:].lstrip())
            continue
        if line == "" and data:
            payload, data = "\n".join(data), []
            if payload == "[DONE]":
                return
            try:
                yield json.loads(payload)
            except ValueError:
                log.warning("ignoring a malformed SSE event: %.200s", payload)
    if data and (payload := "\n".join(data)) != "[DONE]":
        try:
            yield json.loads(payload)
        except ValueError:
            log.warning("ignoring a malformed SSE event: %.200s", payload)


class OpenAIWire:
    """Streaming client for one OpenAI-compatible server.

    One ``httpx.AsyncClient`` per event loop: clients (and their pooled connections) are
    bound to the loop that created them, and tests, the CLI and the server each run
    their own loop.
    """

    def __init__(self, base_url: str, api_key: str | None = None, *, where: str = "model server",
                 timeout_s: float = 600.0, connect_timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.where = where
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        h = {"Accept": "text/event-stream, application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            c = self._clients.get(loop)
            if c is None or c.is_closed:
                c = httpx.AsyncClient(timeout=self.timeout, headers=self.headers(),
                                      limits=httpx.Limits(max_connections=256, max_keepalive_connections=32))
                self._clients[loop] = c
        return c

    async def aclose(self) -> None:
        """Close the client of the running loop (others die with their loops)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        c = self._clients.pop(loop, None)
        if c is not None:
            await c.aclose()

    async def get(self, path: str, timeout_s: float = 5.0) -> httpx.Response:
        try:
            return await self.client().get(self.base_url + path, timeout=timeout_s)
        except httpx.HTTPError as e:
            raise EngineUnavailable(f"{self.where} is unreachable at {self.base_url}: {e!r}") from e

    async def _events(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST ``body`` and yield SSE events. Leaving the iterator early closes the HTTP
        stream, which is how the engine learns the client went away and stops generating."""
        try:
            async with self.client().stream("POST", self.base_url + path, json=body) as resp:
                if resp.status_code >= 400:
                    raw = await resp.aread()
                    raise map_error(resp.status_code, raw, where=self.where,
                                    retry_after=resp.headers.get("retry-after"))
                ctype = resp.headers.get("content-type", "")
                if "text/event-stream" not in ctype:  # a server that ignored stream=true
                    yield json.loads(await resp.aread())
                    return
                async for event in iter_sse(resp):
                    if "error" in event and not event.get("choices"):
                        # an error after the stream started (llama-server sends its HTTP code)
                        e = event["error"] if isinstance(event["error"], dict) else {"message": str(event["error"])}
                        status = e["code"] if isinstance(e.get("code"), int) else 500
                        raise map_error(status, json.dumps({"error": e}), where=self.where)
                    yield event
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as e:
            raise EngineUnavailable(f"{self.where} is unreachable at {self.base_url}: {e!r}") from e
        except httpx.TimeoutException as e:
            raise EngineUnavailable(f"{self.where} timed out: {e!r}") from e

    async def stream_chat(self, body: dict[str, Any]) -> AsyncIterator[ChatDelta]:
        """Stream ``/chat/completions`` as deltas; tool calls are yielded whole, at the end."""
        tools = ToolCallAssembler()
        finish, usage, pieces = None, None, 0
        async for event in self._events("/chat/completions", body):
            if event.get("usage"):
                usage = _usage(event["usage"])
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or choice.get("message") or {}
                if delta.get("tool_calls"):
                    tools.add(delta["tool_calls"])
                text = delta.get("content")
                if text:
                    pieces += 1
                    yield ChatDelta(content=text)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        calls = tools.calls()
        if calls:
            yield ChatDelta(tool_calls=calls)
            if finish in (None, "stop"):
                finish = "tool_calls"
        yield ChatDelta(finish_reason=finish or "stop", usage=usage or Usage(0, pieces))

    async def stream_completion(self, body: dict[str, Any]) -> AsyncIterator[ChatDelta]:
        finish, usage, pieces = None, None, 0
        async for event in self._events("/completions", body):
            if event.get("usage"):
                usage = _usage(event["usage"])
            for choice in event.get("choices") or []:
                if choice.get("text"):
                    pieces += 1
                    yield ChatDelta(content=choice["text"])
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        yield ChatDelta(finish_reason=finish or "stop", usage=usage or Usage(0, pieces))


def _usage(u: dict[str, Any]) -> Usage:
    return Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))


class OpenAIChatModel(ChatModel):
    """Any OpenAI-compatible chat server: vLLM, Ollama, a hosted API, another Zhinao."""

    backend = "openai"
    supports_completions = True

    def __init__(self, name: str = "openai", *, base_url: str | None = None, api_key: str | None = None,
                 remote_name: str | None = None, slots: int | None = None, context_window: int | None = None,
                 timeout_s: float = 600.0, **_: Any):
        if not base_url:
            raise InvalidRequest(f"model {name!r}: the openai backend needs base_url (e.g. http://host:8000/v1)")
        self.name = name
        self.remote_name = remote_name or name
        self.slots = slots or 8
        self.context_window = context_window or 8192
        self.wire = OpenAIWire(base_url, api_key, where=f"model server for {name!r}", timeout_s=timeout_s)

    async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[ChatDelta]:
        resolve_choice(params.tools, params.tool_choice)  # a forced tool not offered: our 400, whatever the remote does
        async for d in self.wire.stream_chat(chat_payload(self.remote_name, messages, params)):
            yield d

    async def stream_text(self, prompt: str, params: GenerationParams) -> AsyncIterator[ChatDelta]:
        async for d in self.wire.stream_completion(completion_payload(self.remote_name, prompt, params)):
            yield d

    async def health(self) -> bool:
        try:
            return (await self.wire.get("/models")).status_code == 200
        except EngineUnavailable:
            return False

    async def close(self) -> None:
        await self.wire.aclose()


class OpenAIEmbedder(Embedder):
    """``/embeddings`` of any OpenAI-compatible server.

    ``query_prefix`` / ``passage_prefix`` let asymmetric models served remotely (e5, bge)
    get the prefixes they were trained with; vectors are re-normalised because not every
    server normalises.
    """

    backend = "openai"

    def __init__(self, name: str = "openai", *, base_url: str | None = None, api_key: str | None = None,
                 remote_name: str | None = None, dim: int | None = None, batch_size: int = 64,
                 query_prefix: str = "", passage_prefix: str = "", timeout_s: float = 120.0, **_: Any):
        if not base_url:
            raise InvalidRequest(f"embedder {name!r}: the openai backend needs base_url (e.g. http://host:8000/v1)")
        self.name, self.remote_name = name, remote_name or name
        self.base_url = base_url.rstrip("/")
        self.dim = dim or 0
        self.batch_size = max(1, batch_size)
        self.prefixes = {"query": query_prefix, "passage": passage_prefix}
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0), headers=headers)

    def embed(self, texts: Sequence[str], kind: Literal["query", "passage"] = "passage") -> list[list[float]]:
        prefix = self.prefixes.get(kind, "")
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = [prefix + t for t in texts[i:i + self.batch_size]]
            try:
                resp = self._http.post(self.base_url + "/embeddings",
                                       json={"model": self.remote_name, "input": batch})
            except httpx.HTTPError as e:
                raise EngineUnavailable(f"embedding server for {self.name!r} is unreachable: {e!r}") from e
            if resp.status_code >= 400:
                raise map_error(resp.status_code, resp.content, where=f"embedding server for {self.name!r}",
                                retry_after=resp.headers.get("retry-after"))
            rows = sorted(resp.json()["data"], key=lambda r: r.get("index", 0))
            for r in rows:
                v = [float(x) for x in r["embedding"]]
                norm = math.sqrt(sum(x * x for x in v)) or 1.0
                out.append([x / norm for x in v])
        if out and not self.dim:
            self.dim = len(out[0])
        return out

    def close(self) -> None:
        self._http.close()
