"""HMM word tagging on THUCNews titles and PrefixSpan next-click recommendation on MSNBC."""

from __future__ import annotations

import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog.sequence import (HmmWordTagger, NextContentPrefixSpan, max_match, to_sequences,
                                               word_prf)
from zhinao.errors import InvalidRequest


def test_word_prf_counts_boundaries():
    ref = [["中国", "移动", "用户"]]
    assert word_prf(ref, ref)["word_f1"] == 1.0
    m = word_prf(ref, [["中国移动", "用户"]])
    assert m["word_precision"] == pytest.approx(0.5) and m["word_recall"] == pytest.approx(1 / 3)


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
    assert ev.metrics["word_f1"] > ev.baseline["word_f1"] + 0.3
    assert ev.metrics["word_f1"] > 0.65
    assert ev.explanation["oov_recall"] > 0.3
    assert ev.explanation["split"]["protocol"].startswith("the dataset's own split")
    new = [d["word"] for d in ev.explanation["new_words_not_in_jieba_dictionary"]]
    assert new and all(len(w) >= 2 for w in new)
    out = m.predict_table(pd.DataFrame({"text": ["中国移动发布5G新套餐"]}))
    assert out["words"].iloc[0].replace(" / ", "") == "中国移动发布5G新套餐"


@pytest.mark.slow
def test_prefixspan_next_click_beats_most_popular():
    m = NextContentPrefixSpan(max_sessions=20_000)
    ev = m.evaluate(datasets.load_msnbc(limit=20_000))
    assert ev.metrics["hit@3"] > ev.baseline["hit@3"] + 0.1
    assert ev.metrics["mrr@3"] > ev.baseline["mrr@3"]
    assert ev.explanation["n_patterns"] > 50
    pats = ev.explanation["top_patterns"]
    assert pats == sorted(pats, key=lambda p: -p["support"])
    assert len(m.recommend([1, 2], 3)) == 3


def test_sequence_table_and_bad_inputs():
    df = pd.DataFrame({"session_id": [1, 1, 2], "position": [1, 0, 0], "category": ["b", "a", "c"]})
    assert to_sequences(df) == [["a", "b"], ["c"]]
    with pytest.raises(InvalidRequest, match="session_id"):
        to_sequences(pd.DataFrame({"x": [1]}))
    with pytest.raises(InvalidRequest, match="text"):
        HmmWordTagger().fit(pd.DataFrame({"title": ["a"]}))
    with pytest.raises(InvalidRequest, match="at least"):
        NextContentPrefixSpan().evaluate([[1, 2]] * 10)
