"""Operator-registered data sources: the only databases a SQL import may read (issue 8, finding 5).

Importing from a raw URL let a tenant admin point the server at its own metadata database
(``sqlite:///<home>/zhinao.db``: every tenant's users and conversations) or at another
tenant's DuckDB file. Now the platform operator registers a *named* source — a SQLAlchemy
URL with its credentials, a description, and the tenants it is granted to (or all) — and a
tenant names the source in its import. The URL is kept server-side: tenant admins see only
the names and descriptions granted to them, the operator sees the URL with the password
masked, and no response or error message carries the credentials.

Register sources with a read-only database account: the import query is checked to be one
SELECT (sqlglot, in the source's dialect) and the session is made read-only on PostgreSQL
and SQLite, but the account's grants are what the database itself enforces.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from zhinao.analytics import importers
from zhinao.analytics.models import AnalyticsDataSource
from zhinao.errors import Conflict, InvalidRequest, NotFound
from zhinao.store.db import Database, utcnow

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
ALL = "*"  #: in ``tenants``: every tenant, present and future
DEFAULT_MAX_ROWS = 5_000_000


def check_source_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(f"invalid data source name {name!r}: letters, digits, _ and - (starting with a letter), "
                             "at most 64 characters", param="name")
    return name


def masked_url(url: str) -> str:
    """The URL as the operator may see it again: the password replaced by ``***``."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _check_url(url: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest("a data source needs a SQLAlchemy URL, e.g. postgresql+psycopg://reader:secret@db/crm",
                             param="url")
    try:
        u = make_url(url)
    except ArgumentError:
        raise InvalidRequest("not a SQLAlchemy database URL; use e.g. postgresql+psycopg://reader:secret@db/crm",
                             param="url") from None
    try:
        create_engine(u, poolclass=NullPool).dispose()  # the dialect and driver load; nothing connects
    except (NoSuchModuleError, ImportError) as e:
        raise InvalidRequest(f"no database driver installed for {u.drivername!r}: {e}", param="url") from None


class DataSourceRegistry:
    """Named sources in the metadata store, granted per tenant. No HTTP here."""

    def __init__(self, db: Database, *, timeout_s: float = 300.0, max_rows: int = DEFAULT_MAX_ROWS):
        self.db = db
        self.timeout_s = timeout_s
        self.max_rows = max_rows

    # -- the operator's side ------------------------------------------------------------------
    def _tenant_ids(self, s, tenants: list[str | int] | None) -> tuple[bool, list[int]]:
        from zhinao.store.models import Tenant

        if not tenants:
            return False, []
        if ALL in tenants:
            if len(tenants) > 1:
                raise InvalidRequest("tenants: use ['*'] alone for every tenant, or a list of tenant names",
                                     param="tenants")
            return True, []
        ids: list[int] = []
        for t in tenants:
            row = s.get(Tenant, t) if isinstance(t, int) else s.scalar(select(Tenant).where(Tenant.name == str(t)))
            if row is None:
                raise InvalidRequest(f"unknown tenant {t!r} in tenants", param="tenants")
            ids.append(row.id)
        return False, sorted(set(ids))

    def register(self, name: str, url: str, *, tenants: list[str | int] | None = None, description: str = "",
                 replace: bool = False, actor: str = "") -> dict[str, Any]:
        """Add (or with ``replace`` update) source ``name``, granted to ``tenants`` (names or ids;
        ``['*']`` = every tenant; empty = none yet)."""
        check_source_name(name)
        _check_url(url)
        if tenants is not None and (not isinstance(tenants, list) or not all(isinstance(t, (str, int)) for t in tenants)):
            raise InvalidRequest("tenants must be a list of tenant names (or ['*'] for all)", param="tenants")
        with self.db.session() as s:
            all_tenants, ids = self._tenant_ids(s, tenants)
            src = s.scalar(select(AnalyticsDataSource).where(AnalyticsDataSource.name == name))
            if src is not None and not replace:
                raise Conflict(f"data source {name!r} already exists; pass replace to change it", param="name")
            if src is None:
                src = AnalyticsDataSource(name=name, created_by=actor)
                s.add(src)
            src.url, src.description, src.all_tenants, src.tenant_ids = url, description or "", all_tenants, ids
            src.updated_at = utcnow()
            s.flush()
            return self._operator_dict(s, src)

    def remove(self, name: str) -> None:
        with self.db.session() as s:
            src = s.scalar(select(AnalyticsDataSource).where(AnalyticsDataSource.name == name))
            if src is None:
                raise NotFound(f"data source {name!r} not found")
            s.delete(src)

    def list_all(self) -> list[dict[str, Any]]:
        """Every source, as the operator sees it (URL with the password masked)."""
        with self.db.session() as s:
            return [self._operator_dict(s, d) for d in
                    s.scalars(select(AnalyticsDataSource).order_by(AnalyticsDataSource.name))]

    @staticmethod
    def _operator_dict(s, d: AnalyticsDataSource) -> dict[str, Any]:
        from zhinao.store.models import Tenant

        names = [] if d.all_tenants else sorted(
            t.name for t in s.scalars(select(Tenant).where(Tenant.id.in_(list(d.tenant_ids or [])))))
        return {"name": d.name, "description": d.description, "url": masked_url(d.url),
                "tenants": [ALL] if d.all_tenants else names, "created_by": d.created_by,
                "created_at": d.created_at.isoformat() if d.created_at else None,
                "updated_at": d.updated_at.isoformat() if d.updated_at else None}

    # -- a tenant's side ----------------------------------------------------------------------
    @staticmethod
    def _granted(d: AnalyticsDataSource, tenant_id: int) -> bool:
        return bool(d.all_tenants) or int(tenant_id) in {int(t) for t in (d.tenant_ids or [])}

    def list_for_tenant(self, tenant_id: int) -> list[dict[str, Any]]:
        """Names and descriptions of the sources granted to ``tenant_id`` — nothing else."""
        with self.db.session() as s:
            return [{"name": d.name, "description": d.description} for d in
                    s.scalars(select(AnalyticsDataSource).order_by(AnalyticsDataSource.name))
                    if self._granted(d, tenant_id)]

    def _url_for(self, tenant_id: int, name: str) -> str:
        with self.db.session() as s:
            d = s.scalar(select(AnalyticsDataSource).where(AnalyticsDataSource.name == name)) \
                if isinstance(name, str) else None
            # one answer for "no such source" and "not yours": a tenant cannot probe others' sources
            if d is None or not self._granted(d, tenant_id):
                raise NotFound(f"data source {name!r} not found among those granted to your tenant; "
                               "GET /api/datasources lists them, the platform operator registers more",
                               code="datasource_not_found")
            return d.url

    def read(self, tenant_id: int, name: str, query: str, *, max_rows: int | None = None) -> importers.Imported:
        """Rows of one read-only SELECT on source ``name`` (granted to ``tenant_id``)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequest("query: send one SELECT to run on the data source", param="query")
        url = self._url_for(tenant_id, name)
        cap = min(int(max_rows), self.max_rows) if max_rows else self.max_rows
        return importers.read_sql(url, query, max_rows=cap, timeout_s=self.timeout_s, source=name)
