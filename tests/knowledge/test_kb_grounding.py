"""The grounding verifier on real passage text: invented numbers, bare markers, units, quotes."""

from __future__ import annotations

from zhinao.knowledge.grounding import cn_digits, facts, quote, sentences, verify

PLAN = ("畅享 59 元套餐：月租 59 元，包含国内通用流量 30GB、国内主叫通话 200 分钟。超出流量按 3 元/GB 收费，"
        "当月封顶 60 元后降速至 1Mbps。")
ROAMING = "The Asia day pass costs 25 yuan per day and covers Japan, South Korea, Singapore, Thailand and Malaysia."


def test_a_grounded_answer_passes():
    g = verify("59 元套餐包含 30GB 流量和 200 分钟通话，超出后当月封顶 60 元 [1]", [PLAN])
    assert g.ok and set(g.facts) >= {"59元", "30gb", "200分钟", "60元"}, g


def test_fabricated_numbers_are_caught():
    """The misses of issue 11: a price the passage does not hold, 5 minutes for 500, 26 for 260."""
    assert verify("一个月一共18元 [1]", [PLAN]).unsupported == ["18元"]
    assert verify("包含 5分钟语音 [1]", ["套餐含国内语音 500 分钟。"]).unsupported == ["5分钟"]
    assert not verify("月租 26 元", ["月租 260 元。"]).ok
    assert not verify("It costs 35 yuan per day [1].", [ROAMING]).ok
    assert verify("It costs 25 yuan per day [1].", [ROAMING]).ok


def test_units_must_match_and_synonyms_fold():
    assert not verify("超出后送 3GB", [PLAN]).ok  # the passage's 3 is yuan (3 元/GB), not 3 GB
    assert verify("流量 30G", [PLAN]).ok  # G = GB
    assert verify("月租59块", [PLAN]).ok  # 块 = 元
    assert not verify("流量 200GB", [PLAN]).ok  # 200 is minutes there, not GB


def test_a_marker_alone_is_never_an_answer():
    assert verify("[1]", [PLAN]).reason == "marker only"
    assert not verify("【2】。", [PLAN]).ok
    assert verify("", [PLAN]).reason == "empty"


def test_names_and_chinese_numerals():
    assert not verify("Covers Japan and Vietnam [1].", [ROAMING]).ok  # Vietnam is not in the passage
    assert verify("Covers Japan and Malaysia [1].", [ROAMING]).ok
    assert verify("个人套餐分为 3 档 [1]", ["星河通信的个人套餐分为三档。"]).ok
    assert cn_digits("十二个月，两年，一百二十天") == "12个月，2年，120天"
    assert any(f.kind == "name" and f.text == "VoLTE" for f in facts("需要开通 VoLTE 功能"))


def test_quote_grows_a_lead_in_into_its_list_and_skips_an_faq_question():
    passage = "办理方式：\n1、发送短信 KT 到 10086；\n2、登录 App 办理。\n其他说明见官网。"
    assert sentences(passage)[:2] == ["办理方式：", "1、发送短信 KT 到 10086；"]
    q = quote(passage, "办理方式：")
    assert "10086" in q and "登录 App" in q and "官网" not in q
    assert quote("问：补卡收费吗？答：补卡免费。", "问：补卡收费吗？") == "补卡免费。"
    assert quote("挂失后凭身份证补卡。问：补卡要多少钱？答：免费。", "挂失后凭身份证补卡。") == "挂失后凭身份证补卡。"
