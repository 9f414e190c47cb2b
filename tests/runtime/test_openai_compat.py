"""Error mapping and tool-call assembly of the shared OpenAI wire client."""

from __future__ import annotations

import json

import pytest

from zhinao.errors import ContextOverflow, EngineUnavailable, InvalidRequest, PayloadTooLarge, RateLimited
from zhinao.runtime.base import GenerationParams
from zhinao.runtime.openai_compat import OpenAIChatModel, ToolCallAssembler, chat_payload, map_error


def test_llama_server_context_error_becomes_context_overflow_with_numbers() -> None:
    body = {"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 3012, "n_ctx": 2048,
                      "message": "request (3012 tokens) exceeds the available context size (2048 tokens)"}}
    err = map_error(400, json.dumps(body), where="engine")
    assert isinstance(err, ContextOverflow) and "3012" in err.message and "2048" in err.message


def test_openai_context_error_becomes_context_overflow() -> None:
    body = {"error": {"message": "This model's maximum context length is 8192 tokens...", "type":
                      "invalid_request_error", "code": "context_length_exceeded"}}
    assert isinstance(map_error(400, json.dumps(body), where="x"), ContextOverflow)


@pytest.mark.parametrize("status,cls", [(400, InvalidRequest), (422, InvalidRequest), (413, PayloadTooLarge),
                                        (429, RateLimited), (401, EngineUnavailable), (404, EngineUnavailable),
                                        (500, EngineUnavailable), (503, EngineUnavailable)])
def test_status_mapping(status: int, cls: type) -> None:
    err = map_error(status, b'{"error": {"message": "nope"}}', where="remote", retry_after="7")
    assert type(err) is cls and "nope" in err.message
    if cls is RateLimited:
        assert err.headers["Retry-After"] == "7"


def test_non_json_error_body_is_kept() -> None:
    err = map_error(502, b"<html>Bad Gateway</html>", where="remote")
    assert isinstance(err, EngineUnavailable) and "Bad Gateway" in err.message


def test_tool_call_fragments_assemble_in_index_order() -> None:
    a = ToolCallAssembler()
    a.add([{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}])
    a.add([{"index": 0, "id": "call_a", "function": {"name": "get_", "arguments": '{"ci'}}])
    a.add([{"index": 0, "function": {"name": "weather", "arguments": 'ty": "Oslo"}'}}])
    a.add([{"index": 1, "function": {"arguments": '{"tz": "CET"}'}}])
    calls = a.calls()
    assert [c["id"] for c in calls] == ["call_a", "call_b"]
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert json.loads(calls[1]["function"]["arguments"]) == {"tz": "CET"}


def test_payload_sends_only_what_was_set() -> None:
    body = chat_payload("m", [{"role": "user", "content": "hi"}], GenerationParams(temperature=0, max_tokens=5))
    assert body["stream"] and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 5 and "stop" not in body and "seed" not in body and "tools" not in body


def test_openai_backend_needs_a_base_url() -> None:
    with pytest.raises(InvalidRequest, match="base_url"):
        OpenAIChatModel("remote")
