"""In-process llama.cpp through llama-cpp-python: one generation at a time, no server.

Used for tests, notebooks and single-user tools where a child process is overkill; the
gateway's default is the supervised ``llama-server`` (continuous batching). Generation
runs in a worker thread and is bridged to ``async`` through a queue; a cancel flag is
checked between tokens so a closed stream stops the model within one token.

The chat template comes from the GGUF itself and the prompt is tokenised here, before
generation, so a prompt that cannot fit is refused with the numbers instead of being
silently truncated. Structured output (JSON schema, forced tool calls) is
grammar-constrained: even a 135M model cannot emit invalid JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zhinao.errors import ContextOverflow, EngineUnavailable, InvalidRequest
from zhinao.runtime.base import ChatDelta, ChatModel, GenerationParams, Message, Usage
from zhinao.runtime.tooling import (
    assemble_calls,
    call_arguments,
    plain_messages,
    resolve_choice,
    text_of,
    tool_schema,
)

log = logging.getLogger(__name__)

# Models without a chat template in their GGUF get ChatML (what most instruct models use).
_CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
def _stops(stop: Any) -> list[str]:
    """``stop`` as a list (OpenAI also allows a single string)."""
    if not stop:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


@dataclass
class _Plan:
    """Everything decided before generation starts."""

    tokens: list[int]
    max_tokens: int
    stop: list[str]
    schema: dict[str, Any] | None = None  #: grammar from this JSON schema
    any_json: bool = False  #: grammar for any JSON value
    tool_mode: str | None = None  #: None | "forced" | "auto"
    tool_names: list[str] = field(default_factory=list)  #: forced: one name (bare args) or several (wrapped)


class LlamaCppChatModel(ChatModel):
    """A GGUF model loaded in this process (llama-cpp-python), one generation at a time."""

    backend = "llamacpp"
    supports_completions = True

    def __init__(self, name: str = "llamacpp", *, path: str | None = None, threads: int | None = None,
                 context_window: int | None = None, n_batch: int = 512, repeat_penalty: float = 1.0,
                 top_k: int = 40, min_p: float = 0.05, **_: Any):
        if not path:
            raise InvalidRequest(f"model {name!r}: the llamacpp backend needs path (a GGUF file)")
        self.name = name
        self.path = os.path.expanduser(path)
        self.slots = 1
        self.threads = threads or 1
        self.context_window = context_window or 4096
        self.n_batch = n_batch
        self.sampling = {"repeat_penalty": repeat_penalty, "top_k": top_k, "min_p": min_p}
        self._llm: Any = None
        self._formatter: Any = None
        self._template = ""
        self._eos_text = ""
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()  # llama.cpp contexts are not re-entrant

    # -- lifecycle -----------------------------------------------------------------------
    def _load(self) -> None:
        with self._load_lock:
            if self._llm is not None:
                return
            if not os.path.isfile(self.path):
                raise EngineUnavailable(f"model file for {self.name!r} not found: {self.path}")
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = Llama(model_path=self.path, n_ctx=self.context_window, n_threads=self.threads,
                        n_threads_batch=self.threads, n_batch=self.n_batch, n_gpu_layers=0, verbose=False)
            eos, bos = llm.token_eos(), llm.token_bos()
            self._eos_text = llm._model.token_get_text(eos) if eos != -1 else ""
            bos_text = llm._model.token_get_text(bos) if bos != -1 else ""
            self._template = llm.metadata.get("tokenizer.chat_template") or _CHATML
            self._formatter = Jinja2ChatFormatter(self._template, eos_token=self._eos_text, bos_token=bos_text,
                                                  add_generation_prompt=True)
            self.context_window = llm.n_ctx()
            self._llm = llm
            log.info("loaded %s (%s) n_ctx=%d threads=%d", self.name, self.path, self.context_window, self.threads)

    async def start(self) -> None:
        if self._llm is None:
            await asyncio.to_thread(self._load)

    async def close(self) -> None:
        def _close() -> None:
            with self._gen_lock, self._load_lock:
                if self._llm is not None:
                    self._llm.close()
                    self._llm = None

        await asyncio.to_thread(_close)

    async def health(self) -> bool:
        return self._llm is not None or os.path.isfile(self.path)

    # -- prompt preparation --------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under this model's tokenizer (loads the model if needed)."""
        self._load()
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _template_messages(self, messages: Sequence[Message], tools: list[dict[str, Any]] | None) -> list[Message]:
        """Messages shaped for the GGUF's Jinja template.

        Templates with tool support expect ``arguments`` as objects; templates without it
        (SmolLM2) get tool traffic as plain turns and the tools described in the system
        message (:mod:`zhinao.runtime.tooling`), so any instruct model can join a tool loop.
        """
        if not self.native_tools:
            return plain_messages(messages, tools)
        out: list[Message] = []
        for m in messages:
            msg: dict[str, Any] = {"role": m.get("role", "user"), "content": text_of(m.get("content"))}
            if m.get("tool_calls"):
                msg["tool_calls"] = [{"id": c.get("id"), "type": "function",
                                      "function": {"name": c.get("function", {}).get("name"),
                                                   "arguments": call_arguments(c)}} for c in m["tool_calls"]]
            for key in ("tool_call_id", "name"):
                if m.get(key):
                    msg[key] = m[key]
            out.append(msg)
        return out

    @property
    def native_tools(self) -> bool:
        """Whether the model's chat template renders tools itself."""
        return "tools" in self._template

    def _check_fit(self, n_prompt: int, params: GenerationParams) -> int:
        """The completion budget; ContextOverflow when the prompt and the requested reply
        cannot both fit."""
        if params.max_tokens is not None and params.max_tokens < 1:
            raise InvalidRequest("max_tokens must be at least 1", param="max_tokens")
        reserve = params.max_tokens or 1
        if n_prompt + reserve > self.context_window:
            raise ContextOverflow(
                f"This model's maximum context length is {self.context_window} tokens, but {n_prompt + reserve} "
                f"were requested ({n_prompt} in the prompt, {reserve} for the completion). Shorten the messages, "
                "lower max_tokens or use a model with a larger context.", param="messages")
        return params.max_tokens or (self.context_window - n_prompt)

    def _plan_chat(self, messages: Sequence[Message], params: GenerationParams) -> _Plan:
        self._load()
        if not messages:
            raise InvalidRequest("messages must not be empty", param="messages")
        choice = params.tool_choice
        tool_mode, names = resolve_choice(params.tools, choice)
        tools = params.tools if tool_mode else None
        try:
            prompt = self._formatter(messages=self._template_messages(messages, tools), tools=tools,
                                     tool_choice=choice).prompt
        except Exception as e:  # jinja raise_exception() in templates: the messages broke a rule
            raise InvalidRequest(f"the model's chat template rejected the messages: {e}", param="messages") from e
        tokens = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        plan = _Plan(tokens=tokens, max_tokens=self._check_fit(len(tokens), params),
                     stop=[*_stops(params.stop), *([self._eos_text] if self._eos_text else [])],
                     tool_mode=tool_mode, tool_names=names)
        if tool_mode == "forced":
            plan.schema = tool_schema(tools or [], names)
        else:
            rf = params.response_format or {}
            rtype = rf.get("type")
            if rtype == "json_schema":
                schema = (rf.get("json_schema") or {}).get("schema")
                if not isinstance(schema, dict):
                    raise InvalidRequest("response_format json_schema needs json_schema.schema (an object)",
                                         param="response_format")
                plan.schema = schema
            elif rtype == "json_object":
                if isinstance(rf.get("schema"), dict):
                    plan.schema = rf["schema"]
                else:
                    plan.any_json = True
            elif rtype not in (None, "text"):
                raise InvalidRequest(f"unsupported response_format type {rtype!r}", param="response_format")
        return plan

    # -- generation ----------------------------------------------------------------------
    def _grammar(self, plan: _Plan) -> Any:
        if plan.schema is None and not plan.any_json:
            return None
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        try:
            if plan.schema is not None:
                return LlamaGrammar.from_json_schema(json.dumps(plan.schema), verbose=False)
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        except Exception as e:
            raise InvalidRequest(f"the JSON schema cannot be turned into a grammar: {e}",
                                 param="response_format") from e

    def _worker(self, plan: _Plan, params: GenerationParams, cancel: threading.Event,
                put: Callable[[tuple[Any, ...]], None]) -> None:
        """Runs in a thread: generate, pushing ("text", s) items, then ("end", finish, n)."""
        from llama_cpp import StoppingCriteriaList

        n_generated = 0

        def stop_when_cancelled(_ids: Any, _logits: Any) -> bool:
            nonlocal n_generated
            n_generated += 1
            return cancel.is_set()

        try:
            with self._gen_lock:
                if cancel.is_set() or self._llm is None:
                    put(("end", "stop", 0))
                    return
                grammar = self._grammar(plan)
                finish = "stop"
                chunks = self._llm.create_completion(
                    prompt=plan.tokens, max_tokens=plan.max_tokens, temperature=params.temperature,
                    top_p=params.top_p, stop=plan.stop or None, stream=True, grammar=grammar,
                    seed=params.seed if params.seed is not None else random.randrange(2**31),
                    stopping_criteria=StoppingCriteriaList([stop_when_cancelled]), **self.sampling)
                try:
                    for chunk in chunks:
                        choice = chunk["choices"][0]
                        if choice.get("text"):
                            put(("text", choice["text"]))
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
                        if cancel.is_set():
                            break
                finally:
                    chunks.close()
                # llama-cpp-python asks the criterion once per sampled token and once more
                # after its loop; the token that ended the reply (EOS, stop string) counts.
                put(("end", finish, max(0, n_generated - 1)))
        except Exception as e:  # surfaced to the awaiting coroutine
            put(("error", e))

    async def _generate(self, plan: _Plan, params: GenerationParams) -> AsyncIterator[tuple[Any, ...]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: tuple[Any, ...]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody listens any more
                cancel.set()

        worker = threading.Thread(target=self._worker, args=(plan, params, cancel, put), daemon=True,
                                  name=f"llamacpp-{self.name}")
        worker.start()
        try:
            while True:
                item = await queue.get()
                if item[0] == "error":
                    raise item[1]
                yield item
                if item[0] == "end":
                    return
        finally:
            cancel.set()  # consumer closed the stream or was cancelled: stop within one token

    async def _deltas(self, plan: _Plan, params: GenerationParams) -> AsyncIterator[ChatDelta]:
        async for item in self._generate(plan, params):
            if item[0] == "text":
                yield ChatDelta(content=item[1])
            else:
                yield ChatDelta(finish_reason=item[1], usage=Usage(len(plan.tokens), item[2]))

    async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[ChatDelta]:
        await self.start()
        plan = await asyncio.to_thread(self._plan_chat, messages, params)
        deltas = self._deltas(plan, params)
        if plan.tool_mode is not None:
            deltas = assemble_calls(deltas, plan.tool_mode, plan.tool_names)
        try:
            async for d in deltas:
                yield d
        finally:
            await deltas.aclose()  # closing reaches the worker's cancel flag at once

    async def stream_text(self, prompt: str, params: GenerationParams) -> AsyncIterator[ChatDelta]:
        await self.start()

        def plan() -> _Plan:
            tokens = self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            return _Plan(tokens=tokens, max_tokens=self._check_fit(len(tokens), params), stop=_stops(params.stop))

        deltas = self._deltas(await asyncio.to_thread(plan), params)
        try:
            async for d in deltas:
                yield d
        finally:
            await deltas.aclose()
