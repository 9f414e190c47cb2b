"""KnowledgeService on real SQLite + Milvus Lite: ingestion, online updates, access, search."""

from __future__ import annotations

import threading

import pytest
from kbutil import ADMIN, member

from zhinao.errors import NotFound, PayloadTooLarge, PermissionDenied

OLD = "旧版资费：畅享套餐月租 88 元，包含流量 10GB。".encode()
NEW = "新版资费：畅享套餐月租 66 元，包含流量 40GB。".encode()


def chunk_rows(kb, coll: str, doc_id: int | None = None) -> list[dict]:
    cid = kb.get_collection(ADMIN, coll)["id"]
    expr = f"doc_id == {doc_id}" if doc_id else "idx >= 0"
    return kb.index.query(kb.index.name(cid), expr)


def test_add_is_idempotent_by_content_hash(kb):
    kb.create_collection(ADMIN, "idem")
    out = kb.add_documents(ADMIN, "idem", [("a.txt", "携号转网免费办理。".encode())], wait=True)
    assert out["job"]["result"]["counts"] == {"added": 1}
    n = len(chunk_rows(kb, "idem"))
    again = kb.add_documents(ADMIN, "idem", [("a.txt", "携号转网免费办理。".encode())], wait=True)
    assert again["job"]["result"]["results"][0]["status"] == "unchanged"
    twin = kb.add_documents(ADMIN, "idem", [("copy-of-a.txt", "携号转网免费办理。".encode())], wait=True)
    assert twin["job"]["result"]["results"][0]["status"] == "duplicate"
    assert len(chunk_rows(kb, "idem")) == n
    assert [d["source"] for d in kb.list_documents(ADMIN, "idem")] == ["a.txt"]


def test_bad_files_get_their_own_errors_and_the_batch_continues(kb):
    from test_kb_ingest import encrypted_pdf, make_pdf

    kb.create_collection(ADMIN, "batch")
    big = b"x" * (kb.config.max_upload_bytes + 1)
    out = kb.add_documents(ADMIN, "batch", [
        ("good.md", "# 宽带\n\n光猫重启后等待 3 分钟。".encode()), ("empty.txt", b""), ("virus.exe", b"MZ"),
        ("huge.txt", big), ("broken.pdf", b"%PDF-1.7 broken"), ("locked.docx", b"\xd0\xcf\x11\xe0rest"),
        ("secret.pdf", encrypted_pdf()), ("guide.pdf", make_pdf(["Roaming day pass costs 25 yuan."]))], wait=True)
    rejected = {r["source"]: (r["code"], r["status"]) for r in out["rejected"]}
    assert rejected == {"empty.txt": ("empty_file", 400), "virus.exe": ("unsupported_type", 400),
                        "huge.txt": ("payload_too_large", 413)}
    results = {r["source"]: r for r in out["job"]["result"]["results"]}
    assert results["good.md"]["status"] == "added"
    assert results["broken.pdf"]["status"] == "failed" and "corrupted" in results["broken.pdf"]["error"]
    assert results["locked.docx"]["status"] == "failed" and "encrypted" in results["locked.docx"]["error"]
    assert results["secret.pdf"]["status"] == "failed" and results["secret.pdf"]["code"] == "encrypted_file"
    assert "password" in results["secret.pdf"]["error"]
    assert results["guide.pdf"]["status"] == "added"  # files after the bad ones are still ingested
    docs = {d["source"]: d for d in kb.list_documents(ADMIN, "batch")}
    assert docs["good.md"]["status"] == "ready" and docs["broken.pdf"]["status"] == "failed"
    assert docs["secret.pdf"]["status"] == "failed" and "encrypted" in docs["secret.pdf"]["error"]
    assert [h.doc["source"] for h in kb.retrieve(ADMIN, "batch", "roaming day pass", k=1)] == ["guide.pdf"]
    with pytest.raises(PayloadTooLarge):  # a single refused file is the request's error (413)
        kb.add_documents(ADMIN, "batch", [("huge.txt", big)])


def _many_chunks(price: int, label: str, sections: int = 8) -> bytes:
    """A tariff document of ``sections`` chunks, every one of which names its version's price."""
    return "\n\n".join(f"## 第{i}节 畅享套餐\n\n" + f"{label}：畅享套餐月租 {price} 元，第{i}条说明。" * 8
                       for i in range(1, sections + 1)).encode()


def test_replace_never_returns_an_old_chunk_after_it_completes(kb):
    """While a many-chunk document is replaced, every search sees one whole version: 5 hits,
    all old or all new. A replace that deleted the old chunks and inserted the new ones in steps
    would show a mix, or fewer hits (a single-chunk document could never show either)."""
    kb.create_collection(ADMIN, "online")
    out = kb.add_documents(ADMIN, "online", [("tariff.md", _many_chunks(88, "旧版资费"))], wait=True)
    doc_id = out["job"]["result"]["results"][0]["doc_id"]
    assert len(chunk_rows(kb, "online", doc_id)) >= 8
    old_hit = kb.retrieve(ADMIN, "online", "月租 88 元", k=3)[0]
    assert "88" in old_hit.body
    seen_during: list[list[str]] = []  # one list of bodies per search
    stop = threading.Event()

    def reader() -> None:  # questions keep coming while the document is replaced
        while not stop.is_set():
            seen_during.append([h.body for h in kb.retrieve(ADMIN, "online", "畅享套餐月租", k=5)])

    t = threading.Thread(target=reader)
    t.start()
    rep = kb.replace_document(ADMIN, "online", doc_id, "tariff.md", _many_chunks(66, "新版资费"), wait=True)
    stop.set()
    t.join()
    assert rep["job"]["result"]["results"][0]["status"] == "replaced"
    assert seen_during
    for bodies in seen_during:  # always a whole version
        assert len(bodies) == 5 and (all("88" in b for b in bodies) or all("66" in b and "88" not in b
                                                                         for b in bodies)), bodies
    for q in ("月租 88 元", "旧版资费", "畅享套餐"):
        for mode in ("hybrid", "bm25", "dense"):
            assert all("88" not in h.body for h in kb.retrieve(ADMIN, "online", q, k=5, mode=mode))
    rows = chunk_rows(kb, "online", doc_id)
    assert rows and {r["version"] for r in rows} == {2}
    with pytest.raises(NotFound):  # the old passage's citation link now says it is gone
        kb.passage(ADMIN, "online", old_hit.pk)


def test_delete_document(kb):
    kb.create_collection(ADMIN, "del")
    out = kb.add_documents(ADMIN, "del", [("a.txt", "停机保号每月 5 元。".encode())], wait=True)
    doc_id = out["job"]["result"]["results"][0]["doc_id"]
    assert kb.retrieve(ADMIN, "del", "停机保号")
    kb.delete_document(ADMIN, "del", doc_id)
    assert kb.retrieve(ADMIN, "del", "停机保号") == []
    assert chunk_rows(kb, "del") == []
    with pytest.raises(NotFound):
        kb.get_document(ADMIN, "del", doc_id)


def test_private_collections_roles_and_access_tags(kb):
    owner, reader, stranger = member(10), member(11), member(12)
    kb.create_collection(owner, "hr", visibility="private")
    kb.add_documents(owner, "hr", [("public.txt", "年假政策：每年 10 天带薪年假。".encode())], wait=True)
    kb.add_documents(owner, "hr", [("salary.txt", "薪酬政策：年终奖为两个月工资。".encode())],
                     access_tags=["hr-only"], wait=True)
    with pytest.raises(NotFound):  # a private collection is invisible to non-members
        kb.retrieve(stranger, "hr", "年假")
    assert "hr" not in [c["name"] for c in kb.list_collections(stranger)]
    kb.set_member(owner, "hr", reader.user_id, can_write=False, access_tags=[])
    bodies = [h.body for h in kb.retrieve(reader, "hr", "薪酬政策 年终奖", k=5)]
    assert bodies and all("年终奖" not in b for b in bodies)  # the tagged document is filtered out
    assert [d["source"] for d in kb.list_documents(reader, "hr")] == ["public.txt"]
    with pytest.raises(PermissionDenied):
        kb.add_documents(reader, "hr", [("x.txt", b"x")])
    kb.set_member(owner, "hr", reader.user_id, can_write=True, access_tags=["hr-only"])
    assert any("年终奖" in h.body for h in kb.retrieve(reader, "hr", "薪酬政策 年终奖", k=5))
    assert any("年终奖" in h.body for h in kb.retrieve(ADMIN, "hr", "薪酬政策 年终奖", k=5))  # admins see all
    with pytest.raises(NotFound):  # other tenants never see it, even admins
        kb.retrieve(member(1, tenant_id=2), "hr", "年假")


def test_search_filters_highlight_and_passage_links(kb):
    kb.create_collection(ADMIN, "lib")
    kb.add_documents(ADMIN, "lib", [("roam.md", "# Roaming\n\nAsia day pass costs 25 yuan <b>per day</b>.".encode(),
                                     {"tags": ["roaming"], "effective_date": "2026-03-01"}),
                                    ("faq.jsonl", '{"q": "Roaming day pass price?", "a": "See the roaming guide."}'.encode(),
                                     {"tags": ["faq"], "effective_date": "2025-01-01"})], wait=True)
    from zhinao.gateway.citations import web_passage

    res = kb.search(ADMIN, "roaming day pass", collection="lib")
    assert {r["source"] for r in res["results"]} == {"roam.md", "faq.jsonl"}
    only_tag = kb.search(ADMIN, "roaming day pass", collection="lib", tags=["faq"])
    assert [r["source"] for r in only_tag["results"]] == ["faq.jsonl"]
    only_type = kb.search(ADMIN, "roaming day pass", collection="lib", doc_types=["md"])
    assert [r["source"] for r in only_type["results"]] == ["roam.md"]
    recent = kb.search(ADMIN, "roaming day pass", collection="lib", date_from="2026-01-01")
    assert [r["source"] for r in recent["results"]] == ["roam.md"]
    data = recent["results"][0]["passages"][0]
    assert "url" not in data and "highlight" not in data  # the service returns data; links are the web's
    p = web_passage(data, "roaming day pass")
    assert "<b>" not in p["highlight"] and "&lt;b&gt;" not in p["highlight"]  # markdown inline HTML dropped
    assert "<mark>" in p["highlight"]
    assert kb.passage(ADMIN, "lib", p["passage_id"])["text"] == p["text"]
    assert p["url"] == f"/api/kb/lib/passages/{p['passage_id']}"


def test_highlight_escapes_html():
    from zhinao.gateway.citations import highlight

    h = highlight("<script>alert(1)</script> 漫游日套餐", "漫游")
    assert "<script>" not in h and "&lt;script&gt;" in h and "<mark>漫游</mark>" in h


def test_sync_dir_picks_up_new_changed_and_deleted_files(kb, tmp_path):
    folder = tmp_path / "library"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# A\n\n携号转网需要在网 120 天。", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("宽带报修 24 小时修复。", encoding="utf-8")
    kb.create_collection(ADMIN, "synced")
    first = kb.sync_dir(ADMIN, "synced", folder, wait=True, local=True)
    assert sorted(first["added_or_changed"]) == ["a.md", "sub/b.txt"]
    assert kb.sync_dir(ADMIN, "synced", folder, wait=True, local=True)["job_id"] is None  # nothing changed
    (folder / "a.md").write_text("# A\n\n携号转网需要在网 90 天。", encoding="utf-8")
    (folder / "sub" / "b.txt").unlink()
    (folder / "c.csv").write_text("名称,价格\n加油包,10元\n", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")
    second = kb.sync_dir(ADMIN, "synced", folder, wait=True, local=True)
    assert sorted(second["added_or_changed"]) == ["a.md", "broken.pdf", "c.csv"] and len(second["deleted"]) == 1
    assert {d["source"]: d["status"] for d in kb.list_documents(ADMIN, "synced")} == {
        "a.md": "ready", "c.csv": "ready", "broken.pdf": "failed"}
    assert kb.sync_dir(ADMIN, "synced", folder, wait=True, local=True)["job_id"] is None  # the same broken bytes: no retry
    (folder / "broken.pdf").unlink()
    assert all("120" not in h.body for h in kb.retrieve(ADMIN, "synced", "携号转网 在网", k=5))
    assert kb.sync_all()  # the scheduled sync re-reads the remembered folder
    assert kb.ingestor.sweep(kb.get_collection(ADMIN, "synced")["id"],
                             kb.index.name(kb.get_collection(ADMIN, "synced")["id"])) == 0


def test_scheduled_sync_follows_the_folder_on_its_own(tmp_path):
    """The timer thread (kb sync_interval_s) picks up new, changed and deleted files unaided."""
    import time

    from kbutil import close_service, make_service

    folder = tmp_path / "shared-drive"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\n停机保号每月 5 元。", encoding="utf-8")
    svc = make_service(tmp_path / "home", sync_interval_s=0.3)
    try:
        svc.create_collection(ADMIN, "watched")
        svc.sync_dir(ADMIN, "watched", folder, wait=True, local=True)  # remembers the folder

        def wait_for(pred, what: str) -> None:
            deadline = time.time() + 30
            while time.time() < deadline:
                if pred():
                    return
                time.sleep(0.2)
            pytest.fail(f"the scheduled sync did not pick up {what}")

        def sources() -> dict[str, str]:
            return {d["source"]: d["status"] for d in svc.list_documents(ADMIN, "watched")}

        (folder / "b.txt").write_text("宽带报修 24 小时修复。", encoding="utf-8")
        wait_for(lambda: sources().get("b.txt") == "ready", "a new file")
        (folder / "a.md").write_text("# A\n\n停机保号每月 8 元。", encoding="utf-8")
        wait_for(lambda: any("8 元" in h.body for h in svc.retrieve(ADMIN, "watched", "停机保号", k=3)),
                 "a changed file")
        assert all("5 元" not in h.body for h in svc.retrieve(ADMIN, "watched", "停机保号", k=5))
        (folder / "b.txt").unlink()
        wait_for(lambda: set(sources()) == {"a.md"}, "a deleted file")
    finally:
        close_service(svc)


def test_html_scripts_never_reach_the_index(kb):
    kb.create_collection(ADMIN, "web")
    page = b"<html><body><script>alert('pwned')</script><p>IPTV uses the LAN2 port.</p></body></html>"
    kb.add_documents(ADMIN, "web", [("iptv.html", page)], wait=True)
    bodies = [r["body"] for r in chunk_rows(kb, "web")]
    assert bodies == ["IPTV uses the LAN2 port."]


def test_a_failure_mid_indexing_leaves_no_duplicates_when_retried(tmp_path):
    from kbutil import close_service, make_service

    from zhinao.runtime.echo import HashEmbedder

    class FlakyEmbedder(HashEmbedder):
        """Fails on the second batch once: the first batch's chunks are already in Milvus."""

        calls = 0

        def embed(self, texts, kind="passage"):
            FlakyEmbedder.calls += 1
            if kind == "passage" and FlakyEmbedder.calls == 2:
                raise RuntimeError("embedding backend went away")
            return super().embed(texts, kind)

    svc = make_service(tmp_path, embedder=FlakyEmbedder(), embed_batch=2)
    try:
        svc.create_collection(ADMIN, "flaky")
        text = "\n\n".join(f"## 第{i}节\n\n第{i}节的内容。" for i in range(6)).encode()
        first = svc.add_documents(ADMIN, "flaky", [("a.md", text)], wait=True)
        assert first["job"]["result"]["results"][0]["status"] == "failed"
        assert svc.list_documents(ADMIN, "flaky")[0]["status"] == "failed"
        assert chunk_rows(svc, "flaky") == []  # the partial chunks were swept
        again = svc.add_documents(ADMIN, "flaky", [("a.md", text)], wait=True)
        assert again["job"]["result"]["results"][0]["status"] == "added"
        rows = chunk_rows(svc, "flaky")
        doc = svc.list_documents(ADMIN, "flaky")[0]
        assert len(rows) == doc["chunks"] == len({r["pk"] for r in rows}) and {r["version"] for r in rows} == {2}
    finally:
        close_service(svc)
