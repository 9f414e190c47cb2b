"""Tool calls for templates without tool support: recognising calls in free text,
choosing the mode, rewriting tool traffic as plain turns."""

from __future__ import annotations

import asyncio
import json

import pytest

from zhinao.errors import InvalidRequest
from zhinao.runtime.base import ChatDelta, Usage
from zhinao.runtime.tooling import (
    assemble_calls,
    could_be_tool_call,
    parse_calls,
    plain_messages,
    resolve_choice,
    tool_schema,
)

W = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
T = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}


def test_prose_is_released_at_once_and_possible_calls_are_held() -> None:
    for head in ["", "  ", "{", "<tool", '<tool_call>{"na', "```", "```json\n", "```\n{"]:
        assert could_be_tool_call(head), head
    for head in ["Hello", "<b>", "```sql\nSELECT 1", "The weather"]:
        assert not could_be_tool_call(head), head


def test_calls_are_parsed_from_the_shapes_models_write() -> None:
    shapes = [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    ]
    for text in shapes:
        calls = parse_calls(text, "auto", ["get_weather", "get_time"])
        assert [c["function"]["name"] for c in calls] == ["get_weather"], text
        assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
        assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"
    two = ('<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
           '<tool_call>{"name": "get_time", "arguments": {"tz": "CET"}}</tool_call>')
    assert [c["function"]["name"] for c in parse_calls(two, "auto", ["get_weather", "get_time"])] == [
        "get_weather", "get_time"]


def test_unknown_functions_and_prose_are_not_calls() -> None:
    assert parse_calls('{"name": "rm_rf", "arguments": {}}', "auto", ["get_weather"]) == []
    assert parse_calls("It is sunny in Paris.", "auto", ["get_weather"]) == []
    assert parse_calls('{"city": "Paris"}', "auto", ["get_weather"]) == []


def test_forced_single_function_takes_bare_arguments() -> None:
    calls = parse_calls(' {"city": "Paris"} ', "forced", ["get_weather"])
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def test_choice_resolution_and_schema() -> None:
    assert resolve_choice(None, "auto") == (None, [])
    assert resolve_choice([W, T], "none") == (None, [])
    assert resolve_choice([W, T], None) == ("auto", ["get_weather", "get_time"])
    assert resolve_choice([W, T], "required") == ("forced", ["get_weather", "get_time"])
    assert resolve_choice([W, T], {"type": "function", "function": {"name": "get_time"}}) == ("forced", ["get_time"])
    with pytest.raises(InvalidRequest, match="not among the tools"):
        resolve_choice([W], {"type": "function", "function": {"name": "nope"}})
    assert tool_schema([W, T], ["get_time"]) == T["function"]["parameters"]
    both = tool_schema([W, T], ["get_weather", "get_time"])
    assert [b["properties"]["name"]["const"] for b in both["anyOf"]] == ["get_weather", "get_time"]


def test_tool_traffic_becomes_plain_turns() -> None:
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 3}'}]
    out = plain_messages(msgs, [W])
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"].startswith("Be brief.") and "get_weather" in out[0]["content"]
    assert out[1]["content"] == "Weather in Oslo?"
    assert json.loads(out[2]["content"][len("<tool_call>"):-len("</tool_call>")])["arguments"] == {"city": "Oslo"}
    assert out[3]["content"] == 'Function result: {"temp_c": 3}'


def _run(pieces: list[str], mode: str, names: list[str], finish: str = "stop") -> list[ChatDelta]:
    async def source():
        for p in pieces:
            yield ChatDelta(content=p)
        yield ChatDelta(finish_reason=finish, usage=Usage(10, len(pieces)))

    async def go():
        return [d async for d in assemble_calls(source(), mode, names)]

    return asyncio.run(go())


def test_auto_mode_streams_prose_as_it_comes() -> None:
    out = _run(["The ", "sky ", "is ", "grey."], "auto", ["get_weather"])
    assert [d.content for d in out[:-1]] == ["The ", "sky ", "is ", "grey."]
    assert out[-1].finish_reason == "stop" and out[-1].usage.completion_tokens == 4


def test_auto_mode_turns_a_held_reply_into_a_call() -> None:
    out = _run(["<tool_", 'call>{"name": "get_weather", ', '"arguments": {"city": "Oslo"}}</tool_call>'],
               "auto", ["get_weather"])
    assert not any(d.content for d in out)
    assert out[0].tool_calls[0]["function"]["name"] == "get_weather"
    assert out[-1].finish_reason == "tool_calls" and out[-1].usage.prompt_tokens == 10
