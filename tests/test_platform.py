"""Platform composition: knowledge settings come from the one Settings object, and pending
capability jobs are resumed after a restart even though the services are built lazily."""

from __future__ import annotations

from zhinao.platform import Platform
from zhinao.settings import get_settings
from zhinao.store.models import Job


def test_kb_settings_come_from_the_environment(settings, monkeypatch):
    monkeypatch.setenv("ZHINAO_KB_TOP_K", "9")
    monkeypatch.setenv("ZHINAO_KB_RRF_K", "17")
    get_settings.cache_clear()
    p = Platform(get_settings())
    try:
        assert p.knowledge.config.top_k == 9
        assert p.knowledge.config.rrf_k == 17
    finally:
        p.knowledge.close()
        p.db.dispose()


def test_resume_builds_the_service_whose_job_is_pending(settings):
    p = Platform(settings)
    p.bootstrap()
    with p.db.session() as s:
        # what a process killed in the middle of a collection-less ingestion leaves behind
        s.add(Job(kind="kb.ingest", params={"collection_id": -1, "files": []}, status="running"))
    assert "knowledge" not in p.__dict__
    ids = p.resume_jobs()
    assert "knowledge" in p.__dict__, "the knowledge service (and its job handler) must exist before resuming"
    assert len(ids) == 1
    job = p.jobs.wait(ids[0])
    # the knowledge handler itself ran: its own error about the collection, not a missing handler's
    assert job["status"] == "failed" and "collection -1 no longer exists" in job["error"], job
    p.jobs.shutdown()
    p.knowledge.close()
    p.db.dispose()
