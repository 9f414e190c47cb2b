"""Tool calling for models whose chat template knows no tools, shared by the llama.cpp backends.

Small instruct models (SmolLM2) have no tool syntax in their template, and llama-server
then ignores ``tools`` entirely. So Zhinao does it itself, the same way in-process and over
HTTP: the tools are described in the system message; a forced call (``required`` or a
named function) is grammar-constrained to the function's parameter schema, so the
arguments are always valid; in ``auto`` mode the reply is buffered only while it could
still be a call and parsed at the end.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from zhinao.errors import InvalidRequest
from zhinao.runtime.base import ChatDelta, Message

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*(?:```\s*)?$", re.S)


def text_of(content: Any) -> str:
    """OpenAI content (string or list of parts) as plain text."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def resolve_choice(tools: list[dict[str, Any]] | None, choice: Any) -> tuple[str | None, list[str]]:
    """``(mode, names)``: mode None (no tools), "forced" (those names) or "auto"."""
    if not tools or choice == "none":
        return None, []
    names = [str((t.get("function") or {}).get("name")) for t in tools]
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        if wanted not in names:
            raise InvalidRequest(f"tool_choice names {wanted!r}, which is not among the tools ({', '.join(names)})",
                                 param="tool_choice")
        return "forced", [wanted]
    if choice == "required":
        return "forced", names
    return "auto", names


def tool_schema(tools: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The JSON schema a forced call must satisfy: the function's parameters, or a
    ``{"name", "arguments"}`` choice between several functions."""
    params = {t["function"]["name"]: t["function"].get("parameters") or {"type": "object"} for t in tools}
    if len(names) == 1:
        return params[names[0]]
    return {"anyOf": [{"type": "object", "properties": {"name": {"const": n}, "arguments": params[n]},
                       "required": ["name", "arguments"]} for n in names]}


def tools_prompt(tools: list[dict[str, Any]]) -> str:
    lines = ["You can call these functions. To call one, reply only with "
             '<tool_call>{"name": <function name>, "arguments": <JSON arguments>}</tool_call>.']
    for t in tools:
        fn = t.get("function", {})
        lines.append(json.dumps({"name": fn.get("name"), "description": fn.get("description", ""),
                                 "parameters": fn.get("parameters", {})}, ensure_ascii=False))
    return "\n".join(lines)


def call_arguments(call: dict[str, Any]) -> Any:
    """A call's arguments as an object where they parse (templates want objects)."""
    args = call.get("function", {}).get("arguments", "{}")
    if isinstance(args, str):
        try:
            return json.loads(args or "{}")
        except ValueError:
            return args
    return args


def plain_messages(messages: Sequence[Message], tools: list[dict[str, Any]] | None) -> list[Message]:
    """Tool traffic rewritten as plain turns, tools described in the system message."""
    out: list[Message] = []
    for m in messages:
        role = m.get("role", "user")
        content = text_of(m.get("content"))
        if m.get("tool_calls"):
            content = (content + "".join(
                "<tool_call>" + json.dumps({"name": c.get("function", {}).get("name"), "arguments": call_arguments(c)},
                                           ensure_ascii=False) + "</tool_call>" for c in m["tool_calls"])).strip()
        if role == "tool":
            role, content = "user", f"Function result: {content}"
        out.append({"role": role, "content": content})
    if tools:
        note = tools_prompt(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + note}
        else:
            out.insert(0, {"role": "system", "content": note})
    return out


def could_be_tool_call(head: str) -> bool:
    """While this is True for the start of a reply, "auto" mode holds it back: it may still
    turn out to be a call (``<tool_call>``, a bare JSON object, or one in a code fence,
    which small models like to write)."""
    head = head.lstrip()
    if not head or head.startswith("{") or "<tool_call>".startswith(head) or head.startswith("<tool_call>"):
        return True
    if "```json".startswith(head):
        return True
    if head.startswith("```"):
        rest = head[3:]
        rest = rest[4:] if rest[:4].lower() == "json" else rest
        rest = rest.lstrip()
        return rest == "" or rest.startswith("{")
    return False


def new_call(name: str, args: Any) -> dict[str, Any]:
    return {"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)}}


def parse_calls(text: str, mode: str, names: list[str]) -> list[dict[str, Any]]:
    """Tool calls in generated text: bare arguments (one forced function), a
    ``{"name", "arguments"}`` object, or ``<tool_call>`` blocks (Qwen, Hermes)."""
    if mode == "forced" and len(names) == 1:
        return [new_call(names[0], text.strip() or "{}")]
    stripped = text.strip()
    if "<tool_call>" in stripped:
        blobs = _TOOL_CALL.findall(stripped)
    else:
        fenced = _FENCE.match(stripped)
        blobs = [fenced.group(1) if fenced else stripped]
    calls = []
    for blob in blobs:
        try:
            obj = json.loads(blob)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("name") in names:
            calls.append(new_call(obj["name"], obj.get("arguments", obj.get("parameters", {}))))
    return calls


async def assemble_calls(deltas: AsyncIterator[ChatDelta], mode: str, names: list[str]) -> AsyncIterator[ChatDelta]:
    """Turn a text stream into tool calls. A forced call is held whole; "auto" streams
    text as soon as it clearly is not a call. The final delta keeps finish_reason and usage."""
    buf, decided = "", False
    async for d in deltas:
        if d.content:
            if decided:
                yield ChatDelta(content=d.content)
                continue
            buf += d.content
            if mode == "auto" and not could_be_tool_call(buf):
                decided = True
                yield ChatDelta(content=buf)
        if d.tool_calls:  # the engine did it natively after all
            yield ChatDelta(tool_calls=d.tool_calls)
        if d.finish_reason is None:
            continue
        if decided:
            yield ChatDelta(finish_reason=d.finish_reason, usage=d.usage)
            return
        calls = parse_calls(buf, mode, names)
        if calls:
            yield ChatDelta(tool_calls=calls)
            yield ChatDelta(finish_reason="length" if d.finish_reason == "length" else "tool_calls", usage=d.usage)
        else:
            if buf:
                yield ChatDelta(content=buf)
            yield ChatDelta(finish_reason=d.finish_reason, usage=d.usage)
        return
