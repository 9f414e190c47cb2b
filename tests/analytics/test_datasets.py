"""The shipped demo data: counts match each SOURCE.md, licence notices travel with the copies."""

from __future__ import annotations

import pandas as pd

from zhinao.analytics import datasets as d


def test_every_shipped_folder_keeps_its_licence_notice():
    folders = {p.name for p in d.DATA_DIR.iterdir() if p.is_dir()}
    assert folders == {ds.folder for ds in d.DATASETS.values()}
    for key, ds in d.DATASETS.items():
        text = ds.source_md
        assert "Licence" in text or "licence" in text, key
    # the review corpus has no licence: it must never be shipped
    assert not any("review" in p.name or "sentiment" in p.name for p in d.DATA_DIR.rglob("*"))


def test_telco_totalcharges_blanks_are_zero_and_flagged():
    df = d.load_telco()
    assert df.shape == (7043, 22)
    assert df["TotalCharges"].dtype == float and df["TotalCharges"].notna().all()
    blank = df[df["TotalCharges_was_blank"] == 1]
    assert len(blank) == 11 and (blank["tenure"] == 0).all() and (blank["TotalCharges"] == 0).all()
    assert df["Churn"].value_counts().to_dict() == {"No": 5174, "Yes": 1869}


def test_other_loaders_match_source_counts():
    milan = d.load_milan_total()
    assert len(milan) == 1488 and pd.api.types.is_datetime64_any_dtype(milan["timestamp"])
    assert milan["timestamp"].iloc[0] == pd.Timestamp("2013-11-01 00:00")
    assert d.load_milan_cells()["cell_id"].nunique() == 281
    baskets = d.load_groceries()
    assert len(baskets) == 9835 and sum(map(len, baskets)) == 43367
    assert len({i for b in baskets for i in b}) == 169
    seqs = d.load_msnbc(limit=500)
    assert len(seqs) == 500 and seqs.categories[1] == "frontpage"
    assert all(1 <= c <= 17 for s in seqs.sequences for c in s)
    assert len(d.load_msnbc()) == 100_000
    edges, labels = d.load_email_eu()
    assert len(edges) == 25571 and labels["node"].nunique() == 1005 and labels["department"].nunique() == 42
    assert len(d.load_karate()) == 78
    news = d.load_thucnews()
    assert list(news.columns) == ["text", "label", "label_zh", "label_id", "split"]
    assert news.groupby("split").size().to_dict() == {"dev": 10000, "test": 10000}
