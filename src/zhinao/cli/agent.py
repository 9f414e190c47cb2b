"""``zhinao ask`` and ``zhinao agent``: ask a workspace, evaluate the agent, see the example library.

``zhinao ask "上个月各套餐的平均ARPU是多少？" -w demo`` prints the answer, the result table and the
SQL (or model call) it used; ``--json`` prints one JSON object with at least ``answer``, ``sql``
(the final statement executed, or null), ``columns``, ``rows`` (a list of lists), ``chart`` (a
spec or null) and ``tool_calls`` — the shape scripts and ``bench/agent.py`` read. ``--session``
continues a conversation (its id is printed with every answer).

Like ``zhinao data``, beside a running ``zhinao serve`` the commands go through its API (the
server holds the workspaces' DuckDB files); alone, or with ``--local``, they run the agent in
this process as the platform operator of tenant ``default`` (:mod:`zhinao.cli.backend`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer

from zhinao.cli import backend, output
from zhinao.cli import remote as rm
from zhinao.cli.common import cli_principal, console, err_console, handle_errors, platform
from zhinao.cli.output import JSON

app = typer.Typer(no_args_is_help=True, help="Analyst agent / 分析助手")

WS = typer.Option("demo", "--workspace", "-w", help="Workspace name / 工作区")
MODEL = typer.Option(None, "--model", "-m", help="Chat model (default: the platform's) / 模型")
LOCAL = typer.Option(False, "--local", help=backend.LOCAL_HELP)
#: what ``--json`` always carries, whatever the agent adds
JSON_KEYS = ("answer", "sql", "columns", "rows", "chart", "tool_calls")


class LocalAgent:
    """The agent in this process, as the platform operator of tenant ``default``."""

    def __init__(self, p: Any):
        self.p = p
        self.pr = cli_principal(p)

    def ensure_demo(self) -> None:
        self.p.analytics.ensure_demo(self.pr.tenant_id)

    def ask(self, question: str, workspace: str, *, model: str | None, session_id: str | None) -> Any:
        """The :class:`~zhinao.agent.base.AgentAnswer` (the CLI is one call: one event loop per answer)."""
        import asyncio

        return asyncio.run(self.ask_async(question, workspace, model=model, session_id=session_id))

    async def ask_async(self, question: str, workspace: str, *, model: str | None, session_id: str | None) -> Any:
        return await self.p.agent.ask(self.pr, workspace, question, session_id=session_id, model=model)

    def gold_rows(self, workspace: str, sql: str) -> list[list[Any]]:
        return self.p.analytics.workspaces.workspace(self.pr.tenant_id, workspace).run_sql(sql).json_rows()

    def add_example(self, workspace: str, question: str, sql: str) -> dict:
        from zhinao.analytics.sandbox import check_sql
        from zhinao.agent.store import AgentStore

        ws = self.p.analytics.workspaces.workspace(self.pr.tenant_id, workspace)
        check_sql(sql, ws.tables())
        ws.run_sql(sql, max_rows=1)
        store = AgentStore(self.p.db)
        return store.example(self.pr.tenant_id, store.add_example(self.pr.tenant_id, workspace, question, sql=sql,
                                                                  source="manual"))

    def examples(self, workspace: str) -> list[dict]:
        self.p.analytics.workspaces.get(self.pr.tenant_id, workspace)  # an unknown workspace says so
        from zhinao.agent.store import AgentStore

        return AgentStore(self.p.db).examples(self.pr.tenant_id, workspace)


class RemoteAgent:
    """The same operations over /api/agent (and /api/analytics for the gold SQL)."""

    def __init__(self, r: rm.Remote):
        self.r = r

    def ensure_demo(self) -> None:
        self.r.post("/api/analytics/demo")

    def ask(self, question: str, workspace: str, *, model: str | None, session_id: str | None) -> Any:
        return Answer(self.r.post("/api/agent/ask", {"question": question, "workspace": workspace, "model": model,
                                                     "session_id": session_id}))

    async def ask_async(self, question: str, workspace: str, *, model: str | None, session_id: str | None) -> Any:
        import asyncio

        return await asyncio.to_thread(self.ask, question, workspace, model=model, session_id=session_id)

    def gold_rows(self, workspace: str, sql: str) -> list[list[Any]]:
        return self.r.post(f"/api/analytics/workspaces/{quote(workspace, safe='')}/query", {"sql": sql})["rows"]

    def add_example(self, workspace: str, question: str, sql: str) -> dict:
        return self.r.post("/api/agent/examples", {"workspace": workspace, "question": question, "sql": sql})

    def examples(self, workspace: str) -> list[dict]:
        return self.r.get("/api/agent/examples", workspace=workspace)


class Answer(dict):
    """An answer that came back as JSON, readable as attributes like an AgentAnswer (the evaluator's view)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict[str, Any]:
        return dict(self)


@contextlib.contextmanager
def agent_backend(local: bool = False) -> Iterator[Any]:
    info = backend.server()
    if info is not None and local:
        raise rm.ServerHoldsHome(
            f"--local: the server running on this home (pid {info.pid}, {info.url}) holds the workspace files; "
            "drop --local to go through it, or stop the server")
    if info is not None:
        r = rm.Remote(info)
        try:
            yield RemoteAgent(r)
        finally:
            r.close()
        return
    with platform() as p:
        yield LocalAgent(p)


def answer_json(answer: Any) -> dict[str, Any]:
    """The ``--json`` object: the whole answer, with the promised keys always present and rows as lists."""
    d = answer.as_dict() if hasattr(answer, "as_dict") else dict(answer)
    out = {k: d.get(k) for k in JSON_KEYS}
    out["columns"] = list(out["columns"] or [])
    out["rows"] = [list(r) for r in out["rows"] or []]
    out["tool_calls"] = [c.as_dict() if hasattr(c, "as_dict") else c for c in out["tool_calls"] or []]
    return {**d, **out}


def _show(d: dict[str, Any], limit: int) -> None:
    console.print(d.get("answer") or "", markup=False, highlight=False)
    rows = d["rows"]
    if d["columns"]:
        output.table(d["columns"], rows[:limit])
        if len(rows) > limit:
            console.print(f"({len(rows) - limit} more rows; --limit or --json shows them)", highlight=False)
    if d.get("sql"):
        console.print("\nSQL:", style="bold")
        console.print(d["sql"], markup=False, highlight=False)
    elif d.get("call"):
        console.print("\ncall:", style="bold")
        console.print(json.dumps(d["call"], ensure_ascii=False), markup=False, highlight=False)
    code = d.get("code") or {}
    if code.get("source"):
        ran = "executed" if code.get("executed") else "not executed"
        console.print(f"\n{code.get('language', 'code')} ({ran}):", style="bold")
        console.print(code["source"], markup=False, highlight=False)
    if d.get("chart"):
        console.print(f"chart: {d['chart'].get('type', d['chart'].get('kind', 'chart'))} (--json holds the spec)",
                      highlight=False)
    steps = ", ".join(f"{c.get('tool')}{'' if c.get('ok', True) else ' (failed)'}" for c in d["tool_calls"])
    meta = [f"session {d.get('session_id')}" if d.get("session_id") else "",
            f"answer {d.get('answer_id')}" if d.get("answer_id") else "", f"tools: {steps}" if steps else "",
            f"{float(d.get('latency_ms') or 0) / 1000:.1f} s"]
    err_console.print(" · ".join(m for m in meta if m), highlight=False)


@handle_errors
def ask(question: str = typer.Argument(..., help="The question / 问题"), workspace: str = WS, model: str = MODEL,
        session: str = typer.Option(None, "--session", "-s", help="Continue this session (follow-up question)"),
        limit: int = typer.Option(20, "--limit", "-l", help="Rows shown in the table (--json prints all)"),
        local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Ask a workspace in Chinese or English; shows the answer, the table and the SQL. 问数。"""
    with agent_backend(local) as b:
        if workspace == "demo" and not session:
            b.ensure_demo()
        d = answer_json(b.ask(question, workspace, model=model, session_id=session))
    if as_json:
        output.print_json(d)
    else:
        _show(d, limit)


app.command("ask")(ask)


@app.command("eval")
@handle_errors
def evaluate(questions: Path = typer.Argument(None, help="JSON-lines question file (default: the shipped set)"),
             workspace: str = WS,
             models: str = typer.Option(None, "--models", help="Comma-separated chat models (default: the platform's)"),
             limit: int = typer.Option(0, "--limit", "-n", help="Only the first N questions (0: all)"),
             local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Execution accuracy and latency of the agent on a question set, per model. 评测。"""
    import asyncio

    from zhinao.agent import evaluate as ev

    qs = ev.load_questions(questions or ev.DEMO_QUESTIONS)
    if limit > 0:
        qs = qs[:limit]
    names = [m.strip() for m in (models or "").split(",") if m.strip()] or [None]
    reports = []
    with agent_backend(local) as b:
        if workspace == "demo":
            b.ensure_demo()
        for name in names:
            def progress(rec: dict[str, Any], _name=name) -> None:
                err_console.print(f"{_name or 'default'} {rec['id']}: {'ok' if rec['correct'] else 'wrong'} "
                                  f"({rec['ms'] / 1000:.1f} s)", highlight=False)

            async def one(q: str, _name=name) -> Any:
                return await b.ask_async(q, workspace, model=_name, session_id=None)

            reports.append(asyncio.run(ev.run_eval(one, qs, lambda sql: b.gold_rows(workspace, sql),
                                                   model_name=name or "default",
                                                   on_result=None if as_json else progress)))
    if as_json:
        output.print_json({"workspace": workspace, "questions": len(qs), "reports": reports})
        return
    for r in reports:
        for line in ev.summary_lines(r):
            console.print(line, highlight=False)


@app.command("examples")
@handle_errors
def examples(workspace: str = WS,
             add: str = typer.Option(None, "--add", help="Add this question to the library (with --sql)"),
             sql: str = typer.Option(None, "--sql", help="The SQL that answers --add's question (checked, run once)"),
             local: bool = LOCAL, as_json: bool = JSON) -> None:
    """The workspace's example library (accepted, corrected and added answers); --add/--sql seeds it. 示例库。"""
    from zhinao.errors import InvalidRequest

    if bool(add) != bool(sql):
        raise InvalidRequest("--add QUESTION and --sql SQL go together")
    with agent_backend(local) as b:
        if workspace == "demo":
            b.ensure_demo()
        if add:
            b.add_example(workspace, add, sql.strip().rstrip(";"))
        rows = b.examples(workspace)
    if as_json:
        output.print_json(rows)
        return
    output.table(["id", "question", "sql / call", "source", "created"],
                 [[e["id"], e["question"], e.get("sql") or json.dumps(e.get("call"), ensure_ascii=False),
                   e["source"], (e.get("created_at") or "")[:19]] for e in rows])
