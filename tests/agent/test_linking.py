"""Schema linking on real tables: the demo Telco churn table and a foreign CSV (Orange churn)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from zhinao.agent.linking import SchemaIndex, tokens
from zhinao.analytics.glossary import DEFAULT_GLOSSARY, DEMO_COLUMNS
from zhinao.analytics.workspace import Workspace

ORANGE = Path("/work/shared/benchmarks/orange-telecom-churn/churn-bigml-20.csv")
GLOSSARY = [dict(zip(("term", "term_en", "definition_zh", "definition_en", "formula"), g)) for g in DEFAULT_GLOSSARY]


@pytest.fixture(scope="module")
def telco_ws(tmp_path_factory) -> Workspace:
    from zhinao.analytics import datasets

    ws = Workspace(tmp_path_factory.mktemp("link") / "demo.duckdb")
    ws.write_table("telco", datasets.tabular("telco"))
    return ws


@pytest.fixture(scope="module")
def telco(telco_ws) -> SchemaIndex:
    return SchemaIndex.from_workspace(telco_ws, descriptions=DEMO_COLUMNS, glossary=GLOSSARY)


def test_identifiers_and_chinese_are_tokenised():
    assert tokens("customerID") == ["customer", "id"]
    assert tokens("Total_day_minutes") == ["total", "day", "minute"]
    assert "离网" in tokens("离网率")
    assert "countries" not in tokens("countries") and "country" in tokens("countries")


def test_fiber_finds_the_stored_value(telco):
    linked = telco.link("How many fiber customers churned last month?")
    hits = [(v.table, v.column, v.value) for v in linked.values]
    assert ("telco", "InternetService", "Fiber optic") in hits
    cols = [c for _, c, _ in linked.columns[:4]]
    assert "InternetService" in cols and "Churn" in cols
    assert "telco.InternetService = 'Fiber optic'" in telco.hint_text(linked)


def test_chinese_terms_link_columns_through_descriptions_and_glossary(telco):
    linked = telco.link("月付用户的离网率是多少？")
    assert "离网率" in [t["term"] for t in linked.terms]
    cols = [c for _, c, _ in linked.columns]
    assert "Churn" in cols[:3] and "Contract" in cols  # 月付 is in Contract's description
    arpu = telco.link("各合约类型的平均ARPU")
    cols = [c for _, c, _ in arpu.columns[:3]]
    assert "MonthlyCharges" in cols and "Contract" in cols  # ARPU's formula names MonthlyCharges
    hint = telco.hint_text(arpu)
    assert "Formula here: AVG(MonthlyCharges)" in hint and "SUM(revenue)" not in hint  # no absent columns


def test_value_written_whole_is_found(telco):
    linked = telco.link("customers who pay by electronic check")
    assert linked.values[0].value == "Electronic check" and linked.values[0].column == "PaymentMethod"


def test_prompt_text_is_byte_stable_and_shows_values(telco_ws, telco):
    again = SchemaIndex.from_workspace(telco_ws, descriptions=DEMO_COLUMNS, glossary=GLOSSARY)
    text = telco.prompt_text()
    assert text == again.prompt_text()
    assert "CREATE TABLE telco" in text and "'Fiber optic'" in text and "-- Business glossary:" in text
    assert "range 0 .. 72" in text  # tenure
    assert "ARPU" in text and "7043 rows" in text


def test_foreign_schema_with_spaces_in_names(tmp_path):
    ws = Workspace(tmp_path / "orange.duckdb")
    ws.write_table("churn", pd.read_csv(ORANGE))
    idx = SchemaIndex.from_workspace(ws)
    linked = idx.link("average total day minutes of customers with an international plan")
    cols = [c for _, c, _ in linked.columns[:4]]
    assert "Total day minutes" in cols and "International plan" in cols
    text = idx.prompt_text()
    assert '"Total day minutes" DOUBLE' in text and '"International plan" VARCHAR' in text
    assert "Churn BOOLEAN" in text
    st = idx.link("customers in state KS").values
    assert not st or st[0].column == "State"


def test_join_hints_from_shared_key_names(tmp_path):
    ws = Workspace(tmp_path / "j.duckdb")
    ws.write_table("singer", pd.DataFrame({"Singer_ID": [1, 2], "Name": ["Ann", "Bo"]}))
    ws.write_table("song", pd.DataFrame({"id": [1], "Singer_ID": [2], "Title": ["x"]}))
    ws.write_table("play", pd.DataFrame({"song_id": [1], "n": [3]}))
    idx = SchemaIndex.from_workspace(ws)
    joins = idx.join_hints()
    assert ("singer.Singer_ID", "song.Singer_ID") in joins and ("play.song_id", "song.id") in joins
    assert "-- Likely joins:" in idx.prompt_text()
    linked = idx.link("titles of songs by Ann")
    assert linked.values and linked.values[0].value == "Ann"
    assert set(linked.tables[:2]) == {"singer", "song"}


def test_glossary_formulas_in_the_prompt_only_name_what_the_workspace_has(telco, tmp_path):
    """The default glossary is written for the demo ("COUNT(users at start)", "AVG(Churn = 'Yes')"):
    on a foreign table the prompt keeps the definitions but no formula naming absent columns or values
    (the 0.5B model copied `users_at_start` into its SQL on the Orange churn table)."""
    ws = Workspace(tmp_path / "orange.duckdb")
    ws.write_table("orange", pd.read_csv(ORANGE))
    orange = SchemaIndex.from_workspace(ws, glossary=GLOSSARY)
    text = orange.prompt_text()
    # terms it cannot compute stay out of the cached prefix (twenty such lines distract a small model) ...
    assert "离网率" not in text and "Business glossary" not in text
    # ... and a question that names one still gets its definition, without the foreign formula
    text = orange.hint_text(orange.link("各州的离网率是多少？"))
    assert "离网率" in text and "Churn rate" in text
    for absent in ("users at start", "MonthlyCharges", "Churn = 'Yes'", "Telco demo"):
        assert absent not in text, absent
    demo = telco.prompt_text()
    assert "AVG(MonthlyCharges)" in demo  # computable on the demo table, and written as DuckDB runs it:
    assert "AVG(CASE WHEN Churn = 'Yes' THEN 1 ELSE 0 END)" in demo and "AVG(Churn = 'Yes')" not in demo
    assert "users at start" not in demo and "Telco demo" not in demo
    assert "养卡" not in demo  # no formula here: only as a hint when a question names it
