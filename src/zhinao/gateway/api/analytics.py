"""/api/analytics (workspaces, datasets, glossary, catalogue, runs) and /api/datasources.

Thin HTTP over :class:`zhinao.analytics.service.AnalyticsService`; every call is scoped to
the caller's tenant. Handlers are plain ``def`` so DuckDB and model work run in the thread
pool, never on the event loop. Workspace SQL runs in :mod:`zhinao.analytics.sandbox`. A SQL
import names an operator-registered data source, never a URL: a URL could point at any
file or host the server can reach (the metadata database, other tenants' files).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from zhinao.analytics.importers import check_size
from zhinao.analytics.profile import _json
from zhinao.errors import InvalidRequest
from zhinao.gateway.deps import AdminDep, OperatorDep, PlatformDep, PrincipalDep
from zhinao.gateway.errors import scrub_record

router = APIRouter(prefix="/api/analytics", tags=["analytics"])
sources_router = APIRouter(prefix="/api/datasources", tags=["datasources"])


def _rows(df) -> dict[str, Any]:
    return {"columns": [str(c) for c in df.columns],
            "rows": [[_json(v) for v in row] for row in df.itertuples(index=False, name=None)]}


class WorkspaceIn(BaseModel):
    name: str = Field(..., description="letters, digits, _ and -")
    description: str = ""


class DescribeIn(BaseModel):
    description: str | None = None
    columns: dict[str, str] = Field(default_factory=dict, description="column -> description ('' removes)")


class TermIn(BaseModel):
    term_en: str = ""
    definition_zh: str = ""
    definition_en: str = ""
    formula: str = ""


class SqlImportIn(BaseModel):
    # extra fields are kept so that a request still sending ``url`` gets a message, not a silent ignore
    model_config = ConfigDict(extra="allow")

    source: str | None = Field(None, description="name of a data source the platform operator registered and "
                                                 "granted to your tenant (GET /api/datasources)")
    query: str = Field(..., description="one read-only SELECT, in the source's SQL dialect")
    name: str = Field(..., description="table to create in the workspace")
    replace: bool = False
    description: str = ""


class DataSourceIn(BaseModel):
    name: str = Field(..., description="letters, digits, _ and -; what tenants name in an import")
    url: str = Field(..., description="SQLAlchemy URL with credentials (kept server-side, never shown again); "
                                      "use a read-only database account")
    tenants: list[str] = Field(default_factory=list, description="tenant names granted; ['*'] = every tenant")
    description: str = ""
    replace: bool = Field(False, description="update an existing source of this name")


class DemoImportIn(BaseModel):
    key: str
    name: str | None = None
    replace: bool = False


class QueryIn(BaseModel):
    sql: str = Field(..., description="one read-only SELECT over the workspace's tables (DuckDB SQL)")
    limit: int = Field(200, ge=1, le=10_000, description="most rows returned (also capped by ZHINAO_SQL_MAX_ROWS)")


class RunIn(BaseModel):
    model: str = Field(..., description="catalogue key, e.g. churn_logistic")
    workspace: str | None = None
    dataset: str | None = Field(None, description="workspace table; default: the model's demo data")
    params: dict[str, Any] = Field(default_factory=dict)
    score_table: str | None = Field(None, description="also score the input into this workspace table")
    engine: str = Field("local", description="local (DuckDB + scikit-learn) or spark (MLlib, local[*])")
    preset: str | None = Field(None, description="application model of the entry (catalogue `presets`); "
                                                 "params override its values")


class BindIn(BaseModel):
    model: str = Field(..., description="catalogue key")
    workspace: str
    dataset: str = Field(..., description="workspace table")
    params: dict[str, Any] = Field(default_factory=dict, description="role bindings given so far (target, features …)")
    preset: str | None = None


class ScoreIn(BaseModel):
    workspace: str
    dataset: str
    output: str | None = None


# -- workspaces -----------------------------------------------------------------------------

@router.get("/workspaces")
def list_workspaces(principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.workspaces.list(principal.tenant_id)


@router.post("/workspaces", status_code=201)
def create_workspace(body: WorkspaceIn, principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.workspaces.create(principal.tenant_id, body.name, body.description)


@router.post("/demo")
def ensure_demo(principal: PrincipalDep, platform: PlatformDep):
    """Create (once) the ``demo`` workspace with the shipped real data."""
    return platform.analytics.ensure_demo(principal.tenant_id)


@router.get("/demo-datasets")
def demo_datasets(principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.demo_datasets()


@router.get("/workspaces/{ws}")
def get_workspace(ws: str, principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.workspaces.get(principal.tenant_id, ws)


@router.delete("/workspaces/{ws}")
def delete_workspace(ws: str, principal: PrincipalDep, platform: PlatformDep):
    platform.analytics.workspaces.delete(principal.tenant_id, ws)
    return {"ok": True}


@router.get("/workspaces/{ws}/context")
def workspace_context(ws: str, principal: PrincipalDep, platform: PlatformDep):
    """Schema, descriptions and glossary as the analyst agent reads them."""
    return {"context": platform.analytics.context(principal.tenant_id, ws)}


@router.post("/workspaces/{ws}/query")
def query(ws: str, body: QueryIn, principal: PrincipalDep, platform: PlatformDep):
    """One read-only SELECT in the SQL sandbox: columns, types, rows, ``truncated`` when capped."""
    return platform.analytics.workspaces.workspace(principal.tenant_id, ws).run_sql(body.sql, body.limit).as_dict()


# -- datasets -------------------------------------------------------------------------------

@router.post("/workspaces/{ws}/datasets", status_code=201)
def upload_dataset(ws: str, principal: PrincipalDep, platform: PlatformDep, file: UploadFile = File(...),
                   name: str | None = Form(None), format: str | None = Form(None),  # noqa: A002
                   encoding: str | None = Form(None), sheet: str | None = Form(None),
                   replace: bool = Form(False), description: str = Form("")):
    svc = platform.analytics
    limit = svc.import_limit
    chunks, size = [], 0
    while True:  # stop reading as soon as the limit is passed
        chunk = file.file.read(1 << 20)
        if not chunk:
            break
        size += len(chunk)
        check_size(size, limit, f"file {file.filename!r}")
        chunks.append(chunk)
    sheet_arg: str | int | None = int(sheet) if sheet and sheet.isdigit() else sheet
    return svc.workspaces.import_bytes(principal.tenant_id, ws, b"".join(chunks), file.filename or "upload.csv",
                                       name=name or None, fmt=format or None, encoding=encoding or None,
                                       sheet=sheet_arg, replace=replace, description=description)


@router.post("/workspaces/{ws}/datasets/sql", status_code=201)
def import_sql(ws: str, body: SqlImportIn, principal: AdminDep, platform: PlatformDep):
    """Import one SELECT from an operator-registered data source granted to the caller's tenant."""
    if "url" in (body.model_extra or {}):
        raise InvalidRequest("a SQL import cannot name a database URL; ask the platform operator to register a "
                             "data source (POST /api/datasources) and name it in 'source'", param="url",
                             code="url_not_accepted")
    if not body.source:
        raise InvalidRequest("name the data source to import from in 'source' (GET /api/datasources lists those "
                             "granted to your tenant)", param="source")
    return platform.analytics.workspaces.import_sql(principal.tenant_id, ws, body.source, body.query, body.name,
                                                    replace=body.replace, description=body.description)


@router.post("/workspaces/{ws}/datasets/demo", status_code=201)
def import_demo(ws: str, body: DemoImportIn, principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.workspaces.import_demo(principal.tenant_id, ws, body.key, body.name, body.replace)


@router.get("/workspaces/{ws}/datasets")
def list_datasets(ws: str, principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.workspaces.datasets(principal.tenant_id, ws)


@router.get("/workspaces/{ws}/datasets/{name}")
def get_dataset(ws: str, name: str, principal: PrincipalDep, platform: PlatformDep):
    """The dataset with its profile and column descriptions."""
    return platform.analytics.workspaces.dataset(principal.tenant_id, ws, name)


@router.get("/workspaces/{ws}/datasets/{name}/rows")
def dataset_rows(ws: str, name: str, principal: PrincipalDep, platform: PlatformDep, limit: int = 100):
    if not 1 <= limit <= 10_000:
        raise InvalidRequest("limit must be between 1 and 10000", param="limit")
    return _rows(platform.analytics.workspaces.frame(principal.tenant_id, ws, name, limit))


@router.get("/workspaces/{ws}/datasets/{name}/csv")
def dataset_csv(ws: str, name: str, principal: PrincipalDep, platform: PlatformDep):
    svc = platform.analytics.workspaces
    svc.dataset(principal.tenant_id, ws, name)
    data = svc.workspace(principal.tenant_id, ws).export_csv(name)
    return Response(data, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.patch("/workspaces/{ws}/datasets/{name}")
def describe_dataset(ws: str, name: str, body: DescribeIn, principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.workspaces.describe(principal.tenant_id, ws, name, body.columns, body.description)


@router.delete("/workspaces/{ws}/datasets/{name}")
def delete_dataset(ws: str, name: str, principal: PrincipalDep, platform: PlatformDep):
    platform.analytics.workspaces.delete_dataset(principal.tenant_id, ws, name)
    return {"ok": True}


# -- glossary -------------------------------------------------------------------------------

@router.get("/workspaces/{ws}/glossary")
def glossary(ws: str, principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.workspaces.glossary(principal.tenant_id, ws)


@router.put("/workspaces/{ws}/glossary/{term}")
def set_term(ws: str, term: str, body: TermIn, principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.workspaces.set_term(principal.tenant_id, ws, term, **body.model_dump())


@router.delete("/workspaces/{ws}/glossary/{term}")
def delete_term(ws: str, term: str, principal: PrincipalDep, platform: PlatformDep):
    platform.analytics.workspaces.delete_term(principal.tenant_id, ws, term)
    return {"ok": True}


# -- catalogue and runs -----------------------------------------------------------------------

@router.get("/catalogue")
def list_catalogue(principal: PrincipalDep, platform: PlatformDep, theme: str | None = None):
    return platform.analytics.catalogue(theme)


@router.get("/catalogue/{key}")
def get_model(key: str, principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.model_info(key)


@router.post("/runs", status_code=202)
def start_run(body: RunIn, principal: PrincipalDep, platform: PlatformDep):
    return platform.analytics.start_run(principal.tenant_id, body.model, workspace=body.workspace,
                                        dataset=body.dataset, params=body.params, score_table=body.score_table,
                                        engine=body.engine, preset=body.preset)


@router.post("/bind")
def preview_binding(body: BindIn, principal: PrincipalDep, platform: PlatformDep):
    """How a run would bind the model's column roles to this table (inferred defaults, kinds,
    columns left out), before it starts; ``ok: false`` with the reason when it would not."""
    return platform.analytics.runs.preview_binding(principal.tenant_id, body.model, body.workspace, body.dataset,
                                                   body.params, body.preset)


@router.get("/runs")
def list_runs(principal: PrincipalDep, platform: PlatformDep, model: str | None = None, limit: int = 50):
    return [scrub_record(r, platform) for r in platform.analytics.runs.list(principal.tenant_id, model,
                                                                          min(max(limit, 1), 500))]


@router.get("/runs/{run_id}")
def get_run(run_id: int, principal: PrincipalDep, platform: PlatformDep):
    return scrub_record(platform.analytics.runs.get(principal.tenant_id, run_id), platform)


@router.get("/runs/{run_id}/charts/{name}.png")
def run_chart(run_id: int, name: str, principal: PrincipalDep, platform: PlatformDep):
    return Response(platform.analytics.runs.chart(principal.tenant_id, run_id, name), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.get("/runs/{run_id}/plots")
def run_plots(run_id: int, principal: PrincipalDep, platform: PlatformDep):
    """Interactive chart data (specs in ``analytics/catalog/plots.py``) the console draws."""
    return platform.analytics.runs.plots(principal.tenant_id, run_id)


@router.get("/runs/{run_id}/score-tables")
def score_tables(run_id: int, workspace: str, principal: PrincipalDep, platform: PlatformDep):
    """Tables of ``workspace`` the run's model can score (they hold every column it was bound to)."""
    return platform.analytics.runs.fitting_tables(principal.tenant_id, run_id, workspace)


@router.get("/runs/{run_id}/model")
def download_model(run_id: int, principal: PrincipalDep, platform: PlatformDep):
    run = platform.analytics.runs.get(principal.tenant_id, run_id, detail=False)
    path = platform.analytics.runs.model_file(principal.tenant_id, run_id)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"{run['model_key']}-v{run['version']}{path.suffix}")


@router.get("/runs/{run_id}/evaluation")
def download_evaluation(run_id: int, principal: PrincipalDep, platform: PlatformDep):
    path = platform.analytics.runs.artifact_dir(principal.tenant_id, run_id) / "evaluation.json"
    return FileResponse(path, media_type="application/json", filename=f"run-{run_id}-evaluation.json")


@router.post("/runs/{run_id}/score", status_code=201)
def score(run_id: int, body: ScoreIn, principal: PrincipalDep, platform: PlatformDep):
    """Score a workspace table with the run's model into a new table (download it as CSV)."""
    return platform.analytics.score(principal.tenant_id, run_id, body.workspace, body.dataset, body.output)



# -- data sources (operator-registered databases for SQL imports) -----------------------------

@sources_router.get("")
def list_sources(principal: AdminDep, platform: PlatformDep):
    """The operator sees every source (URL with the password masked); a tenant admin sees only
    the names and descriptions of the sources granted to their tenant."""
    reg = platform.analytics.sources
    return reg.list_all() if principal.is_operator else reg.list_for_tenant(principal.tenant_id)


@sources_router.post("", status_code=201)
def register_source(body: DataSourceIn, principal: OperatorDep, platform: PlatformDep):
    return platform.analytics.sources.register(body.name, body.url, tenants=body.tenants,
                                               description=body.description, replace=body.replace,
                                               actor=principal.username or "")


@sources_router.delete("/{name}")
def remove_source(name: str, principal: OperatorDep, platform: PlatformDep):
    platform.analytics.sources.remove(name)
    return {"ok": True}


# the app mounts ``module.router``: one router carrying both prefixes
analytics_router = router
router = APIRouter()
router.include_router(analytics_router)
router.include_router(sources_router)
