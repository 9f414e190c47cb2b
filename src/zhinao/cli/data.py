"""``zhinao data``: analytics workspaces, datasets, glossary, the mining-model catalogue and runs.

Acts as the default tenant through the same operations the API offers: beside a running
``zhinao serve`` over its API (the server holds the workspaces' DuckDB files), otherwise, or
with ``--local``, in-process through :class:`AnalyticsService` (see :mod:`zhinao.cli.backend`).
``run`` shows the job's progress live (on stderr). ``query`` runs in the SQL sandbox like the
API does; ``sources`` registers the databases SQL imports may read (the platform operator's
job: whoever runs the CLI owns the store). Tables take ``--json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from zhinao.cli import backend, output
from zhinao.cli.common import console, err_console, handle_errors
from zhinao.cli.output import JSON
from zhinao.errors import InvalidRequest

app = typer.Typer(no_args_is_help=True)

WS = typer.Option("demo", "--workspace", "-w", help="Workspace name / 工作区")
LOCAL = typer.Option(False, "--local", help=backend.LOCAL_HELP)


def _ensure_ws(b: Any, ws: str | None) -> None:
    if ws == "demo":
        b.ensure_demo()


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else "" if v is None else str(v)


@app.command("workspaces")
@handle_errors
def workspaces(local: bool = LOCAL, as_json: bool = JSON) -> None:
    """List workspaces. 工作区列表。"""
    with backend.analytics(local) as b:
        rows = b.workspaces()
    if as_json:
        output.print_json(rows)
    else:
        output.records(rows, ["name", "description", "created_at"])


@app.command("create")
@handle_errors
def create(name: str, description: str = typer.Option("", "--description", "-d", help="What the workspace is for"),
           local: bool = LOCAL) -> None:
    """Create a workspace (a DuckDB file). 新建工作区。"""
    with backend.analytics(local) as b:
        b.create_workspace(name, description)
    console.print(f"created workspace [bold]{name}[/bold]")


@app.command("demo")
@handle_errors
def demo(local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Create the demo workspace with the shipped real data. 导入示例数据。"""
    with backend.analytics(local) as b:
        w = b.ensure_demo()
    if as_json:
        output.print_json(w)
        return
    tables = ", ".join(f"{d['name']} ({d['rows']} rows)" for d in w["datasets"])
    console.print(f"workspace demo: {tables}")


@app.command("import")
@handle_errors
def import_file(path: Path, workspace: str = WS, name: str = typer.Option(None, help="Table name (default: file name)"),
                format: str = typer.Option(None, "--format", "-f", help="csv | parquet | excel | json"),  # noqa: A002
                encoding: str = typer.Option(None, help="Force an encoding (default: detect UTF-8 / GB18030)"),
                sheet: str = typer.Option(None, help="Excel sheet name or index"),
                replace: bool = typer.Option(False, help="Replace an existing table"),
                description: str = typer.Option("", "--description", "-d", help="Dataset description"),
                local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Import a CSV/Parquet/Excel/JSON file. 导入文件。"""
    if not path.is_file():
        raise typer.BadParameter(f"{path}: no such file", param_hint="PATH")
    with backend.analytics(local) as b:
        _ensure_ws(b, workspace)
        sheet_arg = int(sheet) if sheet and sheet.isdigit() else sheet
        ds = b.import_path(workspace, path, name=name, fmt=format, encoding=encoding, sheet=sheet_arg,
                           replace=replace, description=description)
    if as_json:
        output.print_json(ds)
        return
    d = ds["source_detail"]
    console.print(f"imported [bold]{ds['name']}[/bold]: {ds['rows']} rows x {len(ds['profile']['columns'])} columns"
                  + (f", encoding {d['encoding']}" if d.get("encoding") else ""))
    for w in ds["profile"]["warnings"]:
        console.print(f"  [yellow]warning[/yellow] {w}")


@app.command("import-sql")
@handle_errors
def import_sql(source: str = typer.Argument(..., help="Data source name (see `zhinao data sources list`)"),
               query: str = typer.Argument(..., help="One read-only SELECT in the source's SQL dialect"),
               name: str = typer.Option(..., "--name", "-n", help="Table name"), workspace: str = WS,
               replace: bool = typer.Option(False), local: bool = LOCAL) -> None:
    """Pull a SELECT from an operator-registered data source. 从数据源导入。"""
    with backend.analytics(local) as b:
        _ensure_ws(b, workspace)
        ds = b.import_sql(workspace, source, query, name, replace)
    console.print(f"imported [bold]{ds['name']}[/bold]: {ds['rows']} rows")


sources = typer.Typer(no_args_is_help=True, help="Data sources for SQL imports (platform operator) / 数据源")
app.add_typer(sources, name="sources")


@sources.command("add")
@handle_errors
def sources_add(name: str = typer.Argument(..., help="Name tenants use in imports"),
                url: str = typer.Argument(None, help="SQLAlchemy URL with credentials (or use --url-env)"),
                url_env: str = typer.Option(None, "--url-env", help="Read the URL from this environment variable "
                                            "(keeps the password out of shell history and ps)"),
                tenant: list[str] = typer.Option([], "--tenant", "-t", help="Tenant granted (repeatable)"),
                all_tenants: bool = typer.Option(False, "--all", help="Grant every tenant"),
                description: str = typer.Option("", "--description", "-d", help="What the source holds"),
                replace: bool = typer.Option(False, help="Update an existing source"), local: bool = LOCAL) -> None:
    """Register a database tenants may import from. 注册数据源。"""
    import os

    if url_env:
        url = os.environ.get(url_env)
        if not url:
            raise typer.BadParameter(f"environment variable {url_env} is not set", param_hint="--url-env")
    if not url:
        raise typer.BadParameter("give the URL or --url-env VAR", param_hint="URL")
    if all_tenants and tenant:
        raise typer.BadParameter("use --all or --tenant, not both", param_hint="--all")
    with backend.analytics(local) as b:
        src = b.sources_register(name, url, ["*"] if all_tenants else list(tenant), description, replace)
    console.print(f"data source [bold]{src['name']}[/bold] ({src['url']}) granted to "
                  f"{', '.join(src['tenants']) or 'no tenant yet'}")


@sources.command("list")
@handle_errors
def sources_list(local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Registered data sources (passwords masked). 数据源列表。"""
    with backend.analytics(local) as b:
        rows = b.sources_list()
    if as_json:
        output.print_json(rows)
        return
    output.table(["name", "url", "tenants", "description"],
                 [[s["name"], s.get("url", ""), ", ".join(s.get("tenants") or []) or "-", s.get("description", "")]
                  for s in rows])


@sources.command("remove")
@handle_errors
def sources_remove(name: str, local: bool = LOCAL) -> None:
    """Remove a data source (imported tables stay). 删除数据源。"""
    with backend.analytics(local) as b:
        b.sources_remove(name)
    console.print(f"removed data source [bold]{name}[/bold]")


@app.command("list")
@handle_errors
def list_datasets(workspace: str = WS, local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Datasets of a workspace. 数据集列表。"""
    with backend.analytics(local) as b:
        _ensure_ws(b, workspace)
        rows = b.datasets(workspace)
    if as_json:
        output.print_json(rows)
        return
    output.records(rows, ["name", "source", "rows", "columns", "description"])


@app.command("profile")
@handle_errors
def profile(name: str, workspace: str = WS, local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Profile of a dataset: types, nulls, distributions. 数据画像。"""
    with backend.analytics(local) as b:
        _ensure_ws(b, workspace)
        ds = b.dataset(workspace, name)
    if as_json:
        output.print_json(ds)
        return
    desc = ds["column_descriptions"]
    rows = []
    for c in ds["profile"]["columns"]:
        if c.get("stats") and c["kind"] == "number":
            s = c["stats"]
            summary = f"{_fmt(s['min'])} .. {_fmt(s['max'])} (median {_fmt(s['p50'])})"
        elif c.get("top_values"):
            summary = ", ".join(f"{v['value']}:{v['count']}" for v in c["top_values"][:4])
        elif c.get("stats"):
            summary = f"{c['stats'].get('min')} .. {c['stats'].get('max')}"
        else:
            summary = ""
        warn = (" (" + ",".join(c["warnings"]) + ")") if c["warnings"] else ""
        rows.append([c["name"], c["kind"] + warn, f"{c['null_rate']:.1%}", c["distinct"], summary,
                     desc.get(c["name"], "")])
    output.table(["column", "kind", "nulls", "distinct", "summary", "description"], rows,
                 title=f"{name}: {ds['rows']} rows")


@app.command("describe")
@handle_errors
def describe(name: str, column: str = typer.Argument(None), text: str = typer.Argument(None), workspace: str = WS,
             dataset_description: str = typer.Option(None, "--dataset", help="Set the dataset's description"),
             local: bool = LOCAL) -> None:
    """Describe a column (or the dataset) for people and the agent. 字段说明。"""
    with backend.analytics(local) as b:
        _ensure_ws(b, workspace)
        cols = {column: text or ""} if column else {}
        ds = b.describe(workspace, name, cols, dataset_description)
    output.print_json(ds["column_descriptions"])


@app.command("glossary")
@handle_errors
def glossary(workspace: str = WS, set_term: str = typer.Option(None, "--set", help="Term to add or change"),
             zh: str = typer.Option("", help="Chinese definition"), en: str = typer.Option("", help="English definition"),
             term_en: str = typer.Option("", help="English name"), formula: str = typer.Option("", help="How to compute it"),
             delete: str = typer.Option(None, help="Term to delete"), local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Show or edit the business glossary (ARPU, DOU, MOU, 离网率 ...). 业务术语。"""
    with backend.analytics(local) as b:
        _ensure_ws(b, workspace)
        if set_term:
            b.set_term(workspace, set_term, term_en=term_en, definition_zh=zh, definition_en=en, formula=formula)
        if delete:
            b.delete_term(workspace, delete)
        rows = b.glossary(workspace)
    if as_json:
        output.print_json(rows)
        return
    output.table(["term", "English", "definition", "formula"],
                 [[g["term"], g["term_en"], g["definition_zh"] or g["definition_en"], g["formula"]] for g in rows])


@app.command("query")
@handle_errors
def query(sql: str, workspace: str = WS, limit: int = typer.Option(50, "--limit", "-l"), local: bool = LOCAL,
          as_json: bool = JSON) -> None:
    """Run a read-only SELECT on a workspace (in the SQL sandbox). 查询。"""
    with backend.analytics(local) as b:
        _ensure_ws(b, workspace)
        res = b.query(workspace, sql, limit)
    if as_json:
        output.print_json(res)
        return
    output.table([str(c) for c in res["columns"]], [[_fmt(v) for v in row] for row in res["rows"]])
    if res["truncated"]:
        err_console.print(f"[yellow]first {res['row_count']} rows shown[/yellow]; the query has more (raise --limit)")


@app.command("catalog")
@handle_errors
def catalog(theme: str = typer.Option(None, "--theme", help="Filter by theme"), local: bool = LOCAL,
            as_json: bool = JSON) -> None:
    """The mining-model catalogue. 挖掘模型目录。"""
    with backend.analytics(local) as b:
        rows = b.catalogue(theme)
    if as_json:
        output.print_json(rows)
        return
    output.table(["key", "名称", "algorithm", "task", "roles", "metric", "applications 应用", "scores", "spark"],
                 [[m["key"], m["name_zh"], m["algorithm"], m.get("task", ""),
                   ", ".join(r["name"] + ("" if r["required"] else "?") for r in m.get("roles", [])),
                   m["primary_metric"], ", ".join(p["name_zh"] for p in m.get("presets", [])),
                   "yes" if m["scores"] else "", "yes" if m["spark"] else ""] for m in rows])


def _parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"--param {item!r}: use name=value")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


@app.command("run")
@handle_errors
def run(key: str, workspace: str = typer.Option(None, "--workspace", "-w", help="Workspace of --dataset"),
        dataset: str = typer.Option(None, "--dataset", help="Workspace table (default: the model's demo data)"),
        param: list[str] = typer.Option([], "--param", "-p",
                                        help="Parameter or column role name=value (repeatable): -p target=Churn "
                                             "-p features='[\"a\",\"b\"]' -p positive=Yes"),
        preset: str = typer.Option(None, "--preset", help="Application model of the entry (see `data catalog`)"),
        score_table: str = typer.Option(None, help="Also score the input into this table"),
        engine: str = typer.Option("local", help="local (DuckDB + scikit-learn) or spark (MLlib in local[*])"),
        local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Train, evaluate against the baseline, explain and save a catalogue model. 运行模型。"""
    with backend.analytics(local) as b:
        if workspace:
            _ensure_ws(b, workspace)
        try:
            r = b.start_run(key, workspace=workspace, dataset=dataset, params=_parse_params(param),
                            score_table=score_table, engine=engine, preset=preset)
        except InvalidRequest as e:  # refused before the job: the same exit code as a failed run
            err_console.print(f"[red]error:[/red] {escape(e.message)}", soft_wrap=True)
            raise typer.Exit(1) from None
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=err_console, transient=as_json) as bar:
            task = bar.add_task(f"{key} v{r['version']}", total=1.0)
            while True:
                r = b.get_run(r["id"])
                bar.update(task, completed=r.get("progress", 0.0),
                           description=f"{key} v{r['version']} {r.get('message', '') or r['status']}")
                if r["status"] in ("succeeded", "failed"):
                    if r["status"] == "failed":  # the one message below says it; no red bar above it
                        bar.update(task, visible=False)
                    break
                time.sleep(0.3)
        charts = b.chart_files(r) if r["status"] == "succeeded" else []
        artifacts = b.artifacts(r) if r["status"] == "succeeded" else None
    r = {"run_id": r["id"], **r, "chart_files": charts, "artifacts": artifacts}
    if as_json:
        output.print_json(r)
        if r["status"] != "succeeded":
            raise typer.Exit(1)
        return
    if r["status"] != "succeeded":
        err_console.print(f"[red]run {r['id']} failed:[/red] {escape(str(r['error']))}")
        raise typer.Exit(1)
    _show_run(r, workspace)


def _show_run(r: dict[str, Any], workspace: str | None = None) -> None:
    """A run record for people: metrics beside the baseline, binding, split, notes, tables, chart files."""
    key = r["model_key"]
    if r["status"] != "succeeded":
        console.print(f"run {r['id']}: {key} v{r['version']} — {r['status']}"
                      + (f": {r['error']}" if r.get("error") else ""), markup=False, highlight=False)
        return
    output.table(["metric", "model", r["baseline_name"] or "baseline"],
                 [[("* " if k == r["primary_metric"] else "") + k, _fmt(v), _fmt((r["baseline"] or {}).get(k, ""))]
                  for k, v in (r["metrics"] or {}).items()],
                 title=f"run {r['id']}: {key} v{r['version']} (engine {r['engine']}"
                       + (f", preset {r['preset']}" if r.get("preset") else "") + f", data {r['dataset']})")
    verdict = {True: "[green]beats the baseline[/green]", False: "[red]does not beat the baseline[/red]",
               None: "no baseline applies"}[r["beats_baseline"]]
    console.print(f"{verdict} on {r['primary_metric']}")
    b = r.get("binding") or {}
    if b.get("columns"):
        inferred = set(b.get("inferred") or [])
        rows = [[role, ", ".join(v) if isinstance(v, list) else str(v), "inferred 推断" if role in inferred else "given 指定"]
                for role, v in b["columns"].items()]
        output.table(["role 角色", "column(s) 列", "how"], rows, title="binding 列绑定")
        if b.get("dropped"):
            console.print("left out: " + "; ".join(f"{c} ({why})" for c, why in b["dropped"].items()),
                          markup=False, highlight=False)
    split = r.get("split")
    if split:
        console.print("split: " + ", ".join(f"{k}={v}" for k, v in split.items()), markup=False, highlight=False)
    expl = r.get("explanation") or {}
    lift = expl.get("lift_by_decile") or expl.get("lift")
    if isinstance(lift, list) and lift and isinstance(lift[0], dict):
        output.table(["decile", "rows", "positives", "rate", "lift", "capture"],
                     [[x.get("decile"), x.get("rows"), x.get("positives"), _fmt(x.get("rate")), _fmt(x.get("lift")),
                       _fmt(x.get("cumulative_capture"))] for x in lift], title="lift by decile 十分位提升度")
    thr = expl.get("thresholds")
    if isinstance(thr, list) and thr and isinstance(thr[0], dict) and "threshold" in thr[0]:
        output.table(["threshold", "flagged", "precision", "recall", "f1"],
                     [[_fmt(x.get("threshold")), _fmt(x.get("flagged_share")), _fmt(x.get("precision")),
                       _fmt(x.get("recall")), _fmt(x.get("f1"))] for x in thr], title="thresholds 阈值表")
    for note in r.get("notes") or expl.get("notes", []):
        console.print(f"  note: {note}", markup=False, highlight=False)
    for f in r.get("chart_files") or []:
        console.print(f"  chart: {f}", markup=False, highlight=False)
    if r.get("artifacts"):
        console.print(f"saved: {r['artifacts']}", markup=False, highlight=False)
    if r.get("score_table"):
        console.print(f"scores written to table {r['score_table']}" + (f" in workspace {workspace}" if workspace else ""),
                      markup=False, highlight=False)


runs_app = typer.Typer(help="Past runs; `runs show ID` for one. 运行记录。", invoke_without_command=True,
                       no_args_is_help=False)
app.add_typer(runs_app, name="runs")


@runs_app.callback()
@handle_errors
def runs(ctx: typer.Context, model: str = typer.Option(None, "--model", "-m", help="Only this catalogue key"),
         local: bool = LOCAL, as_json: bool = JSON) -> None:
    """Past runs with their primary metric. 运行记录。"""
    if ctx.invoked_subcommand:
        return
    with backend.analytics(local) as b:
        rows = b.runs(model)
    if as_json:
        output.print_json(rows)
        return
    out = []
    for r in rows:
        pm = r["primary_metric"]
        out.append([r["id"], r["model_key"], r["version"], r["engine"], r["status"], r["dataset"], pm or "",
                    _fmt((r["metrics"] or {}).get(pm, "")), _fmt((r["baseline"] or {}).get(pm, ""))])
    output.table(["id", "model", "version", "engine", "status", "dataset", "metric", "model", "baseline"], out)


@runs_app.command("show")
@handle_errors
def runs_show(run_id: int, local: bool = LOCAL, as_json: bool = JSON) -> None:
    """One run: metrics, baseline, binding, split, explanation, chart files. 查看一次运行。"""
    with backend.analytics(local) as b:
        r = b.get_run(run_id)
        charts = b.chart_files(r) if r["status"] == "succeeded" else []
        artifacts = b.artifacts(r) if r["status"] == "succeeded" else None
    r = {"run_id": r["id"], **r, "chart_files": charts, "artifacts": artifacts}
    if as_json:
        output.print_json(r)
        return
    _show_run(r)


@app.command("score")
@handle_errors
def score(run_id: int, dataset: str, workspace: str = WS,
          out_table: str = typer.Option(None, "--output", "-o", help="Output table"),
          csv: Path = typer.Option(None, help="Also write the scored table to this CSV file"),
          local: bool = LOCAL) -> None:
    """Score a workspace table with a saved model version. 模型评分。"""
    with backend.analytics(local) as b:
        _ensure_ws(b, workspace)
        ds = b.score(run_id, workspace, dataset, out_table)
        console.print(f"scored {ds['rows']} rows into table [bold]{ds['name']}[/bold]")
        if csv:
            csv.write_bytes(b.export_csv(workspace, ds["name"]))
            console.print(f"wrote {csv}")


@app.command("export")
@handle_errors
def export(name: str, out: Path, workspace: str = WS, local: bool = LOCAL) -> None:
    """Export a table as CSV (UTF-8 with BOM, opens in Excel). 导出 CSV。"""
    with backend.analytics(local) as b:
        out.write_bytes(b.export_csv(workspace, name))
    console.print(f"wrote {out}")
