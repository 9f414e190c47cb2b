"""The per-collection scope cache: reused while nothing changes, never stale after a change."""

from __future__ import annotations

from kbutil import ADMIN, member
from sqlalchemy import select

from zhinao.knowledge.models import KBDocument
from zhinao.store.db import utcnow


def _rows(kb, name: str):
    with kb.db.session() as s:
        return kb._scopes.rows(s, kb.get_collection(ADMIN, name)["id"])


def test_scope_rows_are_reused_until_the_collection_changes(kb):
    kb.create_collection(ADMIN, "cache")
    kb.add_documents(ADMIN, "cache", [("a.txt", "宽带报修电话 10000。".encode())], wait=True)
    first = _rows(kb, "cache")
    assert _rows(kb, "cache") is first  # nothing changed: no reload
    kb.add_documents(ADMIN, "cache", [("b.txt", "携号转网需要短信验证。".encode())], wait=True)
    second = _rows(kb, "cache")
    assert second is not first and len(second.all_keys) == 2
    assert {h.doc["source"] for h in kb.retrieve(ADMIN, "cache", "携号转网", k=5)} >= {"b.txt"}


def test_new_access_tags_on_unchanged_content_apply_at_once(kb):
    owner, reader = member(20), member(21)
    kb.create_collection(owner, "tagged", visibility="private")
    kb.set_member(owner, "tagged", reader.user_id, access_tags=[])
    body = "内部资料：渠道佣金比例为 8%。".encode()
    kb.add_documents(owner, "tagged", [("memo.txt", body)], wait=True)
    assert any("佣金" in h.body for h in kb.retrieve(reader, "tagged", "渠道佣金", k=5))
    kb.add_documents(owner, "tagged", [("memo.txt", body)], access_tags=["finance"], wait=True)  # same bytes
    assert all("佣金" not in h.body for h in kb.retrieve(reader, "tagged", "渠道佣金", k=5))
    assert any("佣金" in h.body for h in kb.retrieve(owner, "tagged", "渠道佣金", k=5))


def test_a_write_from_another_process_is_noticed(kb):
    """Writes that bypass this process's counter (another worker) still move the SQL fingerprint."""
    kb.create_collection(ADMIN, "external")
    out = kb.add_documents(ADMIN, "external", [("x.txt", "国际漫游日包 25 元。".encode())], wait=True)
    doc_id = out["job"]["result"]["results"][0]["doc_id"]
    assert kb.retrieve(ADMIN, "external", "国际漫游", k=1)
    with kb.db.session() as s:  # as another process would: no bump() here
        d = s.scalar(select(KBDocument).where(KBDocument.id == doc_id))
        d.status, d.updated_at = "deleting", utcnow()
    assert kb.retrieve(ADMIN, "external", "国际漫游", k=1) == []
