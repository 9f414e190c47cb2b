"""The metadata store on SQLite and the real PostgreSQL: migrations, jobs."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from zhinao.store.db import Database
from zhinao.store.jobs import JobRunner, job_handler


def test_migrations_create_every_table_and_are_idempotent(db_url):
    db = Database(db_url)
    db.migrate()
    db.migrate()  # second run is a no-op
    names = set(sa.inspect(db.engine).get_table_names())
    assert {"tenants", "users", "api_keys", "models", "usage", "conversations", "chat_turns", "feedback",
            "jobs", "alembic_version"} <= names
    with db.engine.connect() as c:
        heads = {r[0] for r in c.execute(sa.text("SELECT version_num FROM alembic_version"))}
    from alembic.script import ScriptDirectory

    from zhinao.store.db import alembic_config

    assert heads == set(ScriptDirectory.from_config(alembic_config(db_url)).get_heads())  # every branch, at its head
    if db_url.startswith("sqlite"):
        with db.engine.connect() as c:
            assert c.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    db.dispose()


@job_handler("test.count")
def _count_job(ctx, params):
    for i in range(params["n"]):
        ctx.check()
        ctx.progress((i + 1) / params["n"], f"step {i + 1}")
        if params.get("gate"):
            _GATES[params["gate"]].wait(5)
    return {"done": params["n"]}


_GATES: dict[str, threading.Event] = {}


@job_handler("test.fail")
def _fail_job(ctx, params):
    raise ValueError("bad input row 3")


def test_jobs_progress_failure_cancel_and_resume(db_url):
    db = Database(db_url)
    db.migrate()
    runner = JobRunner(db)
    jid = runner.submit("test.count", {"n": 4}, tenant_id=1)
    job = runner.wait(jid, timeout=10)
    assert job["status"] == "succeeded" and job["progress"] == 1.0 and job["result"] == {"done": 4}
    bad = runner.wait(runner.submit("test.fail", {}), timeout=10)
    assert bad["status"] == "failed" and "bad input row 3" in bad["error"]
    _GATES["g"] = threading.Event()
    jid = runner.submit("test.count", {"n": 100, "gate": "g"})
    runner.cancel(jid)
    _GATES["g"].set()
    assert runner.wait(jid, timeout=10)["status"] == "cancelled"
    # a job left 'running' by a dead process is resumed by the next one
    from zhinao.store.models import Job

    with db.session() as s:
        j = Job(kind="test.count", params={"n": 2}, status="running")
        s.add(j)
        s.flush()
        orphan = j.id
    runner2 = JobRunner(db)
    assert orphan in runner2.resume()
    assert runner2.wait(orphan, timeout=10)["status"] == "succeeded"
    runner.shutdown()
    runner2.shutdown()
    db.dispose()


def test_a_job_submitted_while_the_process_drains_stays_queued_and_resumes(db_url):
    """SIGTERM drains the runner; a request already in flight that submits a job gets its id
    (not a 500 from a shut-down pool), and the job runs at the next start."""
    db = Database(db_url)
    db.migrate()
    runner = JobRunner(db)
    runner.shutdown(grace_s=1)
    jid = runner.submit("test.count", {"n": 3})
    assert runner.get(jid)["status"] == "queued"
    runner2 = JobRunner(db)
    assert jid in runner2.resume()
    assert runner2.wait(jid, timeout=10)["status"] == "succeeded"
    runner2.shutdown()
    db.dispose()
