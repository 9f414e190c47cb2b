"""HMM word tagging (text or the user's own labels) and PrefixSpan next-item recommendation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog.hmm import tag_scheme, units
from zhinao.analytics.catalog.sequence import (HmmWordTagger, NextContentPrefixSpan, jieba_words, max_match,
                                               to_sequences, word_prf)
from zhinao.errors import InvalidRequest


def test_word_prf_counts_boundaries():
    ref = [["中国", "移动", "用户"]]
    assert word_prf(ref, ref)["word_f1"] == 1.0
    m = word_prf(ref, [["中国移动", "用户"]])
    assert m["word_precision"] == pytest.approx(0.5) and m["word_recall"] == pytest.approx(1 / 3)


def test_units_of_tag_schemes():
    assert tag_scheme(list("BMES")) == "bmes" and tag_scheme(["O", "B-ORG", "I-ORG"]) == "bio"
    assert tag_scheme(["n", "v"]) == "tokens"
    assert units(list("BESBME"), "bmes") == {(0, 2), (2, 3), (3, 6)}
    assert units(["B-ORG", "I-ORG", "O", "B-LOC", "B-LOC", "I-PER"], "bio") == \
        {(0, 2, "ORG"), (3, 4, "LOC"), (4, 5, "LOC"), (5, 6, "PER")}


def test_hmm_learns_tags_from_counts():
    corpus = [["中国", "移动"], ["移动", "用户"], ["中国", "用户", "增长"], ["用户", "增长"]] * 10
    m = HmmWordTagger().fit(corpus)
    assert m.tag("中国移动用户") == "BEBEBE"
    assert m.segment("移动 用户增长") == ["移动", "用户", "增长"]
    assert max_match("中国移动", {"中国", "移动"}) == ["中国", "移动"]


@pytest.mark.slow
def test_hmm_beats_per_character_baseline_and_finds_new_words():
    m = HmmWordTagger()
    ev = m.evaluate(datasets.load_thucnews())
    assert m.binding_.columns == {"text": "text"}
    assert ev.metrics["word_f1"] > ev.baseline["word_f1"] + 0.3
    assert ev.metrics["word_f1"] > 0.65
    assert ev.explanation["oov_recall"] > 0.3
    assert ev.explanation["split"]["protocol"].startswith("the table's own split")
    new = [d["word"] for d in ev.explanation["new_words_not_in_jieba_dictionary"]]
    assert new and all(len(w) >= 2 for w in new)
    out = m.predict_table(pd.DataFrame({"text": ["中国移动发布5G新套餐"], "工单号": [7]}))
    assert out["words"].iloc[0].replace(" / ", "") == "中国移动发布5G新套餐" and out["工单号"].iloc[0] == 7
    assert ev.plots["tags"]["type"] == "table"
    json.dumps(ev.plots)


def _pos_table(n: int = 1500) -> pd.DataFrame:
    """THUCNews titles as a table of words with their part of speech (jieba.posseg): a tag set
    that is not BMES, under the user's column names."""
    import jieba.posseg as pseg

    t = datasets.load_thucnews().head(n)
    rows = [(f"S{i}", w.word, w.flag) for i, title in enumerate(t["text"].astype(str))
            for w in pseg.lcut("".join(title.split()))]
    return pd.DataFrame(rows, columns=["标题编号", "词", "词性"])


@pytest.mark.slow
def test_hmm_trains_on_the_users_own_tags():
    df = _pos_table()
    m = HmmWordTagger(token="词", label="词性", sentence="标题编号")
    ev = m.evaluate(df)
    assert m.binding_.columns == {"token": "词", "label": "词性", "sentence": "标题编号"}
    assert m.scheme_ == "tokens" and len(m.states_) > 10
    assert ev.metrics["tag_accuracy"] > ev.baseline["tag_accuracy"]
    assert ev.baseline_name == "most frequent label of each token"
    assert "'词性'" in ev.explanation["evaluated"] and ev.explanation["split"]["holdout_sentences"] == 300
    out = m.predict_table(df.head(50))
    assert list(out.columns[:3]) == ["标题编号", "词", "词性"] and out["predicted_label"].notna().all()
    assert set(out["predicted_label"]) <= set(m.states_)


def test_hmm_bad_tagged_inputs():
    df = pd.DataFrame({"句": [i // 2 for i in range(40)], "字": list("中国移动") * 10, "标": list("BEBE") * 10})
    with pytest.raises(InvalidRequest, match="sentence=COLUMN"):
        HmmWordTagger(token="字", label="标").evaluate(df)
    with pytest.raises(InvalidRequest, match="'字典'.*lacks"):
        HmmWordTagger(token="字典", label="标", sentence="句").evaluate(df)
    with pytest.raises(InvalidRequest, match="at least two labels"):
        HmmWordTagger(token="字", label="标", sentence="句").fit(df.assign(标="S"))
    with pytest.raises(InvalidRequest, match="text"):
        HmmWordTagger().fit(pd.DataFrame({"title": ["a"]}))


@pytest.mark.slow
def test_prefixspan_next_click_beats_most_popular():
    m = NextContentPrefixSpan(max_sessions=20_000)
    ev = m.evaluate(datasets.load_msnbc(limit=20_000))
    assert ev.metrics["hit@3"] > ev.baseline["hit@3"] + 0.1
    assert ev.metrics["mrr@3"] > ev.baseline["mrr@3"]
    assert ev.explanation["n_patterns"] > 50
    assert "first 20,000 MSNBC sessions" in ev.explanation["notes"][0]
    pats = ev.explanation["top_patterns"]
    assert pats == sorted(pats, key=lambda p: -p["support"])
    assert len(m.recommend([1, 2], 3)) == 3


def _events(n: int = 4000, shuffle: bool = True) -> pd.DataFrame:
    """MSNBC sessions 50,001.. as an event log with Chinese names and timestamps, rows shuffled."""
    s = datasets.load_msnbc(limit=50_000 + n)
    rng = np.random.default_rng(1)
    rows = []
    for i, seq in enumerate(s.sequences[50_000:]):
        t0 = pd.Timestamp("2026-05-01") + pd.Timedelta(minutes=int(rng.integers(0, 10_000)))
        rows += [(f"U{i}", s.categories[c], t0 + pd.Timedelta(seconds=20 * j)) for j, c in enumerate(seq)]
    df = pd.DataFrame(rows, columns=["用户", "应用", "时间"])
    return df.sample(frac=1.0, random_state=0).reset_index(drop=True) if shuffle else df


@pytest.mark.slow
def test_prefixspan_on_a_user_event_log_orders_by_its_time_column():
    df = _events()
    m = NextContentPrefixSpan(session="用户", item="应用", time="时间")
    ev = m.evaluate(df)
    assert m.binding_.columns == {"session": "用户", "item": "应用", "time": "时间"}
    note = ev.explanation["notes"][0]
    assert "MSNBC" not in note and "all 4,000 sessions of '用户'" in note and "ordered by '时间'" in note
    assert ev.metrics["hit@3"] > ev.baseline["hit@3"]
    # the time column, not the shuffled row order, gives each session its order
    seqs, ids, _ = m.sequences(df)
    ordered = _events(shuffle=False)
    want = ordered.groupby("用户", sort=False)["应用"].apply(list).to_dict()
    assert all(seqs[i] == want[u] for i, u in enumerate(ids))
    out = m.predict_table(df.head(300))
    assert list(out.columns) == ["用户", "last_items", "rank", "next_item", "confidence", "pattern"]
    assert ev.plots["top_patterns"]["type"] == "table" and ev.plots["top_patterns_bar"]["type"] == "bar"


def test_sequence_table_and_bad_inputs():
    df = pd.DataFrame({"session_id": [1, 1, 2], "position": [1, 0, 0], "category": ["b", "a", "c"]})
    assert to_sequences(df) == [["a", "b"], ["c"]]
    with pytest.raises(InvalidRequest, match="session=COLUMN"):
        to_sequences(pd.DataFrame({"x": [1]}))
    with pytest.raises(InvalidRequest, match="at least"):
        NextContentPrefixSpan().evaluate([[1, 2]] * 10)
    one = pd.DataFrame({"订单": range(300), "商品": ["a", "b", "c"] * 100})
    with pytest.raises(InvalidRequest, match="'订单'.*one item per session.*nothing to sequence"):
        NextContentPrefixSpan(session="订单", item="商品").evaluate(one)
    log = pd.DataFrame({"u": np.repeat(range(150), 2), "app": ["a", "b"] * 150, "when": ["later"] * 300})
    with pytest.raises(InvalidRequest, match="'when'"):
        NextContentPrefixSpan(session="u", item="app", time="when").evaluate(log)
    with pytest.raises(InvalidRequest, match="'应用名'.*lacks"):
        NextContentPrefixSpan(session="u", item="应用名").evaluate(log)
    with pytest.raises(InvalidRequest, match="entirely empty"):
        NextContentPrefixSpan(session="u", item="app").evaluate(log.assign(app=None))


def test_jieba_reference_drops_spaces():
    assert "".join(jieba_words("中国 移动")) == "中国移动"


@pytest.mark.slow
def test_prefixspan_on_one_row_per_session_with_the_sequence_in_a_column():
    s = datasets.load_msnbc(limit=53_000)
    df = pd.DataFrame({"会话编号": [f"V{i}" for i in range(3000)],
                       "访问路径": [" → ".join(s.categories[c] for c in q) for q in s.sequences[50_000:53_000]]})
    m = NextContentPrefixSpan(session="会话编号", sequence="访问路径")
    ev = m.evaluate(df)
    assert m.binding_.columns == {"sequence": "访问路径", "session": "会话编号"}
    assert "one per row of '访问路径'" in ev.explanation["notes"][0]
    assert m.sequences(df)[0][0] == [s.categories[c] for c in s.sequences[50_000]]
    assert ev.metrics["hit@3"] > ev.baseline["hit@3"]
    out = m.predict_table(df.head(5))
    assert out["会话编号"].iloc[0] == "V0"
    with pytest.raises(InvalidRequest, match="holds one item"):
        NextContentPrefixSpan(sequence="访问路径").evaluate(df.assign(访问路径="news"))
    with pytest.raises(InvalidRequest, match="leave item and time unbound"):
        NextContentPrefixSpan(sequence="访问路径", item="会话编号").evaluate(df)


def _hotel_reviews(n: int = 1500) -> pd.DataFrame:
    from pathlib import Path

    for root in (Path(__file__).resolve().parents[3] / "shared" / "data", Path("/work/shared/data")):
        p = root / "zh-review-sentiment" / "chnsenticorp_htl.csv"
        if p.exists():
            df = pd.read_csv(p).sample(n, random_state=5).reset_index(drop=True)
            return df.rename(columns={"text": "评价内容", "label": "情感"})
    pytest.skip("zh-review-sentiment is not in ../shared/data")


@pytest.mark.slow
def test_hmm_infers_the_text_column_of_a_review_table_and_says_what_is_evaluated():
    df = _hotel_reviews()
    m = HmmWordTagger()
    ev = m.evaluate(df)
    assert m.binding_.columns == {"text": "评价内容"} and m.binding_.inferred == ["text"]
    assert ev.explanation["split"]["protocol"] == "random 50/50 split of the rows (seeded)"
    assert "'评价内容'" in ev.explanation["evaluated"] and "jieba" in ev.explanation["evaluated"]
    assert ev.metrics["word_f1"] > ev.baseline["word_f1"] + 0.2
    out = m.predict_table(df.head(10))
    assert list(out.columns[: len(df.columns)]) == list(df.columns) and out["words"].str.len().gt(0).all()
