"""The CLI's two ways to reach the platform: in-process services, or the running server.

:func:`knowledge` and :func:`analytics` yield an object with one method per CLI operation;
:class:`LocalKnowledge` / :class:`LocalAnalytics` call the services in this process (as the
platform operator of tenant ``default``), :class:`~zhinao.cli.remote.RemoteKnowledge` /
:class:`~zhinao.cli.remote.RemoteAnalytics` call the same operations over HTTP. Both return
the services' dicts, so a command prints the same thing either way.

Which one: a live server on this home (see :mod:`zhinao.cli.remote`) is used unless the
command was given ``--local``. ``--local`` while a server runs is refused for ``kb`` and
``data``: the server holds the knowledge index (Milvus Lite) and the workspaces' DuckDB
files, which one process at a time may open — the message says so instead of the engines'
"opened by another program". Local-only commands (``kb sync``, ``kb resume``, ``kb eval``)
are refused the same way while a server runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zhinao.cli import remote as rm
from zhinao.cli.common import cli_principal, platform

LOCAL_HELP = ("Work in this process even if a server runs on this home (refused for kb/data while it runs: "
              "it holds the index and workspace files)")


def _home() -> Path:
    from zhinao.settings import get_settings

    return get_settings().home


def server() -> rm.ServerInfo | None:
    """The live server on this home, if any."""
    return rm.discover(_home())


def refuse_if_served(what: str) -> None:
    """For commands that need this process to own the home's single-process files."""
    info = server()
    if info is not None:
        raise rm.ServerHoldsHome(
            f"{what} needs the knowledge index and workspace files, which the running server (pid {info.pid}, "
            f"{info.url}) holds; stop it first (or run the command without --local where it supports that)")


@contextlib.contextmanager
def _target(local: bool, what: str) -> Iterator[tuple[rm.Remote | None, Any]]:
    info = server()
    if info is not None and local:
        raise rm.ServerHoldsHome(
            f"--local: the server running on this home (pid {info.pid}, {info.url}) holds the {what}; "
            "drop --local to go through it, or stop the server")
    if info is not None:
        r = rm.Remote(info)
        try:
            yield r, None
        finally:
            r.close()
        return
    with platform() as p:
        yield None, p


@contextlib.contextmanager
def knowledge(local: bool = False) -> Iterator[Any]:
    with _target(local, "knowledge index") as (r, p):
        yield rm.RemoteKnowledge(r) if r is not None else LocalKnowledge(p)


@contextlib.contextmanager
def analytics(local: bool = False) -> Iterator[Any]:
    with _target(local, "workspace files") as (r, p):
        yield rm.RemoteAnalytics(r) if r is not None else LocalAnalytics(p)


class LocalKnowledge:
    """KnowledgeService in this process, as the platform operator."""

    remote = False

    def __init__(self, p: Any):
        self.p = p
        self.pr = cli_principal(p)

    def where(self) -> str:
        return "this process"

    def create_collection(self, name: str, description: str, visibility: str) -> dict:
        return self.p.knowledge.create_collection(self.pr, name, description, visibility)

    def ensure_collection(self, name: str, description: str = "") -> None:
        self.p.knowledge.ensure_collection(self.pr, name, **({"description": description} if description else {}))

    def list_collections(self) -> list[dict]:
        return self.p.knowledge.list_collections(self.pr)

    def add_paths(self, collection: str, paths: list[Path], **kw: Any) -> dict:
        return self.p.knowledge.add_paths(self.pr, collection, paths, **kw)

    def wait_job(self, job_id: int, progress=None) -> dict:
        import time

        while True:
            job = self.p.jobs.get(job_id)
            if progress:
                progress(job)
            if job["status"] not in ("queued", "running"):
                return self.p.jobs.wait(job_id)
            time.sleep(0.3)

    def reindex(self, collection: str) -> dict:
        return self.p.knowledge.reindex(self.pr, collection)

    def list_documents(self, collection: str) -> list[dict]:
        return self.p.knowledge.list_documents(self.pr, collection)

    def delete_document(self, collection: str, doc_id: int) -> None:
        self.p.knowledge.delete_document(self.pr, collection, doc_id)

    def search(self, query: str, **kw: Any) -> dict:
        return self.p.knowledge.search(self.pr, query, **kw)

    def ask(self, collection: str, question: str, model: str | None) -> dict:
        import asyncio

        from zhinao.runtime.base import GenerationParams

        return asyncio.run(self.p.knowledge.chat(self.pr, collection, [{"role": "user", "content": question}],
                                                 GenerationParams(temperature=0.2, max_tokens=400), model=model))

    def demo(self, collection: str) -> dict:
        from zhinao.knowledge.demo import load_demo

        return load_demo(self.p.knowledge, self.pr, collection=collection)["job"]


class LocalAnalytics:
    """AnalyticsService in this process, for tenant ``default``."""

    remote = False

    def __init__(self, p: Any):
        self.p = p
        self.tid = cli_principal(p).tenant_id
        self.ws = p.analytics.workspaces

    def where(self) -> str:
        return "this process"

    def workspaces(self) -> list[dict]:
        return self.ws.list(self.tid)

    def create_workspace(self, name: str, description: str) -> dict:
        return self.ws.create(self.tid, name, description)

    def ensure_demo(self) -> dict:
        return self.p.analytics.ensure_demo(self.tid)

    def import_path(self, ws: str, path: Path, **kw: Any) -> dict:
        return self.ws.import_path(self.tid, ws, path, **kw)

    def import_sql(self, ws: str, source: str, query: str, name: str, replace: bool) -> dict:
        return self.ws.import_sql(self.tid, ws, source, query, name, replace=replace)

    def sources_register(self, name: str, url: str, tenants: list[str], description: str, replace: bool) -> dict:
        return self.p.analytics.sources.register(name, url, tenants=tenants, description=description,
                                                 replace=replace, actor="cli")

    def sources_list(self) -> list[dict]:
        return self.p.analytics.sources.list_all()

    def sources_remove(self, name: str) -> None:
        self.p.analytics.sources.remove(name)

    def datasets(self, ws: str) -> list[dict]:
        return self.ws.datasets(self.tid, ws)

    def dataset(self, ws: str, name: str) -> dict:
        return self.ws.dataset(self.tid, ws, name)

    def describe(self, ws: str, name: str, columns: dict, description: str | None) -> dict:
        return self.ws.describe(self.tid, ws, name, columns, description)

    def glossary(self, ws: str) -> list[dict]:
        return self.ws.glossary(self.tid, ws)

    def set_term(self, ws: str, term: str, **fields: Any) -> dict:
        return self.ws.set_term(self.tid, ws, term, **fields)

    def delete_term(self, ws: str, term: str) -> None:
        self.ws.delete_term(self.tid, ws, term)

    def query(self, ws: str, sql: str, limit: int) -> dict:
        return self.ws.workspace(self.tid, ws).run_sql(sql, limit).as_dict()

    def catalogue(self, theme: str | None) -> list[dict]:
        return self.p.analytics.catalogue(theme)

    def start_run(self, key: str, **kw: Any) -> dict:
        return self.p.analytics.start_run(self.tid, key, **kw)

    def get_run(self, run_id: int) -> dict:
        return self.p.analytics.runs.get(self.tid, run_id)

    def runs(self, model: str | None) -> list[dict]:
        return self.p.analytics.runs.list(self.tid, model)

    def artifacts(self, run: dict) -> str:
        runs = self.p.analytics.runs
        return (f"model ({runs.model_file(self.tid, run['id']).name}), evaluation.json and charts "
                f"({', '.join(run['charts'])}) in {runs.artifact_dir(self.tid, run['id'])}")

    def chart_files(self, run: dict) -> list[str]:
        d = self.p.analytics.runs.artifact_dir(self.tid, run["id"]) / "charts"
        return [str(d / f"{name}.png") for name in run.get("charts") or []]

    def score(self, run_id: int, ws: str, dataset: str, output: str | None) -> dict:
        return self.p.analytics.score(self.tid, run_id, ws, dataset, output)

    def export_csv(self, ws: str, name: str) -> bytes:
        self.ws.dataset(self.tid, ws, name)
        return self.ws.workspace(self.tid, ws).export_csv(name)
