"""Apriori and item-item CF on real baskets: hide one item, beat most-popular; any table's columns."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog.association import (AprioriCrossSell, ItemCFRecommender, flag_like, split_and_hide,
                                                  telco_baskets, to_baskets, wide_baskets)
from zhinao.errors import InvalidRequest


def test_telco_baskets_follow_the_service_columns():
    df = datasets.load_telco()
    baskets = telco_baskets(df)
    assert len(baskets) == len(df)
    no_internet = df["InternetService"].eq("No").to_numpy()
    assert not any(any(i.startswith("宽带") for i in b) for b, n in zip(baskets, no_internet) if n)
    fiber = df["InternetService"].eq("Fiber optic").to_numpy()
    assert all("宽带 Internet:Fiber optic" in b for b, f in zip(baskets, fiber) if f)


def test_wide_baskets_read_flags_as_people_write_them():
    df = pd.DataFrame({"国际漫游": ["是", "否", "是", None], "语音信箱": [True, False, True, False],
                       "宽带": ["光纤", "无", "DSL", "否"], "投诉次数": [0, 2, 1, None],
                       "视频会员": ["Yes", "No internet service", "No", "Yes"]})
    b = wide_baskets(df, list(df.columns))
    assert b[0] == ["国际漫游", "语音信箱", "宽带:光纤", "视频会员"]
    assert b[1] == ["投诉次数"]
    assert b[2] == ["国际漫游", "语音信箱", "宽带:DSL", "投诉次数"]
    assert b[3] == ["视频会员"]
    assert flag_like(df["国际漫游"]) and flag_like(df["视频会员"]) and not flag_like(df["宽带"])


def test_long_table_and_hiding_protocol():
    long = datasets.groceries_frame()
    baskets = to_baskets(long)
    assert len(baskets) == 9835 and sum(map(len, baskets)) <= 43367
    train, queries = split_and_hide(baskets, 0.25, seed=0)
    assert len(train) == 9835 - round(9835 * 0.25)
    assert all(hidden not in visible and len(visible) >= 1 for visible, hidden in queries)
    # by time: the hold-out is the latest quarter
    order = list(range(len(baskets)))
    train, queries = split_and_hide(baskets, 0.25, seed=0, order=order)
    assert train == baskets[: len(train)]


@pytest.mark.slow
def test_apriori_rules_and_hit_rate_beat_popular_on_telco():
    m = AprioriCrossSell()
    ev = m.evaluate(m.load_demo())
    assert ev.metrics["hit_rate@3"] > ev.baseline["hit_rate@3"]
    assert ev.metrics["mrr@3"] > ev.baseline["mrr@3"]
    assert m.binding_.columns["features"][0] == "PhoneService" and "features" in m.binding_.inferred
    rules = m.rules_
    assert {"support", "confidence", "lift"} <= set(rules.columns)
    assert (rules["support"] >= m.min_support - 1e-12).all() and (rules["confidence"] >= m.min_confidence).all()
    # streaming TV and streaming movies go together far more than chance
    tv, movies = "流媒体电视 StreamingTV", "流媒体电影 StreamingMovies"
    pair = rules[rules["antecedents"].map(lambda a: a == frozenset({tv})) &
                 rules["consequents"].map(lambda c: c == frozenset({movies}))]
    assert len(pair) == 1 and float(pair["lift"].iloc[0]) > 1.5
    assert ev.plots["rules"]["type"] == "table" and len(ev.plots["rules"]["rows"]) == min(len(rules), 50)
    assert ev.plots["rules_scatter"]["type"] == "scatter"
    json.dumps(ev.plots)
    scored = m.predict_table(m.load_demo().head(20))
    assert "customerID" in scored.columns and {"recommended_item", "score", "reason"} <= set(scored.columns)


@pytest.mark.slow
def test_apriori_on_groceries_beats_popular():
    m = AprioriCrossSell(min_support=0.002, min_confidence=0.05, max_len=3)
    ev = m.evaluate(datasets.load_groceries())
    assert ev.metrics["hit_rate@3"] > ev.baseline["hit_rate@3"]


@pytest.mark.slow
def test_item_cf_beats_popular_on_groceries_and_scores_baskets():
    m = ItemCFRecommender()
    ev = m.evaluate(m.load_demo())
    assert ev.metrics["hit_rate@3"] > ev.baseline["hit_rate@3"]
    assert m.binding_.columns == {"session": "transaction_id", "item": "item"}
    assert m.similar_items("whole milk", 3)[0][1] > 0
    out = m.predict_table(pd.DataFrame({"transaction_id": [1, 1, 2], "item": ["whole milk", "butter", "beef"]}))
    assert list(out.columns) == ["transaction_id", "basket", "rank", "recommended_item", "score", "reason"]
    assert len(out) == 6 and "whole milk" not in out[out["transaction_id"] == 1]["recommended_item"].tolist()
    assert out["score"].ge(0).all()


def _orders():
    """The groceries receipts as an order log under other names, with dates and quantities."""
    g = datasets.groceries_frame()
    g = g.copy()
    g["下单日期"] = (pd.Timestamp("2026-01-01") + pd.to_timedelta(g["transaction_id"] // 40, unit="D")).dt.strftime("%Y/%m/%d")
    g["数量"] = 1 + g.index % 3
    g.loc[g.index % 17 == 0, "数量"] = 0  # returned: not in the basket
    return g.rename(columns={"transaction_id": "订单号", "item": "商品"})


@pytest.mark.slow
def test_long_user_table_with_time_and_value_roles():
    df = _orders()
    m = ItemCFRecommender(session="订单号", item="商品", time="下单日期", value="数量")
    ev = m.evaluate(df)
    assert m.binding_.columns == {"session": "订单号", "item": "商品", "time": "下单日期", "value": "数量"}
    assert "latest 25% of baskets by '下单日期'" in ev.explanation["split"]["protocol"]
    note = ev.explanation["notes"][0]
    assert "'订单号'" in note and "'数量' <= 0 left out" in note
    kept = sum(len(b) for b in m.baskets(df)[0])
    assert kept == df[df["数量"] > 0].drop_duplicates(["订单号", "商品"]).shape[0]
    assert ev.metrics["hit_rate@3"] > ev.baseline["hit_rate@3"]


def test_bad_inputs_name_the_column_and_what_to_bind():
    with pytest.raises(InvalidRequest, match="session=COLUMN"):
        to_baskets(pd.DataFrame({"a": [1]}))
    with pytest.raises(InvalidRequest, match="lists of item"):
        to_baskets(["milk", "bread"])
    with pytest.raises(InvalidRequest, match="min_support"):
        AprioriCrossSell(min_support=2).fit([["a", "b"]] * 30)
    with pytest.raises(InvalidRequest, match="at least"):
        ItemCFRecommender().evaluate([["a", "b"]] * 10)
    with pytest.raises(InvalidRequest, match="unknown item"):
        ItemCFRecommender().fit([["a", "b"], ["b", "c"]] * 20).similar_items("zzz")
    df = _orders()
    # one item per session: the user bound the row-level column as the session
    one = df.assign(行号=range(len(df)))
    with pytest.raises(InvalidRequest, match="single item.*nothing to associate") as e:
        AprioriCrossSell(session="行号", item="商品").evaluate(one)
    assert "'行号'" in e.value.message
    with pytest.raises(InvalidRequest, match="'订单编号'.*lacks"):
        AprioriCrossSell(session="订单编号", item="商品").evaluate(df)
    with pytest.raises(InvalidRequest, match="entirely empty"):
        AprioriCrossSell(session="订单号", item="商品").evaluate(df.assign(商品=None))
    with pytest.raises(InvalidRequest, match="not both"):
        AprioriCrossSell(session="订单号", item="商品", features=["数量"]).evaluate(df)
    with pytest.raises(InvalidRequest, match="'下单日期'"):  # a time column that does not parse
        AprioriCrossSell(session="订单号", item="商品", time="下单日期").evaluate(df.assign(下单日期="soon"))


@pytest.mark.slow
def test_wide_table_services_are_inferred_from_flags():
    df = datasets.load_telco().rename(columns=lambda c: f"业务_{c}" if c in ("StreamingTV", "StreamingMovies",
                                                                         "TechSupport", "OnlineBackup") else c)
    df = df.drop(columns=["PhoneService", "MultipleLines", "InternetService", "OnlineSecurity", "DeviceProtection"])
    m = ItemCFRecommender()
    ev = m.evaluate(df)
    feats = m.binding_.columns["features"]
    assert "features" in m.binding_.inferred
    assert {"业务_StreamingTV", "业务_TechSupport"} <= set(feats) and "Churn" not in feats
    assert "customerID" not in feats and m.binding_.columns.get("id") == "customerID"
    assert ev.metrics["hit_rate@3"] >= ev.baseline["hit_rate@3"]


@pytest.mark.slow
def test_one_row_per_basket_with_the_items_in_one_column():
    baskets = datasets.load_groceries()
    df = pd.DataFrame({"小票": [f"R{i}" for i in range(len(baskets))], "商品清单": ["，".join(b) for b in baskets]})
    m = ItemCFRecommender(session="小票", items="商品清单")
    ev = m.evaluate(df)
    assert m.binding_.columns == {"items": "商品清单", "session": "小票"}
    assert m.baskets(df)[0] == [list(dict.fromkeys(b)) for b in baskets]
    assert "rows of '商品清单'" in ev.explanation["notes"][0]
    assert ev.metrics["hit_rate@3"] > ev.baseline["hit_rate@3"]
    assert m.predict_table(df.head(3))["小票"].iloc[0] == "R0"
    with pytest.raises(InvalidRequest, match="holds one item"):
        ItemCFRecommender(items="商品清单").evaluate(df.assign(商品清单="milk"))
    with pytest.raises(InvalidRequest, match="leave item"):
        ItemCFRecommender(items="商品清单", item="小票").evaluate(df)
