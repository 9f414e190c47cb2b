"""Operator-registered data sources (issue 8, finding 5).

The attack: a tenant admin imported ``{"url": "sqlite:///<home>/zhinao.db", "query": "SELECT * FROM users"}``
and got every tenant's users with password hashes. Now an import names a source that the
platform operator registered and granted; the URL and its credentials never leave the server.
The granted source here is the real PostgreSQL server of the test machine.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from two_tenants import OP
from typer.testing import CliRunner

PASSWORD = "S3cret-pw-91x"  #: in the source URL; must never appear in any response


def _pg_source(pg_database_url: str) -> tuple[str, str]:
    """A schema with a customers table in the session's PostgreSQL database; returns (url, schema)."""
    schema = "crm_" + uuid.uuid4().hex[:8]
    eng = sa.create_engine(pg_database_url)
    with eng.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        c.execute(sa.text(f'CREATE TABLE "{schema}".customers (id int primary key, plan text, arpu numeric)'))
        c.execute(sa.text(f'INSERT INTO "{schema}".customers SELECT g, CASE WHEN g % 2 = 0 THEN \'畅享\' '
                          f'ELSE \'智享\' END, 50 + g FROM generate_series(1, 25) g'))
        c.execute(sa.text(f'CREATE SEQUENCE "{schema}".ids'))
    eng.dispose()
    # trust auth on the test server ignores the password, so the URL can carry one to leak
    url = pg_database_url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
    return url, schema


@pytest.fixture
def pg(pg_database_url):
    url, schema = _pg_source(pg_database_url)
    yield url, schema
    eng = sa.create_engine(pg_database_url)
    with eng.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    eng.dispose()


@pytest.fixture
def seen():
    """Every response body of a test, to check that no credential ever appears in one."""
    bodies: list[str] = []
    yield bodies
    text = "\n".join(bodies)
    assert PASSWORD not in text


def _call(client, seen, method, path, headers, **kw):
    r = client.request(method, path, headers=headers, **kw)
    seen.append(r.text)
    return r


def test_url_pointing_at_the_metadata_db_is_refused(client, tenants, settings, seen):
    a, _ = tenants
    assert _call(client, seen, "POST", "/api/analytics/workspaces", a.admin, json={"name": "w"}).status_code == 201
    for body in ({"url": f"sqlite:///{settings.home / 'zhinao.db'}", "query": "SELECT * FROM users", "name": "u"},
                 {"url": f"sqlite:///{settings.home / 'zhinao.db'}", "source": "crm", "query": "SELECT 1", "name": "u"}):
        r = _call(client, seen, "POST", "/api/analytics/workspaces/w/datasets/sql", a.admin, json=body)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert "ask the platform operator to register a data source" in err["message"] and err["param"] == "url"
        assert "scrypt$" not in r.text and "acme-admin" not in r.text
    r = _call(client, seen, "POST", "/api/analytics/workspaces/w/datasets/sql", a.admin,
              json={"query": "SELECT 1", "name": "u"})
    assert r.status_code == 400 and "'source'" in r.json()["error"]["message"]
    assert _call(client, seen, "GET", "/api/analytics/workspaces/w/datasets", a.admin).json() == []


def test_unregistered_and_ungranted_sources_are_404(client, tenants, tmp_path, seen):
    a, b = tenants
    db = tmp_path / "bss.db"
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as c:
        c.execute(sa.text("CREATE TABLE bill (uid TEXT, fee REAL)"))
        c.execute(sa.text("INSERT INTO bill VALUES ('a', 10), ('b', 30)"))
    eng.dispose()
    r = _call(client, seen, "POST", "/api/datasources", OP,
              json={"name": "bss", "url": f"sqlite:///{db}", "tenants": ["bravo"], "description": "billing"})
    assert r.status_code == 201, r.text
    for t in (a, b):
        _call(client, seen, "POST", "/api/analytics/workspaces", t.admin, json={"name": "w"})
    imp = {"source": "nope", "query": "SELECT * FROM bill", "name": "bill"}
    r = _call(client, seen, "POST", "/api/analytics/workspaces/w/datasets/sql", a.admin, json=imp)
    assert r.status_code == 404 and "'nope'" in r.json()["error"]["message"]
    imp["source"] = "bss"
    r = _call(client, seen, "POST", "/api/analytics/workspaces/w/datasets/sql", a.admin, json=imp)
    assert r.status_code == 404 and "granted to your tenant" in r.json()["error"]["message"]
    assert str(db) not in r.text
    r = _call(client, seen, "POST", "/api/analytics/workspaces/w/datasets/sql", b.admin, json=imp)
    assert r.status_code == 201 and r.json()["rows"] == 2, r.text
    # A sees neither the source nor its file; B sees its name and description only
    assert _call(client, seen, "GET", "/api/datasources", a.admin).json() == []
    assert _call(client, seen, "GET", "/api/datasources", b.admin).json() == [{"name": "bss", "description": "billing"}]
    # a member imports nothing and lists nothing
    assert _call(client, seen, "POST", "/api/analytics/workspaces/w/datasets/sql", b.member, json=imp).status_code == 403
    assert _call(client, seen, "GET", "/api/datasources", b.member).status_code == 403
    # once removed, the source is gone for B too
    assert _call(client, seen, "DELETE", "/api/datasources/bss", OP).status_code == 200
    imp["replace"] = True
    assert _call(client, seen, "POST", "/api/analytics/workspaces/w/datasets/sql", b.admin, json=imp).status_code == 404


def test_only_the_operator_manages_sources(client, tenants, seen):
    a, _ = tenants
    body = {"name": "crm", "url": f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1/crm", "tenants": ["*"]}
    for h in (a.admin, a.admin_key, a.member):
        assert _call(client, seen, "POST", "/api/datasources", h, json=body).status_code == 403
    assert _call(client, seen, "POST", "/api/datasources", OP, json=body).status_code == 201
    for h in (a.admin, a.admin_key, a.member):
        assert _call(client, seen, "DELETE", "/api/datasources/crm", h).status_code == 403
    r = _call(client, seen, "POST", "/api/datasources", OP, json=body)
    assert r.status_code == 409 and "replace" in r.json()["error"]["message"]
    for bad, what in (({**body, "name": "../x"}, "name"), ({**body, "url": "not a url"}, "url"),
                      ({**body, "url": "nosuchdb+driver://x/y"}, "url"), ({**body, "tenants": ["ghost"]}, "tenants"),
                      ({**body, "tenants": ["*", "acme"]}, "tenants")):
        r = _call(client, seen, "POST", "/api/datasources", OP, json={**bad, "replace": True})
        assert r.status_code == 400 and r.json()["error"]["param"] == what, (bad, r.text)
    listed = _call(client, seen, "GET", "/api/datasources", OP).json()
    assert listed[0]["name"] == "crm" and listed[0]["url"] == "postgresql+psycopg://u:***@127.0.0.1/crm"
    assert listed[0]["tenants"] == ["*"]
    assert _call(client, seen, "DELETE", "/api/datasources/nope", OP).status_code == 404


def test_granted_postgres_source_imports_rows_read_only(client, tenants, pg, platform, seen):
    url, schema = pg
    a, b = tenants
    r = _call(client, seen, "POST", "/api/datasources", OP,
              json={"name": "crm", "url": url, "tenants": ["acme"], "description": "CRM 客户"})
    assert r.status_code == 201 and PASSWORD not in r.text and "***" in r.json()["url"]
    assert _call(client, seen, "POST", "/api/analytics/workspaces", a.admin, json={"name": "w"}).status_code == 201
    q = f'SELECT id, plan, arpu FROM "{schema}".customers WHERE id <= 20 ORDER BY id'
    r = _call(client, seen, "POST", "/api/analytics/workspaces/w/datasets/sql", a.admin,
              json={"source": "crm", "query": q, "name": "customers", "description": "from CRM"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["rows"] == 20 and ds["source"] == "sql" and ds["source_detail"] == {"format": "sql", "source": "crm",
                                                                                  "query": q}
    assert "127.0.0.1" not in r.text and "5432" not in r.text
    rows = _call(client, seen, "POST", "/api/analytics/workspaces/w/query", a.member,
                 json={"sql": "SELECT plan, COUNT(*) FROM customers GROUP BY 1 ORDER BY 1"}).json()["rows"]
    assert rows == [["智享", 10], ["畅享", 10]]
    # the tenant admin's listing: names and descriptions, nothing about where the data lives
    assert _call(client, seen, "GET", "/api/datasources", a.admin).json() == [{"name": "crm", "description": "CRM 客户"}]
    assert _call(client, seen, "GET", "/api/datasources", b.admin).json() == []

    def imp(query, name="x"):
        return _call(client, seen, "POST", "/api/analytics/workspaces/w/datasets/sql", a.admin,
                     json={"source": "crm", "query": query, "name": name})

    # only one read-only SELECT reaches the source ...
    for bad in (f'DELETE FROM "{schema}".customers', f'SELECT 1; DELETE FROM "{schema}".customers',
                f'WITH d AS (DELETE FROM "{schema}".customers RETURNING *) SELECT * FROM d',
                f'SELECT * INTO "{schema}".copy FROM "{schema}".customers',
                f'SELECT * FROM "{schema}".customers FOR UPDATE',
                "SELECT pg_read_file('/etc/passwd')", "SELECT * FROM pg_ls_dir('.')",
                "SELECT query_to_xml('select * from pg_authid', true, true, '')"):
        r = imp(bad)
        assert r.status_code == 400, (bad, r.text)
        assert "root:" not in r.text
    # ... and the session itself is read-only (a side effect the parser check lets through)
    r = imp(f"SELECT nextval('\"{schema}\".ids')")
    assert r.status_code == 400 and "read-only transaction" in r.json()["error"]["message"], r.text
    # a slow query stops at the data-source timeout
    platform.analytics.sources.timeout_s = 1.0
    r = imp("SELECT pg_sleep(5)")
    assert r.status_code == 400 and "statement timeout" in r.json()["error"]["message"], r.text
    eng = sa.create_engine(url)
    with eng.connect() as c:
        assert c.execute(sa.text(f'SELECT count(*) FROM "{schema}".customers')).scalar() == 25
    eng.dispose()
    # the operator's view shows the source with the password masked
    listed = _call(client, seen, "GET", "/api/datasources", OP).json()
    assert listed[0]["url"].startswith("postgresql+psycopg://postgres:***@") and listed[0]["tenants"] == ["acme"]
    ds = _call(client, seen, "GET", "/api/analytics/workspaces/w/datasets/customers", a.admin)
    assert ds.status_code == 200 and "127.0.0.1" not in ds.text


def test_unreachable_source_says_so_without_its_address(client, tenants, seen):
    a, _ = tenants
    url = f"postgresql+psycopg://reader:{PASSWORD}@127.0.0.1:9/crm"  # port 9: nothing listens
    assert _call(client, seen, "POST", "/api/datasources", OP,
                 json={"name": "down", "url": url, "tenants": ["acme"]}).status_code == 201
    _call(client, seen, "POST", "/api/analytics/workspaces", a.admin, json={"name": "w"})
    r = _call(client, seen, "POST", "/api/analytics/workspaces/w/datasets/sql", a.admin,
              json={"source": "down", "query": "SELECT 1", "name": "x"})
    assert r.status_code == 400 and "unreachable" in r.json()["error"]["message"]
    assert "127.0.0.1" not in r.text and "reader" not in r.text


def test_cli_manages_sources(settings, tmp_path, monkeypatch):
    from zhinao.cli.data import app

    runner = CliRunner()
    db = tmp_path / "bss.db"
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as c:
        c.execute(sa.text("CREATE TABLE bill (uid TEXT, fee REAL)"))
        c.execute(sa.text("INSERT INTO bill VALUES ('a', 10), ('b', 30), ('c', 5)"))
    eng.dispose()
    r = runner.invoke(app, ["sources", "add", "bss", f"sqlite:///{db}", "--tenant", "default", "--description", "账单"])
    assert r.exit_code == 0 and "granted to default" in r.output, r.output
    assert runner.invoke(app, ["create", "w"]).exit_code == 0
    r = runner.invoke(app, ["import-sql", "bss", "SELECT * FROM bill WHERE fee > 6", "--name", "bill", "-w", "w"])
    assert r.exit_code == 0 and "2 rows" in r.output, r.output
    r = runner.invoke(app, ["import-sql", f"sqlite:///{db}", "SELECT * FROM bill", "--name", "b2", "-w", "w"])
    assert r.exit_code != 0 and "not found" in " ".join(r.output.split())  # a URL is not a source name
    r = runner.invoke(app, ["import-sql", "bss", "DELETE FROM bill", "--name", "b3", "-w", "w"])
    assert r.exit_code != 0 and "read-only SELECT" in " ".join(r.output.split())
    monkeypatch.setenv("CRM_URL", f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1/crm")
    r = runner.invoke(app, ["sources", "add", "crm", "--url-env", "CRM_URL", "--all"])
    assert r.exit_code == 0 and PASSWORD not in r.output, r.output
    r = runner.invoke(app, ["sources", "list"])
    assert r.exit_code == 0 and "bss" in r.output and "crm" in r.output and PASSWORD not in r.output
    r = runner.invoke(app, ["sources", "add", "x", "--url-env", "NOT_SET_ANYWHERE"])
    assert r.exit_code != 0 and "NOT_SET_ANYWHERE" in r.output
    r = runner.invoke(app, ["sources", "remove", "crm"])
    assert r.exit_code == 0
    r = runner.invoke(app, ["sources", "remove", "crm"])
    assert r.exit_code != 0 and "not found" in r.output and "Traceback" not in r.output
