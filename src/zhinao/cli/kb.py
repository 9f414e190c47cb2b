"""``zhinao kb``: knowledge collections, ingestion (files, folders, sync), search, ask, eval."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.table import Table

from zhinao.cli.common import cli_principal, console, handle_errors, platform

app = typer.Typer(no_args_is_help=True, help="Knowledge base / 知识库")

COLL = typer.Option("default", "--collection", "-c", help="Collection name / 知识库名称")


def _split(v: str | None) -> list[str] | None:
    return [t.strip() for t in v.split(",") if t.strip()] if v else None


def _print_job(job: dict) -> None:
    res = (job.get("result") or {}).get("results", [])
    t = Table("file", "status", "chunks", "detail")
    for r in res:
        t.add_row(str(r.get("source", r.get("doc_id"))), r["status"], str(r.get("chunks", "")),
                  r.get("error") or r.get("duplicate_of") or "")
    console.print(t)
    if job.get("status") != "succeeded":
        console.print(f"[red]job {job['id']} {job['status']}: {job.get('error')}[/red]")


def _follow(p, job_id: int) -> dict:
    """Show a Rich progress bar while the ingestion job runs; return the finished job."""
    import time

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]indexing[/bold]"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=False) as bar:
        task = bar.add_task("", total=1.0)
        while True:
            job = p.jobs.get(job_id)
            bar.update(task, completed=job["progress"] or 0.0, description=(job.get("message") or "")[:60])
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.3)
    return p.jobs.wait(job_id)


def _print_rejected(out: dict) -> None:
    for r in out.get("rejected", []):
        console.print(f"[yellow]skipped[/yellow] {r['source']}: {r['error']}")


@app.command("create")
@handle_errors
def create(name: str, description: str = typer.Option("", help="What the collection holds"),
           private: bool = typer.Option(False, "--private", help="Only members may read")) -> None:
    """Create a collection. 创建知识库。"""
    with platform() as p:
        c = p.knowledge.create_collection(cli_principal(p), name, description, "private" if private else "tenant")
        console.print(f"created collection [bold]{c['name']}[/bold] (id {c['id']})")


@app.command("list")
@handle_errors
def list_collections() -> None:
    """Collections with document and chunk counts. 知识库列表。"""
    with platform() as p:
        t = Table("name", "documents", "chunks", "visibility", "description")
        for c in p.knowledge.list_collections(cli_principal(p)):
            t.add_row(c["name"], str(c["documents"]), str(c["chunks"]), c["visibility"], c["description"])
        console.print(t)


@app.command("add")
@handle_errors
def add(paths: list[Path] = typer.Argument(..., help="Files or folders (recursive)"), collection: str = COLL,
        tags: str = typer.Option(None, help="Comma-separated tags"),
        access_tags: str = typer.Option(None, help="Only readers holding one of these tags see the documents"),
        title: str = typer.Option(None), effective_date: str = typer.Option(None, help="YYYY-MM-DD")) -> None:
    """Ingest files and folders; unchanged files are skipped. 导入文档。"""
    with platform() as p:
        pr = cli_principal(p)
        p.knowledge.ensure_collection(pr, collection)
        out = p.knowledge.add_paths(pr, collection, paths, tags=_split(tags), access_tags=_split(access_tags),
                                    title=title, effective_date=effective_date)
        _print_rejected(out)
        _print_job(_follow(p, out["job_id"]))


@app.command("sync")
@handle_errors
def sync(directory: Path, collection: str = COLL,
         every: float = typer.Option(0.0, "--every", help="Keep running and re-sync every N seconds (0: once)"),
         rounds: int = typer.Option(0, "--rounds", hidden=True, help="Stop after N syncs (0: never; for tests)")) -> None:
    """Mirror a folder: new and changed files are indexed, deleted files removed. 同步文件夹。

    With ``--every`` the folder is watched on a schedule (the server does the same for every
    collection that remembers a folder when ``kb sync_interval_s`` is set).
    """
    import time

    with platform() as p:
        pr = cli_principal(p)
        p.knowledge.ensure_collection(pr, collection)
        n = 0
        while True:
            out = p.knowledge.sync_dir(pr, collection, directory, local=True)  # the machine's own user
            _print_rejected(out)
            if out["job_id"] is None:
                console.print("up to date: nothing changed")
            else:
                _print_job(_follow(p, out["job_id"]))
                if out["deleted"]:
                    console.print(f"deleted {len(out['deleted'])} document(s) whose files are gone")
            n += 1
            if not every or (rounds and n >= rounds):
                break
            time.sleep(every)


@app.command("reindex")
@handle_errors
def reindex(collection: str = COLL) -> None:
    """Rebuild the index of a collection from the stored originals (e.g. after pointing kb milvus_uri at a
    Milvus server). 重建索引（如迁移到 Milvus 服务器后）。"""
    with platform() as p:
        out = p.knowledge.reindex(cli_principal(p), collection)
        if out["job_id"] is None:
            console.print("nothing to reindex: the collection has no ready documents")
            return
        _print_job(_follow(p, out["job_id"]))


@app.command("resume")
@handle_errors
def resume() -> None:
    """Finish ingestion jobs a crashed process left unfinished. 恢复中断的导入任务。"""
    with platform() as p:
        p.knowledge  # noqa: B018  (registers the kb.ingest handler's service)
        ids = p.jobs.resume()
        for job_id in ids:
            _print_job(p.jobs.wait(job_id))
        console.print(f"resumed {len(ids)} job(s)")


@app.command("docs")
@handle_errors
def docs(collection: str = COLL) -> None:
    """Documents of a collection. 文档列表。"""
    with platform() as p:
        t = Table("id", "source", "title", "status", "chunks", "updated", "error")
        for d in p.knowledge.list_documents(cli_principal(p), collection):
            t.add_row(str(d["id"]), d["source"], d["title"], d["status"], str(d["chunks"]),
                      (d["updated_at"] or "")[:19], d["error"] or "")
        console.print(t)


@app.command("rm")
@handle_errors
def rm(doc_id: int, collection: str = COLL) -> None:
    """Delete a document. 删除文档。"""
    with platform() as p:
        p.knowledge.delete_document(cli_principal(p), collection, doc_id)
        console.print(f"deleted document {doc_id}")


@app.command("search")
@handle_errors
def search(query: str, collection: str = typer.Option(None, "--collection", "-c"), k: int = 5,
           tag: list[str] = typer.Option(None), doc_type: list[str] = typer.Option(None, "--type"),
           mode: str = typer.Option("hybrid", help="hybrid | dense | bm25")) -> None:
    """Library search: documents with their best passages. 检索。"""
    with platform() as p:
        res = p.knowledge.search(cli_principal(p), query, collection=collection, k=k, tags=tag or None,
                                 doc_types=doc_type or None, mode=mode)
        for i, r in enumerate(res["results"], 1):
            console.print(f"[bold]{i}. {r['title']}[/bold]  ({r['collection']}/{r['source']})")
            for ps in r["passages"][:2]:
                where = f"p.{ps['page']} " if ps["page"] else ""
                console.print(f"   {where}{' > '.join(ps['heading'])}: {ps['text'][:160]}")


@app.command("ask")
@handle_errors
def ask(question: str, collection: str = COLL, model: str = typer.Option(None, help="Chat model (default model)")) -> None:
    """Ask the knowledge base; the answer cites its sources. 知识问答。"""
    from zhinao.runtime.base import GenerationParams

    with platform() as p:
        res = asyncio.run(p.knowledge.chat(cli_principal(p), collection, [{"role": "user", "content": question}],
                                           GenerationParams(temperature=0.2, max_tokens=400), model=model))
        console.print(res["answer"])
        for c in res["citations"]:
            mark = "*" if c["cited"] else " "
            page = f", p.{c['page']}" if c["page"] else ""
            console.print(f" {mark}[{c['n']}] {c['title']}{page} — {c['url']}")


@app.command("demo")
@handle_errors
def demo(collection: str = typer.Option("telecom-demo", "--collection", "-c")) -> None:
    """Load the sample telecom corpus (fictional sample content). 加载示例知识库。"""
    from zhinao.knowledge.demo import load_demo

    with platform() as p:
        out = load_demo(p.knowledge, cli_principal(p), collection=collection)
        _print_job(out["job"])


@app.command("eval")
@handle_errors
def evaluate(qa: Path = typer.Argument(..., help="JSONL: question, source, gold"), collection: str = COLL,
             modes: str = typer.Option("bm25,dense,hybrid", help="Retrievers, each optionally with a reranker: "
                                       "hybrid+overlap, dense+embedding"), answers: int = typer.Option(0, help="Also answer N "
             "questions with the model and score citations"), model: str = typer.Option(None),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """recall@k, MRR, nDCG@10 per retriever, and citation accuracy. 评测。"""
    from zhinao.knowledge.evaluate import evaluate as run_eval, markdown_table

    with platform() as p:
        rep = run_eval(p.knowledge, cli_principal(p), collection, qa, modes=tuple(_split(modes) or ()),
                       answers=answers, model=model)
        if as_json:
            console.print_json(json.dumps(rep))
            return
        console.print(markdown_table(rep))
        if "refusal" in rep:
            console.print(f"refusal: {rep['refusal']}")
        if "answers" in rep:
            console.print(f"answers: {rep['answers']}")
