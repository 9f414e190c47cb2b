"""Datasets from stored feedback: pairs and demonstrations, scrubbing, dedupe, the split, JSONL, versions."""

from __future__ import annotations

import json

import pytest

from zhinao.alignment import datasets as ds
from zhinao.alignment.scrub import scrub, valid_cn_id
from zhinao.errors import InvalidRequest
from zhinao.maas.conversations import ConversationService
from zhinao.store.models import Tenant

TENANT = 1


def _tenant(db):
    with db.session() as s:
        if s.get(Tenant, TENANT) is None:
            s.add(Tenant(id=TENANT, name="t1"))


def _turn(conv, cid, question, answer, parent=None, user=None):
    return conv.record_turn(tenant_id=TENANT, user_id=user, key_id=None, model="m",
                            messages=[{"role": "user", "content": question}], params={}, response=answer,
                            tool_calls=None, finish_reason="stop", prompt_tokens=1, completion_tokens=1,
                            latency_ms=1.0, conversation_id=cid, parent_turn_id=parent)


def test_collect_turns_corrections_and_siblings_into_records(store):
    db, _ = store
    _tenant(db)
    conv = ConversationService(db)
    cid = conv.create(TENANT, None, title="x")["id"]
    a = _turn(conv, cid, "How do I check my data balance?", "I cannot help.")
    b = _turn(conv, cid, "How do I check my data balance?", "Send CXLL to the service number.", parent=a)
    c = _turn(conv, cid, "What is roaming?", "Roaming is using another network abroad.")
    d = _turn(conv, cid, "Reset my PIN", "Call us.")
    conv.feedback(a, TENANT, None, rating=-1)
    conv.feedback(b, TENANT, None, rating=1)
    conv.feedback(c, TENANT, None, rating=1)
    conv.feedback(d, TENANT, None, rating=-1, corrected_answer="Dial the hotline and choose option 3 to reset it.")
    got = ds.collect(db, TENANT)
    pairs = {(p.chosen, p.rejected) for p in got.comparisons}
    assert ("Send CXLL to the service number.", "I cannot help.") in pairs  # 👍 sibling > 👎 sibling
    assert ("Dial the hotline and choose option 3 to reset it.", "Call us.") in pairs  # corrected > original
    demos = {x.completion for x in got.demonstrations}
    assert demos == {"Send CXLL to the service number.", "Roaming is using another network abroad.",
                     "Dial the hotline and choose option 3 to reset it."}
    assert "I cannot help." not in demos


def test_scrubber_replaces_phones_ids_emails_and_marked_names():
    # a valid check digit is computed, not copied: the scrubber must only take real ID numbers
    body = "11010519491231002"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    good = body + "10X98765432"[sum(int(x) * w for x, w in zip(body, weights)) % 11]
    assert valid_cn_id(good) and not valid_cn_id(body + ("0" if good[-1] != "0" else "1"))
    text = f"姓名：王小明，手机 138-1234-5678，身份证 {good}，邮箱 wxm@example.com，张先生说 Name: Alice Smith"
    out = scrub(text)
    for leak in ("王小明", "138-1234-5678", good, "wxm@example.com", "Alice Smith", "张先生"):
        assert leak not in out
    assert out.count("[PHONE]") == 1 and "[ID]" in out and "[EMAIL]" in out and out.count("[NAME]") == 3
    assert scrub("套餐 5G 畅享 128 元，流量 30GB") == "套餐 5G 畅享 128 元，流量 30GB"  # nothing personal: unchanged
    assert "李雷" not in scrub("请转告李雷", names=["李雷"])


def test_clean_scrubs_before_dedupe_and_drops_identical_pairs():
    p = (("user", "my number is 13912345678, what plan am I on?"),)
    q = (("user", "my number is 13800001111, what plan am I on?"),)
    recs = [ds.Comparison(p, "The 5G plan.", "No idea."), ds.Comparison(q, "The 5G plan.", "No idea."),
            ds.Comparison(p, "same", " same "), ds.Demonstration(p, "The 5G plan.")]
    out, report = ds.clean(recs)
    assert len(out) == 2  # the two phone numbers scrub to the same prompt: one comparison
    assert report["dropped"] == {"duplicate": 1, "identical_pair": 1}
    assert report["scrubbed"]["phone"] == 4
    assert all("139" not in r.prompt[0][1] for r in out)


def test_split_by_prompt_never_shares_a_prompt_and_is_deterministic():
    recs = [ds.Comparison((("user", f"question {i % 10}"),), f"good {i}", f"bad {i}") for i in range(40)]
    train, ev = ds.split_by_prompt(recs, 0.3, seed=7)
    tk = {ds.prompt_key(r.prompt) for r in train}
    ek = {ds.prompt_key(r.prompt) for r in ev}
    assert tk and ek and not tk & ek and len(ek) == 3 and len(train) + len(ev) == 40
    assert ds.split_by_prompt(recs, 0.3, seed=7) == (train, ev)
    with pytest.raises(InvalidRequest):
        ds.split_by_prompt(recs, 1.0)


def test_jsonl_round_trip_in_trl_formats(tmp_path):
    recs = [ds.Demonstration((("system", "be brief"), ("user", "hi")), "hello"),
            ds.Comparison((("user", "2+2?"),), "4", "5")]
    path = ds.write_jsonl(tmp_path / "x.jsonl", recs)
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["messages"][-1] == {"role": "assistant", "content": "hello"}
    assert lines[1]["prompt"] == [{"role": "user", "content": "2+2?"}]
    assert lines[1]["chosen"] == [{"role": "assistant", "content": "4"}]
    back = ds.read_jsonl(path)
    assert [r.to_trl() for r in back] == [r.to_trl() for r in recs]


@pytest.mark.parametrize("line, needle", [
    ({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}]}, "one-sided"),
    ({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
      "rejected": [{"role": "assistant", "content": " a"}]}, "identical"),
    ({"text": "free text"}, "expected 'messages'"),
    ({"messages": [{"role": "user", "content": "q"}]}, "assistant"),
])
def test_bad_jsonl_lines_are_refused_with_the_line_number(tmp_path, line, needle):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
                 + "\n" + json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(InvalidRequest) as e:
        ds.read_jsonl(p)
    assert needle in str(e.value) and "line 2" in str(e.value)


def test_empty_and_one_sided_datasets_are_refused(service):
    with pytest.raises(InvalidRequest, match="no demonstrations"):
        service.build_dataset(TENANT, "empty", "sft")  # nothing in the store yet
    with pytest.raises(InvalidRequest, match="no comparisons"):
        service.build_dataset(TENANT, "demos-only", "preference", [ds.Demonstration((("user", "q"),), "a")])


def test_dataset_versions_are_content_addressed(service, tmp_path):
    recs = [ds.Comparison((("user", f"q{i}"),), f"right {i}", f"wrong {i}") for i in range(10)]
    v1 = service.build_dataset(TENANT, "pairs", "preference", recs)
    again = service.build_dataset(TENANT, "pairs", "preference", list(recs))
    assert again["reused"] and again["version"] == v1["version"] == 1 and again["content_hash"] == v1["content_hash"]
    v2 = service.build_dataset(TENANT, "pairs", "preference", recs + [ds.Comparison((("user", "new"),), "x", "y")])
    assert v2["version"] == 2 and v2["content_hash"] != v1["content_hash"]
    assert service.dataset(TENANT, "pairs")["version"] == 2 and service.dataset(TENANT, "pairs@1")["id"] == v1["id"]
    train, _ = service.records(TENANT, "pairs@1", "train")
    ev, _ = service.records(TENANT, "pairs@1", "eval")
    assert len(train) == v1["n_train"] and len(ev) == v1["n_eval"] == 2
    assert not {ds.prompt_key(r.prompt) for r in train} & {ds.prompt_key(r.prompt) for r in ev}


def test_prompt_over_the_context_length_is_refused(base_home):
    from zhinao.alignment.base_models import load_tokenizer
    from zhinao.alignment.base_models import cache_dir, resolve
    from zhinao.settings import Settings

    s = Settings(home=base_home)
    tok = load_tokenizer(cache_dir(s, resolve("smollm2-135m", s)))
    short = ds.Comparison((("user", "hi"),), "a", "b")
    ds.check_lengths([short], tok, 64)
    long = ds.Comparison((("user", "word " * 200),), "a", "b")
    with pytest.raises(InvalidRequest, match="over the limit"):
        ds.check_lengths([short, long], tok, 64)


def test_agent_verdicts_become_demonstrations_and_pairs(store):
    from zhinao.agent.models import AgentAnswerRecord

    db, _ = store
    with db.session() as s:
        s.add(AgentAnswerRecord(tenant_id=TENANT, workspace="w", question="How many customers left in May?",
                                answer={"answer": "12 customers left."}, sql="SELECT count(*) FROM churn",
                                status="accepted"))
        s.add(AgentAnswerRecord(tenant_id=TENANT, workspace="w", question="Average ARPU by plan?",
                                answer={"answer": "ARPU is 50."}, sql="SELECT avg(arpu) FROM c",
                                status="corrected", correction={"sql": "SELECT plan, avg(arpu) FROM c GROUP BY plan"}))
        s.add(AgentAnswerRecord(tenant_id=TENANT + 1, workspace="w", question="other tenant", answer={"answer": "x"},
                                status="accepted"))
        s.add(AgentAnswerRecord(tenant_id=TENANT, workspace="w", question="unrated", answer={"answer": "y"}))
    got = ds.collect_agent(db, TENANT)
    assert got.stats == {"agent_answers": 2}
    texts = [d.completion for d in got.demonstrations]
    assert texts[0] == "12 customers left.\n\n```sql\nSELECT count(*) FROM churn\n```"
    assert "GROUP BY plan" in texts[1]
    (pair,) = got.comparisons
    assert "GROUP BY plan" in pair.chosen and "GROUP BY" not in pair.rejected
