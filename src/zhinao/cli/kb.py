"""``zhinao kb``: knowledge collections, ingestion (files, folders, sync), search, ask, eval.

Beside a running ``zhinao serve`` the commands go through its API (the server holds the
single-process index); alone, or with ``--local``, they call the service in-process. See
:mod:`zhinao.cli.backend`. Tables take ``--json``; progress bars go to stderr.
"""

from __future__ import annotations

from pathlib import Path

import typer

from zhinao.cli import backend, output
from zhinao.cli.common import cli_principal, console, err_console, handle_errors, platform
from zhinao.cli.output import JSON

app = typer.Typer(no_args_is_help=True, help="Knowledge base / 知识库")

COLL = typer.Option("default", "--collection", "-c", help="Collection name / 知识库名称")
LOCAL = typer.Option(False, "--local", help=backend.LOCAL_HELP)


def _split(v: str | None) -> list[str] | None:
    return [t.strip() for t in v.split(",") if t.strip()] if v else None


def _print_job(job: dict, as_json: bool = False, extra: dict | None = None) -> None:
    if as_json:
        output.print_json({**(extra or {}), "job": job})
        return
    res = (job.get("result") or {}).get("results", [])
    output.table(["file", "status", "chunks", "detail"],
                 [[r.get("source", r.get("doc_id")), r["status"], r.get("chunks", ""),
                   r.get("error") or r.get("duplicate_of") or ""] for r in res])
    if job.get("status") != "succeeded":
        console.print(f"[red]job {job['id']} {job['status']}: {job.get('error')}[/red]")


def _follow(b, job_id: int) -> dict:
    """Show a progress bar (on stderr, so stdout stays clean) while the job runs; return the finished job."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]indexing[/bold]"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=err_console, transient=False) as bar:
        task = bar.add_task("", total=1.0)
        return b.wait_job(job_id, lambda job: bar.update(task, completed=job["progress"] or 0.0,
                                                         description=(job.get("message") or "")[:60]))


def _print_rejected(out: dict) -> None:
    for r in out.get("rejected", []):
        err_console.print(f"[yellow]skipped[/yellow] {r['source']}: {r['error']}")


@app.command("create")
@handle_errors
def create(name: str, description: str = typer.Option("", "--description", "-d", help="What the collection holds"),
           private: bool = typer.Option(False, "--private", help="Only members may read"),
           local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Create a collection. 创建知识库。"""
    with backend.knowledge(local) as b:
        c = b.create_collection(name, description, "private" if private else "tenant")
    if as_json:
        output.print_json(c)
    else:
        console.print(f"created collection [bold]{c['name']}[/bold] (id {c['id']})")


@app.command("list")
@handle_errors
def list_collections(local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Collections with document and chunk counts. 知识库列表。"""
    with backend.knowledge(local) as b:
        rows = b.list_collections()
    if as_json:
        output.print_json(rows)
    else:
        output.records(rows, ["name", "documents", "chunks", "visibility", "description"])


@app.command("add")
@handle_errors
def add(paths: list[Path] = typer.Argument(..., help="Files or folders (recursive)"), collection: str = COLL,
        tags: str = typer.Option(None, "--tags", help="Comma-separated tags"),
        access_tags: str = typer.Option(None, help="Only readers holding one of these tags see the documents"),
        title: str = typer.Option(None), effective_date: str = typer.Option(None, help="YYYY-MM-DD"),
        local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Ingest files and folders; unchanged files are skipped. 导入文档。"""
    with backend.knowledge(local) as b:
        b.ensure_collection(collection)
        out = b.add_paths(collection, paths, tags=_split(tags), access_tags=_split(access_tags),
                          title=title, effective_date=effective_date)
        _print_rejected(out)
        _print_job(_follow(b, out["job_id"]), as_json, {"rejected": out.get("rejected", [])})


@app.command("sync")
@handle_errors
def sync(directory: Path, collection: str = COLL,
         every: float = typer.Option(0.0, "--every", help="Keep running and re-sync every N seconds (0: once)"),
         rounds: int = typer.Option(0, "--rounds", hidden=True, help="Stop after N syncs (0: never; for tests)"),
         as_json: bool = JSON) -> None:
    """Mirror a folder: new and changed files are indexed, deleted files removed. 同步文件夹。

    With ``--every`` the folder is watched on a schedule (the server does the same for every
    collection that remembers a folder when ``kb sync_interval_s`` is set). In-process only:
    the server reads folders only under its ``kb_sync_roots``, so beside a running server this
    command says so (use ``POST /api/kb/{c}/sync`` there, or let the server's scheduler sync).
    """
    import time

    backend.refuse_if_served("kb sync")
    with platform() as p:
        pr = cli_principal(p)
        p.knowledge.ensure_collection(pr, collection)
        b = backend.LocalKnowledge(p)
        n = 0
        while True:
            out = p.knowledge.sync_dir(pr, collection, directory, local=True)  # the machine's own user
            _print_rejected(out)
            if out["job_id"] is None:
                if as_json:
                    output.print_json({"job": None, "deleted": out["deleted"], "rejected": out.get("rejected", [])})
                else:
                    console.print("up to date: nothing changed")
            else:
                _print_job(_follow(b, out["job_id"]), as_json, {"deleted": out["deleted"],
                                                                 "rejected": out.get("rejected", [])})
                if out["deleted"] and not as_json:
                    console.print(f"deleted {len(out['deleted'])} document(s) whose files are gone")
            n += 1
            if not every or (rounds and n >= rounds):
                break
            time.sleep(every)


@app.command("reindex")
@handle_errors
def reindex(collection: str = COLL, local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Rebuild the index of a collection from the stored originals (e.g. after pointing kb milvus_uri at a
    Milvus server). 重建索引（如迁移到 Milvus 服务器后）。"""
    with backend.knowledge(local) as b:
        out = b.reindex(collection)
        if out["job_id"] is None:
            if as_json:
                output.print_json({"job": None})
            else:
                console.print("nothing to reindex: the collection has no ready documents")
            return
        _print_job(_follow(b, out["job_id"]), as_json)


@app.command("resume")
@handle_errors
def resume(as_json: bool = JSON) -> None:
    """Finish ingestion jobs a crashed process left unfinished (a running server does this at start).
    恢复中断的导入任务。"""
    backend.refuse_if_served("kb resume (the running server resumed unfinished jobs when it started)")
    with platform() as p:
        p.knowledge  # noqa: B018  (registers the kb.ingest handler's service)
        ids = p.jobs.resume()
        jobs = [p.jobs.wait(job_id) for job_id in ids]
        if as_json:
            output.print_json({"jobs": jobs})
            return
        for job in jobs:
            _print_job(job)
        console.print(f"resumed {len(ids)} job(s)")


@app.command("docs")
@handle_errors
def docs(collection: str = COLL, local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Documents of a collection. 文档列表。"""
    with backend.knowledge(local) as b:
        rows = b.list_documents(collection)
    if as_json:
        output.print_json(rows)
        return
    output.table(["id", "source", "title", "status", "chunks", "updated", "error"],
                 [[d["id"], d["source"], d["title"], d["status"], d["chunks"], (d["updated_at"] or "")[:19],
                   d["error"] or ""] for d in rows])


@app.command("rm")
@handle_errors
def rm(doc_id: int, collection: str = COLL, local: bool = LOCAL) -> None:
    """Delete a document. 删除文档。"""
    with backend.knowledge(local) as b:
        b.delete_document(collection, doc_id)
    console.print(f"deleted document {doc_id}")


@app.command("search")
@handle_errors
def search(query: str, collection: str = typer.Option(None, "--collection", "-c", help="Only this collection"),
           k: int = typer.Option(5, "--top-k", "-k", help="How many documents"),
           tag: list[str] = typer.Option(None, "--tag", help="Only documents with this tag (repeatable)"),
           doc_type: list[str] = typer.Option(None, "--type", help="Only this file type (repeatable)"),
           mode: str = typer.Option("hybrid", "--mode", help="hybrid | dense | bm25"),
           local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Library search: documents with their best passages. 检索。"""
    with backend.knowledge(local) as b:
        res = b.search(query, collection=collection, k=k, tags=tag or None, doc_types=doc_type or None, mode=mode)
    if as_json:
        output.print_json(res)
        return
    for i, r in enumerate(res["results"], 1):
        console.print(f"[bold]{i}. {r['title']}[/bold]  ({r['collection']}/{r['source']})", markup=True,
                      highlight=False)
        for ps in r["passages"][:2]:
            where = f"p.{ps['page']} " if ps["page"] else ""
            console.print(f"   {where}{' > '.join(ps['heading'])}: {ps['text'][:160]}", markup=False, highlight=False)


@app.command("ask")
@handle_errors
def ask(question: str, collection: str = COLL,
        model: str = typer.Option(None, "--model", "-m", help="Chat model (default model)"),
        local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Ask the knowledge base; the answer cites its sources. 知识问答。"""
    with backend.knowledge(local) as b:
        res = b.ask(collection, question, model)
    if as_json:
        output.print_json(res)
        return
    console.print(res["answer"], markup=False, highlight=False)
    for c in res["citations"]:
        console.print(citation_lines(c), markup=False, highlight=False)


def citation_lines(c: dict) -> str:
    """One citation as people can use it: section heading (not only the file's title), page, link,
    and the cited sentence on the next line (``*``: the answer cites it)."""
    mark = "*" if c.get("cited") else " "
    heading = [h for h in (c.get("heading") or []) if h and h != c.get("title")]
    where_in = " > ".join(heading)
    page = f", p.{c['page']}" if c.get("page") else ""
    link = c.get("url") or f"passage {c.get('passage_id', '')}"  # links come from the server's web layer
    line = f" {mark}[{c['n']}] {c.get('title', '')}{' > ' + where_in if where_in else ''}{page} — {link}"
    sentence = (c.get("sentence") or "").strip()
    return line + (f"\n      “{sentence}”" if sentence else "")


@app.command("demo")
@handle_errors
def demo(collection: str = typer.Option("telecom-demo", "--collection", "-c"), local: bool = LOCAL,
         as_json: bool = JSON) -> None:
    """Load the sample telecom corpus (fictional sample content). 加载示例知识库。"""
    with backend.knowledge(local) as b:
        _print_job(b.demo(collection), as_json)


@app.command("eval")
@handle_errors
def evaluate(qa: Path = typer.Argument(..., help="JSONL: question, source, gold"), collection: str = COLL,
             modes: str = typer.Option("bm25,dense,hybrid", help="Retrievers, each optionally with a reranker: "
                                       "hybrid+overlap, dense+embedding"), answers: int = typer.Option(0, help="Also answer N "
             "questions with the model: correctness, faithfulness, citations"),
             model: str = typer.Option(None, "--model", "-m"),
             unanswerable: Path = typer.Option(None, "--unanswerable", help="JSONL of questions the collection does "
                                               "not answer (refusal rate) / 知识库无法回答的问题"),
             models: str = typer.Option(None, "--models", help="Compare the answers of these models "
                                        "(comma-separated) / 对比多个模型"), as_json: bool = JSON) -> None:
    """recall@k, MRR, nDCG@10 per retriever; with --answers N or --unanswerable also answer correctness,
    faithfulness, refusal and answer rates and latency per model (in-process). 评测。"""
    from zhinao.knowledge.evaluate import evaluate as run_eval, load_qa, markdown_table, spread

    backend.refuse_if_served("kb eval")
    with platform() as p:
        who = cli_principal(p)
        rep = run_eval(p.knowledge, who, collection, qa, modes=tuple(_split(modes) or ()), answers=0, model=model)
        if answers or unanswerable:
            from zhinao.knowledge.answer_eval import evaluate_answers, load_questions

            rep["answer_metrics"] = evaluate_answers(
                p.knowledge, who, collection, spread(load_qa(qa), answers) if answers else [],
                load_questions(unanswerable) if unanswerable else [], models=_split(models) or [model])
        if as_json:
            output.print_json(rep)
            return
        console.print(markdown_table(rep), markup=False, highlight=False)
        if "fusion" in rep:
            f = rep["fusion"]
            console.print(f"hybrid = {f['label']} (chosen on {f['probes']} probe questions of the collection; "
                          f"probe MRR {f['probe_mrr']})" if f.get("probes") else
                          "hybrid = equal-weight RRF (collection not tuned yet: `zhinao kb reindex`)",
                          markup=False, highlight=False)
        if "refusal" in rep:
            console.print(f"refusal: {rep['refusal']}")
        if "answer_metrics" in rep:
            from zhinao.knowledge.answer_eval import markdown_answers

            console.print(markdown_answers(rep["answer_metrics"]), markup=False, highlight=False)
