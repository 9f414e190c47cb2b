"""``zhinao data``: analytics workspaces, datasets, glossary, the mining-model catalogue and runs.

Works on the local store as the default tenant (like the other admin commands), through
the same :class:`AnalyticsService` the API uses. ``run`` shows the job's progress live.
``query`` runs in the SQL sandbox like the API does; ``sources`` registers the databases
SQL imports may read (the platform operator's job: whoever runs the CLI owns the store).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from zhinao.cli.common import cli_principal, console, handle_errors, platform

app = typer.Typer(no_args_is_help=True)

WS = typer.Option("demo", "--workspace", "-w", help="Workspace name / 工作区")


def _tenant(p: Any) -> int:
    return cli_principal(p).tenant_id


def _ensure_ws(p: Any, ws: str) -> None:
    if ws == "demo":
        p.analytics.ensure_demo(_tenant(p))


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


@app.command("workspaces")
@handle_errors
def workspaces() -> None:
    """List workspaces. 工作区列表。"""
    with platform() as p:
        t = Table("name", "description", "created")
        for w in p.analytics.workspaces.list(_tenant(p)):
            t.add_row(w["name"], w["description"], w["created_at"] or "")
        console.print(t)


@app.command("create")
@handle_errors
def create(name: str, description: str = typer.Option("", help="What the workspace is for")) -> None:
    """Create a workspace (a DuckDB file). 新建工作区。"""
    with platform() as p:
        p.analytics.workspaces.create(_tenant(p), name, description)
        console.print(f"created workspace [bold]{name}[/bold]")


@app.command("demo")
@handle_errors
def demo() -> None:
    """Create the demo workspace with the shipped real data. 导入示例数据。"""
    with platform() as p:
        w = p.analytics.ensure_demo(_tenant(p))
        tables = ", ".join(f"{d['name']} ({d['rows']} rows)" for d in w["datasets"])
        console.print(f"workspace demo: {tables}")


@app.command("import")
@handle_errors
def import_file(path: Path, workspace: str = WS, name: str = typer.Option(None, help="Table name (default: file name)"),
                format: str = typer.Option(None, "--format", help="csv | parquet | excel | json"),  # noqa: A002
                encoding: str = typer.Option(None, help="Force an encoding (default: detect UTF-8 / GB18030)"),
                sheet: str = typer.Option(None, help="Excel sheet name or index"),
                replace: bool = typer.Option(False, help="Replace an existing table"),
                description: str = typer.Option("", help="Dataset description")) -> None:
    """Import a CSV/Parquet/Excel/JSON file. 导入文件。"""
    with platform() as p:
        _ensure_ws(p, workspace)
        sheet_arg = int(sheet) if sheet and sheet.isdigit() else sheet
        ds = p.analytics.workspaces.import_path(_tenant(p), workspace, path, name=name, fmt=format, encoding=encoding,
                                                sheet=sheet_arg, replace=replace, description=description)
        d = ds["source_detail"]
        console.print(f"imported [bold]{ds['name']}[/bold]: {ds['rows']} rows x {len(ds['profile']['columns'])} columns"
                      + (f", encoding {d['encoding']}" if d.get("encoding") else ""))
        for w in ds["profile"]["warnings"]:
            console.print(f"  [yellow]warning[/yellow] {w}")


@app.command("import-sql")
@handle_errors
def import_sql(source: str = typer.Argument(..., help="Data source name (see `zhinao data sources list`)"),
               query: str = typer.Argument(..., help="One read-only SELECT in the source's SQL dialect"),
               name: str = typer.Option(..., help="Table name"), workspace: str = WS,
               replace: bool = typer.Option(False)) -> None:
    """Pull a SELECT from an operator-registered data source. 从数据源导入。"""
    with platform() as p:
        _ensure_ws(p, workspace)
        ds = p.analytics.workspaces.import_sql(_tenant(p), workspace, source, query, name, replace=replace)
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
                description: str = typer.Option("", help="What the source holds"),
                replace: bool = typer.Option(False, help="Update an existing source")) -> None:
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
    with platform() as p:
        src = p.analytics.sources.register(name, url, tenants=["*"] if all_tenants else list(tenant),
                                           description=description, replace=replace, actor="cli")
        console.print(f"data source [bold]{src['name']}[/bold] ({src['url']}) granted to "
                      f"{', '.join(src['tenants']) or 'no tenant yet'}")


@sources.command("list")
@handle_errors
def sources_list() -> None:
    """Registered data sources (passwords masked). 数据源列表。"""
    with platform() as p:
        t = Table("name", "url", "tenants", "description")
        for s in p.analytics.sources.list_all():
            t.add_row(s["name"], s["url"], ", ".join(s["tenants"]) or "-", s["description"])
        console.print(t)


@sources.command("remove")
@handle_errors
def sources_remove(name: str) -> None:
    """Remove a data source (imported tables stay). 删除数据源。"""
    with platform() as p:
        p.analytics.sources.remove(name)
        console.print(f"removed data source [bold]{name}[/bold]")


@app.command("list")
@handle_errors
def list_datasets(workspace: str = WS) -> None:
    """Datasets of a workspace. 数据集列表。"""
    with platform() as p:
        _ensure_ws(p, workspace)
        t = Table("name", "source", "rows", "columns", "description")
        for d in p.analytics.workspaces.datasets(_tenant(p), workspace):
            t.add_row(d["name"], d["source"], str(d["rows"]), str(d["columns"]), d["description"][:60])
        console.print(t)


@app.command("profile")
@handle_errors
def profile(name: str, workspace: str = WS) -> None:
    """Profile of a dataset: types, nulls, distributions. 数据画像。"""
    with platform() as p:
        _ensure_ws(p, workspace)
        ds = p.analytics.workspaces.dataset(_tenant(p), workspace, name)
        desc = ds["column_descriptions"]
        t = Table("column", "kind", "nulls", "distinct", "summary", "description", title=f"{name}: {ds['rows']} rows")
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
            warn = (" [yellow]" + ",".join(c["warnings"]) + "[/yellow]") if c["warnings"] else ""
            t.add_row(c["name"], c["kind"] + warn, f"{c['null_rate']:.1%}", str(c["distinct"]), summary[:60],
                      desc.get(c["name"], "")[:50])
        console.print(t)


@app.command("describe")
@handle_errors
def describe(name: str, column: str = typer.Argument(None), text: str = typer.Argument(None), workspace: str = WS,
             dataset_description: str = typer.Option(None, "--dataset", help="Set the dataset's description")) -> None:
    """Describe a column (or the dataset) for people and the agent. 字段说明。"""
    with platform() as p:
        _ensure_ws(p, workspace)
        cols = {column: text or ""} if column else {}
        ds = p.analytics.workspaces.describe(_tenant(p), workspace, name, cols, dataset_description)
        console.print(json.dumps(ds["column_descriptions"], ensure_ascii=False, indent=1))


@app.command("glossary")
@handle_errors
def glossary(workspace: str = WS, set_term: str = typer.Option(None, "--set", help="Term to add or change"),
             zh: str = typer.Option("", help="Chinese definition"), en: str = typer.Option("", help="English definition"),
             term_en: str = typer.Option("", help="English name"), formula: str = typer.Option("", help="How to compute it"),
             delete: str = typer.Option(None, help="Term to delete")) -> None:
    """Show or edit the business glossary (ARPU, DOU, MOU, 离网率 ...). 业务术语。"""
    with platform() as p:
        _ensure_ws(p, workspace)
        tid = _tenant(p)
        if set_term:
            p.analytics.workspaces.set_term(tid, workspace, set_term, term_en=term_en, definition_zh=zh,
                                            definition_en=en, formula=formula)
        if delete:
            p.analytics.workspaces.delete_term(tid, workspace, delete)
        t = Table("term", "English", "definition", "formula")
        for g in p.analytics.workspaces.glossary(tid, workspace):
            t.add_row(g["term"], g["term_en"], g["definition_zh"] or g["definition_en"], g["formula"])
        console.print(t)


@app.command("query")
@handle_errors
def query(sql: str, workspace: str = WS, limit: int = typer.Option(50)) -> None:
    """Run a read-only SELECT on a workspace (in the SQL sandbox). 查询。"""
    with platform() as p:
        _ensure_ws(p, workspace)
        res = p.analytics.workspaces.workspace(_tenant(p), workspace).run_sql(sql, limit)
        t = Table(*[str(c) for c in res.columns])
        for row in res.rows():
            t.add_row(*[_fmt(v) for v in row])
        console.print(t)
        if res.truncated:
            console.print(f"[yellow]first {res.row_count} rows shown[/yellow]; the query has more (raise --limit)")


@app.command("catalog")
@handle_errors
def catalog(theme: str = typer.Option(None, help="Filter by theme")) -> None:
    """The mining-model catalogue. 挖掘模型目录。"""
    with platform() as p:
        t = Table("key", "名称", "algorithm", "theme", "metric", "demo data", "scores", "spark")
        for m in p.analytics.catalogue(theme):
            t.add_row(m["key"], m["name_zh"], m["algorithm"], m["theme"], m["primary_metric"], m["dataset"],
                      "yes" if m["scores"] else "", "yes" if m["spark"] else "")
        console.print(t)


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
        dataset: str = typer.Option(None, help="Workspace table (default: the model's demo data)"),
        param: list[str] = typer.Option([], "--param", "-p", help="Model parameter name=value (repeatable)"),
        score_table: str = typer.Option(None, help="Also score the input into this table"),
        engine: str = typer.Option("local", help="local (DuckDB + scikit-learn) or spark (MLlib in local[*])")) -> None:
    """Train, evaluate against the baseline, explain and save a catalogue model. 运行模型。"""
    with platform() as p:
        tid = _tenant(p)
        if workspace:
            _ensure_ws(p, workspace)
        r = p.analytics.start_run(tid, key, workspace=workspace, dataset=dataset, params=_parse_params(param),
                                  score_table=score_table, engine=engine)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(f"{key} v{r['version']}", total=1.0)
            while True:
                r = p.analytics.runs.get(tid, r["id"], detail=False)
                bar.update(task, completed=r.get("progress", 0.0),
                           description=f"{key} v{r['version']} {r.get('message', '') or r['status']}")
                if r["status"] in ("succeeded", "failed"):
                    break
                time.sleep(0.3)
        r = p.analytics.runs.get(tid, r["id"])
        if r["status"] != "succeeded":
            console.print(f"[red]run {r['id']} failed:[/red] {r['error']}")
            raise typer.Exit(1)
        t = Table("metric", "model", r["baseline_name"] or "baseline",
                  title=f"run {r['id']}: {key} v{r['version']} (engine {r['engine']})")
        for k, v in r["metrics"].items():
            t.add_row(("* " if k == r["primary_metric"] else "") + k, _fmt(v), _fmt((r["baseline"] or {}).get(k, "")))
        console.print(t)
        verdict = {True: "[green]beats the baseline[/green]", False: "[red]does not beat the baseline[/red]",
                   None: "no baseline applies"}[r["beats_baseline"]]
        console.print(f"{verdict} on {r['primary_metric']}")
        for note in (r["explanation"] or {}).get("notes", []):
            console.print(f"  note: {note}")
        folder = p.analytics.runs.artifact_dir(tid, r["id"])
        console.print(f"model ({p.analytics.runs.model_file(tid, r['id']).name}), evaluation.json and charts ({', '.join(r['charts'])}) in {folder}")
        if r["score_table"]:
            console.print(f"scores written to table [bold]{r['score_table']}[/bold] in workspace {workspace}")


@app.command("runs")
@handle_errors
def runs(model: str = typer.Option(None, help="Only this catalogue key")) -> None:
    """Past runs with their primary metric. 运行记录。"""
    with platform() as p:
        t = Table("id", "model", "version", "engine", "status", "dataset", "metric", "model", "baseline")
        for r in p.analytics.runs.list(_tenant(p), model):
            pm = r["primary_metric"]
            t.add_row(str(r["id"]), r["model_key"], str(r["version"]), r["engine"], r["status"], r["dataset"], pm or "",
                      _fmt((r["metrics"] or {}).get(pm, "")), _fmt((r["baseline"] or {}).get(pm, "")))
        console.print(t)


@app.command("score")
@handle_errors
def score(run_id: int, dataset: str, workspace: str = WS, output: str = typer.Option(None, help="Output table"),
          csv: Path = typer.Option(None, help="Also write the scored table to this CSV file")) -> None:
    """Score a workspace table with a saved model version. 模型评分。"""
    with platform() as p:
        tid = _tenant(p)
        _ensure_ws(p, workspace)
        ds = p.analytics.score(tid, run_id, workspace, dataset, output)
        console.print(f"scored {ds['rows']} rows into table [bold]{ds['name']}[/bold]")
        if csv:
            csv.write_bytes(p.analytics.workspaces.workspace(tid, workspace).export_csv(ds["name"]))
            console.print(f"wrote {csv}")


@app.command("export")
@handle_errors
def export(name: str, out: Path, workspace: str = WS) -> None:
    """Export a table as CSV (UTF-8 with BOM, opens in Excel). 导出 CSV。"""
    with platform() as p:
        tid = _tenant(p)
        p.analytics.workspaces.dataset(tid, workspace, name)
        out.write_bytes(p.analytics.workspaces.workspace(tid, workspace).export_csv(name))
        console.print(f"wrote {out}")
