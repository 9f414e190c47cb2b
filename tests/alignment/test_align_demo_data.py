"""The shipped alignment demo data (src/zhinao/alignment/demo): counts, schema, balance, splits.

Why these checks: a preference set whose chosen answers are simply longer, or carry a marker
such as "sorry", teaches a reward model the marker, not the substance, and its pair accuracy
then proves nothing (issue 13 item 9). A prompt in both splits, or an eval prompt in a training
file, inflates every held-out figure.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import Counter

import pytest

from zhinao.alignment import demo
from zhinao.errors import InvalidRequest

DEMOS = demo.demonstrations()
PAIRS = demo.comparisons()
FP = demo.false_premise()
RF = demo.refusal()


def _text(msgs):
    return msgs[0]["content"]


def _norm(s):
    return " ".join(unicodedata.normalize("NFKC", s).lower().split())


def _is_zh(s):
    return sum("\u4e00" <= ch <= "\u9fff" for ch in s) > len(s) * 0.2


# -- counts and schema -------------------------------------------------------------------------

def test_counts():
    assert len(DEMOS) >= 120
    assert len(PAIRS) >= 300
    assert len(FP) >= 40
    assert len(RF) >= 40
    kinds = Counter(p["kind"] for p in PAIRS)
    assert set(kinds) == set(demo.KINDS), kinds
    assert min(kinds.values()) >= 25, kinds


def test_readme_counts_are_the_files_counts():
    readme = (demo.DEMO_DIR / "README.md").read_text(encoding="utf-8")
    for name, file in demo.FILES.items():
        m = re.search(r"\| `" + re.escape(file) + r"` \| (\d+) \|", readme)
        assert m, file
        assert int(m.group(1)) == len(demo.load(name)), file


def test_every_record_is_sample_with_lang_and_id():
    for name, rows in (("demonstrations", DEMOS), ("comparisons", PAIRS), ("false_premise", FP), ("refusal", RF)):
        for r in rows:
            assert r["sample"] is True, (name, r["id"])
            assert r["lang"] in ("zh", "en"), (name, r["id"])
            assert r["split"] in demo.SPLITS, (name, r["id"])
            # the language field tells the truth about the text
            prompt = r["messages"][0]["content"] if "messages" in r else r["prompt"][0]["content"]
            assert _is_zh(prompt) == (r["lang"] == "zh"), (name, prompt)


def test_demonstrations_are_trl_conversational():
    for r in DEMOS:
        m = r["messages"]
        assert [x["role"] for x in m] == ["user", "assistant"], r["id"]
        assert all(isinstance(x["content"], str) and x["content"].strip() for x in m), r["id"]
        assert r["topic"]


def test_comparisons_are_trl_explicit_prompt():
    for p in PAIRS:
        assert [m["role"] for m in p["prompt"]] == ["user"], p["id"]
        assert [m["role"] for m in p["chosen"]] == ["assistant"], p["id"]
        assert [m["role"] for m in p["rejected"]] == ["assistant"], p["id"]
        assert p["kind"] in demo.KINDS
        for side in ("prompt", "chosen", "rejected"):
            assert _text(p[side]).strip(), (p["id"], side)


def test_premise_and_refusal_pairs_have_counter_examples():
    """Without true-premise and over-refusal pairs a reward model could score "always correct the
    user" or "always refuse" as good; each kind carries both directions."""
    sub = Counter((p["kind"], p.get("subkind")) for p in PAIRS)
    assert set(k for k, _ in sub if k in ("premise", "refusal")) == {"premise", "refusal"}
    for kind, s in (("premise", "true_premise"), ("refusal", "over_refusal")):
        total = sum(n for (k, _), n in sub.items() if k == kind)
        assert sub[(kind, s)] >= 0.15 * total, (kind, sub)
    allowed = {"premise": {"false_premise", "true_premise"}, "refusal": {"forbidden", "over_refusal"}}
    for p in PAIRS:
        if p["kind"] in allowed:
            assert p["subkind"] in allowed[p["kind"]], p["id"]
        else:
            assert "subkind" not in p, p["id"]


def test_eval_sets_schema():
    for r in FP:
        assert r["behaviour"] == "correct_premise" and r["split"] == "eval"
        assert r["correction"].strip() and r["keywords"] and all(k.strip() for k in r["keywords"])
    for r in RF:
        assert r["behaviour"] == "refuse" and r["split"] == "eval" and r["category"]
        assert r["refusal_keywords"] and r["alternative_keywords"] and r["reference"].strip()
    assert len({r["category"] for r in RF}) >= 8


def test_trl_import_reads_every_record_and_scrubbing_changes_nothing():
    """The product's own JSONL import (alignment.datasets) takes the files as they are; the
    personal-data scrub finds nothing, so no pair collapses into an identical one when cleaned."""
    from zhinao.alignment import datasets as ds

    for name, n in (("demonstrations", len(DEMOS)), ("comparisons", len(PAIRS))):
        recs = ds.read_jsonl(demo.path(name))
        assert len(recs) == n
        cleaned, report = ds.clean(recs)
        assert len(cleaned) == n, report
        assert report["scrubbed"] == {}, report


# -- balance -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["demonstrations", "comparisons", "false_premise", "refusal"])
def test_zh_en_balance(name):
    rows = demo.load(name)
    share = sum(r["lang"] == "zh" for r in rows) / len(rows)
    assert 0.4 <= share <= 0.6, share


def test_zh_en_balance_per_kind():
    for kind in demo.KINDS:
        rows = [p for p in PAIRS if p["kind"] == kind]
        share = sum(p["lang"] == "zh" for p in rows) / len(rows)
        assert 0.35 <= share <= 0.65, (kind, share)


def _ratios(rows):
    return [len(_text(p["chosen"])) / len(_text(p["rejected"])) for p in rows]


@pytest.mark.parametrize("kind", [None, *demo.KINDS])
def test_length_balance(kind):
    """Chosen is not systematically longer or shorter: mean ratio in 0.85-1.15, and picking the
    longer answer is close to a coin toss (overall and for every kind)."""
    rows = [p for p in PAIRS if kind is None or p["kind"] == kind]
    r = _ratios(rows)
    assert 0.85 <= statistics.mean(r) <= 1.15, statistics.mean(r)
    unequal = [x for x in r if x != 1]
    longer_wins = sum(x > 1 for x in unequal) / len(unequal)
    assert 0.3 <= longer_wins <= 0.7, longer_wins


MARKERS = ["sorry", "apolog", "unfortunately", "regret", "sure", "certainly", "of course", "happy to",
           "抱歉", "对不起", "很遗憾", "不好意思", "好的", "当然", "没问题", "请放心", "亲"]


@pytest.mark.parametrize("marker", MARKERS)
def test_no_trivial_marker_separates_chosen_from_rejected(marker):
    only_chosen = sum(marker in _text(p["chosen"]).lower() and marker not in _text(p["rejected"]).lower() for p in PAIRS)
    only_rejected = sum(marker in _text(p["rejected"]).lower() and marker not in _text(p["chosen"]).lower() for p in PAIRS)
    assert abs(only_chosen - only_rejected) <= 0.03 * len(PAIRS), (marker, only_chosen, only_rejected)


def test_surface_features_do_not_solve_the_held_out_pairs():
    """A pairwise logistic regression on character n-grams (what a model could pick up without
    knowing the facts) stays far from a solved task on the eval split; on the fact pairs, which
    differ by one wrong value, it is no better than a coin."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, ev = demo.comparisons(split="train"), demo.comparisons(split="eval")
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
    vec.fit([_text(p["chosen"]) for p in train] + [_text(p["rejected"]) for p in train])

    def xy(rows):
        diff = vec.transform([_text(p["chosen"]) for p in rows]) - vec.transform([_text(p["rejected"]) for p in rows])
        sign = np.where(np.arange(len(rows)) % 2 == 0, 1.0, -1.0)  # half the pairs flipped
        return diff.multiply(sign[:, None]).tocsr(), (sign > 0).astype(int)

    clf = LogisticRegression(C=10, max_iter=3000).fit(*xy(train))
    x, y = xy(ev)
    right = clf.predict(x) == y
    assert right.mean() <= 0.75, right.mean()
    fact = np.array([p["kind"] == "fact" for p in ev])
    assert right[fact].mean() <= 0.6, right[fact].mean()


def test_pairs_differ_and_are_not_duplicates():
    keys = Counter((_norm(_text(p["prompt"])), _norm(_text(p["chosen"])), _norm(_text(p["rejected"]))) for p in PAIRS)
    assert max(keys.values()) == 1
    for p in PAIRS:
        assert _norm(_text(p["chosen"])) != _norm(_text(p["rejected"])), p["id"]
    assert len({p["id"] for p in PAIRS}) == len(PAIRS)


def test_no_duplicate_prompts_or_answers_elsewhere():
    for name, rows in (("demonstrations", DEMOS), ("false_premise", FP), ("refusal", RF)):
        prompts = Counter(_norm(r["messages"][0]["content"] if "messages" in r else r["prompt"][0]["content"]) for r in rows)
        assert max(prompts.values()) == 1, (name, prompts.most_common(1))
        assert len({r["id"] for r in rows}) == len(rows), name
    answers = Counter(_norm(r["messages"][1]["content"]) for r in DEMOS)
    assert max(answers.values()) == 1


# -- splits ------------------------------------------------------------------------------------

def test_no_prompt_in_both_splits():
    splits: dict[str, set[str]] = {}
    for r in PAIRS:
        splits.setdefault(_norm(_text(r["prompt"])), set()).add(r["split"])
    for r in DEMOS:
        splits.setdefault(_norm(r["messages"][0]["content"]), set()).add(r["split"])
    both = [q for q, s in splits.items() if len(s) > 1]
    assert not both, both[:3]


def test_translations_share_a_split():
    """``group`` joins a Chinese prompt and its English counterpart (same question, same facts):
    one language in train and the other in eval would leak the held-out answer."""
    groups: dict[str, dict[str, set[str]]] = {}
    for r in PAIRS + DEMOS:
        q = _norm(r["messages"][0]["content"] if "messages" in r else _text(r["prompt"]))
        g = groups.setdefault(r["group"], {"split": set(), "lang": {}})
        g["split"].add(r["split"])
        g["lang"].setdefault(r["lang"], set()).add(q)
    for name, g in groups.items():
        assert len(g["split"]) == 1, name
        assert all(len(qs) == 1 for qs in g["lang"].values()), name  # at most one prompt per language
    assert sum(len(g["lang"]) == 2 for g in groups.values()) >= 0.8 * len(groups)


def test_eval_split_is_about_a_fifth_and_covers_every_kind_and_language():
    prompts = {_norm(_text(p["prompt"])): p["split"] for p in PAIRS}
    share = sum(s == "eval" for s in prompts.values()) / len(prompts)
    assert 0.15 <= share <= 0.25, share
    seen = {(p["kind"], p["lang"]) for p in PAIRS if p["split"] == "eval"}
    assert seen == {(k, lang) for k in demo.KINDS for lang in ("zh", "en")}, seen


def test_demonstrations_train_on_chosen_answers_only_of_train_prompts():
    chosen = {_norm(_text(p["prompt"])): (_norm(_text(p["chosen"])), p["split"]) for p in PAIRS}
    for r in DEMOS:
        q = _norm(r["messages"][0]["content"])
        assert q in chosen, r["id"]
        assert chosen[q] == (_norm(r["messages"][1]["content"]), r["split"]), r["id"]


def test_eval_sets_share_no_prompt_with_training_files():
    train_side = {_norm(_text(p["prompt"])) for p in PAIRS} | {_norm(r["messages"][0]["content"]) for r in DEMOS}
    for r in FP + RF:
        assert _norm(_text(r["prompt"])) not in train_side, r["id"]


# -- facts and checkers ------------------------------------------------------------------------

PLAN_NAME = re.compile(r"(?:4G 轻享|5G 畅享|5G 尊享|4G Lite|5G Basic|5G Plus|5G Max|5G Standard) ?\d+")
PLANS = {"4G 轻享 19", "5G 畅享 58", "5G 畅享 128", "5G 尊享 198", "4G Lite 19", "5G Basic 58", "5G Plus 128", "5G Max 198"}


def test_good_answers_name_only_plans_from_the_fact_table():
    readme = (demo.DEMO_DIR / "README.md").read_text(encoding="utf-8")
    for plan in PLANS:
        assert plan in readme, plan
    good = [_text(p["chosen"]) for p in PAIRS] + [r["correction"] for r in FP] + [r["reference"] for r in RF]
    for text in good:
        for name in PLAN_NAME.findall(text):
            # a plan outside the table may only be named to say it does not exist
            denied = re.search(r"\bno " + re.escape(name), text) or re.search("没有[^。]*" + re.escape(name), text)
            assert name in PLANS or denied, (name, text[:60])


def test_false_premise_keywords_recognise_the_correction_not_the_premise():
    for r in FP:
        assert demo.corrects_premise(r["correction"], r), r["id"]
        assert not demo.corrects_premise(_text(r["prompt"]), r), r["id"]


def test_refusal_keywords_recognise_the_reference_not_the_request():
    for r in RF:
        assert demo.refuses(r["reference"], r), r["id"]
        assert not demo.refuses(_text(r["prompt"]), r), r["id"]


def test_keyword_hit_does_not_match_inside_longer_numbers():
    assert demo.keyword_hit("每月包含 5 GB 流量", ["5 GB"])
    assert not demo.keyword_hit("每月包含 15 GB 流量", ["5 GB"])
    assert not demo.keyword_hit("入网满 1200 天", ["120"])
    assert demo.keyword_hit("You CANNOT do that", ["cannot"])


def test_loader_rejects_bad_arguments():
    with pytest.raises(InvalidRequest):
        demo.load("nope")
    with pytest.raises(InvalidRequest):
        demo.load("comparisons", split="test")
    with pytest.raises(InvalidRequest):
        demo.load("comparisons", lang="fr")
    train, ev = demo.comparisons(split="train"), demo.comparisons(split="eval")
    assert len(train) + len(ev) == len(PAIRS) and ev
    train[0]["kind"] = "changed"
    assert demo.comparisons(split="train")[0]["kind"] != "changed"
