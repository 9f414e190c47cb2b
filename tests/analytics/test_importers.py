"""Importers: encodings, formats, SQL, limits and clear errors."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from zhinao.analytics import importers
from zhinao.errors import InvalidRequest, PayloadTooLarge

LIMIT = 10 * 1024 * 1024
ZH_CSV = "用户编号,套餐名称,月费,入网日期\nU001,畅享套餐,128.5,2023-01-05\nU002,5G智享,199,2022-11-30\nU003,畅享套餐, ,2021-07-01\n"


def test_gbk_csv_is_detected_and_decoded():
    out = importers.read_bytes(ZH_CSV.encode("gbk"), "话单.csv", limit=LIMIT)
    assert out.detail["encoding"] == "gb18030"
    df = out.frame
    assert list(df.columns) == ["用户编号", "套餐名称", "月费", "入网日期"]
    assert df["套餐名称"].tolist() == ["畅享套餐", "5G智享", "畅享套餐"]
    # a numeric column with a blank cell becomes numeric with a null, and says so
    assert df["月费"].isna().sum() == 1 and df["月费"].iloc[0] == 128.5
    assert "blank" in out.detail["conversions"]["月费"]
    assert pd.api.types.is_datetime64_any_dtype(df["入网日期"])


def test_utf8_bom_and_semicolon_delimiter():
    raw = ("\ufeff" + ZH_CSV.replace(",", ";")).encode("utf-8")
    out = importers.read_bytes(raw, "x.csv", limit=LIMIT)
    assert out.detail["encoding"] == "utf-8-sig" and out.detail["delimiter"] == ";"
    assert out.frame.columns[0] == "用户编号"


def test_parquet_excel_and_json(tmp_path):
    df = pd.DataFrame({"cell": ["A", "B"], "traffic": [1.5, 2.5], "hour": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    buf = io.BytesIO()
    df.to_parquet(buf)
    assert importers.read_bytes(buf.getvalue(), "t.parquet", limit=LIMIT).frame["traffic"].sum() == 4.0
    xbuf = io.BytesIO()
    df.to_excel(xbuf, index=False, sheet_name="话务")
    x = importers.read_bytes(xbuf.getvalue(), "t.xlsx", limit=LIMIT, sheet="话务").frame
    assert x["cell"].tolist() == ["A", "B"]
    records = [{"id": 1, "name": "张三", "plan": {"fee": 58}}, {"id": 2, "name": "李四", "plan": {"fee": 88}}]
    j = importers.read_bytes(json.dumps(records, ensure_ascii=False).encode(), "u.json", limit=LIMIT).frame
    assert j["plan.fee"].tolist() == [58, 88]
    lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
    assert importers.read_bytes(lines, "u.jsonl", limit=LIMIT).frame["name"].tolist() == ["张三", "李四"]


def test_sql_import_reads_a_real_database_and_refuses_writes(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(sa.text("CREATE TABLE subs (id INTEGER, city TEXT, arpu REAL)"))
        c.execute(sa.text("INSERT INTO subs VALUES (1,'北京',58.0),(2,'上海',99.5),(3,'北京',20.0)"))
    eng.dispose()
    out = importers.read_sql(url, "SELECT city, AVG(arpu) AS arpu FROM subs GROUP BY city ORDER BY city")
    assert out.frame["city"].tolist() == ["上海", "北京"] and out.frame["arpu"].tolist() == [99.5, 39.0]
    with pytest.raises(InvalidRequest, match="only a read-only SELECT"):
        importers.read_sql(url, "DELETE FROM subs")
    with pytest.raises(InvalidRequest, match="no such table"):
        importers.read_sql(url, "SELECT * FROM nope")
    with pytest.raises(PayloadTooLarge, match="row limit"):
        importers.read_sql(url, "SELECT * FROM subs", max_rows=2)


def test_oversize_file_names_the_limit(tmp_path):
    big = tmp_path / "big.csv"
    with open(big, "wb") as f:  # a sparse file: "2 GB" without writing 2 GB
        f.truncate(2 * 1024**3)
    with pytest.raises(PayloadTooLarge) as e:
        importers.read_path(big, limit=LIMIT)
    assert "10.0 MB" in e.value.message and str(LIMIT) in e.value.message and "2.0 GB" in e.value.message


def test_malformed_csv_names_the_line():
    raw = b"a,b\n1,2\n3,4,5\n"
    with pytest.raises(InvalidRequest, match="line 3"):
        importers.read_bytes(raw, "bad.csv", limit=LIMIT)


def test_declared_types_name_the_bad_column():
    df = importers.read_bytes("day,value\n2024-01-01,1\nnot a date,2\n".encode(), "d.csv", limit=LIMIT).frame
    with pytest.raises(InvalidRequest) as e:
        importers.apply_types(df, {"day": "date"})
    assert "'day'" in e.value.message and "not a date" in e.value.message and e.value.param == "day"
    with pytest.raises(InvalidRequest, match="unknown column 'nope'"):
        importers.apply_types(df, {"nope": "date"})


def test_unknown_format_and_empty_file():
    with pytest.raises(InvalidRequest, match="format"):
        importers.read_bytes(b"x", "data.bin", limit=LIMIT)
    with pytest.raises(InvalidRequest, match="empty"):
        importers.read_bytes(b"   \n", "e.csv", limit=LIMIT)
    with pytest.raises(InvalidRequest, match="JSON"):
        importers.read_bytes(b"{not json", "e.json", limit=LIMIT)
