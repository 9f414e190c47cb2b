"""Capabilities as plug-ins: a third capability, defined here, joins the platform through the
same registry the entry points fill, and the core is not edited.

``memo`` is tiny but real: its own Alembic branch with one table (written to a temporary
folder), a service built from :class:`~zhinao.capability.Parts`, a router, a job handler, a
console page and a CLI sub-app, and a close hook. Everything runs on the real store, the
real app (in-process ASGI client) and the real Typer app.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from fastapi import APIRouter
from fastapi.responses import Response
from fastapi.testclient import TestClient
from pydantic import BaseModel
from typer.testing import CliRunner

from zhinao import capability as registry
from zhinao.capability import Capability, CliEntry, ConsolePageEntry, Parts
from zhinao.gateway.deps import PlatformDep, PrincipalDep
from zhinao.store.models import Job

ADMIN_KEY = "zk-admin-test-key-000000000000"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}

MIGRATION = '''"""memo: one table (a capability defined in a test)."""
import sqlalchemy as sa
from alembic import op

revision = "memo_0001"
down_revision = None
branch_labels = ("memo",)
depends_on = None


def upgrade():
    op.create_table("memo_notes", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("tenant_id", sa.Integer, nullable=False), sa.Column("text", sa.Text, nullable=False))


def downgrade():
    op.drop_table("memo_notes")
'''

PAGE_JS = "window.Zhinao.registerPage({id: 'memo', title: 'Memo', render: () => 'memo'});\n"

BUILT: list["MemoService"] = []
CLOSED: list["MemoService"] = []
PARTS: list[Parts] = []
JOB_SERVICES: list[object] = []


class MemoService:
    """Notes per tenant: knows its parts (store, jobs), not the platform nor HTTP."""

    def __init__(self, db, jobs):
        self.db, self.jobs, self.closed = db, jobs, False

    def add(self, tenant_id: int, text: str) -> dict:
        with self.db.session() as s:
            s.execute(sa.text("INSERT INTO memo_notes (tenant_id, text) VALUES (:t, :x)"), {"t": tenant_id, "x": text})
        return {"tenant_id": tenant_id, "text": text, "count": self.count(tenant_id)}

    def count(self, tenant_id: int) -> int:
        with self.db.session() as s:
            return s.execute(sa.text("SELECT count(*) FROM memo_notes WHERE tenant_id = :t"), {"t": tenant_id}).scalar()

    def close(self) -> None:
        self.closed = True


def count_job(service: MemoService, ctx, params: dict) -> dict:
    JOB_SERVICES.append(service)
    ctx.progress(0.5, "counting")
    return {"count": service.count(int(params["tenant_id"]))}


class NoteIn(BaseModel):
    text: str


router = APIRouter(prefix="/api/memo", tags=["memo"])
page_router = APIRouter(include_in_schema=False)


@router.post("/notes", status_code=201)
def add_note(body: NoteIn, principal: PrincipalDep, platform: PlatformDep) -> dict:
    return platform.service("memo").add(principal.tenant_id, body.text)


@router.get("/notes/count")
def note_count(principal: PrincipalDep, platform: PlatformDep) -> dict:
    return {"count": platform.memo.count(principal.tenant_id)}  # the thin lookup works for any capability


@page_router.get("/ext/memo/page.js")
def page_script() -> Response:
    return Response(PAGE_JS, media_type="text/javascript")


cli = typer.Typer(no_args_is_help=True)


@cli.command("count")
def cli_count(tenant: int = 1) -> None:
    """Print the tenant's number of notes."""
    from zhinao.cli.common import platform

    with platform() as p:
        typer.echo(f"notes: {p.service('memo').count(tenant)}")


class MemoCapability(Capability):
    name = "memo"
    order = 50
    routers = (f"{__name__}:router", f"{__name__}:page_router")
    cli = (CliEntry("memo", f"{__name__}:cli", "Memos (a capability defined in a test)"),)
    console_pages = (ConsolePageEntry("memo", "/ext/memo/page.js"),)
    job_kind_prefixes = ("memo.",)

    def __init__(self, migrations: Path):
        self.migrations = migrations

    def build(self, parts: Parts) -> MemoService:
        PARTS.append(parts)
        svc = MemoService(parts.db, parts.jobs)
        BUILT.append(svc)
        return svc

    def job_handlers(self):
        return {"memo.count": count_job}

    def close(self, service: MemoService) -> None:
        CLOSED.append(service)
        service.close()


@pytest.fixture
def memo(tmp_path):
    folder = tmp_path / "memo_migrations"
    folder.mkdir()
    (folder / "memo_0001.py").write_text(MIGRATION, encoding="utf-8")
    for seen in (BUILT, CLOSED, PARTS, JOB_SERVICES):
        seen.clear()
    cap = registry.register(MemoCapability(folder))
    yield cap
    registry.unregister("memo")


def _platform(settings):
    from zhinao.platform import Platform

    return Platform(settings)


def test_knowledge_and_analytics_are_entry_points_like_any_other():
    declared = {ep.name: ep.value for ep in metadata.entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert declared["knowledge"] == "zhinao.knowledge.capability:capability"
    assert declared["analytics"] == "zhinao.analytics.capability:capability"
    caps = registry.capabilities()
    assert list(caps)[:2] == ["knowledge", "analytics"]  # their order in menus and command lists
    for cap in caps.values():
        assert cap.migrations is None or cap.migrations.is_dir(), cap.name
        for target in cap.routers:  # every named router really exists
            assert isinstance(registry.resolve(target), APIRouter), target


def test_every_capability_is_in_the_architecture_doc():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc.split("## Capabilities as plug-ins", 1)[-1]
    assert "How to add a capability" in section
    for name, cap in registry.capabilities().items():
        path = type(cap).__module__.removeprefix("zhinao.").replace(".", "/") + ".py"  # knowledge/capability.py
        assert f"`{path}`" in section, f"document capability {name!r} ({path}) in docs/architecture.md"


def test_job_handlers_are_registered_by_the_platform_not_by_imports(settings):
    """Importing a capability's modules registers nothing; the platform's runner knows its kinds
    without building a service (the process-wide ``@job_handler`` table is for tests and scripts)."""
    import importlib

    from zhinao.store import jobs as store_jobs

    for mod in ("zhinao.knowledge.service", "zhinao.knowledge.ingestion", "zhinao.analytics.service",
                "zhinao.analytics.runs", "zhinao.gateway.api.kb", "zhinao.gateway.api.analytics"):
        importlib.import_module(mod)
    leaked = sorted(k for k in store_jobs._HANDLERS if k.startswith(("kb.", "analytics.")))
    assert not leaked, f"registered as an import side effect: {leaked}"
    p = _platform(settings)
    try:
        assert p.jobs.handler("kb.ingest") is not None and p.jobs.handler("analytics.run") is not None
        assert p.services == {}
        assert store_jobs.JobRunner(p.db).handler("analytics.run") is None  # another runner: not its kinds
    finally:
        asyncio.run(p.aclose())


def test_a_capability_is_migrated_and_built_lazily_from_parts(settings, memo):
    from zhinao.platform import Platform

    p = _platform(settings)
    try:
        tables = sa.inspect(p.db.engine).get_table_names()
        assert "memo_notes" in tables and "kb_collections" in tables and "analytics_runs" in tables
        with p.db.engine.connect() as c:
            assert "memo_0001" in {r[0] for r in c.execute(sa.text("SELECT version_num FROM alembic_version"))}
        assert BUILT == [] and p.services == {}  # nothing built by starting (a CLI listing tenants loads nothing)
        svc = p.service("memo")
        assert p.service("memo") is svc is p.memo and BUILT == [svc]  # once
        parts = PARTS[0]
        assert parts.db is p.db and parts.jobs is p.jobs and parts.settings is p.settings
        assert not any(isinstance(v, Platform) for v in vars(parts).values()), "a service gets parts, not the platform"
        with pytest.raises(AttributeError):
            p.no_such_capability  # noqa: B018
    finally:
        asyncio.run(p.aclose())
    assert CLOSED == [svc] and svc.closed


def test_an_unregistered_capability_is_gone_without_touching_the_core(settings, memo, tmp_path):
    registry.unregister("memo")
    p = _platform(settings)
    try:
        assert "memo" not in p.capabilities and "memo_notes" not in sa.inspect(p.db.engine).get_table_names()
        with pytest.raises(AttributeError):
            p.memo  # noqa: B018
    finally:
        asyncio.run(p.aclose())


def test_its_router_and_console_page_are_mounted_and_its_close_hook_runs(settings, memo):
    from zhinao.gateway.app import create_app

    p = _platform(settings)
    with TestClient(create_app(p, warm_default=False)) as client:
        assert client.post("/api/memo/notes", json={"text": "hi"}).status_code == 401  # the gateway's auth applies
        r = client.post("/api/memo/notes", json={"text": "第一条 / first"}, headers=AUTH)
        assert r.status_code == 201, r.text
        assert r.json()["count"] == 1
        assert client.get("/api/memo/notes/count", headers=AUTH).json() == {"count": 1}
        assert client.post("/api/memo/notes", json={}, headers=AUTH).status_code == 400  # its errors: the gateway's
        listed = client.get("/api/console/pages").json()
        ids = [pg["id"] for pg in listed]
        assert {"id": "memo", "script": "/ext/memo/page.js"} in listed
        assert ids.index("chat") < ids.index("knowledge") < ids.index("analytics") < ids.index("memo") < ids.index("admin")
        js = client.get("/ext/memo/page.js")
        assert js.status_code == 200 and "registerPage" in js.text
        assert "/api/memo/notes" in client.get("/openapi.json").json()["paths"]
        assert BUILT and not CLOSED
    assert CLOSED == BUILT and BUILT[0].closed  # the app's shutdown ran the capability's close hook


def test_its_pending_job_is_resumed_after_a_restart(settings, memo):
    p = _platform(settings)
    try:
        p.bootstrap()
        with p.db.session() as s:  # what a process killed mid-job leaves: a note, and a job marked running
            s.execute(sa.text("INSERT INTO memo_notes (tenant_id, text) VALUES (1, 'x'), (1, 'y')"))
            s.add(Job(kind="memo.count", params={"tenant_id": 1}, tenant_id=1, status="running"))
        assert p.services == {}
        ids = p.resume_jobs()
        assert list(p.services) == ["memo"], "resume builds the capability whose job is pending, and only it"
        assert len(ids) == 1
        job = p.jobs.wait(ids[0], timeout=60)
        assert job["status"] == "succeeded", job
        assert job["result"] == {"count": 2}
        assert JOB_SERVICES == [p.service("memo")]  # the handler got the service, not the platform
        # and a new one, submitted by the service through the platform's runner
        job_id = p.service("memo").jobs.submit("memo.count", {"tenant_id": 1}, tenant_id=1)
        assert p.jobs.wait(job_id, timeout=60)["result"] == {"count": 2}
    finally:
        p.jobs.shutdown()
        asyncio.run(p.aclose())


def test_its_cli_command_runs(settings, memo):
    from zhinao.cli import build_app

    p = _platform(settings)
    p.bootstrap()
    p.take_bootstrap_secrets()
    p.service("memo").add(1, "one")
    asyncio.run(p.aclose())
    r = CliRunner().invoke(build_app(), ["memo", "count"])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == "notes: 1"
    assert "memo" in CliRunner().invoke(build_app(), ["--help"]).output
    registry.unregister("memo")
    assert CliRunner().invoke(build_app(), ["memo", "count"]).exit_code != 0  # no such command any more


def test_the_built_in_capabilities_cli_entries_are_mounted():
    from zhinao.cli import build_app

    out = CliRunner().invoke(build_app(), ["models", "--help"]).output
    assert "run" in out  # analytics puts `models run` inside the core's group
    for name in ("kb", "data"):
        assert CliRunner().invoke(build_app(), [name, "--help"]).exit_code == 0, name


@pytest.mark.parametrize("bad", ["", "Memo", "memo notes", "memo/x"])
def test_a_capability_needs_a_slug_name(bad):
    cap = Capability()
    cap.name = bad
    with pytest.raises(ValueError, match="lowercase slug"):
        registry.register(cap)


def test_listing_tenants_loads_no_capability_engine(settings, tmp_path):
    """Lazy building: ``zhinao tenants list`` imports neither Milvus nor DuckDB nor pandas."""
    code = ("import sys\nfrom zhinao.cli import app\n"
            "try:\n    app(['tenants', 'list'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('pymilvus', 'milvus_lite', 'duckdb', 'pandas', 'sklearn') "
            "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "default" in out.stdout
    assert "LOADED []" in out.stdout, out.stdout
