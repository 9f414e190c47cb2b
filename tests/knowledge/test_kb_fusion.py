"""Hybrid fusion that never loses to its parts: weighted RRF, weights chosen on the collection's own probes."""

from __future__ import annotations

import json

import pytest
from kbutil import ADMIN, close_service, make_service

from zhinao.knowledge.fusion import FusionProfile, FusionStore, fuse
from zhinao.knowledge.index import Hit
from zhinao.knowledge.probes import make_probes, paraphrase_lite


def _hit(pk: str, relevance: float | None = None) -> Hit:
    return Hit(pk=pk, doc_id=int(pk.split(":")[0]), version=1, idx=0, body=pk, relevance=relevance)


def test_weighted_rrf_and_single_list_weights():
    dense = [_hit("1:1:0", 0.9), _hit("2:1:0", 0.8), _hit("3:1:0", 0.7)]
    bm25 = [_hit("3:1:0"), _hit("4:1:0")]
    both = fuse(dense, bm25, 0.5, 0.5, rrf_k=60)
    # 3 is in both lists: 0.5/63 + 0.5/61 beats 1's 0.5/61
    assert [h.pk for h in both] == ["3:1:0", "1:1:0", "2:1:0", "4:1:0"]
    assert both[0].score == pytest.approx(0.5 / 63 + 0.5 / 61)
    assert both[0].relevance == 0.7  # the dense copy (with its cosine) is the one kept
    assert [h.pk for h in fuse(dense, bm25, 1.0, 0.0)] == ["1:1:0", "2:1:0", "3:1:0"]  # dense exactly
    assert [h.pk for h in fuse(dense, bm25, 0.0, 1.0)] == ["3:1:0", "4:1:0"]  # BM25 exactly
    # more weight on BM25 lifts its first hit over dense's first
    assert fuse(dense, bm25, 0.2, 0.8)[0].pk == "3:1:0" and fuse(dense, [_hit("4:1:0")], 0.2, 0.8)[0].pk == "4:1:0"


CHUNKS = [
    {"pk": "1:1:0", "doc_key": "1:1", "heading": ["常见问题", "亲情号码"],
     "body": "亲情号码最多可以添加四个成员。成员之间互相通话免费，不限通话时长。"},
    {"pk": "1:1:1", "doc_key": "1:1", "heading": ["常见问题", "停机保号"],
     "body": "停机保号每月收取三元功能费。保号期最长十二个月，到期以后自动恢复使用。"},
    {"pk": "1:1:2", "doc_key": "1:1", "heading": ["常见问题", "停机保号"],
     "body": "保号期最长十二个月，到期以后自动恢复使用。办理停机保号需要机主本人身份证件。"},
    {"pk": "2:1:0", "doc_key": "2:1", "heading": ["Roaming"],
     "body": "The Asia day pass costs 25 yuan and includes one gigabyte of data in twelve destinations."},
]


def test_probes_are_seeded_and_carry_their_gold():
    a, b = make_probes(CHUNKS, n=10, seed="c1"), make_probes(CHUNKS, n=10, seed="c1")
    assert [(p.query, p.gold) for p in a] == [(p.query, p.gold) for p in b]  # deterministic per collection
    titles = {p.query: p.gold for p in a if p.kind == "title"}
    # a heading names its section: every passage of it is gold
    for q, gold in titles.items():
        assert gold == frozenset(c["pk"] for c in CHUNKS if c["heading"][-1] == q)
    sentences = [p for p in a if p.kind == "sentence"]
    assert sentences and all(p.gold for p in sentences)
    # the shared sentence of the two 停机保号 passages: both are gold for a probe drawn from it
    assert len(make_probes(CHUNKS, n=10, seed="other")) <= 10


def test_paraphrase_lite_keeps_some_content_terms_in_another_order():
    import random

    s = "停机保号每月收取三元功能费，保号期最长十二个月。"
    q = paraphrase_lite(s, random.Random(1))
    assert q and q != s and "的" not in q and len(q) < len(s)


def test_the_store_keeps_one_profile_per_collection(tmp_path):
    store = FusionStore(tmp_path)
    assert store.get("zhinao_kb_1") is None
    store.put("zhinao_kb_1", FusionProfile(dense=0.8, bm25=0.2, rerank="overlap", probes=40, probe_mrr=0.9))
    got = store.get("zhinao_kb_1")
    assert (got.dense, got.bm25, got.rerank, got.label) == (0.8, 0.2, "overlap", "rrf(dense 0.8, bm25 0.2)+overlap")
    (tmp_path / "zhinao_kb_2.json").write_text("{not json")
    assert store.get("zhinao_kb_2") is None  # a torn file falls back to the default, never a 500
    store.drop("zhinao_kb_1")
    assert store.get("zhinao_kb_1") is None


FAQ = "# 星河通信常见问题\n\n" + "\n\n".join(f"## {t}\n\n{b}" for t, b in [
    ("亲情号码", "亲情号码最多可以添加四个成员，成员之间互相通话免费，主卡每月收取五元功能费。"),
    ("停机保号", "停机保号每月收取三元功能费，保号期最长十二个月，到期以后自动恢复使用。"),
    ("补办手机卡", "补办手机卡需要机主本人携带身份证原件到营业厅办理，补卡免费，新卡当场生效。"),
    ("国际漫游开通", "出国前请开通国际漫游功能，发送短信到客服号码即可开通，开通以后立即生效。"),
    ("话费账单查询", "每月账单可以在手机营业厅查询，也可以发送短信查询上月账单明细。"),
    ("宽带报修", "宽带无法上网时请先重启光猫和路由器，仍然不能上网请拨打客服电话报修，城区二十四小时内上门。"),
    ("携号转网条件", "携号转网要求号码在网满一百二十天，没有欠费，没有未到期的合约。"),
    ("流量超出计费", "套餐内流量用完以后按每兆零点二九元计费，当月封顶六十元，超过以后降速。"),
])


def test_ingestion_chooses_a_profile_that_hybrid_uses_and_reindex_recomputes(tmp_path):
    svc = make_service(tmp_path)
    try:
        svc.create_collection(ADMIN, "faq")
        assert svc.fusion_profile(ADMIN, "faq")["probes"] == 0  # untuned: equal-weight RRF
        svc.add_documents(ADMIN, "faq", [("faq.md", FAQ.encode())], wait=True)
        prof = svc.fusion_profile(ADMIN, "faq")
        assert prof["probes"] >= 8 and prof["probe_mrr"] is not None and prof["label"]
        scores = {(c["dense"], c["rerank"]): c["mrr"] for c in prof["candidates"]}
        assert len(scores) == 14 and prof["probe_mrr"] == max(scores.values())  # the best candidate was kept
        path = tmp_path / "kb" / "fusion" / f"{svc.index.prefix}1.json"
        assert json.loads(path.read_text())["label"] == prof["label"]
        # hybrid searches with it: the profile is in the scope the retriever gets
        hits = svc.retrieve(ADMIN, "faq", "停机保号", k=3)
        assert hits and hits[0].heading[-1] == "停机保号"
        path.unlink()
        svc.reindex(ADMIN, "faq", wait=True)
        assert path.exists() and svc.fusion_profile(ADMIN, "faq")["probes"] == prof["probes"]  # same probes, seeded
        svc.delete_collection(ADMIN, "faq")
        assert not path.exists()
    finally:
        close_service(svc)


def test_fusion_probes_zero_keeps_plain_rrf(tmp_path):
    svc = make_service(tmp_path, fusion_probes=0)
    try:
        svc.create_collection(ADMIN, "faq")
        svc.add_documents(ADMIN, "faq", [("faq.md", FAQ.encode())], wait=True)
        assert svc.fusion_profile(ADMIN, "faq")["probes"] == 0
        assert svc.retrieve(ADMIN, "faq", "停机保号", k=3)
    finally:
        close_service(svc)
