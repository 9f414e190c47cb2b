"""OpenAI wire models (request side), with OpenAI's field names.

Unknown fields are accepted and ignored (clients send many); values we cannot honour
(``n > 1``, a malformed JSON schema) are refused with a message naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zhinao.errors import InvalidRequest
from zhinao.runtime.base import GenerationParams


def check_json_schema(schema: Any, param: str) -> None:
    """Refuse schemas that are not valid JSON Schema (before a grammar is built from them)."""
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{param} must be a JSON object (a JSON Schema)", param=param)
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema ships with the platform
        return
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise InvalidRequest(f"{param} is not a valid JSON Schema: {e.message}", param=param) from None


class StreamOptions(BaseModel):
    include_usage: bool = False


class SamplingFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1)
    user: str | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int) -> int:
        if v != 1:
            raise ValueError("only n=1 is supported")
        return v

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    def params(self) -> GenerationParams:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerationParams(temperature=self.temperature, top_p=self.top_p,
                                max_tokens=self.max_completion_tokens or self.max_tokens, stop=stop, seed=self.seed)


class ChatCompletionRequest(SamplingFields):
    messages: list[dict[str, Any]] = Field(min_length=1)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    # zhinao extensions
    conversation_id: int | None = None

    @field_validator("messages")
    @classmethod
    def _messages(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, m in enumerate(v):
            role = m.get("role")
            if role not in ("system", "user", "assistant", "tool", "developer"):
                raise ValueError(f"messages[{i}].role must be system, user, assistant or tool (got {role!r})")
            c = m.get("content")
            if c is not None and not isinstance(c, (str, list)):
                raise ValueError(f"messages[{i}].content must be a string or a list of content parts")
        return v

    @model_validator(mode="after")
    def _shapes(self) -> "ChatCompletionRequest":
        rf = self.response_format
        if rf is not None:
            t = rf.get("type")
            if t not in ("text", "json_object", "json_schema"):
                raise InvalidRequest("response_format.type must be text, json_object or json_schema",
                                     param="response_format.type")
            if t == "json_schema":
                js = rf.get("json_schema")
                if not isinstance(js, dict) or "schema" not in js:
                    raise InvalidRequest("response_format.json_schema must be an object with a 'schema'",
                                         param="response_format.json_schema")
                check_json_schema(js["schema"], "response_format.json_schema.schema")
        for i, tool in enumerate(self.tools or []):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict) \
                    or not fn.get("name"):
                raise InvalidRequest(f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}",
                                     param=f"tools[{i}]")
            if "parameters" in fn:
                check_json_schema(fn["parameters"], f"tools[{i}].function.parameters")
        tc = self.tool_choice
        if isinstance(tc, str) and tc not in ("auto", "none", "required"):
            raise InvalidRequest("tool_choice must be auto, none, required or a function object", param="tool_choice")
        if isinstance(tc, dict):
            name = (tc.get("function") or {}).get("name")
            if not name or name not in {t["function"]["name"] for t in self.tools or []}:
                raise InvalidRequest("tool_choice names a function that is not in tools", param="tool_choice")
        if tc == "required" and not self.tools:
            raise InvalidRequest("tool_choice 'required' needs tools", param="tool_choice")
        return self

    def params(self) -> GenerationParams:
        p = super().params()
        if self.response_format and self.response_format.get("type") != "text":
            p.response_format = self.response_format
        p.tools = self.tools or None
        p.tool_choice = self.tool_choice
        return p


class CompletionRequest(SamplingFields):
    prompt: str | list[str]
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return v

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[str] = Field(...)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _input(cls, v: str | list[str]) -> str | list[str]:
        items = [v] if isinstance(v, str) else v
        if not items:
            raise ValueError("input must not be empty")
        if len(items) > 2048:
            raise ValueError("at most 2048 inputs per request")
        if any(not isinstance(x, str) or not x for x in items):
            raise ValueError("every input must be a non-empty string")
        return v
