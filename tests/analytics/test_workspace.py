"""Workspaces: DuckDB files per tenant, imports, descriptions, glossary, read-only queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from zhinao.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge

TENANT, OTHER_TENANT = 1, 2

GBK_CSV = "用户编号,套餐,月费\nU1,畅享,58\nU2,智享,88\nU3,畅享,128\n".encode("gbk")


def test_workspace_is_a_duckdb_file_per_tenant(service, ws):
    path = Path(service.workspaces.workspace(TENANT, ws).path)
    assert path.name == "w1.duckdb" and path.parent.name == str(TENANT) and path.is_file()
    assert path.parent.parent.name == "analytics"
    with pytest.raises(Conflict):
        service.workspaces.create(TENANT, ws)
    # another tenant neither sees it nor can open it, but may use the same name
    assert service.workspaces.list(OTHER_TENANT) == []
    with pytest.raises(NotFound):
        service.workspaces.get(OTHER_TENANT, ws)
    service.workspaces.create(OTHER_TENANT, ws)
    assert Path(service.workspaces.workspace(OTHER_TENANT, ws).path) != path
    with pytest.raises(InvalidRequest, match="workspace name"):
        service.workspaces.create(TENANT, "../escape")


def test_import_gbk_profile_describe_and_query(service, ws):
    ds = service.workspaces.import_bytes(TENANT, ws, GBK_CSV, "套餐 清单.csv")
    assert ds["name"] == "套餐_清单" and ds["rows"] == 3 and ds["source_detail"]["encoding"] == "gb18030"
    cols = {c["name"]: c for c in ds["profile"]["columns"]}
    assert cols["月费"]["kind"] == "number" and cols["月费"]["stats"]["max"] == 128
    out = service.workspaces.describe(TENANT, ws, "套餐_清单", {"月费": "月功能费（元），ARPU 口径"}, "测试套餐")
    assert out["column_descriptions"] == {"月费": "月功能费（元），ARPU 口径"} and out["description"] == "测试套餐"
    with pytest.raises(InvalidRequest) as e:
        service.workspaces.describe(TENANT, ws, "套餐_清单", {"不存在": "x"})
    assert "'不存在'" in e.value.message
    df = service.workspaces.workspace(TENANT, ws).query('SELECT "套餐", AVG("月费") AS arpu FROM "套餐_清单" GROUP BY 1 ORDER BY 1')
    assert dict(zip(df["套餐"], df["arpu"])) == {"智享": 88.0, "畅享": 93.0}
    with pytest.raises(InvalidRequest, match="only a read-only SELECT"):
        service.workspaces.workspace(TENANT, ws).query('DROP TABLE "套餐_清单"')
    with pytest.raises(Conflict):
        service.workspaces.import_bytes(TENANT, ws, GBK_CSV, "套餐 清单.csv")
    # re-import keeps descriptions of columns that still exist
    again = service.workspaces.import_bytes(TENANT, ws, GBK_CSV, "套餐 清单.csv", replace=True)
    assert again["column_descriptions"]["月费"].startswith("月功能费")
    ctx = service.context(TENANT, ws)
    assert "套餐_清单" in ctx and "ARPU 口径" in ctx and "离网率" in ctx
    service.workspaces.delete_dataset(TENANT, ws, "套餐_清单")
    assert service.workspaces.workspace(TENANT, ws).tables() == []


def test_glossary_defaults_and_edits(service, ws):
    terms = {t["term"]: t for t in service.workspaces.glossary(TENANT, ws)}
    assert {"ARPU", "DOU", "MOU", "离网率"} <= set(terms)
    assert terms["离网率"]["term_en"] == "Churn rate"
    service.workspaces.set_term(TENANT, ws, "出账用户", term_en="Billed users", definition_zh="当月产生账单的用户")
    service.workspaces.set_term(TENANT, ws, "ARPU", term_en="ARPU", definition_zh="本公司口径：出账收入/出账用户")
    terms = {t["term"]: t for t in service.workspaces.glossary(TENANT, ws)}
    assert terms["ARPU"]["definition_zh"] == "本公司口径：出账收入/出账用户" and "出账用户" in terms
    service.workspaces.delete_term(TENANT, ws, "DOU")
    assert "DOU" not in {t["term"] for t in service.workspaces.glossary(TENANT, ws)}
    with pytest.raises(InvalidRequest, match="definition"):
        service.workspaces.set_term(TENANT, ws, "空", definition_zh=" ")
    with pytest.raises(NotFound):
        service.workspaces.delete_term(TENANT, ws, "DOU")


def test_sql_and_demo_imports(service, ws, tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'bss.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(sa.text("CREATE TABLE bill (uid TEXT, fee REAL)"))
        c.execute(sa.text("INSERT INTO bill VALUES ('a', 10), ('b', 30)"))
    eng.dispose()
    # a SQL import names a data source the operator registered and granted, never a URL
    with pytest.raises(NotFound, match="data source 'bss' not found"):
        service.workspaces.import_sql(TENANT, ws, "bss", "SELECT * FROM bill", "bill")
    service.sources.register("bss", url, tenants=[], description="billing")
    with pytest.raises(NotFound):  # registered, but not granted to this tenant
        service.workspaces.import_sql(TENANT, ws, "bss", "SELECT * FROM bill", "bill")
    _grant(service, "bss", url, TENANT)
    ds = service.workspaces.import_sql(TENANT, ws, "bss", "SELECT * FROM bill", "bill")
    assert ds["rows"] == 2 and ds["source"] == "sql"
    assert ds["source_detail"] == {"format": "sql", "source": "bss", "query": "SELECT * FROM bill"}
    assert str(tmp_path) not in str(ds)  # the URL (a path here) is not in the dataset's record
    demo = service.workspaces.import_demo(TENANT, ws, "telco")
    assert demo["rows"] == 7043 and "Apache-2.0" in demo["description"]
    assert "customerID" in demo["column_descriptions"]
    with pytest.raises(NotFound, match="unknown demo dataset"):
        service.workspaces.import_demo(TENANT, ws, "nope")


def _grant(service, name, url, tenant_id):
    from zhinao.store.models import Tenant

    with service.db.session() as s:  # the analytics fixtures have no tenants table rows: add one
        if s.get(Tenant, tenant_id) is None:
            s.add(Tenant(id=tenant_id, name=f"t{tenant_id}"))
    service.sources.register(name, url, tenants=[f"t{tenant_id}"], replace=True)


def test_import_limit_is_enforced_with_a_named_limit(store, tmp_path):
    from zhinao.analytics.workspace import WorkspaceManager

    db, _ = store
    mgr = WorkspaceManager(db, tmp_path / "h", import_limit=1000)
    mgr.create(TENANT, "small")
    with pytest.raises(PayloadTooLarge) as e:
        mgr.import_bytes(TENANT, "small", b"a,b\n" + b"1,2\n" * 500, "x.csv")
    assert "1000 bytes" in e.value.message
    big = tmp_path / "huge.csv"
    with open(big, "wb") as f:
        f.truncate(2 * 1024**3)
    with pytest.raises(PayloadTooLarge, match="2.0 GB"):
        mgr.import_path(TENANT, "small", big)


def test_all_null_and_constant_columns_are_flagged(service, ws):
    raw = "id,empty,const,v\n1,,x,3\n2,,x,5\n3,,x,8\n".encode()
    ds = service.workspaces.import_bytes(TENANT, ws, raw, "flags.csv")
    assert "empty: all_null" in ds["profile"]["warnings"] and "const: constant" in ds["profile"]["warnings"]
