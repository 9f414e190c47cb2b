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
    try:
        while time.time() < deadline:  # wait until some documents are done and one is half-indexed
            time.sleep(0.2)
            if child.poll() is not None:
                pytest.fail("child exited early: " + child.stderr.read().decode()[-2000:])
            if not db.exists():
                continue
            try:
                with sqlite3.connect(db) as c:
                    state = tuple(c.execute("select status, count(*) from kb_documents group by status").fetchall())
            except sqlite3.OperationalError:
                continue
            st = dict(state)
            if st.get("ready", 0) >= 3 and st.get("indexing", 0) == 1:
                time.sleep(0.3)  # inside the document: some of its chunks are in Milvus already
                break
        else:
            pytest.fail(f"job never reached the middle: {state}")
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the whole process group: Python and its Milvus Lite server
        child.wait()
    with sqlite3.connect(db) as c:
        job_status = c.execute("select status from jobs").fetchone()[0]
        done_before = c.execute("select count(*) from kb_documents where status = 'ready'").fetchone()[0]
    assert job_status == "running" and 3 <= done_before < 10

    svc = make_service(home)  # a restarted process (same vectors: HashEmbedder, without the delay)
    try:
        resumed = svc.jobs.resume()
        assert len(resumed) == 1
        job = svc.jobs.wait(resumed[0], timeout=300)
        assert job["status"] == "succeeded", job
        statuses = Counter(r["status"] for r in job["result"]["results"])
        assert statuses["unchanged"] == done_before and statuses["added"] == 10 - done_before

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
        # and the collection answers: a passage of the document that was cut in half
        name = [c for c in corpus() if c[0] == "doc09.md"][0][0]
        assert any(h.doc.get("source") == name for h in svc.retrieve(ADMIN, "crash", "套餐编号 905 的月租", k=3))
    finally:
        close_service(svc)
