"""Citations people can use: section heading, page and the cited sentence, through the service, the API
and ``zhinao kb ask`` (real app, real Milvus Lite, hash embedder, echo model)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from test_kb_ingest import make_pdf
from typer.testing import CliRunner

from zhinao.knowledge.citing import annotate, cited_sentence, excerpt

AUTH = {"Authorization": "Bearer zk-admin-test-key-000000000000"}
FAQ = """# 星河通信常见问题

## 亲情号码

亲情号码最多可以添加 4 个成员。成员之间互相通话免费，不限时长。主卡每月收取 5 元功能费。

## 停机保号

停机保号每月收取 3 元功能费。保号期最长 12 个月，到期后自动复机。
""".encode()
PDF = make_pdf(["Roaming day pass costs 25 yuan per day in Asia.", "Number portability is free of charge."])


def test_the_cited_sentence_is_the_one_the_answer_draws_on():
    passage = "亲情号码最多可以添加 4 个成员。成员之间互相通话免费，不限时长。主卡每月收取 5 元功能费。"
    assert cited_sentence("主卡每个月要交 5 元。", passage) == "主卡每月收取 5 元功能费。"
    assert cited_sentence("成员之间通话免费 [1]", passage) == "成员之间互相通话免费，不限时长。"
    # no answer text to go on: the question decides; nothing shared: no sentence rather than a wrong one
    assert cited_sentence("", passage, question="能添加几个成员？") == "亲情号码最多可以添加 4 个成员。"
    assert cited_sentence("weather tomorrow", passage) is None


def test_the_excerpt_holds_the_sentence_and_an_answer_step_may_set_its_own():
    long = "前言。" * 120 + "目标句：保号期最长 12 个月。" + "结尾。" * 120
    ex = excerpt(long, "目标句：保号期最长 12 个月。", limit=100)
    assert "目标句：保号期最长 12 个月。" in ex and len(ex) <= 100
    cites = [{"n": 1, "passage_id": "1:1:0", "heading": ["常见问题", "停机保号"], "cited": True,
              "snippet": long[:300], "sentence": "结尾。"},
             {"n": 2, "passage_id": "1:1:1", "heading": [], "cited": False, "snippet": "停机保号每月收取 3 元功能费。"}]
    annotate(cites, "保号期最长 12 个月", "保号多久", {"1:1:0": long})
    assert cites[0]["sentence"] == "结尾。"  # set by the answering step: kept
    assert cites[0]["heading_path"] == "常见问题 > 停机保号" and cites[0]["excerpt"].count("结尾。") >= 1
    assert cites[1]["sentence"] == "停机保号每月收取 3 元功能费。"  # uncited: matched to the question
    assert cites[1]["heading_path"] == ""


@pytest.fixture
def client(settings):
    from zhinao.gateway.app import create_app
    from zhinao.platform import Platform

    platform = Platform(settings)
    platform.knowledge.config.min_relevance = -1.0  # HashEmbedder similarities are not e5's
    with TestClient(create_app(platform, warm_default=False)) as c:
        r = c.post("/api/kb/collections", json={"name": "cs"}, headers=AUTH)
        assert r.status_code == 201, r.text
        r = c.post("/api/kb/cs/documents", headers=AUTH, data={"wait": "true"},
                   files=[("files", ("faq.md", FAQ, "text/markdown")),
                          ("files", ("roaming.pdf", PDF, "application/pdf"))])
        assert r.status_code == 202 and r.json()["job"]["status"] == "succeeded", r.text
        yield c


def _check(c: dict, passage_text: str) -> None:
    assert c["sentence"] and c["sentence"] in passage_text  # a sentence of the cited passage, verbatim
    assert c["sentence"] in c["excerpt"] and len(c["excerpt"]) <= 300
    assert c["heading_path"] == " > ".join(c["heading"])


def test_chat_citations_carry_heading_page_and_sentence(client):
    r = client.post("/api/kb/cs/chat", headers=AUTH,
                    json={"messages": [{"role": "user", "content": "停机保号每月收取多少功能费？"}]})
    assert r.status_code == 200, r.text
    cites = r.json()["citations"]
    top = cites[0]
    assert top["heading"] == ["星河通信常见问题", "停机保号"] and top["page"] is None
    passage = client.get(top["url"], headers=AUTH).json()["text"]
    _check(top, passage)
    assert "3 元" in top["sentence"]

    r = client.post("/api/kb/cs/chat", headers=AUTH,
                    json={"messages": [{"role": "user", "content": "How much is the Asia roaming day pass?"}]})
    pdf = [c for c in r.json()["citations"] if c["source"] == "roaming.pdf"]
    assert pdf and pdf[0]["page"] == 1  # the page the passage is on
    _check(pdf[0], client.get(pdf[0]["url"], headers=AUTH).json()["text"])


def test_streamed_citations_are_annotated_too(client):
    events = []
    with client.stream("POST", "/api/kb/cs/chat", headers=AUTH,
                       json={"messages": [{"role": "user", "content": "亲情号码能加几个成员"}], "stream": True}) as s:
        for line in s.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    done = [e for e in events if e.get("type") == "done"]
    assert done and done[-1]["citations"], events
    top = done[-1]["citations"][0]
    assert top["heading"][-1] == "亲情号码"
    _check(top, client.get(top["url"], headers=AUTH).json()["text"])


def test_kb_ask_prints_the_section_heading_and_the_cited_sentence(settings, tmp_path):
    from zhinao.cli.kb import app

    runner = CliRunner()
    f = tmp_path / "faq.md"
    f.write_bytes(FAQ)
    r = runner.invoke(app, ["add", str(f), "-c", "cs"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ask", "停机保号每月收取多少功能费？", "-c", "cs"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    cite = next(i for i, ln in enumerate(lines) if "[1]" in ln and "星河通信常见问题" in ln)
    assert "星河通信常见问题 > 停机保号" in lines[cite]  # the passage's section, not only the file's title
    assert lines[cite + 1].strip().startswith("“") and "停机保号" in lines[cite + 1]  # the cited sentence
    r = runner.invoke(app, ["ask", "停机保号每月收取多少功能费？", "-c", "cs", "--json"])
    top = json.loads(r.stdout)["citations"][0]
    assert top["heading_path"] == "星河通信常见问题 > 停机保号" and top["sentence"] in FAQ.decode()
