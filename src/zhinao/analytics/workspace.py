"""Per-tenant analytics workspaces: one DuckDB file each, plus metadata that explains the data.

Layout: ``<home>/analytics/<tenant_id>/<workspace>.duckdb`` holds the tables; the metadata
store holds, per table, where it came from, its profile and column descriptions, and per
workspace a business glossary seeded from :data:`glossary.DEFAULT_GLOSSARY`. A DuckDB file
allows one writer process, so connections are opened per operation (and serialised per
file within the process) rather than held: the CLI can work while the server idles.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from zhinao.analytics import datasets as demo_data
from zhinao.analytics import importers
from zhinao.analytics.sandbox import QueryResult, SqlLimits
from zhinao.analytics.glossary import DEFAULT_GLOSSARY, DEMO_COLUMNS
from zhinao.analytics.models import AnalyticsDataset, AnalyticsWorkspace, GlossaryTerm
from zhinao.analytics.profile import profile_frame
from zhinao.errors import Conflict, InvalidRequest, NotFound
from zhinao.safety import ArchiveLimits, ParseLimits
from zhinao.store.db import Database, utcnow

DEFAULT_IMPORT_LIMIT = 512 * 1024 * 1024  #: bytes; Settings.analytics_max_import_bytes overrides
_NAME = re.compile(r"^[^\W\d]\w{0,62}$", re.UNICODE)
_WS_NAME = re.compile(r"^[\w][\w\-]{0,63}$", re.UNICODE)
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def check_table_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(f"invalid table name {name!r}: use letters, digits and _ (not starting with a digit), "
                             "at most 63 characters", param="name")
    return name


def check_workspace_name(name: str) -> str:
    if not isinstance(name, str) or not _WS_NAME.match(name):
        raise InvalidRequest(f"invalid workspace name {name!r}: use letters, digits, _ and -, at most 64 characters",
                             param="name")
    return name


def table_name_from(filename: str) -> str:
    """A valid table name derived from a file name (``话单 2024.csv`` -> ``话单_2024``)."""
    stem = re.sub(r"\W+", "_", Path(filename).stem, flags=re.UNICODE).strip("_") or "data"
    if stem[0].isdigit():
        stem = "t_" + stem
    return stem[:63]


def q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


class Workspace:
    """The DuckDB file of one workspace."""

    def __init__(self, path: str | Path, sql_limits: SqlLimits | None = None):
        self.path = Path(path)
        self.sql_limits = sql_limits or SqlLimits()

    def _lock(self) -> threading.RLock:
        with _LOCKS_GUARD:
            return _LOCKS.setdefault(str(self.path), threading.RLock())

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A read-write connection for this module's own statements (never user SQL)."""
        import duckdb

        with self._lock():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(self.path))
            try:
                yield con
            finally:
                con.close()

    def write_table(self, name: str, df: pd.DataFrame, replace: bool = False) -> None:
        check_table_name(name)
        with self.connect() as con:
            if not replace and name in self._tables(con):
                raise Conflict(f"table {name!r} already exists in this workspace", param="name")
            con.register("_zhinao_import", df)
            try:
                con.execute(f"CREATE OR REPLACE TABLE {q(name)} AS SELECT * FROM _zhinao_import")
            finally:
                con.unregister("_zhinao_import")

    @staticmethod
    def _tables(con) -> list[str]:
        return [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = 'main' ORDER BY table_name").fetchall()]

    def tables(self) -> list[str]:
        with self.connect() as con:
            return self._tables(con)

    def read_table(self, name: str, limit: int | None = None) -> pd.DataFrame:
        with self.connect() as con:
            if name not in self._tables(con):
                raise NotFound(f"table {name!r} not found in this workspace")
            sql = f"SELECT * FROM {q(name)}" + (f" LIMIT {int(limit)}" if limit is not None else "")
            return con.execute(sql).df()

    def drop_table(self, name: str) -> None:
        with self.connect() as con:
            con.execute(f"DROP TABLE IF EXISTS {q(name)}")

    def schema(self, name: str) -> list[tuple[str, str]]:
        with self.connect() as con:
            rows = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_name = ? ORDER BY ordinal_position", [name]).fetchall()
        if not rows:
            raise NotFound(f"table {name!r} not found in this workspace")
        return [(r[0], r[1]) for r in rows]

    def run_sql(self, sql: str, max_rows: int | None = None, **limits: Any) -> QueryResult:
        """Run user or model SQL in the sandbox: one read-only SELECT over this workspace's
        tables, at most ``max_rows`` rows (never more than the configured cap).

        Raises:
            SqlRejected, SqlFailed, SqlLimitExceeded: see :mod:`zhinao.analytics.sandbox`.
        """
        cap = self.sql_limits.max_rows
        lim = self.sql_limits.but(max_rows=min(int(max_rows), cap) if max_rows else None, **limits)
        with self._lock():  # no writer of this process has the file open meanwhile
            return lim.run(self.path, sql)

    def query(self, sql: str, limit: int = 1000) -> pd.DataFrame:
        """:meth:`run_sql` as a DataFrame of at most ``limit`` rows."""
        return self.run_sql(sql, limit).frame()

    def export_csv(self, name: str) -> bytes:
        return self.read_table(name).to_csv(index=False).encode("utf-8-sig")  # BOM: Excel opens Chinese correctly


class WorkspaceManager:
    """Workspaces, datasets, column descriptions and glossaries of every tenant."""

    def __init__(self, db: Database, home: Path, import_limit: int = DEFAULT_IMPORT_LIMIT,
                 sql_limits: SqlLimits | None = None, sources: Any = None):
        self.db = db
        self.root = Path(home) / "analytics"
        self.import_limit = import_limit
        self.sql_limits = sql_limits or SqlLimits()
        #: operator-registered data sources (a DataSourceRegistry); SQL imports read only from these
        self.sources = sources
        #: zip-bomb and parser-worker limits for file imports (AnalyticsService sets them from settings)
        self.archive_limits: ArchiveLimits | None = None
        self.parse_limits: ParseLimits | None = None

    # -- workspaces -----------------------------------------------------------------------
    def create(self, tenant_id: int, name: str, description: str = "") -> dict[str, Any]:
        check_workspace_name(name)
        path = self.root / str(int(tenant_id)) / f"{name}.duckdb"
        with self.db.session() as s:
            if s.scalar(select(AnalyticsWorkspace).where(AnalyticsWorkspace.tenant_id == tenant_id,
                                                         AnalyticsWorkspace.name == name)):
                raise Conflict(f"workspace {name!r} already exists", param="name")
            ws = AnalyticsWorkspace(tenant_id=tenant_id, name=name, description=description, path=str(path))
            s.add(ws)
            s.flush()
            for term, en, zh_def, en_def, formula in DEFAULT_GLOSSARY:
                s.add(GlossaryTerm(workspace_id=ws.id, term=term, term_en=en, definition_zh=zh_def,
                                   definition_en=en_def, formula=formula))
            out = self._ws_dict(ws)
        Workspace(path).tables()  # creates the file
        return out

    def ensure(self, tenant_id: int, name: str, description: str = "") -> dict[str, Any]:
        try:
            return self.get(tenant_id, name)
        except NotFound:
            return self.create(tenant_id, name, description)

    @staticmethod
    def _ws_dict(ws: AnalyticsWorkspace) -> dict[str, Any]:
        return {"id": ws.id, "name": ws.name, "description": ws.description, "tenant_id": ws.tenant_id,
                "created_at": ws.created_at.isoformat() if ws.created_at else None}

    def _ws(self, s, tenant_id: int, name: str) -> AnalyticsWorkspace:
        ws = s.scalar(select(AnalyticsWorkspace).where(AnalyticsWorkspace.tenant_id == tenant_id,
                                                       AnalyticsWorkspace.name == name))
        if ws is None:
            raise NotFound(f"workspace {name!r} not found")
        return ws

    def get(self, tenant_id: int, name: str) -> dict[str, Any]:
        with self.db.session() as s:
            ws = self._ws(s, tenant_id, name)
            out = self._ws_dict(ws)
            out["datasets"] = [self._ds_summary(d) for d in s.scalars(
                select(AnalyticsDataset).where(AnalyticsDataset.workspace_id == ws.id).order_by(AnalyticsDataset.name))]
            return out

    def list(self, tenant_id: int) -> list[dict[str, Any]]:
        with self.db.session() as s:
            return [self._ws_dict(w) for w in s.scalars(select(AnalyticsWorkspace).where(
                AnalyticsWorkspace.tenant_id == tenant_id).order_by(AnalyticsWorkspace.name))]

    def delete(self, tenant_id: int, name: str) -> None:
        with self.db.session() as s:
            ws = self._ws(s, tenant_id, name)
            path = Path(ws.path)
            for d in s.scalars(select(AnalyticsDataset).where(AnalyticsDataset.workspace_id == ws.id)):
                s.delete(d)
            for g in s.scalars(select(GlossaryTerm).where(GlossaryTerm.workspace_id == ws.id)):
                s.delete(g)
            s.delete(ws)
        for p in (path, path.with_suffix(".duckdb.wal")):
            p.unlink(missing_ok=True)

    def workspace(self, tenant_id: int, name: str) -> Workspace:
        with self.db.session() as s:
            return Workspace(self._ws(s, tenant_id, name).path, self.sql_limits)

    def workspace_id(self, tenant_id: int, name: str) -> int:
        with self.db.session() as s:
            return self._ws(s, tenant_id, name).id

    # -- datasets -------------------------------------------------------------------------
    def save_frame(self, tenant_id: int, workspace: str, name: str, df: pd.DataFrame, *, source: str,
                   detail: dict[str, Any] | None = None, replace: bool = False, description: str = "",
                   column_descriptions: dict[str, str] | None = None, size: int = 0) -> dict[str, Any]:
        """Store ``df`` as table ``name``, profile it and record it."""
        check_table_name(name)
        if df.shape[1] == 0:
            raise InvalidRequest("the data has no columns")
        detail = dict(detail or {})
        ws = self.workspace(tenant_id, workspace)
        with self.db.session() as s:
            wsid = self._ws(s, tenant_id, workspace).id
            existing = s.scalar(select(AnalyticsDataset).where(AnalyticsDataset.workspace_id == wsid,
                                                               AnalyticsDataset.name == name))
            if existing is not None and not replace:
                raise Conflict(f"dataset {name!r} already exists in workspace {workspace!r}; pass replace", param="name")
        ws.write_table(name, df, replace=True)
        prof = profile_frame(df, detail.get("conversions"))
        with self.db.session() as s:
            ds = s.scalar(select(AnalyticsDataset).where(AnalyticsDataset.workspace_id == wsid,
                                                         AnalyticsDataset.name == name))
            keep = {}
            if ds is None:
                ds = AnalyticsDataset(workspace_id=wsid, name=name)
                s.add(ds)
            else:
                keep = {k: v for k, v in (ds.column_descriptions or {}).items() if k in df.columns}
            keep.update({k: v for k, v in (column_descriptions or {}).items() if k in df.columns})
            ds.source, ds.source_detail, ds.rows, ds.bytes = source, detail, int(len(df)), int(size)
            from zhinao.analytics.personal import mark_profile  # pandas-only: personal columns, issue 12

            prof = mark_profile(prof, df, ds.profile)  # "personal": {column: kind}; manual edits kept
            ds.profile, ds.column_descriptions, ds.updated_at = prof, keep, utcnow()
            if description:
                ds.description = description
            s.flush()
            return self._ds_dict(ds)

    def import_bytes(self, tenant_id: int, workspace: str, raw: bytes, filename: str, *, name: str | None = None,
                     fmt: str | None = None, encoding: str | None = None, sheet: str | int | None = None,
                     types: dict[str, str] | None = None, replace: bool = False, description: str = "") -> dict[str, Any]:
        self.workspace(tenant_id, workspace)  # 404 before reading a large file
        imp = importers.read_bytes(raw, filename, fmt, encoding=encoding, sheet=sheet, limit=self.import_limit,
                                   archive=self.archive_limits, parse=self.parse_limits)
        df = importers.apply_types(imp.frame, types or {})
        return self.save_frame(tenant_id, workspace, check_table_name(name or table_name_from(filename)), df,
                               source=imp.detail["format"], detail=imp.detail, replace=replace,
                               description=description, size=len(raw))

    def import_path(self, tenant_id: int, workspace: str, path: str | Path, **kw: Any) -> dict[str, Any]:
        p = Path(path)
        if not p.is_file():
            raise InvalidRequest(f"no such file: {str(p)!r}", param="path")
        importers.check_size(p.stat().st_size, self.import_limit, f"file {p.name!r}")
        return self.import_bytes(tenant_id, workspace, p.read_bytes(), p.name, **kw)

    def import_sql(self, tenant_id: int, workspace: str, source: str, query: str, name: str, *,
                   replace: bool = False, description: str = "", max_rows: int | None = None) -> dict[str, Any]:
        """Import one read-only SELECT from the operator-registered data source ``source``
        (granted to ``tenant_id``); there is no way to name a database URL here."""
        check_table_name(name)
        self.workspace(tenant_id, workspace)
        if self.sources is None:
            raise NotFound("no data sources are configured on this platform; ask the platform operator")
        imp = self.sources.read(tenant_id, source, query, max_rows=max_rows)
        return self.save_frame(tenant_id, workspace, name, imp.frame, source="sql", detail=imp.detail,
                               replace=replace, description=description)

    def import_demo(self, tenant_id: int, workspace: str, key: str, name: str | None = None,
                    replace: bool = False) -> dict[str, Any]:
        df = demo_data.tabular(key)
        meta = demo_data.DATASETS[key]
        return self.save_frame(tenant_id, workspace, name or key, df, source="demo",
                               detail={"demo": key, "licence": meta.licence}, replace=replace,
                               description=f"{meta.description_zh} / {meta.description_en}. 许可 Licence: {meta.licence}",
                               column_descriptions=DEMO_COLUMNS.get(key))

    @staticmethod
    def _ds_summary(d: AnalyticsDataset) -> dict[str, Any]:
        return {"name": d.name, "source": d.source, "rows": d.rows,
                "columns": len((d.profile or {}).get("columns", [])), "description": d.description,
                "updated_at": d.updated_at.isoformat() if d.updated_at else None}

    @classmethod
    def _ds_dict(cls, d: AnalyticsDataset) -> dict[str, Any]:
        out = cls._ds_summary(d)
        out.update({"source_detail": d.source_detail, "bytes": d.bytes, "profile": d.profile,
                    "column_descriptions": d.column_descriptions or {}})
        return out

    def _ds(self, s, tenant_id: int, workspace: str, name: str) -> AnalyticsDataset:
        wsid = self._ws(s, tenant_id, workspace).id
        ds = s.scalar(select(AnalyticsDataset).where(AnalyticsDataset.workspace_id == wsid,
                                                     AnalyticsDataset.name == name))
        if ds is None:
            raise NotFound(f"dataset {name!r} not found in workspace {workspace!r}")
        return ds

    def dataset(self, tenant_id: int, workspace: str, name: str) -> dict[str, Any]:
        with self.db.session() as s:
            return self._ds_dict(self._ds(s, tenant_id, workspace, name))

    def datasets(self, tenant_id: int, workspace: str) -> list[dict[str, Any]]:
        return self.get(tenant_id, workspace)["datasets"]

    def frame(self, tenant_id: int, workspace: str, name: str, limit: int | None = None) -> pd.DataFrame:
        self.dataset(tenant_id, workspace, name)
        return self.workspace(tenant_id, workspace).read_table(name, limit)

    def delete_dataset(self, tenant_id: int, workspace: str, name: str) -> None:
        with self.db.session() as s:
            ds = self._ds(s, tenant_id, workspace, name)
            s.delete(ds)
        self.workspace(tenant_id, workspace).drop_table(name)

    def describe(self, tenant_id: int, workspace: str, name: str, columns: dict[str, str] | None = None,
                 description: str | None = None) -> dict[str, Any]:
        """Set column descriptions (an empty string removes one) and/or the dataset description."""
        with self.db.session() as s:
            ds = self._ds(s, tenant_id, workspace, name)
            known = {c["name"] for c in (ds.profile or {}).get("columns", [])}
            cur = dict(ds.column_descriptions or {})
            for col, text in (columns or {}).items():
                if col not in known:
                    raise InvalidRequest(f"dataset {name!r} has no column {col!r}", param=col)
                if text is None or not str(text).strip():
                    cur.pop(col, None)
                else:
                    cur[col] = str(text).strip()
            ds.column_descriptions = cur
            if description is not None:
                ds.description = description
            ds.updated_at = utcnow()
            s.flush()
            return self._ds_dict(ds)

    # -- glossary -------------------------------------------------------------------------
    @staticmethod
    def _term_dict(g: GlossaryTerm) -> dict[str, Any]:
        return {"term": g.term, "term_en": g.term_en, "definition_zh": g.definition_zh,
                "definition_en": g.definition_en, "formula": g.formula}

    def glossary(self, tenant_id: int, workspace: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            wsid = self._ws(s, tenant_id, workspace).id
            return [self._term_dict(g) for g in s.scalars(
                select(GlossaryTerm).where(GlossaryTerm.workspace_id == wsid).order_by(GlossaryTerm.id))]

    def set_term(self, tenant_id: int, workspace: str, term: str, *, term_en: str = "", definition_zh: str = "",
                 definition_en: str = "", formula: str = "") -> dict[str, Any]:
        term = (term or "").strip()
        if not term or len(term) > 100:
            raise InvalidRequest("a glossary term needs 1-100 characters", param="term")
        if not (definition_zh.strip() or definition_en.strip()):
            raise InvalidRequest(f"glossary term {term!r} needs a definition (zh or en)", param="definition_zh")
        with self.db.session() as s:
            wsid = self._ws(s, tenant_id, workspace).id
            g = s.scalar(select(GlossaryTerm).where(GlossaryTerm.workspace_id == wsid, GlossaryTerm.term == term))
            if g is None:
                g = GlossaryTerm(workspace_id=wsid, term=term)
                s.add(g)
            g.term_en, g.definition_zh, g.definition_en, g.formula = term_en, definition_zh, definition_en, formula
            g.updated_at = utcnow()
            s.flush()
            return self._term_dict(g)

    def delete_term(self, tenant_id: int, workspace: str, term: str) -> None:
        with self.db.session() as s:
            wsid = self._ws(s, tenant_id, workspace).id
            g = s.scalar(select(GlossaryTerm).where(GlossaryTerm.workspace_id == wsid, GlossaryTerm.term == term))
            if g is None:
                raise NotFound(f"glossary term {term!r} not found")
            s.delete(g)

    # -- for the agent --------------------------------------------------------------------
    def context(self, tenant_id: int, workspace: str) -> str:
        """Schema, column descriptions, warnings and glossary as compact text for an LLM prompt."""
        lines = [f"# Workspace {workspace} (DuckDB)"]
        with self.db.session() as s:
            wsid = self._ws(s, tenant_id, workspace).id
            dss = list(s.scalars(select(AnalyticsDataset).where(AnalyticsDataset.workspace_id == wsid)
                                 .order_by(AnalyticsDataset.name)))
            for d in dss:
                lines.append(f"\n## table {d.name} ({d.rows} rows){' — ' + d.description if d.description else ''}")
                desc = d.column_descriptions or {}
                for c in (d.profile or {}).get("columns", []):
                    extra = ""
                    if c.get("top_values") and c["kind"] == "text" and c["distinct"] <= 12:
                        extra = " values: " + ", ".join(str(v["value"]) for v in c["top_values"])
                    elif c.get("stats") and c["kind"] == "number":
                        extra = f" range {c['stats']['min']}..{c['stats']['max']}"
                    nulls = f" nulls {c['null_rate']:.0%}" if c["null_rate"] else ""
                    note = f" — {desc[c['name']]}" if c["name"] in desc else ""
                    lines.append(f"- {c['name']} {c['kind']}{nulls}{extra}{note}")
        terms = self.glossary(tenant_id, workspace)
        if terms:
            lines.append("\n## glossary 业务术语")
            for t in terms:
                f = f" [{t['formula']}]" if t["formula"] else ""
                lines.append(f"- {t['term']} ({t['term_en']}): {t['definition_zh'] or t['definition_en']}{f}")
        return "\n".join(lines)
