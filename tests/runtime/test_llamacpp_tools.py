"""How the in-process backend recognises tool calls in free text ("auto" mode)."""

from __future__ import annotations

import json

from zhinao.runtime.llamacpp import LlamaCppChatModel, _could_be_tool_call, _Plan


def plan(mode: str, names: list[str]) -> _Plan:
    return _Plan(tokens=[], max_tokens=1, stop=[], tool_mode=mode, tool_names=names)


def test_prose_is_streamed_at_once_and_possible_calls_are_held() -> None:
    for head in ["", "  ", "{", "<tool", "<tool_call>{\"na", "```", "```json\n", "```\n{"]:
        assert _could_be_tool_call(head), head
    for head in ["Hello", "<b>", "```sql\nSELECT 1", "The weather"]:
        assert not _could_be_tool_call(head), head


def test_calls_are_parsed_from_the_shapes_models_write() -> None:
    p = plan("auto", ["get_weather", "get_time"])
    shapes = [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    ]
    for text in shapes:
        calls = LlamaCppChatModel._parse_calls(text, p)
        assert [c["function"]["name"] for c in calls] == ["get_weather"], text
        assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
        assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"
    two = ('<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
           '<tool_call>{"name": "get_time", "arguments": {"tz": "CET"}}</tool_call>')
    assert [c["function"]["name"] for c in LlamaCppChatModel._parse_calls(two, p)] == ["get_weather", "get_time"]


def test_unknown_functions_and_prose_are_not_calls() -> None:
    p = plan("auto", ["get_weather"])
    assert LlamaCppChatModel._parse_calls('{"name": "rm_rf", "arguments": {}}', p) == []
    assert LlamaCppChatModel._parse_calls("It is sunny in Paris.", p) == []
    assert LlamaCppChatModel._parse_calls('{"city": "Paris"}', p) == []


def test_forced_single_function_takes_bare_arguments() -> None:
    calls = LlamaCppChatModel._parse_calls(' {"city": "Paris"} ', plan("forced", ["get_weather"]))
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
