"""Answer evaluation: correctness, faithfulness, refusal and answer rates, through the real chat path
(hash embedder, echo model) and `zhinao kb eval --unanswerable` on the CLI."""

from __future__ import annotations

import asyncio
import json

import pytest
from kbutil import ADMIN, close_service, make_service
from typer.testing import CliRunner

from zhinao.errors import InvalidRequest
from zhinao.knowledge.answer_eval import answer_metrics, contains_gold, load_questions, markdown_answers

DOCS = [("mnp.md", "# 携号转网\n\n## 办理条件\n\n号码在网时间满 120 天，且没有欠费。\n\n## 授权码\n\n"
                   "发送短信 SQXH 到 10086 获取授权码，授权码 24 小时内有效。"),
        ("plans.md", "# 套餐\n\n## 畅享 59 元套餐\n\n月租 59 元，包含国内通用流量 30GB、国内主叫通话 200 分钟。\n\n"
                     "## 副卡\n\n每张副卡每月 10 元，共享主卡流量。")]


def test_contains_gold_accepts_the_fact_not_a_near_miss():
    assert contains_gold("授权码 24 小时内有效。 [1]", "24 小时内有效")
    assert contains_gold("包含 30 GB 国内通用流量和 200 分钟", "国内通用流量 30GB、国内主叫通话 200 分钟")
    assert not contains_gold("包含 30 GB 国内通用流量和 20 分钟", "国内通用流量 30GB、国内主叫通话 200 分钟")
    assert not contains_gold("授权码很快失效", "24 小时内有效")
    assert contains_gold("个人套餐分为 3 档", "分为三档")


def test_load_questions_says_what_is_wrong(tmp_path):
    bad = tmp_path / "u.jsonl"
    bad.write_text('{"q": "x"}\n', encoding="utf-8")
    with pytest.raises(InvalidRequest, match="line 1 needs a 'question'"):
        load_questions(bad)
    with pytest.raises(InvalidRequest, match="cannot read the question file"):
        load_questions(tmp_path / "missing.jsonl")


def test_metrics_through_the_chat_path(tmp_path):
    svc = make_service(tmp_path)
    try:
        svc.create_collection(ADMIN, "cs")
        svc.add_documents(ADMIN, "cs", [(n, t.encode()) for n, t in DOCS], wait=True)
        ans = [{"question": "授权码多久有效？", "gold": "24 小时内有效", "source": "mnp.md"},
               {"question": "副卡每月多少钱？", "gold": "每张副卡每月 10 元", "source": "plans.md"}]
        una = [{"question": "渔船上的海洋专线套餐每月多少钱？"}, {"question": "卫星宽带的安装费是多少？"}]
        m = asyncio.run(answer_metrics(svc, ADMIN, "cs", ans, una))
        rows = m["rows"]
        assert [r["kind"] for r in rows] == ["answerable"] * 2 + ["unanswerable"] * 2
        assert m["answer_rate"] == sum(r["found"] for r in rows[:2]) / 2
        assert m["refusal_rate"] == sum(not r["found"] for r in rows[2:]) / 2
        assert m["correctness"] == sum(bool(r.get("correct")) for r in rows[:2]) / 2
        assert m["refusal_rate"] == 1.0 and m["correctness"] == 1.0 and m["faithfulness"] == 1.0, rows
        assert m["p50_s"] > 0 and "total_s" in m["mean_step_s"]
        assert "| default | 100% of 2 |" in markdown_answers({"default": m})
    finally:
        close_service(svc)


def test_kb_eval_reports_answer_metrics(settings, tmp_path):
    from zhinao.cli.kb import app

    runner = CliRunner()
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS:
        (folder / name).write_text(text, encoding="utf-8")
    assert runner.invoke(app, ["add", str(folder), "-c", "cs"]).exit_code == 0
    qa, una = tmp_path / "qa.jsonl", tmp_path / "una.jsonl"
    qa.write_text(json.dumps({"question": "授权码多久有效？", "source": "mnp.md", "gold": "24 小时内有效"},
                             ensure_ascii=False) + "\n", encoding="utf-8")
    una.write_text(json.dumps({"question": "渔船上的海洋专线套餐每月多少钱？"}, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    r = runner.invoke(app, ["eval", str(qa), "-c", "cs", "--json", "--modes", "bm25", "--answers", "1",
                            "--unanswerable", str(una)])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)["answer_metrics"]["default"]
    assert m["answerable"] == 1 and m["unanswerable"] == 1 and m["refusal_rate"] == 1.0, m
    r = runner.invoke(app, ["eval", str(qa), "-c", "cs", "--modes", "bm25", "--unanswerable", str(una)])
    assert r.exit_code == 0 and "refused (unanswerable)" in r.output, r.output
