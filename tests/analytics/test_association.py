"""Apriori and item-item CF on real baskets: hide one item, beat most-popular."""

from __future__ import annotations

import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog.association import (AprioriCrossSell, ItemCFRecommender, split_and_hide,
                                                  telco_baskets, to_baskets)
from zhinao.errors import InvalidRequest


def test_telco_baskets_follow_the_service_columns():
    df = datasets.load_telco()
    baskets = telco_baskets(df)
    assert len(baskets) == len(df)
    no_internet = df["InternetService"].eq("No").to_numpy()
    assert not any(any(i.startswith("宽带") for i in b) for b, n in zip(baskets, no_internet) if n)
    fiber = df["InternetService"].eq("Fiber optic").to_numpy()
    assert all("宽带 Internet:Fiber optic" in b for b, f in zip(baskets, fiber) if f)


def test_long_table_and_hiding_protocol():
    long = datasets.groceries_frame()
    baskets = to_baskets(long)
    assert len(baskets) == 9835 and sum(map(len, baskets)) <= 43367
    train, queries = split_and_hide(baskets, 0.25, seed=0)
    assert len(train) == 9835 - round(9835 * 0.25)
    assert all(hidden not in visible and len(visible) >= 1 for visible, hidden in queries)


@pytest.mark.slow
def test_apriori_rules_and_hit_rate_beat_popular_on_telco():
    m = AprioriCrossSell()
    ev = m.evaluate(m.load_demo())
    assert ev.metrics["hit_rate@3"] > ev.baseline["hit_rate@3"]
    assert ev.metrics["mrr@3"] > ev.baseline["mrr@3"]
    rules = m.rules_
    assert {"support", "confidence", "lift"} <= set(rules.columns)
    assert (rules["support"] >= m.min_support - 1e-12).all() and (rules["confidence"] >= m.min_confidence).all()
    # streaming TV and streaming movies go together far more than chance
    tv, movies = "流媒体电视 StreamingTV", "流媒体电影 StreamingMovies"
    pair = rules[rules["antecedents"].map(lambda a: a == frozenset({tv})) &
                 rules["consequents"].map(lambda c: c == frozenset({movies}))]
    assert len(pair) == 1 and float(pair["lift"].iloc[0]) > 1.5


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
    assert m.similar_items("whole milk", 3)[0][1] > 0
    out = m.predict_table(pd.DataFrame({"transaction_id": [1, 1, 2], "item": ["whole milk", "butter", "beef"]}))
    assert list(out.columns) == ["id", "rank", "recommended_item"] and len(out) == 6
    assert "whole milk" not in out[out["id"] == 1]["recommended_item"].tolist()


def test_bad_inputs():
    with pytest.raises(InvalidRequest, match="transaction_id"):
        to_baskets(pd.DataFrame({"a": [1]}))
    with pytest.raises(InvalidRequest, match="lists of item"):
        to_baskets(["milk", "bread"])
    with pytest.raises(InvalidRequest, match="min_support"):
        AprioriCrossSell(min_support=2).fit([["a", "b"]] * 30)
    with pytest.raises(InvalidRequest, match="at least"):
        ItemCFRecommender().evaluate([["a", "b"]] * 10)
    with pytest.raises(InvalidRequest, match="unknown item"):
        ItemCFRecommender().fit([["a", "b"], ["b", "c"]] * 20).similar_items("zzz")
