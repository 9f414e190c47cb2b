"""/api/kb through the real app (TestClient), and kb:<collection> on /v1/chat/completions."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from zhinao.gateway.app import create_app
from zhinao.platform import Platform

AUTH = {"Authorization": "Bearer zk-admin-test-key-000000000000"}


@pytest.fixture
def client(settings):
    platform = Platform(settings)
    platform.knowledge.config.min_relevance = -1.0  # HashEmbedder similarities are not e5's
    platform.knowledge.config.max_upload_bytes = 4000
    with TestClient(create_app(platform, warm_default=False)) as c:
        yield c


def test_collection_upload_search_chat_delete(client):
    r = client.post("/api/kb/collections", json={"name": "cs", "description": "客服"}, headers=AUTH)
    assert r.status_code == 201, r.text
    files = [("files", ("mnp.md", "# 携号转网\n\n## 条件\n\n在网满 120 天。".encode(), "text/markdown")),
             ("files", ("bad.exe", b"MZ", "application/octet-stream")),
             ("files", ("faq.jsonl", '{"q": "补卡收费吗？", "a": "补卡免费。"}'.encode(), "application/json"))]
    r = client.post("/api/kb/cs/documents", files=files, data={"tags": "policy,sample", "wait": "true"},
                    headers=AUTH)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == ["mnp.md", "faq.jsonl"] and body["rejected"][0]["code"] == "unsupported_type"
    assert body["job"]["status"] == "succeeded"
    docs = client.get("/api/kb/cs/documents", headers=AUTH).json()
    assert {d["source"]: d["status"] for d in docs} == {"mnp.md": "ready", "faq.jsonl": "ready"}
    assert all(d["tags"] == ["policy", "sample"] for d in docs)

    res = client.get("/api/kb/search", params={"q": "携号转网条件", "collection": "cs"}, headers=AUTH).json()
    assert res["results"][0]["source"] == "mnp.md"
    link = res["results"][0]["passages"][0]["url"]
    assert client.get(link, headers=AUTH).json()["text"] == "在网满 120 天。"

    r = client.post("/api/kb/cs/chat", json={"messages": [{"role": "user", "content": "携号转网条件"}]}, headers=AUTH)
    assert r.status_code == 200 and r.json()["citations"][0]["title"] == "携号转网"

    with client.stream("POST", "/api/kb/cs/chat", headers=AUTH,
                       json={"messages": [{"role": "user", "content": "补卡收费吗"}], "stream": True}) as s:
        events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
    assert events[0]["type"] == "citations" and events[0]["citations"]
    # extractive answers (the default): the FAQ's answer line, cited [1]
    assert "".join(e.get("content", "") for e in events if e["type"] == "delta") == "补卡免费。 [1]"
    assert events[-1]["found"] is True
    assert events[-1]["type"] == "done"

    r = client.post("/v1/chat/completions", headers=AUTH,
                    json={"model": "kb:cs", "messages": [{"role": "user", "content": "携号转网条件"}]})
    assert r.status_code == 200, r.text
    assert r.json()["citations"][0]["title"] == "携号转网"

    doc_id = next(d["id"] for d in docs if d["source"] == "mnp.md")
    assert client.delete(f"/api/kb/cs/documents/{doc_id}", headers=AUTH).status_code == 200
    assert client.get(link, headers=AUTH).status_code == 404


def test_errors_are_4xx(client):
    assert client.get("/api/kb/nope/documents", headers=AUTH).status_code == 404
    assert client.get("/api/kb/collections").status_code == 401
    client.post("/api/kb/collections", json={"name": "x"}, headers=AUTH)
    assert client.post("/api/kb/collections", json={"name": "x"}, headers=AUTH).status_code == 409
    assert client.post("/api/kb/collections", json={"name": "bad name!"}, headers=AUTH).status_code == 400
    big = [("files", ("big.txt", b"a" * 5000, "text/plain"))]
    assert client.post("/api/kb/x/documents", files=big, headers=AUTH).status_code == 413
    batch = [("files", ("big.txt", b"a" * 5000, "text/plain")), ("files", ("ok.txt", "补卡免费。".encode(), "text/plain")),
             ("files", ("e.txt", b"", "text/plain")), ("files", ("x.bin", b"\x00\x01", "application/octet-stream"))]
    r = client.post("/api/kb/x/documents", files=batch, data={"wait": "true"}, headers=AUTH)
    assert r.status_code == 202, r.text  # the good file goes on; each bad one has its own error
    assert r.json()["accepted"] == ["ok.txt"]
    assert [(x["source"], x["status"], x["code"]) for x in r.json()["rejected"]] == [
        ("big.txt", 413, "payload_too_large"), ("e.txt", 400, "empty_file"), ("x.bin", 400, "unsupported_type")]
    assert r.json()["job"]["result"]["counts"] == {"added": 1}
    empty = [("files", ("e.txt", b"", "text/plain"))]
    r = client.post("/api/kb/x/documents", files=empty, headers=AUTH)
    assert r.status_code == 400 and "empty" in r.text
    assert client.get("/api/kb/search", params={"q": "x", "mode": "magic"}, headers=AUTH).status_code == 400


def test_retrieve_with_rerankers_and_a_clear_400_for_unknown_ones(client):
    assert client.post("/api/kb/collections", json={"name": "rr"}, headers=AUTH).status_code == 201
    files = [("files", (f"d{i}.md", f"# 资费 {i}\n\n漫游资费条款 {i}。".encode(), "text/markdown")) for i in range(6)]
    assert client.post("/api/kb/rr/documents", files=files, data={"wait": "true"}, headers=AUTH).status_code == 202
    for name in ("none", "embedding", "overlap"):
        r = client.get("/api/kb/rr/retrieve", params={"q": "漫游资费", "k": 3, "rerank": name}, headers=AUTH)
        assert r.status_code == 200 and len(r.json()) == 3, (name, r.text)
    r = client.get("/api/kb/rr/retrieve", params={"q": "漫游资费", "rerank": "cross-encoder"}, headers=AUTH)
    assert r.status_code == 400 and "unknown reranker" in r.text and "overlap" in r.text


def test_reindex_rebuilds_passages_from_the_stored_originals(client):
    assert client.post("/api/kb/collections", json={"name": "ri"}, headers=AUTH).status_code == 201
    files = [("files", ("a.md", "# 漫游\n\n亚洲日包每天 25 元。".encode(), "text/markdown")),
             ("files", ("b.md", "# 宽带\n\n城区故障 24 小时内修复。".encode(), "text/markdown"))]
    assert client.post("/api/kb/ri/documents", files=files, data={"wait": "true"}, headers=AUTH).status_code == 202
    r = client.post("/api/kb/ri/reindex", params={"wait": "true"}, headers=AUTH)
    assert r.status_code == 202 and r.json()["job"]["result"]["counts"] == {"reindexed": 2}, r.text
    docs = client.get("/api/kb/ri/documents", headers=AUTH).json()
    assert sorted(d["version"] for d in docs) == [2, 2]
    hits = client.get("/api/kb/ri/retrieve", params={"q": "亚洲日包", "k": 5}, headers=AUTH).json()
    assert hits[0]["source"] == "a.md" and len({h["passage_id"] for h in hits}) == len(hits) == 2
    assert client.post("/api/kb/nope/reindex", headers=AUTH).status_code == 404
