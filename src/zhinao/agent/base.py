"""The analyst agent's one extension point, :class:`Tool`, and the shapes every part shares.

The agent answers a question over an analytics workspace by calling tools — describe the
schema, run sandboxed SQL, run a catalogue model, make a chart, explain, write code — and
returns an :class:`AgentAnswer` that shows its work: the SQL or model call it used, the
result table, the chart spec, each tool call. Tools are registered like every other
extension point: built-ins by entry point in group ``zhinao.agent_tools`` (``pyproject.toml``)
or with :func:`register_tool` (tests, embedding programs).

A tool has **one method**, :meth:`Tool.run`; what it needs arrives in a :class:`ToolContext`
(the caller's tenant and principal, the workspace, the analytics service, the metered model
call), so a tool never reaches for the platform, and never for HTTP.

Model calls go through :class:`ModelFn` — an async callable the service builds over the
MaaS layer's :class:`~zhinao.maas.client.LLMClient` (scope, limits, usage, turn log), and
the benchmark builds over :func:`zhinao.maas.client.clients_for_engine` — so the same code
runs in the server, the CLI and ``bench/agent.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from zhinao.runtime.base import GenerationParams, Message

ENTRY_POINT_GROUP = "zhinao.agent_tools"

log = logging.getLogger(__name__)


@runtime_checkable
class ModelFn(Protocol):
    """``await model(messages, params, purpose="agent.sql")`` -> the reply text.

    ``purpose`` names the usage row (``agent.route``, ``agent.sql``, ``agent.repair``,
    ``agent.narrate``, ``agent.code``). Raises the MaaS errors (403/429/404) unchanged.
    """

    async def __call__(self, messages: Sequence[Message], params: GenerationParams, *,
                       purpose: str = "agent") -> str: ...


@dataclass
class ToolContext:
    """What a tool may use; built by the agent service for one question.

    Attributes:
        tenant_id: the caller's tenant (every read is scoped to it).
        workspace: the workspace name.
        ws: its :class:`zhinao.analytics.workspace.Workspace` (the DuckDB file; SQL only via
            ``ws.run_sql`` / :func:`zhinao.analytics.sandbox.run_readonly`).
        analytics: the :class:`zhinao.analytics.service.AnalyticsService` (catalogue, runs,
            datasets, glossary).
        model: the metered model call (:class:`ModelFn`), or None where no model is allowed.
        settings: the one settings object.
        principal: the caller (role decides personal-data access), or None in benchmarks.
        allow_personal: True when the caller's role may see columns marked personal.
        state: the conversation's state (previous SQL, tables, filters) for follow-ups;
            tools may read and update it.
    """

    tenant_id: int
    workspace: str
    ws: Any
    analytics: Any = None
    model: ModelFn | None = None
    settings: Any = None
    principal: Any = None
    allow_personal: bool = False
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolResult:
    """What one tool call produced. Every field but ``ok`` and ``summary`` is optional.

    Attributes:
        ok: False when the tool could not do what was asked (``error`` says why, for the user).
        summary: one or two sentences for the narrative and for the next planning step.
        columns / rows: a result table (rows as JSON-ready lists).
        sql: the statement executed (re-runnable), if any.
        chart: a chart spec (:mod:`zhinao.analytics.catalog.plots` shape), if any.
        code: ``{"language": "python"|"sql"|"sas", "source": str, "executed": bool, "output": str}``.
        call: the re-runnable call for non-SQL tools (``{"tool": "run_model", "args": {...}}``).
        data: anything else the tool wants to hand on (run id, metrics, binding ...).
        error: the user-facing message when ``ok`` is False.
    """

    ok: bool
    summary: str = ""
    columns: list[str] | None = None
    rows: list[list[Any]] | None = None
    sql: str | None = None
    chart: dict[str, Any] | None = None
    code: dict[str, Any] | None = None
    call: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Tool(Protocol):
    """One thing the agent can do. Class attributes describe it; :meth:`run` does it.

    Attributes:
        name: a slug (``run_sql``), also the OpenAI function name.
        description: English, one or two sentences (routing embeds it, the model reads it).
        description_zh: the same in Chinese (routing embeds it too).
        parameters: the JSON schema of ``args`` (grammar-constrained tool calls use it).
        examples: a few short example requests (zh and en) that route to this tool.
    """

    name: str
    description: str
    description_zh: str
    parameters: dict[str, Any]
    examples: tuple[str, ...]

    async def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        """Do it; errors the user can fix come back as ``ToolResult(ok=False, error=...)``."""
        ...


@dataclass
class ToolCall:
    """One call the agent made, as shown to the user and stored with the answer."""

    tool: str
    args: dict[str, Any]
    ok: bool
    summary: str = ""
    error: str | None = None
    ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AgentAnswer:
    """The agent's reply: a narrative plus the work it shows.

    ``sql`` is the final statement executed (or None); ``columns``/``rows`` its result
    (personal columns masked unless the caller may see them); ``chart`` a chart spec or
    None; ``code`` generated code (with whether it ran); ``tool_calls`` every call in order;
    ``found`` is False when the workspace lacks what the question needs (the answer says so).
    """

    answer: str
    session_id: str = ""
    sql: str | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    chart: dict[str, Any] | None = None
    code: dict[str, Any] | None = None
    call: dict[str, Any] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    route: str = ""
    found: bool = True
    repaired: bool = False
    masked_columns: list[str] = field(default_factory=list)
    language: str = "en"
    model: str | None = None
    latency_ms: float = 0.0
    answer_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tool_calls"] = [c.as_dict() for c in self.tool_calls]
        return d


# -- the registry -----------------------------------------------------------------------------

_registered: dict[str, Tool] = {}
_from_entry_points: dict[str, Tool] | None = None
_lock = threading.Lock()


def _load_entry_points() -> dict[str, Tool]:
    found: dict[str, Tool] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except (ModuleNotFoundError, AttributeError) as e:  # a tool whose module is absent from this build
            log.warning("agent tool %s (%s) not loaded: %s", ep.name, ep.value, e)
            continue
        tool = obj() if isinstance(obj, type) else obj
        if not isinstance(tool, Tool):
            raise TypeError(f"agent tool {ep.name} ({ep.value}) does not implement zhinao.agent.base.Tool")
        found[tool.name] = tool
    return found


def register_tool(tool: Tool) -> Tool:
    """Add (or replace) a tool, as an entry point would."""
    if not isinstance(tool, Tool):
        raise TypeError(f"{tool!r} does not implement zhinao.agent.base.Tool")
    with _lock:
        _registered[tool.name] = tool
    return tool


def unregister_tool(name: str) -> None:
    with _lock:
        _registered.pop(name, None)


def tools() -> Mapping[str, Tool]:
    """Every tool: the entry points (loaded once), then those added with :func:`register_tool`."""
    global _from_entry_points
    with _lock:
        if _from_entry_points is None:
            _from_entry_points = _load_entry_points()
        return {**_from_entry_points, **_registered}
