"""kill -9 in the middle of an ingestion job, restart, and the job completes cleanly."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from kb_ingest_child import corpus
from kbutil import ADMIN, close_service, make_service

HERE = Path(__file__).parent


@pytest.mark.slow
def test_sigkill_mid_job_then_resume_leaves_no_duplicate_and_no_orphan(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(HERE / "kb_ingest_child.py"), str(home)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    db = home / "zhinao.db"
    deadline = time.time() + 120
    state: tuple = ()
    indexing_since: tuple[str, float] | None = None  # (source, first seen indexing)
    try:
        while time.time() < deadline:  # wait until some documents are done and one is half-indexed
            time.sleep(0.02)
            if child.poll() is not None:
                pytest.fail("child exited early: " + child.stderr.read().decode()[-2000:])
            if not db.exists():
                continue
            try:
                with sqlite3.connect(db) as c:
                    state = tuple(c.execute("select status, count(*) from kb_documents group by status").fetchall())
                    now_indexing = [r[0] for r in c.execute("select source from kb_documents where status = 'indexing'")]
            except sqlite3.OperationalError:
                continue
            if len(now_indexing) != 1:
                indexing_since = None
                continue
            if indexing_since is None or indexing_since[0] != now_indexing[0]:
                indexing_since = (now_indexing[0], time.monotonic())
            # inside the document for 0.25 s (some of its chunks are in Milvus already), still indexing
            if dict(state).get("ready", 0) >= 3 and time.monotonic() - indexing_since[1] >= 0.25:
                break
        else:
            pytest.fail(f"job never reached the middle: {state}")
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the whole process group: Python and its Milvus Lite server
        child.wait()
    with sqlite3.connect(db) as c:
        job_status = c.execute("select status from jobs").fetchone()[0]
        done_before = c.execute("select count(*) from kb_documents where status = 'ready'").fetchone()[0]
        cut = [r[0] for r in c.execute("select source from kb_documents where status = 'indexing'")]
    assert job_status == "running" and 3 <= done_before < 10
    assert len(cut) == 1, cut  # the document that was cut in half by the kill
    cut_no = int(cut[0][3:5])  # docNN.md

    svc = make_service(home)  # a restarted process (same vectors: HashEmbedder, without the delay)
    try:
        resumed = svc.jobs.resume()
        assert len(resumed) == 1
        job = svc.jobs.wait(resumed[0], timeout=300)
        assert job["status"] == "succeeded", job
        statuses = Counter(r["status"] for r in job["result"]["results"])
        assert statuses["unchanged"] == done_before and statuses["added"] == 10 - done_before
        assert next(r for r in job["result"]["results"] if r["source"] == cut[0])["status"] == "added"

        docs = svc.list_documents(ADMIN, "crash")
        assert len(docs) == 10 and all(d["status"] == "ready" for d in docs)
        cid = svc.get_collection(ADMIN, "crash")["id"]
        rows = svc.index.query(svc.index.name(cid), "idx >= 0", ["pk", "doc_id", "version"])
        pks = [r["pk"] for r in rows]
        assert len(pks) == len(set(pks))  # no duplicate
        by_doc = Counter(r["doc_id"] for r in rows)
        for d in docs:  # no orphan: exactly the active version's chunks, all of them
            assert by_doc[d["id"]] == d["chunks"] > 0
            assert {r["version"] for r in rows if r["doc_id"] == d["id"]} == {d["version"]}
        assert len(rows) == sum(d["chunks"] for d in docs)
        assert svc.gc(ADMIN, "crash") == 0
        # and the collection answers from the document that was cut in half, every section of it
        # (before: doc09.md was checked, which the kill never touched: it is indexed after the resume)
        cut_doc = next(d for d in docs if d["source"] == cut[0])
        assert cut_doc["chunks"] == by_doc[cut_doc["id"]] >= len(corpus()[cut_no][1].decode().split("## ")) - 1
        for j in (0, 11):  # its first and its last section
            hits = svc.retrieve(ADMIN, "crash", f"套餐编号 {cut_no * 100 + j} 的月租", k=3)
            assert any(h.doc.get("source") == cut[0] and f"{cut_no * 100 + j}" in h.body for h in hits), hits
    finally:
        close_service(svc)
