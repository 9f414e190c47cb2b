"""Server-sent events, framed once for every router (/v1, /api/kb chat, the console chat).

A router turns its service's output into dicts; this module frames each as one
``data: <json>`` event (UTF-8, Chinese unescaped), optionally ends with the OpenAI-style
``data: [DONE]``, and closes the source iterator when the client goes away so the engine
behind it stops.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

DONE = b"data: [DONE]\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


async def frame(events: AsyncIterator[dict[str, Any]], *, done: bool = True) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(events) as it:
        async for obj in it:
            yield event(obj)
    if done:
        yield DONE


def response(events: AsyncIterator[dict[str, Any]], *, done: bool = True) -> StreamingResponse:
    """A ``text/event-stream`` response of ``events`` (``done``: end with ``data: [DONE]``)."""
    return StreamingResponse(frame(events, done=done), media_type="text/event-stream", headers=HEADERS)
