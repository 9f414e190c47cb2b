"""Decompression bombs, bounded parsing, and a cancel that really stops (issue 8, finding 7).

What was seen from outside: a 2.4 MB DOCX (~1 GB unpacked) kept an ingestion job busy for
6+ minutes while the server went from 0.6 to 3.3 GB; cancel said ok and the job went on;
deleting the collection hung; the job came back after a restart; a 3.4 MB XLSX import
reached 3.9 GB. Every bomb here is generated in the test (bombgen.py) and must be refused
in under 2 s with under 200 MB of memory added, in the server process (peak RSS, VmHWM
reset before each input) and in the parser worker (its own peak over its RSS before).
"""

from __future__ import annotations

import io
import os
import random
import re
import threading
import time

import pytest
from bombgen import (MiB, Member, docx_bomb, docx_bytes, lying_zip, many_members_zip, nested_bomb, normal_docx,
                     normal_pdf, normal_xlsx, pdf_bomb, slow_pdf, xlsx_bomb, xml_entity_bomb)
from two_tenants import OP

from zhinao.analytics import importers
from zhinao.capability import migration_dirs
from zhinao.errors import ZhinaoError
from zhinao.maas.tenancy import Principal
from zhinao.knowledge.ingest import WORKER_PRELOAD, parse_isolated
from zhinao.safety.archive import ArchiveLimits, ArchiveRejected, inspect_zip
from zhinao.safety.isolate import IsolatedRunner, ParseLimits, ParseMemoryExceeded, ParseTimeout
from zhinao.store.db import Database
from zhinao.store.jobs import JobRunner, job_handler
from zhinao.store.models import Job

BUDGET_S, BUDGET_MB = 2.0, 200.0
SYSTEM = Principal(tenant_id=1, tenant="default", user_id=None, username="system", key_id=None, role="admin")


# -- measuring ----------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+)", open("/proc/self/status").read(), re.M)
    return int(m.group(1)) if m else 0


def measured(fn, runner: IsolatedRunner | None = None) -> tuple[float, float, float, Exception | None]:
    """(seconds, MB added to this process's peak RSS, MB added in the worker, the error raised)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM: the peak below is this call's
    except OSError:
        pass
    if runner is not None:
        runner.last = None
    rss0 = _status_kb("VmRSS")
    t0 = time.perf_counter()
    err = None
    try:
        fn()
    except ZhinaoError as e:
        err = e
    dt = time.perf_counter() - t0
    parent = (_status_kb("VmHWM") - rss0) / 1024
    child = 0.0
    if runner is not None and runner.last is not None:
        child = max(0.0, runner.last.child_peak_mb - runner.last.child_rss_before_mb)
    return dt, parent, child, err


@pytest.fixture(scope="module")
def runner():
    """A warm worker pool of its own (a server's pool is warm too; start-up is not the bomb's cost)."""
    r = IsolatedRunner(preload=WORKER_PRELOAD, workers=1)
    parse_isolated(b"warm up", "w.txt", runner=r)
    yield r
    r.close()


@pytest.fixture(scope="module")
def bombs():
    return {"docx": docx_bomb(), "xlsx": xlsx_bomb(), "members": many_members_zip(100_000),
            "nested": nested_bomb(), "pdf": pdf_bomb(), "lying": lying_zip(), "entities": xml_entity_bomb()}


CASES = [  # input, file name, error code, words the message must hold
    ("docx", "bomb.docx", "compression_ratio", "decompression bomb"),
    ("xlsx", "bomb.xlsx", "compression_ratio", "decompression bomb"),
    ("members", "many.docx", "too_many_members", "more than 10000 members"),
    ("nested", "nested.docx", "compression_ratio", "Microsoft_Excel_Worksheet.xlsx/xl/worksheets/sheet1.xml"),
    ("pdf", "bomb.pdf", "unpacked_too_large", "unpacks to more than 75 MB"),
    ("lying", "lying.docx", "size_mismatch", "unpacks to more than the 1024 bytes it declares"),
    ("entities", "lol.xlsx", "corrupt_file", "amplification"),  # lxml refuses billion laughs
]


@pytest.mark.parametrize("key,filename,code,words", CASES, ids=[c[0] for c in CASES])
def test_bomb_is_refused_in_time_and_memory(bombs, runner, key, filename, code, words):
    data = bombs[key]
    dt, parent_mb, child_mb, err = measured(lambda: parse_isolated(data, filename, runner=runner), runner)
    assert err is not None and err.code == code, err
    assert words in err.message, err.message
    assert dt < BUDGET_S, f"{key}: {dt:.2f} s"
    assert parent_mb < BUDGET_MB and child_mb < BUDGET_MB, (key, parent_mb, child_mb)
    assert 400 <= err.status < 500


@pytest.mark.parametrize("make,filename", [(normal_docx, "n.docx"), (normal_xlsx, "n.xlsx"), (normal_pdf, "n.pdf")])
def test_normal_files_of_each_type_still_parse(runner, make, filename):
    doc = parse_isolated(make(), filename, runner=runner)
    assert doc.sections and doc.doc_type == filename.rsplit(".", 1)[1]


def test_the_guard_reads_declared_sizes_only():
    """The 1 GiB bomb is refused on its central directory: nothing near its size is inflated."""
    data = docx_bomb()
    t0 = time.perf_counter()
    with pytest.raises(ArchiveRejected) as e:
        inspect_zip(data, "bomb.docx")
    assert time.perf_counter() - t0 < 0.2 and "1024 MB" in e.value.message and e.value.status == 413
    assert inspect_zip(normal_docx(), "n.docx").members >= 5  # a real DOCX passes


def test_total_size_cap_names_the_limit():
    rnd = random.Random(7)  # text that compresses like prose (~3x), so only the total can stop it
    body = "".join(rnd.choice("资费套餐流量语音短信宽带携号转网在网满天欠费") for _ in range(2_000_000)).encode()
    data = docx_bytes(Member("word/document.xml", b"<w:document><w:body><w:p><w:r><w:t>" + body
                             + b"</w:t></w:r></w:p></w:body></w:document>"))
    stats = inspect_zip(data, "big.docx")  # within the defaults
    assert stats.unpacked_bytes > 5 * MiB and stats.max_ratio < 100
    with pytest.raises(ArchiveRejected, match=r"big.docx: the file unpacks to more than 4.0 MB"):
        inspect_zip(data, "big.docx", ArchiveLimits(max_unpacked_bytes=4 * MiB))


@pytest.mark.slow
def test_a_parser_past_its_time_is_killed(runner):
    pid_before = runner.worker_pids()
    dt, _, _, err = measured(lambda: parse_isolated(slow_pdf(), "slow.pdf", runner=runner,
                                                    limits=ParseLimits(timeout_s=1.5)), runner)
    assert isinstance(err, ParseTimeout) and "parsing took longer than 1.5 s" in err.message, err
    assert dt < 1.5 + 2.0
    for pid in pid_before:  # the worker that ran it is gone, and the pool serves the next file
        assert not _alive(pid)
    assert parse_isolated(b"next file", "n.txt", runner=runner).sections


@pytest.mark.slow
def test_a_parser_past_its_memory_fails_that_file_only():
    r = IsolatedRunner(memory_bytes=128 * MiB, preload=WORKER_PRELOAD, workers=1)
    try:
        data = b"a\n\n" * (10 * MiB)  # 30 MB of paragraphs: ~10M Section objects, far over 128 MB
        dt, parent_mb, _, err = measured(lambda: parse_isolated(data, "many.txt", runner=r,
                                                                limits=ParseLimits(memory_bytes=128 * MiB)), r)
        assert isinstance(err, ParseMemoryExceeded) and err.status == 413, err
        assert "needs more than 128 MB of memory" in err.message
        assert dt < 30 and parent_mb < BUDGET_MB
        assert parse_isolated(b"small", "s.txt", runner=r).sections  # a fresh worker takes the next file
    finally:
        r.close()


def test_cancel_kills_the_parser_at_once(runner):
    class Stop(Exception):
        pass

    t_cancel = time.monotonic() + 1.0

    def check():
        if time.monotonic() > t_cancel:
            raise Stop()

    t0 = time.perf_counter()
    with pytest.raises(Stop):
        parse_isolated(slow_pdf(), "slow.pdf", runner=runner, check=check)
    assert time.perf_counter() - t0 < 1.0 + 1.0
    assert runner.last.worker_pid and not _alive(runner.last.worker_pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not reaped yet) is not alive
        return open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z"
    except OSError:
        return False


# -- analytics imports --------------------------------------------------------------------------
def test_analytics_xlsx_bomb_is_413_before_reading():
    data = xlsx_bomb()
    dt, parent_mb, _, err = measured(lambda: importers.read_bytes(data, "bomb.xlsx", limit=512 * MiB))
    assert isinstance(err, ArchiveRejected) and err.status == 413 and "decompression bomb" in err.message
    assert dt < BUDGET_S and parent_mb < BUDGET_MB


def test_analytics_excel_in_the_worker_keeps_types():
    import pandas as pd

    data = normal_xlsx(50)
    df = importers.read_bytes(data, "t.xlsx", limit=512 * MiB, sheet="话务").frame
    pd.testing.assert_frame_equal(df, pd.read_excel(io.BytesIO(data), sheet_name="话务"))  # as read in-process
    mixed = io.BytesIO()
    pd.DataFrame({"v": [1, "two", 3.5, None]}).to_excel(mixed, index=False)  # mixed types come back as text
    assert importers.read_bytes(mixed.getvalue(), "m.xlsx", limit=512 * MiB).frame["v"].tolist()[:3] == \
        ["1", "two", "3.5"]


# -- through the API ----------------------------------------------------------------------------
def _wait(pred, timeout: float = 60.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("condition not reached in time")


@pytest.mark.slow
def test_kb_upload_of_bombs_fails_each_document_and_the_batch_goes_on(client, bombs):
    assert client.post("/api/kb/collections", json={"name": "bombs"}, headers=OP).status_code == 201
    files = [("files", ("bomb.docx", bombs["docx"])), ("files", ("bomb.xlsx", bombs["xlsx"])),
             ("files", ("many.docx", bombs["members"])), ("files", ("nested.docx", bombs["nested"])),
             ("files", ("bomb.pdf", bombs["pdf"])), ("files", ("ok.md", "# 资费\n\n月租 10 元。".encode()))]
    t0 = time.perf_counter()
    r = client.post("/api/kb/bombs/documents", files=files, data={"wait": "true"}, headers=OP)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert job["status"] == "succeeded" and job["result"]["counts"] == {"failed": 5, "added": 1}, job
    assert elapsed < 6 * BUDGET_S + 5  # five refusals and one real file, not minutes
    docs = {d["source"]: d for d in client.get("/api/kb/bombs/documents", headers=OP).json()}
    assert docs["ok.md"]["status"] == "ready"
    for name, words in (("bomb.docx", "decompression bomb"), ("bomb.xlsx", "decompression bomb"),
                        ("many.docx", "more than 10000 members"), ("nested.docx", "decompression bomb"),
                        ("bomb.pdf", "unpacks to more than")):
        assert docs[name]["status"] == "failed" and words in docs[name]["error"], docs[name]


@pytest.mark.slow
def test_analytics_import_api_refuses_the_xlsx_bomb(client, bombs):
    assert client.post("/api/analytics/workspaces", json={"name": "w"}, headers=OP).status_code == 201
    t0 = time.perf_counter()
    r = client.post("/api/analytics/workspaces/w/datasets", files={"file": ("bomb.xlsx", bombs["xlsx"])}, headers=OP)
    assert r.status_code == 413, r.text
    assert "decompression bomb" in r.json()["error"]["message"] and time.perf_counter() - t0 < BUDGET_S + 1
    ok = client.post("/api/analytics/workspaces/w/datasets", files={"file": ("cells.xlsx", normal_xlsx())},
                     headers=OP)
    assert ok.status_code == 201 and ok.json()["rows"] == 200, ok.text


def _start_slow_job(client, collection: str) -> tuple[int, int]:
    """Upload a slow PDF then two small files; return (job id, slow doc id) once the PDF is being parsed."""
    assert client.post("/api/kb/collections", json={"name": collection}, headers=OP).status_code == 201
    files = [("files", ("slow.pdf", slow_pdf())), ("files", ("a.md", b"# A\n\nalpha")),
             ("files", ("b.md", b"# B\n\nbeta"))]
    r = client.post(f"/api/kb/{collection}/documents", files=files, headers=OP)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]

    def indexing():
        docs = client.get(f"/api/kb/{collection}/documents", headers=OP).json()
        return next((d["id"] for d in docs if d["source"] == "slow.pdf" and d["status"] == "indexing"), None)

    doc_id = _wait(indexing)
    time.sleep(0.5)  # inside the parser now
    return job_id, doc_id


@pytest.mark.slow
def test_cancel_stops_the_job_and_a_restart_does_not_resume_it(settings, platform):
    from two_tenants import make_client, make_platform

    with make_client(platform) as client:
        job_id, doc_id = _start_slow_job(client, "slow")
        t0 = time.perf_counter()
        r = client.post(f"/api/jobs/{job_id}/cancel", headers=OP)
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        assert time.perf_counter() - t0 < 3.0
        job = client.get(f"/api/jobs/{job_id}", headers=OP).json()
        assert job["status"] == "cancelled" and job["cancel_requested"]
        docs = {d["source"]: d for d in client.get("/api/kb/slow/documents", headers=OP).json()}
        assert docs["slow.pdf"]["status"] == "failed" and "cancelled" in docs["slow.pdf"]["error"]
        assert set(docs) == {"slow.pdf"}  # the files after it were never started
        assert client.post(f"/api/jobs/{job_id}/cancel", headers=OP).status_code == 409  # nothing left to cancel
    again = make_platform(settings)  # a restart on the same home
    try:
        assert job_id not in again.resume_jobs()
        assert again.jobs.get(job_id)["status"] == "cancelled"
    finally:
        again.jobs.shutdown()
        again.db.dispose()


@pytest.mark.slow
def test_deleting_a_collection_while_its_job_parses_does_not_hang(client):
    job_id, _ = _start_slow_job(client, "busy")
    t0 = time.perf_counter()
    r = client.delete("/api/kb/collections/busy", headers=OP)
    assert r.status_code == 200, r.text
    assert time.perf_counter() - t0 < 30.0  # "does not hang" (minutes before); generous for a loaded machine
    assert client.get(f"/api/jobs/{job_id}", headers=OP).json()["status"] == "cancelled"
    assert client.get("/api/kb/collections/busy", headers=OP).status_code == 404


# -- resume: cancelled and crashing jobs are not run again ---------------------------------------
_RUNS: list[int] = []


@job_handler("test.bombs.count")
def _count(ctx, params):
    _RUNS.append(ctx.job_id)
    gate = params.get("gate")
    if gate:
        _GATES[gate].wait(10)  # deaf to cancel on purpose: a process that dies before it looks
    return {"ok": True}


_GATES: dict[str, threading.Event] = {}


def test_a_cancel_survives_the_process_that_did_not_act_on_it(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'z.db'}")
    db.migrate()
    first = JobRunner(db)
    _GATES["g"] = threading.Event()
    jid = first.submit("test.bombs.count", {"gate": "g"})
    _wait(lambda: jid in _RUNS)
    assert first.cancel(jid)["cancel_requested"]  # ... and this process "dies" before the handler looks
    second = JobRunner(db)  # the restart
    try:
        assert second.resume() == []
        assert second.get(jid)["status"] == "cancelled"
    finally:
        _GATES["g"].set()
        first.shutdown()
        second.shutdown()
        db.dispose()


def test_a_job_interrupted_too_often_is_failed_not_resumed(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'z.db'}")
    db.migrate()
    with db.session() as s:
        crashing = Job(kind="test.bombs.count", params={}, status="running", attempts=3)
        once = Job(kind="test.bombs.count", params={}, status="running", attempts=1)
        s.add_all([crashing, once])
        s.flush()
        crashing_id, once_id = crashing.id, once.id
    runner = JobRunner(db, max_attempts=3)
    try:
        assert runner.resume() == [once_id]
        failed = runner.get(crashing_id)
        assert failed["status"] == "failed" and "not resumed again" in failed["error"]
        done = runner.wait(once_id, timeout=10)
        assert done["status"] == "succeeded" and done["attempts"] == 1  # a clean end gives its start back
    finally:
        runner.shutdown()
        db.dispose()


def _kb_service(home):
    from zhinao.knowledge.config import KBConfig
    from zhinao.knowledge.service import KnowledgeService
    from zhinao.runtime.echo import HashEmbedder
    from zhinao.settings import Settings

    settings = Settings(home=home, env="test", parse_timeout_s=3.0)
    db = Database(settings.db_url)
    db.migrate(migration_dirs())
    from zhinao.store.jobs import JobRunner

    return KnowledgeService(settings=settings, db=db, jobs=JobRunner(db), embedder=HashEmbedder(),
                            config=KBConfig(min_relevance=-1.0))  # no model client: ingestion only


def _close(svc) -> None:
    svc.jobs.shutdown()
    svc.close()
    svc.db.dispose()


@pytest.mark.slow
def test_a_document_in_flight_at_two_crashes_is_failed_not_retried(tmp_path):
    from sqlalchemy import select

    from zhinao.knowledge.models import KBDocument

    svc = _kb_service(tmp_path / "home")
    try:
        cid = svc.create_collection(SYSTEM, "crashy")["id"]
        items = [svc.stage("crash.md", b"# Crash\n\nthis one was in flight twice"),
                 svc.stage("fine.md", b"# Fine\n\nthis one was in flight once")]
        with svc.db.session() as s:  # what two kill -9 in a row leave behind
            for item, interrupted in zip(items, (1, 0)):
                s.add(KBDocument(collection_id=cid, source=item["source"], tags=[], access_tags=[], status="indexing",
                                 pending_version=1, pending_hash=item["sha256"], meta={"interrupted": interrupted}))
            job = Job(kind="kb.ingest", params={"collection_id": cid, "items": items}, status="running", attempts=1)
            s.add(job)
            s.flush()
            job_id = job.id
        assert svc.jobs.resume() == [job_id]
        result = svc.jobs.wait(job_id, timeout=60)["result"]
        by = {r["source"]: r for r in result["results"]}
        assert by["crash.md"]["status"] == "failed" and by["crash.md"]["code"] == "interrupted"
        assert by["fine.md"]["status"] == "added"
        with svc.db.session() as s:
            doc = s.scalar(select(KBDocument).where(KBDocument.source == "crash.md"))
            assert doc.status == "failed" and "not retried again" in doc.error
    finally:
        _close(svc)


@pytest.mark.slow
def test_shutdown_requeues_a_running_job_and_the_resumed_run_times_the_parser_out(tmp_path):
    home = tmp_path / "home"
    svc = _kb_service(home)
    svc.config.embed_batch = 4
    cid = svc.create_collection(SYSTEM, "stop")["id"]
    svc.settings.parse_timeout_s = 60.0  # the first run must still be parsing when the server stops
    out = svc.add_documents(SYSTEM, cid, [("slow.pdf", slow_pdf()), ("a.md", b"# A\n\nalpha")])
    job_id = out["job_id"]
    _wait(lambda: any(d["source"] == "slow.pdf" and d["status"] == "indexing"
                      for d in svc.list_documents(SYSTEM, cid)))
    time.sleep(0.5)
    t0 = time.perf_counter()
    assert svc.jobs.shutdown(grace_s=10) is True
    assert time.perf_counter() - t0 < 3.0
    job = svc.jobs.get(job_id)
    assert job["status"] == "queued" and job["attempts"] == 0 and "shutdown" in job["message"]
    svc.close()
    svc.db.dispose()

    svc = _kb_service(home)  # the next start: parse_timeout_s=3 this time
    try:
        assert svc.jobs.resume() == [job_id]
        result = svc.jobs.wait(job_id, timeout=60)
        assert result["status"] == "succeeded", result
        by = {r["source"]: r for r in result["result"]["results"]}
        assert by["slow.pdf"]["code"] == "parse_timeout" and "longer than 3 s" in by["slow.pdf"]["error"]
        assert by["a.md"]["status"] == "added"
        slow = next(d for d in svc.list_documents(SYSTEM, cid) if d["source"] == "slow.pdf")
        assert slow["status"] == "failed"
    finally:
        _close(svc)
